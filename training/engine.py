"""Train and test loops: SGD + OneCycleLR stepped per batch, optional bf16 autocast,
channels_last and torch.compile. Nothing here names a specific GPU (the device is passed
in), so the same loops run under torchrun with a DistributedSampler in the batch source.
"""
from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Iterator, Optional, Protocol

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .augment import AugConfig


@dataclass
class TrainConfig:
    """The recipe; every field has a command-line flag."""

    epochs: int = 100
    batch_size: int = 512
    lr: float = 0.05              # the one-cycle's starting lr (div_factor = max_lr / lr)
    momentum: float = 0.9
    weight_decay: float = 0.0
    max_lr: float = 0.1
    pct_start: float = 0.4
    three_phase: bool = True
    final_div_factor: float = 1e4
    seed: int = 1
    loss: str = "auto"            # auto | nll | ce
    fast: bool = False            # tensor pipeline on the device (vs albumentations workers)
    amp: bool = False             # bf16 autocast
    channels_last: bool = False
    compile: bool = False
    workers: int = 0              # DataLoader workers for the albumentations path
    aug: AugConfig = field(default_factory=AugConfig)

    def check(self) -> None:
        """Raise ValueError on settings that cannot work (the CLI shows the message)."""
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        if not 0 < self.lr <= self.max_lr:
            raise ValueError(f"--lr ({self.lr}) must be positive and at most --max-lr "
                             f"({self.max_lr}): it is where the one-cycle starts")
        if not 0 < self.pct_start < (0.5 if self.three_phase else 1):
            raise ValueError(f"--pct-start ({self.pct_start}) must be in (0, "
                             f"{0.5 if self.three_phase else 1}) with"
                             f"{'' if self.three_phase else 'out'} three phases")
        if self.loss not in ("auto", "nll", "ce"):
            raise ValueError(f"--loss must be auto, nll or ce, not {self.loss!r}")
        if self.workers < 0:
            raise ValueError("--workers must be >= 0")

    def to_dict(self) -> dict:
        return asdict(self)


class Batches(Protocol):
    def __len__(self) -> int: ...
    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices) for weight init and dropout."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every global random state a training step can draw from."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
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
    return "nll" if torch.allclose(out.logsumexp(1), torch.zeros(len(out), device=out.device),
                                   atol=1e-3) else "ce"


class Trainer:
    """A model with its optimizer, schedule and batch sources; one epoch per call."""

    def __init__(self, model: nn.Module, train: Batches, test: Batches, cfg: TrainConfig,
                 device: torch.device, loss: str = "ce", progress: Optional[bool] = None):
        self.cfg, self.device, self.train, self.test = cfg, device, train, test
        self.module = model.to(device)
        if cfg.channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.net = torch.compile(self.module) if cfg.compile else self.module
        self.optimizer = torch.optim.SGD(self.module.parameters(), lr=cfg.lr,
                                         momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=cfg.max_lr, total_steps=cfg.epochs * len(train),
            pct_start=cfg.pct_start, three_phase=cfg.three_phase,
            div_factor=cfg.max_lr / cfg.lr, final_div_factor=cfg.final_div_factor)
        self.loss_kind = loss
        self.lr_steps: list[float] = []  # the lr each optimizer step used, for the plot
        self.progress = progress

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
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        seen = 0
        t0 = time.perf_counter()
        bar = tqdm(self.train.epoch(epoch), total=len(self.train), leave=False,
                   desc=f"epoch {epoch + 1}/{self.cfg.epochs}", disable=self._no_bar())
        for step, (x, y) in enumerate(bar):
            x, y = self._prepare(x, y)
            with self._autocast():
                out = self.net(x)
            loss = self._loss(out, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.lr_steps.append(self.optimizer.param_groups[0]["lr"])
            self.optimizer.step()
            self.scheduler.step()
            # Sums stay on the device: no host sync per batch.
            loss_sum += loss.detach() * len(y)
            correct += (out.detach().argmax(1) == y).sum()
            seen += len(y)
            if step % 20 == 0 and not bar.disable:
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.3f}",
                                acc=f"{correct.item() / seen:.3f}")
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t0
        return {"lr": self.lr_steps[-1], "train_loss": loss_sum.item() / seen,
                "train_acc": correct.item() / seen, "train_seconds": seconds,
                "images_per_s": seen / seconds}

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float, np.ndarray]:
        """Test loss, accuracy and every prediction (for the confusion matrix and gallery)."""
        self.net.eval()
        loss_sum, preds, correct, seen = 0.0, [], 0, 0
        for x, y in self.test.epoch(0):
            x, y = self._prepare(x, y)
            with self._autocast():
                out = self.net(x)
            loss_sum += self._loss(out, y, reduction="sum").item()
            pred = out.argmax(1)
            correct += (pred == y).sum().item()
            seen += len(y)
            preds.append(pred.cpu())
        return loss_sum / seen, correct / seen, torch.cat(preds).numpy()

    def _no_bar(self) -> Optional[bool]:
        return None if self.progress is None else not self.progress  # None: only on a tty

    def state_dict(self) -> dict:
        return {"model": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "loss_kind": self.loss_kind,
                "lr_steps": list(self.lr_steps)}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.loss_kind = state["loss_kind"]
        self.lr_steps = list(state["lr_steps"])


EpochCallback = Callable[[int, dict, np.ndarray], None]


def fit(trainer: Trainer, *, start_epoch: int = 0, history: Optional[list] = None,
        on_epoch_end: Iterable[EpochCallback] = ()) -> list[dict]:
    """Train from `start_epoch` to cfg.epochs, testing after each; returns the history.

    Each callback gets (epochs done, that epoch's record, test predictions); one that raises
    stops training (after the callbacks before it, e.g. the checkpoint, have run).
    """
    history = history if history is not None else []  # the caller's list grows in place
    for epoch in range(start_epoch, trainer.cfg.epochs):
        record = {"epoch": epoch + 1, **trainer.train_epoch(epoch)}
        t0 = time.perf_counter()
        record["test_loss"], record["test_acc"], preds = trainer.evaluate()
        record["test_seconds"] = time.perf_counter() - t0
        history.append(record)
        tqdm.write(f"epoch {epoch + 1:3d}  lr {record['lr']:.4f}  "
                   f"train {record['train_loss']:.4f} / {record['train_acc']:.2%}  "
                   f"test {record['test_loss']:.4f} / {record['test_acc']:.2%}  "
                   f"{record['images_per_s']:.0f} img/s")
        for callback in on_epoch_end:
            callback(epoch + 1, record, preds)
    return history
