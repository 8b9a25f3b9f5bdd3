"""The data-free run (rfcalc.execute) against a real forward pass: never a different answer.

Every model of the zoo and the torchvision models of the tests is analysed both ways and
every row compared; models that need values must fall back to real values and say where.
"""

import dataclasses
import inspect

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision
import zoo  # tests/rfcalc is on sys.path (pytest rootdir-less test folders)
from torch._subclasses.fake_tensor import FakeTensor

from rfcalc import RFError, analyze
from rfcalc.analysis import UNCHECKED

REAL_NOTE = "ran on real values"

ZOO = [
    (zoo.s9_net, (3, 32, 32)),
    (zoo.VGGStack, (3, 32, 32)),
    (zoo.ResNetStrided, (3, 32, 32)),
    (zoo.Inception, (3, 32, 32)),
    (zoo.DenseBlock, (3, 32, 32)),
    (zoo.MobileBlock, (3, 32, 32)),
    (zoo.Dilated, (3, 32, 32)),
    (zoo.UNet, (3, 32, 32)),
    (zoo.NearestUp, (3, 16, 16)),
    (lambda: zoo.Branchy(repeats=4), (3, 32, 32)),
    (zoo.Conv1dNet, (2, 64)),
    (zoo.SqueezeExcite, (3, 16, 16)),
    (lambda: zoo.CustomOps("roll"), (3, 16, 16)),
    (lambda: zoo.CustomOps("fn"), (3, 16, 16)),
    (zoo.Functional, (3, 32, 32)),
    (zoo.Pools, (3, 8, 8)),
    (lambda: nn.AdaptiveAvgPool2d(3), (3, 8, 8)),
    (zoo.Asymmetric, (3, 20, 20)),
]
TORCHVISION = [
    (lambda: torchvision.models.vgg16(weights=None), (3, 224, 224)),
    (lambda: torchvision.models.resnet50(weights=None), (3, 224, 224)),
    (
        lambda: torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False),
        (3, 299, 299),
    ),
    (lambda: torchvision.models.mobilenet_v3_small(weights=None), (3, 96, 96)),
]


def zoo_classes_covered():
    """Every nn.Module class defined in zoo.py is in ZOO (so a new zoo model is not missed)."""
    defined = {
        name
        for name, obj in vars(zoo).items()
        if inspect.isclass(obj) and issubclass(obj, nn.Module) and obj.__module__ == zoo.__name__
    }
    used = {type(make()).__name__ for make, _ in ZOO}
    return defined - used


def test_the_zoo_list_is_complete():
    assert zoo_classes_covered() == set()


def assert_same(model, shape):
    fake, real = analyze(model, shape, real=False), analyze(model, shape, real=True)
    ran_real = [n for n in fake.notes if REAL_NOTE in n]
    # only Branchy branches on a value (`if x.mean() >= 0`); everything else runs data-free
    assert len(ran_real) == isinstance(model, zoo.Branchy), fake.notes
    if ran_real:
        assert "zoo.py" in ran_real[0] and "x.mean() >= 0" in ran_real[0]
        assert "in the model's forward" in ran_real[0]
        fake = dataclasses.replace(fake, notes=tuple(n for n in fake.notes if n not in ran_real))
    else:  # the data-free run has no values to perturb, and says so
        assert fake.notes[-1] == UNCHECKED
        fake = dataclasses.replace(fake, notes=fake.notes[:-1])
    assert len(fake.rows) == len(real.rows)
    for a, b in zip(fake.rows, real.rows, strict=True):
        assert a == b
    assert fake.output == real.output and fake.params == real.params
    assert fake.notes == real.notes


@pytest.mark.parametrize("make, shape", ZOO, ids=lambda v: getattr(v, "__name__", str(v)))
def test_zoo_fake_and_real_agree_on_every_row(make, shape):
    assert_same(make(), shape)


@pytest.mark.parametrize("make, shape", TORCHVISION)
def test_torchvision_fake_and_real_agree_on_every_row(make, shape):
    assert_same(make(), shape)


class Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        if x.mean() > 0:  # control flow on a value: a data-free run cannot decide it
            return self.conv(x)
        return self.conv(self.conv(x))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.gate = Gate()

    def forward(self, x):
        return self.gate(self.conv(x))


class Gated(nn.Module):
    def __init__(self, sign: float):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)
        self.block3 = Block()
        with torch.no_grad():  # all-positive or all-negative: the branch taken is known
            self.stem.weight.fill_(sign)
            self.stem.bias.zero_()
            self.block3.conv.weight.abs_()  # keeps the sign of the stem's output
            self.block3.conv.bias.zero_()

    def forward(self, x):
        return self.block3(self.stem(x.abs()))


@pytest.mark.parametrize("sign, rf", [(1.0, 5), (-1.0, 7)])
def test_control_flow_on_values_runs_real_and_says_where(sign, rf):
    # stem 1x1 (rf 1), block3.conv 3x3 (3), then one (x.mean() > 0) or two 3x3 convs
    a = analyze(Gated(sign), (3, 16, 16), real=False)
    assert a.output.rf == (rf, rf)
    note = [n for n in a.notes if REAL_NOTE in n]
    assert len(note) == 1 and "at block3.gate" in note[0] and "x.mean() > 0" in note[0]
    assert "test_execute.py" in note[0]


class ValueOps(nn.Module):
    def __init__(self, which: str):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3)
        self.which = which

    def forward(self, x):
        y = self.conv(x)
        if self.which == "item":
            return y * float(y.sum().item() != 0)
        if self.which == "nonzero":
            keep = torch.nonzero(torch.ones(3)).numel()  # a shape read from values
            return y[:, :keep]
        if self.which == "numpy":
            return y + torch.from_numpy(np.zeros(y.shape, dtype=np.float32) + y.detach().numpy())
        return y.tolist() and y


@pytest.mark.parametrize(
    "which, text",
    [("item", ".item()"), ("nonzero", "nonzero"), ("numpy", ".numpy()"), ("tolist", "tolist")],
)
def test_values_read_in_the_forward_fall_back_to_real(which, text):
    a = analyze(ValueOps(which), (3, 9, 9), real=False)
    note = [n for n in a.notes if REAL_NOTE in n]
    assert len(note) == 1 and text in note[0], a.notes
    assert a.rows[0].name == "conv" and a.rows[0].rf == (3, 3) and a.rows[0].size == (7, 7)


def test_the_forward_sees_tensors_without_data_and_the_model_keeps_its_own():
    seen = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3)
            self.register_buffer("calls", torch.zeros(()))

        def forward(self, x):
            seen.append(type(x))
            self.cache = self.conv(x)  # a lazily kept tensor
            self.calls += 1  # an in-place update of a buffer
            return self.cache

    spy = Spy()
    weight, calls = spy.conv.weight, spy.calls
    before = weight.detach().clone()
    analyze(spy, (3, 8, 8), real=False)
    assert seen == [FakeTensor]
    assert not hasattr(spy, "cache")  # the fake attribute was undone
    assert spy.conv.weight is weight and torch.equal(weight, before)
    assert spy.calls is calls and not isinstance(spy.calls, FakeTensor)
    assert isinstance(spy(torch.zeros(1, 3, 8, 8)), torch.Tensor)  # still usable for real


def test_lazy_modules_run_real():
    model = nn.Sequential(nn.LazyConv2d(4, 3), nn.ReLU())
    a = analyze(model, (3, 8, 8), real=False)
    assert a.rows[0].rf == (3, 3) and any("lazy" in n for n in a.notes)
    assert not isinstance(model[0].weight, FakeTensor) and model[0].weight.shape == (4, 3, 3, 3)


def test_small_cases_run_on_real_values_and_large_ones_without_data():
    seen = []

    class Spy(nn.Module):
        def __init__(self, params: int):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(params))

        def forward(self, x):
            seen.append(type(x))
            return x[:, :, ::2] * self.scale[0]

    # parameters x pixels: 2e10 runs on real values, one pixel more does not
    analyze(Spy(20_000), (1, 1000, 1000))
    analyze(Spy(20_000), (1, 1000, 1001))
    # (the real-valued run is followed by its perturbation check, on real values too)
    assert set(seen[:-1]) == {torch.Tensor} and seen[-1] is FakeTensor
    # no note for the choice (5 rows, not 4: x[::2] of 4 leaves pixel 3 unread, a note)
    assert analyze(Spy(1), (1, 5, 5)).notes == ()


@pytest.mark.parametrize(
    "make, shape", ZOO + TORCHVISION[2:3], ids=lambda v: getattr(v, "__name__", str(v))
)
def test_a_model_built_without_weights_gives_the_real_models_rows(make, shape):
    """`rfcalc table` builds the model on the meta device (no weights to initialise) and builds
    it with weights only where the forward needs values."""
    real = analyze(make(), shape, real=True)
    with torch.device("meta"):
        meta = make()
    assert all(p.is_meta for p in meta.parameters())
    built = []

    def with_weights():
        built.append(make())
        return built[-1]

    a = analyze(meta, shape, real=False, materialize=with_weights)
    needs_values = isinstance(meta, zoo.Branchy)  # `if x.mean() >= 0` in its forward
    assert len(built) == needs_values
    if needs_values:
        assert not built[0].training  # the built model runs in eval mode, as the first
        assert any(REAL_NOTE in n and "x.mean() >= 0" in n for n in a.notes)
        a = dataclasses.replace(a, notes=tuple(n for n in a.notes if REAL_NOTE not in n))
    else:
        a = dataclasses.replace(a, notes=tuple(n for n in a.notes if n != UNCHECKED))
    assert a.rows == real.rows and a.output == real.output and a.params == real.params
    assert a.notes == real.notes


def test_a_small_model_without_weights_is_built_with_them_and_analysed_on_values():
    with torch.device("meta"):
        meta = zoo.s9_net()
    built = []
    a = analyze(meta, (3, 32, 32), materialize=lambda: built.append(zoo.s9_net()) or built[-1])
    assert len(built) == 1 and a.output.rf == (48, 48) and a.params == 190_509


def test_a_model_without_weights_that_needs_values_and_cannot_get_them_is_an_error():
    with torch.device("meta"):
        meta = zoo.Branchy(repeats=2)
    with pytest.raises(RFError, match="meta device but needs real values: .*x.mean"):
        analyze(meta, (3, 32, 32), real=False)
    with pytest.raises(RFError, match="meta device but needs real values"):
        analyze(meta, (3, 32, 32), real=True)
