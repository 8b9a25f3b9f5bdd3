"""Every result type shows itself: a one-line repr with its key figures, the text table (or
numbers) on print, an HTML table (or picture) in a notebook."""

import torch.nn as nn

import rfcalc
from rfcalc.erf import noise_images


def _net():
    # conv 3 (rf 3), conv 3 stride 2 (rf 5, jump 2), conv 3 (rf 9): on 1×16×16
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 2, 3, 2, 1), nn.Conv2d(2, 2, 3)
    )


def test_verification_repr_is_one_line_with_the_counts():
    result = rfcalc.verify(_net(), (1, 16, 16))
    one = repr(result)
    assert one == "<Verification at 1×16×16: 4 rows, 4 agree, 0 differ, 0 not measured>"
    assert len(result) == 4 and [c.name for c in result] == ["0", "1", "2", "3"]
    # the last conv: 6 units, jump 2, start 0 + (3-1)/2·2 = 2, rf 9; its centre unit (2 of
    # 0..5) is centred on 2 + 2·2 = 6 and sees 6 - 4 .. 6 + 4 = 2..10
    assert repr(result["3"]) == "<RowCheck 3 (Conv2d): rf 9, theory 2..10, measured 2..10: ok>"
    assert str(result) == result.render("text") and "4 rows: 4 agree, 0 differ" in str(result)
    html = result._repr_html_()
    assert html.startswith("<table>") and "<td>ok</td>" in html and "<html" not in html


def test_verification_repr_names_the_rows_that_differ():
    from dataclasses import replace

    result = rfcalc.verify(_net(), (1, 16, 16))
    bad = replace(result, checks=(replace(result.checks[2], agree=False), *result.checks[3:]))
    assert repr(bad) == "<Verification at 1×16×16: 2 rows, 1 agree, 1 differ: 2, 0 not measured>"


def test_erf_repr_print_and_picture():
    model = _net()
    field = rfcalc.erf(model, noise_images((1, 16, 16), 3), layer="3")
    one = repr(field)
    assert one.startswith("<ERF of 3 (Conv2d) unit 2,2, as initialised, 3 inputs: rf 9, ")
    assert "% inside the box, 50 % within " in one and "\n" not in one and len(one) < 160
    assert "array(" not in one
    assert str(field).startswith("ERF of 3 (Conv2d), unit 2,2 of its 6×6 map")
    html = field._repr_html_()
    assert '<img alt="ERF heatmap of 3" src="data:image/png;base64,' in html
    assert "theoretical box" in html


def test_analysis_repr_html_and_markdown_follow_the_display_options():
    s = rfcalc.summary(_net(), (1, 1, 16, 16), columns=["rf"])
    assert "<th>name</th><th>rf</th></tr>" in s._repr_html_()
    assert s._repr_markdown_().splitlines()[0] == "| name | rf |"
