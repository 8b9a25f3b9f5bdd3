"""analyze() on whole models: expected fields worked out by hand with the classic arithmetic

    r_out = r_in + (k-1)·d·j_in,  j_out = j_in·s,  start_out = start_in + ((k-1)/2·d - p)·j_in

and every model also checked against the gradient measurement of verify()."""

from fractions import Fraction as Fr

import pytest
import torch
import torch.nn as nn
import zoo  # tests/rfcalc is on sys.path (pytest rootdir-less test folders)

from rfcalc import APPROX, EXACT, GLOBAL, UNKNOWN, RFError, analyze, verify


def rows(analysis):
    return {r.name: r for r in analysis.rows}


def field(row):
    """(size, jump, rf, start) of a row with square/equal axes, as plain numbers."""
    assert len(set(row.rf)) == 1, row
    return (row.size[0] if row.size else None, row.jump[0], row.rf[0], row.start[0])


def assert_verified(model, shape):
    result = verify(model, shape, unique=False)  # every row measured, none trusted
    assert result.agree, [c for c in result.checks if c.agree is False]
    return result


def test_s9_net():
    net = zoo.s9_net()
    a = analyze(net, (3, 32, 32))
    r = rows(a)
    # every conv is stride 1, so the jump stays 1; transitions k3 with no padding:
    #   c1: 3x3 p1 (rf 3), dws 3x3 p1 (rf 5)                  size 32
    #   t1: d1 -> rf 5 + 2 = 7,                                size 32 - 2 = 30
    #   c2: two dws -> 9, 11;     t2: d2 -> 11 + 4 = 15,       size 30 - 4 = 26
    #   c3: 17, 19;               t3: d4 -> 19 + 8 = 27,       size 26 - 8 = 18
    #   c4: 29, 31;               t4: d8 -> 31 + 16 = 47,      size 18 - 16 = 2
    #   gap: a 2x2 window on jump 1 -> 47 + 1 = 48
    expected = {
        "c1.0.conv": (32, 3),
        "c1.1.add": (32, 5),
        "t1.conv": (30, 7),
        "c2.1.add": (30, 11),
        "t2.conv": (26, 15),
        "c3.1.add": (26, 19),
        "t3.conv": (18, 27),
        "c4.1.add": (18, 31),
        "t4.conv": (2, 47),
        "gap": (1, 48),
    }
    for name, (size, rf) in expected.items():
        assert r[name].size == (size, size) and r[name].rf == (rf, rf), name
        # the 2x2 gap is a window of stride 2: its jump is 1·2
        assert r[name].jump == ((2, 2) if name == "gap" else (1, 1))
        assert r[name].status == EXACT
    # start: padded convs keep it, each unpadded transition adds (k-1)/2·d = d: 1+2+4+8 = 15,
    # and the 2x2 gap adds 1/2
    assert r["t4.conv"].start == (15, 15)
    assert r["gap"].start == (Fr(31, 2),) * 2
    assert a.output.rf == (48, 48) and a.output.size == ()
    assert a.covers_input
    # parameters: each row its own; 190,509 in total (the docstring of examples/s9_net.py)
    assert a.params == 190_509 == sum(row.params for row in a.rows)
    # c1.0.conv: 3·23·9, no bias = 621; depthwise 3x3 with bias on 23 channels = 23·9 + 23 = 230
    assert r["c1.0.conv"].params == 621 and r["c1.1.conv.0"].params == 230
    assert r["c1.1.conv.0"].op == "Conv2d" and r["c1.0.relu"].op == "relu"
    assert_verified(net, (3, 32, 32))


def test_vgg_stack():
    a = analyze(zoo.VGGStack(), (3, 32, 32))
    r = rows(a)
    # conv3 p1: 3, 5; pool2: 5 + 1 = 6 (jump 2, start 0 + 1/2); conv3: 6 + 2·2 = 10, 14;
    # pool2: 14 + 1·2 = 16 (jump 4, start 1/2 + (1/2)·2 = 3/2)
    assert field(r["features.0"]) == (32, 1, 3, 0)
    assert field(r["features.2"]) == (32, 1, 5, 0)
    assert field(r["features.4"]) == (16, 2, 6, Fr(1, 2))
    assert field(r["features.7"]) == (16, 2, 14, Fr(1, 2))
    assert field(r["features.9"]) == (8, 4, 16, Fr(3, 2))
    assert r["features.4"].kernel == (2, 2) and r["features.4"].stride == (2, 2)
    assert_verified(zoo.VGGStack(), (3, 32, 32))


def test_resnet_block_with_strided_shortcut():
    r = rows(analyze(zoo.ResNetStrided(), (3, 32, 32)))
    # stem 3x3: rf 3. main: 3x3 s2 p1 -> 3 + 2 = 5, jump 2, start 0 + (1 - 1) = 0, size 16;
    # 3x3 p1 -> 5 + 2·2 = 9. shortcut 1x1 s2 -> rf 3, jump 2, start 0.
    assert field(r["conv1"]) == (16, 2, 5, 0)
    assert field(r["conv2"]) == (16, 2, 9, 0)
    assert field(r["shortcut"]) == (16, 2, 3, 0)
    # the sum sees the union of both branches: centred alike, so the wider one: 9
    assert field(r["add"]) == (16, 2, 9, 0)
    assert r["shortcut"].params == 4 * 4 + 4
    assert_verified(zoo.ResNetStrided(), (3, 32, 32))


def test_rows_record_the_data_flow():
    r = rows(analyze(zoo.ResNetStrided(), (3, 32, 32)))
    # forward: stem(x) -> relu -> conv1 -> bn1 -> relu -> conv2; shortcut(relu(stem)); add; relu
    assert r["stem"].inputs == ("input",)
    assert r["conv1"].inputs == ("relu",)
    assert r["shortcut"].inputs == ("relu",)
    assert r["add"].inputs == ("conv2", "shortcut")
    assert r["relu_2"].inputs == ("add",)


def test_inception_block_with_asymmetric_kernels():
    r = rows(analyze(zoo.Inception(), (3, 32, 32)))
    # stem rf 3. 1x7 (pad 0,3): H stays 3, W 3 + 6 = 9; then 7x1: H 9
    assert r["b7a"].rf == (3, 9) and r["b7a"].kernel == (1, 7) and r["b7a"].padding == (0, 3)
    assert r["b7b"].rf == (9, 9)
    # 3x3-3x3: 5, 7; pool 3x3: 5. All centred (start 0): the concatenation sees the widest, 9
    assert r["b3b"].rf == (7, 7) and r["bp"].rf == (5, 5)
    assert field(r["cat"]) == (32, 1, 9, 0)
    assert_verified(zoo.Inception(), (3, 32, 32))


def test_dense_block():
    r = rows(analyze(zoo.DenseBlock(), (3, 32, 32)))
    # stem 3; d1 5; cat(stem, d1) 5; d2 7; cat 7; 1x1 7; avg pool 2: 7 + 1 = 8, jump 2, start 1/2
    assert r["cat"].rf == (5, 5) and r["cat_1"].rf == (7, 7)
    assert field(r["pool"]) == (16, 2, 8, Fr(1, 2))
    assert_verified(zoo.DenseBlock(), (3, 32, 32))


def test_mobilenet_block():
    r = rows(analyze(zoo.MobileBlock(), (3, 32, 32)))
    # stem 3x3 s2 p1: rf 3, jump 2, size 16; depthwise 3x3: 3 + 2·2 = 7; skip add: 7;
    # depthwise 3x3 s2: 7 + 2·2 = 11, jump 4, size 8; pointwise 1x1: 11
    assert field(r["stem"]) == (16, 2, 3, 0)
    assert field(r["dw1"]) == (16, 2, 7, 0)
    assert field(r["add"]) == (16, 2, 7, 0)
    assert field(r["dw2"]) == (8, 4, 11, 0)
    assert field(r["pw2"]) == (8, 4, 11, 0)
    assert r["dw1"].params == 4 * 9 + 4  # depthwise: one 3x3 per channel, plus bias
    assert_verified(zoo.MobileBlock(), (3, 32, 32))


def test_dilated_stack():
    r = rows(analyze(zoo.Dilated(), (3, 32, 32)))
    # d1 p0: rf 3, start 1, size 30; d2: 3 + 4 = 7, start 1 + 2 = 3, size 26;
    # d4: 7 + 8 = 15, start 3 + 4 = 7, size 18; d2 p2: 15 + 4 = 19, start 7 + (2 - 2) = 7, 18
    assert [field(r[f"convs.{i}"]) for i in range(4)] == [
        (30, 1, 3, 1),
        (26, 1, 7, 3),
        (18, 1, 15, 7),
        (18, 1, 19, 7),
    ]
    assert r["convs.3"].dilation == (2, 2)
    assert_verified(zoo.Dilated(), (3, 32, 32))


def test_unet_transposed_conv_and_upsampling():
    a = analyze(zoo.UNet(), (3, 32, 32))
    r = rows(a)
    # encoder: 3x3 rf 3; pool 2: 4, jump 2, start 1/2; 3x3: 4 + 2·2 = 8
    assert field(r["enc2"]) == (16, 2, 8, Fr(1, 2))
    # ConvTranspose k2 s2: output o reads encoder unit o // 2 (pixels 2m-3 .. 2m+4): rf 8,
    # jump 2/2 = 1, but units 2m and 2m+1 share a field, so the units differ: APPROX
    up = r["up"]
    assert field(up) == (32, 1, 8, Fr(1, 2)) and up.status == APPROX
    # the decoder conv 3x3 reads o-1..o+1: unit 0 sees lo(-1) = -5 .. hi(1) = 4, rf 10,
    # centre -1/2; unit 1 sees -3 .. 6, also 10 wide
    assert field(r["dec"]) == (32, 1, 10, Fr(-1, 2)) and r["dec"].status == APPROX
    # bilinear x2 from enc2: src = o/2 - 1/4 reads floor(src) and the next unit:
    # unit 0 reads -1, 0: pixels (1/2 - 2) - 7/2 = -5 .. 1/2 + 7/2 = 4: rf 10, centre -1/2
    assert field(r["up2"]) == (32, 1, 10, Fr(-1, 2)) and r["up2"].status == APPROX
    assert a.output.name == "dec"
    # the gradients agree unit by unit: the per-unit theory is exact, only the summary is not
    assert_verified(zoo.UNet(), (3, 32, 32))


def test_nearest_upsampling():
    r = rows(analyze(zoo.NearestUp(), (3, 16, 16)))
    # conv 3x3 s2 p1: rf 3 jump 2; nearest x2: o reads o // 2, jump 1, rf still 3
    assert field(r["interpolate"]) == (16, 1, 3, 0) and r["interpolate"].status == APPROX
    assert_verified(zoo.NearestUp(), (3, 16, 16))


def test_control_flow_and_a_module_called_in_a_loop():
    model = zoo.Branchy(repeats=3)
    a = analyze(model, (3, 32, 32))
    r = rows(a)
    # the branch taken is the 5x5 one: 3 + 4 = 7; the small branch never ran
    assert "small" not in r and r["large"].rf == (7, 7)
    # `shared` ran three times: three rows, 9, 11, 13; its parameters counted once
    assert [r[n].rf[0] for n in ("shared", "shared_1", "shared_2")] == [9, 11, 13]
    assert [r[n].params for n in ("shared", "shared_1", "shared_2")] == [4 * 4 * 9 + 4, 0, 0]
    # the model's total also holds the branch that never ran: 4·4·9 + 4 = 148
    assert a.params == sum(row.params for row in a.rows) + 148
    assert a.output.rf == (13, 13)
    # the condition itself: a mean over the whole map, exact (a 32-wide window on rf 3: 34)
    assert r["mean"].rf == (34, 34) and r["mean"].size == ()
    # the loop count is an argument: one more repeat, one more row, 2 more pixels
    assert analyze(zoo.Branchy(repeats=4), (3, 32, 32)).output.rf == (15, 15)
    assert_verified(model, (3, 32, 32))


def test_conv1d():
    r = rows(analyze(zoo.Conv1dNet(), (2, 64)))
    # k5 s2 p2: rf 5, jump 2, start 0, size (64 + 4 - 5)//2 + 1 = 32
    # pool k3 s2 p1: 5 + 2·2 = 9, jump 4, start 0, size (32 + 2 - 3)//2 + 1 = 16
    # k3 d2 p2: 9 + 2·2·4 = 25, start 0 + (2 - 2)·4 = 0, size 16
    assert r["c1"].size == (32,) and (r["c1"].jump, r["c1"].rf) == ((2,), (5,))
    assert r["pool"].size == (16,) and (r["pool"].jump, r["pool"].rf) == ((4,), (9,))
    assert r["c2"].size == (16,) and (r["c2"].rf, r["c2"].start) == ((25,), (0,))
    assert_verified(zoo.Conv1dNet(), (2, 64))


def test_squeeze_excitation_is_global():
    a = analyze(zoo.SqueezeExcite(), (3, 16, 16))
    r = rows(a)
    # gap over 16x16 on rf 3: one unit seeing 3 + 15 = 18 pixels (exact)
    assert field(r["gap"]) == (1, 16, 18, Fr(15, 2)) and r["gap"].status == EXACT
    # x * gate: every unit now sees what the gate saw: GLOBAL, and it stays so
    assert r["mul"].status == GLOBAL and r["after"].status == GLOBAL
    assert a.output.status == GLOBAL and a.covers_input
    assert any("spread over the whole map" in n for n in a.notes)
    assert_verified(zoo.SqueezeExcite(), (3, 16, 16))


@pytest.mark.parametrize("which, op", [("rot90", "rot90"), ("fn", "_Double")])
def test_unknown_ops_claim_nothing(which, op):
    a = analyze(zoo.CustomOps(which), (3, 16, 16))
    r = rows(a)
    assert r["stem"].status == EXACT
    assert r[op].status == UNKNOWN and r[op].rf == () and r[op].note
    assert r["after"].status == UNKNOWN and a.output.status == UNKNOWN
    assert not a.covers_input
    result = verify(zoo.CustomOps(which), (3, 16, 16))
    assert result[op].agree is None and result["stem"].agree


def test_functional_pool_same_padding_pad_and_crop():
    r = rows(analyze(zoo.Functional(), (3, 32, 32)))
    # F.max_pool2d(3, 2, 1) after a 3x3: 3 + 2 = 5, jump 2, start 0, size 16
    assert field(r["max_pool2d"]) == (16, 2, 5, 0)
    # padding='same' with k4: 1 left, 2 right; rf 5 + 3·2 = 11, start 0 + (3/2 - 1)·2 = 1
    assert field(r["same"]) == (16, 2, 11, 1)
    # F.pad (W: 2 left, 1 right; H: 0 top, 3 bottom): size (19, 19), start (1, 1 - 2·2 = -3)
    assert r["pad"].size == (19, 19) and r["pad"].start == (1, -3)
    # x[:, :, 1:, 2:-1]: start (1 + 2, -3 + 2·2) = (3, 1), size (18, 16)
    assert r["getitem"].size == (18, 16) and r["getitem"].start == (3, 1)
    assert_verified(zoo.Functional(), (3, 32, 32))


def test_ceil_mode_and_adaptive_pools():
    r = rows(analyze(zoo.Pools(), (3, 8, 8)))
    # MaxPool(2, stride 3, pad 1, ceil): 3 windows (the 4th would start in the padding);
    # rf 2, start 0 + (1/2 - 1) = -1/2
    assert field(r["pool"]) == (3, 3, 2, Fr(-1, 2))
    exact = analyze(nn.AdaptiveAvgPool2d(4), (3, 8, 8))
    assert field(exact.output) == (4, 2, 2, Fr(1, 2)) and exact.output.status == EXACT
    # 8 -> 3: windows 0..2, 2..5, 5..7: the widest is 4, status APPROX
    uneven = analyze(nn.AdaptiveAvgPool2d(3), (3, 8, 8))
    assert uneven.output.rf == (4, 4) and uneven.output.status == APPROX
    assert uneven.output.note
    for model, shape in ((zoo.Pools(), (3, 8, 8)), (nn.AdaptiveAvgPool2d(3), (3, 8, 8))):
        assert_verified(model, shape)


def test_asymmetric_stride_padding_dilation():
    r = rows(analyze(zoo.Asymmetric(), (3, 20, 20)))["conv"]
    # H: k3 d2 p0 -> rf 5, start 2, size 16.  W: k5 s2 p1 -> rf 5, jump 2, start 1, size 9
    assert r.size == (16, 9) and r.rf == (5, 5) and r.jump == (1, 2) and r.start == (2, 1)
    assert_verified(zoo.Asymmetric(), (3, 20, 20))


def test_too_small_input_is_a_clear_value_error():
    with pytest.raises(ValueError, match="t4.conv") as err:
        analyze(zoo.s9_net(), (3, 16, 16))  # t4 needs 17 pixels, gets 16 - 2 - 4 - 8 = 2
    assert isinstance(err.value, RFError)
    with pytest.raises(RFError, match="positive"):
        analyze(zoo.VGGStack(), (3, 0, 32))


def test_errors_in_the_forward_are_wrapped():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Sequential(nn.Conv2d(3, 4, 3), _Raise())

        def forward(self, x):
            return self.inner(x)

    class _Raise(nn.Module):
        def forward(self, x):
            raise KeyError("boom")

    # the module path, the user's line that raised (this file), then what it raised
    with pytest.raises(
        RFError, match=r"inner\.1 \(.*test_models\.py:\d+\): the forward raised KeyError"
    ):
        analyze(Broken(), (3, 8, 8))


def test_training_flags_are_restored_and_no_grad_leaks():
    model = zoo.ResNetStrided().train()
    model.bn1.eval()
    analyze(model, (3, 16, 16))
    assert model.training and not model.bn1.training and model.stem.training
    assert all(p.grad is None for p in model.parameters())


def test_ops_on_a_global_field_stay_global():
    class Attend(nn.Module):
        def forward(self, x):
            seq = x.flatten(2).transpose(1, 2)  # (N, HW, C): global
            seq = nn.functional.scaled_dot_product_attention(seq, seq, seq)
            return nn.functional.adaptive_avg_pool2d(seq.transpose(1, 2).reshape(x.shape), 1)

    a = analyze(Attend(), (3, 8, 8))
    assert a.output.status == GLOBAL and a.covers_input


def test_global_ops_flatten_linear_and_layernorm():
    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.fc = nn.Linear(4 * 8 * 8, 2)

        def forward(self, x):
            x = self.conv(x)
            y = nn.functional.layer_norm(x.permute(0, 2, 3, 1), (4,))  # channels only
            z = nn.functional.group_norm(x, 2)  # stats over the map
            return self.fc(torch.flatten(x + y.permute(0, 3, 1, 2), 1)), z

    r = rows(analyze(Head(), (3, 8, 8)))
    assert r["layer_norm"].status == EXACT and r["layer_norm"].rf == (3, 3)
    assert r["add"].status == EXACT and r["add"].size == (8, 8)
    # flattening an 8x8 map moves no element: each keeps its position's field (issue #27),
    # measured on element (channel 0, 4, 4) = 4·8 + 4; the Linear over it mixes them all:
    # GLOBAL, the span the whole map's
    assert r["flatten"].status == EXACT and r["flatten"].rf == (3, 3)
    assert r["flatten"].size == (8, 8)
    head = Head().double()
    probe = torch.ones(1, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(torch.flatten(head.conv(probe), 1)[0, 36], probe)
    hit = torch.nonzero(grad[0].abs().sum(0)).tolist()
    assert {h for h, _ in hit} == {3, 4, 5} and {w for _, w in hit} == {3, 4, 5}
    assert r["fc"].status == GLOBAL
    assert r["group_norm"].status == GLOBAL and r["group_norm"].size == (8, 8)
