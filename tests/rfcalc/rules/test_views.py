"""Flattened maps and views back (rfcalc/rules/shape.py, positions.py): what each entry of a
flattened map sees, and the views that put the map back.
Expected fields are worked out by hand and measured by gradients (see rulenets.py)."""

from __future__ import annotations

from fractions import Fraction as Fr

import pytest
import torch
import torch.nn.functional as F
from measure import check  # rules/conftest.py puts tests/rfcalc on sys.path
from rulenets import W9, D, model, out

from rfcalc import APPROX, EXACT, GLOBAL, UNKNOWN, analyze
from rfcalc.analysis import TOKENS_NOTE


def test_a_flattened_map_transposed_and_back_views_back_to_its_field():
    # (1, C, H·W) -> (1, H·W, C) -> (1, C, H·W): still the map, laid out as before; viewed
    # back, a conv after it widens the conv3's field: rf 5
    o = out(
        lambda s, x: s.c3(s.c3(x).flatten(2).transpose(1, 2).transpose(-1, -2).view(1, 1, 6, 7))
    )
    assert o.status == EXACT and o.rf == (5, 5)
    # viewed back while transposed, the positions are scrambled: nothing is claimed exact
    o = out(lambda s, x: s.c3(s.c3(x).flatten(2).transpose(1, 2).reshape(1, 1, 6, 7)))
    assert o.status != EXACT


FLAT_NOTE = "the spatial map is flattened, per-position fields end here"

W19 = torch.full((1, 9), 1 / 9, dtype=D)  # sums a 3x3 window's column into one entry


def test_a_flattened_map_keeps_each_token_s_field_through_a_transpose():
    # flatten(2) of the conv3's 6x7 map into 42 tokens, then (B, N, C): nothing moved or
    # mixed an element, so a token is a position and keeps the conv3's field (issue #27;
    # until then shown as one global unit). Measured: the gradient of one element, token
    # (2, 3) = element 2·7 + 3 = 17, reaches pixels 1..3 x 2..4
    m = model(lambda s, x: s.c3(x).flatten(2).transpose(1, 2))
    a = analyze(m, (1, 6, 7))
    *_, flat, moved = a.rows
    for r in (flat, moved):
        assert (r.status, r.rf, r.jump, r.start, r.size) == (EXACT, (3, 3), (1, 1), (0, 0), (6, 7))
        assert r.note == TOKENS_NOTE
    probe = torch.ones(1, 1, 6, 7, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(m(probe)[0, 17].sum(), probe)
    hit = torch.nonzero(grad[0, 0]).tolist()
    assert {h for h, _ in hit} == {1, 2, 3} and {w for _, w in hit} == {2, 3, 4}
    assert not a.covers_input


@pytest.mark.parametrize(
    "fn, rf",
    [
        # the flattened map viewed back as a plain 2-D (H, W) tensor: the conv3's field
        (lambda y: y.flatten(2).view(6, 7), 3),
        # F.unfold's columns summed by a weight, viewed as the (H, W) map of windows: window
        # o reads conv units o-1..o+1, pixels o-2..o+2: rf 5
        (lambda y: (W19 @ F.unfold(y, 3, padding=1)).view(6, 7), 5),
        (lambda y: (W19 @ F.unfold(y, 3, padding=1)).view(1, 6, 7), 5),
    ],
)
def test_a_view_that_puts_the_map_back_gets_its_field_back(fn, rf):
    m = model(lambda s, x: fn(s.c3(x)))
    o = analyze(m, (1, 6, 7)).output
    assert o.status == EXACT and o.size == (6, 7) and o.rf == (rf, rf)
    check(m, (1, 6, 7))


@pytest.mark.parametrize(
    "fn, rf, note",
    [
        # the columns viewed with the map's sizes swapped (7, 6): not the map of windows, so
        # still the flattened windows: window o sees pixels o-2..o+2, together -2..7 along H
        # (rf 10) and -2..8 along W (rf 11)
        (
            lambda y: (W9 @ F.unfold(y, 3, padding=1)).view(1, 9, 7, 6),
            (10, 11),
            "unfold: the windows are flattened into one dim",
        ),
        # a mean over W only, viewed to 3 dims: H has its 6 units, but W is gone, so the map
        # is not back: still shown as a whole, 8 x 9
        (lambda y: y.mean(3).view(1, 6, 1), (8, 9), "mean: part of the map is reduced away"),
    ],
)
def test_a_view_that_does_not_restore_the_map_keeps_it_whole(fn, rf, note):
    o = out(lambda s, x: fn(s.c3(x)))
    assert o.status == GLOBAL and o.rf == rf and o.note == note


@pytest.mark.parametrize(
    "fn, rf, status, note",
    [
        # F.unfold's columns (windows of 3, padding 1, over the conv3: pixels o-2..o+2)
        # transposed to (B, L, 9): tokens, one per window, each its 5x5 field (before: the
        # windows as a whole, rf 10 x 11; measured in test_unfold.py's patchify test)
        (
            lambda y: (W9 @ F.unfold(y, 3, padding=1)).transpose(1, 2),
            (5, 5),
            EXACT,
            TOKENS_NOTE,
        ),
        # a map pooled to one value per channel, transposed: every pixel of the conv's
        # units, 8 x 9 (a pooled vector is exact: each entry sees the whole map)
        (lambda y: y.mean((2, 3)).transpose(0, 1), (8, 9), EXACT, ""),
    ],
)
def test_a_transposed_vector_keeps_its_field(fn, rf, status, note):
    o = out(lambda s, x: fn(s.c3(x)))
    assert o.status == status and o.rf == rf and o.note == note


@pytest.mark.parametrize(
    "fn, status, note",
    [
        (lambda y: y.flatten(2).roll(1, -1), GLOBAL, FLAT_NOTE),
        (lambda y: F.pad(y.flatten(2), (1, 2)), GLOBAL, FLAT_NOTE),
        (lambda y: torch.flip(y.flatten(2), ()), GLOBAL, FLAT_NOTE),  # no dim flipped
        (lambda y: y.flatten(2).flip(-1), UNKNOWN, "flip: flip of a flattened map"),
    ],
)
def test_ops_on_a_flattened_map(fn, status, note):
    # rolled or padded, the flattened map is still every position of the map: a whole,
    # rf 8 x 9; flipped, which unit sees which pixel is lost
    o = out(lambda s, x: fn(s.c3(x)))
    assert o.status == status and o.note == note
    if status == GLOBAL:
        assert o.rf == (8, 9)


@pytest.mark.parametrize(
    "fn, size",
    [
        # (1, 4) viewed as (4, 1, 1): an unbatched 1x1 map (the channels lead)
        (lambda s, x: s.c4(x).mean((2, 3)).view(4, 1, 1), (1, 1)),
        (lambda s, x: s.c4(x).mean((2, 3)).view(1, 4, 1, 1), (1, 1)),
        # (1, 1) viewed as (1, 1): still the vector (batch, channel), no map dims added
        (lambda s, x: s.c3(x).mean((2, 3)).view(1, 1), ()),
        # a 1x1 map viewed as a vector and back, added to the same mean kept as 1x1
        (
            lambda s, x: (
                s.c4(x).mean((2, 3), keepdim=True).view(1, 4).view(1, 4, 1, 1)
                + s.c4(x).mean((2, 3), keepdim=True)
            ),
            (1, 1),
        ),
    ],
    ids=["(C, 1, 1)", "(N, C, 1, 1)", "(N, C)", "there and back, merged"],
)
def test_a_pooled_vector_viewed_as_a_1x1_map_is_a_map_again(fn, size):
    # the global mean's one unit reads conv units 0..5 x 0..6: pixels -1..6 x -1..7 (rf (8, 9)
    # centred on (2.5, 3)), one window of 6 x 7 units (jump (6, 7))
    m = model(fn)
    o = analyze(m, (1, 6, 7)).output
    assert (o.size, o.rf, o.start, o.status) == (size, (8, 9), (Fr(5, 2), 3), EXACT)
    check(m, (1, 6, 7))


def test_a_pooled_vector_viewed_back_keeps_its_note():
    # a crop of the first column first: conv units 1..6 along W read pixels 0..7 (rf 8,
    # centred on 3.5); the crop's note stays with the 1x1 map
    m = model(lambda s, x: s.c3(x)[..., 1:].mean((2, 3)).view(1, 1, 1, 1))
    o = analyze(m, (1, 6, 7)).output
    assert (o.size, o.rf, o.start) == ((1, 1), (8, 8), (Fr(5, 2), Fr(7, 2)))
    assert o.note == "getitem: a crop, units next to it reach only what is left"
    check(m, (1, 6, 7))


@pytest.mark.parametrize(
    "fn",
    [
        # (1, 1, 42) -> (42,) -> (2, 3, 7), its first two dims swapped, viewed as the map:
        # the entries are no longer in the map's order
        lambda s, x: s.c3(x).flatten(2).view(42).view(2, 3, 7).permute(1, 0, 2).reshape(1, 1, 6, 7),
        # (1, 4, 42) with positions before channels, as one vector, viewed as (1, 4, 6, 7):
        # channels and positions interleaved
        lambda s, x: s.c4(x).flatten(2).transpose(1, 2).reshape(-1).t().view(1, 4, 6, 7),
    ],
    ids=["1-D, then dims swapped", "positions before channels"],
)
def test_a_view_of_scrambled_entries_does_not_restore_the_map(fn):
    # a view after the entries moved cannot give each unit back its 3x3 field: the map stays
    # shown as a whole (the gradient check fails on any unit claimed exact)
    m = model(fn)
    o = analyze(m, (1, 6, 7)).output
    assert (o.status, o.size, o.note) == (GLOBAL, (), FLAT_NOTE)
    check(m, (1, 6, 7))


@pytest.mark.parametrize(
    "fn",
    [
        lambda s, x: s.c3(x).flatten(2).view(1, 1, 42).view(1, 1, 6, 7),
        lambda s, x: s.c3(x).flatten(2).view(1, 42).view(1, 1, 6, 7),
        lambda s, x: s.c3(x).view(6, 7),
    ],
    ids=["same shape in between", "(1, 42) in between", "the map alone"],
)
def test_views_that_keep_the_entries_in_order_keep_each_unit_field(fn):
    # a view never moves entries: viewed back as 6 x 7 (or kept), unit u sees pixels u-1..u+1
    m = model(fn)
    o = analyze(m, (1, 6, 7)).output
    assert (o.status, o.size, o.rf, o.start) == (EXACT, (6, 7), (3, 3), (0, 0))
    check(m, (1, 6, 7))


@pytest.mark.parametrize(
    "crop, rf, start, note",
    [
        (False, (8, 9), (Fr(5, 2), 3), ""),
        (
            True,
            (8, 8),
            (Fr(5, 2), Fr(7, 2)),
            "getitem: a crop, units next to it reach only what is left",
        ),
    ],
    ids=["whole map", "cropped"],
)
def test_a_1x1_map_viewed_as_a_vector_keeps_its_field(crop, rf, start, note):
    # the global mean (kept as 1 x 1) viewed as (N, C): nothing mixes, the one unit's field
    # (rf (8, 9) centred on (2.5, 3); cropped to W units 1..6: pixels 0..7) lives on, exact,
    # and merges with another vector of the same field
    def fn(s, x):
        y = s.c4(x)[..., 1:] if crop else s.c4(x)
        return y.mean((2, 3), keepdim=True).view(1, 4) + y.mean((2, 3))

    m = model(fn)
    rows = analyze(m, (1, 6, 7)).rows
    view, add = next(r for r in rows if r.op == "view"), rows[-1]
    assert (view.status, view.size, view.rf, view.start) == (EXACT, (), rf, start)
    assert view.note == note and add.status == EXACT
    check(m, (1, 6, 7))


@pytest.mark.parametrize(
    "fn",
    [
        lambda s, x: s.c3(x).reshape(-1).view(1, 1, 6, 7),  # every dim into one
        lambda s, x: s.c4(x).reshape(1, -1).view(1, 4, 6, 7),  # channels and map into one
    ],
    ids=["reshape(-1)", "reshape(1, -1)"],
)
def test_a_flatten_by_reshape_is_undone_by_a_view(fn):
    # the map's dims merged with the dims before them, then viewed back: each unit is back
    # where it was, with its 3x3 field
    m = model(fn)
    o = analyze(m, (1, 6, 7)).output
    assert (o.status, o.size, o.rf, o.start) == (EXACT, (6, 7), (3, 3), (0, 0))
    check(m, (1, 6, 7))


def test_a_view_that_splits_the_map_another_way_says_which_op_flattened_it():
    # 6 x 7 viewed as 2 x 21: the map is gone; the row names the op
    o = out(lambda s, x: s.c3(x).view(1, 2, 21))
    assert (o.status, o.size, o.rf) == (GLOBAL, (), (8, 9))
    assert o.note == "view: " + FLAT_NOTE


def _space_to_depth(y, r):  # (1, C, H, W) -> (1, C·r·r, H/r, W/r), by hand
    b, c, h, w = y.shape
    y = y.view(b, c, h // r, r, w // r, r).permute(0, 1, 3, 5, 2, 4)
    return y.reshape(b, c * r * r, h // r, w // r)


def _depth_to_space(y, r):  # the inverse, by hand (what F.pixel_shuffle does)
    b, c, h, w = y.shape
    y = y.view(b, c // (r * r), r, r, h, w).permute(0, 1, 4, 2, 5, 3)
    return y.reshape(b, c // (r * r), h * r, w * r)


def test_depth_to_space_by_hand_reads_the_unit_under_each_pixel():
    # the conv3's 4 channels (6x7) spread over a 12x14 map: unit o reads conv unit o // 2,
    # pixels o//2 - 1 .. o//2 + 1 (before: global, size ()). Units differ along the map (two
    # per conv unit, as F.pixel_shuffle): approx, rf 3. Measured by gradients, every unit
    m = model(lambda s, x: _depth_to_space(s.c4(x), 2))
    a = analyze(m, (1, 6, 7))
    o = a.output
    assert (o.status, o.size, o.rf) == (APPROX, (12, 14), (3, 3)) and not a.covers_input
    units = check(m, (1, 6, 7))[o.name][1]
    assert units[(5, 9)] == ((1, 3), (3, 5)) and units[(0, 13)] == ((0, 1), (5, 6))


def test_space_to_depth_conv_depth_to_space_by_hand():
    # the conv3's 8x8 map as 4x4 blocks of 2x2 (unit q: conv units 2q, 2q+1, pixels
    # 2q-1..2q+2), a 3x3 conv over them (pixels 2q-3..2q+4, rf 8), spread back to 8x8: unit
    # o reads o // 2's field; none reaches all 8 pixels. Measured by gradients on every row
    def fn(s, x):
        d = _space_to_depth(s.c3(x), 2)
        y = F.conv2d(d, torch.full((4, 4, 3, 3), 0.1, dtype=D), padding=1)
        return _depth_to_space(y, 2)

    m = model(fn)
    a = analyze(m, (1, 8, 8))
    s2d = next(r for r in a.rows if r.size == (4, 4))
    assert (s2d.status, s2d.rf, s2d.jump) == (EXACT, (4, 4), (2, 2))
    o = a.output
    assert (o.status, o.size, o.rf) == (APPROX, (8, 8), (8, 8)) and not a.covers_input
    units = check(m, (1, 8, 8))[o.name][1]
    assert units[(0, 0)] == ((0, 4), (0, 4)) and units[(7, 2)] == ((3, 7), (0, 6))


def test_a_space_to_depth_along_one_axis_is_an_exact_window():
    # columns in pairs folded into channels: unit (r, c) reads conv units (r, 2c..2c+1),
    # pixels r-1..r+1 and 2c-1..2c+2: exact, rf 3 x 4, jump 1 x 2
    m = model(lambda s, x: s.c3(x).view(1, 1, 6, 3, 2).permute(0, 1, 4, 2, 3).reshape(1, 2, 6, 3))
    o = analyze(m, (1, 6, 6)).output
    assert (o.status, o.size, o.rf, o.jump) == (EXACT, (6, 3), (3, 4), (1, 2))
    units = check(m, (1, 6, 6))[o.name][1]
    assert units[(2, 1)] == ((1, 3), (1, 4))
