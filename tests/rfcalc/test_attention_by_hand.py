"""Attention written out by hand over tokens (q @ kᵀ, a constant mask, softmax, @ v): a
causal mask reads only the earlier tokens, so units see a part of the map, not all of it;
without a mask every token reads every token (global, with the token grid as its size).

Every field is measured by perturbation (measure.perturb: each input pixel changed on its
own, one batch element each) on a random input, never read from rfcalc's output.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from measure import perturb

from rfcalc import APPROX, GLOBAL, analyze

SHAPE = (1, 6, 6)


class ByHand(nn.Module):
    def __init__(self, mask: str):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.mask = mask

    def forward(self, x):
        b, _, h, w = x.shape
        t = self.conv(x).flatten(2).transpose(1, 2)  # (B, 36, 2)
        scores = t @ t.transpose(-2, -1) / 2**0.5
        n = h * w
        if self.mask == "masked_fill":
            scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
        elif self.mask == "additive":
            scores = scores + torch.full((n, n), float("-inf")).triu(1)
        out = scores.softmax(-1) @ t
        return out.transpose(1, 2).reshape(b, 2, h, w)


def model(mask: str) -> nn.Module:
    torch.manual_seed(0)
    return ByHand(mask).double().eval()


@pytest.mark.parametrize("mask", ["masked_fill", "additive"])
def test_a_causal_mask_reads_the_earlier_rows_only(mask):
    m = model(mask)
    a = analyze(m, SHAPE)
    out = a.output
    units = perturb(m, SHAPE)
    # measured: unit (0, 0) reads rows 0..1 (its own 3x3, nothing later); unit (2, 3)
    # rows 0..3 (the earlier tokens' rows and its own 3x3), every column
    assert units[(0, 0)] == ((0, 1), (0, 1))
    assert units[(2, 3)] == ((0, 3), (0, 5))
    assert out.status == APPROX and out.size == (6, 6) and "mask" in out.note
    assert not a.covers_input or any(s == ((0, 5), (0, 5)) for s in units.values())
    # the claim is an upper bound of every unit (approx: the widest unit's rf per axis)
    for spans in units.values():
        assert all(b - a_ + 1 <= rf for (a_, b), rf in zip(spans, out.rf))


def test_without_a_mask_every_token_reads_every_token():
    m = model("none")
    a = analyze(m, SHAPE)
    units = perturb(m, SHAPE)
    assert set(units.values()) == {((0, 5), (0, 5))}
    assert a.output.status == GLOBAL and a.output.size == (6, 6) and a.covers_input
