"""The perturbation check on token rows: a map flattened into (B, N, C) tokens, maybe behind a
class token, is checked element by element, token t against its own position's field.

Expected fields are measured by perturbation (measure.perturb_element: each input pixel
changed on its own, one batch element each), never read from rfcalc's output. The wrong
claims are planted by replacing a rule, as a bug in rfcalc would make them.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from measure import perturb_element

from rfcalc import EXACT, UNKNOWN, analyze, rules
from rfcalc.geometry import Field
from rfcalc.rules import Outcome

SHAPE = (2, 8, 8)


class ClassToken(nn.Module):
    """A 3x3 conv as the patch embedding, tokens (B, 64, 4), a class token (constant, or the
    tokens' mean: it then sees everything) in front, a per-token Linear."""

    def __init__(self, pooled: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.cls = nn.Parameter(torch.randn(1, 1, 4))
        self.proj = nn.Linear(4, 4)
        self.pooled = pooled

    def forward(self, x):
        t = self.conv(x).flatten(2).transpose(1, 2)
        front = t.mean(1, keepdim=True) if self.pooled else self.cls.expand(x.shape[0], -1, -1)
        return self.proj(torch.cat([front, t], 1))


def model(pooled: bool = False) -> nn.Module:
    torch.manual_seed(0)
    return ClassToken(pooled).double().eval()


def token_field(m: nn.Module, t: int):
    """The input pixels (rows, columns) that move token t, measured by perturbation."""
    return perturb_element(m, SHAPE, lambda o: o[:, t])


def test_token_t_sees_the_position_t_minus_one_behind_a_class_token():
    m = model()
    a = analyze(m, SHAPE)
    assert a.output.status == EXACT and a.output.rf == (3, 3) and a.output.size == (8, 8)
    # measured: the class token sees nothing; token 1 + 8·2 + 5 = 22 is position (2, 5)
    assert token_field(m, 0) is None
    assert token_field(m, 22) == ((1, 3), (4, 6))
    assert token_field(m, 1) == ((0, 1), (0, 1))


def _forget_the_class_token(call):
    """A cat rule that drops the offset of the tokens in front: element t claims position t."""
    out = REAL_CAT(call)
    f = out.field
    if f.packed is not None and f.packed[0] == "tokens":
        return Outcome(Field(f.axes, None, f.status, f.note, ("flat",) + tuple(f.packed[1:4])))
    return out


def _a_class_token_in_front(call):
    """A cat rule that takes any cat along the tokens for a class token put in front."""
    out = REAL_CAT(call)
    dim = int(call.arg(1, "dim", 0)) % call.out_tensor.dim()
    for _, f in call.inputs:
        p = f.packed
        if p is not None and p[0] == "flat" and dim == p[2] % call.out_tensor.dim():
            return Outcome(Field(f.axes, None, f.status, f.note, ("tokens",) + p[1:4] + (1,)))
    return out


REAL_CAT = rules.RULES["cat"]


def test_a_token_row_claiming_the_wrong_position_is_caught(monkeypatch):
    m = model()
    # measured: token 22 is position (2, 5) (rows 1..3, columns 4..6), not position 22,
    # (2, 6), whose field would be columns 5..7: the planted claim is wrong
    assert token_field(m, 22) == ((1, 3), (4, 6))
    monkeypatch.setitem(rules.RULES, "cat", _forget_the_class_token)
    a = analyze(m, SHAPE)
    cat = a["cat"]
    assert cat.status == UNKNOWN and "perturbation check" in cat.note
    assert cat.note.startswith("token ") and "(unit (" in cat.note
    assert a.output.status == UNKNOWN


def test_a_front_token_that_sees_the_map_is_caught(monkeypatch):
    m = model(pooled=True)
    # measured: the front token is the tokens' mean, every pixel moves it
    assert token_field(m, 0) == ((0, 7), (0, 7))
    monkeypatch.setitem(rules.RULES, "cat", _a_class_token_in_front)
    a = analyze(m, SHAPE)
    assert a.output.status == UNKNOWN
    assert a.output.note.startswith("token 0 (no position of the map) changes when")


@pytest.mark.parametrize("pooled", [False, True])
def test_without_a_planted_bug_nothing_is_contradicted(pooled):
    a = analyze(model(pooled), SHAPE)
    assert not any("perturbation check" in r.note for r in a.rows)
