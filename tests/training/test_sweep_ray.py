"""rfsweep on Ray Tune (one embedded Ray session for the module, 2 CPUs, dashboard off): a 2x2
sweep of tiny CPU runs killed mid-way (SIGKILL to the sweep and its Ray processes) and started
again restores its Tune experiment, trains no finished run again and ends with the numbers of
an uninterrupted sweep; a worker killed inside a run is retried from the run's last epoch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from train_synth import TINY_MODEL, write_pickles

from training.sweep import main
from training.tune_trial import run_lock

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[2]
TIMING = ("train_seconds", "images_per_s", "test_seconds", "compile_seconds")
KEYS = ["nll/default/seed1", "nll/default/seed2", "ce/default/seed1", "ce/default/seed2"]

# Tiny with a trap: the first time it trains its 2nd batch of epoch 2 (3 batches of 16 an
# epoch), once epoch 1's last.pt is on disk, its worker process dies as if the OOM killer took
# it. Same layers, same init order, no random draw: Tiny's numbers.
TRAP_MODEL = (
    TINY_MODEL
    + """

import os
import signal
import time
from pathlib import Path

import torch


class Trap(Tiny):
    def __init__(self):
        super().__init__()
        self.steps = 0

    def forward(self, x):
        if self.training and torch.is_grad_enabled() and len(x) == 16:
            self.steps += 1
            trap = Path(os.environ["RFSWEEP_TEST_TRAP"])
            if self.steps == 5 and not (trap / "sprung").exists():
                last = trap / "runs/nll/default/seed1/last.pt"
                for _ in range(600):  # the writer thread saves it during epoch 2
                    if last.exists():
                        break
                    time.sleep(0.05)
                os.close(os.open(trap / "sprung", os.O_CREAT | os.O_EXCL))
                os.kill(os.getpid(), signal.SIGKILL)
        return super().forward(x)
"""
)


@pytest.fixture(scope="module")
def material(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("material")
    (root / "tiny.py").write_text(TRAP_MODEL)
    return write_pickles(root / "data"), root / "tiny.py"


def sweep_file(folder: Path, material, models: dict | None = None, seeds=(1, 2)) -> Path:
    data, model = material
    spec = {
        "name": "tiny",
        "out": str(folder / "runs"),
        "result": str(folder / "r.json"),
        "data_dir": str(data),
        "common": {"epochs": 3, "batch_size": 16, "fast": True},
        # ce trains longer: when the first run is done, another is mid-way
        "models": models
        or {
            "nll": {"model": f"{model}:Tiny"},
            "ce": {"model": f"{model}:logits", "options": {"epochs": 5}},
        },
        "seeds": list(seeds),
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sweep.json"
    path.write_text(json.dumps(spec))
    return path


def numbers(result: dict) -> dict:
    """Each run's per-epoch numbers, the timings left out."""
    return {
        f"{r['model']}/{r['recipe']}/seed{r['seed']}": [
            {k: v for k, v in e.items() if k not in TIMING} for e in r["epochs"]
        ]
        for r in result["runs"]
    }


@pytest.fixture(scope="module")
def uninterrupted(ray_session, material, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("whole")
    assert main([str(sweep_file(folder, material)), "--cpus-per-run", "1"]) == 0
    return json.loads((folder / "r.json").read_text())


def test_uninterrupted_sweep_records_ray_and_resources(uninterrupted):
    from importlib.metadata import version

    assert uninterrupted["ray"]["version"] == version("ray") == ray.__version__
    assert uninterrupted["ray"]["cpus_per_run"] == 1 and uninterrupted["ray"]["gpus_per_run"] == 0
    runs = uninterrupted["runs"]
    assert [f"{r['model']}/{r['recipe']}/seed{r['seed']}" for r in runs] == KEYS
    assert [r["epochs_done"] for r in runs] == [3, 3, 5, 5]
    assert all(r["status"] == "finished" and r["trials"] == 1 for r in runs)
    assert all(r["ray"] == ray.__version__ for r in runs)
    assert all(r["resources"]["cpu"] == 1 and r["resources"]["gpu"] == 0 for r in runs)
    assert [r["loss"] for r in runs] == ["nll", "nll", "ce", "ce"]
    assert [r["config"]["seed"] for r in runs] == [1, 2, 1, 2]
    # two seeds, two runs: not one run recorded twice
    assert numbers(uninterrupted)[KEYS[0]] != numbers(uninterrupted)[KEYS[1]]
    # the README's metrics and TensorBoard logs (tensorboardX, pinned): each run's trial
    # folder in the experiment holds Tune's progress.csv and an event file
    out = Path(runs[0]["dir"]).parents[2]
    for key in KEYS:
        (trial,) = (out / "tune").glob(f"sweep-*/{key.replace('/', '--')}")
        assert (trial / "progress.csv").is_file(), sorted(p.name for p in trial.iterdir())
        assert list(trial.glob("events.out.tfevents.*")), sorted(p.name for p in trial.iterdir())


def test_bad_input_found_in_training_is_one_failure_not_retried(
    ray_session, material, tmp_path, capsys
):
    """A data folder that passes the check before Ray (it has train/) but holds no images:
    rftrain's one line, once; the run is failed, not tried again (--max-failures 2)."""
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    models = {"nll": {"model": f"{material[1]}:Tiny"}}
    path = sweep_file(tmp_path, (empty, material[1]), models=models, seeds=(1,))
    assert main([str(path), "--cpus-per-run", "1", "--max-failures", "2"]) == 1
    out = capsys.readouterr().out
    assert f"FAIL  nll/default/seed1: failed: rftrain: error: {empty / 'train'} has no" in out
    trial = json.loads((tmp_path / "runs/nll/default/seed1/trial.json").read_text())
    assert len(trial["attempts"]) == 1, trial
    assert json.loads((tmp_path / "r.json").read_text())["runs"][0]["status"] == "missing"


def _wait_for_lock(path: Path) -> None:
    import fcntl

    if not path.exists():
        return
    with open(path) as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # the kernel frees it when its holder dies
        fcntl.flock(fh, fcntl.LOCK_UN)


def _state(runs: Path) -> dict[str, str]:
    from training.tune_trial import run_status

    return {key: run_status(runs / key) for key in KEYS}


def test_a_killed_sweep_restores_and_loses_nothing(
    ray_session, material, tmp_path, capsys, uninterrupted
):
    sweep = sweep_file(tmp_path, material)
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "training.sweep", str(sweep), "--cpus-per-run", "1"],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its group: the sweep and the Ray it started
    )
    deadline = time.time() + 300
    state = _state(runs)
    # kill when one run is done and another mid-way (its last.pt written, not finished)
    while time.time() < deadline and proc.poll() is None:
        state = _state(runs)
        if "finished" in state.values() and "interrupted" in state.values():
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # Ray's workers have process groups of their own and die a moment after their raylet:
    # until then one may still write its run (and holds the run's lock)
    for key in KEYS:
        _wait_for_lock(run_lock(runs / key))
    state = _state(runs)  # what the kill left (a run may have finished meanwhile)
    assert "finished" in state.values() and set(state.values()) != {"finished"}, state
    done_before = {
        k: (runs / k / "summary.json").read_bytes() for k, v in state.items() if v == "finished"
    }

    assert main([str(sweep), "--cpus-per-run", "1"]) == 0
    said = capsys.readouterr().out
    assert "restore the Tune experiment" in said  # Tuner.restore, not a new experiment
    result = json.loads((tmp_path / "r.json").read_text())
    assert all(r["status"] == "finished" for r in result["runs"])
    assert numbers(result) == numbers(uninterrupted)  # every epoch, every number
    for key, summary in done_before.items():  # finished before the kill: not trained again
        assert (runs / key / "summary.json").read_bytes() == summary
        attempts = json.loads((runs / key / "trial.json").read_text())["attempts"]
        assert len(attempts) == 1, (key, attempts)
    for key in set(KEYS) - set(done_before):
        attempts = json.loads((runs / key / "trial.json").read_text())["attempts"]
        trained = [e for a in attempts for e in a["epochs"]]
        # trained again: at most the epoch the kill cut short
        assert len(trained) - len(set(trained)) <= 1, (key, attempts)
        if state[key] == "interrupted":
            assert len(attempts) == 2 and attempts[1]["status_before"] == "interrupted"

    # started once more: nothing left to run, the JSON written again with the same numbers
    assert main([str(sweep)]) == 0
    assert capsys.readouterr().out.count("skip ") == 4
    assert numbers(json.loads((tmp_path / "r.json").read_text())) == numbers(result)


def test_a_worker_killed_mid_run_resumes_from_its_last_epoch(
    ray_session, material, capsys, uninterrupted
):
    trap = ray_session
    model = material[1]
    sweep = sweep_file(trap, material, models={"nll": {"model": f"{model}:Trap"}}, seeds=[1])
    assert main([str(sweep), "--max-failures", "1"]) == 0
    said = capsys.readouterr().out
    assert (trap / "sprung").exists()  # the worker did die in epoch 2
    assert said.count("retry nll/default/seed1") == 1
    attempts = json.loads((trap / "runs/nll/default/seed1/trial.json").read_text())
    # the first attempt got through epoch 1; the retry resumed from last.pt after it
    assert [a["epochs"] for a in attempts["attempts"]] == [[1], [2, 3]]
    assert attempts["attempts"][1]["status_before"] == "interrupted"
    result = json.loads((trap / "r.json").read_text())
    assert result["runs"][0]["status"] == "finished" and result["runs"][0]["trials"] == 2
    assert numbers(result)["nll/default/seed1"] == numbers(uninterrupted)["nll/default/seed1"]
