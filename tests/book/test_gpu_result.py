"""scripts/gpu_result.py: the small JSON the book and README quote, from a run folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_result.py"


def _summary(seed: int) -> dict:
    return {
        "command": "rftrain --device cuda --epochs 3",
        "device": "NVIDIA H200",
        "world_size": 1,
        "torch": "2.11.0+cu130",
        "data": "data/cifar10-jpeg",
        "data_digest": "ab12",
        "train_images": 50000,
        "test_images": 10000,
        "data_decode_seconds": 0.4,
        "path": "tensor (fast)",
        "params": 190509,
        "schedule": {"lr": "one-cycle", "momentum": "fixed 0.9"},
        "epochs_done": 3,
        "finished": True,
        "test_acc": [0.5, 0.84, 0.86],
        "best_test_acc": 0.86,
        "wall_seconds": 7.5,
        "time_to_85_seconds": 6.25,
        "train_images_per_s": 27000.0,
        "config": {"seed": seed, "epochs": 3},
        "loss": "nll",  # not carried over: the JSON keeps what the book and README quote
    }


def _go(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_result_carries_the_run_record_and_the_benchmark(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    summary = _summary(seed=2)
    (run / "summary.json").write_text(json.dumps(summary))
    done = _go(str(run))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"result: {run / 'result.json'}: best test accuracy 86.00%, 85% after 6 s, 8 s in all"
    )
    result = json.loads((run / "result.json").read_text())
    assert result["seed"] == 2 and "throughput" not in result
    assert "loss" not in result and "config" not in result
    assert {k: result[k] for k in result if k != "seed"} == {
        k: v for k, v in summary.items() if k not in ("loss", "config")
    }
    # With the benchmark's file beside it, its figures come along; an explicit target.
    bench = {
        "pipeline_images_per_s": {"a": 1.0},
        "train_images_per_s": {"b": 2.0},
        "amp_bf16": True,
        "channels_last": True,
        "compile": False,
        "page_faults_per_step": {"b": 0},
    }
    (run / "throughput.json").write_text(json.dumps(bench))
    assert _go(str(run), str(tmp_path / "r.json")).returncode == 0
    again = json.loads((tmp_path / "r.json").read_text())
    assert again["throughput"] == {k: v for k, v in bench.items() if k != "page_faults_per_step"}


def test_never_reached_and_bad_arguments(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    summary = dict(_summary(seed=1), time_to_85_seconds=None)
    (run / "summary.json").write_text(json.dumps(summary))
    assert "85% after never," in _go(str(run)).stdout
    missing = _go(str(tmp_path))
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr == (
        f"gpu_result.py: {tmp_path / 'summary.json'} is missing: not a run folder\n"
    )
    usage = _go()
    assert usage.returncode == 2 and usage.stderr.startswith("usage:")
