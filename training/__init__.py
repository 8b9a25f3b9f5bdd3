"""Train any net on CIFAR-10 with the assignment's recipe (`rftrain`, `training.run.train_run`).

    from training import TrainConfig, load_cifar10, load_model, train_run
    summary = train_run(lambda: load_model(preset="s9"), load_cifar10("data"), TrainConfig(),
                        "runs/s9", device=torch.device("cpu"))

Importing the package changes nothing in the process: glibc's malloc is tuned for large
batches (see `allocator`) by the entry points, `rftrain` and `train_run`. The names below load
their module on first use.
"""

from __future__ import annotations

from rfkit_base.lazy import lazy_face

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
    "seed_everything": "seeding",
    "UserError": "options",
    "load_sweep": "sweep",
    "collect": "sweep",
    "tune_malloc": "allocator",
    "malloc_tuned": "allocator",
}

__all__ = sorted(_FACE)


__getattr__, __dir__ = lazy_face(__name__, _FACE)
