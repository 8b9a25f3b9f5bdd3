"""CSV: one header line and one line per row (written by the csv module), no summary.

The status and note columns carry what the text format shows as `global`, `?`, `~` and
footnotes, so a spreadsheet loses nothing.
"""
from __future__ import annotations

import csv
import io

from rfcalc.analysis import Analysis
from rfcalc.render.cells import COLUMNS, row_cells

__all__ = ["render"]

HEADER = (*COLUMNS, "status", "note")


def render(analysis: Analysis) -> str:
    """Every row, cells written as in the text table (`1×7`, `1/2`); params without commas."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    for row in analysis.rows:
        cells = row_cells(row)
        cells["params"] = str(row.params)  # a number a spreadsheet can sum
        writer.writerow([*(cells[c] for c in COLUMNS), row.status, row.note])
    return buffer.getvalue()
