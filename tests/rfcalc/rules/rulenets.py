"""The small models the rule tests analyse, and what several of their files share.

`model(fn)` is `fn(self, x)` after nothing, with positive constant weights (`measure.positive`),
so the gradient check can measure every unit's field; `SAME` lists calls that must analyse
alike whether their arguments come by position, by keyword or by default.

In the test files beside this one, expected fields are worked out by hand in the comments and
measured by gradients (`check`): a test never compares the code with its own output. The conv3
in front (`s.c3`, padding 1) gives conv unit u the pixels u-1..u+1 (rf 3, start 0)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from measure import positive  # rules/conftest.py puts tests/rfcalc on sys.path

from rfcalc import analyze

D = torch.float64
W3 = torch.full((1, 1, 3, 3), 1 / 9, dtype=D)  # a 3x3 conv weight (out, in, kh, kw)
W13 = torch.full((1, 1, 1, 3), 1 / 3, dtype=D)  # 1x3: along the tensor's last dim only
RM, RV = torch.zeros(1, dtype=D), torch.ones(1, dtype=D)  # running statistics, one channel


class Fn(nn.Module):
    """`fn(self, x)` after nothing: `self.c3` is a 3x3 conv (padding 1), `self.c4` the same
    with 4 output channels, so a rule sees a map whose units already have a field of 3."""

    def __init__(self, fn, c: int = 1):
        super().__init__()
        self.fn = fn
        self.c3 = nn.Conv2d(c, c, 3, padding=1)
        self.c4 = nn.Conv2d(c, 4 * c, 3, padding=1)

    def forward(self, x):
        return self.fn(self, x)


def model(fn, c: int = 1) -> nn.Module:
    return positive(Fn(fn, c))


def rows(fn, shape=(1, 6, 7), c: int = 1) -> list[tuple]:
    a = analyze(model(fn, c), shape)
    return [
        (r.name, r.op, r.size, r.jump, r.rf, r.start, r.status, r.axis_status, r.window, r.note)
        for r in a.rows
    ]


def out(fn, shape=(1, 6, 7), c: int = 1):
    return analyze(model(fn, c), shape).output


def _norm_by_keyword(op, flag: str, value: bool) -> list:
    """torch.batch_norm / torch.instance_norm with running statistics: every argument by
    position, then the statistics, `flag` and the rest by keyword."""
    return [
        lambda s, x: op(s.c3(x), None, None, RM, RV, value, 0.1, 1e-5, False),
        lambda s, x: op(
            s.c3(x),
            None,
            None,
            running_mean=RM,
            running_var=RV,
            **{flag: value},
            momentum=0.1,
            eps=1e-5,
            cudnn_enabled=False,
        ),
    ]


def _max_pool_by_keyword(s, x):
    """F.max_pool2d k3 stride 2 padding 1 dilation 2 ceil_mode, every argument by keyword:
    the form both max_pool2d entries below compare their positional calls with."""
    return F.max_pool2d(s.c3(x), kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)


# Each entry: calls that must analyse alike, with shape. The first gives every argument by
# position, the others by keyword (non-default values, so a rule reading the wrong keyword
# falls back to the default and differs) or leave them to torch's default.
SAME = {
    "conv2d by keyword": (
        [
            lambda s, x: F.conv2d(s.c3(x), W3, None, 2, 1, 2),
            lambda s, x: F.conv2d(s.c3(x), weight=W3, stride=2, padding=1, dilation=2),
        ],
        (1, 9, 9),
    ),
    "conv2d defaults": (
        [lambda s, x: F.conv2d(s.c3(x), W3, None, 1, 0, 1, 1), lambda s, x: F.conv2d(s.c3(x), W3)],
        (1, 6, 7),
    ),
    "conv_transpose2d by keyword": (
        [
            lambda s, x: F.conv_transpose2d(s.c3(x), W3, None, 3, 2, 1, 1, 2),
            lambda s, x: F.conv_transpose2d(
                s.c3(x), weight=W3, stride=3, padding=2, output_padding=1, dilation=2
            ),
        ],
        (1, 4, 5),
    ),
    "conv_transpose2d defaults": (
        [
            lambda s, x: F.conv_transpose2d(s.c3(x), W3, None, 1, 0, 0, 1, 1),
            lambda s, x: F.conv_transpose2d(s.c3(x), W3),
        ],
        (1, 4, 5),
    ),
    "Tensor.unfold by keyword": (
        [
            lambda s, x: s.c3(x).unfold(-1, 3, 2).sum(-1),
            lambda s, x: s.c3(x).unfold(dimension=-1, size=3, step=2).sum(-1),
        ],
        (1, 6, 9),
    ),
    # a size that is not the dim's own number mod 4 (3 is -1 in a 4-D tensor)
    "Tensor.unfold by keyword, size 2": (
        [
            lambda s, x: s.c3(x).unfold(-1, 2, 1).sum(-1),
            lambda s, x: s.c3(x).unfold(dimension=-1, size=2, step=1).sum(-1),
        ],
        (1, 6, 9),
    ),
    "F.unfold and F.fold by keyword": (
        [
            lambda s, x: F.fold(F.unfold(s.c3(x), 3, 2, 1, 2), (6, 7), 3, 2, 1, 2),
            lambda s, x: F.fold(
                F.unfold(s.c3(x), kernel_size=3, dilation=2, padding=1, stride=2),
                output_size=(6, 7),
                kernel_size=3,
                dilation=2,
                padding=1,
                stride=2,
            ),
        ],
        (1, 6, 7),
    ),
    "F.unfold defaults": (
        [
            lambda s, x: F.fold(F.unfold(s.c3(x), 3, 1, 0, 1), (6, 7), 3, 1, 0, 1),
            lambda s, x: F.fold(F.unfold(s.c3(x), 3), (6, 7), 3),
        ],
        (1, 6, 7),
    ),
    "max_pool2d by keyword": (
        [
            lambda s, x: F.max_pool2d(s.c3(x), 3, 2, 1, 2, True),
            _max_pool_by_keyword,
        ],
        (1, 8, 9),
    ),
    "max_pool2d defaults": (
        [
            lambda s, x: F.max_pool2d(s.c3(x), 2, 2, 0, 1, False),
            lambda s, x: F.max_pool2d(s.c3(x), 2),
        ],
        (1, 7, 9),
    ),
    "torch.max_pool2d by position": (
        # F.max_pool2d hands its arguments on by keyword; torch.max_pool2d takes positions
        [
            lambda s, x: torch.max_pool2d(s.c3(x), 3, 2, 1, 2, True),
            _max_pool_by_keyword,
        ],
        (1, 8, 9),
    ),
    "torch.max_pool2d defaults": (
        [lambda s, x: torch.max_pool2d(s.c3(x), 2), lambda s, x: F.max_pool2d(s.c3(x), 2)],
        (1, 7, 9),
    ),
    "avg_pool2d by keyword": (
        [
            lambda s, x: F.avg_pool2d(s.c3(x), 3, 2, 1, True),
            lambda s, x: F.avg_pool2d(s.c3(x), kernel_size=3, stride=2, padding=1, ceil_mode=True),
        ],
        (1, 8, 9),
    ),
    "avg_pool2d defaults": (
        [lambda s, x: F.avg_pool2d(s.c3(x), 2, 2, 0, False), lambda s, x: F.avg_pool2d(s.c3(x), 2)],
        (1, 7, 9),
    ),
    "lp_pool2d by keyword": (
        [
            lambda s, x: F.lp_pool2d(s.c3(x), 2, 3, 2, True),
            lambda s, x: F.lp_pool2d(s.c3(x), norm_type=2, kernel_size=3, stride=2, ceil_mode=True),
        ],
        (1, 8, 9),
    ),
    "lp_pool2d defaults": (
        [
            lambda s, x: F.lp_pool2d(s.c3(x), 2, 2, 2, False),
            lambda s, x: F.lp_pool2d(s.c3(x), 2, 2),
        ],
        (1, 7, 9),
    ),
    "pixel_shuffle by keyword": (
        [
            lambda s, x: F.pixel_shuffle(s.c4(x), 2),
            lambda s, x: F.pixel_shuffle(s.c4(x), upscale_factor=2),
        ],
        (1, 5, 6),
    ),
    "pixel_unshuffle by keyword": (
        [
            lambda s, x: F.pixel_unshuffle(s.c3(x), 2),
            lambda s, x: F.pixel_unshuffle(s.c3(x), downscale_factor=2),
        ],
        (1, 6, 8),
    ),
    "pad by keyword": (
        [
            lambda s, x: F.pad(s.c3(x), (1, 2, 0, 1), "replicate"),
            lambda s, x: F.pad(s.c3(x), pad=(1, 2, 0, 1), mode="replicate"),
        ],
        (1, 6, 7),
    ),
    "pad defaults": (
        [lambda s, x: F.pad(s.c3(x), (1, 2), "constant"), lambda s, x: F.pad(s.c3(x), (1, 2))],
        (1, 6, 7),
    ),
    "cat by keyword": (
        [
            lambda s, x: torch.cat([s.c3(x), x], -1),
            lambda s, x: torch.cat([s.c3(x), x], dim=-1),
        ],
        (1, 6, 7),
    ),
    "stack by keyword": (
        [
            lambda s, x: torch.stack([s.c3(x), x], -1).sum(-1),
            lambda s, x: torch.stack([s.c3(x), x], dim=-1).sum(-1),
        ],
        (1, 6, 7),
    ),
    "stack defaults": (
        [
            lambda s, x: torch.stack([s.c3(x), x], 0).sum(0),
            lambda s, x: torch.stack([s.c3(x), x]).sum(0),
        ],
        (1, 6, 7),
    ),
    "torch.batch_norm by keyword": (
        _norm_by_keyword(torch.batch_norm, "training", True),
        (1, 6, 7),
    ),
    "torch.batch_norm by keyword, running statistics": (
        _norm_by_keyword(torch.batch_norm, "training", False),
        (1, 6, 7),
    ),
    "torch.instance_norm by keyword": (
        _norm_by_keyword(torch.instance_norm, "use_input_stats", False),
        (1, 6, 7),
    ),
    "torch.instance_norm by keyword, input statistics": (
        _norm_by_keyword(torch.instance_norm, "use_input_stats", True),
        (1, 6, 7),
    ),
    "layer_norm by keyword": (
        [
            lambda s, x: F.layer_norm(s.c3(x), (7,)),
            lambda s, x: F.layer_norm(s.c3(x), normalized_shape=(7,)),
            lambda s, x: F.layer_norm(s.c3(x), [7]),
        ],
        (1, 6, 7),
    ),
    "cumsum by keyword": (
        [lambda s, x: torch.cumsum(s.c3(x), -1), lambda s, x: torch.cumsum(s.c3(x), dim=-1)],
        (1, 6, 7),
    ),
    "glu by keyword and default": (
        [
            lambda s, x: F.glu(s.c3(x), -1),
            lambda s, x: F.glu(s.c3(x), dim=-1),
            lambda s, x: F.glu(s.c3(x)),
        ],
        (1, 6, 8),
    ),
    "chunk by keyword": (
        [lambda s, x: s.c3(x).chunk(2, -1)[0], lambda s, x: s.c3(x).chunk(2, dim=-1)[0]],
        (1, 6, 8),
    ),
    "unbind by keyword": (
        [lambda s, x: s.c3(x).unbind(-1)[0], lambda s, x: s.c3(x).unbind(dim=-1)[0]],
        (1, 6, 8),
    ),
    "repeat by size": (
        [lambda s, x: s.c3(x).repeat(1, 1, 1, 2), lambda s, x: s.c3(x).repeat((1, 1, 1, 2))],
        (1, 6, 7),
    ),
    "transpose by keyword": (
        [
            lambda s, x: s.c3(s.c3(x).transpose(-1, -2)),
            lambda s, x: s.c3(s.c3(x).transpose(dim0=-1, dim1=-2)),
        ],
        (1, 6, 7),
    ),
    "roll by keyword": (
        [
            lambda s, x: s.c3(torch.roll(s.c3(x), 2, -1)),
            lambda s, x: s.c3(torch.roll(s.c3(x), shifts=2, dims=-1)),
        ],
        (1, 6, 7),
    ),
    "flip by keyword": (
        [lambda s, x: s.c3(s.c3(x).flip(-1)), lambda s, x: s.c3(torch.flip(s.c3(x), dims=(-1,)))],
        (1, 6, 7),
    ),
}


def refolded(op):
    """conv3, F.unfold (k3, padding 1), `op` on the columns, F.fold with the same window: with
    nothing but element-wise work between, each pixel gets back the sum of its own entries,
    so every unit keeps the conv's field (rf 3, start 0)."""
    return lambda s, x: F.fold(op(F.unfold(s.c3(x), 3, padding=1)), (6, 7), 3, padding=1)


def grid_sampled(s, x):
    """A map whose field is unknown (grid_sample has no rule)."""
    return F.grid_sample(s.c3(x), torch.zeros(1, 6, 7, 2, dtype=D), align_corners=False)


L42 = torch.ones(5, 42, dtype=D)  # a Linear over the conv3's flattened 6x7 map

W9 = torch.full((9, 9), 1 / 9, dtype=D)  # mixes every entry of a 3x3 window's column


class Line(nn.Module):
    """A 1-D map (conv1d) given a dim of size 1 in front: a 4-D tensor with one spatial axis."""

    def __init__(self, fn):
        super().__init__()
        self.fn, self.c = fn, nn.Conv1d(1, 1, 3, padding=1)

    def forward(self, x):
        return self.fn(self.c(x).unsqueeze(-2))


SOFTMAX_W = "softmax: computed along a spatial dim (exact along H, global along W)"


class Conv(nn.Module):
    """A map with one (conv1d) or three (conv3d) spatial axes, k3 padding 1, then `fn`."""

    def __init__(self, fn, nd: int):
        super().__init__()
        self.fn, self.c = fn, (nn.Conv1d if nd == 1 else nn.Conv3d)(1, 1, 3, padding=1)

    def forward(self, x):
        return self.fn(self.c(x))
