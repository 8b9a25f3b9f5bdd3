"""Shape ops: reshapes (and the flatten + view round trip), permutes, crops, flips, rolls."""

from __future__ import annotations

import math

import torch

from .. import geometry as g
from ..geometry import GLOBAL, UNKNOWN, Field, NotGeometric, Window
from . import positions, regrid
from .dispatch import (
    MIXED,
    Call,
    Outcome,
    as_tokens,
    layout_lost,
    mixed,
    positive,
    rule,
    whole_global,
)


def _packed(f: Field, tail: tuple[int, ...]) -> Field:
    """A map flattened into one trailing dim: shown as a whole (global), kept to be undone."""
    flat = mixed(f, "the spatial map is flattened, per-position fields end here", keep_dims=False)
    return Field(flat.axes, None, flat.status, flat.note, packed=("flat", tail, -1, f))


def _unpacked(f: Field, out: torch.Tensor, src: torch.Tensor) -> Field | None:
    """The field before a flatten, if this view puts the map back exactly as it was."""
    if f.packed is None:
        return None
    if f.packed[0] == "reduced":  # a partial reduction: the dims come back as size 1
        _, _, _, kept, ndim = f.packed
        if out.dim() == ndim and all(out.shape[d] == a.size for a, d in zip(kept.axes, kept.dims)):
            return kept
        return None
    if f.packed[0] in ("unfold", "cols"):  # (weight @) F.unfold(x), viewed as the map of windows
        size, windows = f.packed[2], f.packed[4]
        if out.dim() >= len(size) and tuple(out.shape[-len(size) :]) == size:
            return windows
        return None
    if f.packed[0] != "flat":
        return None
    _, tail, flat_dim, before = f.packed
    n = len(tail)
    if flat_dim == -1 and out.dim() >= n and tuple(out.shape[-n:]) == tuple(tail):
        return before
    # tokens with their features behind them, (B, N, C) viewed as (B, H, W, C): the map is
    # back in the dims in front of the features, which the view left as they were
    after = -1 - flat_dim
    if (
        after > 0
        and before.dims is not None
        and out.dim() >= n + after
        and tuple(out.shape[out.dim() - after :]) == tuple(src.shape[src.dim() - after :])
        and tuple(out.shape[out.dim() - after - n : out.dim() - after]) == tuple(tail)
    ):
        dims = tuple(d - after for d in before.dims)
        return Field(before.axes, dims, before.status, before.note)
    return None


def _tokens_sliced(f: Field, index: tuple, src: torch.Tensor) -> Field | None:
    """Tokens (a flattened map, maybe with a class token in front) sliced along the token
    dim so that every map token survives, in order (`x[:, 1:]` drops the class token): the
    same tokens, shifted; None for any other indexing (the layout is then lost)."""
    p = f.packed
    if p is None or p[0] not in ("flat", "tokens"):
        return None
    ndim = src.dim()
    if index.count(Ellipsis) == 1:
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (ndim - len(index) + 1) + index[at + 1 :]
    if len(index) > ndim or not all(isinstance(i, slice) for i in index):
        return None  # an integer drops a dim (the token dim's place moves): not followed
    flat = p[2] % ndim
    if flat >= len(index):  # only dims in front of the tokens sliced (the batch)
        return Field(f.axes, None, f.status, f.note, f.packed)
    offset = p[4] if p[0] == "tokens" else 0
    count = math.prod(p[1])
    start, stop, step = index[flat].indices(src.shape[flat])
    if step != 1 or start > offset or stop < offset + count:
        return None  # a token of the map cut away, or every other one
    moved = offset - start
    if moved == 0 and stop - start == count:
        return Field(f.axes, None, f.status, f.note, ("flat",) + tuple(p[1:4]))
    return Field(f.axes, None, f.status, f.note, ("tokens",) + tuple(p[1:4]) + (moved,))


def _tokens_kept(f: Field, src: torch.Tensor, out: torch.Tensor) -> Field | None:
    """Tokens viewed so that every dim up to the token dim stays as it was (a head split,
    (B, N, C) as (B, N, h, d), and its merge back): each element keeps its token, the
    token dim only moves its place counted from the end. None for any other view."""
    windows = f.packed is not None and f.packed[0] in ("unfold", "cols")
    if windows and out.shape[-1] == src.shape[-1]:
        return None  # the windows still last and apart: F.fold can still put them back
    p = as_tokens(f).packed
    if p is None or p[0] not in ("flat", "tokens"):
        return None
    at = p[2] % src.dim()
    if out.dim() <= at or tuple(out.shape[: at + 1]) != tuple(src.shape[: at + 1]):
        return None
    return Field(f.axes, None, f.status, f.note, (p[0], p[1], at - out.dim()) + tuple(p[3:]))


def _tokens_channels_last(f: Field, src: torch.Tensor, out: torch.Tensor) -> Field | None:
    """A map with features behind it, (B, H, W, C), viewed as tokens (B, H·W, C) (Swin's
    blocks around their MLP): the map's dims merged into one in place, the dims behind left
    as they were. The tokens' layout (as a patch embedding's (B, N, C)); None otherwise."""
    ndim = src.dim()
    where = sorted(positive(f.dims, ndim))
    first, last = where[0], where[-1]
    after = ndim - 1 - last
    if after < 1 or where != list(range(first, last + 1)) or len(where) < 2:
        return None
    tail = tuple(src.shape[first : last + 1])
    if tuple(out.shape) != tuple(src.shape[:first]) + (math.prod(tail),) + tuple(
        src.shape[last + 1 :]
    ):
        return None
    before = Field(f.axes, tuple(d + after for d in f.dims), f.status, f.note)
    flat = _packed(before, tail)
    return Field(flat.axes, None, flat.status, flat.note, ("flat", tail, -1 - after, before))


def reshape(call: Call) -> Outcome:
    """Keep the map if its trailing dims survive unchanged; a flatten of the map's dims is
    shown as global but remembered, so a view that restores the map restores its field."""
    f = call.first
    src, out = call.first_tensor, call.out_tensor
    pos = positions.of(f)
    if pos is not None:  # a map taken apart by views (windows): follow each position
        return _laid_out(f, positions.reshaped(pos, tuple(out.shape)), tuple(out.shape))
    if f.dims is None:
        restored = _unpacked(f, out, src)
        if restored is not None:
            return Outcome(restored)
        n = len(f.axes)
        if (
            n
            and out.dim() >= n + 1
            and all(out.shape[d] == 1 for d in range(-n, 0))
            and all(a.size == 1 for a in f.axes)
        ):
            # a pooled vector viewed back as a 1x1 map (an SE gate): the map is back
            return Outcome(Field(f.axes, tuple(range(-n, 0)), f.status, f.note))
        kept = _tokens_kept(f, src, out)
        if kept is not None:
            return Outcome(kept)
        if (
            f.packed is not None
            and f.packed[0] != "mixed"
            and out.dim() >= 1
            and src.dim() >= 1
            and out.shape[-1] != src.shape[-1]
        ):
            return Outcome(layout_lost(f))  # the layout is lost
        return Outcome(f)
    m = max(-d for d in f.dims)
    if out.dim() >= m and tuple(src.shape[-m:]) == tuple(out.shape[-m:]):
        return Outcome(f)
    if all(a.size == 1 for a in f.axes):  # a 1x1 map: nothing mixes, the field lives on
        # (and a vector whose every element saw everything still has: a later window op
        # on it, HaloNet's last stage's 1x1 conv, is global, not unknown)
        return Outcome(Field(f.axes, None, f.status, f.note, MIXED if whole_global(f) else None))
    # the trailing dims from some k on (the map's, maybe channels too) merged into one?
    for k in range(src.dim() - m, -1, -1):
        tail = tuple(src.shape[k:])
        if tuple(out.shape) == tuple(src.shape[:k]) + (math.prod(tail),):
            return Outcome(_packed(f, tail))
    tokens = _tokens_channels_last(f, src, out)
    if tokens is not None:
        return Outcome(tokens)
    shown = mixed(
        f,
        f"{call.name}: the spatial map is flattened, per-position fields end here",
        keep_dims=False,
    )
    pos = positions.start(f, tuple(src.shape), tuple(out.shape)) if f.status != UNKNOWN else None
    if pos is None:
        return Outcome(shown)
    return _laid_out(shown, pos, tuple(out.shape))


def _laid_out(f: Field, moved: positions.Positions, shape: tuple[int, ...]) -> Outcome:
    """A view's output holding the map's positions as `moved`: the map itself where they
    are all back in place, a space-to-depth's windows, a map regathered into another grid
    (depth-to-space by hand), else the layout to follow."""
    back = positions.restored(moved, shape)
    if back is not None:
        return Outcome(back)
    gathered = positions.blocks(moved, shape)
    if gathered is not None:
        field, r = gathered
        n = len(r)
        return Outcome(field, Window(r, r, (0,) * n, (1,) * n))
    regathered = regrid.regridded(moved, shape)  # sub-pixels merged in: depth-to-space
    if regathered is not None:
        return Outcome(regathered)
    return Outcome(positions.wrap(f, moved))


def permute(call: Call) -> Outcome:
    """Reordering dims moves the map with them: spatial axes swap with their dims."""
    f = call.first
    ndim = call.first_tensor.dim()
    order = _order(call, ndim)
    where = {old: new for new, old in enumerate(order)}
    pos = positions.of(f)
    if pos is not None:
        return Outcome(positions.wrap(f, positions.permuted(pos, order)))
    if f.dims is None:
        f = as_tokens(f)  # an unfold's windows transposed (patchify): tokens
        if f.packed is not None and f.packed[0] in ("flat", "tokens"):
            kind, tail, flat_dim, *rest = f.packed  # a class token's offset stays
            moved = where[flat_dim % ndim] - ndim
            return Outcome(Field(f.axes, None, f.status, f.note, packed=(kind, tail, moved, *rest)))
        if f.packed is not None and f.packed[0] == "mixed":
            return Outcome(f)
        return Outcome(layout_lost(f))
    dims = tuple(where[d] - ndim for d in positive(f.dims, ndim))
    return Outcome(Field(f.axes, dims, f.status, f.note, f.packed))


def _order(call: Call, ndim: int) -> list[int]:
    order = list(range(ndim))
    if call.name == "permute":
        rest = call.args[1:] or (call.kwargs.get("dims"),)
        perm = rest[0] if len(rest) == 1 and isinstance(rest[0], (list, tuple)) else rest
        return [int(p) % ndim for p in perm]
    if call.name in ("transpose", "t", "get_T", "get_mT"):
        if call.name == "transpose":
            a, b = int(call.arg(1, "dim0")) % ndim, int(call.arg(2, "dim1")) % ndim
        else:
            a, b = (ndim - 2, ndim - 1) if ndim >= 2 else (0, 0)
            if call.name == "get_T":
                return order[::-1]
        order[a], order[b] = order[b], order[a]
        return order
    # movedim(source, destination)
    src, dst = call.arg(1, "source"), call.arg(2, "destination")
    src = [int(s) % ndim for s in (src if isinstance(src, (list, tuple)) else [src])]
    dst = [int(d) % ndim for d in (dst if isinstance(dst, (list, tuple)) else [dst])]
    rest = [d for d in range(ndim) if d not in src]
    placed: list = [None] * ndim
    for s_, d_ in zip(src, dst):
        placed[d_] = s_
    it = iter(rest)
    return [o if o is not None else next(it) for o in placed]


def getitem(call: Call) -> Outcome:
    """Basic indexing: batch/channel selections keep the map, spatial slices crop it (a unit
    next to a crop reaches only what the crop left)."""
    f = call.first
    src = call.first_tensor
    index = call.args[1]
    index = index if isinstance(index, tuple) else (index,)
    if any(i is None or isinstance(i, (torch.Tensor, list, bool)) for i in index):
        raise NotGeometric("advanced indexing")
    pos = positions.of(f)
    if pos is not None and all(isinstance(i, slice) or i is Ellipsis for i in index):
        # a crop of a map taken apart (Swin's `x[:, :H, :W]` after its windows): each
        # element left keeps its position; a view may put them back (rules.positions)
        moved = positions.sliced(pos, index)
        if moved is not None:
            back = positions.restored(moved, tuple(call.out_tensor.shape))
            return Outcome(back if back is not None else positions.wrap(f, moved))
    if f.dims is None:
        kept = _tokens_sliced(f, index, src)
        if kept is None and whole_global(f):
            # one token of tokens that all read everything (ViT's class token): a vector
            # whose every element mixed every position
            return Outcome(Field(f.axes, None, GLOBAL, f.note, MIXED))
        return Outcome(f if kept is None else kept)
    ndim = src.dim()
    if index.count(Ellipsis) > 1:
        raise NotGeometric("several ellipses")
    if Ellipsis in index:
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (ndim - len(index) + 1) + index[at + 1 :]
    index = index + (slice(None),) * (ndim - len(index))
    pos = positive(f.dims, ndim)
    axes = list(f.axes)
    cropped = False
    for d, item in enumerate(index):
        if d in pos:
            if not isinstance(item, slice):
                raise NotGeometric("an integer index removes a spatial dim")
            i = pos.index(d)
            a = f.axes[i]
            start, stop, step = item.indices(a.size)
            if step < 1:
                raise NotGeometric("negative step")
            size = max(0, -(-(stop - start) // step))
            if size < 1:
                raise NotGeometric("empty slice of the map")
            cropped = cropped or (start, size, step) != (0, a.size, 1)
            # a crop is a window of 1 with stride `step` and padding -start
            axes[i] = g.resample(a, size, step, 1, lambda o, s=start, t=step: (o * t + s,) * 2)
    if any(not isinstance(item, slice) for d, item in enumerate(index) if d > min(pos)):
        raise NotGeometric("an integer index after the spatial dims")
    note = f.note or (
        "getitem: a crop, units next to it reach only what is left" if cropped else ""
    )
    return Outcome(Field(tuple(axes), f.dims, f.status, note))


def split(call: Call) -> Outcome:
    """Splitting channels: every piece keeps the field (along a spatial axis: UNKNOWN)."""
    f = call.first
    ndim = call.first_tensor.dim()
    dim = int(call.arg(1 if call.name == "unbind" else 2, "dim", 0)) % ndim
    pos = positions.of(f)
    if pos is not None:  # q, k, v unbound from one tensor: the same positions in each
        outs = [t for t in call.out if isinstance(t, torch.Tensor)]
        if (
            outs
            and len({tuple(t.shape) for t in outs}) == 1
            and positions.constant_along(pos, [dim])
        ):
            moved = (
                positions.picked(pos, dim)
                if call.name == "unbind"
                else positions.resized(pos, [dim], outs[0].shape)
            )
            return Outcome(positions.wrap(f, moved))
        return Outcome(layout_lost(f))
    p = f.packed
    if f.dims is None and p is not None and p[0] in ("flat", "tokens"):
        flat = p[2] % ndim
        if dim == flat:
            return Outcome(layout_lost(f))  # tokens split apart
        # q, k and v unbound from (3, B, h, N, d): each keeps its tokens; a dim removed
        # behind the token dim moves the token dim's place counted from the end
        moved = p[2] + 1 if call.name == "unbind" and dim > flat else p[2]
        return Outcome(Field(f.axes, None, f.status, f.note, (p[0], p[1], moved) + p[3:]))
    if p is not None and p[0] != "mixed":
        f = Field(f.axes, f.dims, f.status, f.note)  # any other layout is lost
    if f.dims is not None and dim in positive(f.dims, ndim):
        raise NotGeometric("split along a spatial axis")
    if call.name == "unbind" and f.dims is not None and dim > min(positive(f.dims, ndim)):
        raise NotGeometric("unbind after the spatial dims")
    return Outcome(f)


def repeat(call: Call) -> Outcome:
    """Tiling channels keeps the map; tiling a spatial dim is not geometric."""
    f = call.first
    out = call.out_tensor
    if f.dims is not None and any(out.shape[d] != call.first_tensor.shape[d] for d in f.dims):
        raise NotGeometric("repeat tiles the spatial map")
    return Outcome(f)


def _dims_arg(value, ndim: int) -> list[int]:
    value = value if isinstance(value, (list, tuple)) else [value]
    return [int(d) % ndim for d in value]


def flip(call: Call) -> Outcome:
    """Reversing a spatial dim reverses its units: unit o sees what unit n-1-o saw."""
    f = call.first
    ndim = call.first_tensor.dim()
    if call.name == "flip":  # x.flip(-2, -1) or flip(x, dims=(-2, -1))
        given = call.kwargs.get("dims", call.args[1] if len(call.args) == 2 else call.args[1:])
        dims = _dims_arg(given, ndim)
    else:
        dims = [1 % ndim] if call.name == "fliplr" else [0]
    if f.dims is None:
        if dims:
            raise NotGeometric("flip of a flattened map")
        return Outcome(f)
    pos = positive(f.dims, ndim)
    axes = tuple(g.flip(a) if p in dims else a for a, p in zip(f.axes, pos))
    return Outcome(Field(axes, f.dims, f.status, f.note))


def roll(call: Call) -> Outcome:
    """torch.roll along spatial dims: units wrap around (the field moves with them)."""
    f = call.first
    ndim = call.first_tensor.dim()
    shifts, dims = call.arg(1, "shifts"), call.arg(2, "dims")
    if dims is None or (isinstance(dims, (list, tuple)) and not dims):
        raise NotGeometric("roll of the flattened tensor")
    shifts = list(shifts) if isinstance(shifts, (list, tuple)) else [shifts]
    dims = _dims_arg(dims, ndim)
    if f.dims is None:
        return Outcome(f)
    pos = positive(f.dims, ndim)
    axes = list(f.axes)
    for s, d in zip(shifts, dims):
        if d in pos:
            i = pos.index(d)
            axes[i] = g.roll(axes[i], int(s))
    return Outcome(Field(tuple(axes), f.dims, f.status, f.note))


# The catalogue: the ops each rule answers for. Registered by calls rather than
# decorators so that mutation testing (mutmut leaves decorated functions alone)
# reaches the rules' bodies.
rule(
    "view",
    "reshape",
    "flatten",
    "view_as",
    "reshape_as",
    "squeeze",
    "unsqueeze",
    "unflatten",
    "ravel",
    keeps_layout=True,
)(reshape)
rule("permute", "transpose", "movedim", "get_T", "get_mT", "t", keeps_layout=True)(permute)
rule("getitem")(getitem)
rule("chunk", "split", "unbind", "tensor_split", "split_with_sizes", keeps_layout=True)(split)
rule("repeat")(repeat)
rule("flip", "fliplr", "flipud")(flip)
rule("roll")(roll)
