"""The train and test loops for a `TrainConfig` (training/config.py): SGD with a one-cycle or
constant lr and a fixed or cycled momentum, stepped per batch; optional L1, bf16 autocast,
channels_last and torch.compile; DistributedDataParallel under torchrun. Nothing here names a
specific GPU (the device is passed in).

Fast on a GPU by construction: an epoch reads nothing back from the device until its end
(sums stay on the device, the progress bar shows no running loss); the test pass pads its
last batch to the shape of the others and reads its sums and predictions once. With
--compile each shape is compiled (and its CUDA graph recorded) before the first epoch, on
saved states that are then put back, so the timed epochs compile nothing and the numbers are
those the epochs would give without the warm-up.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator, Optional, Protocol

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .config import TrainConfig
from .distributed import SINGLE, World, rank_seed
from .seeding import rng_state, set_rng_state


class Batches(Protocol):
    """A batch source (training.loaders). One may also have `batch_sizes()`, the distinct
    batch sizes of an epoch, for the warm-up to compile each; without it, its first batch's."""

    def __len__(self) -> int: ...
    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


# The graph-free twin of each compile mode that replays CUDA graphs.
_WITHOUT_CUDA_GRAPHS = {"reduce-overhead": "default", "max-autotune": "max-autotune-no-cudagraphs"}


def compile_mode(mode: str, device: torch.device, world: World = SINGLE) -> str:
    """The torch.compile mode to use: CUDA graphs on one GPU only. On a CPU there are none;
    under torchrun DDP all-reduces the gradients between the compiled pieces of the backward,
    which CUDA graphs have not been checked to capture, so the graph-free twin runs there."""
    if device.type == "cuda" and world.size == 1:
        return mode
    return _WITHOUT_CUDA_GRAPHS.get(mode, mode)


def uses_cuda_graphs(mode: str) -> bool:
    return mode in _WITHOUT_CUDA_GRAPHS


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
        if device.type == "cuda":
            # fixed shapes throughout: let cuDNN time its algorithms once per shape
            torch.backends.cudnn.benchmark = True
        self.module = model.to(device)
        if cfg.channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        net: nn.Module = self.module
        if world.size > 1:
            net = nn.parallel.DistributedDataParallel(
                net, device_ids=[device.index] if device.type == "cuda" else None
            )
        self.mode = compile_mode(cfg.compile_mode, device, world)
        # One compiled wrapper per use: its graphs (train: forward and backward at the batch
        # shape; test: forward under no_grad at the test batch shape) all compile in warm_up.
        # dynamic=False: a second shape is a graph of its own, not a slower dynamic one.
        wrap = lambda m: torch.compile(m, mode=self.mode, dynamic=False)  # noqa: E731
        self.net = wrap(net) if cfg.compile else net
        # Every rank tests the whole set with its (identical) weights: no DDP, no collectives.
        self.test_net = wrap(self.module) if cfg.compile else self.module
        self.cuda_graphs = (
            bool(cfg.compile) and device.type == "cuda" and uses_cuda_graphs(self.mode)
        )
        self.optimizer = torch.optim.SGD(
            self.module.parameters(),
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            **self._sgd_kernel(),
        )
        self.scheduler = self._scheduler(len(train))
        self.l1_weights = _weights_for_l1(self.module) if cfg.l1 else []
        self.loss_kind = loss
        self.lr_steps: list[float] = []  # the lr each optimizer step used, for the plot
        self.momentum_steps: list[float] = []  # and its momentum
        self.progress = progress
        self.warm = not cfg.compile  # nothing to compile, nothing to warm up
        self.compile_seconds = 0.0  # spent in warm_up (not in any epoch's seconds)
        # (read only with compile on: the counter imports torch's compiler stack, seconds)
        self._graphs = _graphs_compiled() if cfg.compile else 0

    def _sgd_kernel(self) -> dict:
        """One fused kernel for the whole update on a GPU; the foreach (multi-tensor) path
        elsewhere. Same arithmetic as the per-parameter loop."""
        return {"fused": True} if self.device.type == "cuda" else {"foreach": True}

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

    def _forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> tuple:
        """Gradients of one batch (the optimizer not stepped); its loss and right answers,
        on the device."""
        if self.cuda_graphs:  # the previous step's graph outputs are done with
            torch.compiler.cudagraph_mark_step_begin()
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            out = self.net(x)
        loss = self._loss(out, y)
        objective = loss
        if self.l1_weights:
            objective = loss + self.cfg.l1 * sum(w.abs().sum() for w in self.l1_weights)
        objective.backward()
        return loss.detach(), (out.detach().argmax(1) == y).sum()

    def warm_up(self, epoch: int = 0) -> float:
        """Compile every shape an epoch and a test pass will see (and record their CUDA
        graphs) now, outside the timed epochs; returns the seconds it took (0 if there was
        nothing to do). The model's buffers (BatchNorm statistics) and every random state are
        saved first and put back after, and the optimizer is never stepped, so the epochs
        that follow give the numbers they would give without it."""
        if self.warm:
            return 0.0
        self.warm = True
        t0 = time.perf_counter()
        buffers = {k: v.detach().clone() for k, v in self.module.named_buffers()}
        rng = rng_state()
        try:
            train = _shapes(self.train, epoch)
            test = next(iter(self.test.epoch(0)), None)
            # three calls each: CUDA graph trees run the first, record the second, replay
            for _ in range(3):
                self.net.train()
                for x, y in train:
                    self._forward_backward(*self._prepare(x, y))
                if test is not None:
                    self.test_net.eval()
                    with torch.no_grad():
                        self._test_outputs(test[0].to(self.device, non_blocking=True))
            self.optimizer.zero_grad(set_to_none=True)
        finally:
            with torch.no_grad():
                for k, v in self.module.named_buffers():
                    v.copy_(buffers[k])  # in place: a CUDA graph reads them where they are
            set_rng_state(rng)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t0
        self.compile_seconds += seconds
        self._graphs = _graphs_compiled()
        return seconds

    def graphs_since(self) -> int:
        """Graphs torch.compile made since the warm-up (or the last call): 0 when every shape
        was warmed up. (The count is the process's: another model compiling counts too.)"""
        if not self.cfg.compile:
            return 0
        now, before = _graphs_compiled(), self._graphs
        self._graphs = now
        return now - before

    def train_epoch(self, epoch: int) -> dict:
        """One pass over the training batches (epoch counts from 0); returns its numbers.

        Nothing is read back from the device until the pass ends. With --compile the first
        call warms up first (`warm_up`); its seconds are `compile_seconds`, not
        `train_seconds`."""
        compile_seconds = self.warm_up(epoch)
        self.net.train()
        if self.world.rank > 0:  # dropout differs per rank; rank 0's state is checkpointed
            torch.manual_seed(rank_seed(self.cfg.seed, epoch, 3, self.world.rank))
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        seen = 0  # batch sizes are known on the host: no read-back
        first_step = len(self.lr_steps)
        t0 = time.perf_counter()
        # No running loss in the bar: showing it would read it back from the device.
        bar = tqdm(
            self.train.epoch(epoch),
            total=len(self.train),
            leave=False,
            desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
            disable=self._no_bar(),
        )
        for x, y in bar:
            x, y = self._prepare(x, y)
            loss, right = self._forward_backward(x, y)
            group = self.optimizer.param_groups[0]
            self.lr_steps.append(group["lr"])
            self.momentum_steps.append(group["momentum"])
            self.optimizer.step()
            self.scheduler.step()
            loss_sum += loss * len(y)
            correct += right
            seen += len(y)
        totals = self.world.sum(torch.stack([loss_sum.float(), correct.float()]))
        loss_total, right = totals.tolist()  # the epoch's one read-back
        seconds = time.perf_counter() - t0
        images = seen * self.world.size  # every rank trains on equal shards
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
            "compile_seconds": compile_seconds,
        }

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float, np.ndarray]:
        """Test loss, accuracy and every prediction (for the confusion matrix and gallery).

        Every batch has the first one's shape and layout: a shorter last batch is padded
        (with zero images) and the padding's outputs dropped, so each test image counts once.
        Sums and predictions stay on the device until the pass ends. Every rank tests the
        whole set with its (identical) weights: no collectives."""
        self.warm_up()
        self.test_net.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        preds, first, seen = [], None, 0
        for x, y in self.test.epoch(0):
            x = x.to(self.device, non_blocking=True)
            first = x if first is None else first
            out = self._test_outputs(_pad(x, first))[: len(y)]  # the padding's outputs dropped
            y = y.to(self.device, non_blocking=True)
            loss_sum += self._loss(out, y, reduction="sum")
            pred = out.argmax(1)
            correct += (pred == y).sum()
            preds.append(pred)
            seen += len(y)
            del out  # CUDA graphs reuse its memory for the next batch
        loss_total, right = torch.stack([loss_sum.float(), correct.float()]).tolist()
        return loss_total / seen, right / seen, torch.cat(preds).cpu().numpy()

    def _test_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """The test net's outputs for a batch of the test shape (in eval mode each image's
        output is its own, so padding changes no other image's)."""
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with self._autocast():
            return self.test_net(x)

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
        for group in self.optimizer.param_groups:  # this device's kernel, not the saver's
            group.update({"fused": None, "foreach": None, **self._sgd_kernel()})
        self.scheduler.load_state_dict(state["scheduler"])
        self.loss_kind = state["loss_kind"]
        self.lr_steps = list(state["lr_steps"])
        self.momentum_steps = list(state["momentum_steps"])


def _graphs_compiled() -> int:
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def _pad(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`x` with zero images appended up to `like`'s batch, in `like`'s memory layout (a
    compiled graph is specialised to its input's strides too); `x` itself if it is full."""
    if len(x) == len(like):
        return x
    padded = torch.zeros_like(like)
    padded[: len(x)] = x
    return padded


def _shapes(batches: Batches, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One batch of each size an epoch of `batches` yields (its first batch, cut down to
    the partial last batch's size if there is one): what the warm-up compiles."""
    first = next(iter(batches.epoch(epoch)), None)
    if first is None:
        return []
    sizes = batches.batch_sizes() if hasattr(batches, "batch_sizes") else (len(first[1]),)
    return [(first[0][:n], first[1][:n]) for n in sizes]


EpochCallback = Callable[[int, dict, np.ndarray], None]


def epoch_line(record: dict) -> str:
    """What is printed per epoch: the lr and momentum at its first and last step, speed, loss
    and accuracy."""
    # two short lines rather than one long one: they fit a notebook's column (76 characters)
    line = (
        f"epoch {record['epoch']:3d}  lr {record['lr_start']:.3g}->{record['lr_end']:.3g}  "
        f"mom {record['momentum_start']:.3g}->{record['momentum_end']:.3g}  "
        f"{record['images_per_s']:.0f} img/s\n"
        f"           train {record['train_loss']:.4f} / {record['train_acc']:.2%}  "
        f"test {record['test_loss']:.4f} / {record['test_acc']:.2%}"
    )
    compiled = record.get("compile_seconds")
    if compiled:  # the first epoch of a compiled run
        return f"compiled and warmed up in {compiled:.1f} s (not in the epochs' times)\n" + line
    return line


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
        extra = trainer.graphs_since()
        if trainer.world.main:
            if extra:
                tqdm.write(
                    f"warning: torch.compile made {extra} more graph(s) in epoch {epoch + 1} "
                    "(a shape or mode the warm-up did not see): its times include compiling"
                )
            tqdm.write(epoch_line(record))
            for callback in on_epoch_end:
                callback(epoch + 1, record, preds)
    return history
