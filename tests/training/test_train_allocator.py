"""The malloc settings: applied by the entry points (not on import), on with glibc, off on
request, same numbers."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

STEP = """
import torch, training
from training.allocator import malloc_tuned, tune_malloc
assert not malloc_tuned()  # importing the package leaves malloc alone
tune_malloc()  # what rftrain's main and train_run do
torch.manual_seed(0)
m = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
                        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 10))
opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
x, y = torch.randn(256, 3, 32, 32), torch.randint(0, 10, (256,))
for _ in range(2):
    loss = torch.nn.functional.cross_entropy(m(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
flat = torch.cat([p.detach().flatten() for p in m.parameters()])
print(malloc_tuned(), flat.double().sum().item().hex(), flat.abs().double().sum().item().hex())
"""


def run(env_extra: dict) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RFTRAIN_MALLOC"}
    env.update(PYTHONPATH=str(ROOT), **env_extra)
    out = subprocess.run(
        [sys.executable, "-c", STEP],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=True,
    ).stdout.split()
    return out[0], out[1] + out[2]


@pytest.mark.skipif(not GLIBC, reason="the settings apply to glibc only")
def test_applied_by_the_entry_points_and_same_numbers():
    tuned, weights = run({})
    plain, weights_plain = run({"RFTRAIN_MALLOC": "system"})
    assert (tuned, plain) == ("True", "False")
    assert weights == weights_plain  # bit for bit: the allocator changes no arithmetic


def test_no_op_reported_off_glibc(monkeypatch):
    from training import allocator

    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("musl", "1.2"))
    assert allocator.tune_malloc() is False and not allocator.malloc_tuned()


def test_rftrain_and_train_run_apply_it(monkeypatch):
    import training.cli
    import training.run

    calls = []
    monkeypatch.setattr(training.cli, "tune_malloc", lambda: calls.append("rftrain"))
    monkeypatch.setattr(training.run, "tune_malloc", lambda: calls.append("train_run"))
    # no data folder: refused after the settings were applied (before anything is loaded)
    assert training.cli.main(["--preset", "s9", "--out", "x"]) == 2
    with pytest.raises(AttributeError):  # no config: the settings come first all the same
        training.run.train_run(lambda: None, None, None, "x", device=None, world=object())
    assert calls == ["rftrain", "train_run"]


def test_importing_the_package_leaves_malloc_alone():
    env = {k: v for k, v in os.environ.items() if k != "RFTRAIN_MALLOC"}
    code = "import training, training.cli, training.run, training.sweep\n"
    code += "from training.allocator import malloc_tuned; print(malloc_tuned())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        timeout=120,
        check=True,
    ).stdout
    assert out.split() == ["False"]
