"""Spec -> nn.Module: the code shape of `examples/s9_net.py`.

`ConvLayer` is the example's block, word for word, and `netbuilder export` writes its source
into every exported file; the Net has the example's module tree (attributes c1, t1, ..., gap,
head; units with conv, norm, drop). So the `s9` preset, the example and an exported s9 share
state_dicts key for key and `rfcalc table` rows name for name.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .spec import DWS, ConvUnit, NetSpec, check


class ConvLayer(nn.Module):
    """A kxk convolution, then BatchNorm, ReLU and dropout.

    depthwise=True makes it depthwise-separable (a per-channel kxk then a 1x1 mix, both with
    bias); otherwise it is one convolution without bias (BatchNorm follows), grouped if asked.
    skip=True adds the input to the output, which needs in == out channels and a padding that
    keeps the size.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        depthwise: bool = False,
        skip: bool = False,
        kernel: int = 3,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        dropout: float = 0.05,
    ):
        super().__init__()
        if depthwise:
            self.conv = nn.Sequential(
                nn.Conv2d(
                    in_channels,
                    in_channels,
                    kernel,
                    stride=stride,
                    padding=padding,
                    dilation=dilation,
                    groups=in_channels,
                    bias=True,
                ),
                nn.Conv2d(in_channels, out_channels, 1, bias=True),
            )
        else:
            self.conv = nn.Conv2d(
                in_channels,
                out_channels,
                kernel,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups,
                bias=False,
            )
        self.norm = nn.BatchNorm2d(out_channels)
        self.drop = nn.Dropout(dropout)
        self.skip = skip

    def forward(self, x):
        y = self.drop(F.relu(self.norm(self.conv(x))))
        return x + y if self.skip else y


def layer_options(unit: ConvUnit) -> dict[str, Any]:
    """The ConvLayer keyword arguments that build a spec's unit."""
    return {
        "depthwise": unit.kind == DWS,
        "skip": unit.skip,
        "kernel": unit.kernel,
        "stride": unit.stride,
        "padding": unit.padding,
        "dilation": unit.dilation,
        "groups": unit.groups,
        "dropout": unit.dropout,
    }


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
                units.append(ConvLayer(c_in, spec.widths[i], **layer_options(unit)))
                c_in = spec.widths[i]
            self._add(f"c{i + 1}", nn.Sequential(*units))
            c_out = spec.widths[min(i + 1, last)]
            self._add(f"t{i + 1}", ConvLayer(c_in, c_out, **layer_options(stage.transition)))
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
