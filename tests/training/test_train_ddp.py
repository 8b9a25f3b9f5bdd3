"""rftrain under torchrun: 2 gloo processes on the CPU train one model into one run folder,
with the numbers of a single process that uses the same global batch.

The equality needs a model whose forward does not depend on how the batch is split: BatchNorm
normalizes with per-process batch statistics (SyncBatchNorm would share them, but torch runs
it on GPUs only) and dropout draws a different mask per process. So this test's model uses
GroupNorm (per image) and no dropout, and augmentation is off (each process draws its own).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]

NO_BN = """
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.gn = nn.GroupNorm(2, 8)
        self.c2 = nn.Conv2d(8, 16, 3, padding=1, stride=2)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.gn(self.c1(x))), 2)
        return F.log_softmax(self.fc(F.relu(self.c2(x)).mean((2, 3))), 1)
"""


TORCHRUN = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def rftrain(
    prefix: list[str], model: Path, data: Path, out: Path, *extra: str
) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        *prefix,
        "-m",
        "training",
        "--model",
        f"{model}:Net",
        "--data-dir",
        str(data),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--epochs",
        "2",
        "--batch-size",
        "12",
        "--no-augment",
        "--fast",
        "--no-progress",
        "--seed",
        "5",
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_two_gloo_processes_equal_one_and_resume(tmp_path, pickles):
    """Two processes, stopped after epoch 1 and resumed (both under torchrun), end where one
    process does in one go."""
    model = tmp_path / "nobn.py"
    model.write_text(NO_BN)
    one = rftrain([], model, pickles, tmp_path / "one")
    two = tmp_path / "two"
    first = rftrain(TORCHRUN, model, pickles, two, "--stop-after", "1")
    assert first.stdout.count("stopped (continue with --resume): 1 epochs") == 1
    assert not json.loads((two / "summary.json").read_text())["finished"]
    again = rftrain(TORCHRUN, model, pickles, two, "--resume")
    # One writer: one 'done', one line per epoch, one run folder with one set of files.
    assert again.stdout.count("done: 2 epochs") == 1 and again.stdout.count("epoch   2") == 1
    assert "epoch   1" not in again.stdout
    assert sorted(os.listdir(two)) == sorted(os.listdir(tmp_path / "one"))
    s1 = json.loads((tmp_path / "one" / "summary.json").read_text())
    s2 = json.loads((two / "summary.json").read_text())
    assert (s1["world_size"], s2["world_size"]) == (1, 2) and "done: 2 epochs" in one.stdout
    assert s2["finished"] and s2["train_images"] == 60 and s2["epochs_done"] == 2
    h1 = json.loads((tmp_path / "one" / "history.json").read_text())
    h2 = json.loads((two / "history.json").read_text())
    assert [r["train_images"] for r in h2] == [60, 60]  # both shards counted once
    for a, b in zip(h1, h2):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-5
        assert abs(a["test_loss"] - b["test_loss"]) < 1e-5
        assert (a["lr_start"], a["lr_end"]) == (b["lr_start"], b["lr_end"])
    w1 = torch.load(tmp_path / "one" / "last.pt", weights_only=True)["trainer"]["model"]
    w2 = torch.load(two / "last.pt", weights_only=True)["trainer"]["model"]
    assert w1.keys() == w2.keys()
    assert all(torch.allclose(w1[k], w2[k], atol=1e-5) for k in w1)


def test_global_batch_shards_cover_each_batch_once():
    from training.distributed import GlobalBatchShard, World

    base = list(range(10, 23))  # 13 indices, global batch 4, 2 ranks: padded to 14
    shards = [list(GlobalBatchShard(base, 4, World(rank=r, size=2))) for r in (0, 1)]
    # global batches [10..13], [14..17], [18..21], [22, 10 (wrapped)]: halves per rank
    assert shards[0] == [10, 11, 14, 15, 18, 19, 22]
    assert shards[1] == [12, 13, 16, 17, 20, 21, 10]
