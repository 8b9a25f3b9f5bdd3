"""The run record (summary.json): its schema and the one function that builds it.

Everything that reads a run's summary (rfsweep's result, `scripts/gpu_result.py`, the GPU
campaign) takes the key lists from here, so a new field is added once. The record says how the
run was trained (the whole resolved configuration with its augmentation, the recipe's name and
where the settings depart from it, device and versions) and what it gave (the per-epoch loss
and accuracy, train and test).
"""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Optional, Sequence

SCHEMA = 2  # 1: the record before it kept the history, recipe and versions
SUMMARY_KEYS = (
    "schema",
    "command",
    "finished",
    "device",
    "world_size",
    "torch",
    "versions",
    "data",
    "data_digest",
    "data_decode_seconds",
    "train_images",
    "test_images",
    "path",
    "loss",
    "params",
    "recipe",
    "departures",
    "config",
    "schedule",
    "epochs_done",
    "test_acc",
    "best_test_acc",
    "best_epoch",
    "wall_seconds",
    "time_to_85_seconds",
    "train_images_per_s",
    "history",
)
# One row of `history` (the loss curve and the schedule at each epoch's ends).
EPOCH_KEYS = (
    "epoch",
    "lr_start",
    "lr_end",
    "momentum_start",
    "momentum_end",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "train_images",
    "train_seconds",
    "images_per_s",
    "test_seconds",
    "compile_seconds",  # the first epoch of a compiled run: the warm-up, outside its seconds
)


def _package(name: str) -> Optional[str]:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def versions() -> dict:
    """Python and the packages that change a run's numbers (None: not installed), and the
    checkout's commit where there is one (a copied tree has none)."""
    import numpy
    import torch

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        git = commit.stdout.strip() if commit.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        git = None
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "numpy": numpy.__version__,
        "albumentations": _package("albumentations"),
        "rfkit": _package("rfkit"),
        "git_commit": git,
    }


def epoch_rows(history: Sequence[dict]) -> list[dict]:
    """The history as the record keeps it (the keys of EPOCH_KEYS a row has)."""
    return [{k: r[k] for k in EPOCH_KEYS if k in r} for r in history]


def build_summary(
    *,
    cfg,
    history: Sequence[dict],
    finished: bool,
    command: Optional[str],
    device: str,
    world_size: int,
    data,
    data_digest: str,
    loss: str,
    params: int,
    steps_per_epoch: int,
    wall_seconds: float,
) -> dict:
    """summary.json of a run: `cfg` the resolved TrainConfig, `data` the Cifar it trained on,
    `history` its per-epoch records so far."""
    from .report import time_to_accuracy

    accs = [r["test_acc"] for r in history]
    seconds = sum(r["train_seconds"] for r in history)
    best = max(range(len(accs)), key=accs.__getitem__) if accs else None
    summary = {
        "schema": SCHEMA,
        "command": command,
        "finished": finished,
        "device": device,
        "world_size": world_size,
        "torch": versions()["torch"],
        "versions": versions(),
        "data": data.source,
        "data_digest": data_digest,
        "data_decode_seconds": round(data.decode_seconds, 3),
        "train_images": len(data.train_y),
        "test_images": len(data.test_y),
        "path": "tensor (fast)" if cfg.fast else f"albumentations ({cfg.workers} workers)",
        "loss": loss,
        "params": params,
        "recipe": cfg.recipe,
        "departures": cfg.departures(),
        "config": cfg.to_dict(),
        "schedule": cfg.schedules(steps_per_epoch),
        "epochs_done": len(history),
        "test_acc": accs,
        "best_test_acc": accs[best] if accs else None,
        "best_epoch": history[best]["epoch"] if accs else None,
        "wall_seconds": round(wall_seconds, 2),
        "time_to_85_seconds": time_to_accuracy(history, 0.85),
        # all images trained on / all seconds spent training (not a mean of rates)
        "train_images_per_s": (
            sum(r["train_images"] for r in history) / seconds if seconds else None
        ),
        "history": epoch_rows(history),
    }
    assert tuple(summary) == SUMMARY_KEYS  # the schema above is the one written
    return summary
