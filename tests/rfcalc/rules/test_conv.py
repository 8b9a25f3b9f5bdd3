"""Convolution rules (rfcalc/rules/conv.py): padding words, the window a row shows, and a
weight or kernel computed from the input.
Expected fields are worked out by hand and measured by gradients (see rulenets.py)."""

from __future__ import annotations

from fractions import Fraction as Fr

import pytest
import torch
import torch.nn.functional as F
from measure import check  # rules/conftest.py puts tests/rfcalc on sys.path
from rulenets import SAME, W3, D, grid_sampled, model, out, rows

from rfcalc import APPROX, EXACT, GLOBAL, UNKNOWN, analyze
from rfcalc.geometry import Window
from rfcalc.rules import RULES, register_rule

W4 = torch.full((1, 1, 4, 4), 1 / 16, dtype=D)  # an even kernel: "same" pads unevenly


@pytest.mark.parametrize(
    "fn, size, rf, start, window",
    [
        # "valid": no padding. k3 on the conv3's 6x7: 4x5 units, unit o reads conv units
        # o..o+2, pixels o-1..o+3: rf 5 centred on o+1
        (
            lambda y: F.conv2d(y, W3, padding="valid"),
            (4, 5),
            5,
            1,
            Window((3, 3), (1, 1), (0, 0), (1, 1)),
        ),
        # "same" with k4: 3 pixels of padding in all, PyTorch puts 1 before and 2 after, so
        # unit o reads conv units o-1..o+2, pixels o-2..o+3: rf 6 centred on o+0.5, 6x7 units
        (
            lambda y: F.conv2d(y, W4, padding="same"),
            (6, 7),
            6,
            Fr(1, 2),
            Window((4, 4), (1, 1), (1, 1), (1, 1)),
        ),
        # "same" with k4 dilation 2: 6 in all, 3 before and 3 after; taps o-3, o-1, o+1, o+3
        # of the conv units, pixels o-4..o+4: rf 9 centred on o
        (
            lambda y: F.conv2d(y, W4, padding="same", dilation=2),
            (6, 7),
            9,
            0,
            Window((4, 4), (1, 1), (3, 3), (2, 2)),
        ),
        # the row shows stride and dilation as given: k3 stride 2 dilation 2 padding 1
        (
            lambda y: F.conv2d(y, W3, None, 2, 1, 2),
            (2, 3),
            7,
            1,
            Window((3, 3), (2, 2), (1, 1), (2, 2)),
        ),
    ],
)
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_conv_padding_words_and_the_window_a_row_shows(fn, size, rf, start, window):
    m = model(lambda s, x: fn(s.c3(x)))
    a = analyze(m, (1, 6, 7))
    o = a.output
    assert (o.size, o.rf, o.start) == (size, (rf, rf), (start, start)) and o.status == EXACT
    assert a.rows[-1].window == window
    check(m, (1, 6, 7))


def test_conv_transpose_row_shows_its_window():
    r = rows(SAME["conv_transpose2d by keyword"][0][0], (1, 4, 5))[-1]
    assert r[8] == Window((3, 3), (3, 3), (2, 2), (2, 2))


def _dynamic_conv(y, source):
    """A 3x3 conv (padding 1) of `y` whose every weight is the mean of `source` (a dynamic
    filter: the kernel is computed from the input)."""
    return F.conv2d(y, source.mean((2, 3), keepdim=True).expand(1, 1, 3, 3), padding=1)


def test_a_conv_whose_weight_is_computed_from_the_input_sees_everything():
    # the 3x3 kernel is the map's global mean: every output unit reads the whole map through
    # the weight as well as its own window (a dynamic filter); an exact 5x5 claim would be
    # wrong, which the gradient check measures
    def fn(s, x):
        y = s.c3(x)
        return _dynamic_conv(y, y)

    m = model(fn)
    o = analyze(m, (1, 6, 7)).output
    assert (o.status, o.axis_status, o.size) == (GLOBAL, (GLOBAL, GLOBAL), (6, 7))
    assert o.note == "conv2d: a weight or kernel computed from the input is read by every unit"
    check(m, (1, 6, 7))


def test_a_linear_over_the_flattened_map_with_a_weight_from_the_input_widens_by_it():
    # every entry of the Linear reads the whole 3x3-conv map (pixels -1..6 by -1..7: rf 8x9)
    # and, through a weight scaled by the mean of a 5x5 conv of the input, the whole 5x5-conv
    # map too (pixels -2..7 by -2..8): the union is rf 10x11, centred as before
    w = torch.full((5, 42), 1 / 42, dtype=D)

    def fn(s, x):
        c5 = F.conv2d(x, torch.full((1, 1, 5, 5), 1 / 25, dtype=D), padding=2)
        return F.linear(s.c3(x).flatten(1), w * c5.mean())

    m = model(fn)
    o = analyze(m, (1, 6, 7)).output
    assert (o.status, o.rf, o.start) == (GLOBAL, (10, 11), (Fr(5, 2), 3))
    assert o.note == "linear: mixes every position of the map"
    check(m, (1, 6, 7))


def test_a_conv_whose_weight_is_computed_from_a_crop_is_not_global():
    # the kernel is the mean of the conv map's top-left 2x2 units (pixels -1..2 on each
    # axis): every unit reads its own 5x5 window and that corner, a hull that differs from
    # unit to unit. Neither one window per unit of one jump (not exact) nor the same for all
    # units (not global): approx, and the gradient check holds every unit's field to it
    def fn(s, x):
        y = s.c3(x)
        return _dynamic_conv(y, y[..., :2, :2])

    m = model(fn)
    o = analyze(m, (1, 6, 7)).output
    assert (o.status, o.axis_status, o.size) == (APPROX, (APPROX, APPROX), (6, 7))
    assert o.note == "conv2d: a weight or kernel computed from the input is read by every unit"
    check(m, (1, 6, 7))
    # a sum of that map with itself reads the same pixels: still approx, the same note
    o2 = out(lambda s, x: fn(s, x) + fn(s, x))
    assert (o2.status, o2.rf, o2.note) == (APPROX, o.rf, o.note)


def test_a_rule_that_sees_unknown_inputs_says_when_a_weight_from_the_input_is_unknown(
    restore_registry,
):
    # the conv's 3x3 kernel is the mean of a grid-sampled map (no exact field). Registered
    # as usual, the conv is never asked: it is unknown for the grid sample's reason. The
    # same rule registered to see unknown inputs answers for itself: its own map (6x7, the
    # first input's dims) is known, but every unit also reads the kernel, whose field is not
    def fn(s, x):
        return _dynamic_conv(s.c3(x), grid_sampled(s, x))

    m = model(fn)
    before = analyze(m, (1, 6, 7)).output
    assert before.status == UNKNOWN and not before.note.startswith("conv2d")
    register_rule("conv2d", RULES["conv2d"], unknown_inputs=True)
    o = analyze(m, (1, 6, 7)).output
    assert (o.status, o.size) == (UNKNOWN, (6, 7))
    assert o.note == "conv2d: an argument computed from the input has an unknown field"
