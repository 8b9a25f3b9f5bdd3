"""scripts/gpu_result.py: the small JSON the book and README quote, from a run folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_result.py"


def _summary(seed: int) -> dict:
    """A run record as rftrain writes it (schema 2), trimmed to 3 epochs."""
    return {
        "schema": 2,
        "command": "rftrain --device cuda --epochs 3",
        "finished": True,
        "device": "NVIDIA H200",
        "world_size": 1,
        "torch": "2.11.0+cu130",
        "versions": {"torch": "2.11.0+cu130", "albumentations": None, "git_commit": None},
        "data": "data/cifar10-jpeg",
        "data_digest": "ab12",
        "data_decode_seconds": 0.4,
        "train_images": 50000,
        "test_images": 10000,
        "path": "tensor (fast)",
        "loss": "nll",
        "params": 190509,
        "recipe": "assignment",
        "departures": {"epochs": 3},
        "config": {"seed": seed, "epochs": 3, "amp": True, "aug": {"cutout_p": 0.2}},
        "schedule": {"lr": "one-cycle", "momentum": "cycled"},
        "epochs_done": 3,
        "test_acc": [0.5, 0.84, 0.86],
        "best_test_acc": 0.86,
        "best_epoch": 3,
        "wall_seconds": 7.5,
        "time_to_85_seconds": 6.25,
        "train_images_per_s": 27000.0,
        "history": [
            {"epoch": e, "train_loss": 1.0 / e, "test_loss": 1.1 / e, "test_acc": a}
            for e, a in ((1, 0.5), (2, 0.84), (3, 0.86))
        ],
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
    # the whole record is kept: how it was trained (recipe, config, versions) and the curve
    assert {k: result[k] for k in result if k != "seed"} == summary
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


def test_an_older_record_without_the_newer_keys_is_kept_as_it_is(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    old = {
        k: v
        for k, v in _summary(seed=1).items()
        if k not in ("schema", "versions", "recipe", "departures", "best_epoch", "history")
    }
    (run / "summary.json").write_text(json.dumps({**old, "stray": 1}))
    assert _go(str(run)).returncode == 0
    result = json.loads((run / "result.json").read_text())
    assert {k: result[k] for k in result if k != "seed"} == old  # not "stray": not the schema's
