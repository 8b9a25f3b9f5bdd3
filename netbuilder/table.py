"""Variants in, text out: text, markdown, json and csv tables (nothing is computed here)."""
from __future__ import annotations

import csv
import io
import json
from fractions import Fraction
from typing import Optional, Sequence

from .variants import Variant

FORMATS = ("text", "markdown", "json", "csv")
COLUMNS = ("name", "conv", "transition", "skip", "depth", "widths", "params", "macs", "out",
           "rf", "rf_status", "meets_rf")


def _rf(rf: Optional[tuple[Fraction, ...]]) -> str:
    if rf is None:
        return "?"
    parts = [str(r) for r in rf]
    return parts[0] if len(set(parts)) == 1 else "x".join(parts)


def record(v: Variant) -> dict:
    """One variant as plain values (numbers stay numbers, for json)."""
    return {
        "name": v.name, "conv": v.conv, "transition": v.transition,
        "skip": v.skip, "depth": v.depth,
        "widths": list(v.spec.widths) if not v.skipped else None,
        "params": v.params if not v.skipped else None,
        "macs": v.macs if not v.skipped else None,
        "out": "x".join(map(str, v.size)) if v.size else None,
        "rf": _rf(v.rf) if not v.skipped else None,
        "rf_status": v.rf_status or None,
        "meets_rf": v.meets_rf,
        "skipped": v.skipped or None,
    }


def _cells(v: Variant) -> list[str]:
    return [v.name, v.conv, v.transition, "yes" if v.skip else "no", str(v.depth),
            ",".join(map(str, v.spec.widths)), f"{v.params:,}", f"{v.macs:,}",
            "x".join(map(str, v.size)), _rf(v.rf), v.rf_status,
            "yes" if v.meets_rf else "NO"]


def render(variants: Sequence[Variant], fmt: str = "text", *, budget: int, min_rf: float,
           skipped: Sequence[Variant] = ()) -> str:
    """The table of measured variants, plus the skipped ones and why (as notes or records)."""
    if fmt == "json":
        return json.dumps({"budget": budget, "min_rf": min_rf,
                           "variants": [record(v) for v in variants],
                           "skipped": [{"name": v.name, "reason": v.skipped} for v in skipped]},
                          indent=2) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS + ("skipped",))
        for v in list(variants) + list(skipped):
            rec = record(v)
            rec["widths"] = ",".join(map(str, rec["widths"])) if rec["widths"] else ""
            writer.writerow(["" if rec[c] is None else rec[c] for c in COLUMNS + ("skipped",)])
        return buf.getvalue()
    header = [c.replace("_", " ") for c in COLUMNS]
    rows = [_cells(v) for v in variants]
    notes = [f"skipped {v.name}: {v.skipped}" for v in skipped]
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines += [""] + [f"- {n}" for n in notes] if notes else []
        return "\n".join(lines) + "\n"
    if fmt != "text":
        raise ValueError(f"unknown format {fmt!r}")
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    numeric = {"depth", "params", "macs", "rf"}
    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if h in numeric else c.ljust(w)
                         for c, w, h in zip(cells, widths, COLUMNS)).rstrip()
    lines = [f"budget {budget:,} parameters, required receptive field {min_rf:g}",
             line(header)] + [line(r) for r in rows] + notes
    return "\n".join(lines) + "\n"
