"""A GitHub-flavoured Markdown table, then the summary as a list."""
from __future__ import annotations

from rfcalc.analysis import Analysis
from rfcalc.render.cells import COLUMNS, NUMERIC, row_cells, row_notes, summary_lines

__all__ = ["render", "escape"]


def escape(text: str) -> str:
    """Escape what would break a table cell or turn into emphasis."""
    for ch in "\\|*_`<>~":
        text = text.replace(ch, "\\" + ch)
    return text


def render(analysis: Analysis) -> str:
    """A pipe table of every row, then the summary lines and any row notes as bullets."""
    out = ["| " + " | ".join(COLUMNS) + " |",
           "|" + "|".join("---:" if c in NUMERIC else ":---" for c in COLUMNS) + "|"]
    for row in analysis.rows:
        cells = row_cells(row)
        out.append("| " + " | ".join(escape(cells[c]) for c in COLUMNS) + " |")
    out.append("")
    out.extend(f"- {escape(line)}" for line in summary_lines(analysis))
    out.extend(f"- {escape(note)}" for note in row_notes(analysis))
    return "\n".join(out) + "\n"
