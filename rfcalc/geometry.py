"""Receptive-field arithmetic along one spatial axis: pure integer/rational maths, no torch.

A field is tracked exactly, unit by unit, as the first and last input pixel it can see
(`lo`, `hi`; the classic rf is `hi - lo + 1`, the centre `(lo + hi) / 2`). Ordinary conv nets
give every unit the same field shifted by the jump, so one (lo, hi) pair and the jump say it
all: that is the classic arithmetic

    r_out = r_in + (k-1)·d·j_in,   j_out = j_in·s,   start_out = start_in + ((k-1)/2·d - p)·j_in.

Up-sampling, transposed convolutions and uneven adaptive pools make the pattern repeat only
every few units, so an `Axis` stores one (lo, hi) per *phase*: unit `o = q·period + r` sees
`[lo[r] + q·advance, hi[r] + q·advance]`. All values stay integers (input pixel indices, which
may lie outside the image where padding was counted); the summary jump `advance / period` and
the centre are the only rationals. Invariant: lo and hi never decrease with the unit index.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import gcd
from typing import Callable, Optional

# A field's status: how far it can be trusted (re-exported by rfcalc.analysis).
EXACT = "exact"        # the classic arithmetic, exactly
APPROX = "approx"      # units differ (up-sampling, uneven adaptive pool): rf is the widest unit's
GLOBAL = "global"      # every unit sees the whole map (gate broadcast, flatten+Linear, attention)
UNKNOWN = "unknown"    # an op without a rule touched the spatial map: nothing is claimed

MAX_PERIOD = 1 << 14   # phases kept per axis; beyond this an op is reported as not geometric


class RFError(ValueError):
    """The analysis cannot go on: input too small for a layer, or the model's forward failed."""


class NotGeometric(Exception):
    """An op whose effect on the field has no exact description; the caller marks it UNKNOWN."""


@dataclass(frozen=True)
class Axis:
    """The field of every unit along one spatial axis (see the module docstring)."""

    size: int
    period: int
    advance: int
    lo: tuple[int, ...]
    hi: tuple[int, ...]

    def unit(self, o: int) -> tuple[int, int]:
        """First and last input pixel seen by unit `o` (any integer, also outside the map)."""
        q, r = divmod(o, self.period)
        return self.lo[r] + q * self.advance, self.hi[r] + q * self.advance

    @property
    def jump(self) -> Fraction:
        """Mean distance between neighbouring units, in input pixels."""
        return Fraction(self.advance, self.period)

    @property
    def rf(self) -> Fraction:
        """The widest unit's field (every unit's, when the axis is uniform)."""
        return Fraction(max(h - l for l, h in zip(self.lo, self.hi)) + 1)

    @property
    def start(self) -> Fraction:
        """Centre of unit 0's field, in input pixel coordinates."""
        return Fraction(self.lo[0] + self.hi[0], 2)

    @property
    def uniform(self) -> bool:
        """Whether every unit has the same field shifted by the jump (the classic case)."""
        return self.period == 1

    def span(self) -> tuple[int, int]:
        """First and last input pixel seen by any unit of the map."""
        return self.unit(0)[0], self.unit(self.size - 1)[1]


def input_axis(n: int) -> Axis:
    """Input pixels: size n, jump 1, rf 1, start 0."""
    if n < 1:
        raise RFError(f"input size {n} is not positive")
    return Axis(n, 1, 1, (0,), (0,))


def _normalised(size: int, period: int, advance: int, lo: list[int], hi: list[int]) -> Axis:
    """The same axis with the shortest period that describes it."""
    for p in range(1, period):
        if period % p or (advance * p) % period:
            continue
        step = advance * p // period
        if all(lo[r + p] == lo[r] + step and hi[r + p] == hi[r] + step
               for r in range(period - p)):
            return Axis(size, p, step, tuple(lo[:p]), tuple(hi[:p]))
    axis = Axis(size, period, advance, tuple(lo), tuple(hi))
    if size >= 2 and period > 1:
        # only the map's own units matter: if they happen to sit on a line (adaptive 3 -> 2
        # is a k2 s1 window), the classic description is exact for all of them
        (l0, h0), (l1, h1) = axis.unit(0), axis.unit(1)
        step = l1 - l0
        if step >= 0 and h1 - h0 == step and all(
                axis.unit(o) == (l0 + o * step, h0 + o * step) for o in range(2, size)):
            return Axis(size, 1, step, (l0,), (h0,))
    return axis


def resample(axis: Axis, size: int, num: int, den: int,
             taps: Callable[[int], tuple[int, int]]) -> Axis:
    """A general op where output unit o reads input units taps(o) = (first, last).

    `taps(o + den)` must equal `taps(o)` shifted by `num` input units (the op advances
    num/den input units per output unit), which makes the result periodic.
    """
    if size < 1:
        raise RFError(f"output size {size} is below 1")
    g = gcd(num, axis.period)
    period = den * axis.period // g
    if period > MAX_PERIOD:
        raise NotGeometric(f"the sampling pattern repeats only every {period} units")
    advance = axis.advance * num // g
    lo, hi = [], []
    for o in range(period):
        first, last = taps(o)
        if first > last:
            raise NotGeometric(f"unit {o} reads no input unit")
        # lo/hi are non-decreasing in the unit index, so the end taps bound the window
        lo.append(axis.unit(first)[0])
        hi.append(axis.unit(last)[1])
    return _normalised(size, period, advance, lo, hi)


def window_size(n: int, k: int, s: int, pad_lo: int, pad_hi: int, d: int = 1,
                ceil_mode: bool = False) -> int:
    """PyTorch's output size of a sliding window (conv, pool) over n units."""
    span = n + pad_lo + pad_hi - d * (k - 1) - 1
    if span < 0:
        raise RFError(f"a map of size {n} (padding {pad_lo}+{pad_hi}) is smaller than the "
                      f"window {d * (k - 1) + 1} (kernel {k}, dilation {d})")
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    # PyTorch drops a last window that would start in the right padding
    if (out - 1) * s >= n + pad_lo:
        out -= 1
    return out


def window(axis: Axis, k: int, s: int = 1, pad_lo: int = 0, pad_hi: Optional[int] = None,
           d: int = 1, ceil_mode: bool = False) -> Axis:
    """Conv/pool/crop/pad: kernel k, stride s, dilation d, padding (pad_lo, pad_hi)."""
    if min(k, s, d) < 1:
        raise NotGeometric(f"kernel {k}, stride {s}, dilation {d} must be positive")
    pad_hi = pad_lo if pad_hi is None else pad_hi
    size = window_size(axis.size, k, s, pad_lo, pad_hi, d, ceil_mode)
    return resample(axis, size, s, 1, lambda o: (o * s - pad_lo, o * s - pad_lo + (k - 1) * d))


def transposed(axis: Axis, k: int, s: int = 1, pad: int = 0, d: int = 1,
               output_padding: int = 0) -> Axis:
    """Transposed convolution: output o reads input i where i·s = o + pad - t·d, 0 <= t < k."""
    size = (axis.size - 1) * s - 2 * pad + d * (k - 1) + output_padding + 1

    def taps(o: int) -> tuple[int, int]:
        hits = [(o + pad - t * d) // s for t in range(k) if (o + pad - t * d) % s == 0]
        return (min(hits), max(hits)) if hits else (1, 0)

    return resample(axis, size, 1, s, taps)


def adaptive(axis: Axis, size: int) -> Axis:
    """Adaptive pool to `size`: unit o reads [floor(o·n/size), ceil((o+1)·n/size) - 1]."""
    n = axis.size
    g = gcd(n, size)
    return resample(axis, size, n // g, size // g,
                    lambda o: (o * n // size, -(-(o + 1) * n // size) - 1))


def interpolate(axis: Axis, size: int, scale: Fraction, offset: Fraction, linear: bool,
                nearest_floor: bool = True) -> Axis:
    """Up/down-sampling where output o samples input position src = o·scale + offset.

    Nearest reads floor(src); linear reads floor(src) and the next unit unless src is a whole
    number (then the second weight is exactly zero). Clamping at the borders only drops
    positions outside the map, which clipping to the image drops anyway.
    """
    scale = Fraction(scale)
    offset = Fraction(offset)

    def taps(o: int) -> tuple[int, int]:
        src = o * scale + offset
        first = src.numerator // src.denominator
        last = first + 1 if linear and src != first else first
        return first, last

    # shifting o by scale's denominator shifts src by its numerator
    return resample(axis, size, scale.numerator, scale.denominator, taps)


def broadcast(axis: Axis, size: int) -> Axis:
    """A size-1 axis repeated over `size` units: every unit sees the same field (jump 0)."""
    if axis.size != 1:
        raise NotGeometric(f"cannot broadcast a map of size {axis.size} to {size}")
    return Axis(size, 1, 0, (axis.lo[0],), (axis.hi[0],))


def collapse(axis: Axis) -> Axis:
    """The whole map as one unit (a window as large as the map)."""
    return window(axis, axis.size, axis.size)


def spread(axis: Axis) -> Axis:
    """Every unit sees what the whole map sees (statistics over the axis, softmax along it)."""
    return broadcast(collapse(axis), axis.size)


def _contains(outer: Axis, inner: Axis) -> bool:
    return all(outer.unit(o)[0] <= inner.unit(o)[0] and outer.unit(o)[1] >= inner.unit(o)[1]
               for o in range(outer.size))


def union(axes: list[Axis]) -> Axis:
    """Per unit, the smallest first pixel and largest last pixel of the merged fields."""
    first = axes[0]
    if any(a.size != first.size for a in axes):
        raise NotGeometric("merged maps differ in size: " + ", ".join(str(a.size) for a in axes))
    if all(a.jump == first.jump for a in axes):
        period = first.period
        for a in axes[1:]:
            period = period * a.period // gcd(period, a.period)
        if period > MAX_PERIOD:
            raise NotGeometric(f"the merged pattern repeats only every {period} units")
        units = [[a.unit(o) for a in axes] for o in range(period)]
        return _normalised(first.size, period, int(first.jump * period),
                           [min(u[0] for u in us) for us in units],
                           [max(u[1] for u in us) for us in units])
    # different jumps: exact only when one field holds all the others unit by unit
    for outer in axes:
        if all(_contains(outer, a) for a in axes):
            return outer
    raise NotGeometric("merged fields advance by different jumps: "
                       + ", ".join(str(a.jump) for a in axes))


@dataclass(frozen=True)
class Field:
    """The field of one tensor: one Axis per spatial dimension, and how far to trust it.

    `dims` are the tensor dimensions (negative, counted from the end) holding the axes, or
    None once the map has been flattened away (the axes then keep the last known field).
    """

    axes: tuple[Axis, ...]
    dims: Optional[tuple[int, ...]]
    status: str = EXACT
    note: str = ""

    @property
    def shown_status(self) -> str:
        """EXACT fields whose units differ are shown as APPROX (rf is the widest unit's)."""
        if self.status == EXACT and not all(a.uniform for a in self.axes):
            return APPROX
        return self.status
