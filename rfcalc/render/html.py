"""HTML: a standalone page (`write`) or the bare table for a notebook (`fragment`), every
string escaped, rows coloured by their status."""

from __future__ import annotations

from html import escape

from rfcalc.render.table import Table, TableRow, cell_text

__all__ = ["write", "fragment"]

# The colours of the row statuses that are not exact (rfcalc's; netbuilder's rows carry them),
# and of a verify row whose measurement differs from the theory
COLOURS = {"approx": "#8a5a00", "global": "#225", "unknown": "#a00", "differs": "#c00"}

_STYLE = (
    """
body { font-family: system-ui, sans-serif; margin: 2em; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 0.2em 0.6em; border-bottom: 1px solid #ddd; }
th { text-align: left; background: #f4f4f4; }
td.num { text-align: right; }
""".strip()
    + "\n"
    + " ".join(f"tr.{s} td {{ color: {c}; }}" for s, c in COLOURS.items())
)


def _row(table: Table, row: TableRow, inline: bool) -> str:
    num = '<td class="num" style="text-align: right">' if inline else '<td class="num">'
    tds = "".join(
        (num if c.numeric else "<td>") + escape(cell_text(row.cells[c.name])) + "</td>"
        for c in table.shown
    )
    attrs = f' class="{escape(row.status)}"' if row.status else ""
    if inline and row.status in COLOURS:  # a notebook shows no page style sheet
        attrs += f' style="color: {COLOURS[row.status]}"'
    if row.tip:
        attrs += f' title="{escape(row.tip)}"'
    return f"<tr{attrs}>{tds}</tr>"


def _body(table: Table, inline: bool) -> str:
    head = "".join(f"<th>{escape(c.name)}</th>" for c in table.shown)
    rows = "\n".join(_row(table, r, inline) for r in table.rows)
    caption = "".join(f"<p>{escape(line)}</p>\n" for line in table.caption)
    summary = "".join(f"<li>{escape(line)}</li>" for line in table.summary)
    notes = ""
    if table.notes:
        notes = (
            f"<h2>{escape(table.notes_title or 'Notes')}</h2><ul>"
            + "".join(f"<li>{escape(n)}</li>" for n in table.notes)
            + "</ul>\n"
        )
    return (
        f"{caption}<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n"
        "</table>\n" + (f"<ul>{summary}</ul>\n" if summary else "") + notes
    )


def fragment(table: Table) -> str:
    """Caption, table, summary and notes as HTML elements with the row colours inline, for a
    notebook's output cell."""
    return _body(table, inline=True)


def write(table: Table) -> str:
    """A complete page (doctype, charset, title); rows carry their status as a CSS class."""
    title = escape(table.title or "table")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
{_STYLE}
</style>
</head>
<body>
<h1>{title}</h1>
{_body(table, inline=False)}</body>
</html>
"""
