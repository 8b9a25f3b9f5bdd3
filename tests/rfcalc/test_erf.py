"""rfcalc.erf and `rfcalc erf`: every expected number computed independently (by hand, by
trinomial coefficients, by a per-image autograd loop), never read from the code's output."""

import json
import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from rfcalc import analyze, erf
from rfcalc.cli import main
from rfcalc.erf import (
    ERFError,
    centred_square,
    gaussian_sigma,
    load_images,
    load_weights,
    noise_images,
    share_inside,
)
from rfcalc.load import load_target

REPO = Path(__file__).resolve().parents[2]
NET = str(REPO / "examples" / "s9_net.py")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def usage_error(capsys, *argv, match):
    code, out, err = run(capsys, *argv)
    assert code == 2, (out, err)
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert match in err, err
    return err


# ------------------------------------------------------------------ hand-computable ERFs

# one 3x3 conv, 2 output and 2 input channels: the gradient of the centre unit (summed over
# the output channels) w.r.t. input channel c at offset (i, j) is w[0, c, i, j] + w[1, c, i, j]
W = torch.tensor(
    [
        [[[1.0, -2, 0], [3, 1, 0], [0, 0, 2]], [[2, 0, 0], [0, -1, 0], [1, 0, 0]]],
        [[[0, 1, 0], [-1, 1, 0], [0, 0, 1]], [[-4, 0, 1], [0, 1, 0], [0, 3, 0]]],
    ]
)
# per input channel: sum over outputs, then |.|, then summed over the two input channels
#   c0: [[1,-1,0],[2,2,0],[0,0,3]] -> |.| [[1,1,0],[2,2,0],[0,0,3]]
#   c1: [[-2,0,1],[0,0,0],[1,3,0]] -> |.| [[2,0,1],[0,0,0],[1,3,0]]
HAND = np.array([[3.0, 1, 1], [2, 2, 0], [1, 3, 3]])  # total 16


def one_conv() -> nn.Module:
    conv = nn.Conv2d(2, 2, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(W)
    return nn.Sequential(conv)


def test_single_conv_erf_is_the_hand_computed_kernel():
    model = one_conv()
    e = erf(model, noise_images((2, 9, 9), 5))
    expected = np.zeros((9, 9))
    expected[3:6, 3:6] = HAND / HAND.sum()
    np.testing.assert_allclose(e.map, expected, atol=1e-7)
    assert e.row.name == "0" and e.unit == (4, 4)
    assert e.box == ((3, 5), (3, 5)) and e.extent == ((3, 5), (3, 5))
    assert e.inside == pytest.approx(1.0)
    # the 20 % square: the centre pixel holds 2/16 < 0.2, the 3x3 all of it
    sides = {sq.threshold: sq.side for sq in e.squares}
    assert sides == {20: 3, 30: 3, 50: 3, 99: 3}
    of_rf = {sq.threshold: sq.of_rf for sq in e.squares}
    assert of_rf[50] == (1.0, 1.0)
    # sigma by hand: row marginal (5, 4, 7)/16 over rows 3, 4, 5
    rows = np.array([5, 4, 7]) / 16
    mean = (rows * [3, 4, 5]).sum()
    assert e.sigma[0] == pytest.approx(math.sqrt((rows * (np.array([3, 4, 5]) - mean) ** 2).sum()))


def test_box_filter_stack_is_the_trinomial_with_sigma_sqrt_2k_over_3():
    k = 4
    convs = []
    for _ in range(k):
        conv = nn.Conv2d(1, 1, 3, bias=False)
        nn.init.constant_(conv.weight, 1 / 9)
        convs.append(conv)
    model = nn.Sequential(*convs)
    e = erf(model, noise_images((1, 15, 15), 3))
    profile = np.array([1.0])
    for _ in range(k):
        profile = np.convolve(profile, [1, 1, 1])  # trinomial coefficients 1 4 10 16 19 ...
    expected = np.zeros((15, 15))
    c = 7  # the centre unit of the 7x7 output sees pixels 3..11
    expected[c - k : c + k + 1, c - k : c + k + 1] = np.outer(profile, profile)
    np.testing.assert_allclose(e.map, expected / expected.sum(), atol=1e-7)
    # a sum of k independent uniforms on {-1, 0, 1}: variance 2k/3
    assert e.sigma == pytest.approx((math.sqrt(2 * k / 3),) * 2)
    assert e.row.rf == (9, 9) and e.box == ((3, 11), (3, 11))


def test_batched_erf_equals_the_mean_of_per_image_gradients():
    # BatchNorm with running statistics, ReLU, a stride: non-linear, so each image differs
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 5, 3, stride=2)
    )
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2)
    model.eval()
    x = noise_images((3, 12, 12), 7, seed=5)
    e = erf(model, x, batch_size=3)  # three batches: 3 + 3 + 1
    total = np.zeros((12, 12))
    for img in x:
        xi = img[None].clone().requires_grad_(True)
        out = model(xi)
        out[0, :, 2, 2].sum().backward()  # the 5x5 map's centre unit
        total += xi.grad[0].abs().sum(0).double().numpy()
    np.testing.assert_allclose(e.map, total / total.sum(), rtol=1e-5, atol=1e-9)
    assert e.unit == (2, 2)
    # start 1 (conv k3 p1 then k3 s2), jump 2, rf 5: unit 2 is centred on pixel 5
    assert e.box == ((3, 7), (3, 7))


# ------------------------------------------------------------------ the numbers on synthetic maps


def test_centred_square_sides_counted_on_rings():
    m = np.zeros((11, 11))
    m[5, 5] = 0.25  # the centre
    m[3, 3:8] = m[7, 3:8] = 0.25 / 16  # the ring at distance 2: 16 pixels
    m[4:7, 3] = m[4:7, 7] = 0.25 / 16
    m[1, 1] = m[9, 9] = 0.25  # two corners of the ring at distance 4
    assert m.sum() == pytest.approx(1)
    assert centred_square(m, (5, 5), 0.20) == 1
    assert centred_square(m, (5, 5), 0.30) == 5
    assert centred_square(m, (5, 5), 0.50) == 5  # exactly half: it holds
    assert centred_square(m, (5, 5), 0.99) == 9
    # a centre between pixels takes even sides: 4.5 -> pixels 4..5 for side 2
    m2 = np.zeros((10, 10))
    m2[4:6, 4:6] = 0.1
    m2[0, 0] = 0.6
    assert centred_square(m2, (4.5, 4.5), 0.4) == 2
    assert centred_square(m2, (4.5, 4.5), 0.5) == 10
    assert centred_square(m2, (4.5, 4.5), 0.41) == 10


def test_share_inside_a_box_partly_outside_the_image():
    m = np.arange(25, dtype=float).reshape(5, 5)
    assert share_inside(m, ((-3, 1), (3, 9))) == pytest.approx((3 + 4 + 8 + 9) / 300)


def test_gaussian_sigma_of_two_points():
    m = np.zeros((1, 9))
    m[0, 1] = m[0, 7] = 0.5  # +-3 around 4
    assert gaussian_sigma(m) == pytest.approx((0.0, 3.0))


# ------------------------------------------------------------------ rows, weights, images


def test_model_without_spatial_output_uses_the_last_row_with_a_map_and_says_so():
    torch.manual_seed(0)
    net = load_target(NET)
    e = erf(net, noise_images((3, 32, 32), 2))
    assert e.row.name == "head"
    assert "no spatial map" in e.note and "head" in e.note
    # head: jump 2, start 31/2, rf 48: the box 15.5 +- 23.5
    assert e.box == ((-8, 39), (-8, 39)) and e.clipped_box == ((0, 31), (0, 31))


def test_module_path_and_functional_rows():
    torch.manual_seed(0)
    net = load_target(NET)
    x = noise_images((3, 32, 32), 2)
    analysis = analyze(net, (3, 32, 32))
    e = erf(net, x, "c2", analysis=analysis)
    assert e.row.name == "c2.1.add" and "module" in e.note
    add = erf(net, x, "c2.1.add", analysis=analysis)  # the last op of c2.1: its output
    np.testing.assert_allclose(add.map, e.map)
    with pytest.raises(ERFError, match="nearest: t2.conv"):
        erf(net, x, "t2.cnv", analysis=analysis)
    with pytest.raises(ERFError, match="functional op inside c1.0"):
        erf(net, x, "c1.0.relu", analysis=analysis)


def test_repeated_module_call_is_captured_at_the_right_call():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, bias=False)
            nn.init.constant_(self.conv.weight, 1.0)

        def forward(self, x):
            return self.conv(self.conv(x))

    model = Twice()
    x = noise_images((1, 11, 11), 2)
    first = erf(model, x, "conv")
    second = erf(model, x, "conv_1")
    assert first.extent == ((4, 6), (4, 6))
    assert second.extent == ((3, 7), (3, 7))  # two 3x3 windows: 5x5


def test_weights_from_rftrain_checkpoints_and_plain_state_dicts(tmp_path):
    sd = one_conv().state_dict()
    best = tmp_path / "best.pt"
    torch.save({"model": sd, "epoch": 3, "test_acc": 0.5}, best)
    last = tmp_path / "last.pt"
    torch.save(
        {
            "trainer": {"model": sd, "optimizer": {}},
            "epoch": 3,
            "rng": {"numpy": np.random.get_state()},
        },
        last,
    )
    plain = tmp_path / "sd.pt"
    torch.save(sd, plain)
    for path in (best, last, plain):
        model = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, bias=False))
        load_weights(model, path)
        e = erf(model, noise_images((2, 9, 9), 2))
        np.testing.assert_allclose(e.map[3:6, 3:6], HAND / HAND.sum(), atol=1e-7)


def test_a_checkpoint_that_does_not_fit_says_which_keys(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"0.weight": torch.zeros(2, 2, 5, 5), "1.bias": torch.zeros(2)}, path)
    model = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1))
    with pytest.raises(ERFError) as info:
        load_weights(model, path)
    text = str(info.value)
    assert "missing: 0.bias" in text and "unexpected: 1.bias" in text
    assert "0.weight [2, 2, 5, 5] vs [2, 2, 3, 3]" in text


def test_a_checkpoint_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": Path("x")}, path)  # a pickled object, not plain data
    with pytest.raises(ERFError, match="holds Python objects, not only tensors"):
        load_weights(nn.Conv2d(1, 1, 1), path)


def _image_folder(tmp_path, sizes) -> Path:
    folder = tmp_path / "imgs" / "sub"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("not an image")
    return tmp_path / "imgs"


def test_load_images_fits_and_standardises(tmp_path):
    folder = _image_folder(tmp_path, [(16, 16), (40, 20), (8, 12)])
    x, words = load_images(folder, (3, 16, 16), n=10)
    assert x.shape == (3, 3, 16, 16)
    np.testing.assert_allclose(x.mean(dim=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(dim=(0, 2, 3), unbiased=False), 1, atol=1e-4)
    assert "3 images" in words and "standardised" in words
    few, _ = load_images(folder, (3, 16, 16), n=2)
    assert few.shape[0] == 2
    with pytest.raises(ERFError, match="no image files"):
        load_images(_empty(tmp_path), (3, 8, 8), n=1)


def _empty(tmp_path) -> Path:
    empty = tmp_path / "empty"
    empty.mkdir()
    return empty


# ------------------------------------------------------------------ the CLI

MODEL = textwrap.dedent("""
    import torch.nn as nn

    class Box(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 1, 3, bias=False)
            self.b = nn.Conv2d(1, 1, 3, bias=False)
            nn.init.constant_(self.a.weight, 1.0)
            nn.init.constant_(self.b.weight, 1.0)

        def forward(self, x):
            return self.b(self.a(x))
""")


def test_cli_json_and_picture(tmp_path, capsys):
    model = tmp_path / "box.py"
    model.write_text(MODEL)
    png = tmp_path / "erf.png"
    code, out, err = run(
        capsys, "erf", model, "--input", "3,9,9", "--n", "3", "--format", "json", "-o", png
    )
    assert code == 0, err
    doc = json.loads(out)["erf"]
    # two all-ones 3x3 convs: the 1-2-3-2-1 profile squared, over pixels 2..6
    p = np.array([1, 2, 3, 2, 1.0])
    expected = np.zeros((9, 9))
    expected[2:7, 2:7] = np.outer(p, p) / 81
    np.testing.assert_allclose(doc["map"], expected, atol=1e-9)
    assert doc["row"] == "b" and doc["rf"] == [5, 5] and doc["box"] == [[2, 6], [2, 6]]
    assert doc["inside"] == pytest.approx(1)
    # 20 %: the centre holds 9/81, the 3x3 square (2+3+2)^2 = 49/81
    assert doc["squares"]["20"]["side"] == 3 and doc["squares"]["99"]["side"] == 5
    assert doc["squares"]["20"]["of_rf"] == [0.6, 0.6]
    assert doc["squares"]["20"]["area_ratio"] == pytest.approx(9 / 81)
    assert "Gaussian-noise" in doc["inputs"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    usage_error(capsys, "erf", model, "--input", "3,9,9", "-o", png, match="--force")


def test_cli_compare_images_and_text(tmp_path, capsys):
    model = tmp_path / "box.py"
    model.write_text(MODEL)
    ckpt = tmp_path / "zero_b.pt"
    sd = load_target(f"{model}:Box").state_dict()
    sd["b.weight"] = torch.zeros_like(sd["b.weight"])
    sd["b.weight"][0, 0, 1, 1] = 1.0  # b passes a's centre through: a 3x3 ERF
    torch.save({"model": sd}, ckpt)
    folder = _image_folder(tmp_path, [(9, 9)] * 4)
    code, out, err = run(
        capsys, "erf", model, "--input", "3,9,9", "--compare", "init", ckpt, "--images", folder
    )
    assert code == 0, err
    assert "4 images from" in out
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    assert "2..6 × 2..6" in lines["ERF extent"] and "3..5 × 3..5" in lines["ERF extent"]
    assert "as initialised" in lines["weights"] and "zero_b.pt" in lines["weights"]


def test_cli_errors_are_one_line(tmp_path, capsys):
    model = tmp_path / "box.py"
    model.write_text(MODEL)
    usage_error(capsys, "erf", model, "--input", "3,9,9", "--layer", "bb", match="nearest: b")
    usage_error(
        capsys,
        "erf",
        model,
        "--input",
        "3,9,9",
        "--weights",
        tmp_path / "no.pt",
        match="no such checkpoint",
    )
    usage_error(
        capsys,
        "erf",
        model,
        "--input",
        "3,9,9",
        "--images",
        tmp_path / "none",
        match="no such folder",
    )
    usage_error(
        capsys, "erf", model, "--input", "3,9,9", "-o", tmp_path / "x.gif", match="unknown format"
    )
    bad = tmp_path / "bad.pt"
    torch.save({"a.weight": torch.zeros(1, 3, 3, 3)}, bad)
    usage_error(
        capsys, "erf", model, "--input", "3,9,9", "--weights", bad, match="missing: b.weight"
    )


def test_several_layers_in_one_pass_equal_one_at_a_time():
    from rfcalc.erf import erfs

    torch.manual_seed(0)
    net = load_target(NET).eval()
    x = noise_images((3, 32, 32), 3)
    analysis = analyze(net, (3, 32, 32))
    together = erfs(net, x, ["t1.conv", "c3", None], analysis=analysis)
    for layer, e in zip(["t1.conv", "c3", None], together):
        alone = erf(net, x, layer, analysis=analysis)
        assert e.row.name == alone.row.name
        np.testing.assert_allclose(e.map, alone.map, rtol=1e-5, atol=1e-9)
    assert [e.row.name for e in together] == ["t1.conv", "c3.1.add", "head"]
