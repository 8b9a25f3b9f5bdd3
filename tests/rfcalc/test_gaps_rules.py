"""Gaps that mutation testing found in the rule catalogue (rfcalc/rules): arguments given by
keyword or left to torch's default, rules no test reached (stack, cumsum, glu, instance norm,
batched products, repeat, split, einsum), the notes that say why a row is global or unknown,
and what registering a rule promises.

Expected fields are worked out by hand in the comments and measured by gradients (`check`):
a test never compares the code with its own output, except where a keyword must mean what
its position means (both forms are measured as well)."""

from __future__ import annotations

import functools
from fractions import Fraction as Fr

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from measure import check, positive  # tests/rfcalc is on sys.path, as for zoo

from rfcalc import APPROX, EXACT, GLOBAL, UNKNOWN, analyze
from rfcalc.geometry import Field, Window, spread
from rfcalc.rules import RULES, Outcome, dispatch, key_of, register_rule, rule

D = torch.float64
W3 = torch.full((1, 1, 3, 3), 1 / 9, dtype=D)  # a 3x3 conv weight (out, in, kh, kw)
W13 = torch.full((1, 1, 1, 3), 1 / 3, dtype=D)  # 1x3: along the tensor's last dim only
RM, RV = torch.zeros(1, dtype=D), torch.ones(1, dtype=D)  # running statistics, one channel


class Fn(nn.Module):
    """`fn(self, x)` after nothing: `self.c3` is a 3x3 conv (padding 1), `self.c4` the same
    with 4 output channels, so a rule sees a map whose units already have a field of 3."""

    def __init__(self, fn, c: int = 1):
        super().__init__()
        self.fn = fn
        self.c3 = nn.Conv2d(c, c, 3, padding=1)
        self.c4 = nn.Conv2d(c, 4 * c, 3, padding=1)

    def forward(self, x):
        return self.fn(self, x)


def model(fn, c: int = 1) -> nn.Module:
    return positive(Fn(fn, c))


def rows(fn, shape=(1, 6, 7), c: int = 1) -> list[tuple]:
    a = analyze(model(fn, c), shape)
    return [
        (r.name, r.op, r.size, r.jump, r.rf, r.start, r.status, r.axis_status, r.window, r.note)
        for r in a.rows
    ]


def out(fn, shape=(1, 6, 7), c: int = 1):
    return analyze(model(fn, c), shape).output


def _norm_by_keyword(op, flag: str, value: bool) -> list:
    """torch.batch_norm / torch.instance_norm with running statistics: every argument by
    position, then the statistics, `flag` and the rest by keyword."""
    return [
        lambda s, x: op(s.c3(x), None, None, RM, RV, value, 0.1, 1e-5, False),
        lambda s, x: op(
            s.c3(x),
            None,
            None,
            running_mean=RM,
            running_var=RV,
            **{flag: value},
            momentum=0.1,
            eps=1e-5,
            cudnn_enabled=False,
        ),
    ]


def _max_pool_by_keyword(s, x):
    """F.max_pool2d k3 stride 2 padding 1 dilation 2 ceil_mode, every argument by keyword:
    the form both max_pool2d entries below compare their positional calls with."""
    return F.max_pool2d(s.c3(x), kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)


# Each entry: calls that must analyse alike, with shape. The first gives every argument by
# position, the others by keyword (non-default values, so a rule reading the wrong keyword
# falls back to the default and differs) or leave them to torch's default.
SAME = {
    "conv2d by keyword": (
        [
            lambda s, x: F.conv2d(s.c3(x), W3, None, 2, 1, 2),
            lambda s, x: F.conv2d(s.c3(x), weight=W3, stride=2, padding=1, dilation=2),
        ],
        (1, 9, 9),
    ),
    "conv2d defaults": (
        [lambda s, x: F.conv2d(s.c3(x), W3, None, 1, 0, 1, 1), lambda s, x: F.conv2d(s.c3(x), W3)],
        (1, 6, 7),
    ),
    "conv_transpose2d by keyword": (
        [
            lambda s, x: F.conv_transpose2d(s.c3(x), W3, None, 3, 2, 1, 1, 2),
            lambda s, x: F.conv_transpose2d(
                s.c3(x), weight=W3, stride=3, padding=2, output_padding=1, dilation=2
            ),
        ],
        (1, 4, 5),
    ),
    "conv_transpose2d defaults": (
        [
            lambda s, x: F.conv_transpose2d(s.c3(x), W3, None, 1, 0, 0, 1, 1),
            lambda s, x: F.conv_transpose2d(s.c3(x), W3),
        ],
        (1, 4, 5),
    ),
    "Tensor.unfold by keyword": (
        [
            lambda s, x: s.c3(x).unfold(-1, 3, 2).sum(-1),
            lambda s, x: s.c3(x).unfold(dimension=-1, size=3, step=2).sum(-1),
        ],
        (1, 6, 9),
    ),
    # a size that is not the dim's own number mod 4 (3 is -1 in a 4-D tensor)
    "Tensor.unfold by keyword, size 2": (
        [
            lambda s, x: s.c3(x).unfold(-1, 2, 1).sum(-1),
            lambda s, x: s.c3(x).unfold(dimension=-1, size=2, step=1).sum(-1),
        ],
        (1, 6, 9),
    ),
    "F.unfold and F.fold by keyword": (
        [
            lambda s, x: F.fold(F.unfold(s.c3(x), 3, 2, 1, 2), (6, 7), 3, 2, 1, 2),
            lambda s, x: F.fold(
                F.unfold(s.c3(x), kernel_size=3, dilation=2, padding=1, stride=2),
                output_size=(6, 7),
                kernel_size=3,
                dilation=2,
                padding=1,
                stride=2,
            ),
        ],
        (1, 6, 7),
    ),
    "F.unfold defaults": (
        [
            lambda s, x: F.fold(F.unfold(s.c3(x), 3, 1, 0, 1), (6, 7), 3, 1, 0, 1),
            lambda s, x: F.fold(F.unfold(s.c3(x), 3), (6, 7), 3),
        ],
        (1, 6, 7),
    ),
    "max_pool2d by keyword": (
        [
            lambda s, x: F.max_pool2d(s.c3(x), 3, 2, 1, 2, True),
            _max_pool_by_keyword,
        ],
        (1, 8, 9),
    ),
    "max_pool2d defaults": (
        [
            lambda s, x: F.max_pool2d(s.c3(x), 2, 2, 0, 1, False),
            lambda s, x: F.max_pool2d(s.c3(x), 2),
        ],
        (1, 7, 9),
    ),
    "torch.max_pool2d by position": (
        # F.max_pool2d hands its arguments on by keyword; torch.max_pool2d takes positions
        [
            lambda s, x: torch.max_pool2d(s.c3(x), 3, 2, 1, 2, True),
            _max_pool_by_keyword,
        ],
        (1, 8, 9),
    ),
    "torch.max_pool2d defaults": (
        [lambda s, x: torch.max_pool2d(s.c3(x), 2), lambda s, x: F.max_pool2d(s.c3(x), 2)],
        (1, 7, 9),
    ),
    "avg_pool2d by keyword": (
        [
            lambda s, x: F.avg_pool2d(s.c3(x), 3, 2, 1, True),
            lambda s, x: F.avg_pool2d(s.c3(x), kernel_size=3, stride=2, padding=1, ceil_mode=True),
        ],
        (1, 8, 9),
    ),
    "avg_pool2d defaults": (
        [lambda s, x: F.avg_pool2d(s.c3(x), 2, 2, 0, False), lambda s, x: F.avg_pool2d(s.c3(x), 2)],
        (1, 7, 9),
    ),
    "lp_pool2d by keyword": (
        [
            lambda s, x: F.lp_pool2d(s.c3(x), 2, 3, 2, True),
            lambda s, x: F.lp_pool2d(s.c3(x), norm_type=2, kernel_size=3, stride=2, ceil_mode=True),
        ],
        (1, 8, 9),
    ),
    "lp_pool2d defaults": (
        [
            lambda s, x: F.lp_pool2d(s.c3(x), 2, 2, 2, False),
            lambda s, x: F.lp_pool2d(s.c3(x), 2, 2),
        ],
        (1, 7, 9),
    ),
    "pixel_shuffle by keyword": (
        [
            lambda s, x: F.pixel_shuffle(s.c4(x), 2),
            lambda s, x: F.pixel_shuffle(s.c4(x), upscale_factor=2),
        ],
        (1, 5, 6),
    ),
    "pixel_unshuffle by keyword": (
        [
            lambda s, x: F.pixel_unshuffle(s.c3(x), 2),
            lambda s, x: F.pixel_unshuffle(s.c3(x), downscale_factor=2),
        ],
        (1, 6, 8),
    ),
    "pad by keyword": (
        [
            lambda s, x: F.pad(s.c3(x), (1, 2, 0, 1), "replicate"),
            lambda s, x: F.pad(s.c3(x), pad=(1, 2, 0, 1), mode="replicate"),
        ],
        (1, 6, 7),
    ),
    "pad defaults": (
        [lambda s, x: F.pad(s.c3(x), (1, 2), "constant"), lambda s, x: F.pad(s.c3(x), (1, 2))],
        (1, 6, 7),
    ),
    "cat by keyword": (
        [
            lambda s, x: torch.cat([s.c3(x), x], -1),
            lambda s, x: torch.cat([s.c3(x), x], dim=-1),
        ],
        (1, 6, 7),
    ),
    "stack by keyword": (
        [
            lambda s, x: torch.stack([s.c3(x), x], -1).sum(-1),
            lambda s, x: torch.stack([s.c3(x), x], dim=-1).sum(-1),
        ],
        (1, 6, 7),
    ),
    "stack defaults": (
        [
            lambda s, x: torch.stack([s.c3(x), x], 0).sum(0),
            lambda s, x: torch.stack([s.c3(x), x]).sum(0),
        ],
        (1, 6, 7),
    ),
    "torch.batch_norm by keyword": (
        _norm_by_keyword(torch.batch_norm, "training", True),
        (1, 6, 7),
    ),
    "torch.batch_norm by keyword, running statistics": (
        _norm_by_keyword(torch.batch_norm, "training", False),
        (1, 6, 7),
    ),
    "torch.instance_norm by keyword": (
        _norm_by_keyword(torch.instance_norm, "use_input_stats", False),
        (1, 6, 7),
    ),
    "torch.instance_norm by keyword, input statistics": (
        _norm_by_keyword(torch.instance_norm, "use_input_stats", True),
        (1, 6, 7),
    ),
    "layer_norm by keyword": (
        [
            lambda s, x: F.layer_norm(s.c3(x), (7,)),
            lambda s, x: F.layer_norm(s.c3(x), normalized_shape=(7,)),
            lambda s, x: F.layer_norm(s.c3(x), [7]),
        ],
        (1, 6, 7),
    ),
    "cumsum by keyword": (
        [lambda s, x: torch.cumsum(s.c3(x), -1), lambda s, x: torch.cumsum(s.c3(x), dim=-1)],
        (1, 6, 7),
    ),
    "glu by keyword and default": (
        [
            lambda s, x: F.glu(s.c3(x), -1),
            lambda s, x: F.glu(s.c3(x), dim=-1),
            lambda s, x: F.glu(s.c3(x)),
        ],
        (1, 6, 8),
    ),
    "chunk by keyword": (
        [lambda s, x: s.c3(x).chunk(2, -1)[0], lambda s, x: s.c3(x).chunk(2, dim=-1)[0]],
        (1, 6, 8),
    ),
    "unbind by keyword": (
        [lambda s, x: s.c3(x).unbind(-1)[0], lambda s, x: s.c3(x).unbind(dim=-1)[0]],
        (1, 6, 8),
    ),
    "repeat by size": (
        [lambda s, x: s.c3(x).repeat(1, 1, 1, 2), lambda s, x: s.c3(x).repeat((1, 1, 1, 2))],
        (1, 6, 7),
    ),
    "transpose by keyword": (
        [
            lambda s, x: s.c3(s.c3(x).transpose(-1, -2)),
            lambda s, x: s.c3(s.c3(x).transpose(dim0=-1, dim1=-2)),
        ],
        (1, 6, 7),
    ),
    "roll by keyword": (
        [
            lambda s, x: s.c3(torch.roll(s.c3(x), 2, -1)),
            lambda s, x: s.c3(torch.roll(s.c3(x), shifts=2, dims=-1)),
        ],
        (1, 6, 7),
    ),
    "flip by keyword": (
        [lambda s, x: s.c3(s.c3(x).flip(-1)), lambda s, x: s.c3(torch.flip(s.c3(x), dims=(-1,)))],
        (1, 6, 7),
    ),
}


@pytest.mark.parametrize("name", list(SAME))
def test_a_keyword_means_what_its_position_means(name):
    forms, shape = SAME[name]
    first = rows(forms[0], shape)
    assert first[-1][6] != UNKNOWN or "spatial" in first[-1][9], first[-1]
    for fn in forms[1:]:
        assert rows(fn, shape) == first
    if "max_pool" not in name:  # a max passes the gradient to one pixel only
        for fn in forms:
            check(model(fn), shape)


def test_keyword_forms_are_not_the_defaults():
    # the keyword forms above are only a test where their values differ from torch's
    # defaults: a conv with stride 2, padding 1, dilation 2 after a conv3 on 9x9 has 4x4 units
    # (9 + 2 - 4 - 1) // 2 + 1, jump 2, rf 3 + 2*2 = 7, and starts at 0 + (2 - 1) = 1
    o = out(SAME["conv2d by keyword"][0][1], (1, 9, 9))
    assert o.size == (4, 4) and o.jump == (2, 2) and o.rf == (7, 7) and o.start == (1, 1)
    # conv_transpose stride 3, padding 2, output_padding 1 (padding and output_padding differ,
    # so reading one for the other shows), dilation 2 on 4x5 (taps 0, 2, 4 fall on every
    # residue mod 3, so no unit is a hole): (n - 1)*3 - 2*2 + 2*2 + 1 + 1 = 3n - 1: 11 x 14
    o = out(SAME["conv_transpose2d by keyword"][0][1], (1, 4, 5))
    assert o.size == (11, 14) and o.jump == (Fr(1, 3), Fr(1, 3))
    # replicate padding (1, 2) along W, (0, 1) along H: 7 x 10
    assert out(SAME["pad by keyword"][0][1]).size == (7, 10)


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


def test_pool_rows_show_their_window():
    r = rows(SAME["torch.max_pool2d by position"][0][0], (1, 8, 9))[-1]
    assert r[8] == Window((3, 3), (2, 2), (1, 1), (2, 2))
    r = rows(SAME["avg_pool2d defaults"][0][1], (1, 7, 9))[-1]
    assert r[8] == Window((2, 2), (2, 2), (0, 0), (1, 1))


# ---------------------------------------------------------------- rules no test reached


def test_stack_in_front_of_the_map_keeps_the_field_and_inside_it_is_unknown():
    # stacked in front (then summed): the conv3's field, rf 3, exact
    o = out(lambda s, x: torch.stack([s.c3(x), s.c3(x)], 1).sum(1))
    assert o.status == EXACT and o.rf == (3, 3)
    # a new dim between H and W: the map is cut apart
    o = out(lambda s, x: torch.stack([s.c3(x), s.c3(x)], -2).sum(-2))
    assert o.status == UNKNOWN and "stacking inside the spatial dims" in o.note


def test_cat_along_a_spatial_axis_is_unknown():
    o = out(SAME["cat by keyword"][0][0])
    assert o.status == UNKNOWN and "concatenation along a spatial axis" in o.note
    assert out(lambda s, x: torch.cat([s.c3(x), x], 1)).rf == (3, 3)


def test_cumsum_along_w_sees_every_unit_before():
    # conv3 unit o along W sees [o-1, o+1]; the running sum's unit o sees units 0..o, so
    # pixels 0..min(o+1, 6): the widest, units 5 and 6, see all 7. H keeps the conv's 3.
    m = model(SAME["cumsum by keyword"][0][0])
    a = analyze(m, (1, 6, 7))
    assert a.output.rf == (3, 7) and a.output.status != UNKNOWN
    assert a.output.note == "cumsum: unit o sees units 0..o"
    measured = check(m, (1, 6, 7))
    units = measured[a.rows[-1].name][1]
    assert [units[(2, o)][1] for o in range(7)] == [(0, min(o + 1, 6)) for o in range(7)]
    # along channels: every position on its own, the conv's field
    o = out(lambda s, x: s.c4(x).cumsum(1), c=1)
    assert o.rf == (3, 3) and o.status == EXACT


@pytest.mark.parametrize(
    "fn", [lambda y: y.cumsum(-1), lambda y: F.glu(y, -1)], ids=["cumsum", "glu"]
)
def test_cumsum_and_glu_of_a_flattened_map_show_it_as_a_whole(fn):
    # the conv3's map flattened (6x7 -> 42): shown as a whole, rf 8 x 9 centred on (2.5, 3)
    # (units 0..5 along H see pixels -1..6, units 0..6 along W pixels -1..7)
    o = out(lambda s, x: fn(s.c3(x).flatten(2)))
    assert o.status == GLOBAL and o.rf == (8, 9) and o.start == (Fr(5, 2), 3)


def test_glu_reads_unit_o_and_unit_o_plus_half():
    # W = 8 halves to 4: unit o reads conv units o and o + 4, which see [o-1, o+1] and
    # [o+3, o+5]: together [o-1, o+5] clipped to 0..7: (0,5), (0,6), (1,7), (2,7)
    m = model(SAME["glu by keyword and default"][0][0])
    a = analyze(m, (1, 6, 8))
    assert a.output.size == (6, 4) and a.output.rf == (3, 7)
    assert a.output.note == "glu: unit o reads units o and o + n/2"
    units = check(m, (1, 6, 8))[a.rows[-1].name][1]
    assert [units[(2, o)][1] for o in range(4)] == [(0, 5), (0, 6), (1, 7), (2, 7)]
    # along channels (4 -> 2): per position
    o = out(lambda s, x: F.glu(s.c4(x), 1))
    assert o.status == EXACT and o.rf == (3, 3) and o.size == (6, 7)


@pytest.mark.parametrize(
    "fn, status",
    [
        (lambda s, x: F.instance_norm(s.c3(x)), GLOBAL),
        (lambda s, x: F.instance_norm(s.c3(x), RM, RV, use_input_stats=False), EXACT),
        (lambda s, x: F.instance_norm(s.c3(x), RM, RV), GLOBAL),
        (
            lambda s, x: torch.instance_norm(
                s.c3(x), None, None, None, None, True, 0.1, 1e-5, False
            ),
            GLOBAL,
        ),
        (
            lambda s, x: torch.instance_norm(s.c3(x), None, None, RM, RV, False, 0.1, 1e-5, False),
            EXACT,
        ),
        (
            lambda s, x: torch.instance_norm(s.c3(x), None, None, RM, RV, True, 0.1, 1e-5, False),
            GLOBAL,
        ),
        (
            lambda s, x: torch.batch_norm(s.c3(x), None, None, RM, RV, True, 0.1, 1e-5, False),
            GLOBAL,
        ),
        (
            lambda s, x: torch.batch_norm(s.c3(x), None, None, RM, RV, False, 0.1, 1e-5, False),
            EXACT,
        ),
        (lambda s, x: F.batch_norm(s.c3(x), RM, RV, training=True), GLOBAL),
        (lambda s, x: F.batch_norm(s.c3(x), None, None, training=True), GLOBAL),
    ],
)
def test_norms_global_only_with_statistics_of_the_map(fn, status):
    # statistics of the input's map: every unit sees the whole 6x7 image (the rf of a global
    # axis counts the conv's padding: 3 + 6 - 1, 3 + 7 - 1); running statistics are constants
    # per channel: the conv's field, 3
    m = model(fn)
    o = analyze(m, (1, 6, 7)).output
    assert o.status == status
    assert o.rf == ((8, 9) if status == GLOBAL else (3, 3))
    if status == GLOBAL:
        assert o.note.endswith("statistics are taken over the whole map")
    check(m, (1, 6, 7))


def test_layer_norm_is_global_along_the_dims_it_normalises():
    # over W only: global along W (rf 3 + 7 - 1 = 9, the whole width and the conv's
    # padding), the conv's 3 along H
    o = out(SAME["layer_norm by keyword"][0][0])
    assert o.rf == (3, 9) and o.axis_status == (EXACT, GLOBAL)
    assert o.note.startswith("layer_norm: normalised over spatial dims (")
    # over (H, W): global along both
    o = out(lambda s, x: F.layer_norm(s.c3(x), (6, 7)))
    assert o.rf == (8, 9) and o.status == GLOBAL
    # over channels, channels last: per position
    o = out(lambda s, x: F.layer_norm(s.c4(x).permute(0, 2, 3, 1), (4,)).permute(0, 3, 1, 2))
    assert o.rf == (3, 3) and o.status == EXACT


@pytest.mark.parametrize(
    "op, fn",
    [
        ("bmm", lambda s, x: torch.bmm(s.c4(x).flatten(2).transpose(1, 2), s.c4(x).flatten(2))),
        (
            "baddbmm",
            lambda s, x: torch.baddbmm(
                torch.zeros(1, 42, 42, dtype=D),
                s.c4(x).flatten(2).transpose(1, 2),
                s.c4(x).flatten(2),
            ),
        ),
        (
            "addmm",
            lambda s, x: torch.addmm(
                torch.zeros(4, 4, dtype=D), s.c4(x)[0].flatten(1), s.c4(x)[0].flatten(1).T
            ),
        ),
        ("tensordot", lambda s, x: torch.tensordot(s.c4(x), s.c4(x), dims=([2, 3], [2, 3]))),
    ],
)
def test_batched_products_of_maps_see_everything(op, fn):
    o = out(fn)
    assert o.status == GLOBAL and o.note == f"{op}: a product across positions"


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


class TestEinsum:
    """One map operand: an index kept is per position, one contracted with a constant and
    replaced by a fresh output index mixes that axis; two map operands mix everything."""

    def test_a_permutation_moves_the_axes_with_their_dims(self):
        # H and W swapped, then a 1x3 conv along the tensor's last dim, which is now H: H
        # widens to 3 + 2 = 5, W keeps the conv3's 3 (sizes are given per axis, H first)
        m = model(lambda s, x: F.conv2d(torch.einsum("bchw->bcwh", s.c3(x)), W13, padding=(0, 1)))
        o = analyze(m, (1, 6, 7)).output
        assert o.status == EXACT and o.rf == (5, 3) and o.size == (6, 7)
        check(m, (1, 6, 7))

    def test_the_operands_may_come_as_one_list(self):
        o = out(lambda s, x: torch.einsum("bchw,c->bhw", [s.c4(x), torch.ones(4, dtype=D)]))
        assert o.status == EXACT and o.rf == (3, 3) and o.size == (6, 7)

    def test_a_channel_contraction_is_per_position(self):
        m = model(lambda s, x: torch.einsum("bchw,dc->bdhw", s.c4(x), torch.ones(2, 4, dtype=D)))
        o = analyze(m, (1, 6, 7)).output
        assert o.status == EXACT and o.rf == (3, 3) and o.size == (6, 7)
        check(m, (1, 6, 7))

    def test_a_scale_per_position_is_per_position(self):
        o = out(lambda s, x: torch.einsum("bchw,w->bchw", s.c3(x), torch.ones(7, dtype=D)))
        assert o.status == EXACT and o.rf == (3, 3)

    def test_w_contracted_into_a_fresh_index_is_global_along_w(self):
        # W (7) summed against a constant 7x5 matrix: 5 new units along W, each sees the
        # whole width; H keeps the conv's 3
        m = model(lambda s, x: torch.einsum("bchw,wv->bchv", s.c3(x), torch.ones(7, 5, dtype=D)))
        o = analyze(m, (1, 6, 7)).output
        # (the rf of a global axis counts the conv's padding: 3 + 7 - 1 = 9)
        assert o.size == (6, 5) and o.rf == (3, 9) and o.axis_status == (EXACT, GLOBAL)
        assert o.note.startswith("einsum: sums over a spatial index (bchw,wv->bchv) (")
        check(m, (1, 6, 7))
        # to a single unit: collapsed, not broadcast: one window as wide as the map, its
        # jump the map's width (7), where a broadcast unit would have jump 0
        o = out(lambda s, x: torch.einsum("bchw,wv->bchv", s.c3(x), torch.ones(7, 1, dtype=D)))
        assert o.size == (6, 1) and o.rf == (3, 9) and o.jump == (1, 7)

    def test_spaces_in_the_equation_are_ignored(self):
        o = out(
            lambda s, x: torch.einsum(
                "b c h w , w v -> b c h v", s.c3(x), torch.ones(7, 5, dtype=D)
            )
        )
        assert o.size == (6, 5) and o.rf == (3, 9)

    def test_summing_a_spatial_index_away_is_unknown(self):
        o = out(lambda s, x: torch.einsum("bchw,w->bch", s.c3(x), torch.ones(7, dtype=D)))
        assert o.status == UNKNOWN and o.note == "einsum: einsum sums a spatial index away"

    def test_two_maps_mix_everything(self):
        o = out(lambda s, x: torch.einsum("bchw,bcij->bhwij", s.c3(x), s.c3(x)).sum((-1, -2)))
        assert o.status == GLOBAL and "einsum: a product across positions" in o.note

    def test_a_permutation_keeps_the_note_it_had(self):
        # no index summed: the conv's field (no note) moves on as it is, and stays a field
        # that merges (a status the merge can rank)
        o = out(lambda s, x: torch.einsum("bchw->bcwh", s.c3(x)) * 2 + s.c3(x).transpose(2, 3))
        assert o.status == EXACT and o.note == "" and o.rf == (3, 3)

    def test_the_sublist_form_spells_the_same_equation(self):
        # einsum(x, [0, 1, 2, 3], [0, 1, 3, 2]) is "ABCD->ABDC" (torch spells it before the
        # call is recorded): the permutation above
        m = model(
            lambda s, x: F.conv2d(
                torch.einsum(s.c3(x), [0, 1, 2, 3], [0, 1, 3, 2]), W13, padding=(0, 1)
            )
        )
        o = analyze(m, (1, 6, 7)).output
        assert o.status == EXACT and o.rf == (5, 3) and o.size == (6, 7)
        check(m, (1, 6, 7))
        # W contracted with a 7x5 constant into a fresh index: global along W
        v = torch.ones(7, 5, dtype=D)
        o = out(lambda s, x: torch.einsum(s.c3(x), [0, 1, 2, 3], v, [3, 4], [0, 1, 2, 4]))
        assert o.size == (6, 5) and o.rf == (3, 9) and o.axis_status == (EXACT, GLOBAL)
        # an implicit output (no output sublist) is taken as global
        o = out(lambda s, x: torch.einsum(s.c3(x), [0, 1, 2, 3], v, [3, 4]).sum(-1))
        assert o.status == GLOBAL and o.note == "einsum: a product across positions"

    def test_a_fresh_index_of_two_units_is_global(self):
        # two units along the new W, each reading the whole width
        o = out(lambda s, x: torch.einsum("bchw,wv->bchv", s.c3(x), torch.ones(7, 2, dtype=D)))
        assert o.size == (6, 2) and o.rf == (3, 9) and o.axis_status == (EXACT, GLOBAL)

    def test_an_unknown_or_flattened_map_stays_as_it_was(self):
        o = out(
            lambda s, x: torch.einsum(
                "bchw,wv->bchv", _grid_sampled(s, x), torch.ones(7, 5, dtype=D)
            )
        )
        assert o.status == UNKNOWN and o.note == "grid_sample: no rule for this op"
        # a flattened map is shown as a whole: the conv3's units 0..5 along H see pixels
        # -1..6 (rf 8, centred on 2.5), units 0..6 along W pixels -1..7 (rf 9, centred on 3)
        o = out(lambda s, x: torch.einsum("bcn->bnc", s.c3(x).flatten(2)))
        assert o.status == GLOBAL and o.rf == (8, 9) and o.start == (Fr(5, 2), 3)

    def test_an_ellipsis_is_taken_as_global(self):
        o = out(lambda s, x: torch.einsum("...hw->...wh", s.c3(x)))
        assert o.status == GLOBAL and o.note == "einsum: a product across positions"


def refolded(op):
    """conv3, F.unfold (k3, padding 1), `op` on the columns, F.fold with the same window: with
    nothing but element-wise work between, each pixel gets back the sum of its own entries,
    so every unit keeps the conv's field (rf 3, start 0)."""
    return lambda s, x: F.fold(op(F.unfold(s.c3(x), 3, padding=1)), (6, 7), 3, padding=1)


def _grid_sampled(s, x):
    """A map whose field is unknown (grid_sample has no rule)."""
    return F.grid_sample(s.c3(x), torch.zeros(1, 6, 7, 2, dtype=D), align_corners=False)


def test_attention_sees_everything_and_absorbs_an_unknown_input():
    def attend(q, k, v):
        seq = lambda t: t.flatten(2).transpose(1, 2)  # noqa: E731  (1, HW, C)
        return F.scaled_dot_product_attention(seq(q), seq(k), seq(v))

    o = out(lambda s, x: attend(s.c4(x), s.c4(x), s.c4(x)))
    assert (
        o.status == GLOBAL
        and o.note == "scaled_dot_product_attention: attention reads every position"
    )
    # the query's field unknown: every output still mixes every key's position
    o = out(lambda s, x: attend(_grid_sampled(s, x), s.c3(x), s.c3(x)))
    assert o.status == GLOBAL
    # nothing known: nothing is claimed
    o = out(lambda s, x: attend(_grid_sampled(s, x), _grid_sampled(s, x), _grid_sampled(s, x)))
    assert o.status == UNKNOWN


# ---------------------------------------------------------------- registering a rule


@pytest.fixture
def restore_registry():
    saved = dict(RULES), set(dispatch._SEES_UNKNOWN), set(dispatch._KEEPS_LAYOUT)
    yield
    RULES.clear()
    RULES.update(saved[0])
    dispatch._SEES_UNKNOWN.clear()
    dispatch._SEES_UNKNOWN.update(saved[1])
    dispatch._KEEPS_LAYOUT.clear()
    dispatch._KEEPS_LAYOUT.update(saved[2])


def _same(call):
    return Outcome(call.first)


def test_the_rule_decorator_registers_every_name_with_its_flags(restore_registry):
    plain = rule("grid_sample")(_same)
    assert plain is _same and RULES["grid_sample"] is _same
    assert "grid_sample" not in dispatch._SEES_UNKNOWN and _same not in dispatch._KEEPS_LAYOUT

    def other(call):
        return Outcome(call.first)

    rule("affine_grid", "grid_sample", unknown_inputs=True, keeps_layout=True)(other)
    assert RULES["affine_grid"] is other and RULES["grid_sample"] is other
    assert {"affine_grid", "grid_sample"} <= dispatch._SEES_UNKNOWN
    assert other in dispatch._KEEPS_LAYOUT


def test_unknown_inputs_decides_whether_a_rule_sees_an_unknown_field(restore_registry):
    seen = []

    def spy(call):
        seen.append(call.first.status)
        return Outcome(call.first)

    m = model(lambda s, x: torch.special.erf(_grid_sampled(s, x)))
    # check=False: the perturbation check's own forward would ask the rule again
    register_rule("special_erf", spy)
    assert analyze(m, (1, 6, 7), check=False).output.status == UNKNOWN and seen == []
    register_rule("special_erf", spy, unknown_inputs=True)
    analyze(m, (1, 6, 7), check=False)
    assert seen == [UNKNOWN]
    register_rule("special_erf", spy)  # re-registered without the flag: not asked again
    analyze(m, (1, 6, 7), check=False)
    assert seen == [UNKNOWN]


def test_register_rule_errors_name_the_op(restore_registry):
    with pytest.raises(TypeError, match=r"^the rule for grid_sample must be callable, got int$"):
        register_rule(F.grid_sample, 3)
    with pytest.raises(ValueError, match=r"^conv2d already has a rule$"):
        register_rule("conv2d", _same, replace=False)


def __private():  # a name with leading underscores only: not a dunder
    pass


class _Descriptor:
    """A property-like object without a name of its own."""

    def __get__(self, obj, owner=None):
        return obj


@pytest.mark.parametrize(
    "func, name",
    [
        (torch.Tensor.__radd__, "add"),  # reflected: 2 + x
        (torch.Tensor.__iadd__, "add"),  # in place: x += y
        (torch.Tensor.__rmatmul__, "matmul"),
        (torch.Tensor.__xor__, "xor"),  # not "or": x is not a reflected/in-place prefix
        (torch.Tensor.__ior__, "or"),
        (torch.Tensor.add_, "add"),
        (torch.Tensor.__getitem__, "getitem"),
        (torch.Tensor.T.__get__, "get_T"),  # a Tensor property: what __torch_function__ gets
        (torch.Tensor.data.__get__, "get_data"),
        (_Descriptor().__get__, "get_?"),  # a property with no name
        (_Descriptor.__get__, "get_?"),  # the same, unbound: no __self__ at all
        (torch.Tensor._coalesced_, "_coalesced_"),  # private: the trailing _ is not in-place
        (__private, "__private"),
    ],
)
def test_canonical_names(func, name):
    assert dispatch.canonical(func) == name


def test_a_callable_without_a_name_has_the_empty_name():
    # a functools.partial has no __name__; a callable may also carry None as its name
    class Nameless:
        __name__ = None

        def __call__(self, x):
            return x

    for fn in (functools.partial(torch.relu), Nameless()):
        assert dispatch.canonical(fn) == "" and dispatch.qualified(fn) == ""


def test_key_of_qualifies_only_the_names_two_functions_share():
    assert key_of(F.unfold) == "F.unfold" and key_of(torch.Tensor.unfold) == "Tensor.unfold"
    assert key_of(F.conv2d) == "conv2d" and key_of(torch.Tensor.add_) == "add"
    assert key_of("anything") == "anything"


# ---------------------------------------------------------------- bugs these tests found


def test_fold_gives_nothing_back_to_pixels_no_window_covered():
    # F.unfold with k3, dilation 2, padding 1, stride 2 on 6x7 reads the conv's units
    # 2o - 1 + {0, 2, 4}: 1, 3, 5 along both axes (2 windows along H, 3 along W). F.fold puts
    # those back and leaves 0 elsewhere: those pixels see nothing (before the fix every pixel
    # was claimed to see its own field, exactly)
    m = model(SAME["F.unfold and F.fold by keyword"][0][0])
    a = analyze(m, (1, 6, 7))
    units = check(m, (1, 6, 7))[a.rows[-1].name][1]
    seen = sorted(u for u, m_ in units.items() if m_ is not None)
    assert seen == [(i, j) for i in (1, 3, 5) for j in (1, 3, 5)]
    assert a.output.status != EXACT
    assert a.output.note == "fold: pixels no window of the unfold covered get nothing back"
    # the pixels that get something back get their own field: the conv3's (jump 1, rf 3,
    # unit 0 centred on pixel 0), and the row shows the fold's window
    assert (a.output.jump, a.output.rf, a.output.start) == ((1, 1), (3, 3), (0, 0))
    assert a.rows[-1].window == Window((3, 3), (2, 2), (1, 1), (2, 2))
    # added to the conv's own map, every pixel has its own field again: rf 3 (a merge that
    # ranks the statuses of both)
    fold = SAME["F.unfold and F.fold by keyword"][0][0]
    o = out(lambda s, x: fold(s, x) + s.c3(x))
    assert o.rf == (3, 3) and o.size == (6, 7)


def test_stack_by_default_goes_in_front_of_the_first_dim():
    # two unbatched H x W maps stacked at dim 0 (torch's default), in front of H: the map is
    # whole (at dim 1 it would be inside it)
    o = out(lambda s, x: torch.stack([s.c3(x)[0, 0], s.c3(x)[0, 0]]).sum(0))
    assert o.status == EXACT and o.rf == (3, 3) and o.size == (6, 7)
    o = out(lambda s, x: torch.stack([s.c3(x), s.c3(x)], -1).sum(-1))
    assert o.status == UNKNOWN and o.note == "stack: stacking inside the spatial dims"


@pytest.mark.parametrize(
    "fn, size",
    [
        # an op with no rule on an unbatched H x W map: as many dims as the map has
        (lambda s, x: torch.sort(s.c3(x)[0, 0], -1)[0], (6, 7)),
        # a map permuted to (N, H, C, W), its dims -3 and -1, reduced by an op with no rule
        # to (H, W): two dims, but not the map's: no size is claimed
        (lambda s, x: torch.linalg.vector_norm(s.c3(x).permute(0, 2, 1, 3), dim=(0, 2)), ()),
    ],
)
def test_an_unknown_row_keeps_the_maps_size_only_where_its_dims_survive(fn, size):
    o = out(fn)
    assert o.status == UNKNOWN and o.size == size and o.note.endswith(": no rule for this op")


def test_cat_by_default_joins_the_first_dim():
    # two unbatched (C, H, W) maps joined at dim 0 (torch's default), the channels: the field
    # stays the conv3's; along W the map would be cut in two
    o = out(lambda s, x: torch.cat([s.c3(x)[0], s.c3(x)[0]]).sum(0))
    assert o.status == EXACT and o.rf == (3, 3) and o.size == (6, 7)
    o = out(lambda s, x: torch.cat([s.c3(x), s.c3(x)], -1))
    assert o.status == UNKNOWN and o.note == "cat: concatenation along a spatial axis"


L42 = torch.ones(5, 42, dtype=D)  # a Linear over the conv3's flattened 6x7 map


@pytest.mark.parametrize(
    "fn, status, note",
    [
        # flattened (or reshaped out of order), nothing mixed yet: each element still reads
        # one position, so an op with no rule after it is unknown
        (lambda y: y.flatten(2), UNKNOWN, "sort: no rule for this op"),
        (lambda y: y.reshape(1, 2, 21), UNKNOWN, "sort: no rule for this op"),
        # a Linear over the flattened map: every element read every position, which no op
        # can undo; the note says which op mixed it
        (lambda y: F.linear(y.flatten(1), L42), GLOBAL, "linear: mixes every position of the map"),
        # a product of the map with itself across positions (attention's q·kᵀ): the same
        (
            lambda y: y.flatten(2).transpose(1, 2) @ y.flatten(2),
            GLOBAL,
            "matmul: a product across positions",
        ),
    ],
)
def test_only_a_map_really_mixed_stays_global_through_an_op_with_no_rule(fn, status, note):
    o = out(lambda s, x: torch.sort(fn(s.c3(x)), -1)[0])
    assert o.status == status and o.note == note


def test_mixing_again_keeps_the_note_of_the_op_that_mixed_first():
    # a product of the mixed vector with itself mixes nothing new: the Linear's note stays
    def fn(s, x):
        y = F.linear(s.c3(x).flatten(1), L42)
        return y.unsqueeze(-1) @ y.unsqueeze(-2)

    assert out(fn).note == "linear: mixes every position of the map"
    # along W twice: the first op's note; then along H: the op that mixed H says so
    o = out(lambda s, x: F.log_softmax(F.softmax(s.c3(x), -1), -1))
    assert o.axis_status == (EXACT, GLOBAL)
    assert o.note.startswith("softmax: computed along a spatial dim")
    o = out(lambda s, x: F.log_softmax(F.softmax(s.c3(x), -1), -2))
    assert o.status == GLOBAL and o.note == "log_softmax: computed along a spatial dim"


def test_stacking_right_before_w_is_inside_the_map():
    # two 2x7 maps stacked at dim 3 of the output (1, 1, 2, 2, 7): the new dim sits between
    # H and W. Its size (2) equals H's, so nothing failed: the table claimed a 2x7 map
    o = out(lambda s, x: torch.stack([s.c3(x), s.c3(x)], 3).sum(3), (1, 2, 7))
    assert o.status == UNKNOWN and "stacking inside the spatial dims" in o.note
    # at dim 2, in front of H, the map is whole
    o = out(lambda s, x: torch.stack([s.c3(x), s.c3(x)], 2).sum(2), (1, 2, 7))
    assert o.status == EXACT and o.rf == (3, 3)


# ---------------------------------------------------------------- unfold, fold, matmul


W9 = torch.full((9, 9), 1 / 9, dtype=D)  # mixes every entry of a 3x3 window's column


def test_fold_after_mixing_the_columns_reads_every_window_holding_a_pixel():
    # F.unfold k3 padding 1 on the conv3's 6x7 map: window o sees conv units o-1..o+1, that
    # is pixels o-2..o+2. The weight mixes each column's 9 entries, so F.fold's pixel i reads
    # windows i-1..i+1: pixels i-3..i+3, rf 7, a k3 transposed window over the windows
    m = model(lambda s, x: F.fold(W9 @ F.unfold(s.c3(x), 3, padding=1), (6, 7), 3, padding=1))
    a = analyze(m, (1, 6, 7))
    assert a.output.rf == (7, 7) and a.output.status == EXACT and a.output.size == (6, 7)
    assert a.rows[-1].window == Window((3, 3), (1, 1), (1, 1), (1, 1))
    check(m, (1, 6, 7))
    # added to the conv's own map: the union, still 7 (a field a merge can rank)
    o = out(
        lambda s, x: F.fold(W9 @ F.unfold(s.c3(x), 3, padding=1), (6, 7), 3, padding=1) + s.c3(x)
    )
    assert o.status == EXACT and o.rf == (7, 7)


def test_fold_to_a_map_larger_than_the_windows_reach():
    # unfold k3 stride 2 on 7: 3 windows (units 0-2, 2-4, 4-6). Folded back into 8 units,
    # the last one no window reaches: it sees nothing (an output_padding of 1)
    m = model(lambda s, x: F.fold(W9 @ F.unfold(s.c3(x), 3, stride=2), (7, 8), 3, stride=2))
    a = analyze(m, (1, 7, 7))
    assert a.output.size == (7, 8)
    units = check(m, (1, 7, 7))[a.rows[-1].name][1]
    assert units[(3, 7)] is None and units[(3, 6)] is not None


def test_unfold_row_shows_its_window_and_why_the_map_ends():
    a = analyze(model(lambda s, x: F.unfold(s.c3(x), 3, 2, 1, 2)), (1, 6, 7))
    row = a.rows[-1]
    assert row.window == Window((3, 3), (2, 2), (1, 1), (2, 2))
    assert row.note == "unfold: the windows are flattened into one dim"
    # the flattened windows are shown as one whole: every window's field together. Window o
    # reads conv units 2o - 1 + {0, 2, 4}, each seeing pixels u - 1..u + 1 (padding counted,
    # as in a textbook field): along H (2 windows) pixels -2..4 and 0..6, together -2..6,
    # rf 9 centred on 2; along W (3 windows) -2..8, rf 11 centred on 3
    assert (row.rf, row.start, row.status) == ((9, 11), (2, 3), GLOBAL)
    # one unit as wide as all the windows: 2 windows along H, 3 along W, 2 pixels apart,
    # so its jump is 2 * 2 = 4 and 3 * 2 = 6
    assert row.jump == (4, 6)


def test_tensor_unfold_row_shows_its_window_along_the_dim_it_slides():
    # x.unfold(-1, 3, 2) slides along W only: kernel 1 x 3, stride 1 x 2 (H first)
    row = analyze(model(SAME["Tensor.unfold by keyword"][0][0]), (1, 6, 9)).rows[-2]
    assert row.op == "unfold" and row.window == Window((1, 3), (1, 2), (0, 0), (1, 1))


def test_tensor_unfold_of_channels_keeps_the_field():
    # windows of 2 channels (dim 1): the map is untouched, one dim is added at the end
    m = model(lambda s, x: s.c4(x).unfold(1, 2, 2).sum(-1))
    o = analyze(m, (1, 6, 7)).output
    assert o.status == EXACT and o.rf == (3, 3) and o.size == (6, 7) and o.note == ""
    check(m, (1, 6, 7))
    # the field merges afterwards (a status the merge can rank)
    o = out(lambda s, x: s.c4(x).unfold(1, 2, 2).sum(-1) + s.c3(x))
    assert o.status == EXACT and o.rf == (3, 3)
    # and keeps its note (a softmax along W made it global along W)
    o = out(lambda s, x: F.softmax(s.c4(x), -1).unfold(1, 2, 2).sum(-1))
    assert o.note.startswith("softmax: computed along a spatial dim")


def test_tensor_unfold_of_a_flattened_map_shows_it_as_a_whole():
    # the conv3's 6x7 map flattened: rf 8 x 9 centred on (2.5, 3), as for cumsum and glu
    o = out(lambda s, x: s.c3(x).flatten(2).unfold(-1, 3, 1).sum(-1))
    assert o.status == GLOBAL and o.rf == (8, 9) and o.start == (Fr(5, 2), 3)


def test_fold_of_what_is_not_an_unfold_is_unknown():
    o = out(lambda s, x: F.fold(s.c3(x).reshape(1, 9, 4), (4, 4), 3), (1, 6, 6))
    assert o.status == UNKNOWN and o.note == (
        "fold: F.fold of a tensor that is not (a layout-keeping function of) the output of F.unfold"
    )


@pytest.mark.parametrize(
    "fn, shape",
    [
        # another window with the same number of windows: k3 padding 1 and k3 dilation 2
        # padding 2 both slide 6 x 7 windows over a 6x7 map
        (
            lambda s, x: F.fold(F.unfold(s.c3(x), 3, padding=1), (6, 7), 3, dilation=2, padding=2),
            (1, 6, 7),
        ),
        # the same window folded into a larger map: k3 stride 2 slides 3 windows over 7 and 8
        (lambda s, x: F.fold(F.unfold(s.c3(x), 3, stride=2), (7, 8), 3, stride=2), (1, 7, 7)),
    ],
)
def test_fold_with_another_window_or_size_than_its_unfold_is_unknown(fn, shape):
    o = out(fn, shape)
    assert o.status == UNKNOWN and o.note == "fold: F.fold with another window than its F.unfold"


@pytest.mark.parametrize("mix", [False, True])
def test_fold_of_a_map_without_a_batch_dim(mix):
    # (C, H, W) in, (C*9, L) columns, (C, H, W) out: the map's dims are the output's last two.
    # Folded back unmixed, each pixel gets its own field (rf 3); mixed, it reads the windows
    # i-1..i+1 of pixels i-3..i+3 (rf 7)
    def fn(s, x):
        cols = F.unfold(s.c3(x)[0], 3, padding=1)
        return F.fold(W9 @ cols if mix else cols, (6, 7), 3, padding=1)

    m = model(fn)
    o = analyze(m, (1, 6, 7)).output
    assert o.status == EXACT and o.size == (6, 7) and o.rf == ((7, 7) if mix else (3, 3))
    check(m, (1, 6, 7))


def test_fold_after_mixed_columns_carries_the_fields_note_and_status():
    # a softmax along W before the unfold: global along W, exact along H, and its note stays
    o = out(
        lambda s, x: F.fold(
            W9 @ F.unfold(F.softmax(s.c3(x), -1), 3, padding=1), (6, 7), 3, padding=1
        )
    )
    assert o.axis_status == (EXACT, GLOBAL) and o.rf == (7, 9)
    assert o.note.startswith("softmax: computed along a spatial dim")
    # softmax along both: global everywhere
    o = out(
        lambda s, x: F.fold(
            W9 @ F.unfold(F.softmax(F.softmax(s.c3(x), -1), -2), 3, padding=1), (6, 7), 3, padding=1
        )
    )
    assert o.status == GLOBAL and o.note == "softmax: computed along a spatial dim"


class Line(nn.Module):
    """A 1-D map (conv1d) given a dim of size 1 in front: a 4-D tensor with one spatial axis."""

    def __init__(self, fn):
        super().__init__()
        self.fn, self.c = fn, nn.Conv1d(1, 1, 3, padding=1)

    def forward(self, x):
        return self.fn(self.c(x).unsqueeze(-2))


def test_unfold_of_a_map_that_is_not_2d_is_unknown():
    o = analyze(positive(Line(lambda y: F.unfold(y, (1, 3)))), (1, 9)).output
    assert o.status == UNKNOWN and o.note == "unfold: F.unfold of a map that is not 2-D"


@pytest.mark.parametrize(
    "fn, rf, axis_status",
    [
        # x @ W: W's rows mix the last dim (W) into 5 new units: global along W
        (lambda s, x: s.c3(x) @ torch.ones(7, 5, dtype=D), (3, 9), (EXACT, GLOBAL)),
        (lambda s, x: torch.matmul(s.c3(x), torch.ones(7, 5, dtype=D)), (3, 9), (EXACT, GLOBAL)),
        # W @ x: mixes the second-to-last dim (H)
        (lambda s, x: torch.ones(4, 6, dtype=D) @ s.c3(x), (8, 3), (GLOBAL, EXACT)),
        (lambda s, x: torch.mm(torch.ones(4, 6, dtype=D), s.c3(x)[0, 0]), (8, 3), (GLOBAL, EXACT)),
        # the same by keyword
        (
            lambda s, x: torch.matmul(input=s.c3(x), other=torch.ones(7, 5, dtype=D)),
            (3, 9),
            (EXACT, GLOBAL),
        ),
        (
            lambda s, x: torch.ones(4, 6, dtype=D).matmul(other=s.c3(x)),
            (8, 3),
            (GLOBAL, EXACT),
        ),
        (
            lambda s, x: torch.mm(input=torch.ones(4, 6, dtype=D), mat2=s.c3(x)[0, 0]),
            (8, 3),
            (GLOBAL, EXACT),
        ),
    ],
)
def test_a_product_with_a_constant_mixes_one_axis(fn, rf, axis_status):
    # rf of a global axis: the whole map and the conv's padding, 3 + n - 1
    m = model(fn)
    o = analyze(m, (1, 6, 7)).output
    assert o.rf == rf and o.axis_status == axis_status
    check(m, (1, 6, 7))


def test_a_product_with_the_unfolded_columns_by_keyword_is_a_convolution():
    # W9.matmul(other=cols) is W9 @ cols: F.fold then reads every window holding a pixel
    m = model(
        lambda s, x: F.fold(W9.matmul(other=F.unfold(s.c3(x), 3, padding=1)), (6, 7), 3, padding=1)
    )
    o = analyze(m, (1, 6, 7)).output
    assert o.status == EXACT and o.rf == (7, 7)
    check(m, (1, 6, 7))


def test_mixed_columns_are_shown_as_the_unfolded_windows():
    # the columns W9 @ cols: still the flattened windows of the unfold row (rf 9 x 11 for
    # k3 dilation 2 padding 1 stride 2 on 6x7, see the unfold row test), global, its note
    row = analyze(model(lambda s, x: W9 @ F.unfold(s.c3(x), 3, 2, 1, 2)), (1, 6, 7)).rows[-1]
    assert (row.rf, row.start, row.status) == ((9, 11), (2, 3), GLOBAL)
    assert row.note == "unfold: the windows are flattened into one dim"


def test_a_product_with_an_unknown_map_stays_unknown():
    o = out(lambda s, x: _grid_sampled(s, x) @ torch.ones(7, 5, dtype=D))
    assert o.status == UNKNOWN and o.note == "grid_sample: no rule for this op"


def test_a_product_of_two_maps_mixes_everything():
    o = out(lambda s, x: s.c3(x) @ s.c3(x).transpose(-1, -2))
    assert o.status == GLOBAL and o.note == "matmul: a product across positions"


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


# ---------------------------------------------------------------- adaptive pools, rows


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


def test_unknown_rows_keep_the_size_of_their_map():
    # an op with no rule: unknown, but the table still gives its map's size; so does the op
    # after it (unknown in, unknown out)
    a = analyze(model(lambda s, x: torch.relu(_grid_sampled(s, x))), (1, 6, 7))
    *_, grid, relu = a.rows
    assert grid.status == UNKNOWN and grid.size == (6, 7)
    assert relu.status == UNKNOWN and relu.size == (6, 7) and relu.note == grid.note
    # an op with no rule whose output has fewer dims than the map: no size
    o = out(lambda s, x: torch.diag(s.c3(x)[0, 0]))
    assert o.status == UNKNOWN and o.size == ()


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


def test_an_unknown_input_is_absorbed_only_by_a_field_global_on_every_axis():
    # softmax along W then along H: every unit sees the whole map. Multiplied by a map whose
    # field is unknown, every unit still sees at least the whole map: global, not unknown
    whole = lambda s, x: F.softmax(F.softmax(s.c3(x), -1), -2)  # noqa: E731
    o = out(lambda s, x: _grid_sampled(s, x) * whole(s, x))
    assert o.status == GLOBAL and o.rf == (8, 9)
    # a field global along W only cannot absorb it
    o = out(lambda s, x: _grid_sampled(s, x) * F.softmax(s.c3(x), -1))
    assert o.status == UNKNOWN


L1 = torch.full((1, 42), 1 / 42, dtype=D)  # a Linear over the flattened map, to one number


@pytest.mark.parametrize(
    "fn",
    [
        lambda s, x: s.c3(x) + F.linear(s.c3(x).flatten(1), L1),
        lambda s, x: F.linear(s.c3(x).flatten(1), L1) + s.c3(x),
    ],
    ids=["map + vector", "vector + map"],
)
def test_a_map_plus_a_vector_that_mixed_everything_is_that_vector(fn):
    # the Linear's one number read every position (pixels -1..6 x -1..7: rf (8, 9)); added to
    # each unit of the map, every output unit reads them all: one global vector
    m = model(fn)
    o = analyze(m, (1, 6, 7)).output
    assert (o.status, o.size, o.rf) == (GLOBAL, (), (8, 9))
    assert o.note == "linear: mixes every position of the map"
    check(m, (1, 6, 7))


def test_a_map_plus_its_transpose_is_unknown():
    # unit (i, j) reads conv units (i, j) and (j, i): the two maps keep H and W in different
    # dims, which no single field per axis describes
    m = model(lambda s, x: s.c3(x) + s.c3(x).transpose(-1, -2))
    o = analyze(m, (1, 6, 6)).output
    assert (o.status, o.size) == (UNKNOWN, (6, 6))
    assert o.note == "add: the merged tensors keep their maps in different dims"
    check(m, (1, 6, 6))


@pytest.mark.parametrize(
    "fn",
    [
        lambda s, x: torch.relu(s.c3(x).view(1, 2, 21)),
        lambda s, x: s.c3(x).view(1, 2, 21) * 2,
        lambda s, x: s.c3(x).view(1, 2, 21) + s.c3(x).view(1, 2, 21),
        lambda s, x: s.c3(x).flatten(1)[:, :1] + s.c3(x)[..., 1:].flatten(1)[:, :1],
    ],
    ids=["relu", "times a constant", "plus itself", "two picked entries"],
)
def test_an_element_wise_op_on_a_vector_shown_as_a_whole_keeps_it_global(fn):
    # each entry of the flattened map still reads one 3x3 patch; the vector is only shown as
    # the whole map (global, rf (8, 9)). An element-wise op must not make that an exact
    # claim that every entry reads all 8 x 9 pixels (it did: exact)
    o = out(fn)
    assert (o.status, o.size, o.rf) == (GLOBAL, (), (8, 9))
    assert o.note.endswith("the spatial map is flattened, per-position fields end here")


@pytest.mark.parametrize(
    "fn, status, note",
    [
        # two vectors only shown as a whole: each entry still reads one patch
        (
            lambda s, x: s.c3(x).view(1, 2, 21) + s.c3(x).view(1, 2, 21),
            UNKNOWN,
            "sort: no rule for this op",
        ),
        # a vector whose every entry read every position (a Linear over the map) plus a
        # global mean: every entry of the sum read every position too
        (
            lambda s, x: F.linear(s.c3(x).flatten(1), L1) + s.c3(x).mean((2, 3)),
            GLOBAL,
            "linear: mixes every position of the map",
        ),
    ],
    ids=["shown as a whole", "really mixed"],
)
def test_a_sum_of_vectors_is_really_mixed_only_if_an_input_was(fn, status, note):
    o = out(lambda s, x: torch.sort(fn(s, x), -1)[0])
    assert (o.status, o.note) == (status, note)


def test_an_element_wise_op_on_an_unbatched_map_keeps_it():
    # the map viewed as a bare 6 x 7 tensor (its dims are all the tensor has), times 2
    m = model(lambda s, x: s.c3(x).view(6, 7) * 2)
    o = analyze(m, (1, 6, 7)).output
    assert (o.status, o.size, o.rf, o.start) == (EXACT, (6, 7), (3, 3), (0, 0))
    check(m, (1, 6, 7))


def test_pooled_vectors_merge_into_an_exact_vector():
    # a global mean (pixels -1..6 x -1..7) plus a global max of the map cropped to W units
    # 1..6 (pixels -1..6 x 0..7): each is one exact window; their sum reads the union
    o = out(lambda s, x: s.c3(x).mean((2, 3)) + s.c3(x)[..., 1:].amax((2, 3)))
    assert (o.status, o.size, o.rf, o.start) == (EXACT, (), (8, 9), (Fr(5, 2), 3))


@pytest.mark.parametrize(
    "fn",
    [
        lambda u: u * 2,
        lambda u: torch.relu(u) * u,
    ],
    ids=["one window tensor", "two of the same windows"],
)
def test_element_wise_ops_between_unfold_and_fold_keep_the_windows(fn):
    # F.fold with the unfold's own window gives each pixel back its entries: rf 3, start 0
    m = model(refolded(fn))
    o = analyze(m, (1, 6, 7)).output
    assert (o.status, o.size, o.rf, o.start) == (EXACT, (6, 7), (3, 3), (0, 0))
    check(m, (1, 6, 7))


def test_three_maps_added_in_turn_stay_exact():
    # (a + b) + c: the first sum is an exact map again, so the second merge is as the first
    m = model(lambda s, x: s.c3(x) + s.c3(x) + s.c3(x))
    o = analyze(m, (1, 6, 7)).output
    assert (o.status, o.size, o.rf, o.note) == (EXACT, (6, 7), (3, 3), "")
    check(m, (1, 6, 7))


def test_an_op_with_a_rule_after_an_unknown_map_keeps_the_map_size():
    # the conv's rule is not asked about an unknown input: the row is unknown, with the
    # unknown op's reason, but the size of its map is still shown
    o = out(lambda s, x: s.c3(_grid_sampled(s, x)))
    assert (o.status, o.size, o.note) == (UNKNOWN, (6, 7), "grid_sample: no rule for this op")


def test_an_op_a_rule_cannot_describe_keeps_a_map_that_sees_everything():
    # each unit of `gated` reads the whole map (a global mean spread over it, pixels -1..6:
    # rf 8); adding its transpose (dims swapped: the rule gives up) cannot make that less
    # true: global, the size kept, the note of the op that made it global
    def gated(s, x):
        return s.c3(x) * s.c3(x).mean((2, 3), keepdim=True)

    m = model(lambda s, x: gated(s, x) + gated(s, x).transpose(-1, -2))
    o = analyze(m, (1, 6, 6)).output
    assert (o.status, o.size, o.rf) == (GLOBAL, (6, 6), (8, 8))
    assert o.note == "mul: one unit's field is spread over the whole map"
    check(m, (1, 6, 6))


def test_fold_of_a_vector_that_mixed_everything_stays_global():
    # a Linear over the flattened map (every entry read every pixel), viewed as F.fold's
    # columns: F.fold cannot place entries that are no unfold's windows, but every output
    # unit still reads the whole map: global (not exact), with the Linear's note
    w = torch.full((378, 42), 1 / 42, dtype=D)
    o = out(
        lambda s, x: F.fold(F.linear(s.c3(x).flatten(1), w).view(1, 9, 42), (6, 7), 3, padding=1)
    )
    assert (o.status, o.rf, o.note) == (GLOBAL, (8, 9), "linear: mixes every position of the map")


def test_a_one_element_window_list_applies_to_both_axes():
    # avg_pool2d(kernel_size=[3], stride=[2]): torch repeats a one-element list for H and
    # W. Unit o reads conv units 2o..2o+2: pixels 2o-1..2o+3 (rf 5, jump 2, centred on 2o+1)
    m = model(lambda s, x: F.avg_pool2d(s.c3(x), [3], [2]))
    o = analyze(m, (1, 6, 7)).output
    assert (o.size, o.rf, o.jump, o.start) == ((2, 3), (5, 5), (2, 2), (1, 1))
    check(m, (1, 6, 7))


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


def test_a_1d_pool_over_a_2d_map_says_why_it_is_unknown():
    # avg_pool1d of an (N, H, W) map windows W alone and takes H for channels: the rule needs
    # the map's spatial dims to be the op's window dims, and its note says which they are
    o = out(lambda s, x: F.avg_pool1d(s.c3(x)[:, 0], 3))
    assert (o.status, o.size) == (UNKNOWN, (6, 2))
    assert o.note == "avg_pool1d: the op's 1 window dims are not the map's spatial dims (-2, -1)"


def test_a_rule_that_sees_unknown_inputs_says_when_a_weight_from_the_input_is_unknown(
    restore_registry,
):
    # the conv's 3x3 kernel is the mean of a grid-sampled map (no exact field). Registered
    # as usual, the conv is never asked: it is unknown for the grid sample's reason. The
    # same rule registered to see unknown inputs answers for itself: its own map (6x7, the
    # first input's dims) is known, but every unit also reads the kernel, whose field is not
    def fn(s, x):
        return _dynamic_conv(s.c3(x), _grid_sampled(s, x))

    m = model(fn)
    before = analyze(m, (1, 6, 7)).output
    assert before.status == UNKNOWN and not before.note.startswith("conv2d")
    register_rule("conv2d", RULES["conv2d"], unknown_inputs=True)
    o = analyze(m, (1, 6, 7)).output
    assert (o.status, o.size) == (UNKNOWN, (6, 7))
    assert o.note == "conv2d: an argument computed from the input has an unknown field"


def test_a_mix_of_a_map_already_global_keeps_the_note_of_what_made_it_so(restore_registry):
    # a user's rule makes a 1-D map global on its one axis and writes no note; a softmax
    # along that axis then adds nothing, and must not claim to have made the map global
    # (every built-in rule that makes a map global writes a note, so only a rule of one's
    # own shows this)
    def whole(call):
        f = call.first
        return Outcome(Field(tuple(spread(a) for a in f.axes), f.dims, GLOBAL, ""))

    register_rule("special_erf", whole)
    m = Line(lambda y: torch.special.erf(y).softmax(-1))
    erf, soft = analyze(positive(m), (1, 9)).rows[-2:]
    assert (erf.status, erf.note) == (GLOBAL, "")
    assert (soft.op, soft.status, soft.rf, soft.note) == ("softmax", GLOBAL, erf.rf, "")
    # a map not yet global gets the softmax's own note
    fresh = analyze(positive(Line(lambda y: y.softmax(-1))), (1, 9)).output
    assert fresh.note == "softmax: computed along a spatial dim"
