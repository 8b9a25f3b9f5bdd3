"""Renderers: results in, text out, nothing computed here.

`render(analysis, fmt)` writes an Analysis in one of FORMATS. Every table of the project goes
through the one writer in `rfcalc.render.table` (a `Table` in, any format out; `rfcalc verify`
and `netbuilder variants` build their own Table). The graph (graphviz) has its own entry
point in `rfcalc.render.graphviz`.
"""

from __future__ import annotations

from rfcalc.analysis import Analysis
from rfcalc.render import layers
from rfcalc.render.table import FORMATS, write

__all__ = ["FORMATS", "render"]


def render(analysis: Analysis, fmt: str = "text") -> str:
    """The analysis as one of FORMATS; ValueError for any other name."""
    return write(layers.table(analysis), fmt)
