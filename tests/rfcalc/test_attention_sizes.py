"""Attention over tokens keeps the tokens' places: its rows have the token grid as their size
(not `()`), and a view back to the map gives a global map of the map's size.

The fields are measured by perturbation (measure.perturb / perturb_element: each input pixel
changed on its own), the sizes read from the tensors the model makes.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from measure import perturb, perturb_element

from rfcalc import GLOBAL, analyze

SHAPE = (2, 8, 8)
WHOLE = ((0, 7), (0, 7))


class Encoder(nn.Module):
    """Patch embedding (3x3 conv), a class token in front or not, one attention block
    (SDPA split into two heads, or nn.MultiheadAttention) with its residual, the class
    token dropped, tokens viewed back as the map, a 1x1 conv."""

    def __init__(self, cls: bool, mha: bool):
        super().__init__()
        self.embed = nn.Conv2d(2, 8, 3, padding=1)
        self.cls = nn.Parameter(torch.randn(1, 1, 8)) if cls else None
        self.qkv = nn.Linear(8, 24)
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True) if mha else None
        self.out = nn.Conv2d(8, 4, 1)

    def tokens(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        if self.cls is not None:
            t = torch.cat([self.cls.expand(x.shape[0], -1, -1), t], 1)
        if self.mha is not None:
            return t + self.mha(t, t, t, need_weights=False)[0]
        b, n, _ = t.shape
        q, k, v = self.qkv(t).reshape(b, n, 3, 2, 4).permute(2, 0, 3, 1, 4).unbind(0)
        return t + F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, 8)

    def forward(self, x):
        t = self.tokens(x)
        if self.cls is not None:
            t = t[:, 1:]
        return self.out(t.transpose(1, 2).reshape(x.shape[0], 8, 8, 8))


def model(cls: bool, mha: bool) -> nn.Module:
    torch.manual_seed(0)
    return Encoder(cls, mha).double().eval()


CASES = [(c, m) for c in (False, True) for m in (False, True)]


@pytest.mark.parametrize("cls,mha", CASES)
def test_attention_rows_have_the_token_grid_as_size(cls, mha):
    m = model(cls, mha)
    a = analyze(m, SHAPE)
    ops = ("scaled_dot_product_attention", "multi_head_attention_forward")
    attention = [r for r in a.rows if r.op in ops]
    assert attention
    for r in attention:
        assert r.size == (8, 8) and r.status == GLOBAL, r
    # measured: every token after the block moves with every pixel, the class token too
    tokens = type("T", (nn.Module,), {"forward": lambda s, x: m.tokens(x)})()
    for t in (0, 22, 64 if cls else 63):
        assert perturb_element(tokens, SHAPE, lambda o, t=t: o[:, t]) == WHOLE
    # the map put back: its size is the map's, and every unit sees the whole input
    units = perturb(m, SHAPE)
    assert set(units.values()) == {WHOLE}
    assert a.output.size == (8, 8) and a.output.status == GLOBAL and a.covers_input
    assert not any("perturbation check" in r.note for r in a.rows)
    # q, k and v stacked in front of the batch ((3, B, h, N, d)) are not compared along
    # dim 0 as if it were the batch: the check runs, it does not call the model random
    assert not any("unchecked" in n for n in a.notes), a.notes
