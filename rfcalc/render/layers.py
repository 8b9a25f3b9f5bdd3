"""An Analysis as a `Table`: one row per executed op, the output's summary, the notes.

Every format of `rfcalc table` (and an Analysis in a notebook) is this table, written by
`rfcalc.render.table.write`. What the table shows can be narrowed as torchinfo's summary does:

- `columns`: which of TABLE_COLUMNS, in the order given (`name` always comes first);
- `depth`: rows nested deeper than `depth` module levels are folded into their module (one
  row: its class, the field and size of its last row, its parameters and MACs summed);
  0 shows every row;
- `compact`: rows that change neither size nor field (BatchNorm, ReLU, dropout, ...) are left
  out, as in `rfcalc graph --compact`.

Notes shared by many rows (ViT-B/16: one note on 164 rows) are said once, with the rows named.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Optional, Sequence

from rfcalc.geometry import EXACT, GLOBAL, UNKNOWN
from rfcalc.render.cells import NUMERIC, TABLE_COLUMNS, row_cells, shape, summary_lines
from rfcalc.render.json import per_axis
from rfcalc.render.table import Column, Table, TableRow

if TYPE_CHECKING:  # the types only: Analysis calls the renderers, never the reverse
    from rfcalc.analysis import Analysis, Row

__all__ = [
    "table",
    "document",
    "row_dict",
    "fold",
    "grouped_notes",
    "check_columns",
    "NOTES_TITLE",
    "TABLE_COLUMNS",
]

NOTES_TITLE = "Notes (~ marks an approximate rf)"
_DATA_ONLY = (Column("status", data_only=True), Column("note", data_only=True))
NAMED = 2  # a note shared by more rows names the first and the last


def check_columns(columns: Optional[Sequence[str]]) -> tuple[str, ...]:
    """The columns to show, `name` first; ValueError naming the choices for any other."""
    if columns is None:
        return TABLE_COLUMNS
    if isinstance(columns, str):
        columns = [c for c in columns.replace(",", " ").split() if c]
    unknown = [c for c in columns if c not in TABLE_COLUMNS]
    if unknown:
        raise ValueError(f"unknown column {unknown[0]!r}; choose from {', '.join(TABLE_COLUMNS)}")
    return ("name", *dict.fromkeys(c for c in columns if c != "name"))


def _depth(name: str) -> int:
    return name.count(".") + 1


def _prefix(name: str, depth: int, modules: Any) -> Optional[str]:
    """The module path `depth` levels deep that a row belongs to (None: it is not deeper)."""
    parts = name.split(".")
    if len(parts) <= depth:
        return None
    for n in range(depth, 0, -1):
        path = ".".join(parts[:n])
        if path in modules:
            return path
    return None


def fold(analysis: Analysis, depth: int) -> list[Row]:
    """The rows with every run of rows deeper than `depth` folded into one row of their
    module: its class as the op, the output (size, channels, field) of its last row, its
    parameters and MACs summed, the window of its one windowed row if it has exactly one."""
    if depth <= 0:
        return list(analysis.rows)
    out: list[Row] = []
    group: list[Row] = []
    path: Optional[str] = None

    def close() -> None:
        if not group:
            return
        last = group[-1]
        windows = [r.window for r in group if r.kernel is not None]
        out.append(
            replace(
                last,
                name=path,
                op=analysis.modules.get(path, last.op),
                window=windows[0] if len(windows) == 1 else None,
                params=sum(r.params for r in group),
                macs=sum(r.macs for r in group),
                inputs=group[0].inputs,
            )
        )
        group.clear()

    for row in analysis.rows:
        p = _prefix(row.name, depth, analysis.modules)
        if p is None or p != path:
            close()
        if p is None:
            out.append(row)
            path = None
        else:
            path = p
            group.append(row)
    close()
    return out


def _note_line(row: Row) -> str:
    return f"{row.name} ({row.status}): {row.note}" if row.note else f"{row.name} ({row.status})"


def grouped_notes(analysis: Analysis) -> tuple[str, ...]:
    """The notes, each text once: rows that share a status and note are named together
    (`a … z (global, 164 rows): note`); notes on the model as a whole follow as they are."""
    per_row = [r for r in analysis.rows if r.status != EXACT]
    lines = {_note_line(r) for r in per_row}
    groups: dict[tuple[str, str], list[str]] = {}
    for row in per_row:
        if _note_line(row) in analysis.notes:
            groups.setdefault((row.status, row.note), []).append(row.name)
    out = []
    for (status, note), names in groups.items():
        if len(names) == 1:
            who, count = names[0], status
        else:
            who = ", ".join(names) if len(names) <= NAMED else f"{names[0]} … {names[-1]}"
            count = f"{status}, {len(names)} rows"
        out.append(f"{who} ({count}): {note}" if note else f"{who} ({count})")
    out += [n for n in analysis.notes if n not in lines]
    return tuple(out)


def table(
    analysis: Analysis,
    *,
    columns: Optional[Sequence[str]] = None,
    depth: Optional[int] = None,
    compact: bool = False,
    indent: bool = True,
) -> Table:
    """The analysis as a table (see the module docstring for the options); `document` is
    its JSON form, always every row. `indent`: text indents names by their depth."""
    names = check_columns(columns)
    shown_rows = fold(analysis, depth) if depth else list(analysis.rows)
    summary = list(summary_lines(analysis))
    if depth and len(shown_rows) < len(analysis.rows):
        summary.append(
            f"Rows nested deeper than {depth} levels are folded into their modules: "
            f"{len(shown_rows)} rows shown of {len(analysis.rows)} (depth 0 shows every row)"
        )
    if compact:
        from rfcalc.render.graphviz import compact as changing

        kept = changing(shown_rows)
        if len(kept) < len(shown_rows):
            left = len(shown_rows) - len(kept)
            summary.append(
                f"Compact: {left} rows that change neither size nor field are left out "
                "(their parameters are in the total)"
            )
        shown_rows = kept
    rows = []
    for row in shown_rows:
        cells: dict[str, Any] = {
            **row_cells(row),
            "params": row.params,
            "macs": row.macs,
            "status": row.status,
            "note": row.note,
        }
        level = row.name.count(".") if indent else 0
        rows.append(TableRow(cells, status=row.status, tip=row.note, depth=level))
    return Table(
        (*(Column(c, numeric=c in NUMERIC) for c in names), *_DATA_ONLY),
        tuple(rows),
        document(analysis),
        title=f"rfcalc: receptive fields at input {shape(analysis.input_shape)}",
        summary=tuple(summary),
        notes_title=NOTES_TITLE,
        notes=grouped_notes(analysis),
    )


def _field(row: Row) -> dict[str, Any]:
    # an unknown row claims nothing, so its jump, rf and start are null, not a guess
    if row.status == UNKNOWN:
        return {
            "size": per_axis(row.size),
            "jump": None,
            "rf": None,
            "start": None,
            "reads": None,
        }
    return {
        "size": per_axis(row.size),
        "jump": per_axis(row.jump),
        "rf": per_axis(row.rf),
        "start": per_axis(row.start),
        # of the rf's pixels (all axes), how many an interior unit reads: [read, extent]
        "reads": None if row.reads is None else list(row.reads),
    }


def row_dict(row: Row) -> dict[str, Any]:
    """One layer of the JSON document."""
    return {
        "name": row.name,
        "op": row.op,
        "kernel": per_axis(row.kernel),
        "stride": per_axis(row.stride),
        "padding": per_axis(row.padding),
        "dilation": per_axis(row.dilation),
        "channels": row.channels,
        **_field(row),
        "params": row.params,
        "macs": row.macs,
        "global": row.status == GLOBAL,
        "status": row.status,
        "note": row.note or None,
        "inputs": None if row.inputs is None else list(row.inputs),
    }


def document(analysis: Analysis) -> dict[str, Any]:
    """The JSON document (schema in the README's rfcalc section) as Python objects."""
    out = analysis.output
    doc = {
        "input": list(analysis.input_shape),
        "layers": [row_dict(r) for r in analysis.rows],
        "output": {
            **_field(out),
            "name": out.name,
            "status": out.status,
            "global": out.status == GLOBAL,
            "note": out.note or None,
        },
        "params": analysis.params,
        "macs": analysis.macs,
        "covers_input": None if out.status == UNKNOWN else analysis.covers_input,
        "notes": list(analysis.notes),
    }
    if analysis.outputs:
        doc["outputs"] = [{"where": w, "name": r.name, **_field(r)} for w, r in analysis.outputs]
    return doc
