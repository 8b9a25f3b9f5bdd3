"""Plain text: an aligned table between rules, in the spirit of torchinfo's summary, then the
summary lines and the notes.

The alignment is tabulate's. tabulate rather than rich: the table goes to pipes, files and
tests as often as to a terminal, and tabulate's output depends on the cells alone, where rich
fits tables to the terminal's width (wrapping or cutting wide ones) and adds styling codes.
"""

from __future__ import annotations

from tabulate import DataRow, TableFormat, tabulate

from rfcalc.render.table import Table, cell_text

__all__ = ["write"]

# Columns two spaces apart and nothing else: the rules are drawn here, and the header goes in
# as a row because tabulate pads `headers=` two extra characters.
_FORMAT = TableFormat(
    lineabove=None,
    linebelowheader=None,
    linebetweenrows=None,
    linebelow=None,
    headerrow=DataRow("", "  ", ""),
    datarow=DataRow("", "  ", ""),
    padding=0,
    with_header_hide=None,
)


def write(table: Table) -> str:
    """Caption, the table (the `under` column on a line of its own below each row), summary,
    then the notes under their title."""
    columns = [c for c in table.shown if c.name != table.under]
    body = []
    for row in table.rows:
        cells = [cell_text(row.cells[c.name]) for c in columns]
        cells[0] = "  " * row.depth + cells[0]  # nested modules read as a tree
        body.append(cells)
    lines = tabulate(
        [[c.name for c in columns], *body],
        tablefmt=_FORMAT,
        colalign=["right" if c.numeric else "left" for c in columns],
        disable_numparse=True,
        preserve_whitespace=True,
    ).splitlines()
    lines = [line.rstrip() for line in lines]
    width = max(len(line) for line in lines)
    out = [*table.caption, "=" * width, lines[0], "-" * width]
    for row, line in zip(table.rows, lines[1:]):
        out.append(line)
        extra = cell_text(row.cells.get(table.under, "")) if table.under else ""
        if extra:
            out.append(f"    {extra}")
    out += ["=" * width, *table.summary]
    if table.notes:
        out.append(f"{table.notes_title}:" if table.notes_title else "Notes:")
        out.extend(f"  {n}" for n in table.notes)
    return "\n".join(out) + "\n"
