"""What a run leaves behind besides weights: history (JSON, CSV), curves, lr schedule,
a gallery of misclassified test images and a confusion matrix (PNG and CSV)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display on training machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .fsutil import atomic_path, write_json, write_text  # noqa: E402


def write_history(out: Path, history: Sequence[dict]) -> None:
    """history.json and history.csv, one row per epoch (a column for every key any row has:
    a run resumed by a newer version adds columns, empty in the older rows)."""
    write_json(out / "history.json", list(history))
    if history:
        buf = io.StringIO()
        columns = list(dict.fromkeys(k for r in history for k in r))
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
        write_text(out / "history.csv", buf.getvalue())


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_curves(
    out: Path,
    history: Sequence[dict],
    lr_steps: Sequence[float],
    momentum_steps: Sequence[float] = (),
) -> None:
    """curves.png: loss and accuracy per epoch (train and test), and the lr and the momentum
    each optimizer step used (the schedules that actually ran)."""
    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 4, figsize=(19, 4))
    for ax, key, title in ((axes[0], "loss", "loss"), (axes[1], "acc", "accuracy")):
        ax.plot(epochs, [r[f"train_{key}"] for r in history], "o-", label="train")
        ax.plot(epochs, [r[f"test_{key}"] for r in history], "o-", label="test")
        ax.set(xlabel="epoch", title=title)
        ax.grid(alpha=0.3)
        ax.legend()
    for ax, steps, title in (
        (axes[2], lr_steps, "learning rate"),
        (axes[3], momentum_steps, "momentum"),
    ):
        ax.plot(np.arange(1, len(steps) + 1), steps)
        ax.set(xlabel="step (batch)", title=f"{title} per step")
        ax.grid(alpha=0.3)
    _save(fig, out / "curves.png")


def confusion_matrix(true: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """k x k counts, rows = true class, columns = predicted class."""
    return np.bincount(np.asarray(true) * k + np.asarray(pred), minlength=k * k).reshape(k, k)


def write_confusion(out: Path, cm: np.ndarray, classes: Sequence[str]) -> None:
    """confusion.csv and confusion.png (counts; the diagonal is what was right)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["true \\ predicted", *classes])
    for name, row in zip(classes, cm):
        writer.writerow([name, *row.tolist()])
    write_text(out / "confusion.csv", buf.getvalue())
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(
        xlabel="predicted",
        ylabel="true",
        title=f"confusion matrix, accuracy {np.trace(cm) / max(cm.sum(), 1):.2%}",
    )
    for i, j in np.ndindex(cm.shape):
        ax.text(
            j,
            i,
            str(cm[i, j]),
            ha="center",
            va="center",
            fontsize=7,
            color="white" if cm[i, j] > cm.max() / 2 else "black",
        )
    fig.colorbar(im, ax=ax)
    _save(fig, out / "confusion.png")


def plot_misclassified(
    out: Path,
    images: np.ndarray,
    true: np.ndarray,
    pred: np.ndarray,
    classes: Sequence[str],
    n: int = 25,
) -> int:
    """misclassified.png: `n` wrong test images spread evenly over the test set (so over
    the classes too), 'true -> predicted'; returns how many it shows (0 writes nothing)."""
    wrong = np.flatnonzero(np.asarray(true) != np.asarray(pred))
    if len(wrong) > n:
        wrong = wrong[np.linspace(0, len(wrong) - 1, n).round().astype(int)]
    if len(wrong) == 0:
        return 0
    cols = min(5, len(wrong))
    rows = (len(wrong) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong):
        ax.imshow(images[i], interpolation="nearest")
        ax.set_title(f"{classes[true[i]]}\n-> {classes[pred[i]]}", fontsize=8)
    _save(fig, out / "misclassified.png")
    return len(wrong)


def time_to_accuracy(history: Sequence[dict], target: float) -> float | None:
    """Seconds of training and testing until the test accuracy first reached `target` (the
    compile warm-up before the first epoch not counted: it is the record's compile_seconds)."""
    elapsed = 0.0
    for r in history:
        elapsed += r["train_seconds"] + r["test_seconds"]
        if r["test_acc"] >= target:
            return elapsed
    return None
