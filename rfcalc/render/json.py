"""One JSON document: input, layers, output, params (schema in the README's rfcalc section).

Numbers are ints where integral, floats otherwise (a jump of 1/2 is 0.5); per-axis values are
lists; a value an op doesn't have (no kernel, or the field of an unknown row) is null.
"""
from __future__ import annotations

import json
from fractions import Fraction
from typing import Any, Optional, Sequence, Union

from rfcalc.analysis import GLOBAL, UNKNOWN, Analysis, Row

__all__ = ["render", "document", "dumps", "row_dict", "number", "per_axis"]


def number(v: Union[int, Fraction]) -> Union[int, float]:
    f = Fraction(v)
    return f.numerator if f.denominator == 1 else float(f)


def per_axis(values: Optional[Sequence[Union[int, Fraction]]]) -> Optional[list]:
    return None if values is None else [number(v) for v in values]


def _field(row: Row) -> dict[str, Any]:
    # an unknown row claims nothing, so its jump, rf and start are null, not a guess
    if row.status == UNKNOWN:
        return {"size": per_axis(row.size), "jump": None, "rf": None, "start": None}
    return {"size": per_axis(row.size), "jump": per_axis(row.jump), "rf": per_axis(row.rf),
            "start": per_axis(row.start)}


def row_dict(row: Row) -> dict[str, Any]:
    """One layer of the document."""
    return {"name": row.name, "op": row.op, "kernel": per_axis(row.kernel),
            "stride": per_axis(row.stride), "padding": per_axis(row.padding),
            "dilation": per_axis(row.dilation), **_field(row), "params": row.params,
            "global": row.status == GLOBAL, "status": row.status, "note": row.note or None,
            "inputs": None if row.inputs is None else list(row.inputs)}


def document(analysis: Analysis) -> dict[str, Any]:
    """The JSON document as Python objects."""
    out = analysis.output
    return {
        "input": list(analysis.input_shape),
        "layers": [row_dict(r) for r in analysis.rows],
        "output": {**_field(out), "status": out.status, "global": out.status == GLOBAL,
                   "note": out.note or None},
        "params": analysis.params,
        "covers_input": None if out.status == UNKNOWN else analysis.covers_input,
        "notes": list(analysis.notes),
    }


def dumps(doc: dict[str, Any]) -> str:
    """JSON with one top-level key per line and one line per layer: readable and diffable,
    where indent=2 would spend a line on every number of every per-axis list."""
    def one(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    parts = []
    for key, value in doc.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            body = ",\n".join(f"    {one(v)}" for v in value)
            parts.append(f"  {one(key)}: [\n{body}\n  ]")
        else:
            parts.append(f"  {one(key)}: {one(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def render(analysis: Analysis) -> str:
    return dumps(document(analysis))
