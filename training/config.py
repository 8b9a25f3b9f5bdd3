"""The recipe: `TrainConfig`, every field a command-line flag of `rftrain` (the CLI is derived
from the fields and their help)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from typing import Optional

import torch

from .augment import AugConfig


def _opt(default, help: str, **meta):
    """A config field with its command-line help (the CLI is derived from these fields)."""
    return field(default=default, metadata={"help": help, **meta})


LR_SCHEDULES = ("onecycle", "constant")
MOMENTUM_SCHEDULES = ("fixed", "cycle")
NORMS = ("model", "group", "layer")
# torch.compile's modes; the two with CUDA graphs fall back to their graph-free twin where
# CUDA graphs cannot run (a CPU, several processes): engine.compile_mode.
COMPILE_MODES = ("reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs", "default")


@dataclass
class TrainConfig:
    """The recipe; every field is a command-line flag of `rftrain` (same name, dashes).

    Default: the assignment's words (reading A): SGD from lr 0.05 with momentum 0.9 held
    fixed, OneCycleLR up to 0.1. PyTorch's OneCycleLR defaults (reading B) are
    `lr=max_lr/25, momentum_schedule="cycle"`; the runs made before momentum was honoured
    are `momentum_schedule="cycle"` with the default lr.
    """

    epochs: int = _opt(100, "passes over the training set")
    batch_size: int = _opt(512, "the global batch (under torchrun split over the processes)")
    schedule: str = _opt(
        "onecycle",
        "lr schedule: onecycle (OneCycleLR stepped per batch) or constant (--lr throughout)",
        choices=LR_SCHEDULES,
    )
    lr: float = _opt(
        0.05,
        "starting lr of the one-cycle (div_factor = max_lr / lr); the lr of a constant schedule",
    )
    max_lr: float = _opt(0.1, "peak lr of the one-cycle")
    pct_start: float = _opt(0.4, "fraction of the steps spent rising to --max-lr")
    three_phase: bool = _opt(True, "one-cycle back down to --lr, then to lr/final-div-factor")
    final_div_factor: float = _opt(1e4, "the one-cycle ends at lr / final-div-factor")
    momentum: float = _opt(0.9, "SGD momentum, held fixed (--momentum-schedule fixed)")
    momentum_schedule: str = _opt(
        "fixed",
        "fixed: --momentum throughout; cycle: OneCycleLR "
        "cycles it from --max-momentum down to --base-momentum "
        "while the lr rises, and back",
        choices=MOMENTUM_SCHEDULES,
    )
    base_momentum: float = _opt(0.85, "lowest momentum of the cycle (at the lr peak)")
    max_momentum: float = _opt(0.95, "highest momentum of the cycle (start and end)")
    weight_decay: float = _opt(0.0, "SGD weight decay (L2)")
    l1: float = _opt(0.0, "L1 penalty: adds l1 * sum|w| of conv and linear weights to the loss")
    seed: int = _opt(1, "seeds weights, batch order and augmentation")
    loss: str = _opt(
        "auto",
        "auto: NLL if the model outputs log-probabilities, else cross-entropy",
        choices=("auto", "nll", "ce"),
    )
    norm: str = _opt(
        "model",
        "model: the model's own layers; group / layer: every "
        "BatchNorm2d becomes GroupNorm (--norm-groups) / GroupNorm(1, C), the "
        "LayerNorm of a feature map",
        choices=NORMS,
    )
    norm_groups: int = _opt(
        4, "GroupNorm groups: per layer the largest count up to this that divides its channels"
    )
    fast: Optional[bool] = _opt(None, "augment on the device with torch ops (None: on with a GPU)")
    amp: Optional[bool] = _opt(None, "bf16 autocast (None: on with a GPU)")
    channels_last: Optional[bool] = _opt(None, "channels_last memory format (None: on with a GPU)")
    compile: Optional[bool] = _opt(
        None, "torch.compile the model, warmed up before epoch 1 (None: on with a GPU)"
    )
    workers: Optional[int] = _opt(
        None,
        "DataLoader workers for the albumentations path "
        "(None: min(8, cores - 1)); results do not depend on it",
    )
    sync_bn: bool = _opt(False, "SyncBatchNorm across the processes under torchrun (GPUs only)")
    aug: AugConfig = field(default_factory=AugConfig)
    # speed (loop)
    drop_last: Optional[bool] = _opt(
        None,
        "drop each epoch's last partial training batch, so every step has one shape "
        "(one compiled graph); those images wait for another epoch's shuffle (None: on "
        "with --fast)",
    )
    eval_batch_size: int = _opt(
        1000,
        "test batch; the last partial one is padded to it and the padding ignored, so every "
        "test batch has one shape and every test image counts once",
    )
    compile_mode: str = _opt(
        "reduce-overhead",
        "torch.compile mode with --compile; reduce-overhead and max-autotune replay CUDA "
        "graphs (on one GPU; elsewhere they run without)",
        choices=COMPILE_MODES,
    )

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
            raise ValueError("--momentum-schedule cycle needs --schedule onecycle")
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

    def to_dict(self) -> dict:
        return asdict(self)

    def schedules(self, steps_per_epoch: int) -> dict[str, str]:
        """The lr and momentum schedules in words, with the numbers that will run."""
        total = self.epochs * steps_per_epoch
        if self.schedule == "constant":
            lr = f"constant {self.lr:g} for {total} steps"
        else:
            # OneCycleLR's phase ends, as 0-based step indices (it interpolates between them)
            peak, floor = self.pct_start * total - 1, self.lr / self.final_div_factor
            lr = (
                f"one-cycle per step ({total} steps, cosine, counted from 0): {self.lr:g} -> "
                f"{self.max_lr:g} at step {peak:g}"
            )
            if self.three_phase:
                lr += f" -> {self.lr:g} at step {2 * self.pct_start * total - 2:g}"
            lr += f" -> {floor:g} at step {total - 1}"
        if self.momentum_schedule == "cycle":
            mom = (
                f"cycled opposite to the lr: {self.max_momentum:g} -> {self.base_momentum:g}"
                f" at the lr peak -> {self.max_momentum:g}"
            )
        else:
            mom = f"fixed {self.momentum:g}"
        return {"lr": lr, "momentum": mom}
