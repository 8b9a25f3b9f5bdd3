"""A run's reported numbers against an evaluation done here, from the saved weights alone."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from train_synth import CLASSES, make_images

from training.config import TrainConfig
from training.data import Cifar
from training.models import load_model
from training.run import train_run


@pytest.mark.parametrize("eval_batch_size", [1000, 5])
def test_reported_test_numbers_match_an_independent_evaluation(
    tmp_path, tiny_model, eval_batch_size
):
    # 16 test images: one batch of 16, or 5 + 5 + 5 + 1 padded to 5 (the padding not counted)
    x, y = make_images(64, seed=0)
    data = Cifar(x[:48], y[:48], x[48:], y[48:], CLASSES, "synthetic")
    out = tmp_path / "run"
    train_run(
        lambda: load_model(str(tiny_model)),
        data,
        TrainConfig(epochs=2, batch_size=16, eval_batch_size=eval_batch_size),
        out,
        device=torch.device("cpu"),
        progress=False,
    )
    history = json.loads((out / "history.json").read_text())

    # Normalize by the training images' per-channel mean and std (0..1 scale), by hand.
    train = x[:48].reshape(-1, 3).astype(np.float64) / 255
    mean, std = train.mean(0), train.std(0)
    test = (x[48:].astype(np.float64) / 255 - mean) / std
    inputs = torch.from_numpy(test).permute(0, 3, 1, 2).float()
    labels = torch.from_numpy(y[48:])

    def evaluate(state: dict) -> tuple[float, float, np.ndarray]:
        net = load_model(str(tiny_model))
        net.load_state_dict(state)
        with torch.no_grad():
            logp = net.eval()(inputs)  # Tiny ends in log_softmax: NLL
        pred = logp.argmax(1)
        return (
            F.nll_loss(logp, labels).item(),
            (pred == labels).float().mean().item(),
            pred.numpy(),
        )

    last = torch.load(out / "last.pt", weights_only=False)["trainer"]["model"]
    loss, acc, pred = evaluate(last)
    assert history[-1]["test_loss"] == pytest.approx(loss, rel=1e-4, abs=1e-5)
    assert history[-1]["test_acc"] == pytest.approx(acc, abs=1e-9)

    # confusion.csv after the last epoch: row = true class, column = predicted, by hand
    expected = np.zeros((10, 10), int)
    for t, p in zip(y[48:], pred):
        expected[t, p] += 1
    rows = list(csv.reader((out / "confusion.csv").open()))
    assert rows[0][1:] == list(CLASSES) and [r[0] for r in rows[1:]] == list(CLASSES)
    assert np.array_equal(np.array([[int(v) for v in r[1:]] for r in rows[1:]]), expected)

    # best.pt holds the weights of the best epoch, and that epoch's accuracy is what it says
    best = torch.load(out / "best.pt", weights_only=True)
    assert best["test_acc"] == max(r["test_acc"] for r in history)
    assert best["test_acc"] == pytest.approx(evaluate(best["model"])[1], abs=1e-9)
    assert history[best["epoch"] - 1]["test_acc"] == best["test_acc"]
