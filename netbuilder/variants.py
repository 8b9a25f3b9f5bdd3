"""The family the course compares, each widened to one budget and measured by rfcalc.

Axes: conv kind (plain, dws) x transition (dilated: dilation 2**i unpadded; none: plain 3x3
unpadded; strided: stride 2 padded) x skips (on, off) x units per block (1, 2, 3). The first
unit of stage 1 stays the base's stem (a plain conv from the input's channels), so depth n
means n units in every block, the stem included. A variant is named
`<conv>-<transition>-<skip|noskip>-x<depth>`; `dws-dilated-skip-x2` is the assignment's Net.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Callable, Iterable, Optional

from rfcalc import UNKNOWN

from .presets import s9
from .spec import KINDS, ConvUnit, NetSpec, SpecError, Stage, check

if TYPE_CHECKING:  # torch and sympy load when a net is measured: `netbuilder --help` is quick
    from .build import Net

TRANSITIONS = ("dilated", "none", "strided")
SKIPS = (True, False)
DEPTHS = (1, 2, 3)
SORT_KEYS = ("rf", "params", "macs", "name")


@dataclass(frozen=True)
class Variant:
    """One member of the family: its structure, and after measuring, its numbers."""

    name: str
    spec: NetSpec  # base widths until measured, then solved ones
    conv: str
    transition: str
    skip: bool
    depth: int
    params: int = 0
    macs: int = 0
    size: tuple[int, ...] = ()  # the map before the global average
    rf: Optional[tuple[Fraction, ...]] = None
    rf_status: str = ""
    meets_rf: bool = False
    skipped: str = ""  # why it could not be built, if it could not
    over_budget: bool = False  # skipped because even the narrowest is too big

    @property
    def rf_min(self) -> Optional[Fraction]:
        return min(self.rf) if self.rf else None

    def __repr__(self) -> str:
        from rfcalc.render.cells import axes

        if self.skipped:
            return f"<Variant {self.name}: cannot be built: {self.skipped}>"
        if not self.params:
            return f"<Variant {self.name}: not measured (netbuilder.variants.measure)>"
        rf = axes(self.rf) if self.rf else "?"
        meets = "meets the rf" if self.meets_rf else "below the rf"
        return (
            f"<Variant {self.name}: widths {','.join(map(str, self.spec.widths))}, "
            f"{self.params:,} params, {self.macs:,} MACs, rf {rf} ({self.rf_status}), {meets}>"
        )

    def _repr_html_(self) -> str:
        from rfcalc.render import html
        from rfcalc.render.table import Table, TableRow

        from .table import COLUMNS, _cells, record

        row = TableRow(_cells(self), status=self.rf_status)
        return html.fragment(Table(COLUMNS, (row,), record(self), notes=()))


def variant_name(conv: str, transition: str, skip: bool, depth: int) -> str:
    return f"{conv}-{transition}-{'skip' if skip else 'noskip'}-x{depth}"


def structure(base: NetSpec, conv: str, transition: str, skip: bool, depth: int) -> NetSpec:
    """The variant's spec at the base's widths (the solver rescales them)."""
    stem = base.stages[0].units[0]
    dropout = stem.dropout
    unit = ConvUnit(kind=conv, padding=1, skip=skip, dropout=dropout)
    stages = []
    for i in range(len(base.stages)):
        units = (stem,) + (unit,) * (depth - 1) if i == 0 else (unit,) * depth
        if transition == "dilated":
            t = ConvUnit(dilation=2**i, padding=0, dropout=dropout)
        elif transition == "strided":
            t = ConvUnit(stride=2, padding=1, dropout=dropout)
        else:
            t = ConvUnit(padding=0, dropout=dropout)
        stages.append(Stage(units, t))
    name = variant_name(conv, transition, skip, depth)
    return NetSpec(name, tuple(stages), base.widths, base.in_channels, base.num_classes)


def family(base: Optional[NetSpec] = None) -> dict[str, Variant]:
    """Every variant (not yet measured) by name, in a fixed order."""
    base = base or s9()
    out = {}
    for conv, trans, skip, depth in itertools.product(KINDS, TRANSITIONS, SKIPS, DEPTHS):
        spec = structure(base, conv, trans, skip, depth)
        out[spec.name] = Variant(spec.name, spec, conv, trans, skip, depth)
    return out


def lookup(name: str, base: Optional[NetSpec] = None) -> NetSpec:
    """A variant's structure (at the base widths) by name; SpecError otherwise."""
    variants = family(base)
    if name not in variants:
        raise SpecError(
            f"unknown variant {name!r}: expected <plain|dws>-<dilated|none|strided>"
            "-<skip|noskip>-x<1|2|3>, e.g. dws-dilated-skip-x2, or a preset (s9)"
        )
    return variants[name].spec


def measure(v: Variant, budget: int, input_shape: tuple[int, ...], min_rf: float = 0) -> Variant:
    """Widen one variant to the budget, build it and analyse its receptive field."""
    from .budget import BudgetError, evaluate, macs_poly, solve
    from .build import Net, count_params

    try:
        sizes = check(v.spec, input_shape)
        sized = solve(v.spec, budget).spec
    except BudgetError as exc:
        return replace(v, skipped=_reason(v, exc), over_budget=True)
    except SpecError as exc:
        return replace(v, skipped=_reason(v, exc))
    model = Net(sized).eval()
    rf, status = receptive_field(model, input_shape)
    return replace(
        v,
        spec=sized,
        params=count_params(model),
        macs=evaluate(macs_poly(sized, input_shape), sized.widths),
        size=sizes[-1],
        rf=rf,
        rf_status=status,
        meets_rf=rf is not None and min(rf) >= min_rf,
    )


def generate(
    budget: int,
    input_shape: tuple[int, ...] = (3, 32, 32),
    min_rf: float = 0,
    base: Optional[NetSpec] = None,
    progress: Callable[[Iterable[Variant]], Iterable[Variant]] = iter,
) -> list[Variant]:
    """Measure the whole family; BudgetError/SpecError if not one variant can be built.

    `progress` wraps the variants as they are measured (a progress bar, say)."""
    import torch

    from .budget import BudgetError

    if budget < 1:
        raise BudgetError(f"budget must be a positive number of parameters, not {budget}")
    threads = torch.get_num_threads()
    # One-image probes of small nets: thread hand-offs cost more than they save (10x slower
    # with 2 threads on a busy 2-core machine), so measure single-threaded.
    torch.set_num_threads(1)
    try:
        out = [measure(v, budget, input_shape, min_rf) for v in progress(family(base).values())]
    finally:
        torch.set_num_threads(threads)
    if all(v.skipped for v in out):
        if all(v.over_budget for v in out):
            raise BudgetError(
                f"budget {budget:,} is too small for every variant (e.g. {out[0].skipped})"
            )
        raise SpecError(
            f"no variant can be built on input {','.join(map(str, input_shape))} "
            f"(e.g. {out[0].skipped})"
        )
    return out


def sort_variants(variants: list[Variant], key: str = "rf") -> list[Variant]:
    """Numbers largest first (rf, then params, then name), names alphabetically."""
    if key not in SORT_KEYS:
        raise SpecError(f"unknown sort key {key!r} (use {', '.join(SORT_KEYS)})")

    def rank(v: Variant):
        rf = v.rf_min if v.rf_min is not None else Fraction(-1)
        if key == "name":
            return (v.name,)
        if key == "params":
            return (-v.params, -rf, v.name)
        if key == "macs":
            return (-v.macs, -rf, v.name)
        return (-rf, -v.params, v.name)

    return sorted(variants, key=rank)


def _reason(v: Variant, exc: Exception) -> str:
    """The error without the variant's own name in front (the table names it already)."""
    text = str(exc)
    return text[len(v.name) + 2 :] if text.startswith(f"{v.name}: ") else text


def receptive_field(model: Net, input_shape: tuple[int, ...]):
    """The output's field from rfcalc: (per-axis rf or None if unknown, status)."""
    from rfcalc import analyze

    # netbuilder's nets are built from modules rfcalc follows op by op (no writes it could
    # miss), so the perturbation check would only cost time for every variant
    out = analyze(model, input_shape, check=False).output
    if out.status == UNKNOWN or not out.rf:
        return None, out.status
    return tuple(Fraction(r) for r in out.rf), out.status


__all__ = [
    "TRANSITIONS",
    "SKIPS",
    "DEPTHS",
    "SORT_KEYS",
    "Variant",
    "variant_name",
    "structure",
    "family",
    "lookup",
    "measure",
    "generate",
    "sort_variants",
    "receptive_field",
]
