"""rftrain / python -m training: one-line errors with exit status 2, and one real short run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training.cli import main

ROOT = Path(__file__).resolve().parents[2]


def fails(capsys, argv: list[str], expected: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rftrain: error: ") and expected in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def base(model: Path, data: Path, out: Path) -> list[str]:
    return [
        "--model",
        str(model),
        "--data-dir",
        str(data),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--workers",
        "0",
        "--no-progress",
    ]


def test_missing_data_folder(capsys, tmp_path, tiny_model):
    fails(capsys, base(tiny_model, tmp_path / "nope", tmp_path / "o"), "does not exist")


def test_empty_data_folder(capsys, tmp_path, tiny_model):
    (tmp_path / "empty").mkdir()
    fails(capsys, base(tiny_model, tmp_path / "empty", tmp_path / "o"), "no CIFAR-10 in")


def test_corrupt_batch(capsys, tmp_path, tiny_model, pickles):
    (pickles / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"\x80\x04garbage")
    fails(capsys, base(tiny_model, pickles, tmp_path / "o"), "data_batch_1 is not a CIFAR-10")


def test_bad_model(capsys, tmp_path, pickles):
    fails(capsys, base(tmp_path / "missing.py", pickles, tmp_path / "o"), "no such file")
    fails(
        capsys,
        ["--preset", "nope", "--data-dir", str(pickles), "--out", str(tmp_path / "o")],
        "unknown preset",
    )


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--flip-p", "2"], "flip_p is a probability"),
        (["--lr", "0.5"], "at most --max-lr"),
        (["--epochs", "0"], "--epochs must be at least 1"),
    ],
)
def test_bad_settings(capsys, tmp_path, tiny_model, pickles, extra, expected):
    fails(capsys, base(tiny_model, pickles, tmp_path / "o") + extra, expected)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu(capsys, tmp_path, tiny_model, pickles):
    argv = base(tiny_model, pickles, tmp_path / "o")
    argv[argv.index("cpu")] = "cuda"
    fails(capsys, argv, "no CUDA GPU")


def test_non_empty_out_is_refused_before_decoding(capsys, tmp_path, tiny_model):
    out = tmp_path / "o"
    out.mkdir()
    (out / "x.txt").write_text("keep")
    # The data folder does not exist either, but the out check comes first (fail fast).
    fails(capsys, base(tiny_model, tmp_path / "nope", out), "is not empty")
    assert (out / "x.txt").read_text() == "keep"


def test_cli_run_and_resume_in_process(capsys, tmp_path, tiny_model, pickles):
    out = tmp_path / "o"
    argv = base(tiny_model, pickles, out) + ["--epochs", "1", "--batch-size", "16", "--fast"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["path"] == "tensor (fast)" and summary["epochs_done"] == 1
    assert summary["train_images"] == 60 and summary["test_images"] == 20
    assert main(argv + ["--resume"]) == 0  # already complete: nothing more to do
    assert json.loads((out / "summary.json").read_text())["epochs_done"] == 1


def test_python_m_training_trains_the_s9_net(tmp_path, pickles):
    """One short step of the assignment's Net through `python -m training`."""
    out = tmp_path / "s9"
    cmd = [
        sys.executable,
        "-m",
        "training",
        "--model",
        str(ROOT / "examples" / "s9_net.py"),
        "--data-dir",
        str(pickles),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--limit-train",
        "32",
        "--limit-test",
        "16",
        "--workers",
        "0",
    ]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["params"] == 190_509 and summary["loss"] == "nll"
    assert summary["train_images"] == 32 and summary["test_images"] == 16
    assert summary["path"] == "albumentations (0 workers)" and summary["finished"]
    assert summary["config"]["aug"]["cutout_size"] == 16


def test_recipe_names_the_defaults_and_flags_override_single_settings(capsys):
    from training.cli import config_from_args, parse

    cfg = config_from_args(parse(["--out", "o"]))
    assert (cfg.recipe, cfg.lr, cfg.momentum_schedule) == ("assignment", 0.005, "cycle")
    old = config_from_args(parse(["--recipe", "previous"]))
    assert (old.recipe, old.lr, old.momentum_schedule, old.momentum) == (
        "previous",
        0.05,
        "fixed",
        0.9,
    )
    mixed = config_from_args(parse(["--lr", "0.02", "--recipe", "previous", "--seed", "4"]))
    assert (mixed.recipe, mixed.lr, mixed.momentum_schedule) == ("previous", 0.02, "fixed")
    assert mixed.departures() == {"lr": 0.02, "seed": 4}
    with pytest.raises(SystemExit) as exc:
        parse(["--recipe", "mine"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'mine'" in err and err.count("\n") == 1


def test_help_lists_the_recipes_with_their_defaults(capsys):
    from training.cli import parse

    with pytest.raises(SystemExit):
        parse(["--recipe", "previous", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--recipe {assignment,previous}" in text
    assert "assignment: the assignment's published code" in text and "previous: " in text
    # the defaults shown are the named recipe's
    assert "lr); the lr of a constant schedule (default: 0.05)" in text
