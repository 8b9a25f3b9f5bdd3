"""Issue #27: the image edge as published, and extent kept apart from density (holes).

The published convention (Araujo, Norris & Sim, Distill 2019; the Google receptive-field
library): a row is exact when every unit whose classic field lies inside the image reaches
exactly that field, and a unit the image's edge clips reaches a part of its clipped field.
Pixels no unit reads (a VALID stride that does not divide the input) are a note. Every field
here is measured with plain autograd on a positive-weight copy (tests/rfcalc/measure.py).
"""

from __future__ import annotations

import pytest
import torch.nn as nn
import torchvision
from measure import check, positive, reads, unit_gradient

from rfcalc import EXACT, analyze
from rfcalc.render import render


def alexnet_v2(pool=nn.MaxPool2d, c: int = 1) -> nn.Sequential:
    """TF-Slim's alexnet_v2 up to pool5 (conv1 11x11 s4 VALID, VALID 3x3 s2 pools, SAME
    convs), with `c` channels everywhere: the geometry is the channels' business of no one."""
    return nn.Sequential(
        nn.Conv2d(3, c, 11, 4),
        nn.ReLU(),
        pool(3, 2),
        nn.Conv2d(c, c, 5, padding=2),
        nn.ReLU(),
        pool(3, 2),
        nn.Conv2d(c, c, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(c, c, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(c, c, 3, padding=1),
        nn.ReLU(),
        pool(3, 2),
    )


CONVS_AND_POOLS = ["0", "2", "3", "5", "6", "8", "10", "12"]


def test_alexnet_v2_at_224_reads_as_published():
    # the Google receptive-field library's table: alexnet_v2 at 224, rf 195, effective
    # stride 32, effective padding 64; per layer 11, 19, 51, 67, 99, 131, 163, 195
    a = analyze(alexnet_v2(c=64), (3, 224, 224))
    r = {x.name: x for x in a.rows}
    assert [r[n].rf[0] for n in CONVS_AND_POOLS] == [11, 19, 51, 67, 99, 131, 163, 195]
    assert all(x.status == EXACT and x.rf[0] == x.rf[1] for x in a.rows)
    out = a.output
    assert out.jump == (32, 32) and out.start[0] - (out.rf[0] - 1) / 2 == -64  # padding 64
    assert "~" not in render(a, "text").split("Notes")[0]  # no rf marked approximate
    assert "0 (exact): pixel 223 of H and W is read by no unit" in a.notes
    assert "2 (exact): pixels 219..223 of H and W are read by no unit" in a.notes
    assert len(a.notes) == 2  # said where it appears, not on every later row


def test_alexnet_v2_at_224_measured():
    m = positive(alexnet_v2(nn.AvgPool2d))  # avg pools: the same windows, a gradient each
    shape = (3, 224, 224)
    a = analyze(m, shape)
    assert a.rows[-1].rf == (195, 195) and a.rows[-1].status == EXACT
    # pool5's unit 2 (2·32 + 33 = 97 ± 97 = 0..194) lies inside the image: all of it
    n, span = reads(unit_gradient(m, shape, "12", (2, 2)))
    assert span == ((0, 194), (0, 194)) and n == 195 * 195
    # unit 4: classic 64..258, clipped 64..223; it reaches 64..218, a part of that
    n, span = reads(unit_gradient(m, shape, "12", (4, 4)))
    assert span == ((64, 218), (64, 218))
    # no unit of pool1 or later reads pixels 219..223; conv1 misses pixel 223 only
    for row, first_unread in (("0", 223), ("2", 219), ("3", 219), ("12", 219)):
        g = unit_gradient(m, shape, row)
        k = first_unread
        assert bool((g[k:, :] == 0).all()) and bool((g[:, k:] == 0).all())
        assert bool((g[:k, :k] != 0).all())


def test_alexnet_v2_every_unit_keeps_the_convention():
    # at 69 (conv1: 15 units reading 0..66, pixels 67, 68 unread) conv2's last unit is
    # clipped by the edge (classic up to 82) and reaches up to 66 only: every unit of every
    # row measured against the contract (inside units exact, clipped units a part)
    m = positive(alexnet_v2(nn.AvgPool2d))
    a = analyze(m, (3, 69, 69))
    assert all(r.status == EXACT for r in a.rows)
    check(m, (3, 69, 69))


def test_inception_v3_at_1344_exact_again():
    # 1311 (Araujo et al.) at Mixed_7c, every row exact at 1344² (not `~`): VALID stem convs
    # leave the last pixels unread, which the notes say, once where it appears
    model = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    a = analyze(model, (3, 1344, 1344))
    assert all(r.status == EXACT for r in a.rows)
    out = {r.name: r for r in a.rows}["Mixed_7c.cat_2"]
    assert out.rf == (1311, 1311) and out.jump == (32, 32)
    assert "Conv2d_1a_3x3.conv (exact): pixel 1343 of H and W is read by no unit" in a.notes


def test_inception_blocks_at_an_even_size_measured():
    # torchvision's own Inception blocks on 100x100: the stem's 3x3 s2 VALID conv reads
    # 0..98, pixel 99 is read by no unit; the last row stays exact, and its centre unit
    # (inside the image: 47 ± 41) measured whole
    from torchvision.models.inception import BasicConv2d, InceptionA, InceptionB

    model = positive(
        nn.Sequential(
            BasicConv2d(3, 4, kernel_size=3, stride=2),
            InceptionA(4, pool_features=4),
            InceptionB(64 + 64 + 96 + 4),  # InceptionA's 1x1, 5x5, 3x3dbl and pool branches
        )
    )
    shape = (3, 100, 100)
    a = analyze(model, shape)
    last = a.rows[-1]
    assert last.status == EXACT and last.rf == (19, 19)
    assert any(n.endswith("pixel 99 of H and W is read by no unit") for n in a.notes)
    g = unit_gradient(model, shape, last.name)
    assert bool((g[:, 99] == 0).all()) and bool((g[99, :] == 0).all())
    assert bool((g[:99, :99] != 0).all())


# ---------------------------------------------------------------- holes are not uncertainty


class Stack(nn.Sequential):
    def __init__(self, dilations, k: int = 3):
        super().__init__(
            *(nn.Conv2d(1, 1, k, padding=d * (k - 1) // 2, dilation=d) for d in dilations)
        )


def _centre_reads(model, shape, row):
    f = {r.name: r for r in analyze(model, shape).rows}[row]
    centre = tuple((n - 1) // 2 for n in f.size)
    return reads(unit_gradient(model, shape, row, centre))


def test_a_lone_dilated_conv_is_exact_5_and_reads_9_of_25():
    m = positive(nn.Sequential(nn.Conv2d(3, 8, 3, padding=2, dilation=2)))
    shape = (3, 11, 11)
    a = analyze(m, shape)
    out = a.output
    assert out.status == EXACT and out.rf == (5, 5) and out.reads == (9, 25)
    n, span = _centre_reads(m, shape, "0")
    assert n == 9 and span == ((3, 7), (3, 7))  # the extent 5, 9 pixels of it read
    check(m, shape)  # every unit: border units read a part of their clipped field
    text = render(a, "text")
    assert "~5" not in text and "reads 9 of 25 pixels" in text
    assert '"reads": [9, 25]' in render(a, "json")


@pytest.mark.parametrize(
    "dilations, size",
    [((1, 2, 4), 33), ((2, 2), 21), ((1, 4), 25), ((1, 1), 11), ((3, 1, 2), 29)],
)
def test_stacked_dilations_read_what_the_gradient_reaches(dilations, size):
    m = positive(Stack(dilations))
    shape = (1, size, size)
    last = analyze(m, shape).rows[-1]
    n, span = _centre_reads(m, shape, last.name)
    extent = span[0][1] - span[0][0] + 1
    assert last.status == EXACT and last.rf == (extent, extent)
    assert last.reads == (n, extent * extent)


def test_known_reads_by_hand():
    # 1, 2, 4 (hybrid dilated): offsets {-1..1} + {-2, 0, 2} + {-4, 0, 4} = -7..7, all 15;
    # 2, 2: {-4, -2, 0, 2, 4}, 5 of 9 per axis; 1, 4 misses ±2: 9 of 11 per axis
    r = {
        d: analyze(positive(Stack(d)), (1, 33, 33)).output.reads
        for d in ((1, 2, 4), (2, 2), (1, 4))
    }
    assert r == {(1, 2, 4): (225, 225), (2, 2): (25, 81), (1, 4): (81, 121)}


class Cross(nn.Module):
    def __init__(self):
        super().__init__()
        self.h = nn.Conv2d(1, 1, (1, 7), padding=(0, 3))
        self.v = nn.Conv2d(1, 1, (7, 1), padding=(3, 0))

    def forward(self, x):
        return self.h(x) + self.v(x)


class Strided(nn.Module):
    """A 1x1 stride-2 conv then a 3x3: every other pixel, 3 of 5 per axis."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 1, 1, stride=2)
        self.b = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x):
        return self.b(self.a(x))


def test_a_cross_is_not_claimed_as_its_box():
    # 1x7 + 7x1: a 7x7 extent read through a cross of 13 pixels; each axis alone reads all
    # 7, so the product would say 49: no claim is made instead of a wrong one
    m = positive(Cross())
    shape = (1, 15, 15)
    out = analyze(m, shape).output
    n, span = _centre_reads(m, shape, out.name)
    assert n == 13 and span == ((4, 10), (4, 10))
    assert out.status == EXACT and out.rf == (7, 7) and out.reads in (None, (13, 49))


def test_a_stride_leaves_holes_too():
    m = positive(Strided())
    shape = (1, 20, 20)
    out = analyze(m, shape).output
    n, span = _centre_reads(m, shape, out.name)
    assert n == 9 and out.rf == (5, 5) and out.reads == (9, 25)
    assert span[0][1] - span[0][0] + 1 == 5


def test_a_resnet_shortcut_fills_the_holes():
    # the 1x1 s2 shortcut merged with a 3x3 s2 path: the merge reads every pixel of the box
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.short = nn.Conv2d(1, 1, 1, stride=2)
            self.main = nn.Conv2d(1, 1, 3, stride=2, padding=1)
            self.c = nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x):
            return self.c(self.short(x) + self.main(x))

    m = positive(Block())
    shape = (1, 21, 21)
    out = analyze(m, shape).output
    n, span = _centre_reads(m, shape, out.name)
    extent = span[0][1] - span[0][0] + 1
    assert out.rf == (extent, extent) and out.reads == (n, extent * extent) and n == 49


def test_the_summary_shows_the_extent_and_the_holes():
    # the table's summary shows both facts: the exact extent and the holes
    a = analyze(positive(Stack((2, 2))), (1, 21, 21))
    line = next(x for x in render(a, "text").splitlines() if x.startswith("Output receptive"))
    assert line == "Output receptive field: 9, of which a unit reads 25 of 81 pixels (holes)"
