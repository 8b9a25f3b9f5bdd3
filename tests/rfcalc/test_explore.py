"""`rfcalc explore`: the page's embedded facts (reachable sets by hand), and the page itself in
a real browser (headless Chromium through Playwright, opened from disk): the drawn box is the
one `analyze` predicts, the keyboard moves it, the ERF toggle changes the picture, no network
request, no console error."""

import base64
import gzip
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
from rfcalc.explore import reachable_sets
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
    erf_map = np.frombuffer(blob[seg[0] : seg[0] + seg[1]], "<f4")
    assert erf_map.shape == (144,) and erf_map.sum() == pytest.approx(1, abs=1e-5)
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

    canvas = "document.getElementById('canvas').toDataURL()"
    before = page.evaluate(canvas)
    page.check("#erf")
    with_erf = page.evaluate(canvas)
    assert with_erf != before
    page.check("#variant-init")
    assert page.evaluate(canvas) != with_erf  # trained and init ERFs differ
    page.uncheck("#erf")
    assert page.evaluate(canvas) == before

    assert all(u.startswith(("file:", "data:", "blob:")) for u in requests), requests
    assert errors == []
    page.close()
