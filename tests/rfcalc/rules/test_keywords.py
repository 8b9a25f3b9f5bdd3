"""Arguments given by keyword or left to torch's default mean what the same values given by
position mean (the `SAME` table: every family's ops).
Expected fields are worked out by hand and measured by gradients (see rulenets.py)."""

from __future__ import annotations

from fractions import Fraction as Fr

import pytest
from measure import check  # rules/conftest.py puts tests/rfcalc on sys.path
from rulenets import SAME, model, out, rows

from rfcalc import UNKNOWN


@pytest.mark.parametrize("name", list(SAME))
def test_a_keyword_means_what_its_position_means(name):
    forms, shape = SAME[name]
    first = rows(forms[0], shape)
    assert first[-1][6] != UNKNOWN or "spatial" in first[-1][9], first[-1]
    for fn in forms[1:]:
        assert rows(fn, shape) == first
    if "max_pool" not in name:  # a max passes the gradient to one pixel only
        for fn in forms:
            check(model(fn), shape)


def test_keyword_forms_are_not_the_defaults():
    # the keyword forms above are only a test where their values differ from torch's
    # defaults: a conv with stride 2, padding 1, dilation 2 after a conv3 on 9x9 has 4x4 units
    # (9 + 2 - 4 - 1) // 2 + 1, jump 2, rf 3 + 2*2 = 7, and starts at 0 + (2 - 1) = 1
    o = out(SAME["conv2d by keyword"][0][1], (1, 9, 9))
    assert o.size == (4, 4) and o.jump == (2, 2) and o.rf == (7, 7) and o.start == (1, 1)
    # conv_transpose stride 3, padding 2, output_padding 1 (padding and output_padding differ,
    # so reading one for the other shows), dilation 2 on 4x5 (taps 0, 2, 4 fall on every
    # residue mod 3, so no unit is a hole): (n - 1)*3 - 2*2 + 2*2 + 1 + 1 = 3n - 1: 11 x 14
    o = out(SAME["conv_transpose2d by keyword"][0][1], (1, 4, 5))
    assert o.size == (11, 14) and o.jump == (Fr(1, 3), Fr(1, 3))
    # replicate padding (1, 2) along W, (0, 1) along H: 7 x 10
    assert out(SAME["pad by keyword"][0][1]).size == (7, 10)
