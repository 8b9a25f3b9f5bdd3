"""Ops that mix positions ("attention-like"): statistics and normalisations, softmax and
friends along a dim, reductions, Linear / matmul / einsum over a dim, attention.

Mixing is a per-axis fact: an op along W makes every unit see the whole map along W and
leaves H as it was ("global along W, 5 along H").
"""

from __future__ import annotations

from typing import Optional

import torch

from .. import geometry as g
from ..geometry import GLOBAL, UNKNOWN, Field, NotGeometric
from . import masked as masked_attention
from . import positions, scores
from .dispatch import (
    MIXED,
    Call,
    Outcome,
    as_tokens,
    layout_lost,
    mixed,
    plus_arguments,
    positive,
    rule,
    with_axes,
)


def _spatial_hits(f: Field, ndim: int, dims) -> set[int]:
    """Indices of f's axes that lie in the tensor dims `dims`."""
    if f.dims is None:
        return set()
    pos = positive(f.dims, ndim)
    return {i for i, p in enumerate(pos) if p in {int(d) % ndim for d in dims}}


def _along(call: Call, dims, note: str) -> Outcome:
    """The op mixes along tensor dims `dims`: the spatial axes among them become global."""
    f = call.first
    if f.dims is None:
        if _tokens_apart(f, call.first_tensor.dim(), dims):
            # along channels of (B, N, C) tokens: each token on its own (along an unfold's
            # window entries: each window on its own, the entries mixed)
            return Outcome(as_tokens(f))
        if (
            f.packed is not None
            and f.packed[0] == scores.KIND
            and all(int(d) % call.first_tensor.dim() == call.first_tensor.dim() - 1 for d in dims)
        ):
            return Outcome(f)  # softmax over the keys of each query: read at `@ v`
        return Outcome(_flat(f))
    hit = _spatial_hits(f, call.first_tensor.dim(), dims)
    if not hit:
        return Outcome(f)
    return Outcome(mixed(f, f"{call.name}: {note}", hit))


def _tokens_apart(f: Field, ndim: int, dims) -> bool:
    """Whether `f` is a map flattened into one dim of tokens (a patch embedding's (B, N, C))
    and the dims an op mixes leave that dim alone: the op is per token, the layout lives on."""
    pos = positions.of(f)
    if pos is not None:
        return positions.constant_along(pos, dims)
    f = as_tokens(f)
    if f.packed is None or f.packed[0] not in ("flat", "tokens") or ndim < 1:
        return False
    flat = f.packed[2] % ndim
    return all(int(d) % ndim != flat for d in dims)


def _resized(call: Call, f: Field, dims) -> Field:
    """`f` after a per-position op that changed the size of `dims` (a Linear's features)."""
    pos = positions.of(f)
    if pos is None:
        return f
    out = tuple(call.out_tensor.shape)
    return positions.wrap(f, positions.resized(pos, dims, out))


def _flat(f: Field) -> Field:
    """A flattened field without its layout: the op mixed or moved its elements. A vector
    whose every element already mixed every position stays so (no op undoes that)."""
    if f.packed is None or f.packed == MIXED:
        return f
    return layout_lost(f)


def _all_dims(call: Call) -> range:
    return range(call.first_tensor.dim())


def batch_norm(call: Call) -> Outcome:
    """F.batch_norm(input, running_mean, running_var, weight, bias, training, ...): running
    statistics (eval) are per channel; batch statistics cover the whole map."""
    training = call.arg(5, "training", False) or call.arg(1, "running_mean") is None
    return _stats(call, bool(training))


def torch_batch_norm(call: Call) -> Outcome:
    """torch.batch_norm(input, weight, bias, running_mean, running_var, training, ...)."""
    training = call.arg(5, "training", False) or call.arg(3, "running_mean") is None
    return _stats(call, bool(training))


def instance_norm(call: Call) -> Outcome:
    """F.instance_norm(input, running_mean, running_var, weight, bias, use_input_stats)."""
    use_input = call.arg(5, "use_input_stats", True) or call.arg(1, "running_mean") is None
    return _stats(call, bool(use_input))


def torch_instance_norm(call: Call) -> Outcome:
    """torch.instance_norm(input, weight, bias, running_mean, running_var, use_input_stats)."""
    use_input = call.arg(5, "use_input_stats", True) or call.arg(3, "running_mean") is None
    return _stats(call, bool(use_input))


def group_norm(call: Call) -> Outcome:
    """GroupNorm's statistics cover each group's channels *and* the whole map."""
    return _stats(call, True)


def _stats(call: Call, over_map: bool) -> Outcome:
    if not over_map:  # running statistics: each element is scaled and shifted on its own
        return Outcome(call.first)
    return _along(call, _all_dims(call), "statistics are taken over the whole map")


def layer_norm(call: Call) -> Outcome:
    """Normalised over the trailing dims `normalized_shape`: global along the spatial axes
    among them (over channels only, channels-last, it is per position)."""
    n = len(tuple(call.arg(1, "normalized_shape")))  # F.layer_norm takes a sequence only
    ndim = call.first_tensor.dim()
    return _along(call, range(ndim - n, ndim), "normalised over spatial dims")


def along_dim(call: Call) -> Outcome:
    """Ops along one dim: per position when it is a channel dim, else global along it."""
    default = 1 if call.name == "normalize" else None
    dim = call.arg(2 if call.name == "normalize" else 1, "dim", default)
    if dim is None:
        raise NotGeometric("implicit softmax dim")
    return _along(call, [dim], "computed along a spatial dim")


def cumulative(call: Call) -> Outcome:
    """A running sum along a spatial dim: unit o sees units 0..o of that dim."""
    f = call.first
    ndim = call.first_tensor.dim()
    hit = _spatial_hits(f, ndim, [call.arg(1, "dim")])
    if f.dims is None:
        return Outcome(_flat(f))
    axes = tuple(
        g.gather(a, [list(range(o + 1)) for o in range(a.size)]) if i in hit else a
        for i, a in enumerate(f.axes)
    )
    return Outcome(with_axes(f, axes, note=f"{call.name}: unit o sees units 0..o"))


def glu(call: Call) -> Outcome:
    """F.glu halves `dim` (default -1): unit o reads o and o + n/2 along it."""
    f = call.first
    ndim = call.first_tensor.dim()
    dim = call.arg(1, "dim", -1)
    hit = _spatial_hits(f, ndim, [dim])
    if f.dims is None:
        return Outcome(_flat(f))
    axes = tuple(
        g.gather(a, [[o, o + a.size // 2] for o in range(a.size // 2)]) if i in hit else a
        for i, a in enumerate(f.axes)
    )
    return Outcome(with_axes(f, axes, note="glu: unit o reads units o and o + n/2"))


_REDUCTIONS = (
    "mean",
    "sum",
    "amax",
    "amin",
    "max",
    "min",
    "std",
    "var",
    "prod",
    "norm",
    "logsumexp",
    "nansum",
    "nanmean",
    "median",
    "any",
    "all",
    "argmax",
    "argmin",
    "count_nonzero",
    "std_mean",
    "var_mean",
)


# where keepdim sits when given by position: after p and dim (norm), after dim and unbiased
# (std, var); elsewhere after dim
_KEEPDIM_AT = {"norm": 3, "std": 3, "var": 3, "std_mean": 3, "var_mean": 3}


def reduction(call: Call) -> Outcome:
    """Reducing over spatial dims pools them into one unit (an exact window as large as the
    map); with keepdim the map lives on, one unit wide along them. `max(a, b)` with two
    tensors is element-wise."""
    from .elementwise import pointwise

    if (
        len(call.inputs) > 1
        or isinstance(call.arg(1, "dim"), torch.Tensor)
        or isinstance(call.kwargs.get("other"), torch.Tensor)
    ):
        return pointwise(call)
    f = call.first
    ndim = call.first_tensor.dim()
    dim = call.arg(2 if call.name == "norm" else 1, "dim")
    if isinstance(dim, bool):  # std(x, unbiased) / var(x, unbiased): no dim, all reduced
        dim = None
    at = _KEEPDIM_AT.get(call.name, 2)
    keep = bool(
        call.kwargs.get(
            "keepdim",
            call.args[at] if len(call.args) > at and isinstance(call.args[at], bool) else False,
        )
    )
    if f.dims is None:
        return Outcome(_tokens_reduced(f, ndim, dim, keep))
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        reduced = set(range(ndim))
    else:
        reduced = {int(d) % ndim for d in (dim if isinstance(dim, (list, tuple)) else [dim])}
    pos = positive(f.dims, ndim)
    hit = reduced & set(pos)
    if not hit:
        if keep or all(r < min(pos) for r in reduced):
            return Outcome(f)
        new = [p - sum(1 for r in reduced if r < p) for p in pos]
        out_ndim = ndim - len(reduced)
        return Outcome(Field(f.axes, tuple(p - out_ndim for p in new), f.status, f.note))
    if f.status == UNKNOWN:  # the map's own dims reduced: kept one unit wide, or gone
        return Outcome(Field((), f.dims if keep else None, UNKNOWN, f.note))
    axes = tuple(g.collapse(a) if p in hit else a for a, p in zip(f.axes, pos))
    if keep:
        return Outcome(Field(axes, f.dims, f.status, f.note))
    if hit == set(pos):
        return Outcome(Field(axes, None, f.status, f.note))
    # part of the map is reduced away: the rest is shown as a whole, but a later unsqueeze
    # that puts the dims back restores the per-axis field
    kept = Field(axes, f.dims, f.status, f.note)
    flat = mixed(kept, f"{call.name}: part of the map is reduced away", keep_dims=False)
    out_shape = tuple(call.out_tensor.shape)
    return Outcome(
        Field(
            flat.axes,
            None,
            flat.status,
            flat.note,
            packed=("reduced", out_shape, tuple(sorted(hit)), kept, ndim),
        )
    )


def _tokens_reduced(f: Field, ndim: int, dim, keep: bool) -> Field:
    """A flattened map reduced over dims other than its token dim (the channels of (B, N, C)
    tokens, the window entries of F.unfold's (B, C·k·k, L): a box filter): each token keeps
    its field, the token dim moves where dims behind it are removed. Else the layout is lost."""
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return _flat(f)
    reduced = {int(d) % ndim for d in (dim if isinstance(dim, (list, tuple)) else [dim])}
    if positions.of(f) is not None or not _tokens_apart(f, ndim, reduced):
        return _flat(f)
    t = as_tokens(f)
    kind, tail, flat_dim, *rest = t.packed
    if not keep:
        flat_dim += sum(1 for r in reduced if r > flat_dim % ndim)
    return Field(t.axes, None, t.status, t.note, (kind, tail, flat_dim, *rest))


def linear(call: Call) -> Outcome:
    """Linear mixes its last dim: global along that axis when it is spatial (a token-mixing
    Linear along W), else per position. A weight computed from the input widens every unit."""
    f = call.first
    if call.name == "bilinear" and _per_position_pair(call):
        from .elementwise import pointwise

        return pointwise(call)  # x1ᵀ W x2 at each position: both fields, position by position
    if f.dims is None and _tokens_apart(f, call.first_tensor.dim(), [-1]) and len(call.inputs) == 1:
        return Outcome(_resized(call, as_tokens(f), [-1]))  # per token: channels mixed
    if f.dims is None:  # over a flattened map: every element mixes every position
        flat = (
            mixed(f, f"{call.name}: mixes every position of the map", keep_dims=False, really=True)
            if f.status == GLOBAL
            else f
        )
        return Outcome(plus_arguments(call, flat))
    return Outcome(plus_arguments(call, _contract(call, f, -1)))


def _per_position_pair(call: Call) -> bool:
    """F.bilinear(x1, x2, weight) whose two inputs alone carry fields, both with their maps
    in the same dims and none in the last (contracted) dim."""
    x1, x2 = call.arg(0, "input1"), call.arg(1, "input2")
    if len(call.inputs) != 2 or not any(t is x1 for t, _ in call.inputs):
        return False
    if not any(t is x2 for t, _ in call.inputs):
        return False
    fields = [f for _, f in call.inputs]
    ndim = call.first_tensor.dim()
    return all(
        f.status != UNKNOWN
        and f.dims is not None
        and f.dims == fields[0].dims
        and (ndim - 1) not in positive(f.dims, ndim)
        for f in fields
    )


def _summed_into(a: g.Axis, n: int) -> g.Axis:
    """Axis `a` summed away into `n` new units, each reading all of it: one unit is the
    whole map as one window; several are that window broadcast (global along the axis)."""
    return g.broadcast(g.collapse(a), n) if n > 1 else g.collapse(a)


def _contract(call: Call, f: Field, dim: int) -> Field:
    """The field after tensor dim `dim` (of the input) is contracted with constant weights
    and replaced by a dim of the output's size at the same place."""
    ndim = call.first_tensor.dim()
    out = call.out_tensor
    hit = _spatial_hits(f, ndim, [dim])
    if not hit:
        return f
    if out.dim() != ndim:
        raise NotGeometric(f"{call.name} changes the number of dims")
    i = hit.pop()
    n = out.shape[f.dims[i]]
    a = _summed_into(f.axes[i], n)
    axes = tuple(a if j == i else b for j, b in enumerate(f.axes))
    base = Field(f.axes, f.dims, f.status, f.note)
    return (
        mixed(base, f"{call.name}: mixes every position along the axis", {i})
        if n == f.axes[i].size
        else Field(axes, f.dims, f.status, f"{call.name}: mixes every position along the axis")
    )


def matmul(call: Call) -> Outcome:
    """x @ W with constant W contracts x's last dim; W @ x its second-to-last: global along
    that axis if it is spatial. A product of two maps (attention's q·kᵀ) mixes everything."""
    if len(call.inputs) == 1:
        f = call.first
        if f.status == UNKNOWN:
            return Outcome(f)
        # by position or keyword: torch.matmul(input, other), torch.mm(input, mat2)
        second = {"mm": "mat2", "bmm": "mat2"}.get(call.name, "other")
        right = call.arg(1, second) is call.first_tensor
        unfolded = f.packed is not None and f.packed[0] == "unfold"
        if f.dims is None and unfolded and right:
            # weight @ F.unfold(x): a convolution in disguise, every window's entries mixed
            return Outcome(Field(f.axes, None, f.status, f.note, packed=("cols",) + f.packed[1:]))
        if f.dims is None and _tokens_apart(f, call.first_tensor.dim(), [-2 if right else -1]):
            # W @ x over channels of flattened positions: a 1x1 conv
            return Outcome(_resized(call, as_tokens(f), [-2 if right else -1]))
        if f.dims is None:
            return Outcome(_flat(f))
        # W @ x contracts x's second-to-last dim; for a vector x, -2 and -1 (taken modulo
        # its one dim by _contract) are both that dim
        return Outcome(_contract(call, f, -2 if right else -1))
    by_hand = scores.product(call)  # attention written out over tokens
    if by_hand is not None:
        return Outcome(by_hand)
    return _everything(call, "a product across positions")


def products(call: Call) -> Outcome:
    """Batched products and sums of products: anything but a channel mix is taken as global.
    bmm with one map operand is a matmul (a 1x1 conv when it contracts channels); tensordot
    with one map operand is an einsum."""
    if call.name == "bmm" and len(call.inputs) == 1:
        return matmul(call)
    if call.name == "tensordot" and len(call.inputs) == 1:
        spelled = _tensordot_equation(call)
        if spelled is not None:
            return _einsum(call, *spelled)
    return _everything(call, "a product across positions")


def _tensordot_equation(call: Call):
    """tensordot(a, b, dims) as an einsum equation and its operands (None: not spelled)."""
    a, b = call.arg(0, "a"), call.arg(1, "b")
    dims = call.arg(2, "dims", 2)
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        return None
    if isinstance(dims, int):
        da, db = list(range(a.dim() - dims, a.dim())), list(range(dims))
    elif isinstance(dims, (list, tuple)) and len(dims) == 2:
        da, db = (
            ([dims[0]] if isinstance(dims[0], int) else list(dims[0])),
            ([dims[1]] if isinstance(dims[1], int) else list(dims[1])),
        )
    else:
        return None
    da, db = [d % a.dim() for d in da], [d % b.dim() for d in db]
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    sa = [next(letters) for _ in range(a.dim())]
    sb = [next(letters) for _ in range(b.dim())]
    for i, j in zip(da, db):
        sb[j] = sa[i]
    out = [c for i, c in enumerate(sa) if i not in da] + [
        c for j, c in enumerate(sb) if j not in db
    ]
    return f"{''.join(sa)},{''.join(sb)}->{''.join(out)}", (a, b)


def einsum(call: Call) -> Outcome:
    """einsum with one map operand: a spatial index kept in the output is per position; one
    that is summed away and replaced by a new output index mixes that axis (global along
    it). Two map operands (attention) mix everything."""
    # torch.einsum spells the sublist form as an equation before any mode sees the call:
    # the equation always comes first, the operands after it (or as one list)
    equation, operands = call.args[0], call.args[1:]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    return _einsum(call, equation, operands)


def _kept(call: Call, f: Field, spec: str, out_spec: str) -> tuple[int, ...] | None:
    """Where an operand's spatial indices land in the output, when each is kept (None: one is
    summed away)."""
    pos = positive(f.dims, len(spec))
    out_n = len(out_spec)
    if any(spec[p] not in out_spec for p in pos):
        return None
    return tuple(out_spec.index(spec[p]) - out_n for p in pos)


def _einsum(call: Call, equation: str, operands) -> Outcome:
    if "->" not in equation or "." in equation:
        return _everything(call, "a product across positions")
    if len(call.inputs) > 1:
        # several maps multiplied position by position (a per-position dot product): every
        # spatial index kept, each map's in the same output dims: the union of their fields
        ins, out_spec = equation.replace(" ", "").split("->")
        specs = ins.split(",")
        fields, where = [], set()
        for t, fi in call.inputs:
            at = [i for i, o in enumerate(operands) if o is t]
            if not at or fi.status == UNKNOWN or fi.dims is None:
                return _everything(call, "a product across positions")
            kept = _kept(call, fi, specs[at[0]], out_spec)
            if kept is None:
                return _everything(call, "a product across positions")
            fields.append(fi)
            where.add(kept)
        if len(where) != 1 or len({len(fi.axes) for fi in fields}) != 1:
            return _everything(call, "a product across positions")
        axes = tuple(g.union([fi.axes[i] for fi in fields]) for i in range(len(fields[0].axes)))
        status = "approx" if any(fi.status == "approx" for fi in fields) else fields[0].status
        if any(fi.status == GLOBAL for fi in fields):
            status = GLOBAL if all(a.mixed for a in axes) else fields[0].status
        note = next((fi.note for fi in fields if fi.note), "")
        return Outcome(Field(axes, where.pop(), status, note))
    f = call.first
    if f.status == UNKNOWN or f.dims is None:
        return Outcome(_flat(f))
    ins, out_spec = equation.replace(" ", "").split("->")
    mine = ins.split(",")[next(i for i, o in enumerate(operands) if o is call.first_tensor)]
    pos = positive(f.dims, len(mine))
    out_n = len(out_spec)
    fresh = [c for c in out_spec if c not in mine]
    axes, dims = list(f.axes), []
    summed = False
    for i, p in enumerate(pos):
        c = mine[p]
        if c in out_spec:  # kept (perhaps scaled per position by a constant): no mixing
            dims.append(out_spec.index(c) - out_n)
        elif fresh:
            new = fresh.pop(0)
            n = call.out_tensor.shape[out_spec.index(new)]
            axes[i] = _summed_into(axes[i], n)
            dims.append(out_spec.index(new) - out_n)
            summed = True
        else:
            raise NotGeometric("einsum sums a spatial index away")
    note = f"einsum: sums over a spatial index ({equation})" if summed else f.note
    return Outcome(Field(tuple(axes), tuple(dims), f.status, f.note or note))


def attention(call: Call) -> Outcome:
    """Attention lets every query read every key along the token dim. F.scaled_dot_product_
    attention on maps kept in dims (a 1-D sequence (B, L, C), axial attention over W of
    (B, H, W, C)): the token dim (-2) is global, or with `is_causal` one-sided (unit o reads
    keys 0..o: the hull is shown, approx); dims before it are batch dims of the op (each
    position on its own); a map in the last (feature) dim is mixed."""
    tokens = _over_tokens(call)
    if tokens is not None:
        return tokens
    if call.name == "scaled_dot_product_attention":
        out = _sdpa(call)
        if out is not None:
            return out
    return _everything(call, "attention reads every position")


def _over_tokens(call: Call) -> Optional[Outcome]:
    """Attention without a mask over tokens (a patch embedding's (B, N, C), maybe behind a
    class token, split into heads): every token reads every token, so each sees what the
    whole map sees, class tokens too. The tokens keep their places: the row keeps the token
    grid as its size, and a view back to the map gives a global map, not a vector."""
    q = call.arg(0, "query")
    if not isinstance(q, torch.Tensor) or q.dim() < 2:
        return None
    if call.name == "scaled_dot_product_attention":
        token = q.dim() - 2
        masked = call.arg(3, "attn_mask") is not None or bool(call.arg(5, "is_causal", False))
    else:  # multi_head_attention_forward: (L, B, E) or unbatched (L, E)
        token = 0
        masked = any(
            call.kwargs.get(n) is not None for n in ("key_padding_mask", "attn_mask")
        ) or bool(call.kwargs.get("is_causal", False))
    layouts = {f.packed for _, f in call.inputs}
    if not call.inputs or len(layouts) != 1:
        return None  # one layout for q, k and v (the same tokens), or not followed
    (p,) = layouts
    if p is None or p[0] not in ("flat", "tokens") or p[2] % q.dim() != token:
        return None
    before = p[3]
    if before.dims is None or before.status == UNKNOWN:
        return None
    out = call.out_tensor
    if out.dim() != q.dim() or out.shape[token] != q.shape[token]:
        return None
    if masked:  # each token reads the keys its row allows (rules.masked)
        return masked_attention.tokens(call, p, before)
    seen = mixed(before, f"{call.name}: attention reads every position")
    f = call.first
    return Outcome(Field(f.axes, None, GLOBAL, seen.note, (p[0], p[1], p[2], seen) + p[4:]))


def _windowed(call: Call, q, k, v, fields: dict):
    """Attention over maps taken apart into windows (rfcalc.rules.positions): each query
    position reads the key and value positions of its row."""
    lay = [positions.of(fields[id(t)]) if id(t) in fields else None for t in (q, k, v)]
    if any(p is None for p in lay) or bool(call.arg(5, "is_causal", False)):
        return None
    if len(call.inputs) > 3:
        return None  # a mask computed from the input
    # a constant mask (TinyViT's learned bias) adds nothing from the input and can only
    # take keys away: the window's box stays an upper bound (the rows are approx)
    if not all(positions.constant_along(p, [-1]) for p in lay):
        return None
    out = lay[0]
    for other in dict.fromkeys(lay[1:]):  # keys, then values if they are laid out otherwise
        out = positions.attended(out, other)
        if out is None:
            return None
    out = positions.resized(out, [-1], tuple(call.out_tensor.shape))
    f = fields[id(q)]
    return Outcome(positions.wrap(f, out))


def _sdpa(call: Call):
    q, k, v = (call.arg(i, n) for i, n in ((0, "query"), (1, "key"), (2, "value")))
    fields = {id(t): f for t, f in call.inputs}
    if any(positions.of(f) is not None for f in fields.values()):
        return _windowed(call, q, k, v, fields)
    if any(t is not q and t is not k and t is not v for t, _ in call.inputs):
        return None  # a mask computed from the input
    present = [f for f in (fields.get(id(q)), fields.get(id(k)), fields.get(id(v))) if f]
    ndim = call.first_tensor.dim()
    if any(f.status == UNKNOWN or f.dims is None or f.dims != present[0].dims for f in present):
        return None
    if any(t.dim() != ndim for t in (q, k, v)) or (ndim - 1) in positive(present[0].dims, ndim):
        return None
    fq = fields.get(id(q))
    kv = [f for f in (fields.get(id(k)), fields.get(id(v))) if f]
    causal = bool(call.arg(5, "is_causal", False))
    masked = call.arg(3, "attn_mask") is not None
    dims = present[0].dims
    axes = []
    for i, d in enumerate(positive(dims, ndim)):
        parts = [fq.axes[i]] if fq else []
        n = q.shape[d]
        if kv and d == ndim - 2:  # the token dim: what the keys give each query
            whole = g.union([f.axes[i] for f in kv])
            if causal or masked:
                s_ = whole.size
                reads = [
                    list(range(min(o, s_ - 1) + 1)) if causal else list(range(s_)) for o in range(n)
                ]
                parts.append(g.gather(whole, reads))
            else:
                parts.append(g.broadcast(g.collapse(whole), n))
        elif kv:
            parts += [f.axes[i] for f in kv]
        axes.append(g.union(parts, strict=False) if len(parts) > 1 else parts[0])
    note = ""
    if causal and kv:
        note = f"{call.name}: causal, unit o reads the tokens 0..o (one-sided): rf is the hull"
    elif masked and kv:
        note = f"{call.name}: a mask limits the keys: rf is an upper bound"
    elif kv:
        note = f"{call.name}: attention reads every token along its token dim"
    status = present[0].status
    if kv and (causal or masked):
        status = "approx" if status == "exact" else status
    if axes and all(a.mixed for a in axes):
        status = GLOBAL
    return Outcome(Field(tuple(axes), dims, status, present[0].note or note))


def _everything(call: Call, why: str) -> Outcome:
    known = [fi for _, fi in call.inputs if fi.status != UNKNOWN]
    if not known:
        return Outcome(call.first)
    return Outcome(mixed(known[0], f"{call.name}: {why}", keep_dims=False, really=True))


# The catalogue: the ops each rule answers for. Registered by calls rather than
# decorators so that mutation testing (mutmut leaves decorated functions alone)
# reaches the rules' bodies.
# with running statistics a norm scales each element on its own: a flattened map keeps its layout
rule("batch_norm", keeps_layout=True)(batch_norm)
rule("torch.batch_norm", keeps_layout=True)(torch_batch_norm)
rule("instance_norm", keeps_layout=True)(instance_norm)
rule("torch.instance_norm", keeps_layout=True)(torch_instance_norm)
rule("group_norm")(group_norm)
rule("layer_norm", "rms_norm", keeps_layout=True)(layer_norm)
rule("softmax", "log_softmax", "softmin", "normalize", keeps_layout=True)(along_dim)
rule("cumsum", "cumprod", "logcumsumexp", "cummax", "cummin")(cumulative)
rule("glu")(glu)
rule(*_REDUCTIONS, unknown_inputs=True)(reduction)
rule("linear", "bilinear", keeps_layout=True)(linear)
rule("matmul", "mm", unknown_inputs=True, keeps_layout=True)(matmul)
rule("bmm", "baddbmm", "addmm", "tensordot", unknown_inputs=True, keeps_layout=True)(products)
rule("einsum", unknown_inputs=True)(einsum)
rule("scaled_dot_product_attention", "multi_head_attention_forward", unknown_inputs=True)(attention)
