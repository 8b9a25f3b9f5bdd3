"""scripts/gpu_campaign.sh: the GPU campaign end to end on the CPU (--smoke) on a tiny
synthetic set, so the first GPU minutes are not spent on a typo."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, JpegImagePlugin

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "training"))
from train_synth import TINY_MODEL, write_pickles  # noqa: E402


def _campaign_module():
    spec = importlib.util.spec_from_file_location(
        "gpu_campaign", ROOT / "scripts" / "gpu_campaign.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_campaign_runs_end_to_end_on_the_cpu(tmp_path):
    data = write_pickles(tmp_path / "data")
    model = tmp_path / "tiny.py"
    model.write_text(TINY_MODEL)
    results, runs = tmp_path / "results", tmp_path / "runs"
    env = {**os.environ, "PY": sys.executable, "DATA": str(data), "PYTHONPATH": str(ROOT)}
    cmd = ["bash", str(ROOT / "scripts" / "gpu_campaign.sh"), "--smoke", "--model", f"{model}:Tiny"]
    cmd += ["--results", str(results), "--runs-dir", str(runs)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (out,) = results.iterdir()
    assert out.name.startswith("gpu-campaign-cpu") and out.name.endswith("-smoke")
    campaign = json.loads((out / "campaign.json").read_text())
    assert campaign["smoke"] and campaign["device"].startswith("cpu")
    assert campaign["steps"]["data"]["train_images"] == 60
    # 1. the benchmark: each part of a step, and two training processes at once
    assert campaign["steps"]["bench"]["status"] == "done"
    bench = json.loads((out / "bench.json").read_text())
    parts = bench["breakdown"]["ms_per_batch"]
    assert set(parts) == {"data", "augmentation", "forward", "backward", "optimizer", "eval"}
    assert all(ms > 0 for ms in parts.values())
    k2 = bench["concurrent"]["runs"]["2"]
    assert len(k2["per_run_images_per_s"]) == 2 and k2["images_per_s"] > 0
    # 2./3. one run of each recipe, at once; each record says how it was trained
    assert campaign["steps"]["runs"]["status"] == "done"
    rows = json.loads((out / "runs.json").read_text())["runs"]
    assert sorted((r["model"], r["status"]) for r in rows) == [
        ("s9-assignment", "finished"),
        ("s9-previous", "finished"),
    ]
    lr = {r["config"]["recipe"]: r["config"]["lr"] for r in rows}
    assert lr == {"assignment": 0.005, "previous": 0.05}
    assert all(len(r["epochs"]) == 1 and "test_loss" in r["epochs"][0] for r in rows)
    stats = campaign["recipes"]["assignment"]
    assert stats["finished"] == 1 and stats["best_test_acc"] == [rows[0]["best_test_acc"]]
    assert campaign["report"] == {"best_test_acc": 0.8722, "best_epoch": 95, "first_85_epoch": 59}
    # 4. the best assignment run's weights, loadable into the model, under 1 MB
    weights = campaign["steps"]["weights"]
    assert weights["status"] == "saved" and weights["bytes"] < 1_000_000
    state = torch.load(out / weights["file"], weights_only=True)
    spec = importlib.util.spec_from_file_location("tiny", model)
    tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny)
    tiny.Tiny().load_state_dict(state)


def test_the_recompressed_copy_is_quality_75_as_the_shared_one(tmp_path):
    # The shared JPEG copy's files carry the IJG quality-75 tables with 4:2:0 chroma (read from
    # them); the copy compressed once more must be made the same way.
    data = write_pickles(tmp_path / "data", n_train=20, n_test=10)
    copy = _campaign_module().recompressed_copy(str(data), None, tmp_path / "twice")
    files = sorted((copy / "train").glob("*/*.jpg"))
    assert len(files) == 20 and len(list((copy / "test").glob("*/*.jpg"))) == 10
    reference = Image.new("RGB", (32, 32), (90, 120, 200))
    buf = tmp_path / "ref.jpg"
    reference.save(buf, quality=75)  # PIL's quality 75: the IJG tables scaled to 75
    with Image.open(buf) as ref, Image.open(files[0]) as im:
        assert im.quantization == ref.quantization
        assert JpegImagePlugin.get_sampling(im) == 2  # 4:2:0
    from training.data import load_cifar10

    before, after = load_cifar10(data), load_cifar10(copy)
    assert sorted(before.train_y.tolist()) == sorted(after.train_y.tolist())
    diff = np.abs(before.test_x.astype(int) - after.test_x.astype(int))
    assert 0 < diff.mean() < 20  # changed by the compression, not replaced


def test_the_runs_stop_at_the_deadline_and_are_still_collected(tmp_path, monkeypatch):
    import argparse
    import time

    campaign = _campaign_module()
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    data = write_pickles(tmp_path / "data")
    model = tmp_path / "tiny.py"
    model.write_text(TINY_MODEL)
    args = argparse.Namespace(epochs=500, batch_size=16, smoke=True, model=f"{model}:Tiny")
    spec = campaign.sweep_spec(
        args, tmp_path / "runs", tmp_path / "runs.json", (str(data), None), {"assignment": 1}
    )
    t0 = time.time()
    clock = campaign.Clock(budget=6, started=t0)
    step = campaign.run_sweep(spec, tmp_path / "sweep.json", 1, "cpu", clock)
    assert step["status"].startswith("stopped at the deadline")
    assert time.time() - t0 < 60  # stopped, not run to the end
    (row,) = json.loads((tmp_path / "runs.json").read_text())["runs"]
    assert row["status"] in ("missing", "unfinished") and row["model"] == "s9-assignment"


def test_bad_campaign_arguments_are_one_line(tmp_path):
    script = str(ROOT / "scripts" / "gpu_campaign.py")
    for extra, expected in (
        (["--assignment-seeds", "0"], "--assignment-seeds must be at least 1"),
        (["--concurrent", "0"], "--runs-per-device and --concurrent counts must be at least 1"),
    ):
        proc = subprocess.run(
            [sys.executable, script, "--data-dir", str(tmp_path), *extra],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 2 and expected in proc.stderr and "Traceback" not in proc.stderr
