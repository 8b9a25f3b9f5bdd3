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

import itertools
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cached_property
from math import gcd
from typing import Callable, Iterable, Optional

# A field's status: how far it can be trusted (re-exported by rfcalc.analysis).
EXACT = "exact"  # the classic arithmetic, exactly
APPROX = "approx"  # units differ (up-sampling, uneven adaptive pool): rf is the widest unit's
GLOBAL = "global"  # every unit sees the whole map (gate broadcast, flatten+Linear, attention)
UNKNOWN = "unknown"  # an op without a rule touched the spatial map: nothing is claimed

MAX_PERIOD = 1 << 14  # phases kept per axis; beyond this an op is reported as not geometric


class RFError(ValueError):
    """The analysis cannot go on: input too small for a layer, or the model's forward failed."""


class NotGeometric(Exception):
    """An op whose effect on the field has no exact description; the caller marks it UNKNOWN."""


Span = Optional[tuple[int, int]]  # first and last input pixel a unit sees; None: none at all
# The pixels an interior unit reads, as offsets from the first pixel of its field: sorted,
# disjoint runs (first, last). None: not known (units differ, or nothing tracks them).
Runs = Optional[tuple[tuple[int, int], ...]]
MAX_RUNS = 4096  # runs kept per axis; beyond this the holes are not tracked


@dataclass(frozen=True)
class Window:
    """The window of an op, one value per spatial axis: what the table's columns show."""

    kernel: Optional[tuple[int, ...]] = None
    stride: Optional[tuple[int, ...]] = None
    padding: Optional[tuple[int, ...]] = None
    dilation: Optional[tuple[int, ...]] = None


@dataclass(frozen=True)
class Axis:
    """The field of every unit along one spatial axis (see the module docstring).

    Two descriptions travel together. The *classic* one (`period`, `advance`, `lo`, `hi`) is
    the arithmetic a textbook does: it extends past the map and counts padding, and gives the
    jump, rf and start columns. `seen` is the truth, unit by unit: the first and last input
    pixel (inside the image) each unit of the map can reach, or None where it reaches none.
    A row is exact where the classic field clipped to the image is `seen` for every unit.
    `classic` is False where no classic description exists (a flip, a roll): the columns are
    then read from `seen`. `mixed`: every unit sees the same, whole reach of the map along
    this axis (a global axis).
    """

    size: int
    period: int
    advance: int
    lo: tuple[int, ...]
    hi: tuple[int, ...]
    extent: int = 0  # input pixels along this axis
    seen: tuple[Span, ...] = ()
    classic: bool = True
    mixed: bool = False
    taps: Runs = None

    def _virtual(self, o: int) -> tuple[int, int]:
        q, r = divmod(o, self.period)
        return self.lo[r] + q * self.advance, self.hi[r] + q * self.advance

    def unit(self, o: int) -> tuple[int, int]:
        """First and last input pixel of unit `o`: by the classic arithmetic (any integer, also
        outside the map; padding counted) where that is faithful to what the units see, else
        what unit `o` of the map really sees ((0, -1): nothing; so outside the map of an axis
        with no classic description)."""
        if self.faithful or (self.classic and not 0 <= o < self.size):
            return self._virtual(o)
        return self.sees(o) or (0, -1)

    def sees(self, o: int) -> Span:
        """First and last input pixel unit `o` of the map really reaches (None: none)."""
        return self.seen[o] if 0 <= o < self.size else None

    def clipped(self, o: int) -> Span:
        """The classic field of unit `o`, clipped to the image."""
        lo, hi = self._virtual(o)
        lo, hi = max(lo, 0), min(hi, self.extent - 1)
        return (lo, hi) if lo <= hi else None

    def _interior(self) -> tuple[int, int]:
        """The units (a, b) whose classic field lies inside the image, where the axis is
        uniform (a > b: none; (0, -1) where not uniform: the caller checks every unit)."""
        step, last = self.advance, self.extent - 1
        if self.period == 1 and step > 0:
            a = max(-(self.lo[0] // step), 0)  # the first unit starting inside the image
            b = min((last - self.hi[0]) // step, self.size - 1)  # the last one ending inside it
            return a, b
        return 0, -1

    @cached_property
    def _inside_seen(self) -> Optional[bool]:
        """Whether the units found by `_interior` see exactly their classic field (None: no
        such units)."""
        a, b = self._interior()
        if a > b:
            return None
        step = self.advance
        inside = zip(
            range(self.lo[0] + a * step, self.lo[0] + (b + 1) * step, step),
            range(self.hi[0] + a * step, self.hi[0] + (b + 1) * step, step),
        )
        return tuple(inside) == self.seen[a : b + 1]

    def _rest(self) -> Iterable[int]:
        a, b = self._interior()
        return itertools.chain(range(a), range(b + 1, self.size)) if a <= b else range(self.size)

    @cached_property
    def faithful(self) -> bool:
        """Whether the classic description, clipped to the image, is every unit's field."""
        if not self.classic:
            return False
        # `clipped(o) == seen[o]` for every o: the check that grows with the input. Units
        # whose classic field lies inside the image are compared in one go where the axis is
        # uniform, the rest one by one.
        if self._inside_seen is False:
            return False
        seen = self.seen
        return all(self.clipped(o) == seen[o] for o in self._rest())

    @cached_property
    def exact(self) -> bool:
        """The published convention (Araujo et al.; the Google receptive-field library): every
        unit whose classic field lies inside the image sees exactly that field, and a unit
        whose classic field the image edge clips sees a part of its clipped field. A VALID
        stride that leaves the last pixels unread is no doubt about the field: those pixels
        are reported by `unread`, not as an approximation."""
        if self.faithful:
            return True
        if not self.classic or self._inside_seen is False:
            return False
        last = self.extent - 1
        for o in self._rest():
            lo, hi = self._virtual(o)
            s = self.seen[o]
            if lo >= 0 and hi <= last:
                if s != (lo, hi):
                    return False
            elif s is not None and (s[0] < max(lo, 0) or s[1] > min(hi, last)):
                return False
        return True

    def unread(self) -> list[tuple[int, int]]:
        """The pixels at the image's edges that no unit of this axis reads: (first, last)
        ranges, before the first unit's field and after the last one's."""
        if self.monotone:  # both ends only advance: the first and last units bound it
            first, last = self.seen[0][0], self.seen[-1][1]
        else:
            spans = [s for s in self.seen if s is not None]
            if not spans:
                return [(0, self.extent - 1)]
            first = min(s[0] for s in spans)
            last = max(s[1] for s in spans)
        out = [(0, first - 1)] if first > 0 else []
        return out + ([(last + 1, self.extent - 1)] if last < self.extent - 1 else [])

    @property
    def reads(self) -> Optional[int]:
        """How many pixels of its field an interior unit reads (rf minus the holes; None: not
        known)."""
        t = self.taps
        if t is None or not self.classic or self.period != 1:
            return None
        if t[0][0] != 0 or t[-1][1] != self.hi[0] - self.lo[0]:
            return None  # not the field's own pattern: claim nothing
        return sum(b - a + 1 for a, b in t)

    @cached_property
    def monotone(self) -> bool:
        """Whether every unit sees something and neither end of its field ever moves back
        along the map: then units i..j together see (seen[i][0], seen[j][1])."""
        s = self.seen
        if None in s:
            return False
        if self.period == 1 and self.advance >= 0 and self.faithful:
            return True  # clipped copies of one field shifted forward: both ends only advance
        return all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(s, s[1:]))

    @property
    def jump(self) -> Fraction:
        """Mean distance between neighbouring units, in input pixels."""
        if self.classic:
            return Fraction(self.advance, self.period)
        first, last = self._centre(0), self._centre(self.size - 1)
        if self.size < 2 or first is None or last is None:
            return Fraction(0)
        return (last - first) / (self.size - 1)

    def _centre(self, o: int) -> Optional[Fraction]:
        s = self.sees(o)
        return None if s is None else Fraction(s[0] + s[1], 2)

    @property
    def rf(self) -> Fraction:
        """The widest unit's field (every unit's, when the axis is uniform and faithful)."""
        classic = max(h - lo for lo, h in zip(self.lo, self.hi)) + 1
        if self.exact:  # every unit sees its classic field or a part of it: none is wider
            return Fraction(classic)
        widest = max((s[1] - s[0] + 1 for s in self.seen if s), default=0)
        return Fraction(max(widest, classic) if self.classic else widest)

    @property
    def start(self) -> Fraction:
        """Centre of unit 0's field, in input pixel coordinates."""
        if self.classic:
            return Fraction(self.lo[0] + self.hi[0], 2)
        return self._centre(0) or Fraction(0)

    @property
    def uniform(self) -> bool:
        """Whether every unit has the same field shifted by the jump (the classic case)."""
        return self.classic and self.period == 1


def _hull(spans) -> Span:
    """The first and last pixel of the given spans together (None: no span)."""
    lo = hi = None
    # one plain loop: this runs per unit per op (300 ops x 800 units at Inception 1600²)
    for s in spans:
        if s is None:
            continue
        if lo is None:
            lo, hi = s
        else:
            if s[0] < lo:
                lo = s[0]
            if s[1] > hi:
                hi = s[1]
    return None if lo is None else (lo, hi)


def _hull2(a: Span, b: Span) -> Span:
    """`_hull((a, b))`, for the per-unit loop of a merge."""
    if a is None:
        return b
    if b is None:
        return a
    return (a[0] if a[0] <= b[0] else b[0], a[1] if a[1] >= b[1] else b[1])


def _seen_by(axis: Axis, first: int, last: int) -> Span:
    """What a unit reading input units first..last (clipped to the map) sees."""
    first, last = max(first, 0), min(last, axis.size - 1)
    if first > last:
        return None
    if axis.mixed or first == last:  # a global axis: every unit sees the same
        return axis.seen[first]
    # right for any axis; resample reads monotone ones the faster way (_monotone_reads)
    return _hull(axis.seen[first : last + 1])


def _monotone_reads(
    seen: tuple[Span, ...], size: int, taps: Callable[[int], tuple[int, int]]
) -> tuple[Span, ...]:
    """`_seen_by` for every output unit of a monotone input axis, in one loop: the per-unit
    cost of an op is what grows with the input size."""
    last_unit, out = len(seen) - 1, []
    for o in range(size):
        first, last = taps(o)
        if first < 0:
            first = 0
        if last > last_unit:
            last = last_unit
        out.append(None if first > last else (seen[first][0], seen[last][1]))
    return tuple(out)


def _runs(pieces: Iterable[tuple[int, int]]) -> Runs:
    """Offsets as sorted, disjoint runs (touching runs joined); None beyond MAX_RUNS."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(pieces):
        if out and a <= out[-1][1] + 1:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return tuple(out) if len(out) <= MAX_RUNS else None


def _shifted(taps: tuple[tuple[int, int], ...], shifts: Iterable[int]) -> Runs:
    """The union of `taps` shifted by every shift (a Minkowski sum)."""
    shifts = sorted(set(shifts))
    if len(taps) == 1 and all(
        b - a <= taps[0][1] - taps[0][0] + 1 for a, b in zip(shifts, shifts[1:])
    ):
        return ((shifts[0] + taps[0][0], shifts[-1] + taps[0][1]),)  # no gap: one run
    return _runs((a + d, b + d) for d in shifts for a, b in taps)


def _taps_through(axis: Axis, units: Iterable[int]) -> Runs:
    """The pattern of a unit reading the input units `units` of an exact, uniform axis."""
    if axis.taps is None or not axis.classic or axis.period != 1 or not axis.exact:
        return None
    units = list(units)
    if not units:
        return None
    base = min(units)
    return _shifted(axis.taps, ((i - base) * axis.advance for i in units))


def aligned_taps(axis: Axis, lo: int) -> Runs:
    """`axis.taps` as offsets from input pixel `lo` (the first pixel of a merged field)."""
    if axis.taps is None or axis.period != 1:
        return None
    d = axis.lo[0] - lo
    return tuple((a + d, b + d) for a, b in axis.taps)


def runs_within(inner: Runs, outer: Runs) -> bool:
    """Whether every offset of `inner` is one of `outer` (both sorted, disjoint runs)."""
    if inner is None or outer is None:
        return False
    return all(any(c <= a and b <= d for c, d in outer) for a, b in inner)


def _mixed(axis: Axis, seen: tuple[Span, ...]) -> bool:
    """An axis stays global where it was and every unit still sees the same whole reach."""
    return axis.mixed and None not in seen and len(set(seen)) == 1


def input_axis(n: int) -> Axis:
    """Input pixels: size n, jump 1, rf 1, start 0."""
    if n < 1:
        raise RFError(f"input size {n} is not positive")
    return Axis(n, 1, 1, (0,), (0,), n, tuple((i, i) for i in range(n)), taps=((0, 0),))


def _normalised(
    size: int,
    period: int,
    advance: int,
    lo: list[int],
    hi: list[int],
    like: Axis,
    seen: tuple[Span, ...],
    classic: bool,
    mixed: bool,
    taps: Runs = None,
) -> Axis:
    """The axis with the shortest period that describes its classic field (`taps`: the
    pattern of a unit, given only where the period is 1 from the start)."""

    def make(p: int, step: int, lo_: tuple[int, ...], hi_: tuple[int, ...]) -> Axis:
        return Axis(size, p, step, lo_, hi_, like.extent, seen, classic, mixed, taps)

    for p in range(1, period):
        if period % p or (advance * p) % period:
            continue
        step = advance * p // period
        if all(lo[r + p] == lo[r] + step and hi[r + p] == hi[r] + step for r in range(period - p)):
            return make(p, step, tuple(lo[:p]), tuple(hi[:p]))
    axis = make(period, advance, tuple(lo), tuple(hi))
    if size >= 2 and period > 1:
        # only the map's own units matter: if they happen to sit on a line (adaptive 3 -> 2
        # is a k2 s1 window), the classic description is exact for all of them
        (l0, h0), (l1, h1) = axis._virtual(0), axis._virtual(1)
        step = l1 - l0
        if (
            step >= 0
            and h1 - h0 == step
            and all(axis._virtual(o) == (l0 + o * step, h0 + o * step) for o in range(2, size))
        ):
            return make(1, step, (l0,), (h0,))
    return axis


def resample(
    axis: Axis,
    size: int,
    num: int,
    den: int,
    taps: Callable[[int], tuple[int, int]],
    actual: Optional[Callable[[int], tuple[int, int]]] = None,
    reads: Optional[Callable[[int], Iterable[int]]] = None,
) -> Axis:
    """A general op where output unit o reads input units taps(o) = (first, last).

    `taps(o + den)` must equal `taps(o)` shifted by `num` input units (the op advances
    num/den input units per output unit), which makes the classic field periodic. What each
    unit really sees is read from the input's units inside the map only: positions outside
    it (padding, or pixels a crop cut away) add nothing. `actual` (default `taps`) gives the
    units really read where they differ from the periodic pattern (torch's float arithmetic);
    `reads` the units read where they are not contiguous (dilation: the holes read nothing).
    """
    if size < 1:
        raise RFError(f"output size {size} is below 1")
    if reads is not None:
        seen = tuple(
            _hull(axis.seen[i] for i in reads(o) if 0 <= i < axis.size) for o in range(size)
        )
    elif axis.monotone and not axis.mixed:
        seen = _monotone_reads(axis.seen, size, actual or taps)
    else:
        seen = tuple(_seen_by(axis, *(actual or taps)(o)) for o in range(size))
    mixed = _mixed(axis, seen)
    if not axis.classic:
        return Axis(size, 1, 0, (0,), (0,), axis.extent, seen, False, mixed)
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
        lo.append(axis._virtual(first)[0])
        hi.append(axis._virtual(last)[1])
    taps_ = None
    if period == 1 and den == 1 and actual is None:
        first, last = taps(0)
        taps_ = _taps_through(axis, reads(0) if reads is not None else range(first, last + 1))
    return _normalised(size, period, advance, lo, hi, axis, seen, True, mixed, taps_)


def gather(axis: Axis, reads: list[list[int]], classic: Optional[Axis] = None) -> Axis:
    """An op where output unit o reads exactly the input units `reads[o]` (any order, any
    place: a mirrored border, a wrapped roll, a flip). `classic` is the textbook description
    to show next to it (e.g. zero padding for a reflect pad), or None where there is none."""
    seen = tuple(_hull(axis.seen[i] for i in r if 0 <= i < axis.size) for r in reads)
    mixed = _mixed(axis, seen)
    if classic is None or not axis.classic:
        return Axis(len(reads), 1, 0, (0,), (0,), axis.extent, seen, False, mixed)
    return replace(classic, seen=seen, mixed=mixed)


def window_size(
    n: int, k: int, s: int, pad_lo: int, pad_hi: int, d: int = 1, ceil_mode: bool = False
) -> int:
    """PyTorch's output size of a sliding window (conv, pool) over n units."""
    span = n + pad_lo + pad_hi - d * (k - 1) - 1
    if ceil_mode:  # one window may hang over the end (even past a map smaller than it)
        out = (span + s - 1) // s + 1
        # PyTorch drops a last window that would start in the right padding
        if out >= 1 and (out - 1) * s >= n + pad_lo:
            out -= 1
        if out >= 1:
            return out
    elif span >= 0:
        return span // s + 1
    raise RFError(
        f"a map of size {n} (padding {pad_lo}+{pad_hi}) is smaller than the "
        f"window {d * (k - 1) + 1} (kernel {k}, dilation {d})"
    )


def window(
    axis: Axis,
    k: int,
    s: int = 1,
    pad_lo: int = 0,
    pad_hi: Optional[int] = None,
    d: int = 1,
    ceil_mode: bool = False,
) -> Axis:
    """Conv/pool/crop/pad: kernel k, stride s, dilation d, padding (pad_lo, pad_hi)."""
    if min(k, s, d) < 1:
        raise NotGeometric(f"kernel {k}, stride {s}, dilation {d} must be positive")
    pad_hi = pad_lo if pad_hi is None else pad_hi
    size = window_size(axis.size, k, s, pad_lo, pad_hi, d, ceil_mode)
    reads = (
        None
        if d == 1 or k == 1
        else (lambda o: range(o * s - pad_lo, o * s - pad_lo + (k - 1) * d + 1, d))
    )
    return resample(
        axis, size, s, 1, lambda o: (o * s - pad_lo, o * s - pad_lo + (k - 1) * d), reads=reads
    )


def transposed(
    axis: Axis, k: int, s: int = 1, pad: int = 0, d: int = 1, output_padding: int = 0
) -> Axis:
    """Transposed convolution: output o reads input i where i·s = o + pad - t·d, 0 <= t < k."""
    size = (axis.size - 1) * s - 2 * pad + d * (k - 1) + output_padding + 1

    def hits(o: int) -> list[int]:
        return [(o + pad - t * d) // s for t in range(k) if (o + pad - t * d) % s == 0]

    def taps(o: int) -> tuple[int, int]:
        h = hits(o)
        return (min(h), max(h)) if h else (1, 0)

    return resample(axis, size, 1, s, taps, reads=hits)


def adaptive(axis: Axis, size: int) -> Axis:
    """Adaptive pool to `size`: unit o reads [floor(o·n/size), ceil((o+1)·n/size) - 1]."""
    n = axis.size
    g = gcd(n, size)
    return resample(
        axis, size, n // g, size // g, lambda o: (o * n // size, -(-(o + 1) * n // size) - 1)
    )


def interpolate(
    axis: Axis,
    size: int,
    scale: Fraction,
    offset: Fraction,
    linear: bool,
    actual: Optional[Callable[[int], tuple[int, int]]] = None,
) -> Axis:
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
    return resample(axis, size, scale.numerator, scale.denominator, taps, actual)


def broadcast(axis: Axis, size: int) -> Axis:
    """A size-1 axis repeated over `size` units: every unit sees the same field (jump 0), so
    the axis is global."""
    if axis.size != 1:
        raise NotGeometric(f"cannot broadcast a map of size {axis.size} to {size}")
    return Axis(
        size,
        1,
        0,
        (axis.lo[0],),
        (axis.hi[0],),
        axis.extent,
        axis.seen * size,
        axis.classic,
        size > 1 or axis.mixed,
        axis.taps,
    )


def collapse(axis: Axis) -> Axis:
    """The whole map as one unit (a window as large as the map)."""
    return window(axis, axis.size, axis.size)


def spread(axis: Axis) -> Axis:
    """Every unit sees what the whole map sees (statistics over the axis, softmax along it)."""
    return broadcast(collapse(axis), axis.size)


def _contains(outer: Axis, inner: Axis) -> bool:
    return all(
        outer._virtual(o)[0] <= inner._virtual(o)[0]
        and outer._virtual(o)[1] >= inner._virtual(o)[1]
        for o in range(outer.size)
    )


def union(axes: list[Axis], strict: bool = True) -> Axis:
    """Per unit, the smallest first pixel and largest last pixel of the merged fields.

    Fields that advance by different jumps have no classic description: NotGeometric, or
    with `strict=False` an axis that keeps only what each unit sees."""
    first = axes[0]
    if any(a.size != first.size for a in axes):
        raise NotGeometric("merged maps differ in size: " + ", ".join(str(a.size) for a in axes))
    seen = first.seen
    for a in axes[1:]:
        if a.seen != seen:  # a merge of one field with itself is that field
            seen = tuple(map(_hull2, seen, a.seen))
    mixed = any(a.mixed for a in axes) and None not in seen and len(set(seen)) == 1
    if not all(a.classic for a in axes):
        return Axis(first.size, 1, 0, (0,), (0,), first.extent, seen, False, mixed)
    if all(a.jump == first.jump for a in axes):
        period = first.period
        for a in axes[1:]:
            period = period * a.period // gcd(period, a.period)
        if period > MAX_PERIOD:
            raise NotGeometric(f"the merged pattern repeats only every {period} units")
        units = [[a._virtual(o) for a in axes] for o in range(period)]
        taps = None
        if period == 1 and all(a.taps is not None and a.exact for a in axes):
            low = min(a.lo[0] for a in axes)
            taps = _runs((x + a.lo[0] - low, y + a.lo[0] - low) for a in axes for x, y in a.taps)
        return _normalised(
            first.size,
            period,
            int(first.jump * period),
            [min(u[0] for u in us) for us in units],
            [max(u[1] for u in us) for us in units],
            first,
            seen,
            True,
            mixed,
            taps,
        )
    # different jumps: exact only when one field holds all the others unit by unit
    for outer in axes:
        if all(_contains(outer, a) for a in axes):
            return replace(outer, seen=seen, mixed=mixed, taps=None)
    if not strict:
        return Axis(first.size, 1, 0, (0,), (0,), first.extent, seen, False, mixed)
    raise NotGeometric(
        "merged fields advance by different jumps: " + ", ".join(str(a.jump) for a in axes)
    )


def spans(like: Axis, seen: tuple[Span, ...]) -> Axis:
    """An axis known only by what each unit reads (input pixels, None: nothing), as
    `like`'s input: no classic description."""
    return Axis(len(seen), 1, 0, (0,), (0,), like.extent, seen, False, _mixed(like, seen))


def pad(axis: Axis, lo: int, hi: int, mode: str = "constant") -> Axis:
    """Padding by (lo, hi) units (negative: a crop). `constant` (zeros) adds units that see
    nothing; `reflect`, `replicate` and `circular` fill them with copies of border units,
    which then see those units' pixels: the classic description (zero padding) is kept next
    to what each unit really sees, and the two differ at the border."""
    classic = window(axis, 1, 1, lo, hi)
    if mode in ("constant", "zeros"):
        return classic
    n = axis.size
    if n < 1 or (mode == "reflect" and max(lo, hi) >= n):
        raise RFError(f"{mode} padding by {max(lo, hi)} needs a map larger than {n}")

    def source(i: int) -> int:
        if 0 <= i < n:
            return i
        if mode == "replicate":
            return min(max(i, 0), n - 1)
        if mode == "circular":
            return i % n
        if mode == "reflect":
            return -i if i < 0 else 2 * (n - 1) - i
        raise NotGeometric(f"padding mode {mode!r}")

    return gather(axis, [[source(o - lo)] for o in range(classic.size)], classic)


def flip(axis: Axis) -> Axis:
    """The axis reversed: unit o sees what unit size-1-o saw (no classic description)."""
    return gather(axis, [[axis.size - 1 - o] for o in range(axis.size)])


def roll(axis: Axis, shift: int) -> Axis:
    """torch.roll: unit o sees what unit (o - shift) mod size saw."""
    n = axis.size
    if shift % n == 0:
        return axis
    return gather(axis, [[(o - shift) % n] for o in range(n)])


@dataclass(frozen=True)
class Field:
    """The field of one tensor: one Axis per spatial dimension, and how far to trust it.

    `dims` are the tensor dimensions (negative, counted from the end) holding the axes, or
    None once the map has been flattened away (the axes then keep the last known field).
    `packed` says how a flattened map was laid out where an op can undo it (F.unfold's
    windows, `flatten` of the spatial dims): the axes then still hold every unit's field.
    `status` is what the rules say (EXACT, or GLOBAL on every axis, or UNKNOWN: no axes);
    how each axis is shown is decided from the axes themselves (rfcalc.analysis.judge).
    """

    axes: tuple[Axis, ...]
    dims: Optional[tuple[int, ...]]
    status: str = EXACT
    note: str = ""
    packed: Optional[tuple] = None
