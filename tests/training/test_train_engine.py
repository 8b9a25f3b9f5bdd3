"""The engine: the one-cycle schedule, loss detection, learning, reproducibility."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from train_synth import CLASSES, make_images

from training.augment import AugConfig
from training.config import TrainConfig
from training.data import Cifar
from training.engine import detect_loss
from training.models import load_model
from training.run import train_run

TIMING = ("train_seconds", "test_seconds", "images_per_s")


def synthetic(n_train: int, n_test: int) -> Cifar:
    x, y = make_images(n_train + n_test, seed=0)
    return Cifar(x[:n_train], y[:n_train], x[n_train:], y[n_train:], CLASSES, "synthetic")


def numbers(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in history]


def run(tmp_path: Path, name: str, model: Path, data: Cifar, **cfg) -> tuple[dict, Path]:
    out = tmp_path / name
    summary = train_run(
        lambda: load_model(str(model)),
        data,
        TrainConfig(**cfg),
        out,
        device=torch.device("cpu"),
        progress=False,
    )
    return summary, out


def summary_history(out: Path) -> list[dict]:
    return json.loads((out / "history.json").read_text())


def test_one_cycle_three_phases_by_hand(tmp_path, tiny_model):
    # 10 images, batch 2, 2 epochs -> 10 steps. three_phase with pct_start 0.4 puts the peak
    # at step 0.4*10 - 1 = 3, back to the start at 2*0.4*10 - 2 = 6, the floor at step 9.
    # start lr = 0.05 (div_factor = 0.1/0.05); floor = 0.05 / 1e4 = 5e-6.
    # step 1 (cosine): 0.05 + (0.1 - 0.05) * (1 - cos(pi * 1/3)) / 2 = 0.0625
    _, out = run(
        tmp_path,
        "r",
        tiny_model,
        synthetic(10, 4),
        epochs=2,
        batch_size=2,
        lr=0.05,  # the previous recipe's start (the assignment's is 0.005)
        aug=AugConfig.off(),
    )
    steps = torch.load(out / "last.pt", weights_only=False)["trainer"]["lr_steps"]
    assert len(steps) == 10
    assert steps[0] == pytest.approx(0.05) and steps[1] == pytest.approx(0.0625)
    assert steps[3] == pytest.approx(0.1) and steps[6] == pytest.approx(0.05)
    assert steps[9] == pytest.approx(5e-6)
    assert math.isclose(max(steps), 0.1)


def test_detect_loss(tiny_model):
    x = torch.randn(4, 3, 32, 32)
    assert detect_loss(load_model(str(tiny_model)), x) == "nll"
    assert detect_loss(load_model(f"{tiny_model}:logits"), x) == "ce"


@pytest.mark.parametrize("fast", [False, True])
def test_loss_goes_down_overfitting_64_images(tmp_path, tiny_model, fast):
    summary, out = run(
        tmp_path,
        "r",
        tiny_model,
        synthetic(64, 16),
        epochs=8,
        batch_size=16,
        lr=0.05,
        max_lr=0.2,
        aug=AugConfig.off(),
        fast=fast,
    )
    h = summary_history(out)
    assert summary["loss"] == "nll"
    assert h[-1]["train_loss"] < 0.5 * h[0]["train_loss"]
    assert h[-1]["train_acc"] > 0.5 and h[-1]["train_acc"] > h[0]["train_acc"]


def test_cross_entropy_model_trains(tmp_path, tiny_model):
    out = tmp_path / "ce"
    summary = train_run(
        lambda: load_model(f"{tiny_model}:logits"),
        synthetic(32, 8),
        TrainConfig(epochs=1, batch_size=16),
        out,
        device=torch.device("cpu"),
        progress=False,
    )
    assert summary["loss"] == "ce" and np.isfinite(summary_history(out)[0]["train_loss"])


@pytest.mark.parametrize("fast", [False, True])
def test_same_seed_same_first_epoch(tmp_path, tiny_model, fast):
    data = synthetic(48, 16)
    kw = dict(epochs=2, batch_size=16, fast=fast, aug=AugConfig())
    a, out_a = run(tmp_path, "a", tiny_model, data, seed=7, **kw)
    b, out_b = run(tmp_path, "b", tiny_model, data, seed=7, **kw)
    c, out_c = run(tmp_path, "c", tiny_model, data, seed=8, **kw)
    first = [numbers(summary_history(o))[0] for o in (out_a, out_b, out_c)]
    assert first[0] == first[1]
    assert first[0] != first[2]
    wa = torch.load(out_a / "last.pt", weights_only=False)["trainer"]["model"]
    wb = torch.load(out_b / "last.pt", weights_only=False)["trainer"]["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_albumentations_workers_are_seeded_per_epoch():
    from training.loaders import EpochShuffle, ReferenceBatches

    data = synthetic(8, 2)

    def first(epoch):
        # Fixed order, so only the augmentation draws can differ between epochs.
        b = ReferenceBatches(
            data.train_x,
            data.train_y,
            8,
            AugConfig(),
            (0.5,) * 3,
            (0.25,) * 3,
            seed=1,
            workers=1,
            sampler=EpochShuffle(8, 1, False),
        )
        return next(b.epoch(epoch))

    (x0, y0), (x0b, y0b), (x1, _) = first(0), first(0), first(1)
    assert torch.equal(x0, x0b) and torch.equal(y0, y0b)  # same (seed, epoch): same batch
    assert not torch.equal(x0, x1)
