"""Element-wise ops and merges: each output element reads the same position of every input."""

from __future__ import annotations

from dataclasses import replace

from .. import geometry as g
from ..geometry import EXACT, GLOBAL, UNKNOWN, Field, NotGeometric
from . import positions, scores
from .dispatch import (
    MIXED,
    Call,
    Outcome,
    as_tokens,
    layout_lost,
    mixed,
    positive,
    rule,
    same_dims,
    whole_global,
)

_NO_CHANGE = (
    "dropout",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "alpha_dropout",
    "feature_alpha_dropout",
    "hardswish",
    "prelu",
    "rrelu",
    "logsigmoid",
    "softsign",
    "tanhshrink",
    "softshrink",
    "hardshrink",
    "relu6",
    "silu",
    "mish",
    "gelu",
    "hardsigmoid",
    "local_response_norm",
    "channel_shuffle",
    "native_channel_shuffle",
    "expand",
    "expand_as",
    "broadcast_to",
    "masked_fill",
    "type_as",
    "bernoulli",
)
# element-wise in name only: they move or mix values across the channel dim
_MOVES_CHANNELS = ("channel_shuffle", "native_channel_shuffle", "local_response_norm")
_ALIASES = (
    "contiguous",
    "clone",
    "detach",
    "to",
    "float",
    "double",
    "half",
    "bfloat16",
    "type",
    "cpu",
    "cuda",
    "requires_grad",
    "get_data",
    "coalesce",
)


def pointwise(call: Call) -> Outcome:
    """Each output element reads the same position of every input: the union of the fields.

    A size-1 axis broadcast over a larger one (a pooled gate) gives every unit along it the
    same field: that axis is global. An unknown input is absorbed only by a field that is
    already global on every axis (nothing can widen that); otherwise the output is unknown.
    """
    out = call.out_tensor
    fields = [f for _, f in call.inputs]
    globals_ = [f for f in fields if whole_global(f)]
    unknown = [f for f in fields if f.status == UNKNOWN]
    if unknown:
        if not globals_:
            return Outcome(Field((), same_dims(call, unknown[0].dims), UNKNOWN, unknown[0].note))
        fields = globals_
    if len({f.dims for f in fields}) > 1:
        if globals_ and all(f.dims is None for f in globals_):
            return Outcome(mixed(globals_[0], globals_[0].note, keep_dims=False))
        raise NotGeometric("the merged tensors keep their maps in different dims")
    dims = fields[0].dims
    first = fields[0].packed
    if dims is None and first is not None and first[0] == scores.KIND:
        if call.name in ("masked_fill", "add") and len(fields) == 1:
            f = scores.masked(call, fields[0])
            return Outcome(f if f is not None else layout_lost(fields[0]))
        if call.name == "add" and len(fields) == 2 and scores.plus_query_term(fields):
            return Outcome(fields[0])  # a term of each query alone: nothing new is read
    lays = [positions.of(f) for f in fields] if dims is None else []
    if lays and all(p is not None for p in lays):
        if call.name in _MOVES_CHANNELS:
            return Outcome(layout_lost(fields[0]))
        both = positions.merged(lays, tuple(out.shape))
        if both is not None:  # a broadcast, or a merge of tensors laid out alike
            return Outcome(positions.wrap(fields[0], both))
    if (
        dims is None
        and fields[0].packed is not None
        and all(f.packed == fields[0].packed for f in fields)
    ):
        return Outcome(fields[0])  # the same flattened map, element by element
    # (an F.unfold's windows merged with a per-window map, a dynamic local filter: tokens)
    tokens = _tokens_merged([as_tokens(f) for f in fields]) if dims is None else None
    if tokens is not None:
        return Outcome(tokens)
    if dims is None:
        axes = tuple(
            g.union([g.collapse(f.axes[i]) for f in fields]) for i in range(len(fields[0].axes))
        )
        # a vector shown as a whole stays so: only vectors that are exact windows (a global
        # pool) merge into an exact one
        status = GLOBAL if any(f.status == GLOBAL for f in fields) else EXACT
        return Outcome(
            Field(axes, None, status, _note(fields, globals_), MIXED if globals_ else None)
        )
    if out.dim() < max(-d for d in dims):
        raise NotGeometric("the output has fewer dims than the map")
    sizes = [out.shape[d] for d in dims]
    per_axis: list[list[g.Axis]] = [[] for _ in dims]
    spread = set()
    for f in fields:
        for i, (a, n) in enumerate(zip(f.axes, sizes)):
            if a.size != n:
                a = g.broadcast(a, n)
                spread.add(i)
            per_axis[i].append(a)
    axes = _separable(per_axis, _joint(per_axis, tuple(g.union(group) for group in per_axis)))
    note = _note(fields, globals_)
    if spread and not note:
        note = f"{call.name}: one unit's field is spread over the whole map"
    status = (
        GLOBAL
        if all(a.mixed for a in axes)
        else max((f.status for f in fields if f.status != GLOBAL), key=_rank, default=EXACT)
    )
    return Outcome(Field(axes, dims, status, note))


def _tokens_merged(fields: list[Field]) -> Field | None:
    """Tokens laid out alike (same grid, token dim and tokens in front) but seeing different
    fields, merged element by element (a residual add around attention): token t reads its
    position in each, so its field is the union of theirs. None for any other merge."""
    ps = [f.packed for f in fields]
    if any(p is None or p[0] not in ("flat", "tokens") for p in ps):
        return None
    if len({(p[0], tuple(p[1]), p[2]) + tuple(p[4:]) for p in ps}) != 1:
        return None
    befores = [p[3] for p in ps]
    if any(b.dims is None or b.dims != befores[0].dims or b.status == UNKNOWN for b in befores):
        return None
    try:
        axes = tuple(g.union([b.axes[i] for b in befores]) for i in range(len(befores[0].axes)))
    except NotGeometric:
        return None
    if all(a.mixed for a in axes):
        status = GLOBAL
    else:
        status = max((b.status for b in befores if b.status != GLOBAL), key=_rank, default=EXACT)
    note = next((b.note for b in befores if b.status == status and b.note), "")
    before = Field(axes, befores[0].dims, status, note)
    f = fields[0]
    shown = GLOBAL if status == GLOBAL else f.status
    packed = (ps[0][0], ps[0][1], ps[0][2], before) + tuple(ps[0][4:])
    return Field(f.axes, None, shown, note or f.note, packed)


def _joint(per_axis: list[list[g.Axis]], axes: tuple[g.Axis, ...]) -> tuple[g.Axis, ...]:
    """The merged axes, without the pixels-read patterns where the merge's pattern is not one
    pattern per axis: a 1×7 and a 7×1 field summed read a cross, 13 of the 7×7 box, while
    each axis alone reads all 7. It is one per axis (their product) when the inputs differ
    along one axis at most, or one input's pattern holds every other's on every axis."""
    if len(per_axis[0]) < 2 or len(axes) < 2 or any(a.taps is None for a in axes):
        return axes
    sets = [
        [g.aligned_taps(a, m.lo[0]) for a in group] for group, m in zip(per_axis, axes)
    ]  # per axis, per input
    if sum(1 for s in sets if len(set(s)) > 1) <= 1:
        return axes
    n = len(per_axis[0])
    for j in range(n):
        if all(g.runs_within(s[k], s[j]) for s in sets for k in range(n)):
            return axes
    return tuple(replace(a, taps=None) for a in axes)


def _separable(per_axis: list[list[g.Axis]], axes: tuple[g.Axis, ...]) -> tuple[g.Axis, ...]:
    """The merged axes, not exact along an axis where the inputs differ while one input
    reaches only some units along another axis (a map written into half of a buffer, then
    added): the units it does not reach see the others' field along the first axis, not the
    merged one, which one field per axis cannot say."""
    n = len(per_axis[0])
    partial = [any(None in group[j].seen for group in per_axis) for j in range(n)]
    if len(axes) < 2 or not any(partial):
        return axes
    out = []
    for i, a in enumerate(axes):
        others = [k for k in range(len(axes)) if k != i]
        split = any(
            partial[j] and any(None in per_axis[k][j].seen for k in others) for j in range(n)
        )
        differ = len({group.seen for group in per_axis[i]}) > 1
        # no classic field describes such an axis: its columns come from what units see
        out.append(replace(a, classic=False) if split and differ and a.exact else a)
    return tuple(out)


def _rank(status: str) -> int:
    return (EXACT, "approx", GLOBAL, UNKNOWN).index(status)


def _note(fields: list[Field], globals_: list[Field]) -> str:
    """The note carried on: a global input's first, else the first input's that has one."""
    for f in globals_ + fields:
        if f.note:
            return f.note
    return ""


def where(call: Call) -> Outcome:
    """torch.where(condition, a, b): each unit takes a or b, so it sees the condition's field
    and one branch's. The union bounds every unit; where the branches' fields differ, units
    differ (those taking a 3x3 branch see 3x3): approx, the widest unit's rf."""
    outcome = pointwise(call)
    f = outcome.field
    if f.status == UNKNOWN or f.status == GLOBAL:
        return outcome
    cond, a, b = (call.arg(i, k) for i, k in ((0, "condition"), (1, "input"), (2, "other")))
    fields = {id(t): fi for t, fi in call.inputs}
    branches = [fields.get(id(t)) for t in (a, b)]
    cf = fields.get(id(cond))
    if branches[0] is not None and branches[1] is not None:
        same = branches[0].axes == branches[1].axes
    else:  # a constant branch sees nothing: units taking it see only the condition
        present = [x for x in branches if x is not None]
        same = not present or (cf is not None and all(x.axes == cf.axes for x in present))
    if same or f.dims is None:
        return outcome
    return Outcome(
        Field(
            f.axes,
            f.dims,
            "approx",
            f.note or "where: each unit takes one branch, rf is the widest branch's",
            f.packed,
        )
    )


def alias(call: Call) -> Outcome:
    """Same values, maybe another dtype or device: the field travels on, without a row."""
    return Outcome(call.first, alias=True)


def cat(call: Call) -> Outcome:
    """Concatenation of channels: the union of the fields (along a spatial axis: UNKNOWN)."""
    out = call.out_tensor
    dim = int(call.arg(1, "dim", 0)) % out.dim()
    for _, f in call.inputs:
        if f.dims is not None and dim in positive(f.dims, out.dim()):
            raise NotGeometric("concatenation along a spatial axis")
    outcome = pointwise(call)
    f = outcome.field
    if f.packed is not None and f.packed[0] == "flat" and dim == f.packed[2] % out.dim():
        # along the tokens: constant tokens (a class token) put in front of the map's only
        # shift them; anything else and element i is no longer position i
        parts = call.arg(0, "tensors")
        mine = [i for i, t in enumerate(parts) if any(t is x for x, _ in call.inputs)]
        if len(call.inputs) == 1 and len(mine) == 1:
            offset = sum(int(t.shape[dim]) for t in parts[: mine[0]])
            _, tail, flat_dim, before = f.packed
            return Outcome(
                Field(f.axes, None, f.status, f.note, ("tokens", tail, flat_dim, before, offset))
            )
        return Outcome(layout_lost(f))
    return outcome


def stack(call: Call) -> Outcome:
    """Stacking along a new dim in front of the map keeps the fields' (negative) dims."""
    out = call.out_tensor
    dim = int(call.arg(1, "dim", 0)) % out.dim()
    dims = call.first.dims
    if dims is not None and dim >= min(positive(dims, out.dim())):
        raise NotGeometric("stacking inside the spatial dims")
    return pointwise(call)


# The catalogue: the ops each rule answers for. Registered by calls rather than
# decorators so that mutation testing (mutmut leaves decorated functions alone)
# reaches the rules' bodies.
rule("pointwise", *_NO_CHANGE, unknown_inputs=True, keeps_layout=True)(pointwise)
rule(*_ALIASES, keeps_layout=True)(alias)
rule("where", unknown_inputs=True, keeps_layout=True)(where)
rule("cat", unknown_inputs=True)(cat)
rule("stack", unknown_inputs=True)(stack)
