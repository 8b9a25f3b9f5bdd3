"""Where each position of a map went when views and permutes took it apart: a window
partition (Swin: (B, H, W, C) viewed as windows of ws x ws tokens), attention within each
window, and the reverse view that puts the map back.

A field whose map was reshaped beyond what `shape.reshape` can describe per axis is shown as a
whole (global), as before; next to it travels a `Positions`: an integer tensor the shape of
the op's output holding, for each element, the position of the original map it carries
(row-major over that map's axes; -1: none), replayed through every later view and permute.
Ops that work on each position alone (a Linear or LayerNorm over a dim along which the
position does not change) keep it. Attention along a dim widens each position to the box of
the positions in its row (its window). A view that puts every position back in its place
restores the map: each axis's units then read the box of their window, an upper bound per
axis (approx), or the map's own field where nothing widened it.
"""

from __future__ import annotations

import contextlib
import math
from typing import Optional

import torch

from .. import geometry as g
from ..geometry import APPROX, Field

MAX_ELEMENTS = 1 << 22  # beyond this many elements the layout is not tracked (32 MB of int64)
KIND = "positions"


class Positions:
    """A map's positions as laid out in a tensor (see the module docstring). Compared by
    identity: Fields holding the same layout hold the same object."""

    def __init__(self, idx: torch.Tensor, before: Field, box: Optional[torch.Tensor] = None):
        self.idx = idx  # int64, CPU, the op's output shape
        self.before = before  # the map's field before it was taken apart
        # per position and axis, the first and last input pixel it reads (None: what the
        # position of `before` reads)
        self.box = box

    def moved(self, idx: torch.Tensor) -> "Positions":
        return Positions(idx, self.before, self.box)


@contextlib.contextmanager
def _plain():
    """Real CPU tensors inside a rule: no fake-tensor mode, no torch-function mode."""
    from torch._subclasses.fake_tensor import unset_fake_temporarily

    with unset_fake_temporarily(), torch._C.DisableTorchFunction():
        yield


def of(f: Field) -> Optional[Positions]:
    p = f.packed
    return p[1] if p is not None and p[0] == KIND else None


def wrap(f: Field, pos: Positions) -> Field:
    """`f` (shown as a whole) carrying the layout `pos`."""
    return Field(f.axes, None, f.status, f.note, (KIND, pos))


def _layout(before: Field, shape: tuple[int, ...]) -> Optional[torch.Tensor]:
    """Each element's position for a tensor of `shape` holding `before`'s map in its dims."""
    sizes = [a.size for a in before.axes]
    ndim = len(shape)
    if before.dims is None or any(-d > ndim for d in before.dims):
        return None
    if [shape[d] for d in before.dims] != sizes:
        return None
    grid = torch.arange(math.prod(sizes)).view(sizes)
    view = [1] * ndim
    order = sorted(range(len(sizes)), key=lambda i: before.dims[i] % ndim)
    grid = grid.permute(order)  # the axes in the order of their tensor dims
    for i in order:
        view[before.dims[i] % ndim] = sizes[i]
    return grid.reshape(view).expand(shape)


def start(before: Field, src_shape, out_shape) -> Optional[Positions]:
    """The layout after a reshape of a tensor holding `before`'s map (None: too large)."""
    if math.prod(src_shape) > MAX_ELEMENTS:
        return None
    with _plain():
        idx = _layout(before, tuple(src_shape))
        if idx is None:
            return None
        return Positions(idx.reshape(tuple(out_shape)), before)


def reshaped(pos: Positions, out_shape) -> Positions:
    out_shape = tuple(out_shape)
    with _plain():
        idx = pos.idx
        # trailing dims broadcast (features) that the view leaves alone: reshape the rest,
        # so a layout never grows to the features' size by a copy
        k = 0
        while (
            k < min(idx.dim(), len(out_shape))
            and idx.shape[-1 - k] == out_shape[-1 - k]
            and idx.stride(-1 - k) == 0
        ):
            k += 1
        lead = out_shape[: len(out_shape) - k]
        if k and math.prod(idx.shape[: idx.dim() - k]) == math.prod(lead):
            head = idx[(...,) + (slice(0, 1),) * k]
            return pos.moved(head.reshape(lead + (1,) * k).expand(out_shape))
        return pos.moved(idx.reshape(out_shape))


def sliced(pos: Positions, index: tuple) -> Optional[Positions]:
    """The layout after basic slicing (slices and an ellipsis only); None if it fails."""
    with _plain():
        try:
            return pos.moved(pos.idx[index])
        except (IndexError, RuntimeError, TypeError):
            return None


def permuted(pos: Positions, order: list[int]) -> Positions:
    with _plain():
        return pos.moved(pos.idx.permute(order))


def lean(idx: torch.Tensor) -> torch.Tensor:
    """`idx` with every broadcast dim (stride 0: a Linear's features) narrowed to one
    element: the same positions in the same places, a fraction of the elements."""
    for d in range(idx.dim()):
        if idx.stride(d) == 0 and idx.shape[d] > 1:
            idx = idx.narrow(d, 0, 1)
    return idx


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """torch.equal of two layouts of one shape, on their lean forms where those agree."""
    la, lb = lean(a), lean(b)
    if la.shape == lb.shape:
        return torch.equal(la, lb)
    return torch.equal(a, b)


def constant_along(pos: Positions, dims) -> bool:
    """Whether every element along `dims` holds the same position (a per-position op)."""
    with _plain():
        idx = pos.idx
        for d in dims:
            d = int(d) % idx.dim()
            if idx.stride(d) == 0 or idx.shape[d] <= 1:
                continue  # broadcast along d: one position, by construction
            small = lean(idx)
            if not bool((small == small.narrow(d, 0, 1)).all()):
                return False
        return True


def restored(pos: Positions, out_shape) -> Optional[Field]:
    """The map's field if the layout puts every position back in place as a map: each axis
    along one dim of the output, in order (the dims it came from, or others: a view that
    moved the map, Swin's one-window reverse); else None."""
    out_shape = tuple(out_shape)
    before = pos.before
    with _plain():
        expected = _layout(before, out_shape)
        if expected is not None and expected.shape == pos.idx.shape and _same(expected, pos.idx):
            return _per_position(pos)
        dims = _map_dims(pos, out_shape)
        if dims is None or dims == before.dims:
            return None
        moved = Field(before.axes, dims, before.status, before.note)
        expected = _layout(moved, out_shape)
        if expected is None or expected.shape != pos.idx.shape or not _same(expected, pos.idx):
            return None
    f = _per_position(pos)
    return Field(f.axes, dims, f.status, f.note)


def _map_dims(pos: Positions, out_shape: tuple[int, ...]) -> Optional[tuple[int, ...]]:
    """The dims (negative, per axis of the map) along which a layout steps through the
    map's positions as a map would: one dim per axis, stepping by that axis's row-major
    stride from the first element. None where no such dims exist."""
    sizes = [a.size for a in pos.before.axes]
    if not sizes or len(out_shape) != pos.idx.dim():
        return None
    strides = [math.prod(sizes[i + 1 :]) for i in range(len(sizes))]
    idx = lean(pos.idx)
    origin = idx[(0,) * idx.dim()]
    if int(origin) != 0:
        return None
    dims: list[Optional[int]] = [None] * len(sizes)
    for d in range(idx.dim()):
        if idx.shape[d] < 2:
            continue
        step = int(idx[tuple(1 if k == d else 0 for k in range(idx.dim()))]) - int(origin)
        hits = [i for i, st in enumerate(strides) if st == step and idx.shape[d] == sizes[i]]
        if len(hits) != 1 or dims[hits[0]] is not None:
            return None  # a dim the map does not step along (the caller's check says no)
        dims[hits[0]] = d - idx.dim()
    if any(d is None for d in dims):
        return None
    return tuple(dims)


def held(pos: Positions) -> Optional[Field]:
    """The field of each position of the map where the layout holds every position (and
    nothing else: no -1), in whatever order (Swin's windows: (windows·B, tokens, C)): the
    element holding position p sees what unit p of this field sees. None otherwise."""
    sizes = [a.size for a in pos.before.axes]
    if pos.before.dims is None or not sizes:
        return None
    with _plain():
        idx = lean(pos.idx).reshape(-1)
        if idx.numel() == 0 or bool((idx < 0).any()):
            return None
        count = math.prod(sizes)
        if int(idx.max()) >= count:
            return None
        present = torch.zeros(count, dtype=torch.bool)
        present[idx] = True
        if not bool(present.all()):
            return None
    return _per_position(pos)


def _per_position(pos: Positions) -> Field:
    """Per axis, unit o reads the box of every position at o (its window after attention,
    an upper bound: approx), or the map's own field where nothing widened it."""
    before = pos.before
    if pos.box is None:
        return before
    with _plain():
        sizes = [a.size for a in before.axes]
        box = pos.box.view(*sizes, len(sizes), 2)
        axes = []
        for i, a in enumerate(before.axes):
            along = box[..., i, :].movedim(i, 0).reshape(sizes[i], -1, 2)
            lo = along[..., 0].amin(1).tolist()
            hi = along[..., 1].amax(1).tolist()
            seen = tuple((x, y) if x <= y else None for x, y in zip(lo, hi))
            axes.append(g.spans(a, seen))
    status = APPROX if before.status == "exact" else before.status
    note = "attention within windows: each unit reads its window (the box shown per axis)"
    return Field(tuple(axes), before.dims, status, before.note or note)


NONE = 1 << 40  # an empty span's first pixel (its last is -NONE): reads nothing


def _pixels(before: Field) -> torch.Tensor:
    """Per position of `before`'s map (row-major) and axis, the first and last input pixel
    it reads: P x n x 2 (an empty span: (NONE, -NONE))."""
    sizes = tuple(a.size for a in before.axes)
    coords = torch.stack(torch.unravel_index(torch.arange(math.prod(sizes)), sizes), -1)
    per_axis = []
    for i, a in enumerate(before.axes):
        spans = torch.tensor([s if s is not None else (NONE, -NONE) for s in a.seen])
        per_axis.append(spans[coords[:, i]])  # P x 2
    return torch.stack(per_axis, 1)


def _alike(a: Field, b: Field) -> bool:
    return a is b or a == b


def merged(layouts: list[Positions], out_shape) -> Optional[Positions]:
    """The layout of an element-wise op (a broadcast, an add) on tensors laid out alike:
    every element, broadcast to `out_shape`, holds the same position of the same map in
    each input (and nothing widened one more than another). None otherwise."""
    first = layouts[0]
    with _plain():
        try:
            idx = [p.idx.expand(tuple(out_shape)) for p in layouts]
        except RuntimeError:
            return None
        for p, i in zip(layouts[1:], idx[1:]):
            if p.box is not first.box or not _alike(p.before, first.before):
                return None
            if not _same(i, idx[0]):
                return None
    return first.moved(idx[0])


def padded(pos: Positions, widths, ndim: int) -> Optional[Positions]:
    """The layout after F.pad with a constant: the new elements hold no position (-1)."""
    with _plain():
        try:
            return pos.moved(torch.nn.functional.pad(pos.idx, list(widths), value=-1))
        except (RuntimeError, TypeError, ValueError):
            return None


def of_query(term: Positions, q: Positions) -> bool:
    """Whether every element (…, i, j) of `term` holds query i's position of `q` (laid out
    (…, Nq, d)) or none: a term computed from each query alone (HaloNet's relative
    position logits, q against learned offsets)."""
    if term.box is not q.box or not _alike(term.before, q.before):
        return False
    with _plain():
        qi = q.idx[..., :1]  # (…, Nq, 1)
        try:
            t = term.idx
            own = qi.expand(t.shape)
        except RuntimeError:
            return False
        return bool(((t == own) | (t < 0)).all())


def resized(pos: Positions, dims, out_shape) -> Positions:
    """The layout after an op that changes the size of dims along which positions are
    constant (a Linear over the features): each position spread over the new size."""
    with _plain():
        idx = pos.idx
        for d in dims:
            idx = idx.narrow(int(d) % idx.dim(), 0, 1)
        return pos.moved(idx.expand(tuple(out_shape)))


def picked(pos: Positions, dim: int) -> Positions:
    """The layout of one slice along `dim` (unbind), where positions are constant along it."""
    with _plain():
        return pos.moved(pos.idx.select(dim, 0))


def attended(q: Positions, k: Positions) -> Optional[Positions]:
    """The layout after attention of queries `q` over keys `k` along dim -2 (features along
    -1): each query position reads every key position of its row. The keys may lie on
    another map (HaloNet's keys: the windows of an unfold) and hold -1 (padding: nothing);
    boxes are kept in input pixels."""
    with _plain():
        qi, ki = q.idx[..., 0], k.idx[..., 0]
        if qi.shape[:-1] != ki.shape[:-1] or bool((qi < 0).any()):
            return None
        before = q.before
        if len(k.before.axes) != len(before.axes):
            return None
        n = len(before.axes)
        base = q.box if q.box is not None else _pixels(before)  # P x n x 2
        keys = k.box if k.box is not None else _pixels(k.before)
        flat_k = ki.reshape(-1)
        kb = keys[flat_k.clamp(min=0)]
        empty = torch.tensor([NONE, -NONE]).expand_as(kb)
        kb = torch.where((flat_k < 0)[:, None, None], empty, kb).view(*ki.shape, n, 2)
        row_lo = kb[..., 0].amin(-2)  # rows x n
        row_hi = kb[..., 1].amax(-2)
        rows = qi.reshape(-1, qi.shape[-1])
        lo = row_lo.reshape(-1, n).repeat_interleave(rows.shape[1], 0)
        hi = row_hi.reshape(-1, n).repeat_interleave(rows.shape[1], 0)
        flat = rows.reshape(-1)
        box = base.clone()
        box[..., 0] = box[..., 0].scatter_reduce(
            0, flat[:, None].expand(-1, n), lo, "amin", include_self=True
        )
        box[..., 1] = box[..., 1].scatter_reduce(
            0, flat[:, None].expand(-1, n), hi, "amax", include_self=True
        )
        return Positions(q.idx, before, box)


def blocks(pos: Positions, out_shape) -> Optional[tuple[Field, tuple[int, ...]]]:
    """A space-to-depth (TResNet's stem: view, permute, view; Swin's PatchMerging, channels
    last): `out_shape` a map, (B, C, *map) or (B, *map, C), each axis shrunk by an integer
    factor r, and the other dims at each place holding exactly the r×r block under it,
    every pixel of it. Its field is then a window of k = r, s = r (what F.pixel_unshuffle
    gives); returns (field, r per axis), or None where the layout is anything else (a
    permuted block, a gap, a position twice)."""
    before = pos.before
    n = len(before.axes)
    if pos.box is not None or before.dims is None or len(out_shape) != n + 2:
        return None  # only a map as convs and Linears take it: (B, C, *map) or (B, *map, C)
    for trail in (0, 1):
        found = _blocks_at(pos, out_shape, trail)
        if found is not None:
            return found
    return None


def _blocks_at(pos: Positions, out_shape, trail: int) -> Optional[tuple[Field, tuple[int, ...]]]:
    """`blocks` with the map's axes in the n dims before the last `trail` dims."""
    before = pos.before
    n = len(before.axes)
    sizes = [a.size for a in before.axes]
    ndim = len(out_shape)
    where = list(range(ndim - n - trail, ndim - trail))
    small = [out_shape[d] for d in where]
    if any(s < 1 or m % s for s, m in zip(small, sizes)):
        return None
    r = [m // s for s, m in zip(small, sizes)]
    if all(k == 1 for k in r):
        return None  # nothing gathered: `restored` answers for a map put back as it was
    with _plain():
        idx = lean(pos.idx)
        if any(idx.shape[d] != out_shape[d] for d in where):
            return None
        if bool((idx < 0).any()):
            return None
        # one row per output place: every position the other dims hold there
        rows = idx.movedim(tuple(where), tuple(range(n))).reshape(math.prod(small), -1)
        coords = torch.stack(torch.unravel_index(rows, tuple(sizes)), -1)  # P x E x n
        place = torch.stack(
            torch.unravel_index(torch.arange(math.prod(small)), tuple(small)), -1
        )  # P x n
        lo = place * torch.tensor(r)
        if not torch.equal(coords.amin(1), lo) or not torch.equal(
            coords.amax(1), lo + (torch.tensor(r) - 1)
        ):
            return None
        distinct = rows.sort(1).values
        count = (distinct[:, 1:] != distinct[:, :-1]).sum(1) + 1
        if not bool((count == math.prod(r)).all()):
            return None  # a hole in the block: not every pixel of it is there
    axes = tuple(g.window(a, k, k) for a, k in zip(before.axes, r))
    dims = tuple(d - ndim for d in where)
    return Field(axes, dims, before.status, before.note), tuple(r)
