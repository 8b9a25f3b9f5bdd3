"""Resampling: interpolate / upsample, pixel (un)shuffle, and padding of every mode.

Interpolation follows torch's own index arithmetic (ATen's UpSample.h), float for float
maps and double for double ones, so the unit a rounding sends one pixel over is the unit
torch reads; the classic description next to it uses the exact rational scale.
"""

from __future__ import annotations

from fractions import Fraction
from math import floor
from typing import Callable, Optional

import numpy as np
import torch

from .. import geometry as g
from ..geometry import NotGeometric, Window
from . import positions
from .dispatch import Call, Outcome, placed, positive, rule, spatial_window, with_axes

Taps = Callable[[int], tuple[int, int]]


def _scale(n_in: int, n_out: int, sf: Optional[float], ftype) -> "np.floating":
    """ATen's compute_scales_value: 1/scale_factor when one is passed on, else in/out."""
    if sf is not None and sf > 0:
        return ftype(1.0 / sf)
    return ftype(n_in) / ftype(n_out)


def _nearest(n_in: int, n_out: int, sf: Optional[float], exact: bool) -> Taps:
    """nearest_idx / nearest_exact_idx: the input unit each output unit copies."""
    scale = _scale(n_in, n_out, sf, np.float32)

    def taps(o: int) -> tuple[int, int]:
        if not exact and n_out == n_in:
            i = o
        elif not exact and n_out == 2 * n_in:
            i = o >> 1
        elif exact:  # (o + 0.5) is a double, the product is rounded to float, then floored
            i = floor(np.float32(np.float64(o + 0.5) * np.float64(scale)))
        else:
            i = floor(np.float32(o) * scale)
        i = min(i, n_in - 1)
        return i, i

    return taps


def _linear(
    n_in: int, n_out: int, sf: Optional[float], align: bool, ftype, cubic: bool = False
) -> Taps:
    """compute_source_index_and_lambda (and the cubic variant): the units with a non-zero
    weight; a weight of exactly zero reads nothing."""
    if align:
        scale = ftype(n_in - 1) / ftype(n_out - 1) if n_out > 1 else ftype(0)
    else:
        scale = _scale(n_in, n_out, sf, ftype)
    half = ftype(0.5)

    def taps(o: int) -> tuple[int, int]:
        if n_out == n_in:
            return o, o
        src = scale * ftype(o) if align else scale * (ftype(o) + half) - half
        if not align and not cubic and src < 0:
            src = ftype(0)
        i0 = floor(src)
        if cubic:
            t = src - ftype(i0)
            return (i0, i0) if t == 0 else (i0 - 1, i0 + 2)
        i0 = min(i0, n_in - 1)
        lam = min(max(src - ftype(i0), ftype(0)), ftype(1))
        i1 = i0 + (1 if i0 < n_in - 1 else 0)
        first = i0 if lam < 1 else i1
        last = i1 if lam > 0 else i0
        return first, last

    return taps


def interpolate(call: Call) -> Outcome:
    """F.interpolate: nearest / nearest-exact / (bi/tri)linear / bicubic / area sampling."""
    out = call.out_tensor
    nd = out.dim() - 2
    f = spatial_window(call, nd)
    mode = call.arg(3, "mode", "nearest")
    align = bool(call.arg(4, "align_corners", False))
    if call.arg(6, "antialias", False):
        raise NotGeometric("antialiased resampling widens the kernel")
    recompute = call.arg(5, "recompute_scale_factor")
    new = tuple(out.shape[-nd:])
    if mode == "area":
        return Outcome(
            with_axes(
                call.first, placed(call, tuple(g.adaptive(a, n) for a, n in zip(f.axes, new)))
            )
        )
    scale_factor = call.arg(2, "scale_factor")
    factors = (None,) * nd
    if scale_factor is not None and not recompute:
        factors = tuple(
            float(v)
            for v in (
                scale_factor if isinstance(scale_factor, (list, tuple)) else (scale_factor,) * nd
            )
        )
    ftype = np.float64 if call.first_tensor.dtype == torch.float64 else np.float32
    axes = []
    for a, n, sf in zip(f.axes, new, factors):
        if n == a.size and mode != "nearest-exact":
            axes.append(a)
            continue
        # the classic description: the exact rational scale, torch's sampling positions
        if mode in ("nearest", "nearest-exact") or not align:
            scale = (1 / Fraction(sf).limit_denominator(1 << 10)) if sf else Fraction(a.size, n)
        else:
            scale = Fraction(a.size - 1, n - 1) if n > 1 else Fraction(0)
        if mode in ("nearest", "nearest-exact"):
            exact = mode == "nearest-exact"
            axes.append(
                g.interpolate(
                    a,
                    n,
                    scale,
                    scale / 2 if exact else Fraction(0),
                    linear=False,
                    actual=_nearest(a.size, n, sf, exact),
                )
            )
        elif mode in ("linear", "bilinear", "trilinear"):
            offset = Fraction(0) if align else scale / 2 - Fraction(1, 2)
            axes.append(
                g.interpolate(
                    a, n, scale, offset, linear=True, actual=_linear(a.size, n, sf, align, ftype)
                )
            )
        elif mode == "bicubic":
            offset = Fraction(0) if align else scale / 2 - Fraction(1, 2)
            axes.append(_cubic(a, n, scale, offset, _linear(a.size, n, sf, align, ftype, True)))
        else:
            raise NotGeometric(f"unknown interpolation mode {mode!r}")
    return Outcome(with_axes(call.first, placed(call, tuple(axes))))


def _cubic(a: g.Axis, n: int, scale: Fraction, offset: Fraction, actual: Taps) -> g.Axis:
    def taps(o: int) -> tuple[int, int]:  # 4 taps, one where the position is whole
        src = o * scale + offset
        first = src.numerator // src.denominator
        return (first, first) if src == first else (first - 1, first + 2)

    return g.resample(a, n, scale.numerator, scale.denominator, taps, actual)


def pixel_shuffle(call: Call) -> Outcome:
    """(C·r², H, W) -> (C, H·r, W·r): output unit o reads input unit o // r (per axis)."""
    f = spatial_window(call, 2)
    r = int(call.arg(1, "upscale_factor"))
    axes = tuple(g.resample(a, a.size * r, 1, r, lambda o: (o // r, o // r)) for a in f.axes)
    return Outcome(with_axes(call.first, placed(call, axes)))


def pixel_unshuffle(call: Call) -> Outcome:
    """(C, H·r, W·r) -> (C·r², H, W): each unit's channels hold an r×r block: a k=r, s=r
    window once the channels are summed."""
    f = spatial_window(call, 2)
    r = int(call.arg(1, "downscale_factor"))
    axes = tuple(g.window(a, r, r) for a in f.axes)
    window = Window((r, r), (r, r), (0, 0), (1, 1))
    return Outcome(with_axes(call.first, placed(call, axes)), window)


def pad(call: Call) -> Outcome:
    """F.pad: zeros shift the start and grow the map, negative padding crops; reflect,
    replicate and circular fill the border with copies of real units (modelled unit by unit:
    the border rows are then approx, the note says why)."""
    f = call.first
    widths = list(call.arg(1, "pad"))
    mode = call.arg(2, "mode", "constant")
    ndim = call.first_tensor.dim()
    lo_hi: dict[int, tuple[int, int]] = {}
    for i in range(len(widths) // 2):  # pairs run from the last dim backwards
        lo_hi[ndim - 1 - i] = (int(widths[2 * i]), int(widths[2 * i + 1]))
    if f.dims is None:
        laid = positions.of(f)
        if laid is not None and mode == "constant":
            moved = positions.padded(laid, widths, ndim)
            if moved is not None:  # padding holds no position (HaloNet's skewed logits)
                return Outcome(positions.wrap(f, moved))
        return Outcome(f)
    pos = positive(f.dims, ndim)
    axes = tuple(g.pad(a, *lo_hi.get(d, (0, 0)), mode) for a, d in zip(f.axes, pos))
    note = ""
    if mode != "constant" and any(lo_hi.get(d, (0, 0)) != (0, 0) for d in pos):
        note = (
            f"pad: {mode} padding, the border units see "
            + {
                "reflect": "mirrored pixels",
                "replicate": "the border pixel",
                "circular": "the opposite side of the map",
            }.get(mode, "copied pixels")
            + ", not the classic field"
        )
    return Outcome(
        with_axes(f, axes, note=note), Window(padding=tuple(lo_hi.get(d, (0, 0))[0] for d in pos))
    )


# The catalogue: the ops each rule answers for. Registered by calls rather than
# decorators so that mutation testing (mutmut leaves decorated functions alone)
# reaches the rules' bodies.
rule("interpolate", "upsample")(interpolate)
rule("pixel_shuffle")(pixel_shuffle)
rule("pixel_unshuffle")(pixel_unshuffle)
rule("pad")(pad)
