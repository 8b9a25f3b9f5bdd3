"""Issue #27: the ops five timm models stopped at (MobileViT, TResNet, HaloNet,
EfficientFormerV2, TinyViT), each in a small synthetic model, with its field measured by
plain autograd or by perturbing input pixels (tests/rfcalc/measure.py), never read from
rfcalc; then the five models themselves (tests/rfcalc/test_timm.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from measure import check, perturb, positive

from rfcalc import EXACT, GLOBAL, UNKNOWN, analyze


class SpaceToDepth(nn.Module):
    """TResNet's stem: a 3x3 conv, then space-to-depth written as view, permute, view (each
    4x4 block of pixels into 16 channels), then a 3x3 conv. `lattice`: the same three views
    with the split the other way round, so a place gathers every 4th row and column (a strided
    lattice, not a block)."""

    def __init__(self, lattice: bool = False):
        super().__init__()
        self.c, self.d = nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(32, 4, 3, padding=1)
        self.lattice = lattice

    def forward(self, x):
        x = self.c(x)
        n, c, h, w = x.shape
        if self.lattice:
            x = x.view(n, c, 4, h // 4, 4, w // 4).permute(0, 2, 4, 1, 3, 5)
        else:
            x = x.view(n, c, h // 4, 4, w // 4, 4).permute(0, 3, 5, 1, 2, 4)
        return self.d(x.contiguous().view(n, c * 16, h // 4, w // 4))


def test_space_to_depth_is_a_block_window():
    m = positive(SpaceToDepth())
    shape = (2, 16, 12)
    a = analyze(m, shape)
    s2d = a["view_1"]
    assert s2d.status == EXACT and s2d.size == (4, 3)
    assert s2d.kernel == (4, 4) and s2d.stride == (4, 4)
    assert a.output.status == EXACT
    check(m, shape)  # every unit of every row: what rfcalc says it sees is what it sees
    # by perturbation: output unit (1, 1) reads places 0..2, pixels 0..11, widened by the
    # first 3x3 to -1..12, clipped to 0..12 (rows) and 0..11 (the 12 columns); unit (3, 2)
    # places 2..3 x 1..2, pixels 8..15 x 4..11, widened: 7..15 x 3..12 -> 3..11
    moved = perturb(m, shape)
    assert moved[(1, 1)] == ((0, 12), (0, 11))
    assert moved[(3, 2)] == ((7, 15), (3, 11))
    assert a.output.rf == (14, 14) and a.output.jump == (4, 4)


def test_a_strided_lattice_is_no_block():
    # each place holds rows i, i+4, i+8, i+12: no window describes that; never exact.
    # Output unit (0, 0) reads places 0..1, rows {0, 1, 4, 5, 8, 9, 12, 13}, widened by the
    # first 3x3 to 0..14: a spread lattice, no block
    m = positive(SpaceToDepth(lattice=True))
    shape = (2, 16, 12)
    moved = perturb(m, shape)
    assert moved[(0, 0)] == ((0, 14), (0, 11))
    out = analyze(m, shape).output
    assert out.status != EXACT


def _attend(t):
    """Plain attention over the tokens of (B, N, C): q·kᵀ, softmax, ·v."""
    return (t @ t.transpose(-2, -1)).softmax(-1) @ t


class TalkingHeads(nn.Module):
    """EfficientFormerV2's attention: q·kᵀ over the flattened map, a 1x1 conv across the
    heads of the attention weights before and after the softmax, ·v, back to the map, a
    3x3 conv."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(2, 4, 3, padding=1)
        self.th1, self.th2 = nn.Conv2d(2, 2, 1), nn.Conv2d(2, 2, 1)
        self.out = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x):
        b, _, h, w = x.shape
        t = self.embed(x).reshape(b, 2, 2, h * w).transpose(-2, -1)  # (B, heads, N, d)
        attn = self.th2(self.th1(t @ t.transpose(-2, -1)).softmax(-1))
        o = (attn @ t).transpose(-2, -1).reshape(b, 4, h, w)
        return self.out(o)


class TokensThenConv(nn.Module):
    """TinyViT's stage join: attention over (B, N, C) tokens, viewed back to (B, H, W, C),
    permuted to (B, C, H, W), a 1x1 then a strided 3x3 conv (its patch merging)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(2, 4, 3, padding=1)
        self.c1, self.c2 = nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 3, 2, 1)

    def forward(self, x):
        b, _, h, w = x.shape
        t = _attend(self.embed(x).flatten(2).transpose(1, 2))
        return self.c2(self.c1(t.view(b, h, w, 4).permute(0, 3, 1, 2)))


class OneByOneBack(nn.Module):
    """HaloNet's last stage: attention whose output is viewed through trailing 1x1 dims
    ((B, H, W, C, 1, 1)) before it is a (B, C, H, W) map again, then a 1x1 conv."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(2, 4, 3, padding=1)
        self.c1 = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        b, _, h, w = x.shape
        t = _attend(self.embed(x).flatten(2).transpose(1, 2))
        t = t.reshape(b, h, w, 4, 1, 1).permute(0, 3, 1, 4, 2, 5)
        return self.c1(t.reshape(b, 4, h, w))


class PatchesThenCat(nn.Module):
    """MobileViT's block: 2x2 patches unfolded with reshapes, attention over the patches at
    each offset, folded back, a 1x1 conv, then concatenated with the shortcut and fused."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(2, 4, 3, padding=1)
        self.proj, self.fuse = nn.Conv2d(4, 4, 1), nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x):
        s = self.embed(x)
        b, c, h, w = s.shape
        p = s.reshape(b * c * (h // 2), 2, w // 2, 2).transpose(1, 2)
        p = p.reshape(b, c, h * w // 4, 4).transpose(1, 3).reshape(b * 4, h * w // 4, c)
        p = _attend(p)
        p = p.contiguous().view(b, 4, h * w // 4, c).transpose(1, 3)
        p = p.reshape(b * c * (h // 2), w // 2, 2, 2).transpose(1, 2).reshape(b, c, h, w)
        return self.fuse(torch.cat((s, self.proj(p)), 1))


@pytest.mark.parametrize("cls", [TalkingHeads, TokensThenConv, OneByOneBack, PatchesThenCat])
def test_convs_after_attention_over_the_whole_map_are_global(cls):
    torch.manual_seed(0)
    m = cls().double().eval()
    shape = (2, 6, 8)
    # measured by perturbation (random weights, random input): every output unit moves
    # when any input pixel changes
    moved = perturb(m, shape)
    assert set(moved.values()) == {((0, 5), (0, 7))}
    a = analyze(m, shape)
    assert all(r.status != UNKNOWN for r in a.rows), [
        (r.name, r.note) for r in a.rows if r.status == UNKNOWN
    ]
    assert a.output.status == GLOBAL and a.covers_input


def test_a_global_vector_viewed_as_a_map_is_still_global_under_a_window():
    # a 1x1 and a strided 3x3 conv on a vector whose every element saw everything
    m = TokensThenConv().double().eval()
    a = analyze(m, (2, 6, 8))
    assert a["c1"].status == GLOBAL and a["c2"].status == GLOBAL
