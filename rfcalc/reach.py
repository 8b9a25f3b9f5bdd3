"""Which input pixels each unit of a row can reach: a structural fact, not a gradient size.

Unit u of a row reaches pixel p when a path of nonzero weights leads from p to u. Measured on
a linearised copy of the model (`rfcalc.verify.linearised`: every weight a positive constant,
biases zero, BatchNorm statistics reset) run on one one-hot input per pixel: with positive
weights no path can cancel another, so u reaches p exactly when lighting p changes u.

That is H*W forward passes. Two things make them cheap:

- **One channel.** In the linearised copy every convolution only *spreads* support, so the
  support of a layer's output does not depend on how many channels carry it. The fast path
  runs a *support copy* in which each Conv2d is replaced by "sum the input channels, convolve
  with a kernel of ones (same size, stride, padding, dilation), 1 where positive" and each
  BatchNorm by the identity: one channel wide however wide the model is. Where a model does
  something channel-specific that this copy cannot follow (a Linear on channels, a reshape
  of channels, a grouped conv that keeps branches apart), the copy either fails or disagrees
  with the full linearised model on a check sample of pixels (the corners, the centre and a
  few seeded others, run through both); then the full copy runs for every pixel.
- **Batches.** Many one-hot inputs per forward pass.

Sets come back as bool arrays (units, pixels).
"""

from __future__ import annotations

import copy
import random
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .analysis import Analysis
from .erf import capture_point, run_capturing

__all__ = ["reachable_sets", "Progress"]

# called as progress(done, total) after each batch of one-hot inputs
Progress = Callable[[int, int], None]


def reachable_sets(
    model: nn.Module,
    analysis: Analysis,
    names: list[str],
    batch: Optional[int] = None,
    progress: Optional[Progress] = None,
) -> dict[str, np.ndarray]:
    """For each named row: a bool array (units, pixels), True where the unit can reach the
    input pixel (see the module docstring). Rows must be capturable (`capture_point`)."""
    c, h, w = analysis.input_shape
    lin = _linear_copy(model)
    support = _support_copy(lin)
    if support is not None:
        try:
            fast = _reach(support, analysis, names, batch or 1024, progress, torch.float32)
        except Exception:  # noqa: BLE001 - a model the one-channel copy cannot run: full copy
            fast = None
        if fast is not None and _agrees(lin, analysis, names, fast, (c, h, w)):
            return fast
    # the full linearised model: float32 first (much faster on a CPU), float64 where a
    # reached value comes near float32's smallest (a very deep stack)
    out = _reach(lin.float(), analysis, names, batch or 256, progress, torch.float32)
    if out is None:
        out = _reach(lin.double(), analysis, names, batch or 256, progress, torch.float64)
    return out


def _linear_copy(model: nn.Module) -> nn.Module:
    from .verify import linearised

    lin = linearised(model)
    for m in lin.modules():  # running statistics are buffers, not parameters: reset them
        if getattr(m, "running_mean", None) is not None:
            m.running_mean.zero_()
        if getattr(m, "running_var", None) is not None:
            m.running_var.fill_(1.0)
    return lin


class _SupportConv(nn.Module):
    """A Conv2d's support: any input channel positive at a tap makes the output 1."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.kernel = tuple(conv.kernel_size)
        self.stride, self.dilation = conv.stride, conv.dilation
        self.padding, self.mode = conv.padding, conv.padding_mode
        self.pad = getattr(conv, "_reversed_padding_repeated_twice", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # "any tap positive" is a max over the taps: max-pooling is the cheap convolution here
        s = x.abs().sum(1, keepdim=True)
        if self.mode != "zeros":  # reflect/replicate/circular read real pixels at the border
            s = F.pad(s, self.pad, mode=self.mode)
        else:
            s = F.pad(s, self._zero_pad())
        y = F.max_pool2d(s, self.kernel, self.stride, 0, self.dilation)
        return (y > 0).to(x.dtype)

    def _zero_pad(self) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) as F.pad takes them, for int, pair, 'same', 'valid'."""
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":  # torch pads the odd pixel on the right/bottom
            tot = [d * (k - 1) for d, k in zip(self.dilation, self.kernel)]
            return (tot[1] // 2, tot[1] - tot[1] // 2, tot[0] // 2, tot[0] - tot[0] // 2)
        ph, pw = self.padding
        return (pw, pw, ph, ph)


def _support_copy(lin: nn.Module) -> Optional[nn.Module]:
    """The one-channel copy (module docstring), or None when it has no convolution."""
    sup = copy.deepcopy(lin)
    swaps = []
    for name, m in sup.named_modules():
        if type(m) is nn.Conv2d:
            swaps.append((name, _SupportConv(m)))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            swaps.append((name, nn.Identity()))
    if not any(isinstance(new, _SupportConv) for _, new in swaps):
        return None
    for name, new in swaps:
        parent, _, leaf = name.rpartition(".")
        setattr(sup.get_submodule(parent) if parent else sup, leaf, new)
    return sup


def _one_hots(pixels: torch.Tensor, c: int, h: int, w: int, dtype) -> torch.Tensor:
    x = torch.zeros(len(pixels), c, h * w, dtype=dtype)
    x[torch.arange(len(pixels)), :, pixels] = 1.0
    return x.view(len(pixels), c, h, w)


def _reach(
    net: nn.Module,
    analysis: Analysis,
    names: list[str],
    batch: int,
    progress: Optional[Progress],
    dtype,
    pixels: Optional[list[int]] = None,
) -> Optional[dict[str, np.ndarray]]:
    """Reach of each named row's units for `pixels` (default all): bool (units, pixels).
    None when a reached value came within reach of float32's smallest."""
    c, h, w = analysis.input_shape
    rows = {r.name: r for r in analysis.rows}
    points = [capture_point(net, analysis, rows[n]) for n in names]
    todo = torch.arange(h * w) if pixels is None else torch.tensor(pixels)
    base: dict[int, torch.Tensor] = {}
    tiny = {"min": float("inf")}
    reach: dict[int, list] = {i: [] for i in range(len(names))}
    # the support copy's convolutions give 0 or 1: no value can fade towards float32's smallest
    watch_tiny = dtype == torch.float32 and not any(
        isinstance(m, _SupportConv) for m in net.modules()
    )
    with torch.no_grad():
        run_capturing(
            net, points, torch.zeros(1, c, h, w, dtype=dtype), lambda i, o: base.__setitem__(i, o)
        )

        def keep(i: int, out: torch.Tensor) -> None:
            if not watch_tiny:
                reach[i].append(out.ne(base[i]).any(1).flatten(1))  # any channel changed
                return
            diff = (out - base[i]).abs().amax(1)  # (batch, *unit spatial)
            hit = diff > 0
            tiny["min"] = min(tiny["min"], float(torch.where(hit, diff, 1.0).min()))
            reach[i].append(hit.flatten(1))

        for first in range(0, len(todo), batch):
            chunk = todo[first : first + batch]
            run_capturing(net, points, _one_hots(chunk, c, h, w, dtype), keep)
            if progress is not None:
                progress(first + len(chunk), len(todo))
    if dtype == torch.float32 and tiny["min"] < 1e-30:
        return None
    return {n: torch.cat(reach[i]).T.contiguous().numpy() for i, n in enumerate(names)}


def _agrees(
    lin: nn.Module,
    analysis: Analysis,
    names: list[str],
    fast: dict[str, np.ndarray],
    shape: tuple[int, int, int],
) -> bool:
    """Does the one-channel result match the full linearised model on a check sample of
    pixels (corners, centre, a few seeded others)?"""
    _, h, w = shape
    corners = [0, w - 1, (h - 1) * w, h * w - 1, (h // 2) * w + w // 2]
    sample = sorted(set(corners + random.Random(0).sample(range(h * w), min(6, h * w))))
    full = _reach(lin.float(), analysis, names, len(sample), None, torch.float32, sample)
    if full is None:
        full = _reach(lin.double(), analysis, names, len(sample), None, torch.float64, sample)
    return all(np.array_equal(fast[n][:, sample], full[n]) for n in names)
