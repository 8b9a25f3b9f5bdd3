"""Train images/s of the two augmentation paths, for several batch sizes, with glibc malloc as
tuned by the training package and as it comes (the CPU batch-512 cliff).

  * pipeline: images/s of augmented batches alone: the albumentations DataLoader (for each
    --workers count) and the batched tensor pipeline on --device;
  * train: SGD steps on the model (default: the assignment's Net) fed by each path, timed over
    --batches batches after one untimed warm-up batch (which also pays for torch.compile).

On a GPU the training steps use bf16 autocast and channels_last (--no-amp,
--no-channels-last to compare) and --compile adds torch.compile; the tensor pipeline runs
on the GPU. `--allocator both` runs the whole measurement twice in child processes, with the
malloc settings (tuned) and without them (RFTRAIN_MALLOC=system), and prints both.

Runs on real CIFAR-10 (--data-dir) or on random images of the same shape (no download):
    python benchmarks/train_throughput.py --device cpu --batch-size 128 512 --batches 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from training.allocator import OPT_OUT, malloc_tuned  # noqa: E402
from training.augment import AugConfig  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.data import CLASSES, Cifar, load_cifar10  # noqa: E402
from training.engine import Trainer, seed_everything  # noqa: E402
from training.fsutil import write_json  # noqa: E402
from training.loaders import ReferenceBatches, TensorBatches  # noqa: E402
from training.models import load_model  # noqa: E402
from training.options import UserError, resolve_device  # noqa: E402


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


class _First:
    """The first batch of a batch source, as a one-batch source (the warm-up)."""

    def __init__(self, batches):
        self.batches = batches

    def __len__(self) -> int:
        return 1

    def epoch(self, epoch: int):
        for batch in self.batches.epoch(epoch):
            yield batch
            return


def _minor_faults() -> int:
    try:
        import resource
    except ImportError:  # not on Windows
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def train_rate(
    model_target: str, batches, test, cfg: TrainConfig, device: torch.device
) -> tuple[float, float]:
    """Images/s of training steps over `batches`, after one untimed warm-up step, and the
    minor page faults per step (the malloc cliff shows there, whatever the machine's load)."""
    seed_everything(cfg.seed)
    trainer = Trainer(
        load_model(model_target), batches, test, cfg, device, loss="nll", progress=False
    )
    trainer.train = _First(batches)
    trainer.train_epoch(0)
    trainer.train = batches
    faults = _minor_faults()
    rate = trainer.train_epoch(1)["images_per_s"]
    return rate, (_minor_faults() - faults) / len(batches)


def _data(args) -> Cifar:
    n = max(args.batch_size) * args.batches
    if args.data_dir:
        return load_cifar10(args.data_dir, cache=args.data_cache).limited(n, max(args.batch_size))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n + 512, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, n + 512)
    return Cifar(x[:n], y[:n], x[n:], y[n:], CLASSES, "random images")


def measure(args, device: torch.device) -> dict:
    gpu = device.type == "cuda"
    amp = gpu if args.amp is None else args.amp
    channels_last = gpu if args.channels_last is None else args.channels_last
    data = _data(args)
    mean, std = data.mean_std()
    aug = AugConfig()
    name = torch.cuda.get_device_name(device) if gpu else "cpu"
    print(
        f"device: {name}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs; malloc {'tuned' if malloc_tuned() else 'as it comes'}; "
        f"data: {data.source}",
        flush=True,
    )
    results: dict = {
        "device": name,
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "data": data.source,
        "malloc_tuned": malloc_tuned(),
        "amp_bf16": amp,
        "channels_last": channels_last,
        "compile": args.compile,
        "batches": args.batches,
        "pipeline_images_per_s": {},
        "train_images_per_s": {},
        "page_faults_per_step": {},
    }

    def report(kind: str, label: str, rate: float) -> None:
        results[kind][label] = round(rate, 1)
        print(f"{kind.split('_')[0]:>8}  {label:<40} {rate:>10,.0f} images/s", flush=True)

    for bs in args.batch_size:
        n = bs * args.batches
        x, y = data.train_x[:n], data.train_y[:n]
        test = TensorBatches(
            data.test_x[:bs],
            data.test_y[:bs],
            bs,
            None,
            mean,
            std,
            seed=0,
            device=device,
            shuffle=False,
        )
        paths = [
            (
                f"batch {bs}, albumentations, {w} workers",
                ReferenceBatches(x, y, bs, aug, mean, std, seed=0, workers=w, pin_memory=gpu),
                False,
            )
            for w in args.workers
        ]
        paths.append(
            (
                f"batch {bs}, tensor on {device.type}",
                TensorBatches(x, y, bs, aug, mean, std, seed=0, device=device),
                True,
            )
        )
        for label, batches, _ in paths:
            report("pipeline_images_per_s", label, pipeline_rate(batches, device))
        if args.skip_train:
            continue
        for label, batches, fast in paths:
            cfg = TrainConfig(
                epochs=2,
                batch_size=bs,
                fast=fast,
                amp=amp,
                channels_last=channels_last,
                compile=args.compile,
            )
            extra = "".join(
                s
                for s, on in (
                    (" +bf16", amp),
                    (" +channels_last", channels_last),
                    (" +compile", args.compile),
                )
                if on
            )
            rate, faults = train_rate(args.model, batches, test, cfg, device)
            report("train_images_per_s", label + extra, rate)
            results["page_faults_per_step"][label + extra] = round(faults)
            print(f"{'':>8}  {'':<40} {faults:>10,.0f} page faults a step", flush=True)
    return results


def both_allocators(argv: list[str], json_out: str | None) -> int:
    """Run this script twice in child processes, malloc tuned and as it comes; merge."""
    merged = {}
    for label, env_value in (("malloc tuned", None), ("malloc as it comes", "system")):
        env = {k: v for k, v in os.environ.items() if k != OPT_OUT}
        if env_value:
            env[OPT_OUT] = env_value
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "r.json"
            print(f"== {label}", flush=True)
            proc = subprocess.run(
                [sys.executable, __file__, *argv, "--allocator", "current", "--json", str(out)],
                env=env,
            )
            if proc.returncode:
                return proc.returncode
            merged[label] = json.loads(out.read_text())
    if json_out:
        write_json(json_out, merged)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--data-dir", help="CIFAR-10 (default: random images of its shape)")
    p.add_argument("--data-cache", help=".npz cache for an image-folder copy")
    p.add_argument("--model", default=str(ROOT / "examples" / "s9_net.py"), help="model target")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    p.add_argument("--batch-size", type=int, nargs="+", default=[128, 512], help="batch sizes")
    p.add_argument("--batches", type=int, default=3, help="timed batches per measurement")
    p.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[0],
        help="DataLoader worker counts to time for the albumentations path",
    )
    p.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bf16 autocast (None: on with a GPU)",
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="channels_last (None: on with a GPU)",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--skip-train", action="store_true", help="time the pipelines only")
    p.add_argument(
        "--allocator",
        choices=("current", "both"),
        default="current",
        help="current: this process as it is; both: tuned and as it comes",
    )
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if args.allocator == "both":
        rest = [a for a in argv if a not in ("--allocator", "both")]
        if args.json:
            i = rest.index("--json")
            del rest[i : i + 2]
        return both_allocators(rest, args.json)
    try:
        results = measure(args, resolve_device(args.device))
    except UserError as exc:
        print(f"train_throughput: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
