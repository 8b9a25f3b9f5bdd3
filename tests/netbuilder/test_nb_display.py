"""netbuilder's results show themselves: a one-line repr, a table in a notebook."""

from netbuilder.presets import s9
from netbuilder.variants import family, measure


def test_netspec_repr_is_one_line_and_print_lists_the_units():
    spec = s9()
    assert repr(spec) == (
        "<NetSpec s9: 4 stages, widths 23,32,63,93, 12 units (dws+plain), 3 -> 10 classes>"
    )
    text = str(spec)
    lines = text.splitlines()
    assert lines[0] == "s9: widths 23, 32, 63, 93, input channels 3"
    # t2 is the dilated transition from 32 to 63 channels (dilation 2, unpadded)
    t2 = next(line.split() for line in lines if line.startswith("t2 "))
    assert t2 == ["t2", "plain", "32", "->", "63", "3", "1", "0", "2", "1", "no", "0.05"]
    assert "<td>c1.1</td><td>dws</td><td>23 -&gt; 23</td>" in spec._repr_html_()


def test_variant_repr_before_and_after_measuring():
    v = family()["dws-dilated-skip-x2"]
    assert repr(v) == "<Variant dws-dilated-skip-x2: not measured (netbuilder.variants.measure)>"
    m = measure(v, 190_509, (3, 32, 32))
    # at the Net's own parameter count the solver gives back the Net's widths (README)
    assert repr(m) == (
        "<Variant dws-dilated-skip-x2: widths 23,32,63,93, 190,509 params, 51,654,850 MACs, "
        "rf 48 (exact), meets the rf>"
    )
    html = m._repr_html_()
    assert html.startswith("<table>") and "<td>dws-dilated-skip-x2</td>" in html
    assert "<td>190,509</td>" in html.replace(' class="num" style="text-align: right"', "")
    tiny = measure(v, 100, (3, 32, 32))
    assert repr(tiny).startswith("<Variant dws-dilated-skip-x2: cannot be built: ")
