"""Train images/s of the two augmentation paths, for several batch sizes, with glibc malloc as
tuned by the training package and as it comes (the CPU batch-512 cliff).

  * pipeline: images/s of augmented batches alone: the albumentations DataLoader (for each
    --workers count; --skip-reference leaves it out) and the batched tensor pipeline on --device;
  * train: SGD steps on the model (default: the assignment's Net) fed by each path, timed over
    --batches batches after one untimed warm-up batch (which also pays for torch.compile);
  * --breakdown: one training step of the tensor path cut into data (cutting a batch from the
    uint8 set on the device), augmentation, forward, backward and optimizer, each timed alone
    with the device synchronised around it, plus evaluation (forward without gradients), in
    ms per batch at the largest --batch-size; the parts' sum against the step as it runs
    unsynchronised shows how much overlaps;
  * --concurrent K...: K processes training at once on the one device (each the tensor path at
    the largest --batch-size, started together after their warm-up): images/s of all of them.

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

from rfkit_base.commandline import UserError  # noqa: E402
from training.allocator import OPT_OUT, malloc_tuned, tune_malloc  # noqa: E402
from training.augment import AugConfig, TensorAugment  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.data import CLASSES, Cifar, load_cifar10  # noqa: E402
from training.engine import Trainer  # noqa: E402
from training.fsutil import write_json  # noqa: E402
from training.loaders import ReferenceBatches, TensorBatches  # noqa: E402
from training.models import load_model  # noqa: E402
from training.options import resolve_device  # noqa: E402
from training.seeding import seed_everything  # noqa: E402


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


def breakdown(
    model_target: str, data: Cifar, bs: int, batches: int, cfg: TrainConfig, device: torch.device
) -> dict:
    """Milliseconds per batch of each part of a training step (tensor path) and of evaluation,
    each part timed alone with the device synchronised around it, over `batches` batches
    after one untimed batch."""
    cfg = cfg.resolved(device)
    mean, std = data.mean_std()
    seed_everything(cfg.seed)
    source = TensorBatches(
        data.train_x, data.train_y, bs, cfg.aug, mean, std, seed=0, device=device
    )
    trainer = Trainer(
        load_model(model_target), source, source, cfg, device, loss="nll", progress=False
    )
    net, opt, sched = trainer.net, trainer.optimizer, trainer.scheduler
    images = torch.from_numpy(data.train_x).to(device)
    labels = torch.from_numpy(data.train_y).to(device)
    augment = TensorAugment(cfg.aug, mean, std)
    g = torch.Generator(device=device)
    g.manual_seed(0)
    order = torch.randperm(len(labels), device=device)
    parts = dict.fromkeys(("data", "augmentation", "forward", "backward", "optimizer", "eval"), 0.0)

    def timed(name: str, counted: bool, fn, *args):
        _sync(device)
        t0 = time.perf_counter()
        result = fn(*args)
        _sync(device)
        if counted:
            parts[name] += time.perf_counter() - t0
        return result

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(cfg.amp))

    def layout(x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if cfg.channels_last else x

    def cut(idx):
        return images[idx], labels[idx]

    def augmented(xb):
        return layout(augment(xb, g, train=True))

    def forward(x, y):
        with autocast():
            out = net(x)
        return torch.nn.functional.nll_loss(out.float(), y)

    def backward(loss):
        opt.zero_grad(set_to_none=True)
        loss.backward()

    def step():
        opt.step()
        sched.step()

    per = max(1, len(labels) // bs)
    for i in range(batches + 1):  # batch 0: warm-up, not counted
        counted = i > 0
        idx = order[(i % per) * bs : (i % per + 1) * bs]
        xb, yb = timed("data", counted, cut, idx)
        x = timed("augmentation", counted, augmented, xb)
        net.train()
        loss = timed("forward", counted, forward, x, yb)
        timed("backward", counted, backward, loss)
        timed("optimizer", counted, step)
        net.eval()
        with torch.no_grad():
            timed("eval", counted, forward, x, yb)
    ms = {k: round(1000 * v / batches, 3) for k, v in parts.items()}
    train_ms = sum(v for k, v in ms.items() if k != "eval")
    return {
        "batch_size": bs,
        "batches": batches,
        "ms_per_batch": ms,
        "train_parts_ms_per_batch": round(train_ms, 3),
        "images_per_s": {k: round(bs * 1000 / v, 1) if v else None for k, v in ms.items()},
    }


def _child(args) -> int:
    """One of --concurrent's processes: warm up, say ready, wait for go, train, report."""
    device = resolve_device(args.device)
    data = _data(args)
    bs = max(args.batch_size)
    mean, std = data.mean_std()
    batches = TensorBatches(
        data.train_x, data.train_y, bs, AugConfig(), mean, std, seed=args.child, device=device
    )
    test = TensorBatches(
        data.test_x, data.test_y, bs, None, mean, std, seed=0, device=device, shuffle=False
    )
    cfg = TrainConfig(
        epochs=2,
        batch_size=bs,
        fast=True,
        amp=args.amp,
        channels_last=args.channels_last,
        compile=args.compile,
        seed=args.child,
    )
    seed_everything(cfg.seed)
    trainer = Trainer(
        load_model(args.model), batches, test, cfg, device, loss="nll", progress=False
    )
    trainer.train = _First(batches)
    trainer.train_epoch(0)
    trainer.train = batches
    _sync(device)
    print("@@ready", flush=True)
    if not sys.stdin.readline():  # the parent is gone: no one to report to
        return 1
    t0 = time.time()
    record = trainer.train_epoch(1)
    _sync(device)
    t1 = time.time()
    print("@@" + json.dumps({"t0": t0, "t1": t1, "images": record["train_images"]}), flush=True)
    return 0


def _protocol_line(proc: subprocess.Popen) -> str:
    """The child's next protocol line (its other output is passed over)."""
    for line in proc.stdout:
        if line.startswith("@@"):
            return line[2:].strip()
    raise RuntimeError(f"a --concurrent process ended early (exit {proc.wait()})")


def concurrent(argv: list[str], ks: list[int], done=lambda out: None) -> dict:
    """Aggregate images/s of k training processes at once on the device, for each k;
    `done(results so far)` after each k."""
    out: dict = {}
    for k in ks:
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, *argv, "--child", str(i + 1)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(k)
        ]
        try:
            for proc in procs:
                if _protocol_line(proc) != "ready":
                    raise RuntimeError("a --concurrent process said something unexpected")
            for proc in procs:  # all warmed up: start them together
                proc.stdin.write("go\n")
                proc.stdin.flush()
            runs = [json.loads(_protocol_line(proc)) for proc in procs]
        finally:
            for proc in procs:
                proc.stdin.close()
                proc.wait()
        wall = max(r["t1"] for r in runs) - min(r["t0"] for r in runs)
        images = sum(r["images"] for r in runs)
        out[str(k)] = {
            "images_per_s": round(images / wall, 1),
            "per_run_images_per_s": [round(r["images"] / (r["t1"] - r["t0"]), 1) for r in runs],
            "wall_seconds": round(wall, 3),
        }
        done(out)
        print(
            f"{'k=' + str(k):>8}  {'runs at once, tensor path':<40} "
            f"{images / wall:>10,.0f} images/s in all",
            flush=True,
        )
    return out


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
            for w in ([] if args.skip_reference else args.workers)
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
    if args.breakdown:
        cfg = TrainConfig(
            epochs=2,
            batch_size=max(args.batch_size),
            fast=True,
            amp=amp,
            channels_last=channels_last,
            compile=args.compile,
        )
        b = breakdown(args.model, data, max(args.batch_size), args.batches, cfg, device)
        results["breakdown"] = b
        for part, ms in b["ms_per_batch"].items():
            print(
                f"{'part':>8}  {part:<40} {ms:>10.2f} ms a batch of {b['batch_size']}", flush=True
            )
    return results


def _without(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """argv less the given options and their values (up to the next option)."""
    out, skipping = [], False
    for a in argv:
        if a.startswith("--"):
            skipping = a.split("=", 1)[0] in options
        if not skipping:
            out.append(a)
    return out


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
    tune_malloc()  # as rftrain does (RFTRAIN_MALLOC=system: left alone, for the comparison)
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
        "--skip-reference",
        action="store_true",
        help="leave out the albumentations path (a machine without albumentations)",
    )
    p.add_argument("--breakdown", action="store_true", help="time each part of a step (see above)")
    p.add_argument(
        "--concurrent",
        type=int,
        nargs="+",
        default=[],
        metavar="K",
        help="also time K training processes at once on the device, for each K",
    )
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)  # one of --concurrent's
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
    if args.child is not None:
        return _child(args)
    if any(k < 1 for k in args.concurrent):
        p.error("--concurrent counts must be at least 1")
    try:
        results = measure(args, resolve_device(args.device))
    except UserError as exc:
        print(f"train_throughput: error: {exc}", file=sys.stderr)
        return 2
    if args.json:  # written as each part ends: a time-limited caller keeps what finished
        write_json(args.json, results)
    if args.concurrent:
        child_argv = _without(argv, ("--json", "--concurrent"))
        results["concurrent"] = {
            "batch_size": max(args.batch_size),
            "batches_per_run": args.batches,
            "runs": {},
        }

        def done(runs: dict) -> None:
            results["concurrent"]["runs"] = dict(runs)
            if args.json:
                write_json(args.json, results)

        concurrent(child_argv, args.concurrent, done)
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
