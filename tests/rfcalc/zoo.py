"""Small models the rfcalc tests share (few channels, so forward and gradients are fast).

Each class is one architecture pattern; the expected fields are worked out by hand in
tests/rfcalc/test_models.py. The CLI tests may import these too.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from rfcalc.load import load_target

C = 4  # channels everywhere: geometry does not depend on width
S9_FILE = Path(__file__).resolve().parents[2] / "examples" / "s9_net.py"


def s9_net() -> nn.Module:
    """The assignment's Net, loaded from examples/s9_net.py as the CLI loads it."""
    return load_target(str(S9_FILE))


def conv(cin: int, cout: int, k=3, s=1, p=1, d=1, groups=1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=s, padding=p, dilation=d, groups=groups)


class VGGStack(nn.Module):
    """conv3-conv3-pool2, twice."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            conv(3, C),
            nn.ReLU(),
            conv(C, C),
            nn.ReLU(),
            nn.MaxPool2d(2),
            conv(C, C),
            nn.ReLU(),
            conv(C, C),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )

    def forward(self, x):
        return self.features(x)


class ResNetStrided(nn.Module):
    """A stem and one residual block that halves the map, with a strided 1x1 shortcut."""

    def __init__(self):
        super().__init__()
        self.stem = conv(3, C)
        self.conv1 = conv(C, C, s=2)
        self.bn1 = nn.BatchNorm2d(C)
        self.conv2 = conv(C, C)
        self.shortcut = nn.Conv2d(C, C, 1, stride=2)

    def forward(self, x):
        x = F.relu(self.stem(x))
        y = self.conv2(F.relu(self.bn1(self.conv1(x))))
        return F.relu(y + self.shortcut(x))


class Inception(nn.Module):
    """Branches with different kernels (1x1, 1x7 then 7x1, 3x3-3x3, pool-1x1), concatenated."""

    def __init__(self):
        super().__init__()
        self.stem = conv(3, C)
        self.b1 = nn.Conv2d(C, C, 1)
        self.b7a = nn.Conv2d(C, C, (1, 7), padding=(0, 3))
        self.b7b = nn.Conv2d(C, C, (7, 1), padding=(3, 0))
        self.b3a = conv(C, C)
        self.b3b = conv(C, C)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1)
        self.bp = nn.Conv2d(C, C, 1)

    def forward(self, x):
        x = self.stem(x)
        return torch.cat(
            [self.b1(x), self.b7b(self.b7a(x)), self.b3b(self.b3a(x)), self.bp(self.pool(x))], dim=1
        )


class DenseBlock(nn.Module):
    """DenseNet-style: each conv sees the concatenation of everything before; a transition."""

    def __init__(self):
        super().__init__()
        self.stem = conv(3, C)
        self.d1 = conv(C, C)
        self.d2 = conv(2 * C, C)
        self.trans = nn.Conv2d(3 * C, C, 1)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x):
        x = self.stem(x)
        x = torch.cat([x, self.d1(x)], 1)
        x = torch.cat([x, self.d2(x)], 1)
        return self.pool(self.trans(x))


class MobileBlock(nn.Module):
    """Strided stem, a depthwise-separable block with a skip, a strided depthwise conv."""

    def __init__(self):
        super().__init__()
        self.stem = conv(3, C, s=2)
        self.dw1 = conv(C, C, groups=C)
        self.pw1 = nn.Conv2d(C, C, 1)
        self.dw2 = conv(C, C, s=2, groups=C)
        self.pw2 = nn.Conv2d(C, 2 * C, 1)

    def forward(self, x):
        x = F.relu6(self.stem(x))
        x = x + self.pw1(F.relu6(self.dw1(x)))
        return self.pw2(F.relu6(self.dw2(x)))


class Dilated(nn.Module):
    """3x3 convs with dilation 1, 2, 4 (no padding), then dilation 2 with padding 2."""

    def __init__(self):
        super().__init__()
        self.convs = nn.Sequential(
            conv(3, C, p=0), conv(C, C, p=0, d=2), conv(C, C, p=0, d=4), conv(C, C, p=2, d=2)
        )

    def forward(self, x):
        return self.convs(x)


class UNet(nn.Module):
    """Encoder/decoder: pool down, transposed-conv up, skip concatenation, and a bilinear head."""

    def __init__(self):
        super().__init__()
        self.enc1 = conv(3, C)
        self.down = nn.MaxPool2d(2)
        self.enc2 = conv(C, C)
        self.up = nn.ConvTranspose2d(C, C, 2, stride=2)
        self.dec = conv(2 * C, C)
        self.up2 = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, x):
        e1 = F.relu(self.enc1(x))
        e2 = F.relu(self.enc2(self.down(e1)))
        d = self.dec(torch.cat([self.up(e2), e1], 1))
        return d, self.up2(e2)


class NearestUp(nn.Module):
    """A strided conv, then nearest up-sampling back to the input size."""

    def __init__(self):
        super().__init__()
        self.down = conv(3, C, k=3, s=2, p=1)

    def forward(self, x):
        return F.interpolate(self.down(x), scale_factor=2, mode="nearest")


class Branchy(nn.Module):
    """Data-dependent control flow, and a loop whose count is a constructor argument."""

    def __init__(self, repeats: int = 3):
        super().__init__()
        self.stem = conv(3, C)
        self.small = conv(C, C, k=3, p=1)
        self.large = conv(C, C, k=5, p=2)
        self.shared = conv(C, C)
        self.repeats = repeats

    def forward(self, x):
        x = F.relu(self.stem(x))
        if x.mean() >= 0:  # always true after ReLU: the 5x5 branch runs
            x = self.large(x)
        else:
            x = self.small(x)
        for _ in range(self.repeats):
            x = self.shared(x)  # one module, called `repeats` times
        return x


class Conv1dNet(nn.Module):
    """A 1-D signal net: strided conv, max-pool, dilated conv."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(2, C, 5, stride=2, padding=2)
        self.pool = nn.MaxPool1d(3, stride=2, padding=1)
        self.c2 = nn.Conv1d(C, C, 3, padding=2, dilation=2)

    def forward(self, x):
        return self.c2(self.pool(F.relu(self.c1(x))))


class SqueezeExcite(nn.Module):
    """x * sigmoid(fc(gap(x))): the gate sees the whole map, so every unit does."""

    def __init__(self):
        super().__init__()
        self.stem = conv(3, C)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(C, 2)
        self.fc2 = nn.Linear(2, C)
        self.after = conv(C, C)

    def forward(self, x):
        x = self.stem(x)
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(self.gap(x).flatten(1)))))
        return self.after(x * gate.view(-1, C, 1, 1))


class _Double(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        return grad * 2


class CustomOps(nn.Module):
    """torch.rot90 (no rule) on one path, a custom autograd.Function on another."""

    def __init__(self, which: str = "rot90"):
        super().__init__()
        self.stem = conv(3, C)
        self.after = conv(C, C)
        self.which = which

    def forward(self, x):
        x = self.stem(x)
        x = torch.rot90(x, 1, dims=(-2, -1)) if self.which == "rot90" else _Double.apply(x)
        return self.after(x)


class Functional(nn.Module):
    """F.max_pool2d called directly, padding='same' with an even kernel, F.pad, a crop."""

    def __init__(self):
        super().__init__()
        self.stem = conv(3, C)
        self.same = nn.Conv2d(C, C, 4, padding="same")

    def forward(self, x):
        x = F.max_pool2d(self.stem(x), 3, 2, 1)
        x = self.same(x)
        x = F.pad(x, (2, 1, 0, 3))
        return x[:, :, 1:, 2:-1]


class Pools(nn.Module):
    """ceil_mode max-pool where PyTorch drops the last window, then adaptive pools."""

    def __init__(self, adaptive: int = 3):
        super().__init__()
        self.pool = nn.MaxPool2d(2, stride=3, padding=1, ceil_mode=True)
        self.adapt = nn.AdaptiveAvgPool2d(adaptive)

    def forward(self, x):
        return self.adapt(self.pool(x))


class Asymmetric(nn.Module):
    """One conv with different kernel, stride, padding and dilation per axis."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(
            3, C, (3, 5), stride=(1, 2), padding=(0, 1), dilation=(2, 1), padding_mode="reflect"
        )

    def forward(self, x):
        return self.conv(x)
