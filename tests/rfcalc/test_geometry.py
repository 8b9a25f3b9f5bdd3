"""geometry.py: the per-axis arithmetic, checked against hand-worked numbers."""

from fractions import Fraction as Fr

import pytest

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
