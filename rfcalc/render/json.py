"""JSON: the table's document, one top-level key per line and one line per record.

Numbers are ints where integral, floats otherwise (a jump of 1/2 is 0.5); per-axis values are
lists in axis order; a value that does not exist is null.
"""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any, Mapping, Optional, Sequence, Union

from rfcalc.render.table import Table

__all__ = ["write", "dumps", "number", "per_axis"]


def number(v: Union[int, Fraction]) -> Union[int, float]:
    """An exact value as JSON wants it: an int when integral, else a float."""
    f = Fraction(v)
    return f.numerator if f.denominator == 1 else float(f)


def per_axis(values: Optional[Sequence[Union[int, Fraction]]]) -> Optional[list]:
    """One number per axis, in axis order; None stays None."""
    return None if values is None else [number(v) for v in values]


def dumps(doc: Mapping[str, Any]) -> str:
    """JSON with one top-level key per line and one line per record: readable and diffable,
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


def write(table: Table) -> str:
    return dumps(table.document)
