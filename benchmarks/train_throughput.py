"""Images/second of the two augmentation paths, alone and inside a training step.

  * pipeline: batches produced per second by the albumentations DataLoader (for each
    --workers count) and by the batched tensor pipeline on --device;
  * train: a whole epoch of SGD steps on the model (default: the assignment's Net) over
    --batches batches, fed by each path (after one untimed warm-up epoch, which also pays
    for torch.compile when --compile is given).

Runs on real CIFAR-10 (--data-dir) or on random images of the same shape (no download).
    python benchmarks/train_throughput.py --device cpu --batches 4 --batch-size 128
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from training.augment import AugConfig  # noqa: E402
from training.data import CLASSES, Cifar, load_cifar10  # noqa: E402
from training.engine import Trainer, TrainConfig, seed_everything  # noqa: E402
from training.fsutil import write_json  # noqa: E402
from training.options import UserError, resolve_device  # noqa: E402
from training.loaders import ReferenceBatches, TensorBatches  # noqa: E402
from training.models import load_model  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pipeline_rate(batches, device: torch.device) -> float:
    """Images/s to produce one epoch of augmented batches on `device` (no model)."""
    for _ in batches.epoch(0):  # warm-up: worker start-up, lazy imports, CUDA kernels
        break
    _sync(device)
    t0, n = time.perf_counter(), 0
    for x, y in batches.epoch(1):
        x = x.to(device, non_blocking=True)
        n += len(y)
    _sync(device)
    return n / (time.perf_counter() - t0)


def train_rate(model_target: str, batches, test, cfg: TrainConfig, device: torch.device) -> float:
    """Images/s of a timed training epoch, after an untimed one."""
    seed_everything(cfg.seed)
    trainer = Trainer(load_model(model_target), batches, test, cfg, device, loss="nll",
                      progress=False)
    trainer.train_epoch(0)
    return trainer.train_epoch(1)["images_per_s"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", help="CIFAR-10 (default: random images of its shape)")
    p.add_argument("--data-cache", help=".npz cache for an image-folder copy")
    p.add_argument("--model", default=str(ROOT / "examples" / "s9_net.py"))
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--batches", type=int, default=20, help="batches per timed epoch")
    p.add_argument("--workers", type=int, nargs="+",
                   default=sorted({0, min(8, os.cpu_count() or 1)}),
                   help="DataLoader worker counts to time for the albumentations path")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--skip-train", action="store_true", help="time the pipelines only")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    try:
        device = resolve_device(args.device)
        n = args.batch_size * args.batches
        if args.data_dir:
            data = load_cifar10(args.data_dir, cache=args.data_cache).limited(n, args.batch_size)
        else:
            rng = np.random.default_rng(0)
            x = rng.integers(0, 256, (n + args.batch_size, 32, 32, 3), dtype=np.uint8)
            y = rng.integers(0, 10, n + args.batch_size)
            data = Cifar(x[:n], y[:n], x[n:], y[n:], CLASSES, "random images")
    except UserError as exc:
        print(f"train_throughput: error: {exc}", file=sys.stderr)
        return 2
    gpu = device.type == "cuda"
    mean, std = data.mean_std()
    aug = AugConfig()
    print(f"device: {torch.cuda.get_device_name(device) if gpu else 'cpu'}; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
          f"data: {data.source}, {len(data.train_y)} images, batch {args.batch_size}")
    test = TensorBatches(data.test_x, data.test_y, args.batch_size, None, mean, std, seed=0,
                         device=device, shuffle=False)
    results: dict = {"device": torch.cuda.get_device_name(device) if gpu else "cpu",
                     "torch": torch.__version__, "cpus": os.cpu_count(), "data": data.source,
                     "batch_size": args.batch_size, "images": len(data.train_y),
                     "pipeline_images_per_s": {}, "train_images_per_s": {}}

    def report(kind: str, name: str, rate: float) -> None:
        results[kind][name] = round(rate, 1)
        print(f"{kind.split('_')[0]:>8}  {name:<34} {rate:>10,.0f} images/s", flush=True)

    paths = [(f"albumentations, {w} workers",
              ReferenceBatches(data.train_x, data.train_y, args.batch_size, aug, mean, std,
                               seed=0, workers=w, pin_memory=gpu), False) for w in args.workers]
    paths.append((f"tensor on {device.type}",
                  TensorBatches(data.train_x, data.train_y, args.batch_size, aug, mean, std,
                                seed=0, device=device), True))
    for name, batches, _ in paths:
        report("pipeline_images_per_s", name, pipeline_rate(batches, device))
    if not args.skip_train:
        for name, batches, fast in paths:
            cfg = TrainConfig(epochs=2, batch_size=args.batch_size, fast=fast, amp=gpu,
                              channels_last=gpu, compile=args.compile)
            label = name + (" +bf16+channels_last" if gpu else "") + \
                (" +compile" if args.compile else "")
            report("train_images_per_s", label, train_rate(args.model, batches, test, cfg, device))
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
