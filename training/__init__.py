"""Train any net on CIFAR-10 with the assignment's recipe (`rftrain`, `training.run.train_run`).

    from training import TrainConfig, load_cifar10, load_model, train_run
    summary = train_run(lambda: load_model(preset="s9"), load_cifar10("data"), TrainConfig(),
                        "runs/s9", device=torch.device("cpu"))

Importing the package changes nothing in the process: glibc's malloc is tuned for large
batches (see `allocator`) by the entry points, `rftrain` and `train_run`. The names below load
their module on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# public name -> the module that defines it
_FACE = {
    "TrainConfig": "config",
    "RECIPES": "config",
    "AugConfig": "augment",
    "Cifar": "data",
    "CLASSES": "data",
    "load_cifar10": "data",
    "load_model": "models",
    "train_run": "run",
    "Trainer": "engine",
    "seed_everything": "engine",
    "UserError": "options",
    "load_sweep": "sweep",
    "collect": "sweep",
    "tune_malloc": "allocator",
    "malloc_tuned": "allocator",
}

__all__ = sorted(_FACE)


def __getattr__(name: str) -> Any:
    if name not in _FACE:
        raise AttributeError(f"module 'training' has no attribute {name!r}")
    value = getattr(import_module(f".{_FACE[name]}", __name__), name)
    globals()[name] = value  # once: later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
