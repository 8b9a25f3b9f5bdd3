"""Bad input is one line and costs the user nothing: checks before writes, --force only after
them, stale temporaries, --resume --force, and results that do not depend on --workers."""

from __future__ import annotations

import json

import pytest
import torch
from train_synth import CLASSES, make_images

from training.augment import AugConfig
from training.cli import main
from training.data import Cifar
from training.loaders import ReferenceBatches

FIVE_OUTPUTS = """
import torch.nn as nn
def Net():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 5))
"""


def fails(capsys, argv: list[str], expected: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rftrain: error: ") and expected in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def base(model, data, out) -> list[str]:
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


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--momentum", "-1"], "--momentum must be in [0, 1)"),
        (["--weight-decay", "-1"], "--weight-decay must be >= 0"),
        (["--final-div-factor", "0"], "--final-div-factor must be positive"),
        (["--l1", "-0.1"], "--l1 must be >= 0"),
        (["--base-momentum", "0.96"], "--base-momentum (0.96) must be at most --max-momentum"),
        (["--schedule", "constant", "--momentum-schedule", "cycle"], "needs --schedule onecycle"),
        (["--cutout-size", "40"], "cutout_size 40 is larger than the 32x32 images"),
        (["--cutout-size", "40", "--fast"], "cutout_size 40 is larger than the 32x32 images"),
        (["--eval-batch-size", "0"], "--eval-batch-size must be at least 1"),
        (
            ["--fast", "--drop-last", "--batch-size", "100"],
            "--batch-size 100 is more than the 60 training",
        ),
    ],
)
def test_bad_recipe_is_one_line(capsys, tmp_path, tiny_model, pickles, extra, expected):
    fails(capsys, base(tiny_model, pickles, tmp_path / "o") + extra, expected)
    assert not (tmp_path / "o").exists()


def test_wrong_number_of_outputs(capsys, tmp_path, pickles):
    model = tmp_path / "five.py"
    model.write_text(FIVE_OUTPUTS)
    fails(
        capsys,
        base(f"{model}:Net", pickles, tmp_path / "o"),
        "outputs (2, 5) for a batch of 2 images; expected (2, 10)",
    )
    assert not (tmp_path / "o").exists()  # validated before --out was touched


def test_force_deletes_nothing_until_checks_pass(capsys, tmp_path, tiny_model, pickles):
    out = tmp_path / "o"
    assert main(base(tiny_model, pickles, out) + ["--epochs", "1", "--batch-size", "16"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    fails(capsys, base(tiny_model, pickles, out) + ["--force", "--momentum", "2"], "--momentum")
    five = tmp_path / "five.py"
    five.write_text(FIVE_OUTPUTS)
    fails(capsys, base(f"{five}:Net", pickles, out) + ["--force"], "expected (2, 10)")
    fails(capsys, base(tiny_model, tmp_path / "nope", out) + ["--force"], "does not exist")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_resume_and_force_together_are_refused(capsys, tmp_path, tiny_model, pickles):
    fails(
        capsys,
        base(tiny_model, pickles, tmp_path / "o") + ["--resume", "--force"],
        "give one of them",
    )


def test_stale_temporary_does_not_make_the_folder_busy(capsys, tmp_path, tiny_model, pickles):
    out = tmp_path / "o"
    out.mkdir()
    (out / ".last.pt.k3j2x.tmp").write_bytes(b"half a checkpoint of a killed run")
    assert main(base(tiny_model, pickles, out) + ["--epochs", "1", "--batch-size", "16"]) == 0
    assert not list(out.glob(".*.tmp"))
    assert json.loads((out / "summary.json").read_text())["finished"]


def test_data_line_shows_the_sizes_used(capsys, tmp_path, tiny_model, pickles):
    argv = base(tiny_model, pickles, tmp_path / "o") + [
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--limit-train",
        "30",
        "--limit-test",
        "10",
    ]
    assert main(argv) == 0
    assert ": 30 train, 10 test images (of 60 / 20)" in capsys.readouterr().out


def test_argparse_errors_are_one_line(capsys):
    assert main(["--loss", "bogus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rftrain: error: --loss: invalid choice: 'bogus' (choose from")
    assert err.count("\n") == 1


def test_bare_command_prints_usage_and_version(capsys):
    # as rfcalc and netbuilder: argparse's convention for a missing argument, on stderr
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("usage: rftrain") and "--momentum-schedule" in captured.err
    assert main(["--version"]) == 0 and capsys.readouterr().out.startswith("rftrain ")


def test_help_shows_every_default_once(capsys):
    # the kit's convention: a value shown once; an option off or unset unless given (None,
    # False) shows none, "(default: None)" says nothing
    from training.cli import _parser

    parser = _parser()
    for action in parser._actions:
        if action.dest in ("help", "version"):
            continue
        text = parser.formatter_class("rftrain")._get_help_string(action) % {
            "default": action.default
        }
        shown = 0 if action.default is None or action.default is False else 1
        assert action.help and text.count("(default: ") == shown, action.dest
    assert parser.parse_args(["--momentum", "0.5"]).momentum == 0.5
    assert parser.parse_args([]).momentum_schedule == "cycle"  # the assignment's recipe


def test_results_do_not_depend_on_workers():
    x, y = make_images(40, seed=0)
    data = Cifar(x[:32], y[:32], x[32:], y[32:], CLASSES, "synthetic")
    mean, std = data.mean_std()

    def batches(workers: int):
        b = ReferenceBatches(
            data.train_x, data.train_y, 8, AugConfig(), mean, std, seed=4, workers=workers
        )
        return [bx for e in (0, 1) for bx, _ in b.epoch(e)]

    alone, two = batches(0), batches(2)
    assert len(alone) == 8
    assert all(torch.equal(a, b) for a, b in zip(alone, two))
    assert not torch.equal(alone[0], alone[4])  # epochs differ (different draws)


def test_sigterm_stops_cleanly_and_resumes(tmp_path, tiny_model, pickles):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "o"
    cmd = [
        sys.executable,
        "-m",
        "training",
        *base(tiny_model, pickles, out),
        "--epochs",
        "40",
        "--batch-size",
        "4",
        "--fast",
    ]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 300
    while not (out / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert (
        proc.returncode == 130 and "interrupted; continue with the same command and --resume" in err
    ), err
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]
    epochs = torch.load(out / "last.pt", weights_only=True)["epoch"]
    assert 1 <= epochs < 40
