"""Attention written out by hand over tokens: `q @ k.transpose(-2, -1)`, a constant mask
(`masked_fill(mask, -inf)`, or adding a constant with -inf entries), `softmax(-1)`, then
`@ v`. The scores tensor (…, Nq, Nk) is carried as its own layout, ("scores", q's tokens,
k's tokens, allowed): `allowed[i, j]` says whether query i may read key j (None: all).

At `@ v`, query position i reads itself and the keys its row allows. With every key
allowed each token sees what the whole map sees (global, as for SDPA). With a mask (a
causal triangle, a local band) each position reads the box of the positions it may reach;
shown per axis that box is an upper bound (approx), the same as window attention
(rfcalc.rules.positions). Tokens with a class token in front are followed only without a
mask (the class token's place in the mask is not followed).
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from .. import geometry as g
from ..geometry import APPROX, EXACT, GLOBAL, UNKNOWN, Field, NotGeometric
from . import positions
from .dispatch import Call, mixed
from .positions import Positions

KIND = "scores"


def _tokens(f: Field, dim: int, ndim: int) -> Optional[tuple]:
    """f's token layout if its token dim is `dim` (negative) of an ndim tensor."""
    p = f.packed
    if p is None or p[0] not in ("flat", "tokens") or p[2] % ndim != dim % ndim:
        return None
    before = p[3]
    if before.dims is None or before.status == UNKNOWN:
        return None
    return p


def _same_tokens(a: tuple, b: tuple) -> bool:
    return a[0] == b[0] and tuple(a[1]) == tuple(b[1]) and tuple(a[4:]) == tuple(b[4:])


def _count(p: tuple) -> int:
    """How many tokens a layout holds along its token dim (the map's, and any in front)."""
    return math.prod(p[1]) + (p[4] if p[0] == "tokens" else 0)


def product(call: Call) -> Optional[Field]:
    """q @ kᵀ over tokens (scores), or scores @ v (tokens again); None: not this pattern."""
    if len(call.inputs) != 2 or call.name not in ("matmul", "bmm"):
        return None
    a, b = call.arg(0, "input"), call.arg(1, "other" if call.name == "matmul" else "mat2")
    fields = {id(t): f for t, f in call.inputs}
    fa, fb = fields.get(id(a)), fields.get(id(b))
    if fa is None or fb is None or a.dim() < 2 or a.dim() != b.dim():
        return None
    if fa.packed is not None and fa.packed[0] == KIND and isinstance(fa.packed[1], Positions):
        return _read_windows(call, fa, fb)
    qp, kp = positions.of(fa), positions.of(fb)
    if qp is not None or kp is not None:
        return _windows(call, fa, qp, kp)
    if fa.packed is not None and fa.packed[0] == KIND:
        v = _tokens(fb, -2, b.dim())
        _, q, k, _ = fa.packed
        if v is None or tuple(a.shape[-2:]) != (_count(q), _count(k)) or b.shape[-2] != _count(v):
            return None  # the scores were viewed otherwise: not followed
        return _read(call, fa, v)
    q, k = _tokens(fa, -2, a.dim()), _tokens(fb, -1, b.dim())
    if q is None or k is None or not _same_tokens(q, k):
        return None
    if a.shape[-2] != _count(q) or b.shape[-1] != _count(k):
        return None
    note = f"{call.name}: a product across positions"  # the scores: read at `@ v`
    return Field(fa.axes, None, GLOBAL, note, (KIND, q, k, None))


def _windows(
    call: Call, fa: Field, q: Optional[Positions], k: Optional[Positions]
) -> Optional[Field]:
    """q @ kᵀ within windows (timm's Swin): queries and keys laid out as positions
    (rfcalc.rules.positions), features along -1 of q and -2 of kᵀ. The scores carry both
    layouts; `@ v` reads them (None: not this pattern)."""
    if q is None or k is None:
        return None
    if not positions.constant_along(q, [-1]) or not positions.constant_along(k, [-2]):
        return None
    n = k.idx.dim()
    keys = positions.permuted(k, list(range(n - 2)) + [n - 1, n - 2])  # (…, N, d) as q
    if tuple(q.idx.shape[:-2]) != tuple(keys.idx.shape[:-2]):
        return None  # broadcast queries or keys: not followed
    # only windows (Swin's (windows·B, heads, N, d), HaloNet's (B·heads, blocks, N, d)),
    # each row a whole box of its map, none the whole map: other layouts (a map's heads,
    # MobileViT's strided patches) stay global
    if _whole_map(q) or not (_boxes_whole(q) and _boxes_whole(keys)):
        return None
    note = f"{call.name}: scores within windows"  # read at `@ v`
    return Field(fa.axes, None, GLOBAL, note, (KIND, q, keys, None))


def _whole_map(p: Positions) -> bool:
    """Whether some row (the dim before the features) holds every position of the map."""
    count = math.prod(a.size for a in p.before.axes)
    return p.idx.shape[-2] >= count and _boxes_whole(p, count)


def _boxes_whole(p: Positions, least: int = 0) -> bool:
    """Whether the positions of every row (the dim before the features) fill their box:
    a window of the map, each position at most as often as any other (padding, -1, aside).
    With `least`: whether some row holds that many distinct positions instead."""
    sizes = tuple(a.size for a in p.before.axes)
    with positions._plain():
        rows = positions.lean(p.idx)[..., 0]
        rows = rows.reshape(-1, rows.shape[-1])
        valid = rows >= 0
        safe = rows.clamp(min=0)
        coords = torch.stack(torch.unravel_index(safe, sizes), -1)  # rows x N x n
        big = torch.iinfo(torch.long).max
        lo = torch.where(valid[..., None], coords, big).amin(1)
        hi = torch.where(valid[..., None], coords, -1).amax(1)
        volume = (hi - lo + 1).clamp(min=0).prod(-1)
        distinct = torch.where(valid, rows, -1).sort(1).values
        count = ((distinct[:, 1:] != distinct[:, :-1]) & (distinct[:, 1:] >= 0)).sum(1)
        count = count + (distinct[:, :1] >= 0).squeeze(1).long()
        if least:
            return bool((count >= least).any())
        return bool((volume == count).all())


def _read_windows(call: Call, scores: Field, fb: Field) -> Optional[Field]:
    """scores @ v within windows: each query position reads the key and value positions
    of its row, a box per position (an upper bound: a mask only takes keys away)."""
    _, q, k, _ = scores.packed
    v = positions.of(fb)
    if v is None or not positions.constant_along(v, [-1]):
        return None
    out = q
    for other in dict.fromkeys((k, v)):
        out = positions.attended(out, other)
        if out is None:
            return None
    out = positions.resized(out, [-1], tuple(call.out_tensor.shape))
    return positions.wrap(fb, out)


def plus_query_term(fields: list[Field]) -> bool:
    """Window scores (first) plus a tensor laid out as positions whose every element holds
    its query's position (or none): the sum reads what the scores read."""
    _, q, _, _ = fields[0].packed
    term = positions.of(fields[1])
    return isinstance(q, Positions) and term is not None and positions.of_query(term, q)


def masked(call: Call, f: Field) -> Optional[Field]:
    """Scores after masked_fill(mask, -inf) or + a constant: the keys a -inf takes away
    (a weight exactly 0 after softmax) are no longer read; other constants change nothing."""
    _, q, k, allowed = f.packed
    if call.name == "masked_fill":
        mask, value = call.arg(1, "mask"), call.arg(2, "value")
        if isinstance(value, torch.Tensor):
            if value.numel() != 1 or any(value is t for t, _ in call.inputs):
                return None
            value = float(value)
        if not isinstance(mask, torch.Tensor) or any(mask is t for t, _ in call.inputs):
            return None
        blocked = mask if value == float("-inf") else None
    else:
        consts = [
            t
            for t in call.args
            if isinstance(t, torch.Tensor) and not any(t is x for x, _ in call.inputs)
        ]
        if len(call.inputs) != 1 or len(consts) > 1:
            return None
        blocked = (consts[0] == float("-inf")) if consts else None
    if blocked is not None:
        n = call.out_tensor.shape[-2:]
        with torch._C.DisableTorchFunction():
            try:
                rows = blocked.detach().cpu().broadcast_to(call.out_tensor.shape)
            except RuntimeError:
                return None
            # one mask for every batch element and head, or not followed
            flat = rows.reshape(-1, *n)
            if not bool((flat == flat[:1]).all()):
                return None
            free = ~flat[0]
            allowed = free if allowed is None else allowed & free
    return Field(f.axes, None, f.status, f.note, (KIND, q, k, allowed))


def _read(call: Call, scores: Field, v: tuple) -> Optional[Field]:
    """scores @ v: each query position reads itself and the keys its row allows. The
    tokens' own axes (what the flattened map shows as a whole) are the scores'."""
    _, q, k, allowed = scores.packed
    if not _same_tokens(q, v):
        return None
    befores = [q[3], k[3], v[3]]
    if any(b.dims != befores[0].dims for b in befores):
        return None
    try:
        axes = tuple(
            g.union([b.axes[i] for b in befores], strict=False) for i in range(len(befores[0].axes))
        )
    except NotGeometric:
        return None
    joint = Field(axes, befores[0].dims, max_status(befores), befores[0].note)
    if allowed is None or bool(allowed.all()):
        seen = mixed(joint, f"{call.name}: attention reads every position")
        return Field(scores.axes, None, GLOBAL, seen.note, (q[0], q[1], -2, seen) + tuple(q[4:]))
    if q[0] != "flat":
        return None  # a class token's place in the mask: not followed
    field = _boxes(joint, tuple(q[1]), allowed)
    if field is None:
        return None
    return Field(scores.axes, None, field.status, field.note, ("flat", q[1], -2, field))


def max_status(fields: list[Field]) -> str:
    order = [EXACT, APPROX, GLOBAL]
    return max((f.status for f in fields), key=lambda s: order.index(s) if s in order else 0)


def _boxes(joint: Field, tail: tuple[int, ...], allowed: torch.Tensor) -> Optional[Field]:
    """The field of the tokens' map when query position i reads the key positions allowed
    in row i (and its own): per axis, the hull of those positions' coordinates."""
    n = len(joint.axes)
    order = sorted(range(n), key=lambda i: joint.dims[i])
    sizes = tuple(joint.axes[i].size for i in order)
    count = math.prod(sizes)
    if tuple(tail) != sizes or tuple(allowed.shape) != (count, count):
        return None
    with torch._C.DisableTorchFunction():
        coords = torch.stack(torch.unravel_index(torch.arange(count), sizes), -1)  # P x n
        reach = allowed | torch.eye(count, dtype=torch.bool)
        big = torch.iinfo(torch.long).max
        lo = torch.where(reach[..., None], coords[None], big).amin(1)  # P x n
        hi = torch.where(reach[..., None], coords[None], -1).amax(1)
        axes = list(joint.axes)
        wider = False
        for rank, i in enumerate(order):
            own = coords[:, rank]
            units = []
            for o in range(sizes[rank]):
                at = own == o
                a, b = int(lo[at, rank].min()), int(hi[at, rank].max())
                wider = wider or (a, b) != (o, o)
                units.append(list(range(a, b + 1)))
            axes[i] = g.gather(joint.axes[i], units)
    status = joint.status
    if wider and status == EXACT:
        status = APPROX
    note = "attention with a constant mask: each unit reads the keys it may (a box per axis)"
    return Field(tuple(axes), joint.dims, status, joint.note or note)
