"""The cases issue #10 found silently wrong, each pinned: numbers by hand, units by gradients.

Every model here is linear with positive weights (measure.positive), so the pixels with a
non-zero gradient are exactly the pixels a unit sees; measure.check asserts the contract on
every row (exact rows match every unit, approx rows are never narrower, global axes see the
whole map, unknown rows claim nothing, and what rfcalc says each unit sees is measured).
"""

from fractions import Fraction as Fr

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from measure import check, positive  # tests/rfcalc is on sys.path, as for zoo

from rfcalc import APPROX, EXACT, GLOBAL, UNKNOWN, analyze


class Fn(nn.Module):
    """A model from a function of (self, x), with a few named convolutions to use."""

    def __init__(self, fn, nd: int = 2, c: int = 1):
        super().__init__()
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[nd]
        self.fn = fn
        self.c1 = conv(c, c, 1)
        self.c3 = conv(c, c, 3, padding=1)
        self.c7 = conv(c, c, 7, padding=3)

    def forward(self, x):
        return self.fn(self, x)


def rows(model, shape):
    return {r.name: r for r in analyze(model, shape).rows}


def pos(fn, nd=2, c=1, dtype=torch.float64):
    return positive(Fn(fn, nd, c), dtype)


# ---------------------------------------------------------------- 1, 4: resampling


def test_fractional_scale_factor_is_not_truncated():
    # 1-D, 5 -> floor(5·1.5) = 7 units; torch samples input floor(o / 1.5): 0 0 1 2 2 3 4,
    # so the mean spacing is 2/3 (not 1) and the units differ (approx)
    m = pos(lambda s, x: F.interpolate(x, scale_factor=1.5), nd=1)
    r = rows(m, (1, 5))["interpolate"]
    assert r.size == (7,) and r.jump == (Fr(2, 3),) and r.status == APPROX
    check(m, (1, 5))


def test_upsample_by_two_and_a_half():
    # 4 -> 10: jump 1/2.5 = 2/5 (not 1/2); o reads floor(o·0.4): 0 0 0 1 1 2 2 2 3 3
    m = positive(nn.Sequential(nn.Conv1d(1, 1, 1), nn.Upsample(scale_factor=2.5)))
    r = rows(m, (1, 4))["1"]
    assert r.jump == (Fr(2, 5),) and r.size == (10,) and r.status == APPROX
    result = check(m, (1, 4))
    f, units = result["1"]
    assert [units[(o,)][0] for o in range(10)] == [(i, i) for i in (0, 0, 0, 1, 1, 2, 2, 2, 3, 3)]


def test_nearest_index_follows_torchs_float_arithmetic():
    # 6 -> 13 with scale_factor 2.2: unit 11 reads floor(11 · float32(1/2.2)) = floor(5.0000001)
    # = 5, where exact rationals of the double 2.2 say floor(4.99999...) = 4
    assert np.floor(np.float32(11) * np.float32(1 / 2.2)) == 5
    m = pos(lambda s, x: F.interpolate(x, scale_factor=2.2), nd=1, dtype=torch.float32)
    result = check(m, (1, 6), dtype=torch.float32)
    f, units = result["interpolate"]
    assert units[(11,)] == ((5, 5),) and f.axes[0].sees(11) == (5, 5)


def test_bilinear_and_nearest_exact_units_match_gradients():
    for kw in (
        dict(mode="bilinear", align_corners=False),
        dict(mode="bilinear", align_corners=True),
        dict(mode="nearest-exact"),
        dict(mode="bicubic"),
    ):
        for sf in (1.5, 2.5, 0.6):
            m = pos(lambda s, x, kw=kw, sf=sf: F.interpolate(s.c3(x), scale_factor=sf, **kw))
            check(m, (1, 7, 9))


def test_recompute_scale_factor_uses_the_size_ratio():
    # recompute: out = floor(7·1.5) = 10 and the kernel uses 7/10 per unit, not 1/1.5
    m = pos(lambda s, x: F.interpolate(x, scale_factor=1.5, recompute_scale_factor=True), nd=1)
    assert rows(m, (1, 7))["interpolate"].jump == (Fr(7, 10),)
    check(m, (1, 7))


# ---------------------------------------------------------------- 2: padding modes


def test_reflect_padding_reaches_mirrored_pixels():
    # pad 3 (reflect) then k3 unpadded, 8 pixels: unit 0 reads padded 0..2 = pixels 3, 2, 1:
    # it sees 1..3, where zero padding would see nothing at all
    m = pos(
        lambda s, x: F.conv1d(F.pad(x, (3, 3), mode="reflect"), torch.ones(1, 1, 3, dtype=x.dtype)),
        nd=1,
    )
    r = rows(m, (1, 8))
    assert r["conv1d"].status == APPROX and "reflect" in r["conv1d"].note
    result = check(m, (1, 8))
    assert result["conv1d"][1][(0,)] == ((1, 3),)


def test_circular_padding_reaches_the_other_side():
    # circular pad 2 then k5: unit 0 reads pixels 6, 7, 0, 1, 2: the whole 8 (rf >= 8)
    m = pos(
        lambda s, x: F.conv1d(
            F.pad(x, (2, 2), mode="circular"), torch.ones(1, 1, 5, dtype=x.dtype)
        ),
        nd=1,
    )
    r = rows(m, (1, 8))["conv1d"]
    assert r.status == APPROX and r.rf == (8,)
    check(m, (1, 8))


def test_conv_padding_modes():
    # k3 with padding 2: unit 0 reads positions -2, -1, 0. Reflect: pixels 2, 1, 0 (0..2, the
    # classic field clipped is 0..0); circular: 5, 6, 0 (0..6); replicate: 0, 0, 0 (0..0, the
    # classic field clipped: replicate never reaches past it here, so it may stay exact)
    for mode, seen in (("reflect", (0, 2)), ("replicate", (0, 0)), ("circular", (0, 6))):
        m = positive(
            nn.Sequential(
                nn.Conv2d(1, 1, 3, padding=2, padding_mode=mode),
                nn.Conv2d(1, 1, 3, padding=1, padding_mode=mode),
            )
        )
        r = rows(m, (1, 7, 7))
        assert r["0"].padding == (2, 2) and r["0"].kernel == (3, 3)
        assert (r["0"].status == EXACT) == (mode == "replicate"), mode
        result = check(m, (1, 7, 7))
        assert result["0"][1][(0, 0)] == (seen, seen)


# ---------------------------------------------------------------- 3: one-axis mixing


def test_softmax_along_w_is_global_along_w_only():
    # conv 3x3 p1 on 6x10: rf 3; softmax over W: every unit sees the whole W (the collapse of
    # 10 units of rf 3: 3 + 9 = 12), H stays 3
    m = pos(lambda s, x: torch.softmax(s.c3(x), dim=-1))
    r = rows(m, (1, 6, 10))["softmax"]
    assert r.status == GLOBAL and r.axis_status == (EXACT, GLOBAL) and r.rf == (3, 12)
    assert "global along W" in r.note and r.note.startswith("softmax")
    # global along W only: the output does not cover the 6 rows of the input
    assert not analyze(m, (1, 6, 10)).covers_input


def test_one_axis_statistics_and_token_mixing():
    cases = {
        "mean": lambda s, x: s.c3(x) * s.c3(x).mean(-1, keepdim=True),
        "amax": lambda s, x: s.c3(x) + s.c3(x).amax(-2, keepdim=True),
        "unsqueeze": lambda s, x: s.c3(x) * s.c3(x).sum(-1).unsqueeze(-1),
        "linear": lambda s, x: F.linear(s.c3(x), torch.ones(10, 10, dtype=x.dtype)),
        "einsum": lambda s, x: torch.einsum(
            "nchw,wv->nchv", s.c3(x), torch.ones(10, 10, dtype=x.dtype)
        ),
        "matmul": lambda s, x: s.c3(x) @ torch.ones(10, 10, dtype=x.dtype),
        "layer_norm": lambda s, x: F.layer_norm(s.c3(x), (10,)),
    }
    for name, fn in cases.items():
        m = pos(fn)
        out = analyze(m, (1, 6, 10)).output
        along = (GLOBAL, EXACT) if name == "amax" else (EXACT, GLOBAL)
        assert out.axis_status == along, name
        # the whole axis: 10 units of rf 3 along W (3 + 9), 6 along H (3 + 5)
        assert out.rf == ((8, 3) if name == "amax" else (3, 12)), name
        if name != "layer_norm":  # normalising: the summed gradient can cancel
            check(m, (1, 6, 10))


def test_flatten_and_view_back_restores_the_map():
    # conv3 -> flatten(2) -> view back -> conv3: rf 3 + 2 = 5, exact
    m = pos(lambda s, x: s.c3(s.c3(x).flatten(2).view(1, 1, 6, 8)))
    a = analyze(m, (1, 6, 8))
    assert a.output.status == EXACT and a.output.rf == (5, 5)
    check(m, (1, 6, 8))


# ---------------------------------------------------------------- 5: unseen writes


def test_slice_assignment_is_not_rf_1():
    def fn(s, x):
        y = s.c1(x)
        y[..., 4:-4, 4:-4] = s.c7(x)[..., 4:-4, 4:-4]
        return s.c1(y)

    a = analyze(Fn(fn), (1, 16, 16))
    assert a.output.status == UNKNOWN and "in place" in a.output.note


def test_in_place_add_through_a_view():
    # y.view(...).add_(conv7(x)) changes y: 1x1 ∪ 7x7 = 7, then a 1x1: still 7
    def fn(s, x):
        y = s.c1(x)
        y.view(y.shape).add_(s.c7(x))
        return s.c1(y)

    m = pos(fn)
    assert analyze(m, (1, 12, 12)).output.rf == (7, 7)
    check(m, (1, 12, 12))


def test_values_that_leave_torch_and_come_back():
    def fn(s, x):
        return s.c1(x) + torch.from_numpy(s.c7(x).detach().numpy())

    a = analyze(Fn(fn), (1, 12, 12))
    assert a.output.status == UNKNOWN and "no recorded producer" in a.output.note


def test_a_filter_computed_from_the_input_is_global():
    # the 5x5 weight is the mean of the whole map: every unit sees every pixel
    def fn(s, x):
        w = s.c3(x).mean((2, 3)).view(1, 1, 1, 1).expand(1, 1, 5, 5)
        return F.conv2d(x, w, padding=2)

    m = pos(fn)
    out = analyze(m, (1, 9, 9)).output
    assert out.status == GLOBAL and out.axis_status == (GLOBAL, GLOBAL)
    check(m, (1, 9, 9))


# ---------------------------------------------------------------- 6: crops


def test_a_crop_never_claims_cut_pixels():
    # conv3 p1 on 10, crop [3:-3] keeps units 3..6 (pixels 2..7); conv3 p1 again: unit 0 reads
    # cropped units 0, 1 (its left neighbour was cut away): pixels 2..5, not the classic 1..5
    m = pos(lambda s, x: s.c3(s.c3(x)[..., 3:-3]), nd=1)
    r = rows(m, (1, 10))
    assert r["c3_1"].status == APPROX
    result = check(m, (1, 10))
    f, units = result["c3_1"]
    assert units[(0,)] == ((2, 5),) and f.axes[0].unit(0) == (2, 5)
    # negative padding crops the same way
    m = pos(lambda s, x: s.c3(F.pad(s.c3(x), (-3, -3))), nd=1)
    check(m, (1, 10))


def test_ceil_mode_window_larger_than_the_map():
    # found by the property test: avg_pool k2 s2 ceil_mode on 1 unit is one window hanging
    # over the end (torch: (1 - 1 - 1 + 1) // 2 + 1 = 1 unit), not an error
    from rfcalc.geometry import window_size

    assert window_size(1, 2, 2, 0, 0, ceil_mode=True) == 1
    m = positive(nn.Sequential(nn.Conv1d(1, 1, 3), nn.AvgPool1d(2, 2, ceil_mode=True)))
    assert rows(m, (1, 3))["1"].size == (1,)
    check(m, (1, 3))


def test_rfcalcs_own_reads_make_no_rows():
    # the recorder looks at views (_base) and version counters: never as rows of the model
    m = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Linear(6, 6), nn.ReLU(inplace=True))
    a = analyze(m, (1, 5, 6))
    assert [r.op for r in a.rows] == ["Conv2d", "Linear", "ReLU"]
    assert a.output.axis_status == (EXACT, GLOBAL) and not a.unruled
