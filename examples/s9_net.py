"""The course assignment's CIFAR-10 Net, as a readable model file.

Dilated transitions (dilation 1, 2, 4, 8, no padding) replace max-pooling; inside each block,
depthwise-separable 3x3 convolutions with skip connections keep the size and add depth
cheaply. 190,509 parameters; receptive field 47 after the last convolution and 48 at the
output (the 2x2 global average adds one pixel).

    rfcalc table examples/s9_net.py
"""

import torch.nn as nn
import torch.nn.functional as F


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


class Net(nn.Module):
    """Blocks C1..C4, each ending in a dilated transition; then GAP, a 1x1 head, log-softmax."""

    def __init__(self, dropout: float = 0.05, num_classes: int = 10):
        super().__init__()

        def dws(c: int) -> ConvLayer:
            return ConvLayer(c, c, depthwise=True, skip=True, padding=1, dropout=dropout)

        def transition(c_in: int, c_out: int, dilation: int) -> ConvLayer:
            return ConvLayer(c_in, c_out, dilation=dilation, dropout=dropout)

        self.c1 = nn.Sequential(ConvLayer(3, 23, padding=1, dropout=dropout), dws(23))  # 32
        self.t1 = transition(23, 32, 1)  # 30
        self.c2 = nn.Sequential(dws(32), dws(32))
        self.t2 = transition(32, 63, 2)  # 26
        self.c3 = nn.Sequential(dws(63), dws(63))
        self.t3 = transition(63, 93, 4)  # 18
        self.c4 = nn.Sequential(dws(93), dws(93))
        self.t4 = transition(93, 93, 8)  # 2
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Conv2d(93, num_classes, 1, bias=True)

    def forward(self, x):
        for block in (self.c1, self.t1, self.c2, self.t2, self.c3, self.t3, self.c4, self.t4):
            x = block(x)
        x = self.head(self.gap(x))
        return F.log_softmax(x.flatten(1), dim=1)
