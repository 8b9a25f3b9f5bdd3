"""Spec -> nn.Module, in the style of `examples/s9_net.py`.

The module tree is the example's (attributes c1, t1, ..., gap, head; units with conv, norm,
drop), so the `s9` preset and the example file share state_dicts key for key.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .spec import DWS, ConvUnit, NetSpec, check


class ConvLayer(nn.Module):
    """A kxk convolution (plain, or depthwise then pointwise), BatchNorm, ReLU, dropout.

    skip=True returns x + unit(x); the spec check makes sure the shapes allow it.
    """

    def __init__(self, in_channels: int, out_channels: int, unit: ConvUnit):
        super().__init__()
        if unit.kind == DWS:
            self.conv = nn.Sequential(
                nn.Conv2d(in_channels, in_channels, unit.kernel, stride=unit.stride,
                          padding=unit.padding, dilation=unit.dilation, groups=in_channels,
                          bias=True),
                nn.Conv2d(in_channels, out_channels, 1, bias=True),
            )
        else:
            self.conv = nn.Conv2d(in_channels, out_channels, unit.kernel, stride=unit.stride,
                                  padding=unit.padding, dilation=unit.dilation,
                                  groups=unit.groups, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)
        self.drop = nn.Dropout(unit.dropout)
        self.skip = unit.skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.drop(F.relu(self.norm(self.conv(x))))
        return x + y if self.skip else y


class Net(nn.Module):
    """The net a spec describes: stages c1/t1, c2/t2, ..., then GAP, 1x1 head, log-softmax."""

    def __init__(self, spec: NetSpec):
        super().__init__()
        self.spec = spec
        self._order: list[str] = []
        c_in = spec.in_channels
        last = len(spec.widths) - 1
        for i, stage in enumerate(spec.stages):
            units = []
            for unit in stage.units:
                units.append(ConvLayer(c_in, spec.widths[i], unit))
                c_in = spec.widths[i]
            self._add(f"c{i + 1}", nn.Sequential(*units))
            c_out = spec.widths[min(i + 1, last)]
            self._add(f"t{i + 1}", ConvLayer(c_in, c_out, stage.transition))
            c_in = c_out
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Conv2d(c_in, spec.num_classes, 1, bias=True)

    def _add(self, name: str, module: nn.Module) -> None:
        self.add_module(name, module)
        self._order.append(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self._order:
            x = getattr(self, name)(x)
        x = self.head(self.gap(x))
        return F.log_softmax(x.flatten(1), dim=1)


def build(spec: NetSpec, input_shape: Optional[tuple[int, ...]] = None) -> Net:
    """Check the spec (and its geometry on input_shape, if given) and build it."""
    check(spec, input_shape)
    return Net(spec)


def count_params(model: nn.Module) -> int:
    """Parameters of a module, each counted once."""
    return sum(p.numel() for p in model.parameters())
