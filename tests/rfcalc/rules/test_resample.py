"""Resampling rules (rfcalc/rules/resample.py): interpolate in every mode, pixel_unshuffle,
padding of every mode.
Expected fields are worked out by hand and measured by gradients (see rulenets.py)."""

from __future__ import annotations

from fractions import Fraction as Fr

import pytest
import torch
import torch.nn.functional as F
from measure import check, positive  # rules/conftest.py puts tests/rfcalc on sys.path
from rulenets import Conv, Fn, model, out

from rfcalc import EXACT, UNKNOWN, analyze
from rfcalc.geometry import Window


@pytest.mark.parametrize("scale", [2, 1.5, 3, 0.5])
@pytest.mark.parametrize("align", [False, True])
def test_bicubic_units_match_gradients(scale, align):
    # each unit reads 4 taps around its source position, one where the position is whole;
    # border taps are clamped into the map
    m = model(
        lambda s, x: F.interpolate(s.c3(x), scale_factor=scale, mode="bicubic", align_corners=align)
    )
    assert analyze(m, (1, 6, 8)).output.status != UNKNOWN
    check(m, (1, 6, 8))


@pytest.mark.parametrize("scale, start", [(2, Fr(-1, 2)), (0.5, Fr(1, 2))])
def test_bicubic_classic_field_starts_at_its_source_position(scale, start):
    # align_corners=False: unit o samples src = (o + 1/2)/scale - 1/2 and reads floor(src) - 1
    # .. floor(src) + 2. x2: src(0) = -1/4, taps -2..1, conv units see one more each side:
    # -3..2, centre -1/2. x0.5: src(0) = 1/2, taps -1..2, field -2..3, centre 1/2.
    o = out(lambda s, x: F.interpolate(s.c3(x), scale_factor=scale, mode="bicubic"), (1, 6, 8))
    assert o.start == (start, start) and o.rf == (6, 6)


def test_nearest_to_twice_the_size_follows_torchs_shortcut():
    # scale_factor 2.15 on 6 units gives 12 = 2·6: torch then reads o >> 1 (nearest_idx),
    # where the exact scale 1/2.15 would send unit 2 to 0
    m = model(lambda s, x: F.interpolate(s.c3(x), scale_factor=2.15))
    a = analyze(m, (1, 6, 6))
    assert a.output.size == (12, 12)
    units = check(m, (1, 6, 6))[a.rows[-1].name][1]
    assert units[(2, 2)] == ((0, 2), (0, 2))  # unit 2 copies conv unit 1, which sees 0..2


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
