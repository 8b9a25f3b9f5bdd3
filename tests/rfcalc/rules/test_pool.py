"""Pooling rules (rfcalc/rules/pool.py): the window a row shows, adaptive pools, window lists.
Expected fields are worked out by hand and measured by gradients (see rulenets.py)."""

from __future__ import annotations

import torch.nn.functional as F
from measure import check  # rules/conftest.py puts tests/rfcalc on sys.path
from rulenets import SAME, model, out, rows

from rfcalc import EXACT, UNKNOWN, analyze
from rfcalc.geometry import Window


def test_pool_rows_show_their_window():
    r = rows(SAME["torch.max_pool2d by position"][0][0], (1, 8, 9))[-1]
    assert r[8] == Window((3, 3), (2, 2), (1, 1), (2, 2))
    r = rows(SAME["avg_pool2d defaults"][0][1], (1, 7, 9))[-1]
    assert r[8] == Window((2, 2), (2, 2), (0, 0), (1, 1))


def test_adaptive_pool_even_along_w_uneven_along_h():
    # 6 -> 4 along H: units read conv units [0,1], [1,2], [3,4], [4,5]: not one stride apart
    # (approx, window k2 s1 shown); 7 -> 3 along W: [0,2], [2,4], [4,6], a k3 s2 window
    # (exact): rf 3 + 2 = 5, jump 2. Along H the widest unit reads 2 conv units: rf 4.
    m = model(lambda s, x: F.adaptive_avg_pool2d(s.c3(x), (4, 3)))
    a = analyze(m, (1, 6, 7))
    o = a.output
    assert o.size == (4, 3) and o.axis_status == ("approx", EXACT)
    assert o.rf == (4, 5) and o.jump[1] == 2
    assert o.window == Window((2, 3), (1, 2), (0, 0), (1, 1))
    check(m, (1, 6, 7))
    same = out(lambda s, x: F.adaptive_max_pool2d(s.c3(x), (4, 3)))
    assert (same.size, same.rf, same.jump, same.axis_status) == (
        o.size,
        o.rf,
        o.jump,
        o.axis_status,
    )


def test_adaptive_pool_to_one_unit_is_a_window_as_large_as_the_map():
    # global average pooling: the conv's 3 plus the other 5 (H) or 6 (W) units: 8 x 9
    o = out(lambda s, x: F.adaptive_avg_pool2d(s.c3(x), 1))
    assert o.size == (1, 1) and o.rf == (8, 9) and o.status == EXACT
    assert o.window == Window((6, 7), (6, 7), (0, 0), (1, 1))
    assert all(type(v) is int for v in o.window.kernel + o.window.stride)  # shown as 6, not 6.0


def test_adaptive_pool_of_a_map_without_a_batch_dim():
    # (C, H, W): the output's last two dims are the map
    o = out(lambda s, x: F.adaptive_avg_pool2d(s.c3(x)[0], (4, 3)))
    assert o.size == (4, 3) and o.rf == (4, 5)


def test_a_one_element_window_list_applies_to_both_axes():
    # avg_pool2d(kernel_size=[3], stride=[2]): torch repeats a one-element list for H and
    # W. Unit o reads conv units 2o..2o+2: pixels 2o-1..2o+3 (rf 5, jump 2, centred on 2o+1)
    m = model(lambda s, x: F.avg_pool2d(s.c3(x), [3], [2]))
    o = analyze(m, (1, 6, 7)).output
    assert (o.size, o.rf, o.jump, o.start) == ((2, 3), (5, 5), (2, 2), (1, 1))
    check(m, (1, 6, 7))


def test_a_1d_pool_over_a_2d_map_says_why_it_is_unknown():
    # avg_pool1d of an (N, H, W) map windows W alone and takes H for channels: the rule needs
    # the map's spatial dims to be the op's window dims, and its note says which they are
    o = out(lambda s, x: F.avg_pool1d(s.c3(x)[:, 0], 3))
    assert (o.status, o.size) == (UNKNOWN, (6, 2))
    assert o.note == "avg_pool1d: the op's 1 window dims are not the map's spatial dims (-2, -1)"
