"""The one table writer: every command's table (`rfcalc table`, `rfcalc verify`, `netbuilder
variants`) is a `Table`, and `write(table, fmt)` turns it into one of FORMATS.

A caller decides what the cells say (as text, in the project's notation: `3`, `1×7`, `1/2`,
`-` for a missing value, see `rfcalc.render.cells`) and what the JSON document holds (numbers
as numbers); the writers only lay the table out. Integer cells are counts: written with
thousands separators (`190,509`) everywhere but in CSV, where a spreadsheet must be able to
sum them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Mapping, Union

__all__ = ["FORMATS", "Cell", "Column", "TableRow", "Table", "write", "cell_text"]

FORMATS = ("text", "markdown", "csv", "json", "html", "latex")

Cell = Union[str, int]


@dataclass(frozen=True)
class Column:
    """One column: its name (the header and the CSV/JSON key) and how it is laid out."""

    name: str
    numeric: bool = False  # right-aligned where a format aligns
    data_only: bool = False  # only in CSV: the other formats say it with marks, notes or colour


@dataclass(frozen=True)
class TableRow:
    """One line of the table: its cells by column name, and how a format may set it apart."""

    cells: Mapping[str, Cell]
    status: str = ""  # HTML: the row's CSS class (its colour), e.g. rfcalc's row status
    tip: str = ""  # HTML: shown when the pointer rests on the row
    depth: int = 0  # text: the first cell indented two spaces a level (a module tree)


@dataclass(frozen=True)
class Table:
    """A table and the text around it, in every format's terms."""

    columns: tuple[Column, ...]
    rows: tuple[TableRow, ...]
    document: Mapping[str, Any]  # the JSON form, numbers as numbers
    title: str = ""  # HTML: the page's title and heading
    caption: tuple[str, ...] = ()  # lines above the table (not in CSV)
    summary: tuple[str, ...] = ()  # lines below the table (not in CSV)
    notes_title: str = ""  # heads the notes in text and HTML
    notes: tuple[str, ...] = ()  # footnotes after the summary (not in CSV)
    under: str = ""  # text: this column goes on a line under its row
    shown: tuple[Column, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # the columns every format but CSV lays out
        object.__setattr__(self, "shown", tuple(c for c in self.columns if not c.data_only))


def cell_text(value: Cell, *, csv: bool = False) -> str:
    """A cell as text: counts with thousands separators, except in CSV."""
    if isinstance(value, bool):  # a bool is an int to Python; say what it means
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value) if csv else f"{value:,}"
    return value


def write(table: Table, fmt: str = "text") -> str:
    """The table in one of FORMATS (each in its own module here); ValueError for any other."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return import_module(f"rfcalc.render.{fmt}").write(table)
