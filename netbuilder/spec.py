"""The design space: a net is stages of conv units, each stage closed by a transition.

A `NetSpec` says the structure (which units, dilations, paddings, skips) and the widths (one
channel count per stage). Channels flow one way: the input's channels -> stage 1's units (each
maps to stage 1's width) -> transition 1 (to stage 2's width) -> ... -> the last transition
(keeps the last width) -> global average -> a 1x1 head with bias -> log-softmax.

`check(spec, input_shape)` is the one place that decides whether a spec can be built; every
problem is a `SpecError` with a one-line message naming the unit ("c2.1", "t3") as the built
module does.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterator, Optional

PLAIN = "plain"  # a full 3x3 convolution without bias (BatchNorm follows)
DWS = "dws"  # depthwise kxk with bias, then pointwise 1x1 with bias
KINDS = (PLAIN, DWS)


class SpecError(ValueError):
    """A spec that cannot be built; the message is one line for the user."""


@dataclass(frozen=True)
class ConvUnit:
    """One conv -> BatchNorm -> ReLU -> Dropout unit (optionally x + unit(x))."""

    kind: str = PLAIN
    kernel: int = 3
    dilation: int = 1
    padding: int = 0
    stride: int = 1
    groups: int = 1  # plain units only: a depthwise conv's groups are its channels
    skip: bool = False
    dropout: float = 0.05

    def out_size(self, n: int) -> int:
        """Output length of one spatial axis of length n (PyTorch's floor rule)."""
        return (n + 2 * self.padding - self.dilation * (self.kernel - 1) - 1) // self.stride + 1

    @property
    def keeps_size(self) -> bool:
        """Whether the unit maps every length to itself (needed for a skip)."""
        return self.stride == 1 and 2 * self.padding == self.dilation * (self.kernel - 1)


@dataclass(frozen=True)
class Stage:
    """A block of units at one width, then the transition to the next width."""

    units: tuple[ConvUnit, ...]
    transition: ConvUnit


@dataclass(frozen=True)
class NetSpec:
    """A whole net: stages, one width per stage, input channels and classes."""

    name: str
    stages: tuple[Stage, ...]
    widths: tuple[int, ...]
    in_channels: int = 3
    num_classes: int = 10

    def with_widths(self, widths: tuple[int, ...]) -> "NetSpec":
        """The same structure at other widths."""
        return NetSpec(self.name, self.stages, tuple(widths), self.in_channels, self.num_classes)

    def to_dict(self) -> dict:
        """A JSON-ready dict (the inverse of `from_dict`)."""
        return asdict(self)

    # print() gives one line per unit, a notebook the same as a table, repr() one line

    def __repr__(self) -> str:
        units = sum(len(st.units) + 1 for st in self.stages)
        kinds = "+".join(sorted({u.kind for st in self.stages for u in (*st.units, st.transition)}))
        return (
            f"<NetSpec {self.name}: {len(self.stages)} stages, widths "
            f"{','.join(map(str, self.widths))}, {units} units ({kinds}), "
            f"{self.in_channels} -> {self.num_classes} classes>"
        )

    def __str__(self) -> str:
        from rfcalc.render.table import write

        from .table import units_table

        return write(units_table(self), "text")

    def _repr_html_(self) -> str:
        from rfcalc.render import html

        from .table import units_table

        return html.fragment(units_table(self))


@dataclass(frozen=True)
class Step:
    """One unit in execution order, with its module path and channel counts."""

    path: str  # "c2.1" or "t3", as in the built module's state_dict
    unit: ConvUnit
    c_in: int
    c_out: int
    stage: int  # 0-based stage index
    c_in_width: Optional[int] = None  # index into widths of c_in (None: the input's channels)
    c_out_width: int = 0  # index into widths of c_out


def steps(spec: NetSpec) -> Iterator[Step]:
    """Every unit of the net in execution order, with its channels (no checking)."""
    c_in, c_in_width = spec.in_channels, None
    last = len(spec.widths) - 1
    for i, stage in enumerate(spec.stages):
        for j, unit in enumerate(stage.units):
            yield Step(f"c{i + 1}.{j}", unit, c_in, spec.widths[i], i, c_in_width, i)
            c_in, c_in_width = spec.widths[i], i
        nxt = min(i + 1, last)
        yield Step(f"t{i + 1}", stage.transition, c_in, spec.widths[nxt], i, c_in_width, nxt)
        c_in, c_in_width = spec.widths[nxt], nxt


def check(spec: NetSpec, input_shape: Optional[tuple[int, ...]] = None) -> list[tuple[int, int]]:
    """Raise SpecError if the spec cannot be built; return each step's output (H, W).

    Without an input shape only channels are checked and the list is empty.
    """
    _check_structure(spec)
    sizes: list[tuple[int, int]] = []
    hw: Optional[tuple[int, int]] = None
    if input_shape is not None:
        if len(input_shape) != 3:
            raise SpecError(f"input {_shape(input_shape)}: netbuilder nets take C,H,W")
        if input_shape[0] != spec.in_channels:
            raise SpecError(
                f"input {_shape(input_shape)} has {input_shape[0]} channels; "
                f"{spec.name} takes {spec.in_channels}"
            )
        hw = (input_shape[1], input_shape[2])
    for step in steps(spec):
        _check_unit(step)
        if hw is not None:
            new = tuple(step.unit.out_size(n) for n in hw)
            if min(new) < 1:
                u = step.unit
                raise SpecError(
                    f"{spec.name}: {step.path} shrinks the map from {_hw(hw)} to {_hw(new)} "
                    f"(kernel {u.kernel}, dilation {u.dilation}, padding {u.padding}, "
                    f"stride {u.stride})"
                )
            hw = new  # type: ignore[assignment]
            sizes.append(hw)  # type: ignore[arg-type]
    return sizes


def _check_structure(spec: NetSpec) -> None:
    if not spec.stages:
        raise SpecError(f"{spec.name}: a net needs at least one stage")
    if len(spec.widths) != len(spec.stages):
        raise SpecError(f"{spec.name}: {len(spec.widths)} widths for {len(spec.stages)} stages")
    for what, n in (("in_channels", spec.in_channels), ("num_classes", spec.num_classes)):
        if not isinstance(n, int) or n < 1:
            raise SpecError(f"{spec.name}: {what} must be a positive integer, not {n!r}")
    for i, w in enumerate(spec.widths):
        if not isinstance(w, int) or isinstance(w, bool) or w < 1:
            raise SpecError(
                f"{spec.name}: width of stage {i + 1} must be a positive integer, not {w!r}"
            )
    for i, stage in enumerate(spec.stages):
        if not stage.units:
            raise SpecError(f"{spec.name}: stage {i + 1} has no units")


def _check_unit(step: Step) -> None:
    u, where = step.unit, step.path
    if u.kind not in KINDS:
        raise SpecError(f"{where}: unknown unit kind {u.kind!r} (use {' or '.join(KINDS)})")
    for what, low in (("kernel", 1), ("dilation", 1), ("stride", 1), ("groups", 1), ("padding", 0)):
        value = getattr(u, what)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise SpecError(f"{where}: {what} must be an integer >= {low}, not {value!r}")
    if (
        not isinstance(u.dropout, (int, float))
        or isinstance(u.dropout, bool)
        or not 0 <= u.dropout < 1
    ):
        raise SpecError(f"{where}: dropout must be in [0, 1), not {u.dropout!r}")
    if u.kind == DWS and u.groups != 1:
        raise SpecError(
            f"{where}: groups applies to plain units; a depthwise conv's groups are its channels"
        )
    if u.groups > 1 and (step.c_in % u.groups or step.c_out % u.groups):
        raise SpecError(
            f"{where}: groups {u.groups} must divide both channel counts "
            f"({step.c_in} -> {step.c_out})"
        )
    if u.skip and step.c_in != step.c_out:
        raise SpecError(f"{where}: a skip needs equal channels, not {step.c_in} -> {step.c_out}")
    if u.skip and not u.keeps_size:
        raise SpecError(
            f"{where}: a skip needs a size-keeping unit (stride 1 and "
            f"2*padding == dilation*(kernel-1)), not padding {u.padding}, "
            f"dilation {u.dilation}, stride {u.stride}"
        )


def divisors(spec: NetSpec) -> tuple[int, ...]:
    """For each width, the number it must be a multiple of (lcm of the groups touching it)."""
    need = [1] * len(spec.widths)
    for step in steps(spec):
        g = step.unit.groups if step.unit.kind == PLAIN else 1
        need[step.c_out_width] = math.lcm(need[step.c_out_width], g)
        if step.c_in_width is not None:
            need[step.c_in_width] = math.lcm(need[step.c_in_width], g)
    return tuple(need)


def from_dict(data: dict) -> NetSpec:
    """Build a NetSpec from `to_dict`'s output (e.g. a JSON file); SpecError if malformed."""
    try:
        stages = tuple(
            Stage(tuple(ConvUnit(**u) for u in s["units"]), ConvUnit(**s["transition"]))
            for s in data["stages"]
        )
        return NetSpec(
            name=str(data.get("name", "custom")),
            stages=stages,
            widths=tuple(data["widths"]),
            in_channels=data.get("in_channels", 3),
            num_classes=data.get("num_classes", 10),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise SpecError(f"malformed spec: {type(exc).__name__}: {exc}") from None


def _hw(hw: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in hw)


def _shape(shape: tuple[int, ...]) -> str:
    return ",".join(str(n) for n in shape)


__all__ = [
    "PLAIN",
    "DWS",
    "KINDS",
    "SpecError",
    "ConvUnit",
    "Stage",
    "NetSpec",
    "Step",
    "steps",
    "check",
    "divisors",
    "from_dict",
]
