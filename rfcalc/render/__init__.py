"""Renderers: results in, text out, nothing computed here.

`render(analysis, fmt)` writes an Analysis in one of FORMATS. Every table of the project goes
through the one writer in `rfcalc.render.table` (a `Table` in, any format out; `rfcalc verify`
and `netbuilder variants` build their own Table). The graph (graphviz) has its own entry
point in `rfcalc.render.graphviz`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

from rfcalc.render import layers
from rfcalc.render.table import FORMATS, write

if TYPE_CHECKING:  # the types only: Analysis calls the renderers, never the reverse
    from rfcalc.analysis import Analysis

__all__ = ["FORMATS", "WIDTH", "render"]

WIDTH = 120  # the text table's default width: rows are folded by depth until it fits


def render(
    analysis: Analysis,
    fmt: str = "text",
    *,
    columns: Optional[Sequence[str]] = None,
    depth: Optional[int] = None,
    compact: bool = False,
    width: int = WIDTH,
) -> str:
    """The analysis as one of FORMATS; ValueError for any other name or column.

    `depth` None: every row, except in text, where the table is fitted to `width` columns:
    names unindented if that is enough, else rows folded into their modules one level at a
    time (from the deepest); without `columns`, text leaves out `dilation` when no row is
    dilated. `depth` 0: every row, as it is.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if depth is not None or fmt != "text":
        return write(layers.table(analysis, columns=columns, depth=depth, compact=compact), fmt)
    if columns is None and not any(
        r.dilation and any(d != 1 for d in r.dilation) for r in analysis.rows
    ):  # nothing dilated: a column of 1s says nothing
        columns = [c for c in layers.TABLE_COLUMNS if c != "dilation"]
    deepest = max((r.name.count(".") + 1 for r in analysis.rows), default=1)
    text = ""
    for d in range(deepest, 0, -1):
        for indent in (True, False):
            table = layers.table(
                analysis,
                columns=columns,
                depth=d if d < deepest else 0,
                compact=compact,
                indent=indent,
            )
            text = write(table, fmt)
            if _table_width(text) <= width:
                return text
    return text


def _table_width(text: str) -> int:
    """The width of the table itself (its rules), not of the notes under it."""
    rule = next((line for line in text.splitlines() if line and set(line) == {"="}), "")
    return len(rule)
