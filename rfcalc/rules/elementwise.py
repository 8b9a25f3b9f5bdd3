"""Element-wise ops and merges: each output element reads the same position of every input."""

from __future__ import annotations

from .. import geometry as g
from ..geometry import EXACT, GLOBAL, UNKNOWN, Field, NotGeometric
from .dispatch import MIXED, Call, Outcome, mixed, positive, rule, same_dims, whole_global

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
    if (
        dims is None
        and fields[0].packed is not None
        and all(f.packed == fields[0].packed for f in fields)
    ):
        return Outcome(fields[0])  # the same flattened map, element by element
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
    axes = tuple(g.union(group) for group in per_axis)
    note = _note(fields, globals_)
    if spread and not note:
        note = f"{call.name}: one unit's field is spread over the whole map"
    status = (
        GLOBAL
        if all(a.mixed for a in axes)
        else max((f.status for f in fields if f.status != GLOBAL), key=_rank, default=EXACT)
    )
    return Outcome(Field(axes, dims, status, note))


def _rank(status: str) -> int:
    return (EXACT, "approx", GLOBAL, UNKNOWN).index(status)


def _note(fields: list[Field], globals_: list[Field]) -> str:
    """The note carried on: a global input's first, else the first input's that has one."""
    for f in globals_ + fields:
        if f.note:
            return f.note
    return ""


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
    return pointwise(call)


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
rule("cat", unknown_inputs=True)(cat)
rule("stack", unknown_inputs=True)(stack)
