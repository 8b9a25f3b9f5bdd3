"""Plain-text table in the spirit of torchinfo's summary, then the summary lines."""
from __future__ import annotations

from rfcalc.analysis import Analysis
from rfcalc.render.cells import COLUMNS, NUMERIC, row_cells, row_notes, summary_lines

__all__ = ["render"]


def render(analysis: Analysis) -> str:
    """The rows as an aligned table (names indented by module depth), the summary below."""
    rows = []
    for row in analysis.rows:
        cells = row_cells(row)
        # indent by depth so nested blocks read as a tree, as torchinfo does
        depth = row.name.count(".")
        cells["name"] = "  " * depth + row.name
        rows.append(cells)
    widths = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in COLUMNS}

    def line(cells: dict[str, str]) -> str:
        return "  ".join(cells[c].rjust(widths[c]) if c in NUMERIC else cells[c].ljust(widths[c])
                         for c in COLUMNS).rstrip()

    header = line({c: c for c in COLUMNS})
    rule = "=" * len(header)
    out = [rule, header, "-" * len(header), *(line(r) for r in rows), rule]
    out.extend(summary_lines(analysis))
    notes = row_notes(analysis)
    if notes:
        out.append("Rows that are not exact (~ marks an approximate bound):")
        out.extend(f"  {n}" for n in notes)
    return "\n".join(out) + "\n"
