"""Property test: random nets from the op set, every unit of several rows against autograd.

Nets are drawn op by op (hypothesis, seeded): convolutions of every padding mode, strides and
dilations, average pools, fractional up- and down-sampling (nearest, nearest-exact, linear
with and without align_corners), crops and pads of every mode, nested residual / concat /
gated blocks, one-axis mixing (a mean along one dim broadcast back, a Linear along the last
dim), flips, rolls, spatial transposes, pixel (un)shuffle, flatten + view, Tensor.unfold; in
1-D, 2-D and 3-D with odd sizes. All are linear with positive weights (measure.positive), so
a pixel reaches a unit exactly when its gradient is non-zero. The contract (measure.contract):
exact rows match every unit, approx rows are never narrower than any unit, global axes see
the whole map, unknown rows claim nothing, and what rfcalc says a unit sees is what it sees.

The default run draws 25 nets; `RFCALC_SLOW=1` (marker `slow`) draws RFCALC_EXAMPLES (500).
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from measure import contract, measure, positive  # tests/rfcalc is on sys.path, as for zoo

from rfcalc.record import record

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
POOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
LINEAR = {1: "linear", 2: "bilinear", 3: "trilinear"}
MAX_UNITS = 400


class Lambda(nn.Module):
    """A parameter-free step with a readable repr (hypothesis prints the failing net)."""

    def __init__(self, what: str, fn):
        super().__init__()
        self.what, self.fn = what, fn

    def forward(self, x):
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.what


class Residual(nn.Module):
    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return x + self.inner(x)


class Concat(nn.Module):
    def __init__(self, inner: nn.Module, c: int, nd: int):
        super().__init__()
        self.inner, self.merge = inner, CONV[nd](2 * c, c, 1)

    def forward(self, x):
        return self.merge(torch.cat([x, self.inner(x)], 1))


class Gate(nn.Module):
    """(x + 1) times its mean along some spatial dims (broadcast back): a gate, global along
    them. The + 1: a zero-padded unit times the mean would be a constant 0 (no gradient), a
    value fact rfcalc cannot know (after a conv with a bias it is not 0)."""

    def __init__(self, dims: tuple[int, ...]):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return (x + 1) * x.mean(self.dims, keepdim=True)

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


class AlongLast(nn.Module):
    """A token-mixing Linear applied along the last (spatial) dim."""

    def __init__(self, n: int):
        super().__init__()
        self.fc = nn.Linear(n, n)

    def forward(self, x):
        return self.fc(x)


def shape_of(model: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    with torch.no_grad():
        return tuple(model(torch.zeros((1, *shape), dtype=torch.float64)).shape[1:])


def same_size_op(draw, c: int, sizes: tuple[int, ...], depth: int) -> nn.Module:
    """An op that keeps the map's size (what residual and concat blocks may hold)."""
    nd = len(sizes)
    kind = draw(
        st.sampled_from(
            ["conv", "gate", "flip", "roll", "flatview", "along"]
            + (["residual"] if depth < 2 else [])
        )
    )
    if kind == "conv":
        k = draw(st.sampled_from([1, 3, 5]))
        d = draw(st.sampled_from([1, 2]))
        mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
        p = d * (k - 1) // 2
        if mode == "reflect" and p >= min(sizes):
            mode = "zeros"
        return CONV[nd](c, c, k, padding=p, dilation=d, padding_mode=mode)
    if kind == "gate":
        dims = draw(st.sets(st.sampled_from(range(2, 2 + nd)), min_size=1))
        return Gate(tuple(sorted(dims)))
    if kind == "flip":
        dim = draw(st.sampled_from(range(2, 2 + nd)))
        return Lambda(f"flip {dim}", lambda x: x.flip(dim))
    if kind == "roll":
        dim = draw(st.sampled_from(range(2, 2 + nd)))
        shift = draw(st.integers(-3, 3))
        return Lambda(f"roll {shift} {dim}", lambda x: torch.roll(x, shift, dims=dim))
    if kind == "flatview":
        return Lambda("flatten(2) + view back", lambda x: x.flatten(2).view(x.shape))
    if kind == "along":
        return AlongLast(sizes[-1])
    inner = nn.Sequential(
        *(same_size_op(draw, c, sizes, depth + 1) for _ in range(draw(st.integers(1, 2))))
    )
    return Residual(inner)


def resizing_op(draw, c: int, sizes: tuple[int, ...]) -> nn.Module:
    nd = len(sizes)
    kind = draw(
        st.sampled_from(
            [
                "conv",
                "pool",
                "interp",
                "crop",
                "pad",
                "transpose",
                "unfold",
                "shuffle",
                "concat",
                "gated",
            ]
        )
    )
    if kind == "conv":
        k = draw(st.integers(1, 4))
        s = draw(st.integers(1, 2))
        d = draw(st.integers(1, 2))
        p = draw(st.integers(0, (k - 1) * d // 2 + 1))
        mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
        if mode != "zeros" and p >= min(sizes):
            mode = "zeros"
        return CONV[nd](c, c, k, s, p, d, padding_mode=mode)
    if kind == "pool":
        k = draw(st.integers(2, 3))
        return POOL[nd](
            k, draw(st.integers(1, 2)), draw(st.integers(0, k // 2)), ceil_mode=draw(st.booleans())
        )
    if kind == "interp":
        mode = draw(st.sampled_from(["nearest", "nearest-exact", "linear", "linear-ac"]))
        sf = draw(st.sampled_from([0.6, 0.75, 1.25, 1.5, 2.0, 2.2, 2.5]))
        recompute = draw(st.booleans())
        kw = (
            dict(mode=mode)
            if mode.startswith("nearest")
            else dict(mode=LINEAR[nd], align_corners=mode == "linear-ac")
        )
        return Lambda(
            f"interpolate x{sf} {kw} recompute={recompute}",
            lambda x: F.interpolate(x, scale_factor=sf, recompute_scale_factor=recompute, **kw),
        )
    if kind == "crop":
        dim = draw(st.sampled_from(range(nd)))
        a, b = draw(st.integers(0, 3)), draw(st.integers(0, 3))
        step = draw(st.sampled_from([1, 1, 2]))
        index = [slice(None)] * (2 + nd)
        index[2 + dim] = slice(a, sizes[dim] - b, step)
        return Lambda(f"crop {index}", lambda x: x[tuple(index)])
    if kind == "pad":
        mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
        widths = [draw(st.integers(-2 if mode == "constant" else 0, 3)) for _ in range(2 * nd)]
        if mode == "reflect":
            widths = [
                min(w, s - 1) for w, s in zip(widths, [n for n in sizes[::-1] for _ in (0, 1)])
            ]
        return Lambda(f"pad {widths} {mode}", lambda x: F.pad(x, widths, mode=mode))
    if kind == "transpose" and nd >= 2:
        a, b = draw(st.sampled_from([(2, 3), (2, nd + 1), (3, nd + 1)][:nd]))
        return Lambda(f"transpose {a} {b}", lambda x: x.transpose(a, b))
    if kind == "unfold":
        dim = draw(st.sampled_from(range(nd)))
        k = draw(st.integers(1, 3))
        step = draw(st.integers(1, 2))
        return Lambda(
            f"Tensor.unfold({2 + dim}, {k}, {step}).sum(-1)",
            lambda x: x.unfold(2 + dim, k, step).sum(-1),
        )
    if kind == "shuffle" and nd == 2:
        if all(n % 2 == 0 for n in sizes) and draw(st.booleans()):
            return nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(4 * c, c, 1))
        return nn.Sequential(nn.Conv2d(c, 4 * c, 1), nn.PixelShuffle(2))
    if kind == "concat":
        return Concat(same_size_op(draw, c, sizes, 1), c, nd)
    if kind == "gated":
        dims = draw(st.sets(st.sampled_from(range(2, 2 + nd)), min_size=1))
        return Gate(tuple(sorted(dims)))
    return same_size_op(draw, c, sizes, 0)


@st.composite
def nets(draw):
    nd = draw(st.sampled_from([1, 2, 2, 3]))
    hi = {1: 17, 2: 11, 3: 6}[nd]
    sizes = tuple(draw(st.integers(3, hi)) for _ in range(nd))
    c = draw(st.sampled_from([1, 2]))
    shape = (c, *sizes)
    steps: list[nn.Module] = []
    for _ in range(draw(st.integers(1, 5))):
        op = resizing_op(draw, c, sizes) if draw(st.booleans()) else same_size_op(draw, c, sizes, 0)
        trial = nn.Sequential(*steps, op).double()
        try:
            new = shape_of(trial, shape)
        except (RuntimeError, ValueError, IndexError):
            continue  # an op this map is too small for: leave it out
        new_sizes = new[1:]
        n_units = 1
        for n in new_sizes:
            n_units *= n
        if len(new_sizes) != nd or min(new_sizes) < 1 or n_units > MAX_UNITS or max(new_sizes) > 24:
            continue
        steps.append(op)
        sizes = new_sizes
    return positive(nn.Sequential(*steps)), shape


def _check(data) -> None:
    model, shape = data.draw(nets())
    names = [s.name for s in record(model, torch.ones((1, *shape), dtype=torch.float64)).steps]
    chosen = (
        {names[-1]} | set(data.draw(st.lists(st.sampled_from(names), max_size=2)))
        if names
        else set()
    )
    result = measure(model, shape, sorted(chosen))
    errors = [e for name, (f, units) in result.items() for e in contract(name, f, units)]
    assert not errors, f"{model}\ninput {shape}\n" + "\n".join(errors[:12])


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(st.data())
def test_random_nets_keep_the_contract(data):
    _check(data)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RFCALC_SLOW") != "1", reason="set RFCALC_SLOW=1 (minutes)")
@settings(
    max_examples=int(os.environ.get("RFCALC_EXAMPLES", "500")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(st.data())
def test_random_nets_keep_the_contract_many(data):
    _check(data)
