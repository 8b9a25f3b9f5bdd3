"""Reports and batches, checked against hand-made expectations: the confusion matrix's
orientation, the CSV files, time-to-accuracy, and a fresh batch order every epoch."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from training.loaders import EpochShuffle, ReferenceBatches, TensorBatches
from training.report import (
    confusion_matrix,
    plot_misclassified,
    time_to_accuracy,
    write_confusion,
    write_history,
)

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def test_confusion_rows_are_the_true_class():
    # three images of class 0, all predicted 2; one of class 1 predicted 1; one class 2 -> 0
    true = np.array([0, 0, 0, 1, 2])
    pred = np.array([2, 2, 2, 1, 0])
    cm = confusion_matrix(true, pred, 3)
    assert cm.tolist() == [[0, 0, 3], [0, 1, 0], [1, 0, 0]]
    assert cm.sum(1).tolist() == [3, 1, 1]  # row sums: how many of each true class


def test_confusion_csv_has_true_classes_down_the_side(tmp_path):
    cm = confusion_matrix(np.array([0, 0, 1]), np.array([1, 1, 1]), 2)
    write_confusion(tmp_path, cm, ("cat", "dog"))
    rows = list(csv.reader((tmp_path / "confusion.csv").open()))
    assert rows == [["true \\ predicted", "cat", "dog"], ["cat", "0", "2"], ["dog", "0", "1"]]
    assert (tmp_path / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_history_json_and_csv(tmp_path):
    history = [
        {"epoch": 1, "train_loss": 2.5, "test_acc": 0.25},
        {"epoch": 2, "train_loss": 1.5, "test_acc": 0.5},
    ]
    write_history(tmp_path, history)
    assert json.loads((tmp_path / "history.json").read_text()) == history
    assert (tmp_path / "history.csv").read_text() == (
        "epoch,train_loss,test_acc\n1,2.5,0.25\n2,1.5,0.5\n"
    )


def test_history_csv_has_a_column_for_every_key_of_any_epoch(tmp_path):
    # a run resumed by a newer version: its later epochs have a key the first ones lack
    history = [{"epoch": 1, "train_loss": 2.5}, {"epoch": 2, "train_loss": 1.5, "compile": 3}]
    write_history(tmp_path, history)
    assert (tmp_path / "history.csv").read_text() == ("epoch,train_loss,compile\n1,2.5,\n2,1.5,3\n")


def test_time_to_accuracy_counts_train_and_test_seconds_until_first_reached():
    history = [
        {"train_seconds": 10.0, "test_seconds": 1.0, "test_acc": 0.5},
        {"train_seconds": 20.0, "test_seconds": 2.0, "test_acc": 0.8},
        {"train_seconds": 30.0, "test_seconds": 3.0, "test_acc": 0.7},
        {"train_seconds": 40.0, "test_seconds": 4.0, "test_acc": 0.9},
    ]
    assert time_to_accuracy(history, 0.8) == 33.0  # reached exactly at epoch 2
    assert time_to_accuracy(history, 0.85) == 110.0  # first at epoch 4
    assert time_to_accuracy(history, 0.5) == 11.0
    assert time_to_accuracy(history, 0.95) is None


def test_misclassified_gallery_counts_only_wrong_ones(tmp_path):
    images = np.zeros((40, 32, 32, 3), np.uint8)
    true = np.arange(40) % 4
    pred = true.copy()
    assert plot_misclassified(tmp_path, images, true, pred, list("abcd")) == 0
    assert not (tmp_path / "misclassified.png").exists()
    pred[[3, 7, 11]] = (pred[[3, 7, 11]] + 1) % 4
    assert plot_misclassified(tmp_path, images, true, pred, list("abcd")) == 3
    pred[:] = (true + 1) % 4
    assert plot_misclassified(tmp_path, images, true, pred, list("abcd"), n=25) == 25
    assert (tmp_path / "misclassified.png").is_file()


# --------------------------------------------------------------------------- batch order
def _order(batches, epoch: int) -> list[int]:
    return [int(i) for _, y in batches.epoch(epoch) for i in y]


@pytest.mark.parametrize("kind", ["tensor", "reference"])
def test_every_epoch_draws_a_fresh_order_of_all_images(kind):
    n = 50
    images = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(n)  # the label says which image it is
    if kind == "tensor":
        batches = TensorBatches(
            images, labels, 8, None, MEAN, STD, seed=3, device=torch.device("cpu")
        )
    else:
        batches = ReferenceBatches(images, labels, 8, None, MEAN, STD, seed=3)
    assert len(batches) == 7  # 6 full batches of 8 and one of 2
    orders = [_order(batches, e) for e in range(4)]
    for order in orders:
        assert sorted(order) == list(range(n))  # every image once
    # 50! orders: two equal ones between four epochs would not be chance
    assert len({tuple(o) for o in orders}) == 4
    assert orders[0] != list(range(n))
    assert _order(batches, 2) == orders[2]  # fixed by (seed, epoch): resumable


def test_epoch_shuffle_depends_on_seed_and_epoch():
    a, b = EpochShuffle(30, seed=1), EpochShuffle(30, seed=2)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and list(b) != first
    assert list(EpochShuffle(30, seed=1, shuffle=False)) == list(range(30))
    assert len(a) == 30
