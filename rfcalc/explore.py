"""`rfcalc explore`: one self-contained HTML page to click through a model's fields.

Everything the page shows is computed here, in Python, and embedded: the table cells (the same
as `rfcalc table`), every unit's theoretical box per row (start + u·jump ± (rf−1)/2 from
`analyze`), the exact set of input pixels each unit can reach (`rfcalc.reach`; its holes are
the pixels of the clipped box it does not reach) and ERF heatmaps. The page's script only
looks values up and draws them; it needs no network.

ERFs are per unit (`rfcalc.unit_erf`): each heatmap is the gradient magnitude of ONE named
unit. For every field (a run of rows with the same field shares one) the page holds the ERF of
a grid of units (inputs up to 64×64 pixels; above that the centre unit only). The page shows
the selected unit's ERF when it was measured, else the nearest measured unit's, and says
whose, with that unit's box.

Reachable sets are packed one bit per (unit, pixel); ERF maps are float16, scaled to a maximum
of 1; all gzip-compressed and base64-encoded; the browser unpacks them with
DecompressionStream.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import sys
from fractions import Fraction
from html import escape
from importlib import resources
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from .analysis import APPROX, EXACT, GLOBAL, UNKNOWN, Analysis, Row
from .erf import ERFError, _fit, capture_point, centred_square, share_inside
from .reach import reachable_sets
from .render.cells import COLUMNS, NUMERIC, number, row_cells, summary_lines
from .unit_erf import sampled_units, unit_erf_maps

__all__ = ["build_page", "reachable_sets", "unit_erf_maps", "MAX_REACH_PIXELS"]

MAX_REACH_PIXELS = 64 * 64  # reachable sets and ERF unit grids up to this input size
ERF_BATCH = 64  # images per forward pass for the ERF maps, fewer for large inputs


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


def _clip(box: list[list[int]], shape: Sequence[int]) -> Optional[list[list[int]]]:
    out = [[max(lo, 0), min(hi, n - 1)] for (lo, hi), n in zip(box, shape)]
    return None if any(lo > hi for lo, hi in out) else out


def _capturable(model: nn.Module, analysis: Analysis) -> dict[str, tuple[nn.Module, int]]:
    points = {}
    for row in analysis.rows:
        if _selectable(row):
            try:
                points[row.name] = capture_point(model, analysis, row)
            except ERFError:
                pass  # a functional op inside a module: boxes only, said on the page
    return points


def _bar(desc: str, total: Optional[int], unit: str, show: Optional[bool]):
    """A tqdm bar on stderr (show None: when stderr is a terminal); shown at once, since one
    batch may be all the work, and cleared when done."""
    from tqdm import tqdm

    if show is None:
        show = sys.stderr.isatty()
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        leave=False,
        disable=not show,
    )


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


def _erf_numbers(m: np.ndarray, centre: Sequence[float], box: Optional[list]) -> dict:
    """The numbers beside one unit's ERF `m` (normalised to sum 1)."""
    return {
        "inside": share_inside(m, box) if box is not None else None,
        "square50": centred_square(m, centre, 0.5),
        "square99": centred_square(m, centre, 0.99),
    }


def _unit_centre(row: Row, unit: Sequence[int], shape: Sequence[int]) -> list[float]:
    if row.status == GLOBAL:
        return [(n - 1) / 2 for n in shape]
    return [float(Fraction(s) + u * Fraction(j)) for s, j, u in zip(row.start, row.jump, unit)]


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
    progress: Optional[bool] = None,
) -> str:
    """The page as a string: `model` as initialised (geometry, reachable sets, ERF at init),
    `trained` (optional) for the trained ERF, `images` for the ERF, `image` under the grid.
    `progress`: bars on stderr (None: when stderr is a terminal and a step takes a while)."""
    if len(analysis.input_shape) != 3:
        raise ERFError("explore draws 2-D inputs (C,H,W) only")
    _, h, w = analysis.input_shape
    small = h * w <= MAX_REACH_PIXELS
    points = _capturable(model, analysis)
    names = list(points)
    blob = _Blob()
    notes = []
    reach = {}
    if small and names:
        with _bar("reachable pixels", h * w, "px", progress) as bar:
            reach = reachable_sets(
                model, analysis, names, progress=lambda done, _: bar.update(done - bar.n)
            )
    elif names:
        notes.append(
            f"Reachable pixels (and so holes) are computed for inputs up to "
            f"{MAX_REACH_PIXELS} pixels; this {h}×{w} page shows the boxes, and the ERF of "
            "each layer's centre unit only."
        )
    variants = [("init", model)] + ([("trained", trained)] if trained is not None else [])
    # one ERF per field: the last capturable row of each run of rows with the same field
    # (conv, BatchNorm, ReLU, dropout, add), so rows that only rescale share it
    owner = _field_owners(analysis, set(names))
    erf_names = sorted(set(owner.values()), key=names.index)
    by_name = {r.name: r for r in analysis.rows}
    grids, unit_lists, box_lists, share = {}, {}, {}, {}
    for n in erf_names:
        row = by_name[n]
        grids[n] = [sampled_units(k, small) for k in row.size]
        unit_lists[n] = [(i, j) for i in grids[n][0] for j in grids[n][1]]
        boxes = _unit_boxes(row, (h, w))
        box_lists[n] = [_clip([boxes[0][i], boxes[1][j]], (h, w)) for i, j in unit_lists[n]]
        # only an exact field bounds every unit's gradient, so only then may units share a pass
        share[n] = box_lists[n] if row.status == EXACT else [None] * len(box_lists[n])
    erfs = {}
    batch = max(1, min(ERF_BATCH, (1 << 22) // max(1, images[0].numel())))  # as rfcalc erf
    for label, net in variants:
        net_points = _capturable(net, analysis)
        targets = [(*net_points[n], by_name[n].size, unit_lists[n], share[n]) for n in erf_names]
        with _bar(f"ERF ({label})", None, "pass", progress) as bar:

            def step(done: int, total: int, bar=bar) -> None:
                bar.total = total
                bar.update(done - bar.n)

            maps = unit_erf_maps(net, images, targets, batch, progress=step)
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
                axes=None
                if row.status == GLOBAL
                else {k: [number(v) for v in getattr(row, k)] for k in ("rf", "jump", "start")},
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
                entry["erf_grid"] = grids[row.name]
                entry["erf"] = {}
                for label, _ in variants:
                    stack, counts = erfs[label][row.name]
                    if not stack.sum():
                        continue
                    numbers, scaled = [], []
                    cases = zip(unit_lists[row.name], box_lists[row.name], stack, counts)
                    for (i, j), box, m, n in cases:
                        total = float(m.sum())
                        if total == 0:
                            numbers.append({"n": int(n)})
                            scaled.append(m)
                            continue
                        centre = _unit_centre(row, (i, j), (h, w))
                        numbers.append({"n": int(n), **_erf_numbers(m / total, centre, box)})
                        scaled.append(m / m.max())
                    entry["erf"][label] = {
                        "data": blob.add(np.stack(scaled).astype("<f2").tobytes()),
                        "numbers": numbers,
                    }
            if row.name not in points:
                entry["erf_missing"] = (
                    "a functional op inside a module whose output is no "
                    "module's output: no reachable set or ERF measured here"
                )
        rows.append(entry)
    data = {
        "title": title,
        "input": list(analysis.input_shape),
        "inputs": inputs,
        "n_images": len(images),
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
