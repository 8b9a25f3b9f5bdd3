"""CSV (the csv module): one header line and one line per row, every column; no summary.

Data-only columns (a row's status and note, say) carry what the other formats show with
marks, colours and footnotes, so a spreadsheet loses nothing.
"""

from __future__ import annotations

import csv
import io

from rfcalc.render.table import Table, cell_text

__all__ = ["write"]


def write(table: Table) -> str:
    """Every row, cells as in the text table (`1×7`, `1/2`), counts without separators."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([c.name for c in table.columns])
    for row in table.rows:
        writer.writerow([cell_text(row.cells[c.name], csv=True) for c in table.columns])
    return buffer.getvalue()
