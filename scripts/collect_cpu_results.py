"""Collect the CPU stand-in runs of scripts/cpu_experiments.sh into one small JSON for the book.

Reads each run folder's summary.json and history.json (written by rftrain) and records, per
run, what the book shows: command, device, torch, data, epochs, images, params, per-epoch test
accuracy, best test accuracy, wall time and training images per second. Runs that are missing
or unfinished are listed under "missing" instead of being guessed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

from training.fsutil import write_json


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the platform's name where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_record(folder: Path) -> dict[str, Any] | None:
    """One finished run's record, or None if the folder holds no finished run."""
    summary_file = folder / "summary.json"
    if not summary_file.is_file():
        return None
    s = json.loads(summary_file.read_text())
    if not s.get("finished"):
        return None
    history = json.loads((folder / "history.json").read_text())
    train_s = sum(h["train_seconds"] for h in history)
    return {
        "run": str(folder),
        "command": s["command"],
        "torch": s["torch"],
        "data": s["data"],
        "path": s["path"],
        "seed": s["config"]["seed"],
        "epochs": s["epochs_done"],
        "train_images": s["train_images"],
        "test_images": s["test_images"],
        "params": s["params"],
        "test_acc": [h["test_acc"] for h in history],
        "best_test_acc": s["best_test_acc"],
        "wall_seconds": s["wall_seconds"],
        # over all epochs: training images seen / seconds spent training (test time excluded)
        "train_images_per_s": round(s["train_images"] * len(history) / train_s, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default="runs", help="the runs folder of cpu_experiments.sh")
    p.add_argument("--out", default="book/results/cpu-experiments.json")
    p.add_argument("--variants", nargs="*", default=[])
    p.add_argument("--repeats", nargs="*", default=[],
                   help="runs of a variant again with another seed (folders under exp-cpu)")
    a = p.parse_args(argv)
    runs = Path(a.runs)
    wanted = {"s9": runs / "s9-cpu-5ep"} | {v: runs / "exp-cpu" / v
                                            for v in [*a.variants, *a.repeats]}
    records, missing = {}, []
    for key, folder in wanted.items():
        rec = run_record(folder)
        if rec is None:
            missing.append(key)
        else:
            records[key] = rec
    result = {
        "about": "short CPU stand-in runs made by scripts/cpu_experiments.sh",
        "device": f"{cpu_model()}, {os.cpu_count()} cores, CPU only",
        "data": "CIFAR-10 (the JPEG copy, data/cifar10-jpeg: 50,000 train / 10,000 test)",
        "s9": records.pop("s9", None),
        "variants": {k: r for k, r in records.items() if k not in a.repeats},
        "repeats": {k: r for k, r in records.items() if k in a.repeats},
        "missing": missing,
    }
    write_json(a.out, result)
    print(f"wrote {a.out}: {len(records)} runs of variants"
          + (f", missing: {', '.join(missing)}" if missing else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
