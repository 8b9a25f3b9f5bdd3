"""Every format renders a hand-built Analysis; the expected cells are worked out by hand.

The hand-built net on a 3×8×8 input (start = centre of the first unit's field, in input
pixels, as in the course's convention):
  features.0  Conv2d 3×3, s1, p1, 3→16: rf 3, jump 1, start 0; params 3·16·9 + 16 = 448
  features.1  Conv2d 1×7, s1, p0×3, 16→16: rf (3, 3+6) = 3×9; params 16·16·7 + 16 = 1,808
  features.2.pool MaxPool2d 2, s2: rf (3+1, 9+1) = 4×10, jump 2, start 0 + 1/2·1 = 1/2
  up          Upsample ×4 (approx): jump 2/4 = 1/2, size 16, rf kept at 4×10, start -1/4
  blur        an op without a rule: unknown
  head        Linear 16·4·4·... global, params 2,560 + 10 = 2,570 (made-up but fixed)
Total params: 448 + 1,808 + 2,570 = 4,826.
Output channels and multiply-accumulates (per output element: in channels × kernel):
  features.0  16 channels, 16·8·8 outputs × 3·3·3 = 27,648
  features.1  16 channels, 16·8·8 outputs × 16·1·7 = 114,688
  head        10 features from 256: 10 × 256 = 2,560
Total MACs: 27,648 + 114,688 + 2,560 = 144,896.
"""

import csv
import io
import json
from fractions import Fraction as F

import pytest
import torch
import torch.nn as nn

from rfcalc import analyze
from rfcalc.analysis import APPROX, EXACT, GLOBAL, UNKNOWN, Analysis, Row
from rfcalc.geometry import Window
from rfcalc.render import FORMATS, render
from rfcalc.render import graphviz as graph
from rfcalc.render.cells import axes, number

SHAPES = {
    "features.0": ((16, 8, 8), 27_648),
    "features.1": ((16, 8, 8), 114_688),
    "features.2.pool": ((16, 4, 4), 0),
    "up": ((16, 16, 16), 0),
    "blur": ((16, 16, 16), 0),
    "head": ((10,), 2_560),
}


def _row(name, op, k, s, p, d, size, jump, rf, start, params, status=EXACT, note=""):
    window = None if k is None else Window(k, s, p, d)
    shape, macs = SHAPES.get(name, ((), 0))
    return Row(
        name, op, window, size, jump, rf, start, params, status, note, macs=macs, shape=shape
    )


ROWS = (
    _row(
        "features.0", "Conv2d", (3, 3), (1, 1), (1, 1), (1, 1), (8, 8), (1, 1), (3, 3), (0, 0), 448
    ),
    _row(
        "features.1", "Conv2d", (1, 7), (1, 1), (0, 3), (1, 1), (8, 8), (1, 1), (3, 9), (0, 0), 1808
    ),
    _row(
        "features.2.pool",
        "MaxPool2d",
        (2, 2),
        (2, 2),
        (0, 0),
        (1, 1),
        (4, 4),
        (2, 2),
        (4, 10),
        (F(1, 2), F(1, 2)),
        0,
    ),
    _row(
        "up",
        "Upsample",
        None,
        None,
        None,
        None,
        (16, 16),
        (F(1, 2), F(1, 2)),
        (4, 10),
        (F(-1, 4), F(-1, 4)),
        0,
        APPROX,
        "up-sampling border",
    ),
    _row(
        "blur",
        "fft_fft2",
        None,
        None,
        None,
        None,
        (16, 16),
        (),
        (),
        (),
        0,
        UNKNOWN,
        "no rule for torch.fft.fft2",
    ),
    _row(
        "head",
        "Linear",
        None,
        None,
        None,
        None,
        (),
        (),
        (),
        (),
        2570,
        GLOBAL,
        "every input reaches every output",
    ),
)
# the notes section: one line per row that is not exact, as analyze() writes it
NOTES = (
    "up (approx): up-sampling border",
    "blur (unknown): no rule for torch.fft.fft2",
    "head (global): every input reaches every output",
)
ANALYSIS = Analysis((3, 8, 8), ROWS, ROWS[-1], 4826, NOTES)
# The same net cut after the pool: an exact output field 4×10 that misses the 8×8 input
# (4 < 8 on the first axis), and 448 + 1,808 = 2,256 parameters.
CUT = Analysis((3, 8, 8), ROWS[:3], ROWS[2], 2256)


def test_cells_compact_per_axis_values_and_fractions():
    assert axes((3, 3)) == "3"
    assert axes((1, 7)) == "1×7"
    assert axes((F(1, 2), F(1, 2))) == "1/2"
    assert axes((F(4, 2), F(-1, 4))) == "2×-1/4"
    assert axes(None) == "-" and axes(()) == "-"
    assert number(F(6, 3)) == "2"


def _text_line(text, name):
    return next(line.split() for line in text.splitlines() if line.split()[:1] == [name])


def test_text_table_rows_and_summary():
    text = render(ANALYSIS, "text")
    # no row is dilated, so the text table leaves the dilation column out
    assert text.splitlines()[1].split() == [
        "name",
        "op",
        "kernel",
        "stride",
        "padding",
        "channels",
        "size",
        "jump",
        "rf",
        "start",
        "params",
        "macs",
    ]
    assert _text_line(text, "features.1") == [
        "features.1",
        "Conv2d",
        "1×7",
        "1",
        "0×3",
        "16",
        "8",
        "1",
        "3×9",
        "0",
        "1,808",
        "114,688",
    ]
    assert _text_line(text, "features.2.pool") == [
        "features.2.pool",
        "MaxPool2d",
        "2",
        "2",
        "0",
        "16",
        "4",
        "2",
        "4×10",
        "1/2",
        "0",
        "0",
    ]
    assert _text_line(text, "up") == [
        "up",
        "Upsample",
        "-",
        "-",
        "-",
        "16",
        "16",
        "1/2",
        "~4×10",
        "-1/4",
        "0",
        "0",
    ]
    assert _text_line(text, "blur") == [
        "blur",
        "fft_fft2",
        "-",
        "-",
        "-",
        "16",
        "16",
        "?",
        "?",
        "?",
        "0",
        "0",
    ]
    assert _text_line(text, "head") == [
        "head",
        "Linear",
        "-",
        "-",
        "-",
        "10",
        "-",
        "-",
        "global",
        "-",
        "2,570",
        "2,560",
    ]
    assert "Multiply-adds (MACs): 144,896 per image" in text
    # every column, dilation included, when asked for all rows as they are
    assert _text_line(render(ANALYSIS, "text", depth=0), "features.1")[5:8] == ["1", "16", "8"]
    # nested names are indented by their depth (two spaces a level)
    assert "\n    features.2.pool " in text
    assert "Output receptive field: global" in text
    assert "Parameters: 4,826" in text
    assert "Covers the whole 8×8 input: yes" in text
    assert text.endswith(
        "Notes (~ marks an approximate rf):\n"
        "  up (approx): up-sampling border\n"
        "  blur (unknown): no rule for torch.fft.fft2\n"
        "  head (global): every input reaches every output\n"
    )
    # each note once: the summary does not repeat them
    assert text.count("no rule for torch.fft.fft2") == 1


def test_text_summary_of_an_exact_output_that_misses_the_input():
    text = render(CUT, "text")
    assert "Output receptive field: 4×10\n" in text
    assert "Output jump: 2, start: 1/2, size: 4" in text
    assert "Parameters: 2,256" in text
    assert "Covers the whole 8×8 input: no" in text


def test_text_summary_says_unknown():
    out = ROWS[4]
    text = render(Analysis((3, 8, 8), ROWS[:5], out, 2256), "text")
    assert (
        "Output receptive field: unknown, an op without a rule touched the map: "
        "no rule for torch.fft.fft2" in text
    )
    assert "Covers the whole input: unknown" in text


def test_markdown_table():
    md = render(ANALYSIS, "markdown")
    lines = md.splitlines()
    assert lines[0] == (
        "| name | op | kernel | stride | padding | dilation | channels | size | jump | rf | start "
        "| params | macs |"
    )
    assert lines[1] == "|:---|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    assert (
        "| features.1 | Conv2d | 1×7 | 1 | 0×3 | 1 | 16 | 8 | 1 | 3×9 | 0 | 1,808 | 114,688 |"
        in lines
    )
    assert "| up | Upsample | - | - | - | - | 16 | 16 | 1/2 | \\~4×10 | -1/4 | 0 | 0 |" in lines
    assert "- Parameters: 4,826" in lines


def test_csv_rows_parse_back():
    rows = list(csv.DictReader(io.StringIO(render(ANALYSIS, "csv"))))
    assert [r["name"] for r in rows] == [r.name for r in ROWS]
    assert rows[1] == {
        "name": "features.1",
        "op": "Conv2d",
        "kernel": "1×7",
        "stride": "1",
        "padding": "0×3",
        "dilation": "1",
        "channels": "16",
        "size": "8",
        "jump": "1",
        "rf": "3×9",
        "start": "0",
        "params": "1808",
        "macs": "114688",
        "status": "exact",
        "note": "",
    }
    assert rows[5]["rf"] == "global" and rows[5]["status"] == "global"


def test_json_document():
    doc = json.loads(render(ANALYSIS, "json"))
    assert doc["input"] == [3, 8, 8]
    assert doc["params"] == 4826 and doc["macs"] == 144_896
    assert doc["covers_input"] is True
    pool = doc["layers"][2]
    assert pool == {
        "name": "features.2.pool",
        "op": "MaxPool2d",
        "kernel": [2, 2],
        "stride": [2, 2],
        "padding": [0, 0],
        "dilation": [1, 1],
        "channels": 16,
        "size": [4, 4],
        "jump": [2, 2],
        "rf": [4, 10],
        "start": [0.5, 0.5],
        "reads": None,  # a hand-made row: no pixels-read pattern given
        "params": 0,
        "macs": 0,
        "global": False,
        "status": "exact",
        "note": None,
        "inputs": None,
    }
    up = doc["layers"][3]
    assert up["kernel"] is None and up["jump"] == [0.5, 0.5] and up["start"] == [-0.25, -0.25]
    assert isinstance(doc["layers"][0]["rf"][0], int)
    blur = doc["layers"][4]
    assert blur["rf"] is None and blur["jump"] is None and blur["status"] == "unknown"
    assert doc["layers"][5]["global"] is True and doc["layers"][5]["size"] == []
    assert doc["output"]["global"] is True
    cut = json.loads(render(CUT, "json"))
    assert cut["output"]["rf"] == [4, 10] and cut["output"]["start"] == [0.5, 0.5]
    assert cut["covers_input"] is False


NASTY = Analysis(
    (3, 8, 8),
    (_row("a_b", "Fn<&>%$#{}~^\\", None, None, None, None, (8, 8), (1, 1), (1, 1), (0, 0), 0),),
    None,
    0,
)
NASTY = Analysis(NASTY.input_shape, NASTY.rows, NASTY.rows[0], 0)


def test_html_is_a_standalone_escaped_page():
    page = render(ANALYSIS, "html")
    assert page.startswith('<!DOCTYPE html>\n<html lang="en">')
    assert '<meta charset="utf-8">' in page and page.rstrip().endswith("</html>")
    assert '<tr class="exact"><td>features.1</td><td>Conv2d</td><td class="num">1×7</td>' in page
    assert "<li>Parameters: 4,826</li>" in page
    nasty = render(NASTY, "html")
    assert "<td>Fn&lt;&amp;&gt;%$#{}~^\\</td>" in nasty
    assert "Fn<&>" not in nasty


def test_latex_tabular_is_escaped():
    tex = render(ANALYSIS, "latex")
    assert tex.startswith("\\begin{tabular}{llrrrrrrrrrrr}\n\\toprule\n")
    assert (
        "features.1 & Conv2d & 1$\\times$7 & 1 & 0$\\times$3 & 1 & 16 & 8 & 1 & 3$\\times$9 "
        "& 0 & 1,808 & 114,688 \\\\"
    ) in tex
    assert "\\item Parameters: 4,826" in tex
    nasty = render(NASTY, "latex")
    assert (
        "a\\_b & Fn\\textless{}\\&\\textgreater{}\\%\\$\\#\\{\\}\\textasciitilde{}"
        "\\textasciicircum{}\\textbackslash{} &"
    ) in nasty


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="unknown format 'yaml'"):
        render(ANALYSIS, "yaml")
    assert FORMATS == ("text", "markdown", "csv", "json", "html", "latex")


def test_graph_labels_nodes_and_says_when_edges_are_the_execution_chain():
    source = graph.build(CUT).source
    # name; op with its window (1×7, dilation and stride 1 left out); size · jump · rf
    assert 'n1 [label="features.1\\nConv2d 1×7\\n8×8 · j 1 · rf 3×9"' in source
    # the pool's stride shows; its field is exact, so white, like the legend's "exact"
    assert (
        'n2 [label="features.2.pool\\nMaxPool2d 2×2 s2\\n4×4 · j 2 · rf 4×10" '
        "fillcolor=white" in source
    )
    assert "n_input -> n0" in source and "n0 -> n1" in source and "n1 -> n2" in source
    assert graph.CHAIN_NOTE in source


def test_verify_renderers():
    from rfcalc.render import verify as rv
    from rfcalc.verify import RowCheck, Verification

    # conv 5×5 at centre (3, 3) of an 8×8 input: rf 5, field 1..5, measured the same;
    # a later 9×9 field at unit (3, 3) spans -1..7, which the border clips to 0..7;
    # an unknown row is not measured
    result = Verification(
        (1, 8, 8),
        (
            RowCheck(
                "a",
                "Conv2d",
                EXACT,
                (8, 8),
                (3, 3),
                (F(5), F(5)),
                ((1, 5), (1, 5)),
                ((1, 5), (1, 5)),
                True,
            ),
            RowCheck(
                "b",
                "Conv2d",
                EXACT,
                (8, 8),
                (3, 3),
                (F(9), F(9)),
                ((0, 7), (0, 7)),
                ((0, 7), (0, 6)),
                False,
            ),
            RowCheck("c", "fft_fft2", UNKNOWN, (8, 8), (), (), None, None, None, "no rule"),
        ),
        ("a note",),
    )
    text = rv.render(result, "text")
    lines = [line.split() for line in text.splitlines()]
    assert ["a", "Conv2d", "exact", "3", "5", "1..5", "1..5", "ok"] in lines
    assert ["b", "Conv2d", "exact", "3", "9", "0..7", "0..7×0..6", "DIFFERS"] in lines
    assert ["c", "fft_fft2", "unknown", "-", "-", "-", "-", "-"] in lines
    assert "    clipped by the border: rf 9, 8 inside the image\n" in text
    assert "3 rows: 1 agree, 1 differ, 1 not measured (unknown fields)" in text
    assert "DISAGREEMENT: b\n" in text and "Note: a note" in text
    md = rv.render(result, "markdown")
    assert "| a | Conv2d | exact | 3 | 5 | 1..5 | 1..5 | ok |  |" in md
    rows = list(csv.DictReader(io.StringIO(rv.render(result, "csv"))))
    assert rows[1]["measured"] == "0..7×0..6" and rows[1]["check"] == "DIFFERS"
    doc = json.loads(rv.render(result, "json"))
    assert doc["agree"] is False and doc["disagreements"] == ["b"]
    assert doc["rows"][1]["measured_span"] == [[0, 7], [0, 6]]
    assert doc["rows"][2]["rf"] is None and doc["rows"][2]["agree"] is None
    with pytest.raises(ValueError, match="unknown format 'yaml'"):
        rv.render(result, "yaml")


def test_graph_draws_the_recorded_data_flow_when_rows_carry_it():
    from dataclasses import replace

    a, b = ROWS[0], ROWS[1]
    rows = (
        replace(a, inputs=("input",)),
        replace(b, inputs=("features.0",)),
        replace(b, name="add", op="add", inputs=("features.0", "features.1")),
    )
    source = graph.build(Analysis((3, 8, 8), rows, rows[-1], 0)).source
    # a skip: features.0 feeds both features.1 and the add
    for edge in ("n_input -> n0", "n0 -> n1", "n0 -> n2", "n1 -> n2"):
        assert edge in source
    assert graph.CHAIN_NOTE not in source
    broken = (replace(a, inputs=("nowhere",)),)
    with pytest.raises(ValueError, match="reads 'nowhere'"):
        graph.build(Analysis((3, 8, 8), broken, broken[0], 0))


def _writer_table():
    from rfcalc.render.table import Column, Table, TableRow

    cols = (
        Column("name"),
        Column("count", numeric=True),
        Column("why"),
        Column("raw", data_only=True),
    )
    rows = (
        TableRow({"name": "a_b", "count": 1234567, "why": "", "raw": "x"}, status="exact"),
        TableRow(
            {"name": "c", "count": 7, "why": "1×7 & <more>", "raw": ""},
            status="unknown",
            tip="no rule",
            depth=2,
        ),
    )
    return Table(
        cols,
        rows,
        {"n": [1234567, 7], "rows": [{"a": 1}]},
        title="T & t",
        caption=("cap",),
        summary=("sum 1",),
        notes_title="Notes here",
        notes=("n1",),
    )


def test_table_writer_text_lays_out_every_cell():
    from dataclasses import replace

    from rfcalc.render.table import write

    table = _writer_table()
    lines = write(table, "text").splitlines()
    # name 5 wide (c indented two levels), count 9 ("1,234,567"), why 12; two spaces apart
    assert lines == [
        "cap",
        "=" * 30,
        "name       count  why",
        "-" * 30,
        "a_b    1,234,567",
        "    c          7  1×7 & <more>",
        "=" * 30,
        "sum 1",
        "Notes here:",
        "  n1",
    ]
    # `under`: that column leaves the table for a line of its own under its (non-empty) row
    under = write(replace(table, under="why"), "text").splitlines()
    assert under[1:8] == [
        "=" * 16,
        "name       count",
        "-" * 16,
        "a_b    1,234,567",
        "    c          7",
        "    1×7 & <more>",
        "=" * 16,
    ]


def test_table_writer_other_formats_cell_by_cell():
    from rfcalc.render.table import write

    table = _writer_table()
    rows = list(csv.reader(io.StringIO(write(table, "csv"))))
    assert rows == [
        ["name", "count", "why", "raw"],
        ["a_b", "1234567", "", "x"],
        ["c", "7", "1×7 & <more>", ""],
    ]
    md = write(table, "markdown").splitlines()
    assert md == [
        "cap",
        "",
        "| name | count | why |",
        "|:---|---:|:---|",
        "| a\\_b | 1,234,567 |  |",
        "| c | 7 | 1×7 & \\<more\\> |",
        "",
        "- sum 1",
        "- n1",
    ]
    tex = write(table, "latex").splitlines()
    assert tex[:7] == [
        "\\begin{tabular}{lrl}",
        "\\toprule",
        "name & count & why \\\\",
        "\\midrule",
        "a\\_b & 1,234,567 &  \\\\",
        "c & 7 & 1$\\times$7 \\& \\textless{}more\\textgreater{} \\\\",
        "\\bottomrule",
    ]
    assert tex[-5:] == [
        "\\begin{itemize}",
        "\\item cap",
        "\\item sum 1",
        "\\item n1",
        "\\end{itemize}",
    ]
    page = write(table, "html")
    assert "<title>T &amp; t</title>" in page and "<p>cap</p>" in page
    assert '<tr class="exact"><td>a_b</td><td class="num">1,234,567</td><td></td></tr>' in page
    assert (
        '<tr class="unknown" title="no rule"><td>c</td><td class="num">7</td>'
        "<td>1×7 &amp; &lt;more&gt;</td></tr>"
    ) in page
    assert "<li>sum 1</li>" in page and "<h2>Notes here</h2><ul><li>n1</li></ul>" in page
    assert "raw" not in page
    assert json.loads(write(table, "json")) == {"n": [1234567, 7], "rows": [{"a": 1}]}
    with pytest.raises(ValueError, match="unknown format 'yaml'"):
        write(table, "yaml")


def test_analysis_shows_itself_as_the_table():
    assert str(ANALYSIS) == render(ANALYSIS, "text")
    assert ANALYSIS._repr_markdown_() == render(ANALYSIS, "markdown")
    one = repr(ANALYSIS)
    assert one == (
        "<Analysis of a 3×8×8 input: 6 rows, output rf global (global), 4,826 parameters, "
        "144,896 MACs>"
    )
    html = ANALYSIS._repr_html_()
    assert "<html" not in html and html.startswith("<table>")
    # a notebook has no page style sheet: the status colour is on the row itself
    assert (
        '<tr class="unknown" style="color: #a00" title="no rule for torch.fft.fft2"><td>blur</td>'
    ) in html
    assert '<tr class="exact"><td>features.0</td>' in html
    assert "<li>blur (unknown): no rule for torch.fft.fft2</li>" in html


def test_analyze_notes_are_the_notes_section():
    import torch.nn as nn

    from rfcalc import analyze

    # conv 3 (exact), nearest up-sampling x2 (units differ: approx), conv 3 (approx again)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Upsample(scale_factor=2), nn.Conv2d(2, 2, 3))
    analysis = analyze(model, (1, 8, 8))
    why = "units differ: rf is the widest unit's, jump the mean spacing"
    assert analysis.notes == (f"1 (approx): {why}", f"2 (approx): {why}")
    # the table says a note shared by several rows once, naming the rows
    assert str(analysis).endswith(
        f"Notes (~ marks an approximate rf):\n  1, 2 (approx, 2 rows): {why}\n"
    )


def test_graph_colours_rows_by_status_and_explains_the_colours_in_a_legend():
    from dataclasses import replace

    a = ROWS[0]
    rows = (
        replace(a, inputs=("input",)),
        replace(a, name="up", op="interpolate", window=None, status="approx", inputs=(a.name,)),
    )
    source = graph.build(Analysis((3, 8, 8), rows, rows[-1], 0)).source
    assert f'fillcolor="{graph.FILL["approx"]}"' in source
    assert "cluster_legend" in source and "approx (rf is a bound)" in source
    assert "global (whole map)" not in source  # only the statuses present are explained


def test_graph_columns_keep_blocks_whole_and_in_order():
    from dataclasses import replace

    # blocks of 3, 3 and 4 rows (by the first part of the name) and 2 top-level rows (one
    # block), in columns of at most 6 nodes: 3 + 3 | 4 + 2
    names = [
        "a.0",
        "a.1",
        "a.2",
        "b.0",
        "b.1",
        "b.2",
        "c.0",
        "c.1",
        "c.2",
        "c.3",
        "head",
        "flatten",
    ]
    rows = [replace(ROWS[0], name=n) for n in names]
    cols = graph.columns(rows, height=6)
    assert [[(b, idx) for b, idx in col] for col in cols] == [
        [("a", [0, 1, 2]), ("b", [3, 4, 5])],
        [("c", [6, 7, 8, 9]), ("", [10, 11])],
    ]
    # a block taller than a column is split, never dropped
    assert graph.columns(rows[:6], height=2) == [
        [("a", [0, 1])],
        [("a", [2])],
        [("b", [3, 4])],
        [("b", [5])],
    ]


# ----------------------------------------------------------------------------
# `covers_input` in the JSON: true, false, and null when the output field is unknown.


class Rolled(nn.Module):
    """A 3x3 conv, then torch.rot90 (no rule): the output field is unknown."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3)

    def forward(self, x):
        return torch.rot90(self.conv(x), 1, dims=(-2, -1))


def _json(model: nn.Module, shape: tuple[int, ...]) -> dict:
    return json.loads(render(analyze(model, shape), "json"))


def test_unknown_output_field_is_null_not_false():
    data = _json(Rolled(), (1, 8, 8))
    assert data["output"]["status"] == "unknown" and data["output"]["rf"] is None
    assert data["covers_input"] is None


@pytest.mark.parametrize(
    "shape, covers",
    [
        ((1, 5, 5), True),  # two 3x3 convs: rf 5, exactly the input: covered
        ((1, 6, 6), False),  # rf 5 on 6 pixels: one pixel short
        ((1, 5, 6), False),  # one axis short is enough to fail
    ],
)
def test_covers_input_at_the_boundary(shape, covers):
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1))
    data = _json(model, shape)
    assert data["output"]["rf"] == [5, 5]
    assert data["covers_input"] is covers
    assert analyze(model, shape).covers_input is covers


class Gated(nn.Module):
    """A 3x3 conv times a gate pooled over the whole map and broadcast back (global)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        y = self.conv(x)
        return y * torch.sigmoid(y.mean((2, 3), keepdim=True))


def test_global_output_covers_the_input():
    data = _json(Gated(), (1, 40, 40))
    assert data["output"]["status"] == "global" and data["covers_input"] is True
