"""One training run into an output folder: checkpoints, history, plots, summary; --resume.

Files in `out`: last.pt (to resume), best.pt (best test accuracy), history.json/.csv and
summary.json (after every epoch, written by a background thread while the next epoch trains),
curves.png (after the last epoch, or the last of a --stop-after), confusion.csv/.png and
misclassified.png (after the last epoch; a finished run given --resume draws any that are
missing). Order: check everything (settings, folder, model, data, checkpoint) without
writing, then write. Under torchrun every rank checks the same things and rank 0 alone writes.
"""

from __future__ import annotations

import json
import os
import platform
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Optional

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from rfkit_base.commandline import UserError

from . import checkpoint, report
from .allocator import tune_malloc
from .config import TrainConfig
from .data import Cifar
from .distributed import World, world_from_env
from .engine import EpochCallback, Trainer, detect_loss, fit
from .fsutil import is_temporary, write_json
from .loaders import ReferenceBatches, TensorBatches
from .models import check_outputs, convert_norm
from .record import build_summary
from .seeding import rng_state, seed_everything, set_rng_state
from .writer import BackgroundWriter, host_copy

ARTIFACTS = (
    checkpoint.LAST,
    checkpoint.BEST,
    "history.json",
    "history.csv",
    "curves.png",
    "confusion.csv",
    "confusion.png",
    "misclassified.png",
    "summary.json",
)
# Settings that don't change the numbers; a resumed run may differ in these. (The test batch
# changes the order of the test sums only: the last digits of test_loss.)
RESUME_FREE = ("workers", "compile", "compile_mode", "eval_batch_size", "recipe")
# (recipe is a name: its settings are compared one by one)
# Settings of how the epochs ran (bf16, memory layout, partial batches dropped): they change
# the numbers of epochs still to run, so an unfinished run refuses others, but a finished run
# is only read back (on a CPU, say, after training on a GPU).
HOW_IT_RAN = ("amp", "channels_last", "drop_last")


def check_out(out: Path, *, resume: bool, force: bool) -> None:
    """Refuse to mix runs, without writing: a non-empty folder needs --resume (continue) or
    --force (restart). Temporary files a killed run left behind do not count."""
    if resume and force:
        raise UserError(
            "--resume continues the run in --out and --force starts it over: give one of them"
        )
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    if resume:
        if not (out / checkpoint.LAST).is_file():
            raise UserError(f"nothing to resume: {out / checkpoint.LAST} does not exist")
        return
    busy = out.is_dir() and any(not is_temporary(p.name) for p in out.iterdir())
    if busy and not force:
        raise UserError(
            f"--out {out} is not empty (another run?): pass --resume to continue "
            "it or --force to start over there"
        )


def prepare_out(out: Path, *, force: bool) -> None:
    """Create `out`; with --force drop what a run writes (never anything else there), and
    stale temporary files of a killed run in any case. Call only after every check passed."""
    out.mkdir(parents=True, exist_ok=True)
    for p in out.iterdir():
        if is_temporary(p.name) and p.is_file():
            p.unlink(missing_ok=True)
    if force:
        for name in ARTIFACTS:
            (out / name).unlink(missing_ok=True)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def checked_config(
    cfg: TrainConfig, device: torch.device, data: Cifar, world: World
) -> TrainConfig:
    """The config with automatic settings decided; UserError on what cannot run."""
    try:
        cfg.check()
        cfg.aug.check_image(*data.train_x.shape[1:3])
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if cfg.batch_size % world.size:
        raise UserError(
            f"--batch-size {cfg.batch_size} must be a multiple of the "
            f"{world.size} processes (it is the global batch)"
        )
    if cfg.sync_bn and world.size > 1 and device.type != "cuda":
        raise UserError("--sync-bn needs GPUs: torch's SyncBatchNorm does not run on the CPU")
    if cfg.drop_last is None and len(data.train_y) < cfg.batch_size:
        cfg = replace(cfg, drop_last=False)  # automatic: the one partial batch is the epoch
    cfg = cfg.resolved(device)
    if cfg.drop_last and len(data.train_y) < cfg.batch_size:
        raise UserError(
            f"--batch-size {cfg.batch_size} is more than the {len(data.train_y)} training "
            "images and --drop-last leaves a partial batch out: no step to train (give a "
            "smaller --batch-size, or --no-drop-last)"
        )
    return cfg


def checked_model(
    build_model: Callable[[], nn.Module], cfg: TrainConfig, data: Cifar, world: World
) -> nn.Module:
    """A fresh model (seeded first: same seed, same weights), with --norm and --sync-bn
    applied, that maps the data's images to one score per class."""
    seed_everything(cfg.seed)
    model = convert_norm(build_model(), cfg.norm, cfg.norm_groups)
    mean, std = data.mean_std()
    probe = torch.from_numpy(data.train_x[:2]).permute(0, 3, 1, 2).float() / 255
    probe = (probe - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    check_outputs(model, probe, len(data.classes))
    if cfg.sync_bn and world.size > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def _comparable(cfg: dict, free: tuple[str, ...] = RESUME_FREE) -> dict:
    return {k: v for k, v in cfg.items() if k not in free}


def _flat(cfg: dict) -> dict:
    """Nested settings (`aug`) as `aug.NAME`, so a difference names the one that differs."""
    out = {}
    for k, v in cfg.items():
        out.update({f"{k}.{n}": w for n, w in v.items()} if isinstance(v, dict) else {k: v})
    return out


def data_record(data: Cifar) -> dict:
    return {
        "digest": data.digest(),
        "train_images": len(data.train_y),
        "test_images": len(data.test_y),
    }


def resume_state(out: Path, cfg: TrainConfig, data: Cifar, world: World) -> dict:
    """The checkpoint to continue from; UserError if it was made with other settings, other
    data or another number of processes (the result would not be the same run)."""
    state = checkpoint.load(out / checkpoint.LAST)
    if not {"config", "data", "world_size", "trainer"} <= state.keys():
        raise UserError(
            f"{out / checkpoint.LAST} was written by an older rftrain and cannot "
            "be continued exactly: start over with --force"
        )
    finished = _finished(state, cfg)
    free = RESUME_FREE + HOW_IT_RAN if finished else RESUME_FREE
    saved, now = _flat(_comparable(state["config"], free)), _flat(_comparable(cfg.to_dict(), free))
    if finished:  # only read back: settings a later version added are not compared
        now = {k: v for k, v in now.items() if k in saved}
    diff = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
    if diff:
        raise UserError(
            f"--resume with different settings than the run in {out}: "
            + ", ".join(f"{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in diff)
        )
    then, current = state["data"], data_record(data)
    if then != current:
        raise UserError(
            f"--resume with different data than the run in {out}: "
            f"{then['train_images']}/{then['test_images']} train/test images "
            f"(digest {then['digest'][:12]}) then, {current['train_images']}/"
            f"{current['test_images']} (digest {current['digest'][:12]}) now"
        )
    if state["world_size"] != world.size:
        raise UserError(
            f"--resume with {world.size} processes; the run in {out} had "
            f"{state['world_size']} (the batches would differ)"
        )
    return state


def _finished(state: dict, cfg: TrainConfig) -> bool:
    return state.get("epoch") == cfg.epochs == state["config"].get("epochs")


def finished_summary(out: Path, state: Optional[dict], cfg: TrainConfig) -> Optional[dict]:
    """The summary.json of a finished run being resumed: nothing is trained or rewritten, so
    the record (device, torch, wall time) stays that of the machine that made the run."""
    summary = out / "summary.json"
    if state is None or not _finished(state, cfg) or not summary.is_file():
        return None
    record = json.loads(summary.read_text())
    # A run killed between its last checkpoint and its last summary is summed up again.
    return record if record.get("finished") and record.get("epochs_done") == cfg.epochs else None


def make_trainer(
    model: nn.Module,
    data: Cifar,
    cfg: TrainConfig,
    device: torch.device,
    world: World,
    progress: Optional[bool],
) -> Trainer:
    """The batch sources of the chosen path (this rank's shards) and the Trainer on them."""
    mean, std = data.mean_std()
    if cfg.fast:
        train = TensorBatches(
            data.train_x,
            data.train_y,
            cfg.batch_size,
            cfg.aug,
            mean,
            std,
            seed=cfg.seed,
            device=device,
            world=world,
            drop_last=cfg.drop_last,
        )
        if cfg.compile and device.type == "cuda":
            # Eager, the augmentation is a few hundred small kernels a batch; compiled, a few
            # fused ones. Inductor without CUDA graphs: the draw before it stays a separate
            # kernel, and its output is the model's input, not memory a graph replay reuses.
            # Its one shape compiles in the Trainer's warm-up (which draws a first batch).
            train.augment.compile(dynamic=False)
    else:
        train = ReferenceBatches(
            data.train_x,
            data.train_y,
            cfg.batch_size,
            cfg.aug,
            mean,
            std,
            seed=cfg.seed,
            workers=cfg.workers,
            pin_memory=device.type == "cuda",
            world=world,
            drop_last=cfg.drop_last,
        )
    # Testing is the same on both paths: normalize only, on the device, in order, all of it,
    # in batches of one shape (the engine pads the last one).
    test = TensorBatches(
        data.test_x,
        data.test_y,
        min(cfg.eval_batch_size, len(data.test_y)),
        None,
        mean,
        std,
        seed=cfg.seed,
        device=device,
        shuffle=False,
    )
    loss = cfg.loss
    if loss == "auto":
        probe, _ = next(iter(test.epoch(0)))
        loss = detect_loss(model.to(device), probe[:8])
    return Trainer(model, train, test, cfg, device, loss=loss, progress=progress, world=world)


def draw_test_figures(out: Path, data: Cifar, preds, only_missing: bool = False) -> None:
    """confusion.csv/.png and misclassified.png from the test predictions; `only_missing`
    draws only those not in `out`."""

    def have(name: str) -> bool:
        return only_missing and (out / name).is_file()

    if not (have("confusion.csv") and have("confusion.png")):
        cm = report.confusion_matrix(data.test_y, preds, len(data.classes))
        report.write_confusion(out, cm, data.classes)
    if not have("misclassified.png"):  # (not drawn if every image was right)
        report.plot_misclassified(out, data.test_x, data.test_y, preds, data.classes)


def draw_missing(out: Path, data: Cifar, state: dict) -> None:
    """The figures a finished run's folder lacks (deleted, or the run was killed while drawing
    them), from its last checkpoint; those it has are left as they are."""
    if not (out / "curves.png").is_file():
        steps = state["trainer"]
        report.plot_curves(out, state["history"], steps["lr_steps"], steps["momentum_steps"])
    if "test_preds" in state:  # not in checkpoints of older versions
        draw_test_figures(out, data, state["test_preds"].numpy(), only_missing=True)


class Recorder:
    """Rank 0's record of a run: restores a checkpoint, writes the files after each epoch
    (on a background thread, so the next epoch need not wait for the disk), draws the figures
    at the end, and builds the summary."""

    def __init__(
        self,
        out: Path,
        data: Cifar,
        cfg: TrainConfig,
        trainer: Trainer,
        device: torch.device,
        world: World,
        command: Optional[str],
    ):
        self.out, self.data, self.cfg, self.trainer = out, data, cfg, trainer
        self.device, self.world, self.command = device, world, command
        self.history: list[dict] = []
        self.start, self.best_acc, self.wall_before = 0, -1.0, 0.0
        self.stop_epoch: Optional[int] = None  # a --stop-after's last epoch: curves drawn there
        self.data_record = data_record(data)
        self.t_run = time.perf_counter()
        self.writer = BackgroundWriter()

    def restore(self, state: Optional[dict]) -> None:
        if state is None:
            return
        self.trainer.load_state_dict(state["trainer"])
        set_rng_state(state["rng"])
        self.start, self.history = state["epoch"], state["history"]
        self.best_acc, self.wall_before = state["best_acc"], state["wall_seconds"]

    def recipe(self) -> str:
        cfg, n = self.cfg, self.world.size
        per = f" ({n} processes x {cfg.batch_size // n})" if n > 1 else ""
        s = cfg.schedules(len(self.trainer.train))
        head = (
            f"recipe {cfg.recipe}: SGD, {cfg.epochs} epochs, batch {cfg.batch_size}{per}, "
            f"weight decay {cfg.weight_decay:g}, L1 {cfg.l1:g}, loss {self.trainer.loss_kind}, "
            f"norm {cfg.norm}"
        )
        # wrapped to 76 characters: the recipe is read in terminals and notebook columns
        lines = [head, f"  lr: {s['lr']}", f"  momentum: {s['momentum']}"]
        return "\n".join(textwrap.fill(line, 76, subsequent_indent="      ") for line in lines)

    def summary(self, finished: bool) -> dict:
        # the record's schema and builder live in training/record.py (one home)
        return build_summary(
            cfg=self.cfg,
            history=self.history,
            finished=finished,
            command=self.command,
            device=device_name(self.device),
            world_size=self.world.size,
            data=self.data,
            data_digest=self.data_record["digest"],
            loss=self.trainer.loss_kind,
            params=sum(p.numel() for p in self.trainer.module.parameters()),
            steps_per_epoch=len(self.trainer.train),
            wall_seconds=self.wall_before + time.perf_counter() - self.t_run,
        )

    def epoch_done(self, epoch: int, record: dict, preds) -> None:
        """The callback after each epoch: checkpoints, history and summary, handed to the
        writer thread as host copies; the figures after the last epoch (or a --stop-after's)."""
        self.writer.wait()  # the previous epoch's files are on disk (or their error raised)
        out, t, last = self.out, self.trainer, epoch == self.cfg.epochs
        if record["test_acc"] > self.best_acc:
            self.best_acc = record["test_acc"]
            best = {"model": t.module.state_dict(), "epoch": epoch, "test_acc": self.best_acc}
            self.writer.submit(checkpoint.save, out / checkpoint.BEST, host_copy(best))
        state = {
            "trainer": t.state_dict(),
            "rng": rng_state(),
            "epoch": epoch,
            "history": self.history,
            "best_acc": self.best_acc,
            "config": self.cfg.to_dict(),
            "data": self.data_record,
            "world_size": self.world.size,
            "wall_seconds": self.wall_before + time.perf_counter() - self.t_run,
            "test_preds": torch.from_numpy(preds),  # the figures of a finished run, redrawn
        }
        self.writer.submit(checkpoint.save, out / checkpoint.LAST, host_copy(state))
        self.writer.submit(report.write_history, out, host_copy(self.history))
        if last or epoch == self.stop_epoch:
            self.draw(self.history, t.lr_steps, t.momentum_steps, preds if last else None)
        # after the figures: a summary that says finished comes with them
        self.writer.submit(write_json, out / "summary.json", self.summary(last))

    def draw(self, history: list, lr_steps: list, momentum_steps: list, preds=None) -> None:
        """curves.png; with the last epoch's test predictions also the confusion matrix and
        the misclassified gallery."""
        report.plot_curves(self.out, history, lr_steps, momentum_steps)
        if preds is not None:
            draw_test_figures(self.out, self.data, preds)

    def close(self, quiet: bool = False) -> None:
        """Wait for the files still being written; `quiet` when another error is on its way."""
        self.writer.close(quiet=quiet)


def train_run(
    build_model: Callable[[], nn.Module],
    data: Cifar,
    cfg: TrainConfig,
    out: str | os.PathLike,
    *,
    device: torch.device,
    resume: bool = False,
    force: bool = False,
    on_epoch_end: Iterable[EpochCallback] = (),
    command: Optional[str] = None,
    progress: Optional[bool] = None,
    world: Optional[World] = None,
    stop_after: Optional[int] = None,
) -> dict:
    """Train (or continue) a run in `out`; returns the summary also written to summary.json.

    `build_model` is called after seeding, so the same seed gives the same initial weights.
    Under torchrun (`world` defaults to what its environment says) each process calls this
    with the same arguments; rank 0 writes the files and prints. `stop_after` ends this call
    after that many more epochs, the run resumable (for time-limited sessions).
    `on_epoch_end` callbacks run after the epoch's files were handed to the writer thread:
    they are all on disk when this returns or raises, not necessarily during the callback.
    """
    tune_malloc()  # a notebook's run too keeps its activations' pages from step to step
    out = Path(out)
    world = world or world_from_env(device)
    cfg = checked_config(cfg, device, data, world)
    if stop_after is not None and stop_after < 1:
        raise UserError(f"--stop-after must be at least 1, got {stop_after}")
    check_out(out, resume=resume, force=force)
    model = checked_model(build_model, cfg, data, world)
    state = resume_state(out, cfg, data, world) if resume else None
    done = finished_summary(out, state, cfg)
    if done is not None:
        if world.main:
            tqdm.write(f"{out} holds the finished run ({cfg.epochs} epochs): nothing to train")
            draw_missing(out, data, state)
        return done
    trainer = make_trainer(model, data, cfg, device, world, progress)
    recorder = Recorder(out, data, cfg, trainer, device, world, command)
    recorder.restore(state)
    recorder.stop_epoch = None if stop_after is None else recorder.start + stop_after
    if world.main:
        prepare_out(out, force=force)
        tqdm.write(recorder.recipe())
    world.barrier()
    try:
        fit(
            trainer,
            start_epoch=recorder.start,
            history=recorder.history,
            on_epoch_end=[recorder.epoch_done, *on_epoch_end],
            stop_epoch=recorder.stop_epoch,
        )
    except BaseException:
        recorder.close(quiet=True)  # what was handed over is written; this error goes up
        raise
    recorder.close()
    result = recorder.summary(len(recorder.history) == cfg.epochs)
    if world.main:
        if state is not None and _finished(state, cfg):  # nothing trained: figures as needed
            draw_missing(out, data, state)
        write_json(out / "summary.json", result)
    return result
