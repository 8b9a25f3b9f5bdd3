"""`rfcalc explore`: one self-contained HTML page to click through a model's fields.

Everything the page shows is computed here, in Python, and embedded: the table cells (the same
as `rfcalc table`), every unit's theoretical box per row (start + u·jump ± (rf−1)/2 from
`analyze`), the exact set of input pixels each unit can reach, and the ERF of each row's
centre unit. The page's script only looks values up and draws them; it needs no network.

Reachable sets come from a linearised copy of the model (`rfcalc.verify.linearised`: float64,
every weight a positive constant, biases zero, BatchNorm statistics reset), run on one one-hot
input per pixel: unit u of a row can reach pixel p exactly when lighting p changes u (with
positive weights no path can cancel another). They are packed one bit per (unit, pixel),
gzip-compressed and base64-encoded; the browser unpacks them with DecompressionStream.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from fractions import Fraction
from html import escape
from importlib import resources
from typing import Optional

import numpy as np
import torch
import torch.nn as nn

from .analysis import APPROX, GLOBAL, UNKNOWN, Analysis, Row
from .erf import (
    ERFError,
    _fit,
    capture_point,
    centred_square,
    erf_maps,
    run_capturing,
    share_inside,
)
from .render.cells import COLUMNS, NUMERIC, row_cells, summary_lines

__all__ = ["build_page", "reachable_sets", "MAX_REACH_PIXELS"]

MAX_REACH_PIXELS = 64 * 64  # one one-hot input per pixel: beyond this, boxes only


def _selectable(row: Row) -> bool:
    return bool(row.size) and row.status != UNKNOWN and len(row.size) == 2


def _unit_boxes(row: Row, shape: tuple[int, int]) -> list[list[list[int]]]:
    """Per axis, per unit: [lo, hi] of its theoretical field (unclipped input pixels)."""
    out = []
    for axis, n_units in enumerate(row.size):
        if row.status == GLOBAL:
            out.append([[0, shape[axis] - 1]] * n_units)
            continue
        s, j, r = Fraction(row.start[axis]), Fraction(row.jump[axis]), Fraction(row.rf[axis])
        half = (r - 1) / 2
        out.append([[int(s + u * j - half), int(s + u * j + half)] for u in range(n_units)])
    return out


def _capturable(model: nn.Module, analysis: Analysis) -> dict[str, tuple[nn.Module, int]]:
    points = {}
    for row in analysis.rows:
        if _selectable(row):
            try:
                points[row.name] = capture_point(model, analysis, row)
            except ERFError:
                pass  # a functional op inside a module: boxes only, said on the page
    return points


def _linear_copy(model: nn.Module) -> nn.Module:
    from .verify import linearised

    lin = linearised(model)
    for m in lin.modules():  # running statistics are buffers, not parameters: reset them
        if getattr(m, "running_mean", None) is not None:
            m.running_mean.zero_()
        if getattr(m, "running_var", None) is not None:
            m.running_var.fill_(1.0)
    return lin


def reachable_sets(
    model: nn.Module, analysis: Analysis, names: list[str], batch: int = 256
) -> dict[str, np.ndarray]:
    """For each named row: a bool array (units, pixels), True where the unit can reach the
    input pixel (see the module docstring). Rows must be capturable (`capture_point`).

    Runs in float32 (seven times faster than float64 on a CPU); should any reached value come
    near float32's smallest (a very deep stack), it runs again in float64."""
    out = _reach(model, analysis, names, batch, torch.float32)
    if out is None:
        out = _reach(model, analysis, names, batch, torch.float64)
    return out


def _reach(model, analysis, names, batch, dtype) -> Optional[dict[str, np.ndarray]]:
    c, h, w = analysis.input_shape
    lin = _linear_copy(model).to(dtype)
    rows = {r.name: r for r in analysis.rows}
    points = [capture_point(lin, analysis, rows[n]) for n in names]
    base: dict[int, torch.Tensor] = {}
    tiny = {"min": float("inf")}
    with torch.no_grad():
        run_capturing(
            lin,
            points,
            torch.zeros(1, c, h, w, dtype=dtype),
            lambda i, out: base.__setitem__(i, out.clone()),
        )
        reach: dict[int, list] = {i: [] for i in range(len(names))}
        pixels = h * w
        for first in range(0, pixels, batch):
            idx = torch.arange(first, min(first + batch, pixels))
            x = torch.zeros(len(idx), c, pixels, dtype=dtype)
            x[torch.arange(len(idx)), :, idx] = 1.0
            x = x.view(len(idx), c, h, w)

            def keep(i, out):
                diff = (out - base[i]).abs().sum(1)  # (batch, *unit spatial)
                hit = diff > 0
                if bool(hit.any()):
                    tiny["min"] = min(tiny["min"], float(diff[hit].min()))
                reach[i].append(hit.flatten(1))

            run_capturing(lin, points, x, keep)
    if dtype == torch.float32 and tiny["min"] < 1e-30:
        return None
    return {n: torch.cat(reach[i]).T.contiguous().numpy() for i, n in enumerate(names)}


class _Blob:
    """Binary segments for the page, one gzip'd buffer; the metadata holds offsets."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> list[int]:
        self.parts.append(data)
        self.size += len(data)
        return [self.size - len(data), len(data)]

    def encoded(self) -> str:
        return base64.b64encode(gzip.compress(b"".join(self.parts), 9, mtime=0)).decode()


def _image_pixels(path: Optional[str], h: int, w: int) -> Optional[str]:
    if path is None:
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            rgb = np.asarray(_fit(im.convert("RGB"), w, h), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ERFError(f"{path}: cannot be read as an image ({exc})") from None
    return base64.b64encode(rgb.tobytes()).decode()


def _erf_numbers(m: np.ndarray, row: Row, box: list[list[int]]) -> dict:
    centre = (
        [
            float(Fraction(s) + ((n - 1) // 2) * Fraction(j))
            for s, j, n in zip(row.start, row.jump, row.size)
        ]
        if row.status != GLOBAL
        else [(n - 1) / 2 for n in m.shape]
    )
    return {
        "inside": share_inside(m, box),
        "square50": centred_square(m, centre, 0.5),
        "square99": centred_square(m, centre, 0.99),
    }


def build_page(
    model: nn.Module,
    analysis: Analysis,
    images: torch.Tensor,
    inputs: str,
    *,
    trained: Optional[nn.Module] = None,
    weights: str = "",
    image: Optional[str] = None,
    title: str = "",
) -> str:
    """The page as a string: `model` as initialised (geometry, reachable sets, ERF at init),
    `trained` (optional) for the trained ERF, `images` for the ERF, `image` under the grid."""
    if len(analysis.input_shape) != 3:
        raise ERFError("explore draws 2-D inputs (C,H,W) only")
    _, h, w = analysis.input_shape
    points = _capturable(model, analysis)
    names = list(points)
    blob = _Blob()
    notes = []
    reach = {}
    if h * w <= MAX_REACH_PIXELS:
        reach = reachable_sets(model, analysis, names)
    else:
        notes.append(
            f"reachable pixel sets are computed for inputs up to {MAX_REACH_PIXELS} "
            f"pixels; this {h}×{w} page shows the boxes only"
        )
    variants = [("init", model)] + ([("trained", trained)] if trained is not None else [])
    # one ERF per field: the last capturable row of each run of rows with the same field
    # (conv, BatchNorm, ReLU, dropout, add), so rows that only rescale share it
    owner = _field_owners(analysis, set(names))
    erf_names = sorted(set(owner.values()), key=names.index)
    erfs = {}
    by_name = {r.name: r for r in analysis.rows}
    for label, net in variants:
        net_points = _capturable(net, analysis)
        maps = erf_maps(
            net, images, [(*net_points[n], by_name[n].size) for n in erf_names], batch_size=32
        )
        erfs[label] = dict(zip(erf_names, maps))
    seen_reach: dict[str, list[int]] = {}
    rows = []
    for row in analysis.rows:
        cells = row_cells(row)
        entry = {
            "name": row.name,
            "status": row.status,
            "note": row.note,
            "cells": [cells[c] for c in COLUMNS],
            "selectable": _selectable(row),
        }
        if _selectable(row):
            boxes = _unit_boxes(row, (h, w))
            entry.update(
                size=list(row.size),
                boxes=boxes,
                approx=row.status == APPROX,
                rf=cells["rf"],
                jump=cells["jump"],
                start=cells["start"],
                centres=[
                    [
                        float(Fraction(row.start[a]) + u * Fraction(row.jump[a]))
                        for u in range(row.size[a])
                    ]
                    for a in range(2)
                ]
                if row.status != GLOBAL
                else None,
            )
            if row.name in reach:
                bits = np.packbits(reach[row.name], axis=1, bitorder="little").tobytes()
                key = hashlib.sha1(bits).hexdigest()
                if key not in seen_reach:  # BatchNorm, ReLU, dropout: the same sets again
                    seen_reach[key] = blob.add(bits)
                entry["reach"] = seen_reach[key]
            if row.name in owner and owner[row.name] != row.name:
                entry["erf_from"] = owner[row.name]
            if row.name in erf_names:
                centre_unit = [(n - 1) // 2 for n in row.size]
                box = [boxes[a][centre_unit[a]] for a in range(2)]
                entry["erf"] = {}
                entry["erf_unit"] = centre_unit
                for label, _ in variants:
                    m = erfs[label][row.name]
                    total = float(m.sum())
                    if total == 0:
                        continue
                    m = m / total
                    entry["erf"][label] = {
                        "data": blob.add(m.astype("<f4").tobytes()),
                        **_erf_numbers(m, row, box),
                    }
            if row.name not in points:
                entry["erf_missing"] = (
                    "a functional op inside a module whose output is no "
                    "module's output: no reachable set measured here"
                )
        rows.append(entry)
    data = {
        "title": title,
        "input": list(analysis.input_shape),
        "inputs": inputs,
        "weights": weights,
        "variants": [v for v, _ in variants],
        "columns": list(COLUMNS),
        "numeric": [c in NUMERIC for c in COLUMNS],
        "rows": rows,
        "summary": summary_lines(analysis),
        "notes": notes,
        "image": _image_pixels(image, h, w),
        "default": _default_row(analysis, rows),
    }
    template = resources.files("rfcalc").joinpath("explore.html").read_text(encoding="utf-8")
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return (
        template.replace("__TITLE__", escape(f"rfcalc explore: {title}"))
        .replace("__DATA__", payload)
        .replace("__BLOB__", blob.encoded())
    )


def _field_key(row: Row) -> tuple:
    return (row.size, row.jump, row.rf, row.start, row.status)


def _field_owners(analysis: Analysis, capturable: set[str]) -> dict[str, str]:
    """For every selectable row: the row whose ERF the page shows for it, the last
    capturable row of the run of consecutive rows with the same field."""
    owners: dict[str, str] = {}
    run: list[Row] = []
    rows = list(analysis.rows) + [None]
    for row in rows:
        if run and (row is None or _field_key(row) != _field_key(run[-1])):
            last = [r.name for r in run if r.name in capturable]
            for r in run:
                if last and _selectable(r):
                    owners[r.name] = last[-1]
            run = []
        if row is not None:
            run.append(row)
    return owners


def _default_row(analysis: Analysis, rows: list[dict]) -> int:
    """The deepest row with an ERF and a map of at least 4×4 units, else the last with an
    ERF, else the last selectable one."""
    tests = (
        lambda r: r.get("erf") and min(r["size"]) >= 4,
        lambda r: r.get("erf"),
        lambda r: r.get("selectable"),
    )
    for ok in tests:
        for i in range(len(rows) - 1, -1, -1):
            if ok(rows[i]):
                return i
    return 0
