"""Gaps that mutation testing found in the shape rules (reshape, permute and friends, getitem,
split, flip, roll) and the resampling rules (interpolate, pixel_unshuffle, pad).

Expected fields are worked out by hand in the comments and measured by gradients (`check`).
The conv3 in front (padding 1) gives conv unit u the pixels u-1..u+1."""

from __future__ import annotations

from fractions import Fraction as Fr

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from measure import check, positive  # tests/rfcalc is on sys.path, as for zoo
from test_gaps_rules import W9, W13, D, Fn, model, out

from rfcalc import EXACT, GLOBAL, UNKNOWN, analyze
from rfcalc.analysis import TOKENS_NOTE
from rfcalc.geometry import APPROX, Window

FLAT_NOTE = "the spatial map is flattened, per-position fields end here"
W19 = torch.full((1, 9), 1 / 9, dtype=D)  # sums a 3x3 window's column into one entry


class Conv(nn.Module):
    """A map with one (conv1d) or three (conv3d) spatial axes, k3 padding 1, then `fn`."""

    def __init__(self, fn, nd: int):
        super().__init__()
        self.fn, self.c = fn, (nn.Conv1d if nd == 1 else nn.Conv3d)(1, 1, 3, padding=1)

    def forward(self, x):
        return self.fn(self.c(x))


# ---------------------------------------------------------------- flatten and views back


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
        # F.unfold's columns transposed: the windows as a whole, rf 10 x 11 (as above)
        (
            lambda y: (W9 @ F.unfold(y, 3, padding=1)).transpose(1, 2),
            (10, 11),
            GLOBAL,
            "unfold: the windows are flattened into one dim",
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


# ---------------------------------------------------------------- permute, transpose, movedim


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


# ---------------------------------------------------------------- getitem


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


# ---------------------------------------------------------------- split, repeat


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


# ---------------------------------------------------------------- flip, roll


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


# ---------------------------------------------------------------- interpolate


def test_antialiased_resampling_is_unknown():
    o = out(lambda s, x: F.interpolate(s.c3(x), scale_factor=0.5, mode="bilinear", antialias=True))
    assert o.status == UNKNOWN and o.note == "interpolate: antialiased resampling widens the kernel"


def test_area_resampling_is_an_adaptive_average():
    # 6 -> 3 along H: unit o averages conv units 2o, 2o+1, pixels 2o-1..2o+2 (rf 4, jump 2,
    # centre 2o + 1/2); W keeps its 7 units
    m = model(lambda s, x: F.interpolate(s.c3(x), size=(3, 7), mode="area"))
    o = analyze(m, (1, 6, 7)).output
    assert (o.size, o.rf, o.jump, o.start, o.status) == (
        (3, 7),
        (4, 3),
        (2, 1),
        (Fr(1, 2), 0),
        EXACT,
    )
    check(m, (1, 6, 7))


def test_a_scale_factor_per_axis():
    # x2 along H, x3 along W: the jumps are 1/2 and 1/3
    m = model(lambda s, x: F.interpolate(s.c3(x), scale_factor=(2, 3)))
    o = analyze(m, (1, 6, 7)).output
    assert o.size == (12, 21) and o.jump == (Fr(1, 2), Fr(1, 3))
    check(m, (1, 6, 7))


def test_nearest_exact_to_the_same_size_still_resamples():
    # scale_factor 1.15 on 6 gives 6 units again, but nearest-exact reads
    # floor((o + 1/2) / 1.15): unit 5 reads pixel 4, not 5 (jump 1/1.15 = 20/23)
    m = model(lambda s, x: F.interpolate(x, scale_factor=1.15, mode="nearest-exact"))
    a = analyze(m, (1, 6, 6))
    assert a.output.size == (6, 6) and a.output.jump == (Fr(20, 23), Fr(20, 23))
    units = check(m, (1, 6, 6))[a.rows[-1].name][1]
    assert units[(5, 5)] == ((4, 4), (4, 4))


@pytest.mark.parametrize("mode, start", [("nearest", 0), ("nearest-exact", 1)])
def test_nearest_down_by_two_reads_even_or_odd_units(mode, start):
    # nearest: unit o copies conv unit 2o (centred on pixel 2o); nearest-exact copies
    # floor((o + 1/2)·2) = 2o + 1
    m = model(lambda s, x: F.interpolate(s.c3(x), scale_factor=0.5, mode=mode))
    o = analyze(m, (1, 6, 8)).output
    assert (o.size, o.jump, o.rf, o.start) == ((3, 4), (2, 2), (3, 3), (start, start))
    check(m, (1, 6, 8))


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_align_corners_to_one_or_two_units(mode):
    # align_corners, one output unit along H: it samples position 0, conv unit 0 (pixels
    # 0..1 in the image, -1..1 counted with padding: rf 3, centred on 0; one unit, jump 0)
    m = model(lambda s, x: F.interpolate(s.c3(x), size=(1, 7), mode=mode, align_corners=True))
    o = analyze(m, (1, 6, 7)).output
    assert (o.size, o.jump, o.rf, o.start) == ((1, 7), (0, 1), (3, 3), (0, 0))
    check(m, (1, 6, 7))
    # two units: the first and the last conv unit, 0 and 5: jump 5
    m = model(lambda s, x: F.interpolate(s.c3(x), size=(2, 7), mode=mode, align_corners=True))
    o = analyze(m, (1, 6, 7)).output
    assert (o.size, o.jump, o.rf, o.start) == ((2, 7), (5, 1), (3, 3), (0, 0))
    check(m, (1, 6, 7))


@pytest.mark.parametrize("mode, rf", [("bilinear", 4), ("bicubic", 6)])
def test_align_corners_up_to_eleven_units(mode, rf):
    # 6 -> 11 and 7 -> 13 with align_corners: unit o samples o·5/10 = o/2 (and o·6/12): a
    # jump of 1/2, unit 0 at conv unit 0 (centre 0). Odd units fall between two conv units:
    # bilinear reads both (3 + 1 = 4), bicubic 4 around them (3 + 3 = 6)
    m = model(lambda s, x: F.interpolate(s.c3(x), size=(11, 13), mode=mode, align_corners=True))
    o = analyze(m, (1, 6, 7)).output
    assert o.jump == (Fr(1, 2), Fr(1, 2)) and o.start == (0, 0) and o.rf == (rf, rf)
    check(m, (1, 6, 7))


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_down_by_three_samples_whole_positions(mode):
    # align_corners=False, x1/3: unit o samples (o + 1/2)·3 - 1/2 = 3o + 1, a whole position:
    # one conv unit, 3o + 1 (pixels 3o..3o+2): rf 3, jump 3, centred on 1
    m = model(lambda s, x: F.interpolate(s.c3(x), scale_factor=1 / 3, mode=mode))
    o = analyze(m, (1, 6, 9)).output
    assert (o.size, o.jump, o.rf, o.start, o.status) == ((2, 3), (3, 3), (3, 3), (1, 1), EXACT)
    check(m, (1, 6, 9))


@pytest.mark.parametrize(
    "nd, shape, size",
    [(1, (1, 9), (18,)), (3, (1, 3, 4, 5), (6, 8, 10))],
    ids=["linear", "trilinear"],
)
def test_linear_and_trilinear_up_by_two(nd, shape, size):
    # x2: unit o samples o/2 - 1/4: unit 0 reads conv units -1 and 0 (pixels -2..1, centre
    # -1/2 counted with padding), odd and even units two conv units: rf 3 + 1 = 4
    mode = "linear" if nd == 1 else "trilinear"
    m = positive(Conv(lambda y: F.interpolate(y, scale_factor=2, mode=mode), nd))
    o = analyze(m, shape).output
    assert o.size == size and o.jump == (Fr(1, 2),) * nd
    assert o.rf == (4,) * nd and o.start == (Fr(-1, 2),) * nd
    check(m, shape)


@pytest.mark.parametrize("mode, reads", [("bilinear", (2, 3)), ("bicubic", (1, 4))])
def test_float_maps_follow_torchs_float_arithmetic(mode, reads):
    # 7 -> 23 along H: unit 11 samples 11.5·7/23 - 1/2 = 3, a whole position, but in float32
    # 7/23 rounds down and the position comes out just below 3: torch reads pixel 2 as well
    # (a weight of about 2e-7), and bicubic reads 4 pixels from floor - 1 = 1
    m = positive(Fn(lambda s, x: F.interpolate(x, size=(23, 8), mode=mode)), torch.float32)
    a = analyze(m, (1, 7, 8))
    units = check(m, (1, 7, 8), dtype=torch.float32)[a.rows[-1].name][1]
    assert units[(11, 0)][0] == reads
    # the classic field (exact rationals) reads only pixel 3 there: the row says it differs
    assert a.output.note == (
        "some units see other pixels than the classic field: rf is the widest unit's"
    )


# ---------------------------------------------------------------- pixel_unshuffle, pad


def test_pixel_unshuffle_row_shows_its_window():
    # r = 2: each unit holds a 2x2 block of conv units, 2o and 2o+1: rf 4, jump 2
    m = model(lambda s, x: F.pixel_unshuffle(s.c3(x), 2))
    a = analyze(m, (1, 6, 8))
    row = a.rows[-1]
    assert row.window == Window((2, 2), (2, 2), (0, 0), (1, 1))
    assert row.rf == (4, 4) and row.jump == (2, 2)
    check(m, (1, 6, 8))


@pytest.mark.parametrize(
    "mode, sees",
    [
        ("reflect", "mirrored pixels"),
        ("replicate", "the border pixel"),
        ("circular", "the opposite side of the map"),
    ],
)
def test_padding_that_copies_pixels_says_what_the_border_sees(mode, sees):
    m = model(lambda s, x: F.pad(s.c3(x), (1, 2, 0, 1), mode=mode))
    a = analyze(m, (1, 6, 7))
    assert a.output.size == (7, 10)
    assert (
        a.output.note == f"pad: {mode} padding, the border units see {sees}, not the classic field"
    )
    # the row shows the padding before each axis: 0 along H, 1 along W
    assert a.rows[-1].window == Window(padding=(0, 1))
    check(m, (1, 6, 7))


def test_padding_nothing_is_no_copy():
    # (C, H, W) padded by (0, 0) along W, H not named: nothing is copied, the conv's field
    m = model(lambda s, x: F.pad(s.c3(x)[0], (0, 0), mode="replicate"))
    a = analyze(m, (1, 6, 7))
    assert a.output.status == EXACT and a.output.note == "" and a.output.rf == (3, 3)
    assert a.rows[-1].window == Window(padding=(0, 0))


def test_zero_padding_has_no_note_of_its_own():
    # zeros (1 before, 2 after W): the border units see nothing (a part, empty, of their
    # clipped classic field: the published convention's clipped unit), every other unit its
    # field: exact, no note; measured unit by unit
    fn = lambda s, x: F.pad(s.c3(x), (1, 2))  # noqa: E731
    o = out(fn)
    assert o.size == (6, 10) and o.start == (0, -1)
    assert o.status == EXACT and o.note == ""
    check(model(fn), (1, 6, 7))


@pytest.mark.parametrize(
    "fn",
    [
        # F.pad hands `pad` on by position and `mode` by keyword; the builtin behind it takes
        # either, or leaves `mode` to its default
        lambda y: torch._C._nn.pad(y, pad=(1, 2, 0, 1), mode="reflect"),
        lambda y: torch._C._nn.pad(y, (1, 2, 0, 1), "reflect"),
    ],
)
def test_the_pad_builtin_by_keyword_and_by_position(fn):
    o = out(lambda s, x: fn(s.c3(x)))
    assert o.size == (7, 10)
    assert (
        o.note
        == "pad: reflect padding, the border units see mirrored pixels, not the classic field"
    )


def test_the_pad_builtin_pads_with_zeros_by_default():
    o = out(lambda s, x: torch._C._nn.pad(s.c3(x), (1, 2, 0, 1)))
    assert o.size == (7, 10)
    # zeros: the padded units see nothing of their clipped field, exact (no copy, no note)
    assert o.status == EXACT and o.note == ""


# ---------------------------------------------------------------- a pooled vector viewed back


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


# ---------------------------------------------------------------- views of flattened maps


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
