"""The rule catalogue: ops supported since issue #10 (measured unit by unit), the public way
to add a rule, and the table's word on ops that have none."""

from fractions import Fraction as Fr

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from measure import check, positive  # tests/rfcalc is on sys.path, as for zoo

import rfcalc
from rfcalc import EXACT, GLOBAL, UNKNOWN, analyze
from rfcalc.geometry import NotGeometric, Window
from rfcalc.rules import RULES, Outcome
from rfcalc.rules.dispatch import with_axes


class Fn(nn.Module):
    def __init__(self, fn, nd: int = 2, c: int = 1):
        super().__init__()
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[nd]
        self.fn = fn
        self.c3 = conv(c, c, 3, padding=1)
        self.c4 = conv(c, 4 * c, 3, padding=1)

    def forward(self, x):
        return self.fn(self, x)


def pos(fn, nd=2, c=1):
    return positive(Fn(fn, nd, c))


def test_pixel_shuffle_and_unshuffle():
    # shuffle r=2: output o reads input o // 2: units 2m, 2m+1 see what unit m saw (rf 3)
    m = pos(lambda s, x: F.pixel_shuffle(s.c4(x), 2))
    out = analyze(m, (1, 5, 6)).output
    assert out.size == (10, 12) and out.jump == (Fr(1, 2), Fr(1, 2)) and out.rf == (3, 3)
    check(m, (1, 5, 6))
    # unshuffle r=2 after a conv3: a k2 s2 window, rf 3 + 1 = 4, jump 2, exact
    m = positive(
        nn.Sequential(
            nn.Conv2d(1, 1, 3, padding=1),
            nn.PixelUnshuffle(2),
            nn.Conv2d(4, 4, 1),
            nn.PixelShuffle(2),
        )
    )
    r = {r.name: r for r in analyze(m, (1, 6, 8)).rows}
    assert r["1"].rf == (4, 4) and r["1"].jump == (2, 2) and r["1"].status == EXACT
    check(m, (1, 6, 8))


def test_spatial_transpose_moves_the_field():
    # a 1x3 conv, then H and W swapped, then a 1x3 conv again: the second widens the old H
    m = positive(Fn(lambda s, x: s.w(s.w(x).transpose(-1, -2))))
    m.w = nn.Conv2d(1, 1, (1, 3), padding=(0, 1)).double()
    positive(m)
    a = analyze(m, (1, 5, 7))
    assert a.output.rf == (3, 3) and a.output.size == (5, 7) and a.output.status == EXACT
    check(m, (1, 5, 7))
    m2 = pos(lambda s, x: s.c3(s.c3(x).permute(0, 1, 3, 2)).permute(0, 1, 3, 2))
    assert analyze(m2, (1, 5, 7)).output.rf == (5, 5)
    check(m2, (1, 5, 7))


def test_flip_and_roll():
    for fn in (
        lambda s, x: s.c3(s.c3(x).flip(-1)),
        lambda s, x: s.c3(x) + s.c3(x).flip(-2, -1),
        lambda s, x: s.c3(torch.roll(s.c3(x), 2, dims=-1)),
        lambda s, x: s.c3(torch.roll(s.c3(x), (1, -2), dims=(-2, -1))),
    ):
        m = pos(fn)
        assert analyze(m, (1, 6, 7)).output.status != UNKNOWN
        check(m, (1, 6, 7))
    # rolled by 2 then a conv3: unit 0 reads rolled units -1 (padding), 0, 1 = units 5, 6 of
    # the first conv (W = 7), which see pixels 4..6
    result = check(pos(lambda s, x: s.c3(torch.roll(s.c3(x), 2, dims=-1))), (1, 6, 7))
    assert result["c3_1"][1][(2, 0)] == ((0, 4), (4, 6))


def test_unfold_is_a_sliding_window():
    # Tensor.unfold(-1, 3, 2): windows of 3 every 2 along W, summed over the window dim: a k3
    # s2 window: rf 3 + 2 = 5 after the conv3, jump 2
    m = pos(lambda s, x: s.c3(x).unfold(-1, 3, 2).sum(-1))
    out = analyze(m, (1, 6, 9)).output
    assert out.rf == (3, 5) and out.jump == (1, 2) and out.size == (6, 4)
    check(m, (1, 6, 9))
    # F.unfold then F.fold with the same window: each pixel gets its own values back (times
    # the number of windows holding it): the conv3's field, 3
    m = pos(lambda s, x: F.fold(2 * F.unfold(s.c3(x), 3, padding=1), (6, 9), 3, padding=1))
    out = analyze(m, (1, 6, 9)).output
    assert out.status == EXACT and out.rf == (3, 3)
    check(m, (1, 6, 9))
    # a convolution in disguise: weight @ F.unfold(x), viewed back as the map: conv3 then a
    # k3 window with padding 1: rf 5; F.fold after the weight: a k3 transposed window, 7
    w = torch.ones(1, 9, dtype=torch.float64)
    m = pos(lambda s, x: (w @ F.unfold(s.c3(x), 3, padding=1)).view(1, 1, 6, 9))
    out = analyze(m, (1, 6, 9)).output
    assert out.status == EXACT and out.rf == (5, 5)
    check(m, (1, 6, 9))
    m = pos(lambda s, x: F.fold(w.T @ (w @ F.unfold(s.c3(x), 3, padding=1)), (6, 9), 3, padding=1))
    # w.T @ (w @ cols) is no longer a layout F.fold can read: nothing is claimed
    assert analyze(m, (1, 6, 9)).output.status == UNKNOWN


def test_functional_and_torch_batch_norm_read_their_own_arguments():
    x = torch.randn(1, 2, 5, 5)
    rm, rv = torch.zeros(2), torch.ones(2)
    fn = lambda s, x: F.batch_norm(s.c3(x), rm, rv, training=False)  # noqa: E731

    def tn(s, x):
        return torch.batch_norm(
            s.c3(x),
            None,
            None,
            rm,
            rv,
            False,
            0.1,
            1e-5,  # noqa
            False,
        )

    for f in (fn, tn):
        assert analyze(Fn(f, c=2), (2, 5, 5)).output.status == EXACT

    def tn_batch(s, x):
        return torch.batch_norm(
            s.c3(x),
            None,
            None,
            None,
            None,
            True,
            0.1,  # noqa
            1e-5,
            False,
        )

    assert analyze(Fn(tn_batch, c=2), (2, 5, 5)).output.status == GLOBAL
    _ = x


def test_unfold_keys_do_not_collide():
    assert "F.unfold" in RULES and "Tensor.unfold" in RULES and "F.fold" in RULES
    assert RULES["F.unfold"] is not RULES["Tensor.unfold"]
    assert "torch.batch_norm" in RULES and RULES["torch.batch_norm"] is not RULES["batch_norm"]


def test_supported_ops_lists_the_catalogue():
    ops = rfcalc.supported_ops()
    assert ops == sorted(ops)
    for op in (
        "conv2d",
        "max_pool2d",
        "interpolate",
        "pixel_shuffle",
        "flip",
        "roll",
        "pad",
        "softmax",
        "einsum",
        "F.unfold",
        "Tensor.unfold",
        "getitem",
    ):
        assert op in ops
    assert "grid_sample" not in ops


def test_the_summary_names_the_ops_without_a_rule():
    grid = torch.zeros(1, 4, 4, 2)
    m = Fn(
        lambda s, x: (
            F.grid_sample(s.c3(x), grid, align_corners=False)
            + F.grid_sample(x, grid, align_corners=False)
        )
    )
    a = analyze(m, (1, 6, 6))
    assert a.unruled == {"grid_sample": 2}
    assert "no rule for: grid_sample ×2 (rfcalc.register_rule adds one)" in a.notes
    from rfcalc.render import render

    assert "no rule for: grid_sample ×2" in render(a, "text")


@pytest.fixture
def restore_rules():
    saved = dict(RULES)
    yield
    RULES.clear()
    RULES.update(saved)


def test_register_rule_for_an_op_without_one(restore_rules):
    grid = torch.zeros(1, 4, 4, 2)
    m = Fn(lambda s, x: F.grid_sample(s.c3(x), grid, align_corners=False))

    def warp(call):
        """grid_sample may read any position: global along every axis (the grid is constant)."""
        return Outcome(
            rfcalc.rules.dispatch.mixed(
                with_axes(call.first, call.first.axes), "grid_sample: reads anywhere", None
            )
        )

    with pytest.raises(ValueError):
        rfcalc.register_rule("conv2d", warp, replace=False)
    rfcalc.register_rule(F.grid_sample, warp)
    assert "grid_sample" in rfcalc.supported_ops()
    # the rule's field is spread over the input map (6 units), then resized by grid_sample to
    # 4x4: the recorder checks the rule's sizes against the output and says unknown if wrong
    out = analyze(m, (1, 6, 6)).output
    assert out.status == UNKNOWN and "disagrees" in out.note

    def warp_sized(call):
        f = call.first
        n = tuple(call.out_tensor.shape[-2:])
        axes = tuple(
            rfcalc.geometry.broadcast(rfcalc.geometry.collapse(a), k) for a, k in zip(f.axes, n)
        )
        return Outcome(with_axes(f, axes))

    rfcalc.register_rule("grid_sample", warp_sized)
    out = analyze(m, (1, 6, 6)).output
    assert out.status == GLOBAL and out.rf == (8, 8) and out.size == (4, 4)


def test_register_rule_for_a_custom_op(restore_rules):
    @torch.library.custom_op("rfcalc_test::blur", mutates_args=())
    def blur(x: torch.Tensor, k: int) -> torch.Tensor:
        return F.avg_pool2d(x, k, 1, k // 2)

    m = Fn(lambda s, x: blur(s.c3(x), 5))
    out = analyze(m, (1, 12, 12)).output
    assert out.status == UNKNOWN and out.note == "blur: no rule for this op"

    def box(call):
        k = call.arg(1, "k")
        axes = tuple(rfcalc.geometry.window(a, k, 1, k // 2) for a in call.first.axes)
        return Outcome(with_axes(call.first, axes), Window((k, k), (1, 1), (2, 2), (1, 1)))

    rfcalc.register_rule(blur, box)
    out = analyze(m, (1, 12, 12)).output
    # conv3 then a 5x5 window: 3 + 4 = 7, exact; the row shows the window
    assert out.status == EXACT and out.rf == (7, 7) and out.kernel == (5, 5)


def test_a_rule_that_gives_up_makes_the_row_unknown(restore_rules):
    def refuses(call):
        raise NotGeometric("not today")

    rfcalc.register_rule("pixel_shuffle", refuses)
    out = analyze(Fn(lambda s, x: F.pixel_shuffle(s.c4(x), 2)), (1, 4, 4)).output
    assert out.status == UNKNOWN and out.note == "pixel_shuffle: not today"
    _ = Window
