"""The gradient check (`rfcalc.verify`'s Verification) side by side with the theory.

Formats: those of rfcalc's one table writer (`rfcalc.render.table`). Spans are inclusive
input-pixel ranges of the centre unit, written `lo..hi` per axis (`14..16` when all axes
agree, `0..31×2..29` when not).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from rfcalc.render.cells import TIMES, axes, shape
from rfcalc.render.json import per_axis
from rfcalc.render.table import FORMATS, Column, Table, TableRow, write
from rfcalc.verify import RowCheck, Verification

__all__ = ["FORMATS", "render", "table", "check_cells", "summary_lines"]

COLUMNS = ("name", "op", "status", "centre", "rf", "theory", "measured", "check", "note")
OK, DIFFERS, NOT_MEASURED = "ok", "DIFFERS", "-"

Spans = Optional[Sequence[tuple[int, int]]]


def spans(value: Spans) -> str:
    """`14..16` when every axis has the same span, `0..31×2..29` when not, `none` if None."""
    if value is None:
        return "none"
    parts = [f"{lo}..{hi}" for lo, hi in value]
    return parts[0] if all(p == parts[0] for p in parts) else TIMES.join(parts)


def clipped(check: RowCheck) -> bool:
    """Whether the image border cut the centre unit's field (so the spans are smaller)."""
    inside = check.theory_clipped_rf
    return inside is not None and any(r > n for r, n in zip(check.theory_rf, inside))


def verdict(check: RowCheck) -> str:
    return NOT_MEASURED if check.agree is None else OK if check.agree else DIFFERS


def _note(check: RowCheck) -> str:
    parts = [check.note] if check.note else []
    if clipped(check):
        parts.append(
            f"clipped by the border: rf {axes(check.theory_rf)}, "
            f"{axes(check.theory_clipped_rf)} inside the image"
        )
    return "; ".join(parts)


def check_cells(check: RowCheck) -> dict[str, str]:
    """One check as text cells."""
    return {
        "name": check.name,
        "op": check.op,
        "status": check.status,
        "centre": axes(check.centre),
        "rf": axes(check.theory_rf),
        "theory": spans(check.theory_span) if check.agree is not None else "-",
        "measured": spans(check.measured_span) if check.agree is not None else "-",
        "check": verdict(check),
        "note": _note(check),
    }


def summary_lines(result: Verification) -> list[str]:
    checks = result.checks
    differ = result.disagreements
    unmeasured = sum(c.agree is None for c in checks)
    lines = [
        f"Input: {shape(result.input_shape)}",
        f"{len(checks)} rows: {len(checks) - len(differ) - unmeasured} agree, "
        f"{len(differ)} differ, {unmeasured} not measured (unknown fields)",
    ]
    n_clipped = sum(clipped(c) for c in checks)
    if n_clipped:
        lines.append(
            f"{n_clipped} rows have fields clipped by the image border: both sides "
            "are compared inside the image"
        )
    if differ:
        lines.append("DISAGREEMENT: " + ", ".join(c.name for c in differ))
    lines.extend(f"Note: {n}" for n in result.notes)
    return lines


def _span_list(value: Spans) -> Optional[list[list[int]]]:
    return None if value is None else [[lo, hi] for lo, hi in value]


def document(result: Verification) -> dict[str, Any]:
    """The JSON document: input, one entry per row, agree, the names that differ, notes."""
    return {
        "input": list(result.input_shape),
        "rows": [
            {
                "name": c.name,
                "op": c.op,
                "status": c.status,
                "size": list(c.size),
                "centre": list(c.centre),
                "rf": per_axis(c.theory_rf) if c.theory_rf else None,
                "theory_span": _span_list(c.theory_span),
                "measured_span": _span_list(c.measured_span),
                "agree": c.agree,
                "clipped": clipped(c),
                "note": c.note or None,
            }
            for c in result.checks
        ],
        "agree": result.agree,
        "disagreements": [c.name for c in result.disagreements],
        "notes": list(result.notes),
    }


def table(result: Verification) -> Table:
    """The checks as a table for rfcalc's one writer; the note goes under its row in text."""
    rows = tuple(
        TableRow(check_cells(c), status="differs" if c.agree is False else c.status, tip=c.note)
        for c in result.checks
    )
    return Table(
        tuple(Column(c) for c in COLUMNS),
        rows,
        document(result),
        title=f"rfcalc verify at input {shape(result.input_shape)}",
        summary=tuple(summary_lines(result)),
        under="note",
    )


def render(result: Verification, fmt: str = "text") -> str:
    """The verification in one of FORMATS; ValueError for any other name."""
    return write(table(result), fmt)
