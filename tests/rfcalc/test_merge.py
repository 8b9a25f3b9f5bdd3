"""Merges of branches whose fields are offset from each other: the union, not the widest field.

Every merge elsewhere in the suite is centred or nested, where the widest input field *is* the
union; here one branch sees further left and the other further right (asymmetric padding, a
crop, strides taken in a different order), so only the true union gives the right answer.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from rfcalc import analyze, verify
from rfcalc import geometry as g
from rfcalc.cli import main as rfcalc_main


def _units(a: g.Axis) -> list[tuple[int, int]]:
    return [a.unit(o) for o in range(a.size)]


def _brute_union(axes: list[g.Axis]) -> list[tuple[int, int]]:
    """Per unit, the smallest first and the largest last pixel over the branches."""
    return [
        (min(a.unit(o)[0] for a in axes), max(a.unit(o)[1] for a in axes))
        for o in range(axes[0].size)
    ]


def test_asymmetric_padding_branches_in_the_geometry():
    x = g.input_axis(16)
    left = g.window(x, 3, 1, 0, 2)  # padded right only: unit o sees o..o+2
    right = g.window(x, 3, 1, 2, 0)  # padded left only:  unit o sees o-2..o
    assert left.unit(5) == (5, 7) and right.unit(5) == (3, 5)
    u = g.union([left, right])
    # o-2..o+2: rf 5 centred on o, where either branch alone has rf 3
    assert [u.unit(o) for o in range(16)] == [(o - 2, o + 2) for o in range(16)]
    assert (u.size, u.jump, u.rf, u.start) == (16, 1, 5, 0)
    assert _units(g.union([right, left])) == _units(u)


def test_cropped_branch_in_the_geometry():
    x = g.input_axis(16)
    valid = g.window(x, 3)  # 14 units, unit o sees o..o+2
    crop = g.window(g.window(x, 3, 1, 1), 1, 1, -2, 0)  # k3 p1 then [2:]: o+1..o+3
    assert valid.size == crop.size == 14 and crop.unit(0) == (1, 3)
    u = g.union([valid, crop])
    assert _units(u) == [(o, o + 3) for o in range(14)]
    assert u.rf == 4 and u.start == g.Fraction(3, 2)


def test_strides_in_a_different_order_in_the_geometry():
    x = g.input_axis(16)
    # stride first: k2 s2 (2o..2o+1), then k2 padded right: 2o..2o+3
    a = g.window(g.window(x, 2, 2), 2, 1, 0, 1)
    # window first: k2 padded left (o-1..o), then k2 s2: 2o-1..2o+1
    b = g.window(g.window(x, 2, 1, 1, 0), 2, 2)
    assert a.unit(3) == (6, 9) and b.unit(3) == (5, 7)
    u = g.union([a, b])
    assert _units(u) == [(2 * o - 1, 2 * o + 3) for o in range(8)]
    assert (u.jump, u.rf, u.start) == (2, 5, 1)


@pytest.mark.parametrize("seed", range(12))
def test_union_is_the_per_unit_envelope(seed):
    """Random windows of equal jump and size: union() against the per-unit brute force."""
    rng = torch.Generator().manual_seed(seed)

    def pick(lo: int, hi: int) -> int:
        return int(torch.randint(lo, hi + 1, (1,), generator=rng))

    n, axes = 24, []
    while len(axes) < 3:
        k = pick(1, 5)
        lo = pick(0, 3)
        a = g.window(g.input_axis(n), k, 1, lo, k - 1 - lo)  # size n, offset by the padding
        a = g.window(a, 3, 2, 1)  # then a common stride 2
        axes.append(a)
    assert _units(g.union(axes)) == _brute_union(axes)


# ------------------------------------------------------------------ through the model walk
class PaddedBranches(nn.Module):
    """Two 3x3 convs on the same input, padded on opposite sides, added."""

    def __init__(self):
        super().__init__()
        self.left = nn.Conv2d(1, 2, 3)
        self.right = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return self.left(F.pad(x, (0, 2, 0, 2))) + self.right(F.pad(x, (2, 0, 2, 0)))


class CroppedBranch(nn.Module):
    """A valid 3x3 conv added to a padded one cropped by two pixels at the top/left."""

    def __init__(self):
        super().__init__()
        self.valid = nn.Conv2d(1, 2, 3)
        self.same = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x):
        return self.valid(x) + self.same(x)[:, :, 2:, 2:]


class StrideOrder(nn.Module):
    """Stride-then-window against window-then-stride, concatenated."""

    def __init__(self):
        super().__init__()
        self.a1 = nn.Conv2d(1, 2, 2, stride=2)
        self.a2 = nn.Conv2d(2, 2, 2)
        self.b1 = nn.Conv2d(1, 2, 2)
        self.b2 = nn.Conv2d(2, 2, 2, stride=2)

    def forward(self, x):
        a = self.a2(F.pad(self.a1(x), (0, 1, 0, 1)))
        b = self.b2(self.b1(F.pad(x, (1, 0, 1, 0))))
        return torch.cat([a, b], dim=1)


@pytest.mark.parametrize(
    "model, shape, rf, start",
    [
        (PaddedBranches, (1, 16, 16), 5, 0),  # o-2..o+2
        (CroppedBranch, (1, 16, 16), 4, 1.5),  # o..o+3
        (StrideOrder, (1, 16, 16), 5, 1),  # 2o-1..2o+3
    ],
)
def test_merged_row_is_the_union_and_verify_agrees(model, shape, rf, start):
    analysis = analyze(model(), shape)
    assert analysis.output.rf == (rf, rf) and analysis.output.start == (start, start)
    result = verify(model(), shape, unique=False)
    assert result.agree, [c for c in result.checks if c.agree is False]
    last = result.checks[-1]
    assert last.measured_span == last.theory_span


def test_rfcalc_verify_and_table_on_a_file(tmp_path, capsys):
    target = tmp_path / "branches.py"
    target.write_text(
        "import torch.nn as nn\nimport torch.nn.functional as F\n\n\n"
        "class Branches(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.left = nn.Conv2d(3, 4, 3)\n"
        "        self.right = nn.Conv2d(3, 4, 3)\n\n"
        "    def forward(self, x):\n"
        "        return self.left(F.pad(x, (0, 2, 0, 2))) + self.right(F.pad(x, (2, 0, 2, 0)))\n"
    )
    assert rfcalc_main(["verify", str(target), "--input", "3,16,16"]) == 0
    out = capsys.readouterr().out
    assert "DIFFERS" not in out
    assert rfcalc_main(["table", str(target), "--input", "3,16,16", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["output"]["rf"] == [5, 5] and data["output"]["start"] == [0, 0]
