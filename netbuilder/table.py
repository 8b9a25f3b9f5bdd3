"""Variants as a table; rfcalc's one table writer lays it out in any of its FORMATS.

Cells use rfcalc's notation (`48`, `48×128` in axis order, counts with thousands separators);
the JSON document keeps numbers as numbers and per-axis values as lists in axis order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from rfcalc.render.cells import axes
from rfcalc.render.json import number, per_axis
from rfcalc.render.table import FORMATS, Column, Table, TableRow, write

from .spec import NetSpec, steps

if TYPE_CHECKING:
    from .variants import Variant

__all__ = ["FORMATS", "COLUMNS", "record", "table", "render", "units_table"]

COLUMNS = (
    Column("name"),
    Column("conv"),
    Column("transition"),
    Column("skip"),
    Column("depth", numeric=True),
    Column("widths"),
    Column("params", numeric=True),
    Column("macs", numeric=True),
    Column("out", numeric=True),
    Column("rf", numeric=True),
    Column("rf_status"),
    Column("meets_rf"),
    Column("skipped", data_only=True),
)
MISSING = "-"


def record(v: Variant) -> dict[str, Any]:
    """One variant for the JSON document: numbers as numbers, null where it was not built."""
    built = not v.skipped
    return {
        "name": v.name,
        "conv": v.conv,
        "transition": v.transition,
        "skip": v.skip,
        "depth": v.depth,
        "widths": list(v.spec.widths) if built else None,
        "params": v.params if built else None,
        "macs": v.macs if built else None,
        "out": list(v.size) if built else None,
        "rf": per_axis(v.rf) if built else None,
        "rf_status": v.rf_status or None,
        "meets_rf": v.meets_rf,
        "skipped": v.skipped or None,
    }


def _cells(v: Variant) -> dict[str, Any]:
    built = not v.skipped
    return {
        "name": v.name,
        "conv": v.conv,
        "transition": v.transition,
        "skip": v.skip,
        "depth": v.depth,
        "widths": ",".join(map(str, v.spec.widths)) if built else MISSING,
        "params": v.params if built else MISSING,
        "macs": v.macs if built else MISSING,
        "out": axes(v.size) if built else MISSING,
        "rf": (axes(v.rf) if v.rf else "?") if built else MISSING,
        "rf_status": v.rf_status or MISSING,
        "meets_rf": "yes" if v.meets_rf else "NO",
        "skipped": v.skipped,
    }


def table(
    variants: Sequence[Variant],
    *,
    budget: int,
    min_rf: float,
    skipped: Sequence[Variant] = (),
    summary: Sequence[str] = (),
) -> Table:
    """The measured variants, then the skipped ones (their reasons as notes too)."""
    wanted = number(min_rf) if float(min_rf).is_integer() else min_rf
    doc = {
        "budget": budget,
        "min_rf": wanted,
        "variants": [record(v) for v in variants],
        "skipped": [{"name": v.name, "reason": v.skipped} for v in skipped],
    }
    rows = tuple(TableRow(_cells(v), status=v.rf_status) for v in (*variants, *skipped))
    return Table(
        COLUMNS,
        rows,
        doc,
        title=f"netbuilder variants at {budget:,} parameters",
        caption=(f"budget {budget:,} parameters, required receptive field {min_rf:g}",),
        summary=tuple(summary),
        notes_title="Variants that cannot be built",
        notes=tuple(f"{v.name}: {v.skipped}" for v in skipped),
    )


def render(
    variants: Sequence[Variant],
    fmt: str = "text",
    *,
    budget: int,
    min_rf: float,
    skipped: Sequence[Variant] = (),
    summary: Sequence[str] = (),
) -> str:
    """The table (see `table`) in one of FORMATS; ValueError for any other name."""
    return write(
        table(variants, budget=budget, min_rf=min_rf, skipped=skipped, summary=summary), fmt
    )


UNIT_COLUMNS = (
    Column("unit"),
    Column("kind"),
    Column("channels"),
    Column("kernel", numeric=True),
    Column("stride", numeric=True),
    Column("padding", numeric=True),
    Column("dilation", numeric=True),
    Column("groups", numeric=True),
    Column("skip"),
    Column("dropout", numeric=True),
)


def units_table(spec: NetSpec) -> Table:
    """A spec's units in execution order (`c1.0` ... `t4`), one row each: what it is and the
    channels it maps; then GAP and the head."""
    rows, units = [], []
    for step in steps(spec):
        u = step.unit
        cells = {
            "unit": step.path,
            "kind": u.kind,
            "channels": f"{step.c_in} -> {step.c_out}",
            "kernel": u.kernel,
            "stride": u.stride,
            "padding": u.padding,
            "dilation": u.dilation,
            "groups": u.groups,
            "skip": u.skip,
            "dropout": f"{u.dropout:g}",
        }
        rows.append(TableRow(cells))
        units.append(cells)
    widths = ", ".join(map(str, spec.widths))
    return Table(
        UNIT_COLUMNS,
        tuple(rows),
        {"name": spec.name, "units": units, **spec.to_dict()},
        title=f"netbuilder spec {spec.name}",
        caption=(f"{spec.name}: widths {widths}, input channels {spec.in_channels}",),
        summary=(
            f"then global average pooling and a 1×1 head to {spec.num_classes} classes "
            "(log-softmax)",
        ),
    )
