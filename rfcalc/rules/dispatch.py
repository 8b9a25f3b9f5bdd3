"""The rule table: how a recorded torch call finds its rule, and what a rule gets and returns.

A rule is a function `rule(call: Call) -> Outcome`. It reads the call (the op's canonical name,
its arguments, the fields of the field-carrying tensors among them, and what the op returned)
and returns the output's `Field`, plus the `Window` to show for ops that slide one. A rule that
finds no exact description raises `NotGeometric(why)`: the output is then UNKNOWN with `why`
in its note. Rules never see an UNKNOWN input (the output of such an op is UNKNOWN without
asking them) unless they were registered with `unknown_inputs=True`.

Keys: an op is looked up by its canonical name (`add` for `x + y`, `x.add_(y)` and
`torch.add`); where two different functions share a name (`F.unfold` and `Tensor.unfold`,
`F.batch_norm` and `torch.batch_norm` with another argument order) a qualified key
(`F.unfold`, `Tensor.unfold`, `torch.batch_norm`) wins over the plain one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import torch
import torch.nn.functional as F

from .. import geometry as g
from ..geometry import GLOBAL, UNKNOWN, Field, NotGeometric, Window

NO_RULE = "no rule for this op"


@dataclass
class Call:
    """One executed torch function as a rule sees it."""

    name: str  # canonical name: "conv2d", "add", "getitem"
    args: tuple
    kwargs: dict
    inputs: list[tuple[torch.Tensor, Field]]  # field-carrying tensors, in argument order
    out: Any  # what the function returned

    def arg(self, index: int, key: str, default: Any = None) -> Any:
        """The argument given by position `index` or keyword `key`."""
        if key in self.kwargs:
            return self.kwargs[key]
        return self.args[index] if len(self.args) > index else default

    @property
    def first(self) -> Field:
        return self.inputs[0][1]

    @property
    def first_tensor(self) -> torch.Tensor:
        return self.inputs[0][0]

    @property
    def out_tensor(self) -> torch.Tensor:
        out = self.out
        while isinstance(out, (tuple, list)):
            out = out[0]
        return out


@dataclass(frozen=True)
class Outcome:
    """A rule's answer: the output's field and, for window ops, the window to show."""

    field: Field
    window: Optional[Window] = None
    alias: bool = False  # a layout no-op (contiguous, to, ...): propagates, gets no row
    no_rule: bool = False  # set by the dispatcher: the op has no rule (counted per model)


Rule = Callable[[Call], Outcome]
RULES: dict[str, Rule] = {}
_SEES_UNKNOWN: set[str] = set()
_KEEPS_LAYOUT: set[Rule] = set()  # rules that may pass a flattened map's layout on

_BINARY = {
    "add",
    "sub",
    "mul",
    "div",
    "truediv",
    "floordiv",
    "mod",
    "pow",
    "matmul",
    "and",
    "or",
    "xor",
    "lshift",
    "rshift",
}
_SYNONYMS = {
    "truediv": "div",
    "concat": "cat",
    "concatenate": "cat",
    "swapaxes": "transpose",
    "swapdims": "transpose",
    "moveaxis": "movedim",
    "clip": "clamp",
}


def canonical(func: Callable) -> str:
    """The plain name of a torch function or Tensor method: `__radd__`, `add_` -> `add`."""
    func = getattr(func, "_opoverload", func)  # a torch.library custom op: its overload
    name = getattr(func, "__name__", "") or ""
    if name.endswith(".default"):  # torch.ops.lib.op.default is called `op`
        name = name[: -len(".default")]
    if name == "__get__":  # a Tensor property such as .data or .T
        return "get_" + getattr(getattr(func, "__self__", None), "__name__", "?")
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        if name[:1] in "ri" and name[1:] in _BINARY:
            name = name[1:]
    elif name.endswith("_") and not name.startswith("_"):
        name = name[:-1]  # in-place variant
    return _SYNONYMS.get(name, name)


def qualified(func: Callable) -> str:
    """`F.name`, `Tensor.name` or `torch.name`: where `func` lives, for names that collide."""
    raw = getattr(getattr(func, "_opoverload", func), "__name__", "") or ""
    name = canonical(func)
    if getattr(F, raw, None) is func:
        return f"F.{name}"
    if getattr(torch.Tensor, raw, None) is func:
        return f"Tensor.{name}"
    if getattr(torch, raw, None) is func:
        return f"torch.{name}"
    return name


# plain names that two different functions share: their rules are keyed by where they live
COLLISIONS = frozenset({"unfold", "fold", "batch_norm", "instance_norm"})


def key_of(func: Union[str, Callable]) -> str:
    """The table key for an op given as a name or as the function itself (its canonical
    name; qualified, `F.unfold`, where two functions share the name)."""
    if isinstance(func, str):
        return func
    return qualified(func) if canonical(func) in COLLISIONS else canonical(func)


def register_rule(
    op: Union[str, Callable], rule: Rule, *, unknown_inputs: bool = False, replace: bool = True
) -> None:
    """Give `op` a rule: from now on every call of it is analysed by `rule(call) -> Outcome`.

    `op` is the function itself (`torch.nn.functional.grid_sample`, `torch.Tensor.unfold`,
    a `torch.library.custom_op`, `torch.ops.mylib.blur`) or its canonical name
    (`"grid_sample"`; in-place and reflected variants share it). `rule` receives a `Call`
    and returns an `Outcome`; it raises `rfcalc.geometry.NotGeometric` where it has no exact
    answer (the row becomes unknown with that reason). `unknown_inputs=True`: the rule is
    called even when an input's field is already unknown (by default the output is then
    unknown without asking). `replace=False` refuses to overwrite an existing rule
    (ValueError).
    """
    key = key_of(op)
    if not callable(rule):
        raise TypeError(f"the rule for {key} must be callable, got {type(rule).__name__}")
    if not replace and key in RULES:
        raise ValueError(f"{key} already has a rule")
    RULES[key] = rule
    (_SEES_UNKNOWN.add if unknown_inputs else _SEES_UNKNOWN.discard)(key)


def rule(
    *names: str, unknown_inputs: bool = False, keeps_layout: bool = False
) -> Callable[[Rule], Rule]:
    """Decorator form of `register_rule` for the catalogue: one rule, several names.
    `keeps_layout`: the rule passes on how a flattened map is laid out (Field.packed)."""

    def register(fn: Rule) -> Rule:
        for name in names:
            register_rule(name, fn, unknown_inputs=unknown_inputs)
        if keeps_layout:
            _KEEPS_LAYOUT.add(fn)
        return fn

    return register


def supported_ops() -> list[str]:
    """Every op name with a rule, sorted (ATen's pointwise ops are covered beyond these)."""
    return sorted(RULES)


def lookup(key: str) -> tuple[str, Optional[Rule]]:
    """The key that matched and its rule: the qualified key first, then the plain name, then
    ATen's own `pointwise` tag. (key, None) when the op has no rule."""
    plain = key.split(".", 1)[1] if key.split(".", 1)[0] in ("F", "Tensor", "torch") else key
    for candidate in (key, plain):
        if candidate in RULES:
            return candidate, RULES[candidate]
    if _aten_pointwise(plain):
        return "pointwise", RULES.get("pointwise")
    return plain, None


def _aten_pointwise(name: str) -> bool:
    """Whether ATen tags the op `pointwise` (each output element reads the same position)."""
    op = getattr(torch.ops.aten, name, None) if name.isidentifier() else None
    if op is None or not hasattr(op, "overloads"):
        return False
    try:
        return any(torch.Tag.pointwise in getattr(op, o).tags for o in op.overloads())
    except (AttributeError, RuntimeError):
        return False


def apply(call: Call, key: Optional[str] = None) -> Outcome:
    """Run the op's rule; no rule, or no exact description, gives an UNKNOWN outcome."""
    found, fn = lookup(key or call.name)
    if fn is None:
        if call.inputs and all(whole_global(f) for _, f in call.inputs):
            # already global everywhere: nothing can widen it (scores lose their layout:
            # the op may have moved the keys)
            f = call.first
            kept = f if f.packed is None or f.packed[0] != "scores" else layout_lost(f)
            return Outcome(kept)
        return Outcome(unknown_field(call, NO_RULE), no_rule=True)
    bad = [f for _, f in call.inputs if f.status == UNKNOWN]
    if bad and found not in _SEES_UNKNOWN:
        return Outcome(Field((), same_dims(call, bad[0].dims), UNKNOWN, bad[0].note))
    try:
        outcome = fn(call)
    except NotGeometric as exc:
        if call.inputs and all(whole_global(f) for _, f in call.inputs):
            # every unit already sees the whole map: no op can make that less true
            # (a vector whose every element mixed everything stays so: a later window op
            # on it, a talking-heads conv over attention weights, is global, not unknown)
            f = call.first
            dims = same_dims(call, f.dims)
            mixed_in = any(fi.packed == MIXED for _, fi in call.inputs)
            packed = MIXED if dims is None and mixed_in else None
            return Outcome(Field(f.axes, dims, GLOBAL, f.note, packed))
        return Outcome(unknown_field(call, str(exc)))
    f = outcome.field
    if (
        f.packed is not None
        and f.packed[0] != "mixed"
        and fn not in _KEEPS_LAYOUT
        and any(f is fi for _, fi in call.inputs)
    ):
        # the op moved a flattened map's elements: what view could undo is gone
        outcome = Outcome(layout_lost(f), outcome.window, outcome.alias)
    return outcome


# ---------------------------------------------------------------- helpers for rules


def as_tokens(f: Field) -> Field:
    """An F.unfold's windows (packed "unfold", or "cols" once a weight mixed each window's
    entries) seen as tokens: the L dim (last) is the grid of windows flattened, each element
    keeps its window's field. What an op that moves or mixes the entries of a window
    (a reduction over them, a product with a per-window kernel, a transpose) sees: F.fold
    can no longer put the pixels back. Any other field as it is."""
    p = f.packed
    if f.dims is not None or p is None or p[0] not in ("unfold", "cols"):
        return f
    return Field(f.axes, None, f.status, f.note, ("flat", p[2], -1, p[4]))


def layout_lost(f: Field) -> Field:
    """`f` shown as a whole once its layout is no longer followed: still a vector whose
    every element mixed every position where it was one (tokens after global attention)."""
    return Field(f.axes, None, f.status, f.note, MIXED if whole_global(f) else None)


def whole_global(f: Field) -> bool:
    """Every unit sees the whole map: every axis global, or a flattened vector whose every
    element mixed every position (attention, a Linear over the flattened map). A flattened
    map that nothing mixed yet is shown as global, but its elements are not."""
    if f.status == UNKNOWN:
        return False
    if f.dims is None:
        p = f.packed
        if p is not None and p[0] in ("flat", "tokens"):  # tokens after global attention
            return f.status == GLOBAL and whole_global(p[3])
        # attention scores (rules.scores) read a query and its keys each; shown mixed, as
        # every product of two maps across positions, wherever the layout is not followed
        return f.status == GLOBAL and (p == MIXED or (p is not None and p[0] == "scores"))
    return f.status == GLOBAL or (bool(f.axes) and all(a.mixed for a in f.axes))


MIXED = ("mixed",)  # Field.packed of a flattened vector whose every element saw everything


def unknown_field(call: Call, why: str) -> Field:
    # a Call is only made for an op with a field-carrying input: call.first exists
    return Field((), same_dims(call, call.first.dims), UNKNOWN, f"{call.name}: {why}")


def same_dims(call: Call, dims: Optional[tuple[int, ...]]) -> Optional[tuple[int, ...]]:
    out = call.out_tensor
    if (
        dims is None
        or not isinstance(out, torch.Tensor)
        or out.dim() < len(dims)
        or any(-d > out.dim() for d in dims)
    ):
        return None
    return dims


def positive(dims: tuple[int, ...], ndim: int) -> tuple[int, ...]:
    return tuple(d % ndim for d in dims)


def ints(value: Any, n: int) -> tuple[int, ...]:
    """An int or a sequence of ints as n values (one per axis)."""
    if isinstance(value, (list, tuple, torch.Size)):
        value = tuple(int(v) for v in value)
        return value * n if len(value) == 1 and n > 1 else value
    return (int(value),) * n


def mixed(
    f: Field,
    note: str,
    which: Optional[set[int]] = None,
    keep_dims: bool = True,
    really: bool = False,
) -> Field:
    """The field once positions are mixed along the axes `which` (indices into f.axes; None:
    all): along those every unit sees the whole map. `keep_dims=False`: the map is gone
    (flattened into a vector), every axis collapses; `really`: every element of that vector
    mixed every position (else it is only shown as a whole)."""
    if f.status == UNKNOWN:
        return f
    if not keep_dims or f.dims is None:
        return Field(
            tuple(g.collapse(a) for a in f.axes),
            None,
            GLOBAL,
            f.note if whole_global(f) else note,
            MIXED if really or whole_global(f) else None,
        )
    which = set(range(len(f.axes))) if which is None else which
    axes = tuple(g.spread(a) if i in which and not a.mixed else a for i, a in enumerate(f.axes))
    note_ = f.note if f.note and all(f.axes[i].mixed for i in which) else note
    if len(which) == len(f.axes):
        return Field(axes, f.dims, GLOBAL, note_ if f.status != GLOBAL else f.note)
    return Field(axes, f.dims, f.status, note_)  # the op that made these axes global


def with_axes(
    f: Field, axes: tuple[g.Axis, ...], dims: Optional[tuple[int, ...]] = None, note: str = ""
) -> Field:
    """f with new axes (same status; `note` added where f has none)."""
    return Field(axes, f.dims if dims is None else dims, f.status, f.note or note)


def plus_arguments(call: Call, f: Field) -> Field:
    """`f`, widened by what the op's other field-carrying arguments saw: a weight, kernel or
    bias computed from the input (a dynamic filter) is read by every output unit, so each unit
    sees the whole of that argument's field as well."""
    others = [fi for t, fi in call.inputs[1:] if t is not call.first_tensor]
    if not others or f.status == UNKNOWN:
        return f
    if any(fi.status == UNKNOWN for fi in others):
        return Field(
            (),
            same_dims(call, f.dims),
            UNKNOWN,
            f"{call.name}: an argument computed from the input has an unknown field",
        )
    if f.dims is None:
        return Field(
            tuple(
                g.union([g.collapse(a)] + [g.collapse(o.axes[i]) for o in others])
                for i, a in enumerate(f.axes)
            ),
            None,
            f.status,
            f.note,
        )
    axes = tuple(
        g.union([a] + [g.broadcast(g.collapse(o.axes[i]), a.size) for o in others], strict=False)
        for i, a in enumerate(f.axes)
    )
    note = (
        f.note or f"{call.name}: a weight or kernel computed from the input is read by every unit"
    )
    return Field(axes, f.dims, GLOBAL if all(a.mixed for a in axes) else f.status, note)


def spatial_window(call: Call, nd: int) -> Field:
    """The input field, checked to have its `nd` axes in the op's last `nd` dims (in any
    order: a transposed map is windowed along the dims it now lies in), returned with its
    axes in the order of those dims; put the results back with `placed`."""
    f = call.first
    if f.dims is None or sorted(f.dims) != list(range(-nd, 0)):
        raise NotGeometric(f"the op's {nd} window dims are not the map's spatial dims {f.dims}")
    order = sorted(range(nd), key=lambda i: f.dims[i])
    return Field(tuple(f.axes[i] for i in order), tuple(range(-nd, 0)), f.status, f.note)


def placed(call: Call, axes: tuple[g.Axis, ...]) -> tuple[g.Axis, ...]:
    """Axes computed in the op's dim order (see spatial_window), back in the field's order."""
    f = call.first
    order = sorted(range(len(f.dims)), key=lambda i: f.dims[i])
    out: list = [None] * len(axes)
    for j, i in enumerate(order):
        out[i] = axes[j]
    return tuple(out)


__all__ = [
    "Call",
    "Outcome",
    "Rule",
    "RULES",
    "NO_RULE",
    "register_rule",
    "rule",
    "supported_ops",
    "lookup",
    "apply",
    "canonical",
    "qualified",
    "key_of",
]
