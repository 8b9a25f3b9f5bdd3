"""The architecture as a graphviz diagram: one node per row, in execution order.

Edges come from the recorded data flow when rows carry it (`Row.inputs`: the names of the
rows, or "input", whose outputs fed this op). Without that information the diagram is the
execution chain, and its label says so rather than passing a guess off as the data flow.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence

import graphviz

from rfcalc.analysis import Analysis, Row
from rfcalc.render.cells import axes, rf_cell, shape

__all__ = ["build", "compact", "node_label", "CHAIN_NOTE", "INPUT_NODE"]

INPUT_NODE = "input"
CHAIN_NOTE = "edges: execution order (no data-flow record available)"
_STATUS_COLOUR = {"exact": "black", "approx": "darkorange", "global": "navy", "unknown": "red"}


def node_label(row: Row) -> str:
    """`name`, `op`, output size and rf, one per line."""
    size = axes(row.size) if row.size else "flat"
    # DOT line breaks are the two characters backslash-n; escape the parts' own backslashes
    parts = (row.name, row.op, f"size {size}", f"rf {rf_cell(row)}")
    return "\\n".join(graphviz.escape(p) for p in parts)


def _inputs(row: Row) -> Optional[Sequence[str]]:
    return row.inputs


def _passes_through(row: Row, by_name: dict[str, Row]) -> bool:
    """A windowless op of one input that leaves its size and field as they were."""
    if row.kernel is not None or row.inputs is None or len(row.inputs) != 1:
        return False
    src = by_name.get(row.inputs[0])
    return src is not None and (src.size, src.jump, src.rf, src.start, src.status) == \
        (row.size, row.jump, row.rf, row.start, row.status)


def compact(rows: Sequence[Row]) -> list[Row]:
    """The rows that change something (windows, merges, size or field), each wired to the
    kept rows behind it: BatchNorm, ReLU, dropout and the like drop out of the diagram."""
    by_name = {r.name: r for r in rows}
    kept, behind = [], {}  # behind: a dropped row -> the kept rows (or "input") it stands for
    for row in rows:
        if row.inputs is None:
            return list(rows)  # no data flow recorded: nothing can be rewired
        sources = tuple(dict.fromkeys(s for src in row.inputs for s in behind.get(src, (src,))))
        if _passes_through(row, by_name):
            behind[row.name] = sources
        else:
            kept.append(replace(row, inputs=sources))
    return kept


def build(analysis: Analysis, title: str = "", *, compact_rows: bool = False
          ) -> graphviz.Digraph:
    """A top-to-bottom Digraph of the rows, labelled with the input shape (and the edge
    caveat when no data flow was recorded); `compact_rows` leaves out the rows that change
    neither size nor field (see `compact`)."""
    rows = compact(analysis.rows) if compact_rows else list(analysis.rows)
    has_flow = bool(rows) and all(_inputs(r) is not None for r in rows)
    label = title or f"input {shape(analysis.input_shape)}"
    if not has_flow:
        label += f"\\n{CHAIN_NOTE}"
    dot = graphviz.Digraph("rfcalc", graph_attr={"rankdir": "TB", "label": label,
                                                 "labelloc": "t", "fontname": "Helvetica"},
                           node_attr={"shape": "box", "fontname": "Helvetica",
                                      "fontsize": "10"})
    dot.node("n_input", f"input\\n{shape(analysis.input_shape)}", shape="oval")
    ids = {}
    for i, row in enumerate(rows):
        ids[row.name] = f"n{i}"
        dot.node(f"n{i}", node_label(row), color=_STATUS_COLOUR.get(row.status, "black"))
    if has_flow:
        for i, row in enumerate(rows):
            for src in _inputs(row):
                if src != INPUT_NODE and src not in ids:
                    raise ValueError(f"row {row.name!r} reads {src!r}, which is not an earlier row")
                dot.edge("n_input" if src == INPUT_NODE else ids[src], f"n{i}")
    else:
        previous = "n_input"
        for i in range(len(rows)):
            dot.edge(previous, f"n{i}")
            previous = f"n{i}"
    return dot
