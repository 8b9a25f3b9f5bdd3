"""geometry.py: the per-axis arithmetic, checked against hand-worked numbers."""

import itertools
from fractions import Fraction
from fractions import Fraction as Fr

import pytest
import torch
import torch.nn.functional as F

from rfcalc import geometry as g
from rfcalc.geometry import NotGeometric, RFError


def summary(a: g.Axis):
    return a.size, a.jump, a.rf, a.start


def test_input_pixels():
    assert summary(g.input_axis(32)) == (32, 1, 1, 0)
    with pytest.raises(RFError):
        g.input_axis(0)


def test_classic_conv_chain():
    # conv k3 s1 p1: rf 1 + 2·1 = 3, start 0 + (1 - 1)·1 = 0, size 32
    a = g.window(g.input_axis(32), 3, 1, 1)
    assert summary(a) == (32, 1, 3, 0)
    # conv k3 s2 p0: rf 3 + 2·1 = 5, jump 2, start 0 + (1 - 0)·1 = 1, size (32-3)//2 + 1 = 15
    a = g.window(a, 3, 2, 0)
    assert summary(a) == (15, 2, 5, 1)
    # pool k2 s2: rf 5 + 1·2 = 7, jump 4, start 1 + (1/2)·2 = 2, size (15-2)//2 + 1 = 7
    a = g.window(a, 2, 2, 0)
    assert summary(a) == (7, 4, 7, 2)
    # dilated conv k3 d2 p2: rf 7 + 2·2·4 = 23, start 2 + (2 - 2)·4 = 2, size 7
    a = g.window(a, 3, 1, 2, d=2)
    assert summary(a) == (7, 4, 23, 2)
    assert a.uniform
    # unit 3 sees centre 2 + 3·4 = 14 ± 11: pixels 3..25
    assert a.unit(3) == (3, 25)


def test_asymmetric_padding_shifts_start():
    # k4 with padding 1 left, 2 right ("same" for an even kernel): start 0 + (1.5 - 1) = 1/2
    a = g.window(g.input_axis(10), 4, 1, 1, 2)
    assert summary(a) == (10, 1, 4, Fr(1, 2))
    # F.pad by (3, 0): size 13, start -3; a crop [2:] afterwards: start -1, size 11
    p = g.window(g.input_axis(10), 1, 1, 3, 0)
    assert summary(p) == (13, 1, 1, -3)
    assert summary(g.window(p, 1, 1, -2, 0)) == (11, 1, 1, -1)


def test_ceil_mode_sizes_follow_pytorch():
    # floor: (7 - 2)//2 + 1 = 3; ceil: ceil(5/2) + 1 = 4, the last window starts at 6 < 7: kept
    assert g.window_size(7, 2, 2, 0, 0) == 3
    assert g.window_size(7, 2, 2, 0, 0, ceil_mode=True) == 4
    # k2 s3 p1 on 8: ceil((8 + 2 - 2)/3) + 1 = 4, but the 4th window starts at 9 >= 8 + 1,
    # i.e. in the right padding, so PyTorch drops it: 3
    assert g.window_size(8, 2, 3, 1, 1, ceil_mode=True) == 3


def test_too_small_input_raises_a_value_error():
    with pytest.raises(RFError, match="smaller than the window 17") as err:
        g.window(g.input_axis(2), 3, 1, 0, d=8)
    assert isinstance(err.value, ValueError)


def test_transposed_conv_k2_s2_repeats_each_unit():
    # after a k2 s2 pool (units see 2 pixels, jump 2), a k2 s2 transposed conv: output o reads
    # input unit o // 2, so units 2m and 2m+1 both see pixels 2m..2m+1
    pooled = g.window(g.input_axis(8), 2, 2, 0)
    up = g.transposed(pooled, 2, 2)
    assert up.size == 8
    assert [up.unit(o) for o in range(4)] == [(0, 1), (0, 1), (2, 3), (2, 3)]
    assert (up.jump, up.rf, up.start, up.uniform) == (1, 2, Fr(1, 2), False)


def test_transposed_conv_k3_s2_p1_widest_unit():
    # output o reads input i with 2i = o + 1 - t, t in 0..2: even o reads i = o/2, odd o reads
    # (o-1)/2 and (o+1)/2. Size (5-1)·2 - 2 + 2 + 1 = 9. Widest rf 2 (input pixels).
    up = g.transposed(g.input_axis(5), 3, 2, 1)
    assert up.size == 9
    assert [up.unit(o) for o in range(5)] == [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2)]
    assert (up.jump, up.rf, up.start) == (Fr(1, 2), 2, 0)


def test_transposed_with_holes_is_not_geometric():
    # k1 s2: odd outputs read no input at all
    with pytest.raises(NotGeometric):
        g.transposed(g.input_axis(4), 1, 2)


def test_adaptive_pool_even_and_uneven():
    # 8 -> 4 is a k2 s2 window: units see 0..1, 2..3, ...
    even = g.adaptive(g.input_axis(8), 4)
    assert summary(even) == (4, 2, 2, Fr(1, 2)) and even.uniform
    # 8 -> 3: windows [0, 3), [2, 6), [5, 8) (floor(o·8/3) .. ceil((o+1)·8/3)): widths 3, 4, 3
    uneven = g.adaptive(g.input_axis(8), 3)
    assert [uneven.unit(o) for o in range(3)] == [(0, 2), (2, 5), (5, 7)]
    assert (uneven.rf, uneven.jump, uneven.uniform) == (4, Fr(8, 3), False)
    # 3 -> 2: [0, 2), [1, 3) is a plain k2 s1 window, so it is uniform again
    assert g.adaptive(g.input_axis(3), 2).uniform


def test_interpolate_nearest_and_bilinear():
    # nearest x2: o reads floor(o/2)
    near = g.interpolate(g.input_axis(4), 8, Fr(1, 2), Fr(0), linear=False)
    assert [near.unit(o) for o in range(4)] == [(0, 0), (0, 0), (1, 1), (1, 1)]
    # bilinear x2 (align_corners=False): src = (o + 1/2)/2 - 1/2 = o/2 - 1/4, never whole, so
    # o reads floor(src) and the next: o=0 -> -1..0, o=1 -> 0..1, o=2 -> 0..1, o=3 -> 1..2
    lin = g.interpolate(g.input_axis(4), 8, Fr(1, 2), Fr(-1, 4), linear=True)
    assert [lin.unit(o) for o in range(4)] == [(-1, 0), (0, 1), (0, 1), (1, 2)]
    assert (lin.rf, lin.jump, lin.start) == (2, Fr(1, 2), Fr(-1, 2))
    # x3 with align_corners=False: src = (o - 1)/3 is whole for o = 1, 4, ...: one tap there
    lin3 = g.interpolate(g.input_axis(4), 12, Fr(1, 3), Fr(-1, 3), linear=True)
    assert lin3.unit(1) == (0, 0) and lin3.unit(2) == (0, 1)


def test_union_of_centred_fields_takes_the_outer_edges():
    a = g.window(g.input_axis(16), 3, 1, 1)  # unit o: o-1..o+1
    b = g.window(g.input_axis(16), 7, 1, 3)  # unit o: o-3..o+3
    c = g.window(g.input_axis(16), 2, 1, 0, 1)  # unit o: o..o+1 (off-centre)
    u = g.union([a, c])
    assert u.unit(5) == (4, 6)
    assert g.union([a, b, c]).unit(5) == (2, 8)


def test_union_of_different_jumps():
    fine = g.window(g.input_axis(8), 1)  # jump 1
    coarse = g.window(g.input_axis(16), 2, 2)  # jump 2, also 8 units
    with pytest.raises(NotGeometric):
        g.union([fine, coarse])
    # a broadcast unit that holds every field merges exactly: every unit sees it (jump 0)
    whole = g.broadcast(g.collapse(g.window(g.input_axis(8), 3, 1, 1)), 8)
    assert whole.unit(0) == whole.unit(7) == (-1, 8)
    merged = g.union([fine, whole])
    assert merged.jump == 0 and merged.rf == 10


def test_collapse_and_spread():
    a = g.window(g.input_axis(10), 3, 1, 0)  # 8 units, unit o: o..o+2
    one = g.collapse(a)  # one unit: 0..9, rf 10, centre 4.5
    assert summary(one) == (1, 8, 10, Fr(9, 2))
    s = g.spread(a)
    assert s.size == 8 and s.unit(0) == s.unit(7) == (0, 9)


# ----------------------------------------------------------------------------
# geometry.py against brute force: which input pixels reach each output unit of a real torch op
# (1-D, positive weights, one impulse per input pixel), over strides, paddings, dilations.


def _reach(op, n: int) -> list[tuple[int, int] | None]:
    """Per output unit, the first and last input pixel that reaches it: the op (positive
    weights, so nothing cancels) applied to each of the n one-pixel impulses at once."""
    impulses = torch.eye(n, dtype=torch.float64)[:, None, :]  # n x 1 x n
    reached = op(impulses)[:, 0, :].T != 0  # out x in
    out = []
    for row in reached:
        idx = torch.nonzero(row).flatten().tolist()
        out.append((idx[0], idx[-1]) if idx else None)
    return out


def _units(a: g.Axis) -> list[tuple[int, int]]:
    return [a.unit(o) for o in range(a.size)]


@pytest.mark.parametrize(
    "k, s, d", [(k, s, d) for k, s, d in itertools.product((1, 2, 3, 4), (1, 2, 3), (1, 2, 3))]
)
def test_transposed_matches_conv_transpose(k, s, d):
    # torch's padding p crops p units off both ends of the unpadded output, and output_padding
    # adds units at the end: unit o of the padded op is unit o + p of the unpadded one. The
    # geometry describes the repeating pattern (taps may fall outside the map, as padding
    # does for a conv), so units are compared where all their taps lie inside the map.
    n = 16
    w = torch.ones(1, 1, k, dtype=torch.float64)
    full = _reach(lambda x: F.conv_transpose1d(x, w, stride=s, dilation=d), n)
    for pad, out_pad in ((0, 0), (1, 0), (1, 1), (2, 1), (0, 2)):
        if out_pad >= max(s, d) or pad > d * (k - 1):
            continue  # torch refuses these
        size = len(full) - 2 * pad + out_pad
        reach = [full[o + pad] if o + pad < len(full) else None for o in range(size)]
        middle = reach[size // 4 : 3 * size // 4]  # far from both borders
        try:
            a = g.transposed(g.input_axis(n), k, s, pad, d, out_pad)
        except NotGeometric:
            # only when the pattern has holes: units that read no input at all
            assert None in middle, (k, s, d, pad, out_pad)
            continue
        assert a.size == size and None not in middle, (k, s, d, pad, out_pad)
        # what each unit really reaches, border units included (None: only padding)
        assert [a.sees(o) for o in range(size)] == reach, (k, s, d, pad, out_pad)


@pytest.mark.parametrize(
    "k, s, d", [(k, s, d) for k, s, d in itertools.product((1, 2, 3, 5), (1, 2, 3), (1, 2))]
)
def test_window_matches_conv(k, s, d):
    # zero padding: what each unit really reaches of the n image pixels (None: only padding),
    # and the classic field (padding counted as pixels) where it is faithful to that
    n = 11
    w = torch.ones(1, 1, k, dtype=torch.float64)
    for lo, hi in ((0, 0), (1, 1), (2, 0), (0, 3)):
        reach = _reach(
            lambda x, lo=lo, hi=hi: F.conv1d(F.pad(x, (lo, hi)), w, stride=s, dilation=d), n
        )
        a = g.window(g.input_axis(n), k, s, lo, hi, d)
        assert [a.sees(o) for o in range(a.size)] == reach, (lo, hi)
        padded = _reach(lambda x: F.conv1d(x, w, stride=s, dilation=d), n + lo + hi)
        classic = [(f - lo, last - lo) for f, last in padded]
        assert a._virtual(0) == classic[0] and a._virtual(a.size - 1) == classic[-1], (lo, hi)


@pytest.mark.parametrize("n, size", [(7, 3), (10, 4), (5, 5), (6, 4), (9, 2), (4, 7)])
def test_adaptive_matches_adaptive_avg_pool(n, size):
    reach = _reach(lambda x: F.adaptive_avg_pool1d(x, size), n)
    assert _units(g.adaptive(g.input_axis(n), size)) == reach


def test_broadcast_needs_a_single_unit():
    with pytest.raises(NotGeometric, match="cannot broadcast a map of size 3 to 5"):
        g.broadcast(g.input_axis(3), 5)


def test_different_jumps_merge_only_when_one_field_holds_the_other():
    fine = g.window(g.input_axis(10), 3)  # 8 units, unit o sees o..o+2
    wide = g.Axis(8, 1, 0, (1,), (20,))  # every unit sees 1..20 (jump 0)
    # unit 0 of `fine` starts at 0, left of 1: `wide` does not hold it, nor the reverse
    with pytest.raises(NotGeometric, match="different jumps"):
        g.union([fine, wide])
    wider = g.Axis(8, 1, 0, (0,), (20,))
    assert g.union([fine, wider]) == wider


def test_merging_maps_of_different_sizes_is_not_geometric():
    with pytest.raises(NotGeometric, match="merged maps differ in size: 4, 5"):
        g.union([g.input_axis(4), g.input_axis(5)])


# ------------------------------------------------ columns of an axis with no classic field
@pytest.mark.parametrize(
    "reads, jump, start, rf",
    [
        # units see pixels 0, 2 and 3: centres 0 and 3 two units apart
        ([[0], [2], [3]], Fraction(3, 2), 0, 1),
        # units see 1..2 and 5..6: centres 1.5 and 5.5, one unit apart, each 2 wide
        ([[1, 2], [5, 6]], 4, Fraction(3, 2), 2),
        # the first unit sees 7..7, the last 0..1 (a flip-like order): centres 7 and 0.5
        ([[7], [3], [0, 1]], Fraction(-13, 4), 7, 2),
    ],
)
def test_irregular_reads_give_jump_start_and_rf_from_what_units_see(reads, jump, start, rf):
    a = g.gather(g.input_axis(8), reads)
    assert not a.classic
    assert (a.jump, a.start, a.rf) == (jump, start, rf)


def test_a_unit_that_reads_nothing_sees_nothing():
    a = g.gather(g.input_axis(8), [[0], [], [3]])
    assert a.sees(1) is None and a.unit(1) == (0, -1)
    assert a.unit(2) == (3, 3)


def test_a_global_axis_stays_global_through_a_gather():
    # every unit of a spread axis sees the whole map; re-reading its units keeps that,
    # with or without a classic description beside it
    spread = g.spread(g.input_axis(5))
    assert spread.mixed
    assert g.gather(spread, [[0], [1]]).mixed
    assert g.gather(spread, [[4], [3], [2], [1], [0]], classic=spread).mixed
    # re-reading a single unit of an ordinary axis is not global
    assert not g.gather(g.input_axis(5), [[2], [2]]).mixed


# --------------------------------------------------------------------------- padding modes
def test_zeros_is_constant_padding():
    a = g.input_axis(4)
    assert g.pad(a, 1, 2, "zeros") == g.pad(a, 1, 2, "constant") == g.pad(a, 1, 2)


def test_reflect_padding_up_to_one_less_than_the_map():
    # torch's rule: reflect padding must be smaller than the map. Padding 3 on a 4-unit map
    # mirrors units 3, 2, 1 (not the border unit 0) into the new front units.
    a = g.pad(g.input_axis(4), 3, 0, "reflect")
    assert a.seen[:4] == ((3, 3), (2, 2), (1, 1), (0, 0))
    with pytest.raises(g.RFError) as err:
        g.pad(g.input_axis(4), 0, 4, "reflect")
    assert str(err.value) == "reflect padding by 4 needs a map larger than 4"


def test_replicate_padding_of_a_one_unit_map():
    a = g.pad(g.input_axis(1), 2, 1, "replicate")
    assert a.seen == ((0, 0),) * 4


def test_transposed_defaults_are_torchs():
    # ConvTranspose1d's defaults: stride 1, padding 0, dilation 1, output_padding 0
    a = g.input_axis(6)
    assert g.transposed(a, 3) == g.transposed(a, 3, 1, 0, 1, 0)
    assert g.transposed(a, 3).size == 8  # (6 - 1) * 1 + 3


def test_units_outside_the_map():
    # a classic axis extends past the map by its arithmetic (conv3 with padding 1: unit -1
    # sees -2..0, unit 5 of a 5-unit map sees 4..6), also where it is not faithful (reflect
    # padding); outside the map no unit really sees anything; an axis with no classic
    # description has nothing to say there
    conv = g.window(g.input_axis(5), 3, 1, 1)
    assert conv.unit(-1) == (-2, 0) and conv.unit(5) == (4, 6)
    reflect = g.pad(g.input_axis(5), 1, 1, "reflect")
    assert not reflect.faithful and reflect.unit(7) == (6, 6) and reflect.unit(-1) == (-2, -2)
    flipped = g.flip(g.input_axis(5))
    assert flipped.unit(5) == (0, -1) and flipped.unit(-1) == (0, -1)
    assert flipped.unit(0) == (4, 4)
    for a in (conv, reflect, flipped):
        assert a.sees(-1) is None and a.sees(a.size) is None


def test_an_axis_whose_first_unit_sees_nothing():
    # no centre for unit 0: start and jump fall back to 0, rf is the widest unit's
    a = g.gather(g.input_axis(4), [[], [1], [2, 3]])
    assert (a.start, a.jump, a.rf) == (0, 0, 2)


def test_a_gather_may_read_outside_the_map():
    # reads outside the input map add nothing (as padding)
    a = g.gather(g.input_axis(3), [[-1, 0], [3], [2, 3]])
    assert [a.sees(o) for o in range(3)] == [(0, 0), None, (2, 2)]


def test_broadcast_to_more_than_one_unit_is_global():
    one = g.collapse(g.input_axis(4))
    assert not g.broadcast(one, 1).mixed
    two = g.broadcast(one, 2)
    assert two.mixed and [two.sees(o) for o in range(2)] == [(0, 3), (0, 3)]


def test_an_unknown_padding_mode_is_not_geometric():
    with pytest.raises(NotGeometric, match=r"^padding mode 'bogus'$"):
        g.pad(g.input_axis(4), 1, 1, "bogus")


def test_a_roll_by_whole_turns_changes_nothing():
    a = g.window(g.input_axis(7), 3, 1, 1)
    for shift in (7, -14, 0):
        assert g.roll(a, shift) is a
    assert not g.roll(a, 8).classic  # not a whole turn: units wrap


def test_border_copies_of_a_global_axis_stay_global():
    # every unit of a spread axis sees the whole map; replicate padding adds copies of its
    # border units, which see the same: still global. Zero padding adds units that see
    # nothing: no longer every unit sees the whole map.
    spread = g.spread(g.input_axis(5))
    assert g.pad(spread, 1, 1, "replicate").mixed
    assert g.pad(spread, 1, 1, "circular").mixed
    assert not g.pad(spread, 1, 1, "constant").mixed


def test_an_input_of_no_pixels_is_refused():
    with pytest.raises(g.RFError, match=r"^input size 0 is not positive$"):
        g.input_axis(0)


@pytest.mark.parametrize(
    "size, num, den, taps, period, advance",
    [
        # units 2m and 2m+1 read input unit m: declared as a pattern of 4 units advancing
        # 2, it repeats every 2 units advancing 1 (and never every unit: pairs share a field)
        (16, 2, 4, lambda o: (o // 2, o // 2), 2, 1),
        # every third unit moves on: units 3m..3m+2 read m..m+1; declared every 6 units
        (18, 2, 6, lambda o: (o // 3, o // 3 + 1), 3, 1),
        # the same pattern declared every 6 units advancing 3
        (18, 3, 6, lambda o: (o // 2, o // 2), 2, 1),
        # first pixels move every second unit, last pixels every unit: both must repeat
        (8, 2, 2, lambda o: (o // 2 * 2, o + 1), 2, 2),
        # a one-unit map of a pattern declared every 2 units: every unit would do, and with
        # one unit there is no second unit to say so
        (1, 2, 2, lambda o: (o, o), 1, 1),
    ],
)
def test_an_axis_keeps_the_shortest_period_that_describes_it(size, num, den, taps, period, advance):
    a = g.resample(g.input_axis(40), size, num, den, taps)
    assert (a.period, a.advance) == (period, advance)
    assert type(a.advance) is int and a.jump == Fraction(advance, period)
    # the shorter description still gives every unit's field (input units are pixels here)
    assert [a._virtual(o) for o in range(size)] == [taps(o) for o in range(size)]


@pytest.mark.parametrize(
    "n, size, period, advance, lo, hi",
    [
        # 3 -> 2: units read [0, 1] and [1, 2]: a k2 s1 window, one field shifted by 1
        (3, 2, 1, 1, (0,), (1,)),
        # 7 -> 3: [0, 2], [2, 4], [4, 6]: k3 s2
        (7, 3, 1, 2, (0,), (2,)),
        # 6 -> 4: [0, 1], [1, 2], [3, 4], [4, 5]: steps of 1 and 2, two phases every 3 pixels
        (6, 4, 2, 3, (0, 1), (1, 2)),
        # 5 -> 1: the whole map
        (5, 1, 1, 5, (0,), (4,)),
    ],
)
def test_adaptive_units_on_a_line_are_one_window(n, size, period, advance, lo, hi):
    a = g.adaptive(g.input_axis(n), size)
    assert (a.period, a.advance, a.lo, a.hi) == (period, advance, lo, hi)
    assert a.uniform == (period == 1) and a.faithful


def test_map_units_that_all_see_one_pixel_are_one_field_with_jump_0():
    # a pattern that moves on every third unit (units 0, 1 read pixel 0, unit 2 pixel 1, ...)
    # on a map of two units: both see pixel 0, so within the map it is one field, jump 0
    a = g.resample(g.input_axis(8), 2, 1, 3, lambda o: ((o + 1) // 3,) * 2)
    assert (a.period, a.advance, a.lo, a.hi) == (1, 0, (0,), (0,))
    assert a.jump == 0 and [a.sees(o) for o in range(2)] == [(0, 0), (0, 0)]


def test_units_on_a_line_means_every_unit_of_the_map():
    # nearest 2 -> 3 reads units 0, 0, 1: the first two sit on a line of jump 0, the third
    # leaves it, so the map is not one field: three phases, advancing 2 pixels, jump 2/3
    a = g.interpolate(g.input_axis(2), 3, Fraction(2, 3), Fraction(0), linear=False)
    assert [a.sees(o) for o in range(3)] == [(0, 0), (0, 0), (1, 1)]
    assert (a.period, a.advance, a.jump) == (3, 2, Fraction(2, 3)) and not a.uniform


def test_an_empty_output_is_refused():
    with pytest.raises(g.RFError, match=r"^output size 0 is below 1$"):
        g.resample(g.input_axis(4), 0, 1, 1, lambda o: (o, o))


def test_a_global_axis_with_no_classic_description_stays_global_through_a_window():
    # a flipped map has no classic description; softmax along it (spread) makes every unit
    # see the whole map; a conv after that reads only such units: still global, still with
    # no classic description
    a = g.window(g.spread(g.flip(g.input_axis(5))), 3, 1, 1)
    assert a.mixed and not a.classic
    assert [a.sees(o) for o in range(5)] == [(0, 4)] * 5


def test_the_longest_pattern_kept_is_max_period_units():
    # units 0..m-1 read pixel 0, unit m pixel 1: a pattern of m units (m + 1 of them in the
    # map, so that they do not all sit on one line)
    m = g.MAX_PERIOD
    a = g.resample(g.input_axis(4), m + 1, 1, m, lambda o: (o // m,) * 2)
    assert a.period == m and a.jump == Fraction(1, m)
    with pytest.raises(
        NotGeometric, match=rf"^the sampling pattern repeats only every {m + 1} units$"
    ):
        g.resample(g.input_axis(4), m + 2, 1, m + 1, lambda o: (o // (m + 1),) * 2)


@pytest.mark.parametrize("k, s, d", [(0, 1, 1), (3, 0, 1), (3, 1, 0)])
def test_a_window_needs_a_positive_kernel_stride_and_dilation(k, s, d):
    with pytest.raises(
        NotGeometric, match=rf"^kernel {k}, stride {s}, dilation {d} must be positive$"
    ):
        g.window(g.input_axis(6), k, s, 0, 0, d)


def test_a_transposed_window_with_holes_names_the_first_empty_unit():
    # stride 2, dilation 2: output o reads input i where 2i = o - 2t: odd units read nothing
    with pytest.raises(NotGeometric, match=r"^unit 1 reads no input unit$"):
        g.transposed(g.input_axis(6), 3, 2, 0, 2)


def test_a_global_axis_stays_global_through_a_window():
    a = g.window(g.spread(g.input_axis(5)), 3, 1, 1)
    assert a.mixed and a.classic and [a.sees(o) for o in range(5)] == [(0, 4)] * 5


def test_merging_global_axes_with_no_classic_description_stays_global():
    a = g.spread(g.flip(g.input_axis(5)))
    for u in (g.union([a, g.window(a, 3, 1, 1)]), g.union([a, a], strict=False)):
        assert u.mixed and not u.classic and [u.sees(o) for o in range(5)] == [(0, 4)] * 5
    # merged with one that is not global, every unit still sees the whole map
    assert g.union([a, g.flip(g.input_axis(5))]).mixed


def _bumped(size: int, period: int, num: int) -> g.Axis:
    """Units see pixel o·num/period (rounded down), one pixel more at the start of each
    period: a pattern that repeats exactly every `period` units."""
    return g.resample(
        g.input_axis(64),
        size,
        num,
        period,
        lambda o: (o * num // period, o * num // period + (o % period == 0)),
    )


def test_a_merge_repeats_with_the_least_common_period_of_its_inputs():
    # a field of one pixel per unit, merged with one whose every second unit also sees the
    # next pixel: the merge repeats every 2 units, whichever comes first
    plain = g.input_axis(10)
    wide = _bumped(10, 2, 2)
    for axes in ([plain, wide], [wide, plain], [plain, plain, wide]):
        u = g.union(axes)
        assert u.period == 2 and [u._virtual(o) for o in range(4)] == [
            (0, 1),
            (1, 1),
            (2, 3),
            (3, 3),
        ]


def test_the_longest_merged_pattern_kept_is_max_period_units():
    m = g.MAX_PERIOD
    a = _bumped(20, m, 1)
    assert a.period == m and g.union([a, a]).period == m
    # periods 3·4096 and 15 with the same jump 1/3: together 61440 units, too long
    b, c = _bumped(20, 3 * 4096, 4096), _bumped(20, 15, 5)
    assert (b.period, c.period, b.jump, c.jump) == (3 * 4096, 15, Fraction(1, 3), Fraction(1, 3))
    with pytest.raises(NotGeometric, match=r"^the merged pattern repeats only every 61440 units$"):
        g.union([b, c])


def test_a_global_field_held_by_a_wider_one_keeps_the_merge_global():
    # jumps 1 and 0 differ; the conv's classic field (9 wide, centred) holds the whole map
    # of 5 for every unit, so it describes the merge, and every unit sees the whole map
    x = g.input_axis(5)
    u = g.union([g.window(x, 9, 1, 4), g.spread(x)])
    assert u.mixed and u.jump == 1 and [u.sees(o) for o in range(5)] == [(0, 4)] * 5


def test_merging_different_jumps_names_them():
    # unit o of one map sees pixel o, of the other pixel 2o: neither holds the other
    with pytest.raises(NotGeometric, match=r"^merged fields advance by different jumps: 1, 2$"):
        g.union([g.input_axis(6), g.window(g.input_axis(12), 1, 2)])


def test_adaptive_units_on_a_line_that_starts_in_the_padding():
    # a conv3 with padding 1 (unit o sees o-1..o+1), then adaptive 7 -> 3 reading conv
    # units [0, 2], [2, 4], [4, 6]: fields -1..3, 1..5, 3..7, a line of jump 2 from -1
    a = g.adaptive(g.window(g.input_axis(7), 3, 1, 1), 3)
    assert (a.period, a.advance, a.lo, a.hi) == (1, 2, (-1,), (3,))


def test_merging_different_jumps_loosely_keeps_what_each_unit_sees():
    # strict=False: no classic description, only what every unit sees (pixels o and 2o)
    u = g.union([g.input_axis(6), g.window(g.input_axis(12), 1, 2)], strict=False)
    assert not u.classic and [u.sees(o) for o in range(6)] == [(o, 2 * o) for o in range(6)]


@pytest.mark.parametrize("keep", [0, 3])
def test_a_one_unit_crop_of_a_pattern_keeps_its_mean_spacing(keep):
    # nearest 5 -> 8 reads pixels 0, 0, 1, 1, 2, 3, 3, 4: eight phases advancing 5 pixels,
    # mean spacing 5/8. One unit kept by a crop is no line (a line needs two units): the
    # pattern and its jump stay. A line through the kept unit and the next one past the map
    # would say jump 0 after unit 0 (both read pixel 0) and 1 after unit 3 (pixels 1, 2)
    up = g.interpolate(g.input_axis(5), 8, Fraction(5, 8), Fraction(0), linear=False)
    a = g.pad(up, -keep, -(7 - keep))
    assert a.size == 1 and a.sees(0) == up.sees(keep)
    assert (a.period, a.jump) == (8, Fraction(5, 8)) and not a.uniform


def test_a_merge_held_by_one_field_keeps_what_every_unit_sees():
    # branch A: an 11-wide window, stride 2, padded 7 before and 2 after: unit o's classic
    # field is pixels 2o-7..2o+3 (jump 2). Branch B: the map reflect-padded by 4, first 4
    # units kept: unit o is pixel o-4 in the classic arithmetic (jump 1, inside A's field),
    # but reads the reflected pixel 4-o. A holds B, so A describes the sum; what each unit
    # sees is still both branches': unit 0 reads pixels 0..3 through A and pixel 4 through B
    def op(x):
        a = F.conv1d(F.pad(x, (7, 2)), torch.ones(1, 1, 11, dtype=x.dtype), stride=2)
        return a + F.pad(x, (4, 0), mode="reflect")[..., :4]

    x = g.input_axis(8)
    a = g.window(x, 11, 2, 7, 2)
    b = g.pad(g.pad(x, 4, 0, "reflect"), 0, -8)
    u = g.union([a, b])
    assert u.jump == 2 and [u.sees(o) for o in range(4)] == _reach(op, 8)
    assert _reach(op, 8) == [(0, 4), (0, 5), (0, 7), (0, 7)] and not u.faithful
