"""How one value of a Row is written as text, shared by every tabular format.

Per-axis values are compact: `3` when all axes agree, `1×7` when they don't. Fractions (from
up-sampling) are always written as exact fractions, `1/2`, never as decimals. A missing value
(an op without a window) is `-`.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Optional, Sequence, Union

from rfcalc.geometry import APPROX, GLOBAL, UNKNOWN

if TYPE_CHECKING:  # the types only: Analysis calls the renderers, never the reverse
    from rfcalc.analysis import Analysis, Row

__all__ = [
    "COLUMNS",
    "TABLE_COLUMNS",
    "NUMERIC",
    "TIMES",
    "axes",
    "number",
    "row_cells",
    "rf_cell",
    "shape",
    "summary_lines",
    "params",
]

COLUMNS = (
    "name",
    "op",
    "kernel",
    "stride",
    "padding",
    "dilation",
    "size",
    "jump",
    "rf",
    "start",
    "params",
)
# `rfcalc table`'s columns: the geometry above (the explorer's), with the output channels
# beside the size and the multiply-adds beside the parameters, as torchinfo shows them
TABLE_COLUMNS = (*COLUMNS[:6], "channels", *COLUMNS[6:], "macs")
NUMERIC = frozenset(TABLE_COLUMNS[2:])  # right-aligned where a format aligns
TIMES = "×"
MISSING = "-"
APPROX_MARK = "~"  # rf of an APPROX row is a bound, not exact

Value = Union[int, Fraction]


def number(v: Value) -> str:
    """An int as is, a Fraction as `p/q` (or as an int when integral)."""
    f = Fraction(v)
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"


def axes(values: Optional[Sequence[Value]]) -> str:
    """`3` when all axes agree, `1×7` when not, `-` when absent or flattened."""
    if not values:
        return MISSING
    if all(v == values[0] for v in values):
        return number(values[0])
    return TIMES.join(number(v) for v in values)


def params(n: int) -> str:
    """Parameters with thousands separators, as torchinfo writes them."""
    return f"{n:,}"


def rf_cell(row: Row) -> str:
    """The rf column: `global`, `?` for unknown, a `~` mark on approximate bounds; per axis
    where only some axes are global (`5×global`)."""
    per = row.axis_status
    if row.status == GLOBAL and per and len(set(per)) > 1:
        return TIMES.join(
            "global" if s == GLOBAL else (APPROX_MARK if s == APPROX else "") + number(v)
            for s, v in zip(per, row.rf)
        )
    if row.status == GLOBAL:
        return "global"
    if row.status == UNKNOWN:
        return "?"
    text = axes(row.rf)
    return APPROX_MARK + text if row.status == APPROX and text != MISSING else text


def row_cells(row: Row) -> dict[str, str]:
    """Every column of one row as text."""
    unknown = row.status == UNKNOWN
    return {
        "name": row.name,
        "op": row.op,
        "kernel": axes(row.kernel),
        "stride": axes(row.stride),
        "padding": axes(row.padding),
        "dilation": axes(row.dilation),
        "size": axes(row.size),
        # an unknown row claims nothing: its jump and start are as unknown as its field
        "jump": "?" if unknown else axes(row.jump),
        "rf": rf_cell(row),
        "start": "?" if unknown else axes(row.start),
        "params": params(row.params),
        "channels": MISSING if row.channels is None else str(row.channels),
        "macs": params(row.macs),
    }


def shape(dims: Sequence[int]) -> str:
    return TIMES.join(str(d) for d in dims)


def summary_lines(analysis: Analysis) -> list[str]:
    """The summary under a table: input, output field, jump, size, parameters, coverage."""
    out = analysis.output
    spatial = tuple(analysis.input_shape[1:])
    layout = {1: " (C×L)", 2: " (C×H×W)", 3: " (C×D×H×W)"}.get(len(spatial), "")
    if analysis.batch is None:
        lines = [f"Input: {shape(analysis.input_shape)}{layout}"]
    else:  # said once, here: every other number is per image
        inner = layout.strip(" ()")
        lines = [
            f"Input: {shape((analysis.batch, *analysis.input_shape))}"
            + (f" (N×{inner})" if inner else "")
            + f", a batch of {analysis.batch}: fields and MACs are per image"
        ]
    if analysis.outputs:
        first = analysis.outputs[0][0]
        lines.append(
            f"Outputs: the model returns {len(analysis.outputs)} tensors "
            f"({', '.join(w for w, _ in analysis.outputs)}); the lines below are of the "
            f"first, {first} (row {out.name}); the others under them"
        )
    if out.status == GLOBAL:
        lines.append(
            "Output receptive field: global (every input position reaches every output)"
            + (f"; {out.note}" if out.note else "")
        )
    elif out.status == UNKNOWN:
        lines.append(
            "Output receptive field: unknown, an op without a rule touched the map"
            + (f": {out.note}" if out.note else "")
        )
    else:
        bound = " (approximate: an upper bound)" if out.status == APPROX else ""
        if out.holes:  # the extent is exact; the pixels read inside it are another fact
            bound = f", of which a unit reads {out.reads[0]:,} of {out.reads[1]:,} pixels (holes)"
        lines.append(
            f"Output receptive field: {axes(out.rf)}{bound}"
            + (f"; {out.note}" if out.note and out.status == APPROX else "")
        )
    if out.status != UNKNOWN:
        lines.append(
            f"Output jump: {axes(out.jump)}, start: {axes(out.start)}, "
            f"size: {axes(out.size) if out.size else 'flattened'}"
        )
    lines.append(f"Parameters: {params(analysis.params)}")
    lines.append(f"Multiply-adds (MACs): {params(analysis.macs)} per image")
    if out.status == UNKNOWN:
        lines.append("Covers the whole input: unknown")
    else:
        verdict = "yes" if analysis.covers_input else "no"
        lines.append(f"Covers the whole {shape(spatial)} input: {verdict}")
    for where, row in analysis.outputs[1:]:
        size = axes(row.size) if row.size else "flattened"
        lines.append(
            f"Output {where}: row {row.name}, rf {rf_cell(row)}, jump {axes(row.jump)}, "
            f"size {size}, channels {'-' if row.channels is None else row.channels}"
        )
    return lines
