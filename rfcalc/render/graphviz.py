"""The architecture as a graphviz diagram that fits a page.

One compact node per row (name; op with kernel, stride, dilation; output size, jump and rf),
filled by the row's status, with a legend. Rows are boxed by block (the first part of their
module path: `c1`, `t1`, ...), and blocks are laid out in columns, left to right, each column
read top to bottom: a deep net becomes a few short columns instead of one long ribbon.

Edges come from the recorded data flow when rows carry it (`Row.inputs`: the names of the
rows, or "input", whose outputs fed this op). Without that information the diagram is the
execution chain, and its label says so rather than passing a guess off as the data flow.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from typing import TYPE_CHECKING, Optional, Sequence

import graphviz

from rfcalc.geometry import APPROX, EXACT, GLOBAL, UNKNOWN
from rfcalc.render.cells import TIMES, axes, rf_cell, shape

if TYPE_CHECKING:  # the types only: Analysis calls the renderers, never the reverse
    from rfcalc.analysis import Analysis, Row

__all__ = ["CHAIN_NOTE", "FILL", "INPUT_NODE", "build", "columns", "compact", "node_label"]

INPUT_NODE = "input"
CHAIN_NOTE = "edges: execution order (no data-flow record available)"
# Fill per status (light, so the text stays readable) and what the legend says of each.
FILL = {EXACT: "white", APPROX: "#fdd9a0", GLOBAL: "#c6dbef", UNKNOWN: "#f4a6a6"}
_MEANING = {
    EXACT: "exact",
    APPROX: "approx (rf is a bound)",
    GLOBAL: "global (whole map)",
    UNKNOWN: "unknown (no rule)",
}


def _window(row: Row) -> str:
    """`3×3 d2 s2`: the kernel, then dilation and stride where they are not 1."""
    if row.kernel is None:
        return ""
    parts = [TIMES.join(str(k) for k in row.kernel)]
    for mark, values in (("d", row.dilation), ("s", row.stride)):
        if values and any(v != 1 for v in values):
            parts.append(f"{mark}{axes(values)}")
    return " ".join(parts)


def node_label(row: Row) -> str:
    """Three short lines: `name`, `op 3×3 d2`, `size 30×30 · j 1 · rf 9`."""
    size = TIMES.join(str(s) for s in row.size) if row.size else "flat"
    jump = "?" if row.status == UNKNOWN else axes(row.jump)
    parts = (row.name, f"{row.op} {_window(row)}".strip(), f"{size} · j {jump} · rf {rf_cell(row)}")
    # DOT line breaks are the two characters backslash-n; escape the parts' own backslashes
    return "\\n".join(graphviz.escape(p) for p in parts)


def _inputs(row: Row) -> Optional[Sequence[str]]:
    return row.inputs


def _passes_through(row: Row, by_name: dict[str, Row]) -> bool:
    """A windowless op of one input that leaves its size and field as they were."""
    if row.kernel is not None or row.inputs is None or len(row.inputs) != 1:
        return False
    src = by_name.get(row.inputs[0])
    return src is not None and (src.size, src.jump, src.rf, src.start, src.status) == (
        row.size,
        row.jump,
        row.rf,
        row.start,
        row.status,
    )


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


def _block(row: Row) -> str:
    """The block a row belongs to: the first part of its module path (`c1` of `c1.0.conv`);
    top-level functional ops (`flatten`, `add_3`) share the block ``""`` of their neighbours."""
    return row.name.split(".", 1)[0] if "." in row.name else ""


def _blocks(rows: Sequence[Row]) -> list[tuple[str, list[int]]]:
    """Consecutive runs of rows in the same block, as (block, row indices)."""
    runs: list[tuple[str, list[int]]] = []
    for i, row in enumerate(rows):
        name = _block(row)
        if runs and runs[-1][0] == name:
            runs[-1][1].append(i)
        else:
            runs.append((name, [i]))
    return runs


Column = list[tuple[str, list[int]]]  # (block, row indices) from top to bottom


def columns(rows: Sequence[Row], height: Optional[int] = None) -> list[Column]:
    """Blocks packed into columns in execution order, whole blocks where they fit: a column
    holds at most `height` nodes (by default about √(4n), at least 8), so n nodes take about
    √(n/4) columns: a page a little taller than it is wide, as the nodes are wider than tall."""
    height = height or max(8, math.ceil(math.sqrt(4 * len(rows))))
    cols: list[Column] = [[]]
    used = 0
    for name, idx in _blocks(rows):
        while idx:  # a block taller than a column is split over several
            if used and used + len(idx) > height:
                cols.append([])
                used = 0
            take, idx = idx[:height], idx[height:]
            cols[-1].append((name, take))
            used += len(take)
    return [c for c in cols if c]


def _legend(dot: graphviz.Digraph, statuses: Sequence[str]) -> None:
    """The key to a node's lines and the fill of each status present."""
    with dot.subgraph(name="cluster_legend") as leg:
        leg.attr(label="legend", fontsize="9", style="dashed", color="grey50")
        leg.node(
            "legend_key",
            "name\\nop kernel d(ilation) s(tride)\\noutput size · j(ump) · rf",
            fontsize="8",
        )
        for status in statuses:
            leg.node(
                f"legend_{status}",
                _MEANING[status],
                fontsize="8",
                style="filled",
                fillcolor=FILL[status],
            )
        order = ["legend_key"] + [f"legend_{s}" for s in statuses]
        for a, b in itertools.pairwise(order):
            leg.edge(a, b, style="invis")


def build(
    analysis: Analysis, title: str = "", *, compact_rows: bool = False, height: Optional[int] = None
) -> graphviz.Digraph:
    """A Digraph of the rows, boxed by block and laid out in columns (see `columns`),
    labelled with the input shape (and the edge caveat when no data flow was recorded);
    `compact_rows` leaves out the rows that change neither size nor field (see `compact`)."""
    rows = compact(analysis.rows) if compact_rows else list(analysis.rows)
    has_flow = bool(rows) and all(_inputs(r) is not None for r in rows)
    label = title or f"input {shape(analysis.input_shape)}"
    if not has_flow:
        label += f"\\n{CHAIN_NOTE}"
    dot = graphviz.Digraph(
        "rfcalc",
        graph_attr={
            "rankdir": "TB",
            "label": label,
            "labelloc": "t",
            "fontname": "Helvetica",
            "fontsize": "11",
            "newrank": "true",
            "nodesep": "0.15",
            "ranksep": "0.22",
        },
        node_attr={
            "shape": "box",
            "fontname": "Helvetica",
            "fontsize": "9",
            "margin": "0.06,0.03",
            "height": "0.3",
            "style": "rounded,filled",
            "fillcolor": "white",
        },
        edge_attr={"arrowsize": "0.5"},
    )
    ids = {row.name: f"n{i}" for i, row in enumerate(rows)}
    column_of: dict[str, int] = {"n_input": 0}
    tops = ["n_input"]
    cols = columns(rows, height)
    statuses = [s for s in FILL if s == EXACT or any(r.status == s for r in rows)]
    for c, col in enumerate(cols):
        # An invisible box per column keeps each column's blocks together.
        with dot.subgraph(name=f"cluster_col{c}") as column:
            column.attr(label="", style="invis")
            if c == 0:
                column.node(
                    "n_input",
                    f"input\\n{shape(analysis.input_shape)}",
                    shape="oval",
                    style="filled",
                    fillcolor="white",
                )
            for b, (block, idx) in enumerate(col):
                with column.subgraph(name=f"cluster_{c}_{b}") as sub:
                    sub.attr(
                        label=block or "top level",
                        fontsize="9",
                        style="rounded",
                        color="grey60",
                        labeljust="l",
                    )
                    for i in idx:
                        row = rows[i]
                        sub.node(f"n{i}", node_label(row), fillcolor=FILL.get(row.status, "white"))
                        column_of[f"n{i}"] = c
            if c == len(cols) - 1:  # the legend under the last column, not beside it
                _legend(column, statuses)
                column_of["legend_key"] = c
        if c:
            tops.append(f"n{col[0][1][0]}")
    # The columns start on one rank, in order, left to right.
    with dot.subgraph() as top:
        top.attr(rank="same")
        for node in tops:
            top.node(node)
    for a, b in itertools.pairwise(tops):
        dot.edge(a, b, style="invis")

    def edge(src: str, dst: str) -> None:
        # An edge into another column must not stretch its column down: no rank constraint.
        same = column_of[src] == column_of[dst]
        dot.edge(src, dst, **({} if same else {"constraint": "false", "color": "grey50"}))

    if has_flow:
        for i, row in enumerate(rows):
            for src in _inputs(row):
                if src != INPUT_NODE and src not in ids:
                    raise ValueError(f"row {row.name!r} reads {src!r}, which is not an earlier row")
                edge("n_input" if src == INPUT_NODE else ids[src], f"n{i}")
    else:
        previous = "n_input"
        for i in range(len(rows)):
            edge(previous, f"n{i}")
            previous = f"n{i}"
    if cols:
        dot.edge(f"n{cols[-1][-1][1][-1]}", "legend_key", style="invis")
    else:  # no rows: the input and the legend
        _legend(dot, statuses)
    return dot
