"""`rfcalc explore`: the page's embedded facts (reachable sets by hand, per-unit ERFs by direct
autograd), and the page itself in a real browser (headless Chromium through Playwright, opened
from disk): the drawn box is the one `analyze` predicts, the keyboard moves it, holes are drawn
only on pixels the unit does not reach (ERF on or off), the ERF shown is the named unit's, the
page fits a 1280×800 screen for ResNet-18 at 224² and a 390 px phone without sideways scroll,
table rows work from the keyboard, no network request, no console error."""

import base64
import gzip
import io
import json
import re
import shutil
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rfcalc import analyze
from rfcalc.cli import main
from rfcalc.erf import noise_images
from rfcalc.explore import build_page, reachable_sets
from rfcalc.load import load_target

REPO = Path(__file__).resolve().parents[2]
NET = str(REPO / "examples" / "s9_net.py")
# the flags tests/book/test_book.py launches the system Chromium with
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

MODEL = textwrap.dedent("""
    import torch.nn as nn

    class Small(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3, padding=2, dilation=2)
            self.act = nn.ReLU()
            self.b = nn.Conv2d(4, 4, 3, padding=2, dilation=2)
            self.c = nn.Conv2d(4, 4, 3, stride=2, padding=1)

        def forward(self, x):
            return self.c(self.act(self.b(self.act(self.a(x)))))
""")


def _model_file(tmp_path) -> Path:
    path = tmp_path / "small.py"
    path.write_text(MODEL)
    return path


def _blob(html: str) -> bytes:
    text = re.search(
        r'<script type="application/octet-stream" id="blob">([^<]*)</script>', html
    ).group(1)
    return gzip.decompress(base64.b64decode(text))


def _data(html: str) -> dict:
    text = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S).group(
        1
    )
    return json.loads(text.replace("<\\/", "</"))


def test_reachable_sets_show_the_gridding_holes(tmp_path):
    model = load_target(f"{_model_file(tmp_path)}:Small")
    analysis = analyze(model, (3, 12, 12))
    sets = reachable_sets(model, analysis, ["a", "b"])
    # two 3x3 convs with dilation 2: offsets {-2, 0, 2} + {-2, 0, 2} = {-4, -2, 0, 2, 4}
    b = sets["b"].reshape(12, 12, 12, 12)
    expected = np.zeros((12, 12), bool)
    for dy in (-4, -2, 0, 2, 4):
        for dx in (-4, -2, 0, 2, 4):
            expected[5 + dy, 6 + dx] = True
    np.testing.assert_array_equal(b[5, 6], expected)
    # a corner unit: b reads a's units -2 (padding), 0, 2; those read pixels {0, 2} and
    # {0, 2, 4}: {0, 2, 4} on each axis
    corner = np.zeros((12, 12), bool)
    corner[np.ix_([0, 2, 4], [0, 2, 4])] = True
    np.testing.assert_array_equal(b[0, 0], corner)
    a = sets["a"].reshape(12, 12, 12, 12)
    assert a[3, 3].sum() == 9 and a[3, 3][1, 1] and a[3, 3][5, 5] and not a[3, 3][2, 2]


SPLIT = textwrap.dedent("""
    import torch
    import torch.nn as nn

    class Split(nn.Module):
        # a 5x5 and a 1x1 branch, kept apart by a grouped conv; the 1x1 one is picked
        def __init__(self):
            super().__init__()
            self.wide = nn.Conv2d(3, 1, 5, padding=2)
            self.narrow = nn.Conv2d(3, 1, 1)
            self.mix = nn.Conv2d(2, 2, 1, groups=2)
            self.out = nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x):
            y = self.mix(torch.cat([self.wide(x), self.narrow(x)], 1))
            return self.out(y[:, 1:])
""")


def test_reach_where_the_one_channel_copy_cannot_follow_the_channels(tmp_path):
    """The one-channel copy merges the branches (and its slice is empty): the check sample
    disagrees, and the full linearised model gives the true sets."""
    path = tmp_path / "split.py"
    path.write_text(SPLIT)
    model = load_target(f"{path}:Split")
    analysis = analyze(model, (3, 9, 9))
    sets = reachable_sets(model, analysis, ["wide", "out"])
    expected = np.zeros((9, 9), bool)
    expected[3:6, 3:6] = True  # the 1x1 branch, then a 3x3 conv
    np.testing.assert_array_equal(sets["out"].reshape(9, 9, 9, 9)[4, 4], expected)
    wide = np.zeros((9, 9), bool)
    wide[0:5, 0:5] = True  # unit (2, 2) of the 5x5 conv
    np.testing.assert_array_equal(sets["wide"].reshape(9, 9, 9, 9)[2, 2], wide)


PADDINGS = textwrap.dedent("""
    import torch.nn as nn

    class Pads(nn.Module):
        def __init__(self):
            super().__init__()
            self.same = nn.Conv2d(3, 4, 4, padding="same", dilation=2)
            self.reflect = nn.Conv2d(4, 4, 3, padding=2, padding_mode="reflect")
            self.circular = nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular", stride=2)
            self.valid = nn.Conv2d(4, 4, (3, 2), padding="valid", groups=2)

        def forward(self, x):
            return self.valid(self.circular(self.reflect(self.same(x))))
""")


def _both_ways(model, analysis, names):
    """(one-channel support copy, full linearised model), each for every pixel."""
    from rfcalc import reach

    lin = reach._linear_copy(model)
    fast = reach._reach(reach._support_copy(lin), analysis, names, 1024, None, torch.float32)
    full = reach._reach(lin.double(), analysis, names, 256, None, torch.float64)
    return fast, full


def test_the_one_channel_copy_equals_the_full_linearised_model(tmp_path):
    """The fast path itself (not its fallback): ResNet-18 at 32x32 (strides, max-pooling,
    skips) and convolutions with 'same', 'valid', reflect and circular padding."""
    import torchvision

    resnet = torchvision.models.resnet18().eval()
    names = ["maxpool", "layer1.0.relu_1", "layer2.0.downsample.0", "layer2.1.bn2"]
    cases = [(resnet, (3, 32, 32), names)]  # the passes stop after layer2: cheaper
    path = tmp_path / "pads.py"
    path.write_text(PADDINGS)
    cases.append((load_target(f"{path}:Pads"), (3, 11, 10), ["same", "reflect", "circular"]))
    cases[-1][2].append("valid")
    for model, shape, names in cases:
        fast, full = _both_ways(model, analyze(model, shape), names)
        for n in names:
            np.testing.assert_array_equal(fast[n], full[n], err_msg=n)
    # reflect padding reads real pixels at the border: a corner unit of `reflect` reaches
    # pixels its zero-padded twin would not
    assert fast["reflect"].sum() > 0


def _unit_gradient(forward, x, unit) -> np.ndarray:
    x = x.clone().requires_grad_(True)
    forward(x)[..., unit[0], unit[1]].sum().backward()
    g = x.grad.abs().sum(1).sum(0).numpy()
    return g / g.max()


PLAIN = textwrap.dedent("""
    import torch.nn as nn

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3, padding=1)
            self.act = nn.ReLU()
            self.c = nn.Conv2d(4, 4, 3, stride=2, padding=1)

        def forward(self, x):
            return self.c(self.act(self.a(x)))
""")


def _page_maps(html: str, name: str) -> tuple[list, np.ndarray]:
    row = next(r for r in _data(html)["rows"] if r["name"] == name)
    seg = row["erf"]["init"]["data"]
    maps = np.frombuffer(_blob(html)[seg[0] : seg[0] + seg[1]], "<f2")
    return row["erf_grid"], maps.reshape(-1, *_data(html)["input"][1:])


def _page_numbers(html: str, name: str) -> list[dict]:
    row = next(r for r in _data(html)["rows"] if r["name"] == name)
    return row["erf"]["init"]["numbers"]


def test_the_page_holds_each_named_units_erf(tmp_path):
    """Per-unit ERFs against autograd run by hand on the model's layers, corner and centre
    units: on a dilated (approximate-field) model, and on a plain one whose rf-3 corner and
    centre units have disjoint boxes (the page's code gives them one shared backward pass).
    The 16 inputs are one noise image repeated, so a unit's normalised map is the same
    whichever of them it was lent."""
    small = load_target(f"{_model_file(tmp_path)}:Small")
    path = tmp_path / "plain.py"
    path.write_text(PLAIN)
    plain = load_target(f"{path}:Plain")
    for model in (small, plain):  # a ReLU would silence some units (no gradient) at random
        model.act = torch.nn.LeakyReLU(0.1)
    images = noise_images((3, 12, 12), 1).repeat(16, 1, 1, 1)
    cases = {
        small: {
            "act": lambda x: small.act(small.a(x)),  # a and act share a field: act holds it
            "act_1": lambda x: small.act(small.b(small.act(small.a(x)))),
            "c": small,
        },
        plain: {"act": lambda x: plain.act(plain.a(x)), "c": plain},
    }
    for model, layers in cases.items():
        analysis = analyze(model, (3, 12, 12))
        html = build_page(model, analysis, images, "16 copies of one noise image")
        sizes = {r.name: r.size for r in analysis.rows}
        for name, forward in layers.items():
            grid, maps = _page_maps(html, name)
            assert grid == [[0, (n - 1) // 2, n - 1] for n in sizes[name]]
            units = [(i, j) for i in grid[0] for j in grid[1]]
            assert len(maps) == len(units) == 9
            assert all(m.max() > 0 for m in maps), name
            for k, unit in enumerate(units):
                np.testing.assert_allclose(
                    maps[k],
                    _unit_gradient(forward, images[:1], unit),
                    atol=2e-3,
                    err_msg=f"{name} {unit}",
                )
            counts = [n["n"] for n in _page_numbers(html, name)]
            assert counts[4] == 16  # the centre unit (5, 5): every input
            assert all(2 <= n <= 16 for n in counts)  # at most 8 groups take turns
    # the plain rf-3 row: its 9 boxes are disjoint, one shared pass gives all of them every input
    assert [n["n"] for n in _page_numbers(html, "act")] == [16] * 9
    rows = {r["name"]: r for r in _data(html)["rows"]}
    assert rows["a"]["erf_from"] == "act"


def test_the_centre_units_erf_is_rfcalc_erfs(tmp_path):
    """Distinct inputs: the page's centre-unit map and numbers are `rfcalc.erf`'s."""
    from rfcalc.erf import erf

    model = load_target(f"{_model_file(tmp_path)}:Small")
    analysis = analyze(model, (3, 12, 12))
    images = noise_images((3, 12, 12), 5)
    html = build_page(model, analysis, images, "5 noise images")
    for name in ("act_1", "c"):
        ref = erf(model, images, name, analysis=analysis)
        grid, maps = _page_maps(html, name)
        k = grid[0].index(ref.unit[0]) * len(grid[1]) + grid[1].index(ref.unit[1])
        np.testing.assert_allclose(maps[k], ref.map / ref.map.max(), atol=2e-3)
        numbers = _page_numbers(html, name)[k]
        assert numbers["n"] == 5 and numbers["inside"] == pytest.approx(ref.inside)
        assert numbers["square50"] == next(q.side for q in ref.squares if q.threshold == 50)


def test_progress_goes_to_stderr(tmp_path, capsys):
    model = _model_file(tmp_path)
    out = tmp_path / "page.html"
    args = ["explore", str(model), "--input", "3,12,12", "--n", "3", "-o", str(out)]
    assert main(args + ["--progress"]) == 0
    captured = capsys.readouterr()
    assert "reachable pixels" in captured.err and "ERF (init)" in captured.err
    assert "reachable" not in captured.out
    assert main(["erf", str(model), "--input", "3,12,12", "--n", "3", "--progress"]) == 0
    captured = capsys.readouterr()
    assert "ERF:" in captured.err and "/3 " in captured.err


def test_page_is_self_contained_and_embeds_rfcalcs_boxes(tmp_path, capsys):
    model = _model_file(tmp_path)
    out = tmp_path / "page.html"
    assert main(["explore", str(model), "--input", "3,12,12", "--n", "3", "-o", str(out)]) == 0
    html = out.read_text()
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from anywhere
    data = _data(html)
    rows = {r["name"]: r for r in data["rows"]}
    analysis = analyze(load_target(f"{model}:Small"), (3, 12, 12))
    c = next(r for r in analysis.rows if r.name == "c")
    for u in range(c.size[1]):
        centre = Fraction(c.start[1]) + u * Fraction(c.jump[1])
        half = (Fraction(c.rf[1]) - 1) / 2
        assert rows["c"]["boxes"][1][u] == [centre - half, centre + half]
    blob = _blob(html)
    seg = rows["c"]["erf"]["init"]["data"]
    erf_maps = np.frombuffer(blob[seg[0] : seg[0] + seg[1]], "<f2").reshape(-1, 144)
    assert erf_maps.shape == (9, 144) and (erf_maps.max(1) == 1).all()  # scaled to max 1
    capsys.readouterr()
    assert main(["explore", str(model), "--input", "3,12,12", "-o", str(out)]) == 2
    assert "--force" in capsys.readouterr().err


def test_the_nets_page_is_under_5_mb(tmp_path):
    out = tmp_path / "net.html"
    assert main(["explore", NET, "--n", "2", "-o", str(out)]) == 0
    size = out.stat().st_size
    assert size < 5_000_000, size
    data = _data(out.read_text())
    names = [r["name"] for r in data["rows"]]
    assert "t4.conv" in names and all(len(r["cells"]) == 11 for r in data["rows"])


# ------------------------------------------------------------------ in Chromium


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    chromium = _chromium()
    if chromium is None:
        pytest.skip("Chromium is not installed (scripts/setup-system.sh installs it as root)")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield b
        finally:
            b.close()


def _expected_box(row, unit, shape):
    box = []
    for a in range(2):
        centre = Fraction(row.start[a]) + unit[a] * Fraction(row.jump[a])
        half = (Fraction(row.rf[a]) - 1) / 2
        box.append((max(int(centre - half), 0), min(int(centre + half), shape[a] - 1)))
    return box


def _drawn_box(page):
    rect = page.locator("#box")
    x, y, w, h = (float(rect.get_attribute(k)) for k in ("x", "y", "width", "height"))
    return [(round(y + 0.5), round(y + h - 0.5)), (round(x + 0.5), round(x + w - 0.5))]


HOLE = np.array([238, 0, 238])  # the page's hole colour, #e0e: in no heatmap colour


def _check_holes(page, holes: set, reached: set) -> None:
    """The holes the page draws (its SVG path's data) are `holes`, and in a screenshot the
    hole colour shows on every hole and on no reached pixel."""
    drawn = page.get_attribute("#holes", "data-holes")
    assert {tuple(map(int, p.split(","))) for p in drawn.split()} == holes
    # a click in the table below may have scrolled the picture partly out of the viewport
    page.evaluate("document.getElementById('overlay').scrollIntoView({block: 'center'})")
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB")).astype(int)
    view = [float(v) for v in page.get_attribute("#overlay", "viewBox").split()]
    r = page.evaluate("document.getElementById('overlay').getBoundingClientRect().toJSON()")
    k = r["width"] / view[2]  # screen pixels per input pixel

    def magenta(y, x):
        left, top = r["left"] + (x - 0.5 - view[0]) * k, r["top"] + (y - 0.5 - view[1]) * k
        patch = shot[int(top) + 1 : int(top + k) - 1, int(left) + 1 : int(left + k) - 1]
        return int((np.abs(patch - HOLE).sum(-1) < 60).sum())

    assert all(magenta(y, x) > 0 for y, x in holes)
    assert [p for p in reached if magenta(*p)] == []


def test_in_chromium_box_keys_erf_toggle_offline(tmp_path, browser):
    model = _model_file(tmp_path)
    net = load_target(f"{model}:Small")
    trained = {
        k: v * (1 + torch.arange(v.numel()).reshape(v.shape) % 3)
        for k, v in net.state_dict().items()
    }
    ckpt = tmp_path / "best.pt"
    torch.save({"model": trained, "epoch": 1}, ckpt)
    picture = tmp_path / "p.png"
    Image.fromarray(np.full((20, 20, 3), 200, np.uint8)).save(picture)
    out = tmp_path / "page.html"
    assert (
        main(
            [
                "explore",
                str(model),
                "--input",
                "3,12,12",
                "--n",
                "3",
                "--weights",
                str(ckpt),
                "--image",
                str(picture),
                "-o",
                str(out),
            ]
        )
        == 0
    )
    analysis = analyze(net, (3, 12, 12))
    rows = {r.name: r for r in analysis.rows}

    page = browser.new_page()
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(out.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)

    # the stride-2 row: pick it in the table, then click unit (1, 4)
    page.click("#table tr[data-name='c']")
    page.locator("circle.unit[data-u='1,4']").click(force=True)
    assert _drawn_box(page) == _expected_box(rows["c"], (1, 4), (12, 12))
    page.mouse.move(0, 0)  # leave the picture: the selection shows
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    assert _drawn_box(page) == _expected_box(rows["c"], (2, 5), (12, 12))
    for _ in range(8):  # to the corner: the box is clipped
        page.keyboard.press("ArrowUp")
        page.keyboard.press("ArrowLeft")
    assert _drawn_box(page) == _expected_box(rows["c"], (0, 0), (12, 12))

    # the dilated row: the centre unit's 9x9 box holds 25 reachable pixels, 56 holes
    page.click("#table tr[data-name='b']")
    page.mouse.move(0, 0)
    assert _drawn_box(page) == _expected_box(rows["b"], (5, 5), (12, 12))
    assert "reaches 25 input pixels; 56 of the 81 in its box are holes" in page.inner_text(
        "#reachline"
    )

    # its holes, drawn on exactly the box's pixels it does not reach: ERF off, then on
    reached = {(5 + dy, 5 + dx) for dy in (-4, -2, 0, 2, 4) for dx in (-4, -2, 0, 2, 4)}
    box = {(y, x) for y in range(1, 10) for x in range(1, 10)}
    _check_holes(page, box - reached, reached)
    canvas = "document.getElementById('canvas').toDataURL()"
    before = page.evaluate(canvas)
    page.check("#erf")
    with_erf = page.evaluate(canvas)
    assert with_erf != before
    page.mouse.move(0, 0)
    _check_holes(page, box - reached, reached)
    assert "reaches 25 input pixels; 56 of the 81" in page.inner_text("#reachline")

    # the heatmap is the selected unit's: the ERF row of b is act_1 (same field), whose
    # 12 units per axis are measured at 0, 5 and 11
    assert page.get_attribute("#canvas", "data-erf") == "act_1:5,5"
    assert "unit (row 5, col 5) of act_1" in page.inner_text("#erfline")
    page.focus("#stage")
    for _ in range(5):
        page.keyboard.press("ArrowUp")
    assert page.get_attribute("#canvas", "data-erf") == "act_1:0,5"
    assert page.locator("#erf-box").count() == 0  # the selected unit's own ERF: no second box
    page.keyboard.press("ArrowDown")  # unit (1, 5) is not measured: its nearest, said and boxed
    assert page.get_attribute("#canvas", "data-erf") == "act_1:0,5"
    assert "nearest to the selected one" in page.inner_text("#erfline")
    assert page.locator("#erf-box").count() == 1
    page.click("#table tr[data-name='b']")
    page.mouse.move(0, 0)
    page.check("#variant-init")
    assert page.evaluate(canvas) != with_erf  # trained and init ERFs differ
    page.uncheck("#erf")
    assert page.evaluate(canvas) == before

    assert all(u.startswith(("file:", "data:", "blob:")) for u in requests), requests
    assert errors == []
    page.close()


NONSQUARE = textwrap.dedent("""
    import torch.nn as nn

    class Tall(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, (5, 3))
            self.act = nn.ReLU()
            self.b = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            return self.b(self.act(self.a(x)))
""")


def test_in_chromium_words_for_non_square_fields_and_keyboard_rows(tmp_path, browser):
    path = tmp_path / "tall.py"
    path.write_text(NONSQUARE)
    out = tmp_path / "tall.html"
    assert main(["explore", f"{path}:Tall", "--input", "3,12,8", "--n", "2", "-o", str(out)]) == 0
    page = browser.new_page()
    page.goto(out.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    page.click("#table tr[data-name='a']")
    words = page.inner_text("#explain")
    # (5, 3) kernel, no padding: rf 5x3, unit (0, 0) centred on pixel (2, 1), inside the image
    assert "at most a 5×3 window" in words and "5×3×5×3" not in words
    assert "(row 2, col 1)" in words and "A positive start" in words
    assert "negative" not in words.lower()
    # the table from the keyboard: one tab stop, arrows pick layers, Enter goes to the picture
    page.focus("#table tr.current")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.dataset.name") == "act"
    assert page.inner_text("#layer").startswith("act ")
    page.keyboard.press("End")
    assert page.inner_text("#layer").startswith("b ")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "stage"
    assert page.locator("#table tr[tabindex='0']").count() == 1
    page.close()


@pytest.fixture(scope="module")
def resnet_page(tmp_path_factory) -> Path:
    """ResNet-18 at 224x224 (one noise image for the ERF: the layout is what is tested)."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    analysis = analyze(model, (3, 224, 224))
    html = build_page(model, analysis, noise_images((3, 224, 224), 1), "1 noise input")
    out = tmp_path_factory.mktemp("resnet") / "resnet18.html"
    out.write_text(html, encoding="utf-8")
    return out


# Every element but those inside a box that scrolls or clips them: the table's rows (their
# wrapper scrolls) and the picture's SVG shapes (a field larger than the image runs past the
# stage, which clips it); the wrapper and the stage themselves count.
_LAYOUT = """() => {
  const wide = [...document.querySelectorAll('body *')]
    .filter(e => !e.closest('#tablewrap') || e.id === 'tablewrap')
    .filter(e => !e.closest('#world') || e.id === 'world')
    .filter(e => { const r = e.getBoundingClientRect();
                   return r.width > innerWidth || r.right > innerWidth + 0.5; })
    .map(e => e.id || e.tagName);
  const box = id => document.getElementById(id).getBoundingClientRect().toJSON();
  return { scroll: document.scrollingElement.scrollWidth, wide,
           stage: box('stage'), reach: box('reachline') };
}"""


def test_in_chromium_resnet18_at_224_fits_a_1280x800_screen(resnet_page, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(resnet_page.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    got = page.evaluate(_LAYOUT)
    assert got["scroll"] <= 1280 and got["wide"] == []
    stage = got["stage"]
    assert stage["bottom"] <= 800 and stage["right"] <= 1280 and stage["width"] >= 400
    assert got["reach"]["bottom"] <= 800  # the numbers beside the picture, on the same screen
    # zoom to the selected unit's field and back: the stage keeps its size
    page.click("#zoom-box")
    assert page.evaluate("Z.z") > 1
    assert page.evaluate(_LAYOUT)["stage"] == stage
    # a drag pans the zoomed picture and selects nothing
    unit = page.inner_text("#unitline")
    before = page.evaluate("[Z.tx, Z.ty]")
    x, y = stage["x"] + stage["width"] / 2, stage["y"] + stage["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 60, y + 40, steps=5)
    page.mouse.up()
    assert page.evaluate("[Z.tx, Z.ty]") != before
    page.mouse.move(0, 0)
    assert page.inner_text("#unitline") == unit
    page.click("#zoom-fit")
    assert page.evaluate("Z.z") == 1
    page.close()


@pytest.mark.parametrize("which", ["resnet18", "small"])
def test_in_chromium_no_sideways_scroll_at_390_px(which, resnet_page, tmp_path, browser):
    if which == "resnet18":
        path = resnet_page
    else:
        path = tmp_path / "small.html"
        assert (
            main(
                [
                    "explore",
                    str(_model_file(tmp_path)),
                    "--input",
                    "3,12,12",
                    "--n",
                    "2",
                    "-o",
                    str(path),
                ]
            )
            == 0
        )
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    got = page.evaluate(_LAYOUT)
    assert got["scroll"] <= 390 and got["wide"] == []
    # the picture and its numbers on the first screen
    assert got["stage"]["right"] <= 390 and got["reach"]["bottom"] <= 844
    page.close()
