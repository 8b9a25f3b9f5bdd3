"""The run record (summary.json): how the run was trained and its loss curve, one schema."""

from __future__ import annotations

import json

import torch
from train_synth import CLASSES, make_images

from training.augment import AugConfig
from training.config import TrainConfig
from training.data import Cifar
from training.models import load_model
from training.record import SUMMARY_KEYS
from training.run import train_run

CPU = torch.device("cpu")


def test_summary_keeps_the_whole_config_the_recipe_and_the_curve(tmp_path, tiny_model):
    x, y = make_images(40, seed=0)
    data = Cifar(x[:32], y[:32], x[32:], y[32:], CLASSES, "synthetic")
    cfg = TrainConfig.previous(epochs=2, batch_size=16, lr=0.02, seed=3)
    out = tmp_path / "r"
    summary = train_run(
        lambda: load_model(str(tiny_model)),
        data,
        cfg,
        out,
        device=CPU,
        progress=False,
        command="rftrain ...",
    )
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == summary and tuple(summary) == SUMMARY_KEYS
    # the whole configuration, as it ran: automatic settings decided for the CPU, with aug
    assert summary["config"] == cfg.resolved(CPU).to_dict()
    assert summary["config"]["fast"] is False and summary["config"]["amp"] is False
    assert summary["config"]["aug"] == TrainConfig.previous().to_dict()["aug"]
    assert summary["recipe"] == "previous" and summary["config"]["recipe"] == "previous"
    assert summary["departures"] == {"epochs": 2, "batch_size": 16, "lr": 0.02, "seed": 3}
    assert summary["versions"]["torch"] == torch.__version__ == summary["torch"]
    # the loss curve: each epoch's train and test loss and accuracy, as history.json has them
    history = json.loads((out / "history.json").read_text())
    assert [r["epoch"] for r in summary["history"]] == [1, 2]
    for row, full in zip(summary["history"], history):
        for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr_start"):
            assert row[key] == full[key]
    accs = [r["test_acc"] for r in history]
    assert summary["best_epoch"] == accs.index(max(accs)) + 1
    assert summary["best_test_acc"] == max(accs)


def test_the_default_run_records_the_assignment_recipe(tmp_path, tiny_model):
    x, y = make_images(24, seed=1)
    data = Cifar(x[:16], y[:16], x[16:], y[16:], CLASSES, "synthetic")
    summary = train_run(
        lambda: load_model(str(tiny_model)),
        data,
        TrainConfig(epochs=1, batch_size=16, aug=AugConfig.off()),
        tmp_path / "a",
        device=CPU,
        progress=False,
    )
    assert summary["recipe"] == "assignment"
    assert summary["schedule"]["lr"].startswith(
        "one-cycle per step (1 steps, cosine, counted from 0): 0.005 -> 0.1"
    )
    assert summary["schedule"]["momentum"].startswith("cycled opposite to the lr")
