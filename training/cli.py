"""`rftrain` / `python -m training`: arguments and exit codes (2 = bad input), nothing else."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import fields
from pathlib import Path
from typing import Optional, Sequence

import torch

from .augment import AugConfig
from .engine import TrainConfig
from .fsutil import UserError

PROG = "rftrain"


def _parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog=PROG, description="Train a net on CIFAR-10 with the assignment's recipe "
        "(SGD + OneCycleLR, albumentations-strength augmentation).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", metavar="TARGET",
                      help="model.py, model.py:Name or package.module:attr")
    what.add_argument("--preset", metavar="NAME", help="a netbuilder preset, e.g. s9")

    g = p.add_argument_group("data and output")
    g.add_argument("--data-dir", required=True, help="cifar-10-batches-py/ or train/ + test/ "
                   "image folders (or where --download puts the batches)")
    g.add_argument("--download", action="store_true", help="fetch CIFAR-10 with torchvision")
    g.add_argument("--data-cache", metavar="FILE.npz",
                   help="keep decoded image folders in this .npz (rebuilt if the folder changes)")
    g.add_argument("--out", required=True, help="output folder")
    g.add_argument("--resume", action="store_true", help="continue the run in --out")
    g.add_argument("--force", action="store_true", help="start over in a non-empty --out")
    g.add_argument("--limit-train", type=int, metavar="N", help="train on a fixed subset of N")
    g.add_argument("--limit-test", type=int, metavar="N", help="test on a fixed subset of N")

    g = p.add_argument_group("recipe")
    g.add_argument("--epochs", type=int, default=d.epochs)
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--lr", type=float, default=d.lr,
                   help="starting lr of the one-cycle (div_factor = max_lr / lr)")
    g.add_argument("--momentum", type=float, default=d.momentum)
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--max-lr", type=float, default=d.max_lr)
    g.add_argument("--pct-start", type=float, default=d.pct_start)
    g.add_argument("--three-phase", action=argparse.BooleanOptionalAction, default=d.three_phase)
    g.add_argument("--final-div-factor", type=float, default=d.final_div_factor)
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--loss", choices=("auto", "nll", "ce"), default=d.loss,
                   help="auto: NLL if the model outputs log-probabilities, else cross-entropy")

    g = p.add_argument_group("augmentation (same config for both pipelines)")
    g.add_argument("--no-augment", action="store_true", help="normalize only")
    for f in fields(AugConfig):
        g.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)

    g = p.add_argument_group("speed")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    g.add_argument("--fast", action=argparse.BooleanOptionalAction, default=None,
                   help="augment on the device with torch ops (default: on with a GPU)")
    g.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast (default: on with a GPU)")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="default: on with a GPU")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--workers", type=int, default=min(8, max(0, (os.cpu_count() or 1) - 1)),
                   help="DataLoader workers for the albumentations path")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: only on a terminal)")
    return p


def resolve_device(name: str) -> torch.device:
    """'auto' picks cuda when present; asking for an absent GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"--device {name!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA GPU is available here (try --device cpu)")
    return device


def config_from_args(args: argparse.Namespace, device: torch.device) -> TrainConfig:
    gpu = device.type == "cuda"
    aug = AugConfig.off() if args.no_augment else AugConfig(
        **{f.name: getattr(args, f.name) for f in fields(AugConfig)})
    pick = lambda value: gpu if value is None else value  # noqa: E731  (None = automatic)
    return TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
        weight_decay=args.weight_decay, max_lr=args.max_lr, pct_start=args.pct_start,
        three_phase=args.three_phase, final_div_factor=args.final_div_factor, seed=args.seed,
        loss=args.loss, fast=pick(args.fast), amp=pick(args.amp),
        channels_last=pick(args.channels_last), compile=args.compile, workers=args.workers,
        aug=aug)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    from .data import load_cifar10
    from .models import load_model
    from .run import prepare_out, train_run
    try:
        device = resolve_device(args.device)
        try:
            cfg = config_from_args(args, device)
            cfg.check()
        except ValueError as exc:  # the config's own range checks
            raise UserError(str(exc)) from None
        # Fail fast on a bad target or output folder, before decoding 60,000 images.
        load_model(args.model, args.preset)
        prepare_out(Path(args.out), resume=args.resume, force=args.force)
        data = load_cifar10(args.data_dir, download=args.download, cache=args.data_cache)
        print(f"data: {data.source}: {len(data.train_y)} train, {len(data.test_y)} test "
              f"images ({data.decode_seconds:.1f} s to load)", flush=True)
        data = data.limited(args.limit_train, args.limit_test)
        summary = train_run(lambda: load_model(args.model, args.preset), data, cfg,
                            args.out, device=device, resume=args.resume, force=args.force,
                            command=shlex.join([PROG, *argv]), progress=args.progress)
    except UserError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; continue with the same command and --resume",
              file=sys.stderr)
        return 130
    best = summary["best_test_acc"]
    print(f"done: {summary['epochs_done']} epochs, best test accuracy "
          f"{best:.2%} in {summary['wall_seconds']:.0f} s; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
