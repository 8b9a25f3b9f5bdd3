"""A standalone HTML page: the table and the summary, every string escaped."""
from __future__ import annotations

from html import escape

from rfcalc.analysis import Analysis
from rfcalc.render.cells import COLUMNS, NUMERIC, row_cells, row_notes, summary_lines, shape

__all__ = ["render"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 0.2em 0.6em; border-bottom: 1px solid #ddd; }
th { text-align: left; background: #f4f4f4; }
td.num { text-align: right; }
tr.approx td { color: #8a5a00; } tr.global td { color: #225; } tr.unknown td { color: #a00; }
""".strip()


def render(analysis: Analysis, title: str = "") -> str:
    """A complete page (doctype, charset, title); rows carry their status as a CSS class."""
    title = title or f"rfcalc: receptive fields at input {shape(analysis.input_shape)}"
    head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
    body = []
    for row in analysis.rows:
        cells = row_cells(row)
        tds = "".join(f'<td class="num">{escape(cells[c])}</td>' if c in NUMERIC
                      else f"<td>{escape(cells[c])}</td>" for c in COLUMNS)
        tip = f' title="{escape(row.note)}"' if row.note else ""
        body.append(f'<tr class="{escape(row.status)}"{tip}>{tds}</tr>')
    summary = "".join(f"<li>{escape(line)}</li>" for line in summary_lines(analysis))
    notes = row_notes(analysis)
    notes_html = ("<h2>Rows that are not exact</h2><ul>"
                  + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>") if notes else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)}</title>
<style>
{_STYLE}
</style>
</head>
<body>
<h1>{escape(title)}</h1>
<table>
<thead><tr>{head}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody>
</table>
<ul>{summary}</ul>
{notes_html}
</body>
</html>
"""
