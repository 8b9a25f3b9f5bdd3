"""`covers_input` in the JSON: true, false, and null when the output field is unknown."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from rfcalc import analyze
from rfcalc.render import render


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
