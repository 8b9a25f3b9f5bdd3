"""Shape rules (rfcalc/rules/shape.py): permute, transpose and movedim, getitem (crops),
split and repeat, flip and roll.
Expected fields are worked out by hand and measured by gradients (see rulenets.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from measure import check, positive  # rules/conftest.py puts tests/rfcalc on sys.path
from rulenets import SAME, W13, Conv, model, out

from rfcalc import APPROX, EXACT, UNKNOWN, analyze


def test_repeat_tiles_channels_not_the_map():
    o = out(lambda s, x: s.c3(x).repeat(1, 2, 1, 1).sum(1, keepdim=True))
    assert o.status == EXACT and o.rf == (3, 3)
    o = out(SAME["repeat by size"][0][0])
    assert o.status == UNKNOWN and "repeat tiles the spatial map" in o.note


@pytest.mark.parametrize(
    "fn, rf",
    [
        (lambda s, x: s.c4(x).split(2, dim=1)[0], (3, 3)),
        (lambda s, x: torch.split(s.c4(x), 2, 1)[1], (3, 3)),
        (lambda s, x: s.c4(x).chunk(2, 1)[1], (3, 3)),
        (lambda s, x: s.c4(x).unbind(1)[2], (3, 3)),
        (lambda s, x: s.c4(x).tensor_split(2, dim=1)[0], (3, 3)),
        (lambda s, x: s.c3(x).split(3, dim=-1)[0], None),
        (lambda s, x: s.c3(x).chunk(2, -2)[0], None),
        (lambda s, x: s.c3(x).unbind(-2)[0], None),
    ],
)
def test_splitting_channels_keeps_the_field_and_the_map_is_unknown(fn, rf):
    o = out(fn, (1, 6, 8))
    if rf is None:
        assert o.status == UNKNOWN and "split along a spatial axis" in o.note
    else:
        assert o.status == EXACT and o.rf == rf


def test_unbind_after_the_spatial_dims_is_unknown():
    # a trailing dim after the map (channels last, of size 2) unbound: the map's dims move
    o = out(lambda s, x: torch.stack([s.c3(x), s.c3(x)], 1).permute(0, 1, 3, 4, 2).unbind(-1)[0])
    assert o.status == UNKNOWN and "unbind after the spatial dims" in o.note


@pytest.mark.filterwarnings("ignore:The use of `x.T`")
@pytest.mark.parametrize(
    "fn",
    [
        lambda y: y.transpose(1, 2),  # (1, 6, 1, 7): H moves to dim 1, W stays last
        lambda y: y.mT,
        lambda y: y.T,  # every dim reversed: (7, 6, 1, 1)
        lambda y: y[0].T,
        lambda y: y[0, 0].t(),
        lambda y: y.permute((0, 1, 3, 2)),
        lambda y: torch.permute(y, dims=(0, 1, 3, 2)),
        lambda y: torch.movedim(y, 3, 1),  # (1, 7, 1, 6)
        lambda y: torch.movedim(y, source=3, destination=1),
        lambda y: y.movedim((2, 3), (3, 2)),
        lambda y: y.movedim([3, 1], [1, 0]),  # (7, 1, 1, 6)
        lambda y: y.moveaxis(-1, 0),
    ],
)
def test_the_axes_move_with_their_dims(fn):
    # H has 6 units and W 7 wherever the dims go (the row lists H first); read from the
    # wrong dims, the sizes or the units measured would differ
    m = model(lambda s, x: fn(s.c3(x)))
    o = analyze(m, (1, 6, 7)).output
    assert o.status == EXACT and o.size == (6, 7) and o.rf == (3, 3)
    check(m, (1, 6, 7))


def test_a_conv_after_moving_h_last_widens_h():
    # H and W swapped, then a 1x3 conv along the tensor's last dim, now H: 3 + 2 = 5 along H
    m = model(lambda s, x: F.conv2d(torch.movedim(s.c3(x), 2, 3), W13, padding=(0, 1)))
    o = analyze(m, (1, 6, 7)).output
    assert o.status == EXACT and o.rf == (5, 3) and o.size == (6, 7)
    check(m, (1, 6, 7))


@pytest.mark.parametrize("fn", [lambda y: y[0, 0].t(), lambda y: y[0, 0].permute(0)])
def test_a_one_dim_map_transposed_is_itself(fn):
    # a 1-D tensor: t() and permute(0) change nothing
    m = positive(Conv(fn, 1))
    o = analyze(m, (1, 9)).output
    assert o.status == EXACT and o.size == (9,) and o.rf == (3,)


@pytest.mark.parametrize(
    "fn, note",
    [
        (lambda y: y.transpose(2, 3), ""),
        # a softmax along W: global along W, and the note says why
        (
            lambda y: F.softmax(y, -1).transpose(2, 3),
            "softmax: computed along a spatial dim (exact along H, global along W)",
        ),
    ],
)
def test_a_transpose_keeps_the_note_it_had(fn, note):
    assert out(lambda s, x: fn(s.c3(x))).note == note


@pytest.mark.parametrize(
    "fn, why",
    [
        (lambda y: y[:, torch.tensor([0])], "advanced indexing"),
        (lambda y: y[..., ...], "several ellipses"),
        (lambda y: y[:, :, 5:2], "empty slice of the map"),
        (lambda y: y[:, :, 0], "an integer index removes a spatial dim"),
        # channels last (1, 6, 7, 4), one channel taken after the map's dims
        (lambda y: y.permute(0, 2, 3, 1)[..., 0], "an integer index after the spatial dims"),
    ],
)
def test_indexing_with_no_field_to_give_is_unknown(fn, why):
    o = out(lambda s, x: fn(s.c4(x)))
    assert o.status == UNKNOWN and o.note == f"getitem: {why}"


@pytest.mark.parametrize(
    "fn, size, start",
    [
        # one row of the map: conv unit 2 along H, which sees pixels 1..3 (centre 2)
        (lambda y: y[:, :, 2:3], (1, 7), (2, 0)),
        # rows 1..3 and columns 2..5: unit 0 is conv unit 1 along H and 2 along W
        (lambda y: y[..., 1:4, 2:6], (3, 4), (1, 2)),
    ],
)
def test_a_crop_keeps_the_field_of_the_units_it_keeps(fn, size, start):
    m = model(lambda s, x: fn(s.c3(x)))
    o = analyze(m, (1, 6, 7)).output
    assert (o.size, o.rf, o.start, o.jump) == (size, (3, 3), start, (1, 1))
    assert o.note == "getitem: a crop, units next to it reach only what is left"
    check(m, (1, 6, 7))


def test_selecting_channels_is_no_crop():
    o = out(lambda s, x: s.c4(x)[:, 1:3])
    assert o.status == EXACT and o.rf == (3, 3) and o.size == (6, 7) and o.note == ""


def test_split_and_unbind_by_default_take_the_first_dim():
    # (C, H, W) unbound along dim 0, the channels: each piece is the conv's map
    o = out(lambda s, x: s.c3(x)[0].unbind()[0])
    assert o.status == EXACT and o.rf == (3, 3) and o.size == (6, 7)
    # (H, W) unbound along dim 0: H is cut apart
    o = out(lambda s, x: s.c3(x)[0, 0].unbind()[0])
    assert o.status == UNKNOWN and o.note == "unbind: split along a spatial axis"


@pytest.mark.parametrize(
    "fn, note",
    [
        (lambda y: y.split(3, -1)[0], "split: split along a spatial axis"),
        (
            lambda y: torch.stack([y, y], 1).permute(0, 1, 3, 4, 2).unbind(-1)[0],
            "unbind: unbind after the spatial dims",
        ),
        (lambda y: y.repeat(1, 1, 2, 1), "repeat: repeat tiles the spatial map"),
    ],
)
def test_cutting_or_tiling_the_map_says_why_it_is_unknown(fn, note):
    o = out(lambda s, x: fn(s.c3(x)))
    assert o.status == UNKNOWN and o.note == note


@pytest.mark.parametrize(
    "fn, axis_status",
    [
        # (C, H, W): fliplr reverses dim 1, which is H here; flipud dim 0, the channels
        (lambda y: torch.fliplr(y[0]), (APPROX, EXACT)),
        (lambda y: torch.flipud(y[0]), (EXACT, EXACT)),
        # (H, W): fliplr reverses W, flipud H
        (lambda y: torch.fliplr(y[0, 0]), (EXACT, APPROX)),
        (lambda y: torch.flipud(y[0, 0]), (APPROX, EXACT)),
        (lambda y: torch.flip(y, (-1,)), (EXACT, APPROX)),
    ],
)
def test_a_flip_reverses_the_units_of_the_dims_it_flips(fn, axis_status):
    # a flipped axis: unit o sees what unit n-1-o saw (unit 0 of 7 sees pixels 5..6), no
    # classic field; measured unit by unit
    m = model(lambda s, x: fn(s.c3(x)))
    o = analyze(m, (1, 6, 7)).output
    assert o.axis_status == axis_status
    if axis_status == (EXACT, EXACT):
        assert o.note == ""
    check(m, (1, 6, 7))


@pytest.mark.parametrize("op", [lambda y: y.flip(-1), lambda y: y.roll(1, -1)])
def test_a_flip_or_roll_keeps_the_note_it_had(op):
    o = out(lambda s, x: op(s.c3(x)[:, :, 1:5]))
    assert o.note == "getitem: a crop, units next to it reach only what is left"


def test_a_roll_without_dims_is_unknown():
    # torch.roll(x, 1) rolls the flattened tensor: rows wrap into each other
    o = out(lambda s, x: torch.roll(s.c3(x), 1))
    assert o.status == UNKNOWN and o.note == "roll: roll of the flattened tensor"


def test_a_rolled_map_merges_with_the_map():
    # rolled by 1 along W, unit o reads conv unit o-1 (unit 0 reads unit 6, pixels 5..6);
    # added to the map, unit 0 sees pixels 0..1 and 5..6: a span of 7
    m = model(lambda s, x: s.c3(x).roll(1, -1) + s.c3(x))
    o = analyze(m, (1, 6, 7)).output
    assert o.axis_status == (EXACT, APPROX) and o.rf == (3, 7)
    check(m, (1, 6, 7))
