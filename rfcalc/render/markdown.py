"""A GitHub-flavoured Markdown table, the caption above it, summary and notes as a list."""

from __future__ import annotations

from rfcalc.render.table import Table, cell_text

__all__ = ["write", "escape"]


def escape(text: str) -> str:
    """Escape what would break a table cell or turn into emphasis."""
    for ch in "\\|*_`<>~":
        text = text.replace(ch, "\\" + ch)
    return text


def write(table: Table) -> str:
    """A pipe table of every row, then the summary lines and the notes as bullets."""
    cols = table.shown
    out = [escape(line) for line in table.caption] + ([""] if table.caption else [])
    out += [
        "| " + " | ".join(escape(c.name) for c in cols) + " |",
        "|" + "|".join("---:" if c.numeric else ":---" for c in cols) + "|",
    ]
    out += [
        "| " + " | ".join(escape(cell_text(r.cells[c.name])) for c in cols) + " |"
        for r in table.rows
    ]
    tail = [*table.summary, *table.notes]
    if tail:
        out.append("")
        out.extend(f"- {escape(line)}" for line in tail)
    return "\n".join(out) + "\n"
