"""The ERF of chosen units of a row, many units at the cost of about one.

The ERF of a unit is |d unit / d input| summed over the input's channels and over images (see
`rfcalc.erf`, which measures the centre unit). `rfcalc explore` wants it for a grid of units
per row, and one backward pass per unit would multiply its cost by the grid's size. Two things
keep it near the cost of the centre unit alone:

- **Disjoint boxes share a pass.** A unit's gradient is zero outside its theoretical box
  (for an exact field), so units whose clipped boxes do not overlap can be summed into one
  target: the gradient splits exactly by boxes.
- **The other units take turns over the images.** In eval mode each image's gradient is its
  own, so one backward pass can lend image 1 to one unit, image 2 to the next, and so on.

So per row and batch: one pass for the centre unit ((n−1)//2 per axis) and the units sharing
its pass, on every image (the centre's ERF is `rfcalc erf`'s); one more pass for the rest,
each group of them getting every m-th image (m groups; more passes only when a batch has fewer
images than groups, so that every unit sees at least one). Each unit's image count is
returned with its map.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from .erf import ERFError, run_capturing

__all__ = ["sampled_units", "disjoint_groups", "unit_erf_maps"]

Box = list[list[int]]  # per axis [lo, hi], clipped to the input


def sampled_units(n: int, full: bool) -> list[int]:
    """The units along one axis whose ERF the page holds (see the module docstring)."""
    centre = (n - 1) // 2
    if not full:
        return [centre]
    return list(range(n)) if n <= 4 else [0, centre, n - 1]


def disjoint_groups(boxes: Sequence[Optional[Box]]) -> list[list[int]]:
    """Indices grouped so that no two boxes in a group overlap (a unit with no box alone)."""
    groups: list[list[int]] = []
    for i, b in enumerate(boxes):
        for g in groups:
            if b is not None and all(boxes[k] is not None and not _overlap(b, boxes[k]) for k in g):
                g.append(i)
                break
        else:
            groups.append([i])
    return groups


def _overlap(a: Box, b: Box) -> bool:
    return all(lo1 <= hi2 and lo2 <= hi1 for (lo1, hi1), (lo2, hi2) in zip(a, b))


def _passes(units: list, boxes: list, centre: int) -> tuple[list[int], list[list[int]]]:
    """The centre unit's group (units with disjoint boxes, measured on every image) and the
    other groups (which take turns over the images of one more pass)."""
    groups = disjoint_groups(boxes)
    first = next(g for g in groups if centre in g)
    return first, [g for g in groups if g is not first]


def unit_erf_maps(
    model: nn.Module,
    images: torch.Tensor,
    targets: Sequence[tuple[nn.Module, int, tuple[int, ...], list[tuple[int, ...]], list]],
    batch_size: int = 64,
    progress: Optional[Callable[[int, int], None]] = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each target (module, call, spatial size, units, their clipped boxes or None): an
    array (units, *input spatial) of each unit's |gradient| summed over its images and the
    input channels (float64, unnormalised), and how many images each unit had.

    Per target and batch, one backward pass for the centre unit ((n−1)//2 per axis) and the
    units whose boxes overlap none in its group, on every image; then one more for the other
    units, each image lent to one group in turn (in eval mode each image's
    gradient is its own), so those units see about N / groups images (more passes when a
    batch has fewer images than groups: every unit sees one at least). A unit's gradient is
    zero outside its box, so a group's shared gradient splits exactly by boxes.
    `progress(done, total)`: backward passes."""
    model.eval()
    plans = []
    for _, _, size, units, boxes in targets:
        centre = units.index(tuple((n - 1) // 2 for n in size))
        plans.append(_passes(units, boxes, centre))
    spatial = tuple(images.shape[2:])
    sums = [np.zeros((len(t[3]), *spatial)) for t in targets]
    counts = [np.zeros(len(t[3]), dtype=np.int64) for t in targets]
    chunks = torch.split(images, batch_size)

    def n_extra(others: list, batch: int) -> int:
        return -(-len(others) // batch) if others else 0

    total = sum(1 + n_extra(o, len(c)) for c in chunks for _, o in plans)
    finished = 0
    turn = 0  # which of the other groups the next image goes to, carried across batches
    for chunk in chunks:
        x = chunk.detach().clone().requires_grad_(True)
        outs: dict[int, torch.Tensor] = {}
        with torch.enable_grad():
            run_capturing(
                model,
                [(m, c) for m, c, *_ in targets],
                x,
                lambda i, out, outs=outs: outs.__setitem__(i, out),
            )
            n_passes = sum(1 + n_extra(o, len(chunk)) for _, o in plans)
            done = 0
            for t, (first, others) in enumerate(plans):
                _, _, size, units, boxes = targets[t]
                out = outs[t]
                if tuple(out.shape[-len(size) :]) != tuple(size):
                    raise ERFError(
                        f"the captured output has shape {tuple(out.shape)}, not the "
                        f"row's spatial size {tuple(size)}"
                    )
                lent = [[first] * len(chunk)]
                for p in range(n_extra(others, len(chunk))):
                    slot = turn + p * len(chunk)
                    lent.append([others[(slot + b) % len(others)] for b in range(len(chunk))])
                for groups in lent:
                    done += 1
                    mask = torch.zeros(len(chunk), *size, dtype=out.dtype)
                    for b, g in enumerate(groups):
                        for u in g:
                            mask[(b, *units[u])] = 1
                    mask = mask.view(len(chunk), *[1] * (out.dim() - 1 - len(size)), *size)
                    (grad,) = torch.autograd.grad(
                        (out * mask).sum(), x, allow_unused=True, retain_graph=done < n_passes
                    )
                    per_image = (torch.zeros_like(x) if grad is None else grad).abs().sum(1)
                    per_image = per_image.to(torch.float64).cpu().numpy()
                    for g in {id(g): g for g in groups}.values():
                        mine = [b for b, h in enumerate(groups) if h is g]
                        summed = per_image[mine].sum(0)
                        for u in g:
                            counts[t][u] += len(mine)
                            if len(g) == 1:
                                sums[t][u] += summed
                            else:  # the unit's own part of the shared gradient: its box
                                (y0, y1), (x0, x1) = boxes[u]
                                box = (slice(y0, y1 + 1), slice(x0, x1 + 1))
                                sums[t][u][box] += summed[box]
                    finished += 1
                    if progress is not None:
                        progress(finished, total)
        turn += len(chunk) * max(n_extra(o, len(chunk)) for _, o in plans) if plans else 0
    return list(zip(sums, counts))
