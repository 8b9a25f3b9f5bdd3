"""verify(): the gradient measurement itself, and that it can tell a wrong theory apart."""

import torch
import torch.nn as nn
import zoo  # tests/rfcalc is on sys.path (pytest rootdir-less test folders)

from rfcalc import analyze, gradient_map, rules, verify
from rfcalc.rules import Outcome


def test_spans_of_a_plain_stack():
    result = verify(zoo.Dilated(), (3, 32, 32))
    c = result["convs.2"]
    # rf 15 with start 7 on an 18-wide map: centre unit 8 at 7 + 8 = 15, field 15 ± 7 = 8..22
    assert c.centre == (8, 8) and c.theory_rf == (15, 15)
    assert c.theory_span == c.measured_span == ((8, 22), (8, 22))
    assert c.measured_rf == (15, 15) and c.agree


def test_clipped_fields_compare_inside_the_image():
    result = verify(zoo.s9_net(), (3, 32, 32), unique=False)
    c = result["t4.conv"]
    # rf 47 centred at 15 (unit 0 of 2): -8..38, clipped to the 32-pixel image: 0..31
    assert c.theory_rf == (47, 47) and c.centre == (0, 0)
    assert c.theory_span == c.measured_span == ((0, 31), (0, 31))
    assert c.theory_clipped_rf == (32, 32)
    assert result.agree and len(result.checks) == len(analyze(zoo.s9_net(), (3, 32, 32)).rows)


def test_a_wrong_rule_is_caught(monkeypatch):
    real = rules.RULES["conv2d"]

    def forgets_the_kernel(call):
        outcome = real(call)
        return Outcome(call.first, outcome.window)

    monkeypatch.setitem(rules.RULES, "conv2d", forgets_the_kernel)
    result = verify(zoo.VGGStack(), (3, 32, 32), unique=False)
    # the claimed rf 1 of features.0 cannot hide the 3x3 window from the gradient
    assert not result.agree
    c = result["features.0"]
    assert c.theory_span == ((15, 15), (15, 15)) and c.measured_span == ((14, 16), (14, 16))


def test_dead_relus_and_max_pools_do_not_hide_pixels():
    class Dead(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3, padding=1)
            self.pool = nn.MaxPool2d(3, 2, 1)

        def forward(self, x):
            # a ReLU that is zero everywhere (no gradient in the real model), then a max-pool
            return self.pool(torch.relu(self.conv(x) - 1e6))

    result = verify(Dead(), (3, 16, 16))
    # conv rf 3; pool k3 s2 p1: rf 3 + 2 = 5, jump 2, (16 + 2 - 3)//2 + 1 = 8 units;
    # centre unit 3 at 3·2 = 6: 6 ± 2 = 4..8
    assert result["pool"].measured_span == ((4, 8), (4, 8)) and result.agree


def test_the_model_is_left_untouched():
    model = zoo.ResNetStrided().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    verify(model, (3, 16, 16))
    assert model.training and model.stem.weight.dtype == torch.float32
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_unknown_rows_are_not_measured():
    result = verify(zoo.CustomOps("rot90"), (3, 16, 16))
    assert result["rot90"].agree is None and result["rot90"].measured_span is None
    assert result["after"].agree is None and result.agree


def test_rows_filter_and_unique_measurement():
    full = verify(zoo.MobileBlock(), (3, 32, 32), unique=False)
    some = verify(zoo.MobileBlock(), (3, 32, 32), rows=["dw2"], unique=False)
    assert [c.name for c in some.checks] == ["dw2"]
    assert some["dw2"] == full["dw2"]
    fast = verify(zoo.MobileBlock(), (3, 32, 32))
    # relu6 after the stem has the stem's field: measured once, reported for both
    assert fast["relu6"].note.startswith("same field as stem")
    assert [c.measured_span for c in fast.checks] == [c.measured_span for c in full.checks]


def test_rows_missing_from_the_analysis_are_noted():
    model = zoo.Branchy()
    analysis = analyze(model, (3, 32, 32))
    fake = type(analysis)(
        analysis.input_shape,
        (
            *analysis.rows,
            analysis.rows[0].__class__(
                "ghost", "Conv2d", None, None, None, None, (), (), (), (), 0
            ),
        ),
        analysis.output,
        analysis.params,
    )
    result = verify(model, (3, 32, 32), fake)
    assert any("ghost" in n for n in result.notes)


def test_gradient_map_shows_the_gridding_of_dilated_convs():
    net = nn.Sequential(nn.Conv2d(1, 1, 3, dilation=2), nn.Conv2d(1, 1, 3, dilation=2))
    # one 3x3 conv of dilation 2: the centre unit (2, 2) of the 5x5 map sees input pixels
    # 2 + {0, 2, 4} on each axis: 9 pixels, every other one
    one = gradient_map(net[0], (1, 9, 9), unit=(2, 2))
    assert torch.equal(
        torch.nonzero(one).T, torch.tensor([[2] * 3 + [4] * 3 + [6] * 3, [2, 4, 6] * 3])
    )
    # two of them: offsets {0, 2, 4} + {0, 2, 4} = {0, 2, 4, 6, 8}: 25 of the 81 pixels, the
    # centre reached by 3·3 = 9 paths (per axis: 0+4, 2+2, 4+0) and a corner by one
    both = gradient_map(net, (1, 9, 9))
    assert (both != 0).sum() == 25 and (both[1::2] == 0).all() and (both[:, 1::2] == 0).all()
    assert both[4, 4] / both[0, 0] == 9


def test_gradient_map_errors():
    import pytest

    from rfcalc import RFError

    with pytest.raises(RFError, match="no row named 'nope'"):
        gradient_map(zoo.Dilated(), (3, 32, 32), row="nope")
    with pytest.raises(RFError, match="outside the"):
        gradient_map(nn.Conv2d(1, 1, 3), (1, 9, 9), unit=(7, 0))


class Shapes(nn.Module):
    """Convolutions of every kind the channel-summed run replaces, plus a linear layer."""

    def __init__(self):
        super().__init__()
        self.grouped = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
        self.dilated = nn.Conv2d(6, 6, 3, dilation=2, padding=2, groups=6)
        self.same = nn.Conv2d(6, 4, 4, padding="same")
        self.up = nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1)
        self.line = nn.Conv1d(4, 2, 5, stride=3, dilation=2)
        self.fc = nn.Linear(2 * 19, 3)

    def forward(self, x):
        y = self.up(self.same(self.dilated(self.grouped(torch.cat([x, x * 2], 1)))))
        z = self.line(y.flatten(2)[..., :64])  # (N, 2, 19)
        return self.fc(z.flatten(1)), y


def test_channel_summed_run_gives_the_same_values_and_gradients():
    from rfcalc.record import record
    from rfcalc.verify import LINEARISE, channel_summed, linearised

    lin = linearised(Shapes())
    results = []
    for subs in (LINEARISE, {**LINEARISE, **channel_summed(lin)}):
        probe = torch.rand(
            1, 2, 11, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
        ).requires_grad_(True)
        with torch.enable_grad():
            (out, y) = record(lin, probe, substitute=subs).result
            grads = [
                torch.autograd.grad(t.sum(), probe, retain_graph=True)[0]
                for t in (out, y[..., 3, 5], y[..., 7:, :2])
            ]
        results.append((out, y, grads))
    (out_a, y_a, g_a), (out_b, y_b, g_b) = results
    assert torch.allclose(out_a, out_b) and torch.allclose(y_a, y_b)
    for a, b in zip(g_a, g_b):
        assert torch.allclose(a, b) and torch.equal(a != 0, b != 0)


def test_a_filter_computed_from_the_input_is_not_summed():
    class Dynamic(nn.Module):
        def forward(self, x):
            weight = x.mean((0, 2, 3)).view(1, -1, 1, 1).expand(2, -1, 3, 3).contiguous()
            return nn.functional.conv2d(x, weight)

    # the weight depends on every pixel: the row's unit sees the whole 9x9 image
    result = verify(Dynamic(), (2, 9, 9), unique=False)
    assert result["dynamic"].measured_span == ((0, 8), (0, 8))


def test_a_slice_assignment_after_the_row_is_measured_on_the_returned_tensor():
    class Overwrite(nn.Module):
        def __init__(self):
            super().__init__()
            self.one = nn.Conv2d(3, 2, 1)
            self.seven = nn.Conv2d(3, 2, 7, padding=3)

        def forward(self, x):
            y = self.one(x)
            y[..., 4:-4, 4:-4] = self.seven(x)[..., 4:-4, 4:-4]
            return y

    model = Overwrite()
    result = verify(model, (3, 16, 16))
    claim = analyze(model, (3, 16, 16)).output
    # the centre unit 7 of the returned map is inside the overwritten square: a 7x7 window,
    # 7 - 3 .. 7 + 3 = 4..10, whatever the analysis claims
    if claim.status != "unknown":
        output = result["output"]
        assert output.measured_span == ((4, 10), (4, 10))
        assert output.agree == (output.theory_span == ((4, 10), (4, 10)))
        assert result.agree == output.agree
    assert not (result.agree and claim.rf == (1, 1))  # never "ok" for the 1x1 claim


def test_values_that_leave_torch_are_flagged_not_passed():
    import numpy as np

    class RoundTrip(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 2, 3, padding=1)
            self.branch = nn.Conv2d(2, 2, 5, padding=2)
            self.head = nn.Conv2d(2, 2, 3, padding=1)

        def forward(self, x):
            x = self.stem(x)
            back = torch.from_numpy(np.ascontiguousarray(self.branch(x).detach().numpy()))
            return self.head(x + back)

    result = verify(RoundTrip(), (3, 16, 16))
    assert result["stem"].agree and result["branch"].agree  # before the values left
    assert result["head"].agree is None and "left torch" in result["head"].note
    assert any("`numpy` at" in n for n in result.notes)


def test_progress_bar_on_stderr_only_when_asked(capsys):
    verify(zoo.Dilated(), (3, 32, 32), progress=True)
    assert "verify" in capsys.readouterr().err
    verify(zoo.Dilated(), (3, 32, 32))  # stderr is not a terminal under pytest
    assert capsys.readouterr().err == ""
