"""What Ray Tune adds to each run of an rfsweep: the same N runs trained three ways, in one
process, one after another (no two at once, so the times compare):

  train    in this process, rftrain's code (`training.cli._run`), no Ray: the training itself
  rftrain  one `python -m training` process per run: what the sweep before Ray started
  tune     one Tune experiment of the N runs (`training.tune_sweep.execute`, each trial
           asking for every CPU, so one at a time), in a Ray session started once

Ray's start and shutdown are timed apart (once a sweep, not per run). The per-run overhead is
(tune's wall time) / N - train's mean. Data: a small synthetic CIFAR-shaped set (the
class shows in the colour; --images) unless --data-dir gives a real one (then --limit-train
applies).
Nothing is asserted; the times depend on the machine and its load (say both when quoting).

    python benchmarks/sweep_overhead.py [--runs 4] [--epochs 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's training, here and in Ray's workers
os.environ["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")


def synthetic(root: Path, n_train: int, n_test: int) -> Path:
    """A cifar-10-batches-py of n_train + n_test images: colour by class, plus noise."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = np.arange(n_train + n_test) % 10
    palette = rng.integers(30, 226, (10, 3))
    noise = rng.integers(-30, 31, (len(labels), 32, 32, 3))
    images = np.clip(palette[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)
    flat = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    per = n_train // 5
    parts = [(i * per, (i + 1) * per) for i in range(5)] + [(n_train, n_train + n_test)]
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name, (a, b) in zip(names, parts):
        batch = {b"labels": labels[a:b].tolist(), b"data": flat[a:b], b"filenames": []}
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {b"label_names": [f"c{i}".encode() for i in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return root


def options(args: argparse.Namespace, data: str, seed: int) -> dict:
    opts = {
        "preset": args.preset,
        "data_dir": data,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "fast": True,
        "seed": seed,
    }
    if args.limit_train:
        opts["limit_train"] = args.limit_train
    return opts


def in_process(opts: dict, out: Path) -> float:
    from training.cli import _run, parse
    from training.tune_trial import rftrain_argv

    argv = [*rftrain_argv(opts, out), "--device", "cpu", "--no-progress"]
    t0 = time.perf_counter()
    _run(parse(argv), argv)
    return time.perf_counter() - t0


def as_command(opts: dict, out: Path) -> float:
    from training.tune_trial import rftrain_argv

    argv = [sys.executable, "-m", "training", *rftrain_argv(opts, out), "--device", "cpu"]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{shlex.join(argv)} failed: {proc.stderr.strip()[-500:]}")
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=4, help="runs each way (default 4)")
    p.add_argument("--epochs", type=int, default=2, help="epochs a run (default 2)")
    p.add_argument("--preset", default="s9", help="the model (a netbuilder preset; default s9)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--data-dir", help="real CIFAR-10 (default: synthetic images)")
    p.add_argument(
        "--images", type=int, default=320, help="synthetic training images (default 320)"
    )
    p.add_argument("--limit-train", type=int, help="with --data-dir: train on N images")
    p.add_argument("--json", help="write the numbers here too")
    args = p.parse_args()

    import ray
    import torch

    from training.tune_sweep import Resources, execute, start_ray

    work = Path(tempfile.mkdtemp(prefix="sweep-overhead-"))
    data = args.data_dir or str(synthetic(work / "data", args.images, args.images // 4))
    cpus = os.cpu_count() or 1
    torch.set_num_threads(cpus)  # as a trial asking for every CPU gets
    load_before = os.getloadavg()

    train = [in_process(options(args, data, s), work / "train" / str(s)) for s in range(args.runs)]
    command = [as_command(options(args, data, s), work / "cmd" / str(s)) for s in range(args.runs)]

    t0 = time.perf_counter()
    start_ray(num_cpus=cpus)
    ray_start = time.perf_counter() - t0
    from training.tune_trial import trial_config

    plan = {
        f"run{s}": trial_config(options(args, data, s), work / "tune" / str(s), device="cpu")
        for s in range(args.runs)
    }
    t0 = time.perf_counter()
    outcome = execute(plan, work / "tune", Resources(cpus=float(cpus), gpus=0.0), say=print)
    tune_wall = time.perf_counter() - t0
    t0 = time.perf_counter()
    ray.shutdown()
    ray_stop = time.perf_counter() - t0
    if set(outcome.values()) != {"finished"}:
        sys.exit(f"the Tune runs did not all finish: {outcome}")
    same = all(
        json.loads((work / "tune" / f"{s}" / "summary.json").read_text())["test_acc"]
        == json.loads((work / "train" / f"{s}" / "summary.json").read_text())["test_acc"]
        for s in range(args.runs)
    )

    mean_train = statistics.fmean(train)
    result = {
        "device": f"cpu ({cpus} cores)",
        "ray": ray.__version__,
        "torch": torch.__version__,
        "runs": args.runs,
        "epochs": args.epochs,
        "preset": args.preset,
        "data": args.data_dir or f"synthetic {args.images} train / {args.images // 4} test",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "train_in_process_s": [round(t, 2) for t in train],
        "rftrain_command_s": [round(t, 2) for t in command],
        "ray_start_s": round(ray_start, 2),
        "tune_wall_s": round(tune_wall, 2),
        "ray_shutdown_s": round(ray_stop, 2),
        "tune_per_run_s": round(tune_wall / args.runs, 2),
        "tune_overhead_per_run_s": round(tune_wall / args.runs - mean_train, 2),
        "rftrain_overhead_per_run_s": round(statistics.fmean(command) - mean_train, 2),
        "same_test_accuracy": same,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
