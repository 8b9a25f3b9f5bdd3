"""The recipe (`TrainConfig`) and the train and test loops: SGD with a one-cycle or constant
lr and a fixed or cycled momentum, stepped per batch; optional L1, bf16 autocast,
channels_last and torch.compile; DistributedDataParallel under torchrun. Nothing here names a
specific GPU (the device is passed in).
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Iterable, Iterator, Optional, Protocol

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .augment import AugConfig
from .distributed import SINGLE, World, rank_seed


def _opt(default, help: str, **meta):
    """A config field with its command-line help (the CLI is derived from these fields)."""
    return field(default=default, metadata={"help": help, **meta})


LR_SCHEDULES = ("onecycle", "constant")
MOMENTUM_SCHEDULES = ("fixed", "cycle")
NORMS = ("model", "group", "layer")


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
    compile: bool = _opt(False, "torch.compile the model")
    workers: Optional[int] = _opt(
        None,
        "DataLoader workers for the albumentations path "
        "(None: min(8, cores - 1)); results do not depend on it",
    )
    sync_bn: bool = _opt(False, "SyncBatchNorm across the processes under torchrun (GPUs only)")
    aug: AugConfig = field(default_factory=AugConfig)

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
            workers=workers,
        )

    def check(self) -> None:
        """Raise ValueError on settings that cannot work (the CLI shows the message)."""
        for name in ("epochs", "batch_size", "norm_groups"):
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


class Batches(Protocol):
    def __len__(self) -> int: ...
    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices) for weight init and dropout."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every global random state a training step can draw from, as tensors and numbers only,
    so a checkpoint loads with torch.load(weights_only=True)."""
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {
            "version": version,
            "state": torch.tensor(mt, dtype=torch.int64),
            "gauss": gauss,
        },
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    py, npy = state["python"], state["numpy"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    np.random.set_state(
        (
            npy["name"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def detect_loss(model: nn.Module, x: torch.Tensor) -> str:
    """'nll' if the model outputs log-probabilities (each row's logsumexp is 0), else 'ce'."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x).float()
    finally:
        model.train(was_training)
    return (
        "nll"
        if torch.allclose(out.logsumexp(1), torch.zeros(len(out), device=out.device), atol=1e-3)
        else "ce"
    )


def _weights_for_l1(model: nn.Module) -> list[torch.Tensor]:
    return [
        m.weight
        for m in model.modules()
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)) and m.weight is not None
    ]


class Trainer:
    """A model with its optimizer, schedule and batch sources; one epoch per call.

    Under torchrun (`world.size > 1`) the model is wrapped in DistributedDataParallel, the
    batch sources hold this rank's shards, and the epoch's numbers are summed over the ranks.
    """

    def __init__(
        self,
        model: nn.Module,
        train: Batches,
        test: Batches,
        cfg: TrainConfig,
        device: torch.device,
        loss: str = "ce",
        progress: Optional[bool] = None,
        world: World = SINGLE,
    ):
        cfg = cfg.resolved(device)
        self.cfg, self.device, self.train, self.test, self.world = cfg, device, train, test, world
        self.module = model.to(device)
        if cfg.channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        net: nn.Module = self.module
        if world.size > 1:
            net = nn.parallel.DistributedDataParallel(
                net, device_ids=[device.index] if device.type == "cuda" else None
            )
        self.net = torch.compile(net) if cfg.compile else net
        self.optimizer = torch.optim.SGD(
            self.module.parameters(),
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
        )
        self.scheduler = self._scheduler(len(train))
        self.l1_weights = _weights_for_l1(self.module) if cfg.l1 else []
        self.loss_kind = loss
        self.lr_steps: list[float] = []  # the lr each optimizer step used, for the plot
        self.momentum_steps: list[float] = []  # and its momentum
        self.progress = progress

    def _scheduler(self, steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
        cfg = self.cfg
        if cfg.schedule == "constant":
            return torch.optim.lr_scheduler.ConstantLR(self.optimizer, factor=1.0, total_iters=0)
        # cycle_momentum=False keeps the optimizer's momentum: OneCycleLR's default (True)
        # would overwrite --momentum with a 0.95 -> 0.85 -> 0.95 cycle.
        return torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer,
            max_lr=cfg.max_lr,
            total_steps=cfg.epochs * steps_per_epoch,
            pct_start=cfg.pct_start,
            three_phase=cfg.three_phase,
            div_factor=cfg.max_lr / cfg.lr,
            final_div_factor=cfg.final_div_factor,
            cycle_momentum=cfg.momentum_schedule == "cycle",
            base_momentum=cfg.base_momentum,
            max_momentum=cfg.max_momentum,
        )

    def _loss(self, out: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        out = out.float()
        if self.loss_kind == "nll":
            return F.nll_loss(out, y, reduction=reduction)
        return F.cross_entropy(out, y, reduction=reduction)

    def _prepare(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.to(self.device, non_blocking=True)
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y.to(self.device, non_blocking=True)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.amp)

    def train_epoch(self, epoch: int) -> dict:
        """One pass over the training batches (epoch counts from 0); returns its numbers."""
        self.net.train()
        if self.world.rank > 0:  # dropout differs per rank; rank 0's state is checkpointed
            torch.manual_seed(rank_seed(self.cfg.seed, epoch, 3, self.world.rank))
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        seen = torch.zeros((), device=self.device)
        first_step = len(self.lr_steps)
        t0 = time.perf_counter()
        bar = tqdm(
            self.train.epoch(epoch),
            total=len(self.train),
            leave=False,
            desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
            disable=self._no_bar(),
        )
        for step, (x, y) in enumerate(bar):
            x, y = self._prepare(x, y)
            with self._autocast():
                out = self.net(x)
            loss = self._loss(out, y)
            objective = loss
            if self.l1_weights:
                objective = loss + self.cfg.l1 * sum(w.abs().sum() for w in self.l1_weights)
            self.optimizer.zero_grad(set_to_none=True)
            objective.backward()
            group = self.optimizer.param_groups[0]
            self.lr_steps.append(group["lr"])
            self.momentum_steps.append(group["momentum"])
            self.optimizer.step()
            self.scheduler.step()
            # Sums stay on the device: no host sync per batch.
            loss_sum += loss.detach() * len(y)
            correct += (out.detach().argmax(1) == y).sum()
            seen += len(y)
            if step % 20 == 0 and not bar.disable:
                bar.set_postfix(
                    loss=f"{loss_sum.item() / seen.item():.3f}",
                    acc=f"{correct.item() / seen.item():.3f}",
                )
        totals = self.world.sum(torch.stack([loss_sum.float(), correct.float(), seen.float()]))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t0
        loss_total, right, images = totals.tolist()
        lrs, moms = self.lr_steps[first_step:], self.momentum_steps[first_step:]
        return {
            "lr_start": lrs[0],
            "lr_end": lrs[-1],
            "momentum_start": moms[0],
            "momentum_end": moms[-1],
            "train_loss": loss_total / images,
            "train_acc": right / images,
            "train_images": int(images),
            "train_seconds": seconds,
            "images_per_s": images / seconds,
        }

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float, np.ndarray]:
        """Test loss, accuracy and every prediction (for the confusion matrix and gallery).
        Every rank tests the whole set with its (identical) weights: no collectives."""
        net = self.module if self.world.size > 1 else self.net
        net.eval()
        loss_sum, preds, correct, seen = 0.0, [], 0, 0
        for x, y in self.test.epoch(0):
            x, y = self._prepare(x, y)
            with self._autocast():
                out = net(x)
            loss_sum += self._loss(out, y, reduction="sum").item()
            pred = out.argmax(1)
            correct += (pred == y).sum().item()
            seen += len(y)
            preds.append(pred.cpu())
        return loss_sum / seen, correct / seen, torch.cat(preds).numpy()

    def _no_bar(self) -> Optional[bool]:
        if not self.world.main:
            return True
        return None if self.progress is None else not self.progress  # None: only on a tty

    def state_dict(self) -> dict:
        return {
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "loss_kind": self.loss_kind,
            "lr_steps": list(self.lr_steps),
            "momentum_steps": list(self.momentum_steps),
        }

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.loss_kind = state["loss_kind"]
        self.lr_steps = list(state["lr_steps"])
        self.momentum_steps = list(state["momentum_steps"])


EpochCallback = Callable[[int, dict, np.ndarray], None]


def epoch_line(record: dict) -> str:
    """What is printed per epoch: the lr and momentum at its first and last step, speed, loss
    and accuracy."""
    # two short lines rather than one long one: they fit a notebook's column (76 characters)
    return (
        f"epoch {record['epoch']:3d}  lr {record['lr_start']:.3g}->{record['lr_end']:.3g}  "
        f"mom {record['momentum_start']:.3g}->{record['momentum_end']:.3g}  "
        f"{record['images_per_s']:.0f} img/s\n"
        f"           train {record['train_loss']:.4f} / {record['train_acc']:.2%}  "
        f"test {record['test_loss']:.4f} / {record['test_acc']:.2%}"
    )


def fit(
    trainer: Trainer,
    *,
    start_epoch: int = 0,
    history: Optional[list] = None,
    on_epoch_end: Iterable[EpochCallback] = (),
    stop_epoch: Optional[int] = None,
) -> list[dict]:
    """Train from `start_epoch` to cfg.epochs (or to `stop_epoch`, to be resumed later),
    testing after each; returns the history.

    Each callback gets (epochs done, that epoch's record, test predictions); one that raises
    stops training (after the callbacks before it, e.g. the checkpoint, have run). Under
    torchrun only rank 0 prints and runs the callbacks.
    """
    history = history if history is not None else []  # the caller's list grows in place
    end = trainer.cfg.epochs if stop_epoch is None else min(stop_epoch, trainer.cfg.epochs)
    for epoch in range(start_epoch, end):
        record = {"epoch": epoch + 1, **trainer.train_epoch(epoch)}
        t0 = time.perf_counter()
        record["test_loss"], record["test_acc"], preds = trainer.evaluate()
        record["test_seconds"] = time.perf_counter() - t0
        history.append(record)
        if trainer.world.main:
            tqdm.write(epoch_line(record))
            for callback in on_epoch_end:
                callback(epoch + 1, record, preds)
    return history
