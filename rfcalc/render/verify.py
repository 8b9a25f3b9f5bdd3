"""The gradient check (`rfcalc.verify`'s Verification) side by side with the theory.

Formats: text, markdown, csv, json. Spans are inclusive input-pixel ranges of the centre
unit, written `lo..hi` per axis (`14..16` when all axes agree, `0..31×2..29` when not).
"""
from __future__ import annotations

import csv
import io
from typing import Any, Optional, Sequence

from rfcalc.render.cells import TIMES, axes, shape
from rfcalc.render.json import dumps, per_axis
from rfcalc.render.markdown import escape as md_escape
from rfcalc.verify import RowCheck, Verification

__all__ = ["FORMATS", "render", "check_cells", "summary_lines"]

FORMATS = ("text", "markdown", "csv", "json")
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
        parts.append(f"clipped by the border: rf {axes(check.theory_rf)}, "
                     f"{axes(check.theory_clipped_rf)} inside the image")
    return "; ".join(parts)


def check_cells(check: RowCheck) -> dict[str, str]:
    """One check as text cells."""
    return {"name": check.name, "op": check.op, "status": check.status,
            "centre": axes(check.centre), "rf": axes(check.theory_rf),
            "theory": spans(check.theory_span) if check.agree is not None else "-",
            "measured": spans(check.measured_span) if check.agree is not None else "-",
            "check": verdict(check), "note": _note(check)}


def summary_lines(result: Verification) -> list[str]:
    checks = result.checks
    differ = result.disagreements
    unmeasured = sum(c.agree is None for c in checks)
    lines = [f"Input: {shape(result.input_shape)}",
             f"{len(checks)} rows: {len(checks) - len(differ) - unmeasured} agree, "
             f"{len(differ)} differ, {unmeasured} not measured (unknown fields)"]
    n_clipped = sum(clipped(c) for c in checks)
    if n_clipped:
        lines.append(f"{n_clipped} rows have fields clipped by the image border: both sides "
                     "are compared inside the image")
    if differ:
        lines.append("DISAGREEMENT: " + ", ".join(c.name for c in differ))
    lines.extend(f"Note: {n}" for n in result.notes)
    return lines


def _text(result: Verification) -> str:
    rows = [check_cells(c) for c in result.checks]
    cols = COLUMNS[:-1]  # the note goes under its row: it is long and usually empty
    widths = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in cols}

    def line(cells: dict[str, str]) -> str:
        return "  ".join(cells[c].ljust(widths[c]) for c in cols).rstrip()

    header = line({c: c for c in cols})
    out = ["=" * len(header), header, "-" * len(header)]
    for cells in rows:
        out.append(line(cells))
        if cells["note"]:
            out.append(f"    {cells['note']}")
    out.append("=" * len(header))
    out.extend(summary_lines(result))
    return "\n".join(out) + "\n"


def _markdown(result: Verification) -> str:
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(":---" for _ in COLUMNS) + "|"]
    for check in result.checks:
        cells = check_cells(check)
        out.append("| " + " | ".join(md_escape(cells[c]) for c in COLUMNS) + " |")
    out.append("")
    out.extend(f"- {md_escape(line)}" for line in summary_lines(result))
    return "\n".join(out) + "\n"


def _csv(result: Verification) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for check in result.checks:
        cells = check_cells(check)
        writer.writerow([cells[c] for c in COLUMNS])
    return buffer.getvalue()


def _span_list(value: Spans) -> Optional[list[list[int]]]:
    return None if value is None else [[lo, hi] for lo, hi in value]


def document(result: Verification) -> dict[str, Any]:
    """The JSON document: input, one entry per row, agree, the names that differ, notes."""
    return {
        "input": list(result.input_shape),
        "rows": [{"name": c.name, "op": c.op, "status": c.status, "size": list(c.size),
                  "centre": list(c.centre), "rf": per_axis(c.theory_rf) if c.theory_rf else None,
                  "theory_span": _span_list(c.theory_span),
                  "measured_span": _span_list(c.measured_span),
                  "agree": c.agree, "clipped": clipped(c), "note": c.note or None}
                 for c in result.checks],
        "agree": result.agree,
        "disagreements": [c.name for c in result.disagreements],
        "notes": list(result.notes),
    }


def render(result: Verification, fmt: str = "text") -> str:
    """The verification in one of FORMATS; ValueError for any other name."""
    if fmt == "json":
        return dumps(document(result))
    writers = {"text": _text, "markdown": _markdown, "csv": _csv}
    if fmt not in writers:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return writers[fmt](result)
