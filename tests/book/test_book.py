"""The book builds cleanly offline, and a real browser finds every page whole.

One build (into a temporary folder, never over book/_build) serves all tests here: it runs
the CPU chapters, so a chapter that raises or a warning fails it. Headless Chromium, driven by
Playwright through the system's /usr/bin/chromium, then loads every page from a local server.
"""

from __future__ import annotations

import functools
import html.parser
import json
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

BOOK = Path(__file__).resolve().parents[2] / "book"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _pages() -> list[str]:
    """Every page of the book in reading order, as document names from _toc.yml (chapters
    and the sections nested under them)."""
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())

    def files(entries: list[dict]) -> list[str]:
        return [
            name
            for e in entries
            for name in [e["file"], *files(e.get("sections", []))]
            if "file" in e
        ]

    return [toc["root"]] + files(toc["chapters"])


def _excluded() -> list[str]:
    config = yaml.safe_load((BOOK / "_config.yml").read_text())
    return config["execute"]["exclude_patterns"]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    """Build the book once with warnings as errors; return the HTML folder and the log."""
    out = tmp_path_factory.mktemp("book")
    cmd = [
        sys.executable,
        "-c",
        "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
        "build",
        str(BOOK),
        "--path-output",
        str(out),
        "--warningiserror",
        "--keep-going",
        "--all",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    # The cause (a warning, a cell's exception) sits far above the final traceback.
    causes = [line for line in log.splitlines() if re.search(r"WARNING|Error\b|error:", line)]
    assert proc.returncode == 0, "book build failed:\n" + "\n".join(causes[-40:])
    return out / "_build" / "html", log


def test_build_is_clean_and_every_chapter_has_outputs(built):
    html_dir, log = built
    # ipykernel's own start-up notice about its local TCP transport is no build warning.
    warnings = [
        line
        for line in log.splitlines()
        if ("WARNING" in line or "ERROR" in line)
        and not line.startswith("[IPKernelApp] WARNING | Kernel is running over TCP")
    ]
    assert not warnings, "\n".join(warnings)
    for page in _pages():
        assert (html_dir / f"{page}.html").is_file(), page
    # Every chapter shows cell outputs: executed by this build, or committed with them.
    for page in _pages()[1:]:
        assert 'class="cell_output' in (html_dir / f"{page}.html").read_text(), page
    # Markdown tables from rfcalc and netbuilder render as tables, not as rows of pipes.
    for page in _pages():
        raw = (html_dir / f"{page}.html").read_text()
        assert not re.search(r"<p>\|[^<]*\|\s*\n\|", raw), f"{page}: a table left as text"
    for page, tables in {
        "01_rf_arithmetic": 2,
        "04_skip": 1,
        "05_budget": 2,
        "08_experiments": 1,
    }.items():
        assert (html_dir / f"{page}.html").read_text().count("<table") >= tables, page


@pytest.mark.parametrize("name", ["06_data.ipynb", "07_training.ipynb"])
def test_committed_chapters_carry_their_outputs(name):
    """Chapters excluded from execution must hold outputs from their real run, no errors."""
    assert name in _excluded()
    nb = json.loads((BOOK / name).read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c.get("execution_count") for c in code), "a cell never ran"
    outputs = [o for c in code for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    figures = sum("image/png" in o.get("data", {}) for o in outputs)
    assert figures >= 2, f"{figures} figures"
    # One text box per cell: no stderr (warnings, progress bars) in the committed outputs.
    streams = [[o.get("name") for o in c["outputs"] if o["output_type"] == "stream"] for c in code]
    assert not [s for s in streams if "stderr" in s], "stderr in a committed output"
    # Code and printed lines fit the text column (77 characters at 1280 px).
    lines = [line for c in code for line in "".join(c["source"]).splitlines()]
    lines += [
        line
        for o in outputs
        if o["output_type"] == "stream"
        for line in "".join(o["text"]).splitlines()
    ]
    assert not [line for line in lines if len(line) > 77], "lines wider than the column"


def test_chapter_7_is_the_training_and_holds_a_finished_run():
    nb = json.loads((BOOK / "07_training.ipynb").read_text())
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    # The notebook trains through the package (no copy of the loop), settings from the
    # environment, as another notebook runner (a test, a GPU machine) sets them.
    assert "train_run(" in code and "for x, y in" not in code
    for name in ("EPOCHS", "SUBSET", "RUN_DIR", "CIFAR10_DIR"):
        assert f'os.environ.get("{name}"' in code, name
    text = "".join(
        "".join(o.get("text", ""))
        for c in nb["cells"]
        if c["cell_type"] == "code"
        for o in c["outputs"]
    )
    # The committed outputs come from a finished run, and say how the training cell got it.
    assert re.search(r"found\s+the\s+finished\s+run|trained\s+epochs\s+1\s+to", text)
    done = re.search(r"(\d+) epochs, ([\d,]+) images, [\d.]+ min, test accuracy", text)
    assert done and int(done.group(1)) >= 1


def _one_cycle_phases(total: int) -> list[int]:
    """Steps per phase as torch's three-phase OneCycleLR assigns them: each step index goes
    to the first phase whose end_step it does not pass (the scheduler's own boundaries)."""
    import torch

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.005)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.1, total_steps=total, pct_start=0.4, div_factor=20, three_phase=True
    )
    ends = [p["end_step"] for p in sched._schedule_phases]
    counts = [0, 0, 0]
    for i in range(total):
        counts[next(k for k, end in enumerate(ends) if i <= end)] += 1
    return counts


def test_chapter_7_phases_and_falls_are_the_schedulers_and_the_runs():
    """Ch7's phase table and Solution 1 against torch's scheduler; its list of the largest
    test-accuracy falls against the run's own record (book/results/gpu-s9-seed1.json)."""
    nb = json.loads((BOOK / "07_training.ipynb").read_text())
    md = re.sub(r"\s+", " ", "".join("".join(c["source"]) for c in nb["cells"]))
    out = "".join(
        "".join(o.get("text", ""))
        for c in nb["cells"]
        if c["cell_type"] == "code"
        for o in c["outputs"]
    )
    # 100 epochs of 98 steps (the stored run kept its partial batches)
    up, down, anneal = _one_cycle_phases(9800)
    assert f"warm-up {up} (40%), come-down {down} (40%), anneal {anneal} (20%)" in out
    assert (up, down, anneal) != (3920, 3920, 1960)  # the old round() split
    # Solution 1: 2,000 images, batch 512: 3 steps an epoch (6), or 4 keeping the last (8)
    assert "so {}, {} and {}".format(*_one_cycle_phases(6)) in md
    assert "so {}, {} and {}".format(*_one_cycle_phases(8)) in md
    # The five largest falls, all before the warm-up ends (N9 of the second review).
    acc = json.loads((BOOK / "results" / "gpu-s9-seed1.json").read_text())["test_acc"]
    falls = sorted(((acc[e - 2] - acc[e - 1], e) for e in range(2, len(acc) + 1)), reverse=True)
    top = [e for drop, e in falls[:5] if drop > 0]
    assert all(e * 98 <= up for e in top)
    for drop, e in falls[:5]:
        assert f"epoch {e:>3}: {100 * drop:.1f}, lr" in out


def _text(html_dir: Path, page: str) -> str:
    raw = (html_dir / f"{page}.html").read_text()
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", raw)))


def test_numbers_the_course_rests_on_are_shown(built):
    html_dir, _ = built
    # Chapter 1: the 7 rows typed in by hand agree with rfcalc; the output field is 24
    # (16 after pool2, + (3-1)*4 for conv5).
    assert "all 7 rows agree; the output sees 24 pixels" in _text(html_dir, "01_rf_arithmetic")
    # Chapter 2: five 3x3 layers of dilation 2 reach offsets -10..10 in steps of 2 on each
    # axis, 11 x 11 = 121 pixels of the 21 x 21 = 441 in their field (1 + 5 * 2 * 2 = 21).
    assert "gridded 2,2,2,2,2 reaches 121 of the 441 pixels" in _text(html_dir, "02_dilated")
    # Chapter 4: a 1x1 stem and eight padded 3x3 layers: 1 + 8 * 2 = 17, skips or not.
    ch4 = _text(html_dir, "04_skip")
    assert "plain : rf 17" in ch4 and "residual: rf 17" in ch4
    # Chapter 5: the assignment's Net, counted in examples/s9_net.py's docstring by hand.
    ch5 = _text(html_dir, "05_budget")
    assert "190,509 parameters, receptive field 48" in ch5
    # Growth 2d per transition (jump 1): t1 +2, t2 +4, t3 +8, t4 +16; unpadded, each
    # shrinks the map by 2d: 32 -> 30 -> 26 -> 18 -> 2.
    assert "t1 +2, t2 +4, t3 +8, t4 +16" in ch5 and "32 -> 30 -> 26 -> 18 -> 2" in ch5
    # t4's 3x3 taps 8 apart on an 18x18 map read rows and columns {0,1,8,9,16,17}: 6 x 6.
    assert "t4 reads 36 of the 324 positions" in ch5
    # Biases before BatchNorm in the 7 separable layers (depthwise + pointwise, one per
    # channel each): c1.1: 23+23, c2: 2*(32+32), c3: 2*(63+63), c4: 2*(93+93) = 798.
    assert "798 bias parameters sit before a BatchNorm" in ch5
    # Chapter 8: with no real difference the 6 accuracies are exchangeable; the 3-vs-3
    # ranges miss each other when one side holds the 3 lowest or the 3 highest: 2 of the
    # C(6,3) = 20 splits. The undilated run: (k-1)*d = 2 per 3x3 layer, 12 layers -> 25.
    ch8 = _text(html_dir, "08_experiments")
    assert "ranges, one comparison, exactly: 2/C(6,3) = 0.10" in ch8
    assert "undilated 2.41× 24×24 25 48" in ch8


class _Ids(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.ids.update(v for k, v in attrs if k in ("id", "name") and v)


@functools.lru_cache(maxsize=None)
def _fetch_ids(url: str) -> frozenset[str] | None:
    """The ids of the page at url, or None when it cannot be fetched."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            parser = _Ids()
            parser.feed(resp.read().decode("utf-8", "replace"))
            return frozenset(parser.ids)
    except (urllib.error.URLError, OSError):
        return None


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output for failures
        pass


@pytest.fixture(scope="module")
def site(built):
    html_dir, _ = built
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(html_dir))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("Chromium is not installed (scripts/setup-system.sh installs it as root)")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=chromium, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield context.new_page()
        finally:
            context.close()


_IMAGES_JS = """async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  return imgs.map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0}));
}"""


def _problems_on(page, url: str) -> tuple[list[str], list[str]]:
    """Load url; return its problems (console errors, failed loads, images) and its links."""
    problems: list[str] = []

    def on_console(m):
        return m.type == "error" and problems.append(f"console: {m.text}")

    def on_error(e):
        return problems.append(f"page error: {e}")

    def on_failed(r):
        return problems.append(f"failed: {r.url} {r.failure}")

    def on_response(r):
        return r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}")

    page.on("console", on_console)
    page.on("pageerror", on_error)
    page.on("requestfailed", on_failed)
    page.on("response", on_response)
    try:
        page.goto(url, wait_until="networkidle")
        problems += [
            f"image not loaded: {i['src']}" for i in page.evaluate(_IMAGES_JS) if not i["ok"]
        ]
        links = page.evaluate("Array.from(document.querySelectorAll('a[href]'), a => a.href)")
    finally:
        page.remove_listener("console", on_console)
        page.remove_listener("pageerror", on_error)
        page.remove_listener("requestfailed", on_failed)
        page.remove_listener("response", on_response)
    return problems, links


def _broken(links: list[str], site: str) -> list[str]:
    """Internal links whose page is missing or whose #fragment is no id on that page."""
    broken = []
    for link in sorted(set(links)):
        if not link.startswith(site):
            continue
        target, _, fragment = link.partition("#")
        ids = _fetch_ids(target)
        if ids is None:
            broken.append(link)
        elif fragment and urllib.parse.unquote(fragment) not in ids:
            broken.append(link)
    return broken


def test_every_page_loads_whole_in_chromium(built, site, browser_page):
    html_dir, _ = built
    report: dict[str, list[str]] = {}
    images = 0
    for page in ["index"] + _pages():
        problems, links = _problems_on(browser_page, site + f"{page}.html")
        problems += [f"broken link: {link}" for link in _broken(links, site)]
        images += browser_page.evaluate("document.images.length")
        if problems:
            report[page] = problems
    assert not report, json.dumps(report, indent=1)
    assert images > 0


def test_solutions_stay_hidden_until_clicked(built, site, browser_page):
    for page in _pages()[1:]:
        browser_page.goto(site + f"{page}.html", wait_until="networkidle")
        solutions = browser_page.locator(".admonition.dropdown")
        assert solutions.count() >= 1, f"{page}: no exercise solutions"
        hidden = browser_page.evaluate(
            "Array.from(document.querySelectorAll('.admonition.dropdown'), d => "
            "Array.from(d.children).filter(c => !c.classList.contains('admonition-title'))"
            ".every(c => !c.checkVisibility({visibilityProperty: true})))"
        )
        assert all(hidden), f"{page}: a solution is visible before it is clicked"
    browser_page.goto(site + "01_rf_arithmetic.html", wait_until="networkidle")
    solution = browser_page.locator(".admonition.dropdown").first  # Solution 1
    body = solution.locator("p").last
    assert not body.is_visible()
    solution.locator("button, .admonition-title").first.click()
    body.wait_for(state="visible", timeout=5000)
    assert "Solution 1" in solution.inner_text()


# Everything a reader must see whole: tables, code and its outputs, figures, display maths.
_WIDE_JS = """() => {
  const column = document.querySelector('article.bd-article');
  const box = column.getBoundingClientRect();
  const style = getComputedStyle(column);
  const right = box.right - parseFloat(style.paddingRight);
  const what = 'table, pre, img, svg, mjx-container[display="true"], .cell_output';
  const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + ' ' +
    (e.innerText || e.getAttribute('src') || '').trim().slice(0, 60).replace(/\\s+/g, ' ');
  const found = [];
  for (const e of column.querySelectorAll(what)) {
    if (!e.checkVisibility()) continue;           // folded solutions, hidden outputs
    if (e.closest('svg') && e.tagName.toLowerCase() !== 'svg') continue;
    if (e.closest('mjx-container') && e.tagName.toLowerCase() === 'svg') continue;
    const r = e.getBoundingClientRect();
    if (r.right > right + 1) found.push(`${name(e)}: right edge ${Math.round(r.right)} px, ` +
                                         `column ends at ${Math.round(right)} px`);
    // content cut off inside its own box (a code line, a table's last columns)
    const scroller = e.tagName.toLowerCase() === 'table' ? e.parentElement : e;
    if (scroller.scrollWidth > scroller.clientWidth + 1 &&
        getComputedStyle(scroller).overflowX !== 'visible')
      found.push(`${name(e)}: ${scroller.scrollWidth} px of content in ` +
                 `${scroller.clientWidth} px`);
  }
  return found;
}"""


def test_nothing_is_wider_than_the_text_column_at_1280(built, site, browser_page):
    """At 1280x800 no table, code cell, output or figure overflows the text column or hides
    part of itself behind a scroll bar."""
    browser_page.set_viewport_size({"width": 1280, "height": 800})
    report = {}
    for page in _pages():
        browser_page.goto(site + f"{page}.html", wait_until="networkidle")
        browser_page.evaluate(_IMAGES_JS)
        if found := browser_page.evaluate(_WIDE_JS):
            report[page] = found
    assert not report, json.dumps(report, indent=1, ensure_ascii=False)


def test_no_page_scrolls_sideways_on_a_phone(built, site, browser_page):
    """At 390 px (a phone) the page itself never scrolls sideways (a wide table or code
    block may scroll inside its own box)."""
    browser_page.set_viewport_size({"width": 390, "height": 844})
    wide = {}
    try:
        for page in _pages():
            browser_page.goto(site + f"{page}.html", wait_until="networkidle")
            browser_page.evaluate(_IMAGES_JS)
            width = browser_page.evaluate("document.documentElement.scrollWidth")
            if width > 390:
                wide[page] = width
    finally:
        browser_page.set_viewport_size({"width": 1280, "height": 800})
    assert not wide, f"pages wider than the 390 px screen: {wide}"


def test_each_cell_shows_one_output_box_for_its_text(built):
    """stdout and stderr of a cell are merged into one box (nb_merge_streams)."""
    html_dir, _ = built
    boxes = re.compile(r'<div class="output (?:stream|stderr)')
    report = {}
    for page in _pages()[1:]:
        raw = (html_dir / f"{page}.html").read_text()
        cells = raw.split('<div class="cell_output docutils container">')[1:]
        many = [
            i
            for i, cell in enumerate(cells)
            if len(boxes.findall(cell.split('<div class="cell docutils container')[0])) > 1
        ]
        if many:
            report[page] = many
    assert not report, f"cells (by output index) with several text boxes: {report}"
