"""rfcalc.readout.one_logit: the ERF of one class's logit, checked against plain autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from rfcalc import erf
from rfcalc.erf import ERFError
from rfcalc.readout import one_logit


class Tiny(nn.Module):
    """Two convolutions, a global average and a 1x1 head: logits (N, 3, 1, 1)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Conv2d(4, 3, 1)
        nn.init.normal_(self.head.weight)  # logits that differ from image to image
        nn.init.zeros_(self.head.bias)

    def forward(self, x):
        return self.head(self.gap(self.body(x))).flatten(1)


def _expected(model: nn.Module, x: torch.Tensor, classes: torch.Tensor) -> np.ndarray:
    """sum over images of |d logit_c(image) / d image|, normalised: autograd, per image."""
    total = torch.zeros(x.shape[-2:], dtype=torch.float64)
    for image, c in zip(x, classes):
        one = image[None].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(one)[0, c], one)
        total += grad.abs().sum((0, 1)).double()
    return (total / total.sum()).numpy()


def test_predicted_class_is_each_images_own_argmax():
    model = Tiny().eval()
    x = torch.randn(12, 1, 9, 9, generator=torch.Generator().manual_seed(1))
    x = x * torch.linspace(0.2, 3, 12).view(12, 1, 1, 1)
    predicted = model(x).argmax(1)
    assert len(set(predicted.tolist())) > 1  # the images do not all pick one class
    with one_logit(model):
        got = erf(model, x, "head").map
    np.testing.assert_allclose(got, _expected(model, x, predicted), rtol=1e-5, atol=1e-9)


def test_a_fixed_class_and_the_hook_is_removed_afterwards():
    model = Tiny().eval()
    x = torch.randn(5, 1, 9, 9, generator=torch.Generator().manual_seed(2))
    with one_logit(model, which=2):
        got = erf(model, x, "head").map
    np.testing.assert_allclose(got, _expected(model, x, torch.full((5,), 2)), rtol=1e-5)
    summed = erf(model, x, "head").map  # after the block: the sum of the logits again
    assert not np.allclose(summed, got, rtol=1e-3)
    assert not model.head._forward_hooks


def test_bad_head_or_class_is_one_clear_error():
    model = Tiny().eval()
    x = torch.randn(2, 1, 9, 9)
    with pytest.raises(ERFError, match="no module named 'neck'"):
        with one_logit(model, head="neck"):
            pass
    with pytest.raises(ERFError, match="class 3 is not one of the head's 3"):
        with one_logit(model, which=3):
            erf(model, x, "head")
