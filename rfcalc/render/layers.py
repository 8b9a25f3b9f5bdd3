"""An Analysis as a `Table`: one row per executed op, the output's summary, the notes.

Every format of `rfcalc table` (and an Analysis in a notebook) is this table, written by
`rfcalc.render.table.write`.
"""

from __future__ import annotations

from typing import Any

from rfcalc.analysis import GLOBAL, UNKNOWN, Analysis, Row
from rfcalc.render.cells import COLUMNS, NUMERIC, row_cells, shape, summary_lines
from rfcalc.render.json import per_axis
from rfcalc.render.table import Column, Table, TableRow

__all__ = ["table", "document", "row_dict", "NOTES_TITLE"]

NOTES_TITLE = "Notes (~ marks an approximate rf)"
_COLUMNS = (
    *(Column(c, numeric=c in NUMERIC) for c in COLUMNS),
    Column("status", data_only=True),
    Column("note", data_only=True),
)


def table(analysis: Analysis) -> Table:
    """The analysis as a table; `document` is its JSON form."""
    rows = []
    for row in analysis.rows:
        cells: dict[str, Any] = {
            **row_cells(row),
            "params": row.params,
            "status": row.status,
            "note": row.note,
        }
        rows.append(TableRow(cells, status=row.status, tip=row.note, depth=row.name.count(".")))
    return Table(
        _COLUMNS,
        tuple(rows),
        document(analysis),
        title=f"rfcalc: receptive fields at input {shape(analysis.input_shape)}",
        summary=tuple(summary_lines(analysis)),
        notes_title=NOTES_TITLE,
        notes=tuple(analysis.notes),
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
        **_field(row),
        "params": row.params,
        "global": row.status == GLOBAL,
        "status": row.status,
        "note": row.note or None,
        "inputs": None if row.inputs is None else list(row.inputs),
    }


def document(analysis: Analysis) -> dict[str, Any]:
    """The JSON document (schema in the README's rfcalc section) as Python objects."""
    out = analysis.output
    return {
        "input": list(analysis.input_shape),
        "layers": [row_dict(r) for r in analysis.rows],
        "output": {
            **_field(out),
            "status": out.status,
            "global": out.status == GLOBAL,
            "note": out.note or None,
        },
        "params": analysis.params,
        "covers_input": None if out.status == UNKNOWN else analysis.covers_input,
        "notes": list(analysis.notes),
    }
