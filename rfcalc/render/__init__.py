"""Renderers: an Analysis in, text out, nothing computed here.

`render(analysis, fmt)` picks the format; `FORMATS` lists them. The graph (graphviz) and the
verify comparison have their own entry points in `rfcalc.render.graphviz` and
`rfcalc.render.verify`.
"""
from __future__ import annotations

from importlib import import_module

from rfcalc.analysis import Analysis

__all__ = ["FORMATS", "render"]

FORMATS = ("text", "markdown", "csv", "json", "html", "latex")


def render(analysis: Analysis, fmt: str = "text") -> str:
    """The analysis as one of FORMATS; ValueError for any other name."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return import_module(f"rfcalc.render.{fmt}").render(analysis)
