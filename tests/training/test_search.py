"""`rfsearch` end to end on Ray Tune (one embedded session for the module, no dashboard): a
tiny space on tiny synthetic data, on the CPU.

The data: two classes, dark and bright images with noise, which a tiny net separates
perfectly within one epoch at a sound learning rate. The space samples one small structure at
four learning rates; two of them (1e-9, 1e-8) cannot learn anything in two epochs. Trials run
one at a time in the sampled order, and the seed puts the two sound trials first. ASHA (grace
period 1, reduction factor 2) stops a trial at epoch 1 when it is below the median of the
trials already recorded there: the second sound trial ties the first at 1.0 and goes on; each
bad trial then meets a median of 1.0 and stops. So exactly the two bad trials stop, after one
of two epochs. (A bad trial run first would have met no one and finished: the first trials
at a rung of asynchronous successive halving are never stopped.)
"""

from __future__ import annotations

import importlib.util
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from training.search import main
from training.search_report import dominates

ray = pytest.importorskip("ray")

BAD_LRS = (1e-9, 1e-8)
EPOCHS = 2
SPACE = {
    "name": "tiny",
    "seed": 5,  # the order: lr 0.05, 0.02, then the bad 1e-8 and 1e-9
    "samples": 4,
    "space": {
        "conv": ["plain"],
        "transition": ["strided"],
        "skip": [False],
        "depth": [1],
        "widths": [[8, 8, 8, 8]],
        "budget": [3000],
    },
    "train": {
        "epochs": EPOCHS,
        "batch_size": 20,
        "fast": True,
        "schedule": "constant",
        "momentum_schedule": "fixed",
        "aug": {"flip_p": 0, "affine_p": 0, "jitter_p": 0, "gray_p": 0, "cutout_p": 0},
    },
    "train_space": {"lr": [0.05, 0.02, *BAD_LRS]},
    "asha": {"grace_period": 1, "reduction_factor": 2},
    "data": {"limit_train": 400, "validation": 100},
    "resources": {"cpus_per_trial": 1, "concurrent": 1},
}


def write_two_class_pickles(root: Path, n: int = 500) -> Path:
    """cifar-10-batches-py with n training images: label 0 dark, label 1 bright."""
    rng = np.random.default_rng(0)
    y = (np.arange(n) % 2).astype(np.int64)
    level = np.where(y == 1, 190, 60)[:, None, None, None]
    x = np.clip(level + rng.integers(-40, 41, (n, 32, 32, 3)), 0, 255).astype(np.uint8)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    per = n // 5
    chunks = [(x[i * per : (i + 1) * per], y[i * per : (i + 1) * per]) for i in range(5)]
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name, (cx, cy) in zip(names, chunks + [(x[:10], y[:10])]):
        flat = cx.transpose(0, 3, 1, 2).reshape(len(cx), 3072)
        with open(folder / name, "wb") as fh:
            pickle.dump({b"labels": cy.tolist(), b"data": flat}, fh)
    return root


@pytest.fixture(scope="module")
def searched(ray_session, tmp_path_factory):
    """The search run once through the command line; (folder, result, stdout)."""
    root = tmp_path_factory.mktemp("search")
    data = write_two_class_pickles(root / "data")
    space = dict(SPACE, out=str(root / "out"), result=str(root / "result.json"))
    space["data"] = dict(SPACE["data"], data_dir=str(data))
    path = root / "space.json"
    path.write_text(json.dumps(space))
    return root, path, _run(path)


def _run(path: Path) -> tuple[int, dict, str]:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main([str(path)])
    out = path.parent / "out"
    return code, json.loads((out / "search.json").read_text()), buf.getvalue()


def test_asha_stops_exactly_the_bad_trials_early(searched):
    _, _, (code, result, _) = searched
    assert code == 0
    rows = result["rows"]
    assert len(rows) == 4
    # the precondition the docstring relies on: the seed's order starts with the sound trials
    assert [r["train"]["lr"] for r in rows] == [0.05, 0.02, 1e-8, 1e-9]
    stopped = [r for r in rows if r["epochs"] < EPOCHS]
    assert sorted(r["train"]["lr"] for r in stopped) == sorted(BAD_LRS)
    assert all(r["epochs"] == 1 and not r["completed"] for r in stopped)
    assert result["stopped_early"] == 2
    for r in rows:
        if r["train"]["lr"] not in BAD_LRS:
            assert r["completed"] and r["epochs"] == EPOCHS
            assert [h["val_acc"] for h in r["history"]] == [1.0] * EPOCHS
    # trained on 400 images, scored on 100 held out of the training images
    assert result["data"]["train_images"] == 400
    assert result["data"]["validation_images"] == 100


def test_the_pareto_table_is_right_for_the_recorded_results(searched):
    _, _, (_, result, stdout) = searched
    rows = result["rows"]
    # independently: a completed row is on the params front unless another completed row
    # has no more params and no less accuracy, and is strictly better in one
    done = [i for i, r in enumerate(rows) if r["completed"]]
    expected = [
        i
        for i in done
        if not any(
            rows[j]["params"] <= rows[i]["params"]
            and rows[j]["acc"] >= rows[i]["acc"]
            and (rows[j]["params"] < rows[i]["params"] or rows[j]["acc"] > rows[i]["acc"])
            for j in done
        )
    ]
    assert result["fronts"]["params"] == expected
    # all four share one structure and budget: the two sound ones tie and are both on it
    assert len(expected) == 2 and not dominates(rows[expected[0]], rows[expected[1]], ("params",))
    table = (Path(result["space"]["out"]) / "table.md").read_text()
    assert table.strip() in stdout
    assert table.count("(stopped)") == 2


def test_outputs_models_and_record(searched):
    root, _, (_, result, stdout) = searched
    out = root / "out"
    assert (out / "search.png").stat().st_size > 0 and (out / "search.svg").stat().st_size > 0
    assert json.loads((root / "result.json").read_text()) == result
    for r in result["rows"]:
        spec = importlib.util.spec_from_file_location("m", out / r["model_file"])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        net = module.Net()
        assert sum(p.numel() for p in net.parameters()) == r["params"] <= r["budget"]
    assert result["seed"] == 5 and result["budgets"] == [3000]
    assert result["ray"] == ray.__version__
    assert result["resources"]["cpus_per_trial"] == 1.0
    assert result["metric"] == "val_acc"
    assert "stopped early by ASHA" in stdout


def test_rerun_retrains_nothing(searched):
    root, path, (_, result, _) = searched
    trials = sorted((root / "out" / "trials").glob("*/last.pt"))
    assert len(trials) == 4
    before = {p: p.stat().st_mtime_ns for p in trials}
    code, again, _ = _run(path)
    assert code == 0
    assert {p: p.stat().st_mtime_ns for p in trials} == before
    strip = ("wall_seconds",)
    assert {k: v for k, v in again.items() if k not in strip} == {
        k: v for k, v in result.items() if k not in strip
    }


def test_another_space_in_the_same_folder_is_refused(searched, capsys):
    root, path, _ = searched
    space = json.loads(path.read_text())
    space["seed"] = 6
    other = root / "other.json"
    other.write_text(json.dumps(space))
    assert main([str(other)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rfsearch: error: ") and "another space" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    "content, words",
    [
        (None, "cannot read"),
        ("{", "not JSON"),
        ('{"space": {"conv": ["fancy"]}}', "'fancy' is not one of"),
        ('{"data": {"data_dir": "/nonexistent/cifar"}, "samples": 1}', "does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, content, words):
    path = tmp_path / "space.json"
    if content is not None:
        path.write_text(content)
    out = tmp_path / "out"
    assert main([str(path), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("rfsearch: error: ") and captured.err.count("\n") == 1
    assert words in captured.err and "Traceback" not in captured.err
    assert captured.out == ""


def test_dry_run_lists_the_sample_without_ray(tmp_path, capsys):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(dict(SPACE, out=str(tmp_path / "out"))))
    assert main([str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("4 of 4 designs sampled (seed 5)")
    assert out.count("plain-strided-noskip-x1_w8-8-8-8_b3000_lr") == 4
    assert not (tmp_path / "out").exists()


def test_bare_rfsearch_prints_its_usage_and_exits_2(capsys):
    """As rfsweep: what it takes, on stderr, status 2; not argparse's terse error."""
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: rfsearch")
    assert "space" in err and "--dry-run" in err and "error" not in err


def test_help_shows_each_default_once(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # help lines wrap
    assert "(default: None)" not in out and "(default: False)" not in out
    assert out.count("(default: the file's") == 7  # --out ... --concurrent: the file's
