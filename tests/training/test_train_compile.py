"""torch.compile in the training loop, on the CPU at small shapes: the warm-up compiles every
shape before epoch 1 and leaves no trace in the numbers, the epochs compile nothing more, and
a compiled run trains as an eager one does. (What CUDA graphs add runs on a GPU only.)

Compiling on the CPU is slow the first time (inductor builds C++; it caches on disk), so the
models are tiny and the runs two epochs of a few steps.
"""

from __future__ import annotations

import json

import pytest
import torch
from train_synth import CLASSES, TINY_MODEL, make_images

from training import engine
from training.augment import AugConfig
from training.config import TrainConfig
from training.data import Cifar
from training.engine import Trainer, compile_mode
from training.loaders import TensorBatches
from training.models import load_model
from training.run import train_run

CPU = torch.device("cpu")
# BatchNorm (buffers the warm-up must put back) and no dropout: eager and compiled runs draw
# no random numbers, so they can be compared step for step.
BN_NO_DROPOUT = """
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 16, 3, padding=1, stride=2)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.c1(x))), 2)
        return F.log_softmax(self.fc(F.relu(self.c2(x)).mean((2, 3))), 1)
"""


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each test compiles from scratch (and leaves no compiled code, nor settings, behind)."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    yield
    torch._dynamo.config.error_on_recompile = False
    torch._dynamo.reset()


def synthetic(n_train: int, n_test: int) -> Cifar:
    x, y = make_images(n_train + n_test, seed=0)
    return Cifar(x[:n_train], y[:n_train], x[n_train:], y[n_train:], CLASSES, "synthetic")


def graphs() -> int:
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def test_compiled_run_trains_as_eager_and_compiles_nothing_after_warm_up(tmp_path, monkeypatch):
    model = tmp_path / "bn.py"
    model.write_text(BN_NO_DROPOUT)
    # 40 images in batches of 16: 2 full steps, the 8 left over dropped (one shape); 10 test
    # images in batches of 4: the last one padded (one shape).
    data = synthetic(40, 10)
    seen = {}
    warm_up = engine.Trainer.warm_up

    def then_no_more_compiling(self, epoch=0):
        seconds = warm_up(self, epoch)
        if seconds:
            seen["graphs"] = graphs()
            # from here on a compile is an error, not a slow epoch (reset by fresh_dynamo)
            torch._dynamo.config.error_on_recompile = True
        return seconds

    monkeypatch.setattr(engine.Trainer, "warm_up", then_no_more_compiling)

    def run(name: str, compiled: bool) -> list[dict]:
        cfg = TrainConfig(
            epochs=2,
            batch_size=16,
            fast=True,
            aug=AugConfig.off(),
            compile=compiled,
            eval_batch_size=4,
        )
        train_run(
            lambda: load_model(f"{model}:Net"),
            data,
            cfg,
            tmp_path / name,
            device=CPU,
            progress=False,
        )
        return json.loads((tmp_path / name / "history.json").read_text())

    eager = run("eager", False)
    assert graphs() == 0 and "graphs" not in seen
    compiled = run("compiled", True)
    # one graph for training (forward and backward), one for testing, both in the warm-up
    assert seen["graphs"] == 2 and graphs() == 2
    assert [r["train_images"] for r in compiled] == [32, 32]  # two full batches an epoch
    assert compiled[0]["compile_seconds"] > 0 and compiled[1]["compile_seconds"] == 0
    assert eager[0]["compile_seconds"] == 0
    for a, b in zip(eager, compiled):
        for key in ("train_loss", "test_loss", "train_acc", "test_acc"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), key


def test_warm_up_puts_back_every_state_it_touches(tmp_path, monkeypatch):
    # The tiny model has BatchNorm (running statistics, a step count) and dropout (draws from
    # the global generator): the warm-up's passes change both, and must put them back.
    # (AOTAutograd without inductor: the same graphs, no C++ to build.)
    compile = torch.compile
    monkeypatch.setattr(
        torch, "compile", lambda m, mode, dynamic: compile(m, backend="aot_eager", dynamic=dynamic)
    )
    path = tmp_path / "tiny.py"
    path.write_text(TINY_MODEL)
    torch.manual_seed(0)
    data = synthetic(24, 6)
    mean, std = data.mean_std()
    train = TensorBatches(
        data.train_x, data.train_y, 8, None, mean, std, seed=1, device=CPU, drop_last=True
    )
    test = TensorBatches(
        data.test_x, data.test_y, 4, None, mean, std, seed=1, device=CPU, shuffle=False
    )
    cfg = TrainConfig(epochs=1, batch_size=8, compile=True)
    trainer = Trainer(load_model(str(path)), train, test, cfg, CPU, loss="nll", progress=False)
    before = {k: v.clone() for k, v in trainer.module.state_dict().items()}
    rng = torch.get_rng_state()
    scheduler = trainer.scheduler.state_dict()

    assert trainer.warm_up() > 0
    assert graphs() == 2  # it did compile the training and the test pass
    after = trainer.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert before["bn.num_batches_tracked"] == 0
    assert torch.equal(torch.get_rng_state(), rng)
    assert trainer.optimizer.state_dict()["state"] == {}  # never stepped
    assert all(p.grad is None for p in trainer.module.parameters())
    assert trainer.scheduler.state_dict() == scheduler and trainer.lr_steps == []
    assert trainer.warm_up() == 0  # once only


@pytest.mark.parametrize(
    "mode, device, world, expected",
    [
        ("reduce-overhead", "cuda", 1, "reduce-overhead"),
        ("max-autotune", "cuda", 1, "max-autotune"),
        ("reduce-overhead", "cpu", 1, "default"),
        ("max-autotune", "cpu", 1, "max-autotune-no-cudagraphs"),
        ("reduce-overhead", "cuda", 2, "default"),
        ("default", "cuda", 1, "default"),
    ],
)
def test_cuda_graphs_only_on_one_gpu(mode, device, world, expected):
    from training.distributed import World

    assert compile_mode(mode, torch.device(device), World(0, world)) == expected


def test_compile_and_static_shapes_are_on_by_default_with_a_gpu_only():
    cfg = TrainConfig()
    gpu, cpu = cfg.resolved(torch.device("cuda")), cfg.resolved(CPU)
    assert (gpu.compile, gpu.fast, gpu.drop_last) == (True, True, True)
    assert (cpu.compile, cpu.fast, cpu.drop_last) == (False, False, False)
    # drop_last follows the path (static shapes for the tensor path), not compile, so that
    # --compile / --no-compile never change which images are trained on
    assert TrainConfig(fast=True, compile=False).resolved(CPU).drop_last is True
    assert TrainConfig(fast=False, compile=True).resolved(CPU).drop_last is False
    assert TrainConfig(fast=True, drop_last=False).resolved(CPU).drop_last is False


class OnlyLenAndEpoch:
    """A batch source that does not say its batch sizes: the warm-up sees its first only."""

    def __init__(self, batches):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def epoch(self, epoch: int):
        return self.batches.epoch(epoch)


def test_a_shape_the_warm_up_missed_is_compiled_in_the_epoch_and_said(
    tmp_path, monkeypatch, capsys
):
    compile = torch.compile
    monkeypatch.setattr(
        torch, "compile", lambda m, mode, dynamic: compile(m, backend="aot_eager", dynamic=dynamic)
    )
    path = tmp_path / "bn.py"
    path.write_text(BN_NO_DROPOUT)
    data = synthetic(20, 4)  # batches of 8, 8 and 4: the last one a shape of its own
    mean, std = data.mean_std()
    train = TensorBatches(data.train_x, data.train_y, 8, None, mean, std, seed=1, device=CPU)
    test = TensorBatches(
        data.test_x, data.test_y, 4, None, mean, std, seed=1, device=CPU, shuffle=False
    )
    cfg = TrainConfig(epochs=2, batch_size=8, compile=True)

    def fit_with(batches) -> str:
        torch._dynamo.reset()
        model = load_model(f"{path}:Net")
        engine.fit(Trainer(model, batches, test, cfg, CPU, loss="nll", progress=False))
        return capsys.readouterr().out

    missed = fit_with(OnlyLenAndEpoch(train))
    assert "torch.compile made 1 more graph(s) in epoch 1" in missed
    assert "in epoch 2" not in missed  # compiled once, then reused
    assert "more graph" not in fit_with(train)  # told the sizes, the warm-up compiles both
