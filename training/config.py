"""The recipe: `TrainConfig`, every field a command-line flag of `rftrain` (the CLI is derived
from the fields and their help)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Optional

import torch

from rfkit_base.settings import setting

from .augment import AugConfig

LR_SCHEDULES = ("onecycle", "constant")
MOMENTUM_SCHEDULES = ("fixed", "cycle")
NORMS = ("model", "group", "layer")
# torch.compile's modes; the two with CUDA graphs fall back to their graph-free twin where
# CUDA graphs cannot run (a CPU, several processes): engine.compile_mode.
COMPILE_MODES = ("reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs", "default")
RECIPE_NAMES = ("assignment", "previous")
# What the assignment's published code did for the settings the recipes leave automatic
# (None): albumentations per image, float32, contiguous tensors, no torch.compile, and a
# DataLoader that keeps each epoch's last partial batch. A resolved value is a departure
# when it differs from these.
ASSIGNMENT_CODE = {
    "fast": False,
    "amp": False,
    "channels_last": False,
    "compile": False,
    "drop_last": False,
}


@dataclass
class TrainConfig:
    """The recipe; every field is a command-line flag of `rftrain` (same name, dashes).

    `TrainConfig()` is the assignment's recipe as its published code ran it: SGD (its lr 0.05
    and momentum 0.9 are overwritten by the scheduler) under `OneCycleLR(max_lr=0.1,
    pct_start=0.4, div_factor=20, three_phase=True)` with the other arguments default, so the
    lr starts at 0.005, peaks at 0.1 at 40 % of the steps, is back at 0.005 at 80 % and ends
    at 5e-7, while the momentum cycles 0.95 -> 0.85 -> 0.95 (cosine, opposite to the lr).
    `TrainConfig.previous()` is this package's default before that was read: the lr from
    0.05 and the momentum held at 0.9. `RECIPES` names both.
    """

    epochs: int = setting(100, "passes over the training set")
    batch_size: int = setting(512, "the global batch (under torchrun split over the processes)")
    schedule: str = setting(
        "onecycle",
        "lr schedule: onecycle (OneCycleLR stepped per batch) or constant (--lr throughout)",
        choices=LR_SCHEDULES,
    )
    lr: float = setting(
        0.005,
        "starting lr of the one-cycle (div_factor = max_lr / lr); the lr of a constant schedule",
    )
    max_lr: float = setting(0.1, "peak lr of the one-cycle")
    pct_start: float = setting(0.4, "fraction of the steps spent rising to --max-lr")
    three_phase: bool = setting(True, "one-cycle back down to --lr, then to lr/final-div-factor")
    final_div_factor: float = setting(1e4, "the one-cycle ends at lr / final-div-factor")
    momentum: float = setting(0.9, "SGD momentum, held fixed (--momentum-schedule fixed)")
    momentum_schedule: str = setting(
        "cycle",
        "fixed: --momentum throughout; cycle: OneCycleLR "
        "cycles it from --max-momentum down to --base-momentum "
        "while the lr rises, and back",
        choices=MOMENTUM_SCHEDULES,
    )
    base_momentum: float = setting(0.85, "lowest momentum of the cycle (at the lr peak)")
    max_momentum: float = setting(0.95, "highest momentum of the cycle (start and end)")
    weight_decay: float = setting(0.0, "SGD weight decay (L2)")
    l1: float = setting(0.0, "L1 penalty: adds l1 * sum|w| of conv and linear weights to the loss")
    seed: int = setting(1, "seeds weights, batch order and augmentation")
    loss: str = setting(
        "auto",
        "auto: NLL if the model outputs log-probabilities, else cross-entropy",
        choices=("auto", "nll", "ce"),
    )
    norm: str = setting(
        "model",
        "model: the model's own layers; group / layer: every "
        "BatchNorm2d becomes GroupNorm (--norm-groups) / GroupNorm(1, C), the "
        "LayerNorm of a feature map",
        choices=NORMS,
    )
    norm_groups: int = setting(
        4, "GroupNorm groups: per layer the largest count up to this that divides its channels"
    )
    fast: Optional[bool] = setting(
        None, "augment on the device with torch ops (None: on with a GPU)"
    )
    amp: Optional[bool] = setting(None, "bf16 autocast (None: on with a GPU)")
    channels_last: Optional[bool] = setting(
        None, "channels_last memory format (None: on with a GPU)"
    )
    compile: Optional[bool] = setting(
        None, "torch.compile the model, warmed up before epoch 1 (None: on with a GPU)"
    )
    workers: Optional[int] = setting(
        None,
        "DataLoader workers for the albumentations path "
        "(None: min(8, cores - 1)); results do not depend on it",
    )
    sync_bn: bool = setting(False, "SyncBatchNorm across the processes under torchrun (GPUs only)")
    aug: AugConfig = field(default_factory=AugConfig)
    # recipe
    recipe: str = setting(
        "assignment",
        "the named recipe these settings started from (kept in the run record); "
        "other flags override single settings",
        choices=RECIPE_NAMES,
    )
    # speed (loop)
    drop_last: Optional[bool] = setting(
        None,
        "drop each epoch's last partial training batch, so every step has one shape "
        "(one compiled graph); those images wait for another epoch's shuffle (None: on "
        "with --fast, unless the training set is smaller than one batch)",
    )
    eval_batch_size: int = setting(
        1000,
        "test batch; the last partial one is padded to it and the padding ignored, so every "
        "test batch has one shape and every test image counts once",
    )
    compile_mode: str = setting(
        "reduce-overhead",
        "torch.compile mode with --compile; reduce-overhead and max-autotune replay CUDA "
        "graphs (on one GPU; elsewhere they run without)",
        choices=COMPILE_MODES,
    )

    @classmethod
    def previous(cls, **changes) -> "TrainConfig":
        """This package's default before the assignment's code was read: OneCycleLR from lr
        0.05 (div_factor 2, ending at 5e-6), momentum held at 0.9, the earlier augmentation."""
        base = dict(lr=0.05, momentum=0.9, momentum_schedule="fixed", recipe="previous")
        return cls(**{"aug": _previous_aug(), **base, **changes})

    def departures(self) -> dict:
        """The settings that differ from the named recipe's (`aug.NAME` for augmentation).
        A setting the recipe leaves automatic (None) counts once it is decided (`resolved`,
        or set by hand) and differs from what the assignment's code did (ASSIGNMENT_CODE);
        one still undecided, and the worker count, are not counted."""
        ref, now = RECIPES[self.recipe]().to_dict(), self.to_dict()
        ref.update({f"aug.{k}": v for k, v in ref.pop("aug").items()})
        now.update({f"aug.{k}": v for k, v in now.pop("aug").items()})
        ref.update({k: v for k, v in ASSIGNMENT_CODE.items() if ref[k] is None})
        return {
            k: now[k]
            for k in ref
            if k not in ("recipe", "workers")
            and ref[k] is not None
            and now[k] is not None
            and now[k] != ref[k]
        }

    def resolved(self, device: torch.device) -> "TrainConfig":
        """A copy with every automatic (None) setting decided for `device`."""
        gpu = device.type == "cuda"
        pick = lambda v: gpu if v is None else v  # noqa: E731
        workers = (
            self.workers if self.workers is not None else min(8, max(0, (os.cpu_count() or 1) - 1))
        )
        return replace(
            self,
            fast=pick(self.fast),
            amp=pick(self.amp),
            channels_last=pick(self.channels_last),
            compile=pick(self.compile),
            drop_last=pick(self.fast) if self.drop_last is None else self.drop_last,
            workers=workers,
        )

    def check(self) -> None:
        """Raise ValueError on settings that cannot work (the CLI shows the message)."""
        for name in ("epochs", "batch_size", "norm_groups", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        if self.schedule not in LR_SCHEDULES:
            raise ValueError(f"--schedule must be one of {', '.join(LR_SCHEDULES)}")
        if self.momentum_schedule not in MOMENTUM_SCHEDULES:
            raise ValueError(f"--momentum-schedule must be one of {', '.join(MOMENTUM_SCHEDULES)}")
        if self.norm not in NORMS:
            raise ValueError(f"--norm must be one of {', '.join(NORMS)}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be positive, got {self.lr}")
        if self.schedule == "onecycle":
            if not self.lr <= self.max_lr:
                raise ValueError(
                    f"--lr ({self.lr}) must be at most --max-lr "
                    f"({self.max_lr}): it is where the one-cycle starts"
                )
            if not 0 < self.pct_start < (0.5 if self.three_phase else 1):
                raise ValueError(
                    f"--pct-start ({self.pct_start}) must be in (0, "
                    f"{0.5 if self.three_phase else 1}) with"
                    f"{'' if self.three_phase else 'out'} three phases"
                )
            if not self.final_div_factor > 0:
                raise ValueError(
                    f"--final-div-factor must be positive, got {self.final_div_factor}"
                )
        elif self.momentum_schedule == "cycle":
            raise ValueError(
                "--momentum-schedule cycle needs --schedule onecycle "
                "(with --schedule constant give --momentum-schedule fixed)"
            )
        for name in ("momentum", "base_momentum", "max_momentum"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be in [0, 1), got {getattr(self, name)}"
                )
        if self.base_momentum > self.max_momentum:
            raise ValueError(
                f"--base-momentum ({self.base_momentum}) must be at most "
                f"--max-momentum ({self.max_momentum})"
            )
        for name in ("weight_decay", "l1"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}"
                )
        if self.loss not in ("auto", "nll", "ce"):
            raise ValueError(f"--loss must be auto, nll or ce, not {self.loss!r}")
        if self.workers is not None and self.workers < 0:
            raise ValueError("--workers must be >= 0")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"--compile-mode must be one of {', '.join(COMPILE_MODES)}")
        if self.recipe not in RECIPES:
            raise ValueError(f"--recipe must be one of {', '.join(RECIPES)}, not {self.recipe!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def schedules(self, steps_per_epoch: int) -> dict[str, str]:
        """The lr and momentum schedules in words, with the numbers that will run."""
        total = self.epochs * steps_per_epoch
        peak = self.pct_start * total - 1
        if self.schedule == "constant":
            lr = f"constant {self.lr:g} for {total} steps"
        else:
            # OneCycleLR's phase ends, as 0-based step indices (it interpolates between them)
            floor = self.lr / self.final_div_factor
            lr = (
                f"one-cycle per step ({total} steps, cosine, counted from 0): {self.lr:g} -> "
                f"{self.max_lr:g} at step {peak:g}"
            )
            if self.three_phase:
                lr += f" -> {self.lr:g} at step {2 * self.pct_start * total - 2:g}"
            lr += f" -> {floor:g} at step {total - 1}"
        if self.momentum_schedule == "cycle":
            hi, lo = self.max_momentum, self.base_momentum
            if self.schedule == "onecycle":
                mom = f"cycled opposite to the lr (cosine): {hi:g} -> {lo:g} at step {peak:g}"
                if self.three_phase:
                    mom += f" -> {hi:g} at step {2 * self.pct_start * total - 2:g}, then held"
                else:
                    mom += f" -> {hi:g} at step {total - 1}"
            else:  # check() refuses this; said plainly for a config not checked
                mom = f"cycled opposite to the lr: {hi:g} -> {lo:g} at the lr peak -> {hi:g}"
        else:
            mom = f"fixed {self.momentum:g}"
        return {"lr": lr, "momentum": mom}


def _previous_aug() -> AugConfig:
    """The augmentation of the previous recipe: `AugConfig.previous()` once the assignment's
    augmentation is the default; until then the default AugConfig() is still that one."""
    previous = getattr(AugConfig, "previous", None)
    return previous() if previous is not None else AugConfig()


# name -> the TrainConfig it starts from (`rftrain --recipe NAME`); other flags override fields
RECIPES: dict[str, Callable[[], TrainConfig]] = {
    "assignment": TrainConfig,
    "previous": TrainConfig.previous,
}
assert tuple(RECIPES) == RECIPE_NAMES
