"""A map taken apart by views and permutes and put back together as another grid: a
depth-to-space written by hand (`x.view(B, C, r, r, H, W).permute(0, 1, 4, 2, 5, 3)
.reshape(B, C, H·r, W·r)`), a 1×2 space-to-depth along one axis, or any layout whose every
place holds a box of the map's positions.

Reads the layout `rfcalc.rules.positions` follows (each element: the map position it holds).
Each place of the new grid reads the positions held there in any other dim (channels); per
axis, unit o reads the union of the coordinates held at places o along it. That is exact
where every place holds exactly the product of its axes' sets, each a run (a box), which
is all this module accepts, and only for a tensor shaped as a map again ((B, C, *map) or
(B, *map, C)): anything else keeps the layout (a later view may restore it), as do windows
folded into the batch dim (Swin), which the batch dim must not hold.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from .. import geometry as g
from ..geometry import Field
from .positions import Positions, _plain, constant_along

NOTE = "views regather the map: each unit reads the positions the views put there"


def regridded(pos: Positions, out_shape) -> Optional[Field]:
    """The field of a tensor of `out_shape` laid out as `pos`, read as a map in the dims the
    map had before it was taken apart (or the trailing ones), where every place holds a box
    of positions; None otherwise."""
    before = pos.before
    n = len(before.axes)
    out_shape = tuple(out_shape)
    if pos.box is not None or before.dims is None or n == 0 or len(out_shape) != n + 2:
        # a map tensor again, (B, C, *map) or (B, *map, C): any other rank is a layout on
        # its way (Swin's and TinyViT's windows: (B, nH, ws, nW, ws, C)), kept for the
        # view that restores the map
        return None
    if not constant_along(pos, [0]):
        return None  # map positions in the batch dim (windows): not a map of this grid
    for dims in dict.fromkeys((tuple(before.dims), tuple(range(-n, 0)))):
        if any(-d > len(out_shape) - 1 for d in dims):
            continue  # dim 0 is the batch, never the map
        axes = _axes(pos, dims, out_shape)
        if axes is not None:
            return Field(axes, dims, before.status, before.note or NOTE)
    return None


def _axes(pos: Positions, dims: tuple[int, ...], out_shape) -> Optional[tuple[g.Axis, ...]]:
    before = pos.before
    n = len(dims)
    sizes = [a.size for a in before.axes]
    ndim = len(out_shape)
    at = [d % ndim for d in dims]
    if len(set(at)) != n:
        return None
    grid = [out_shape[d] for d in at]
    with _plain():
        idx = pos.idx
        if idx.numel() == 0 or bool((idx < 0).any()):
            return None
        places = math.prod(grid)
        rows = idx.movedim(at, tuple(range(n))).reshape(places, -1)  # place x held
        coords = torch.stack(torch.unravel_index(rows, tuple(sizes)), -1)  # place x held x n
        place = torch.stack(torch.unravel_index(torch.arange(places), tuple(grid)), -1)
        held = []  # per axis: unit o x coordinate, whether unit o's places hold it
        for i in range(n):
            m = torch.zeros(grid[i], sizes[i], dtype=torch.bool)
            o = place[:, i : i + 1].expand(-1, rows.shape[1])
            m[o.reshape(-1), coords[..., i].reshape(-1)] = True
            held.append(m)
        # a box: as many distinct positions at each place as the product of its axes' sets
        ordered = rows.sort(1).values
        distinct = (ordered[:, 1:] != ordered[:, :-1]).sum(1) + 1
        boxes = torch.ones(places, dtype=torch.long)
        for i in range(n):
            boxes = boxes * held[i].sum(1)[place[:, i]]
        if not torch.equal(distinct, boxes):
            return None
        reads = [[m.nonzero().flatten().tolist() for m in h] for h in held]
    if not all(_tiles(axis, a.size) for axis, a in zip(reads, before.axes)):
        return None
    return tuple(_axis(a, r) for a, r in zip(before.axes, reads))


def _tiles(reads: list[list[int]], size: int) -> bool:
    """Whether units reading `reads` cut the axis into consecutive runs, each read by one
    unit (a space-to-depth: r·o .. r·o + r - 1) or one position read by several units in a
    row (a depth-to-space: o // r). Anything else is a layout on its way, kept for the view
    that restores the map: a comb (Swin's reverse half done, each place of a ws x ws grid
    holding every window's), or every place holding the whole map (heads split off a
    token's features)."""
    end = -1
    for i, r in enumerate(reads):
        if r[-1] - r[0] + 1 != len(r):
            return False  # holes: a comb
        if i and r == reads[i - 1]:
            if len(r) > 1:
                return False  # a run of several positions read again
            continue
        if r[0] != end + 1:
            return False  # a gap, an overlap or a step back
        end = r[-1]
    return end == size - 1


def _axis(a: g.Axis, reads: list[list[int]]) -> g.Axis:
    """Unit o reads units `reads[o]` of `a`: with its classic description where every unit
    reads a run that repeats every few units shifted by the same step and never moves back
    (a depth-to-space: o // r; a space-to-depth: r·o .. r·o + r - 1), else unit by unit."""
    n = len(reads)
    runs = [(r[0], r[-1]) for r in reads]
    if any(r[-1] - r[0] + 1 != len(r) for r in reads) or any(
        b[0] < a_[0] or b[1] < a_[1] for a_, b in zip(runs, runs[1:])
    ):
        return g.gather(a, reads)
    for den in range(1, n):
        num = runs[den][0] - runs[0][0]
        if all(runs[o][0] - runs[o - den][0] == num for o in range(den, n)) and all(
            runs[o][1] - runs[o - den][1] == num for o in range(den, n)
        ):

            def taps(o: int, den=den, num=num) -> tuple[int, int]:
                q, ph = divmod(o, den)
                return runs[ph][0] + q * num, runs[ph][1] + q * num

            try:
                return g.resample(a, n, num, den, taps)
            except g.NotGeometric:
                break
    return g.gather(a, reads)
