"""rfsweep's sweep file, its checks before the first run, --list, the result table and the
command line's bad input: everything but the Ray execution (tests/training/test_sweep_ray.py)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rfkit_base.commandline import UserError
from training.sweep import load_sweep, main

ROOT = Path(__file__).resolve().parents[2]


def write_sweep(tmp_path: Path, data: Path, model: Path, **extra) -> Path:
    spec = {
        "name": "tiny",
        "out": str(tmp_path / "runs"),
        "result": str(tmp_path / "r.json"),
        "data_dir": str(data),
        "common": {"epochs": 2, "batch_size": 16, "fast": True, "workers": 0},
        "models": {"nll": {"model": f"{model}:Tiny"}, "ce": {"model": f"{model}:logits"}},
        "seeds": [1, 2],
        **extra,
    }
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(spec))
    return path


def test_sweep_entries_for_the_assignments_ablations(tmp_path, pickles, tiny_model):
    sweep = write_sweep(
        tmp_path,
        pickles,
        tiny_model,
        recipes={
            "onecycle": {},
            "fixed-lr-0.1": {"schedule": "constant", "lr": 0.1, "momentum_schedule": "fixed"},
            "groupnorm": {"norm": "group"},
            "layernorm": {"norm": "layer"},
            "l1": {"l1": 1e-5},
        },
        seeds=[1],
    )
    s = load_sweep(sweep)
    assert len(s.runs) == 2 * 5
    run = next(r for r in s.runs if r.recipe == "fixed-lr-0.1" and r.model == "ce")
    from training.sweep import rftrain_command

    cmd = rftrain_command(s, run)
    assert cmd[0] == "rftrain"
    assert cmd[cmd.index("--schedule") + 1] == "constant" and cmd[cmd.index("--lr") + 1] == "0.1"
    assert "--fast" in cmd and cmd[cmd.index("--seed") + 1] == "1"
    assert cmd[cmd.index("--out") + 1].endswith("runs/ce/fixed-lr-0.1/seed1")
    # a trial runs in its own folder, maybe on another node: its paths are absolute
    assert cmd[cmd.index("--model") + 1] == f"{tiny_model.absolute()}:logits"
    assert cmd[cmd.index("--data-dir") + 1] == str(pickles.absolute())


def test_trial_paths_are_absolute_and_import_targets_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "mine.py").write_text("")
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps(
            {
                "out": "runs",
                "data_dir": "data",
                "data_cache": "data.npz",
                "models": {
                    "mine": {"model": "nets/mine.py:Net"},
                    "zoo": {"model": "torchvision.models:resnet18"},
                    "s9": {"preset": "s9"},
                },
            }
        )
    )
    sweep = load_sweep(path)
    mine, zoo, s9 = (sweep.trial_options(r) for r in sweep.runs)
    assert mine["model"] == f"{tmp_path}/nets/mine.py:Net"
    assert zoo["model"] == "torchvision.models:resnet18"  # a module path, not a file
    assert s9["preset"] == "s9" and "model" not in s9
    assert mine["data_dir"] == f"{tmp_path}/data" and mine["data_cache"] == f"{tmp_path}/data.npz"


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"out": "x", "data_dir": "d"}, "'models' is missing"),
        ({"out": "x", "data_dir": "d", "models": {"a": {}}}, "needs exactly one of"),
        (
            {"out": "x", "data_dir": "d", "models": {"a": {"preset": "s9"}}, "seeds": ["1"]},
            "'seeds' must be a list of integers",
        ),
        (
            {"out": "x", "data_dir": "d", "models": {"a": {"preset": "s9"}}, "typo": 1},
            "unknown keys typo",
        ),
    ],
)
def test_bad_sweep_files(tmp_path, spec, expected):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(UserError, match=expected):
        load_sweep(path)


def test_netbuilder_variant_is_exported_once(tmp_path, monkeypatch):
    from training.models import load_model
    from training.sweep import export_variants

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps(
            {
                "out": str(tmp_path / "runs"),
                "data_dir": "d",
                "models": {"v": {"variant": "dws-dilated-skip-x2", "budget": 150000}},
            }
        )
    )
    sweep = load_sweep(path)
    assert sweep.runs[0].target == {"model": str(tmp_path / "runs" / "models" / "v.py")}
    export_variants(sweep)
    target = tmp_path / "runs" / "models" / "v.py"
    params = sum(p.numel() for p in load_model(str(target)).parameters())
    assert 100_000 < params <= 150_000
    stamp = target.stat().st_mtime_ns
    export_variants(sweep)  # kept for resumed runs: not rewritten
    assert target.stat().st_mtime_ns == stamp


def test_list_into_a_closed_pipe_is_quiet(tmp_path, pickles, tiny_model):
    """`rfsweep S.json --list | head -1`: the reader stops early; no traceback, status 0."""
    sweep = write_sweep(tmp_path, pickles, tiny_model, seeds=list(range(1, 40)))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "training.sweep", str(sweep), "--list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    proc.stdout.close()  # nobody reads: every write meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err, err


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--runs-per-device", "0"], "--runs-per-device must be at least 1, got 0"),
        (["--runs-per-device", "two"], "argument --runs-per-device: invalid int value: 'two'"),
        (["--devices", "cuda:0"], "--devices 'cuda:0': give GPU indices or cpu"),
        (["--gpus-per-run", "1.5"], "--gpus-per-run 1.5: give a fraction of one"),
        (["--gpus-per-run", "-1"], "--gpus-per-run -1: give a fraction of one"),
        (["--gpus-per-run", "lots"], "argument --gpus-per-run: invalid number: 'lots'"),
        (["--cpus-per-run", "0"], "--cpus-per-run 0: give a fraction of one"),
        (["--max-failures", "-1"], "--max-failures must be 0 or more, got -1"),
        (["--devices", "0", "--address", "head:6379"], "--devices chooses GPUs of Ray started"),
    ],
)
def test_bad_placement_is_one_line(tmp_path, pickles, tiny_model, capsys, argv, expected):
    sweep = write_sweep(tmp_path, pickles, tiny_model)
    with pytest.raises(SystemExit) if "argument" in expected else contextlib.nullcontext():
        assert main([str(sweep), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rfsweep: error: ") and expected in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()


def test_gpu_and_cpu_shares():
    from training.sweep import _gpus_of
    from training.tune_sweep import check_share

    for ok in (0.25, 0.5, 1, 2):
        assert check_share(ok, "gpus") == ok
    assert check_share(0, "gpus") == 0  # the CPU
    for bad in (1.5, -0.5):
        with pytest.raises(UserError):
            check_share(bad, "gpus")
    with pytest.raises(UserError):
        check_share(0, "cpus")
    assert _gpus_of("cpu", None) == "" and _gpus_of("0, 2", None) == "0,2"
    assert _gpus_of(None, "head:6379") is None


@pytest.mark.parametrize("argv", [["--list"], ["--devices", "cpu"]])
@pytest.mark.parametrize("missing", ["data", "model"])
def test_missing_data_or_model_file_is_one_line_before_ray(
    tmp_path, pickles, tiny_model, capsys, monkeypatch, argv, missing
):
    """A data folder or model file that is not there: one line naming the first run, status
    2, before Ray starts (it would fail every trial, and retry each)."""
    from training import tune_sweep

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray started")

    monkeypatch.setattr(tune_sweep, "ray_session", no_ray)
    gone = tmp_path / "gone"
    if missing == "data":
        sweep = write_sweep(tmp_path, gone, tiny_model)
        expected = f"run nll/default/seed1: data folder {gone} does not exist"
    else:
        sweep = write_sweep(tmp_path, pickles, gone / "net.py")
        expected = f"run nll/default/seed1: {gone}/net.py"
    assert main([str(sweep), *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith(f"rfsweep: error: {sweep}: {expected}"), err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "r.json").exists()


def test_a_model_file_that_does_not_load_is_refused(tmp_path, pickles, capsys):
    broken = tmp_path / "broken.py"
    broken.write_text("import torch.nn as nn\nclass Tiny(nn.Module):\n    oops(\n")
    sweep = write_sweep(tmp_path, pickles, broken)
    assert main([str(sweep), "--list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rfsweep: error: {sweep}: run nll/default/seed1: "), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bare_rfsweep_prints_its_usage_and_exits_2(capsys):
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: rfsweep")


def _sweep_file(tmp_path: Path, **spec) -> Path:
    (tmp_path / "d" / "train").mkdir(parents=True, exist_ok=True)  # checked, never read
    spec = {"out": str(tmp_path / "runs"), "data_dir": str(tmp_path / "d"), **spec}
    spec.setdefault("models", {"s9": {"preset": "s9"}})
    path = tmp_path / "s.json"
    path.write_text(json.dumps(spec))
    return path


@pytest.mark.parametrize(
    "spec, expected",
    [
        # a value rftrain's parser refuses, named with the run
        (
            {"recipes": {"quick": {"lr": "fast"}}},
            "run s9/quick/seed1: argument --lr: invalid float value: 'fast'",
        ),
        # a value the TrainConfig's own checks refuse
        ({"common": {"epochs": 0}}, "run s9/default/seed1: --epochs must be at least 1"),
        (
            {"recipes": {"c": {"schedule": "constant"}}},
            "run s9/c/seed1: --momentum-schedule cycle needs --schedule onecycle",
        ),
        # a model's own options, checked for its own runs only
        (
            {
                "models": {
                    "s9": {"preset": "s9"},
                    "big": {"preset": "s9", "options": {"batch_size": "many"}},
                }
            },
            "run big/default/seed1: argument --batch-size: invalid int value: 'many'",
        ),
        ({"common": {"ep": 3}}, "'ep' is not an rftrain option (did you mean 'epochs'?)"),
        ({"common": {"out": "elsewhere"}}, "option 'out' is set by rfsweep for each run"),
        ({"common": {"force": True}}, "option 'force' is set by rfsweep for each run"),
        ({"models": {"s9": {"preset": "s10"}}}, "model 's9': unknown preset 's10'"),
        ({"models": {"v": {"variant": "dws-x9"}}}, "model 'v': unknown variant 'dws-x9'"),
        (
            {"models": {"v": {"variant": "dws-dilated-skip-x2", "budget": "big"}}},
            "model 'v': budget must be a whole number of parameters",
        ),
    ],
)
def test_every_run_is_checked_before_the_first_starts(tmp_path, capsys, spec, expected):
    path = _sweep_file(tmp_path, **spec)
    with pytest.raises(UserError, match=re.escape(expected)):
        load_sweep(path)
    # --list checks too: one line, status 2, nothing written
    assert main([str(path), "--list", "--devices", "cpu"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"rfsweep: error: {path}: ")
    assert expected in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("what", ["models", "recipes"])
@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".", "", "a\\b", " s9", "logs", "models"])
def test_names_that_are_not_one_plain_folder_are_refused(tmp_path, what, name):
    spec = {"models": {name: {"preset": "s9"}}} if what == "models" else {"recipes": {name: {}}}
    path = _sweep_file(tmp_path, **spec)
    with pytest.raises(UserError, match=f"{what[:-1]} name"):
        load_sweep(path)
    assert main([str(path), "--devices", "cpu"]) == 2
    assert not (tmp_path / "runs").exists() and not (tmp_path / "x").exists()


def test_plain_names_are_kept(tmp_path):
    path = _sweep_file(
        tmp_path,
        models={"s9.v2": {"preset": "s9"}},
        recipes={"fixed-lr-0.1": {"schedule": "constant", "momentum_schedule": "fixed"}},
    )
    (run,) = load_sweep(path).runs
    assert run.key == "s9.v2/fixed-lr-0.1/seed1"


def test_list_never_offers_force_for_a_finished_run(tmp_path, capsys):
    path = _sweep_file(tmp_path, seeds=[1, 2, 3, 4])
    runs = tmp_path / "runs" / "s9" / "default"
    (runs / "seed1").mkdir(parents=True)
    (runs / "seed1" / "summary.json").write_text(json.dumps({"finished": True}))
    (runs / "seed2").mkdir()
    (runs / "seed2" / "last.pt").write_bytes(b"")
    (runs / "seed3").mkdir()  # stopped before its first checkpoint: started over
    (runs / "seed3" / "history.json").write_text("[]")
    assert main([str(path), "--list", "--devices", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["finished", "interrupted", "new", "new"]
    finished, interrupted, restarted, new = (line.split() for line in lines)
    assert "--force" not in finished and "--resume" not in finished
    assert "--resume" in interrupted and "--force" not in interrupted
    assert "--force" in restarted
    assert "--force" not in new and "--resume" not in new


def test_results_table_at_the_end(tmp_path, capsys):
    path = _sweep_file(tmp_path, seeds=[1, 2])
    done = tmp_path / "runs" / "s9" / "default" / "seed1"
    done.mkdir(parents=True)
    summary = {
        "finished": True,
        "epochs_done": 3,
        "best_test_acc": 0.8512,
        "best_epoch": 2,
        "test_acc": [0.7, 0.8512, 0.8499],
        "wall_seconds": 1234.4,
        "history": [],
    }
    (done / "summary.json").write_text(json.dumps(summary))
    assert main([str(path), "--collect-only", "--devices", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("model"))
    assert lines[header].split() == (
        "model recipe seed status epochs best test acc best epoch last test acc seconds".split()
    )
    assert set(lines[header - 1]) == {"="} and set(lines[header + 1]) == {"-"}
    assert lines[header + 2].split() == "s9 default 1 finished 3 85.12% 2 84.99% 1,234".split()
    assert lines[header + 3].split() == "s9 default 2 missing - - - - -".split()
    assert lines[-1] == f"1 of 2 runs finished; results in {tmp_path / 'runs' / 'sweep.json'}"


@pytest.mark.parametrize(
    "cluster, asked, expected",
    [
        # (cluster resources, (cpus, gpus, runs per device), (cpus, gpus) per run)
        ({"CPU": 16, "GPU": 1}, (None, None, None), (1, 1)),  # a GPU box: one GPU a run
        ({"CPU": 16, "GPU": 1}, (None, 0.25, None), (1, 0.25)),  # four runs share it
        # six at once: 1/6 in Ray's units of 1/10,000, rounded down (6 x 0.1667 > 1)
        ({"CPU": 16, "GPU": 1}, (2, None, 6), (2, 0.1666)),
        ({"CPU": 8}, (None, None, None), (1, 0)),  # no GPU: the CPU
        ({"CPU": 8}, (None, None, 4), (2, 0)),  # four at once on 8 CPUs
        ({"CPU": 2}, (None, 0, None), (1, 0)),
    ],
)
def test_resources_each_run_asks_for(monkeypatch, cluster, asked, expected):
    ray = pytest.importorskip("ray")
    from training.tune_sweep import Resources, resources

    monkeypatch.setattr(ray, "cluster_resources", lambda: cluster)
    assert resources(*asked) == Resources(cpus=expected[0], gpus=expected[1])


@pytest.mark.parametrize(
    "cluster, asked, expected",
    [
        ({"CPU": 8}, (None, 1, None), "--gpus-per-run 1: the Ray cluster has 0 GPUs"),
        ({"CPU": 2, "GPU": 1}, (4, None, None), "--cpus-per-run 4: the Ray cluster has 2 CPUs"),
        ({"CPU": 2, "GPU": 1}, (None, 0.5, 2), "--gpus-per-run or --runs-per-device, not both"),
    ],
)
def test_resources_the_cluster_lacks_are_refused(monkeypatch, cluster, asked, expected):
    ray = pytest.importorskip("ray")
    from training.tune_sweep import resources

    monkeypatch.setattr(ray, "cluster_resources", lambda: cluster)
    with pytest.raises(UserError, match=re.escape(expected)):
        resources(*asked)
