"""One training run into an output folder: checkpoints, history, plots, summary; --resume.

Files in `out`: last.pt (to resume), best.pt (best test accuracy), history.json/.csv,
curves.png, confusion.csv/.png, misclassified.png (after the last epoch) and summary.json.
"""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

import torch
import torch.nn as nn

from . import checkpoint, report
from .data import Cifar
from .engine import EpochCallback, Trainer, TrainConfig, detect_loss, fit, rng_state, \
    seed_everything, set_rng_state
from .fsutil import UserError, write_json
from .loaders import ReferenceBatches, TensorBatches

ARTIFACTS = (checkpoint.LAST, checkpoint.BEST, "history.json", "history.csv", "curves.png",
             "confusion.csv", "confusion.png", "misclassified.png", "summary.json")
# Settings that don't change the numbers; a resumed run may differ in these.
RESUME_FREE = ("workers", "compile")


def prepare_out(out: Path, *, resume: bool, force: bool) -> None:
    """Refuse to mix runs: a non-empty folder needs --resume (continue) or --force (restart)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    busy = out.is_dir() and any(out.iterdir())
    if resume:
        if not (out / checkpoint.LAST).is_file():
            raise UserError(f"nothing to resume: {out / checkpoint.LAST} does not exist")
        return
    if busy and not force:
        raise UserError(f"--out {out} is not empty (another run?): pass --resume to continue "
                        "it or --force to start over there")
    if force:  # start over: drop only what a run writes, never anything else in the folder
        for name in ARTIFACTS:
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def _comparable(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in RESUME_FREE}


def train_run(build_model: Callable[[], nn.Module], data: Cifar, cfg: TrainConfig, out: Path,
              *, device: torch.device, resume: bool = False, force: bool = False,
              on_epoch_end: Iterable[EpochCallback] = (), command: Optional[str] = None,
              progress: Optional[bool] = None) -> dict:
    """Train (or continue) a run in `out`; returns the summary also written to summary.json.

    `build_model` is called after seeding, so the same seed gives the same initial weights.
    """
    cfg.check()
    out = Path(out)
    prepare_out(out, resume=resume, force=force)
    state = checkpoint.load(out / checkpoint.LAST) if resume else None
    if state is not None:
        saved = _comparable(state["config"])
        now = _comparable(cfg.to_dict())
        diff = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
        if diff:
            raise UserError(f"--resume with different settings than the run in {out}: "
                            + ", ".join(f"{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in diff))
        if state["sizes"] != [len(data.train_y), len(data.test_y)]:
            raise UserError(f"--resume with different data than the run in {out}: "
                            f"{state['sizes']} train/test images then, "
                            f"{[len(data.train_y), len(data.test_y)]} now")

    seed_everything(cfg.seed)
    model = build_model()
    mean, std = data.mean_std()
    if cfg.fast:
        train = TensorBatches(data.train_x, data.train_y, cfg.batch_size, cfg.aug, mean, std,
                              seed=cfg.seed, device=device)
    else:
        train = ReferenceBatches(data.train_x, data.train_y, cfg.batch_size, cfg.aug, mean, std,
                                 seed=cfg.seed, workers=cfg.workers,
                                 pin_memory=device.type == "cuda")
    # Testing is the same on both paths: normalize only, on the device, in order.
    test = TensorBatches(data.test_x, data.test_y, cfg.batch_size, None, mean, std,
                         seed=cfg.seed, device=device, shuffle=False)
    loss = cfg.loss
    if loss == "auto":
        probe, _ = next(iter(test.epoch(0)))
        loss = detect_loss(model.to(device), probe[:8])
    trainer = Trainer(model, train, test, cfg, device, loss=loss, progress=progress)

    history: list[dict] = []
    start, best_acc, wall_before = 0, -1.0, 0.0
    if state is not None:
        trainer.load_state_dict(state["trainer"])
        set_rng_state(state["rng"])
        start, history = state["epoch"], state["history"]
        best_acc, wall_before = state["best_acc"], state["wall_seconds"]
    t_run = time.perf_counter()

    def summary(finished: bool) -> dict:
        accs = [r["test_acc"] for r in history]
        return {
            "command": command, "finished": finished, "device": device_name(device),
            "torch": torch.__version__, "data": data.source,
            "data_decode_seconds": round(data.decode_seconds, 3),
            "train_images": len(data.train_y), "test_images": len(data.test_y),
            "path": "tensor (fast)" if cfg.fast else f"albumentations ({cfg.workers} workers)",
            "loss": trainer.loss_kind, "params": sum(p.numel() for p in model.parameters()),
            "config": cfg.to_dict(), "epochs_done": len(history), "test_acc": accs,
            "best_test_acc": max(accs) if accs else None,
            "wall_seconds": round(wall_before + time.perf_counter() - t_run, 2),
            "time_to_85_seconds": report.time_to_accuracy(history, 0.85),
            "train_images_per_s": (sum(r["images_per_s"] for r in history) / len(history)
                                   if history else None),
        }

    def save(epoch: int, record: dict, preds) -> None:
        nonlocal best_acc
        if record["test_acc"] > best_acc:
            best_acc = record["test_acc"]
            checkpoint.save(out / checkpoint.BEST, {"model": trainer.module.state_dict(),
                                                    "epoch": epoch, "test_acc": best_acc})
        checkpoint.save(out / checkpoint.LAST, {
            "trainer": trainer.state_dict(), "rng": rng_state(), "epoch": epoch,
            "history": history, "best_acc": best_acc, "config": cfg.to_dict(),
            "sizes": [len(data.train_y), len(data.test_y)],
            "wall_seconds": wall_before + time.perf_counter() - t_run})
        report.write_history(out, history)
        report.plot_curves(out, history, trainer.lr_steps)
        if epoch == cfg.epochs:
            k = len(data.classes)
            report.write_confusion(out, report.confusion_matrix(data.test_y, preds, k),
                                   data.classes)
            report.plot_misclassified(out, data.test_x, data.test_y, preds, data.classes)
        write_json(out / "summary.json", summary(epoch == cfg.epochs))

    fit(trainer, start_epoch=start, history=history, on_epoch_end=[save, *on_epoch_end])
    result = summary(len(history) == cfg.epochs)
    write_json(out / "summary.json", result)
    return result
