"""Every command's bad input: exactly one line on stderr, `<prog>: error: ...`, exit status 2,
no traceback, nothing on stdout. The wording is each command's own; only the shape is pinned."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NET = str(REPO / "examples" / "s9_net.py")

# A message is one line that names the program (and maybe its subcommand) and says "error:";
# argparse's usage block, a traceback or a second line all break the shape.
SHAPE = re.compile(r"^(rfcalc|netbuilder|rftrain)( [a-z]+)?: error: \S.*\n\Z")


def _run(capsys, main, argv: list[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse exits; an exit status is what a shell sees
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code, out: str, err: str) -> None:
    assert code == 2, (code, err)
    assert "Traceback" not in err and "usage:" not in err, err
    assert SHAPE.match(err), err
    assert out == "", out


RFCALC = [
    pytest.param(["table"], id="table-no-target"),
    pytest.param(["frobnicate", NET], id="unknown-command"),
    pytest.param(["table", "missing.py"], id="table-missing-file"),
    pytest.param(["table", NET, "--input", "3,x,32"], id="table-input-not-numbers"),
    pytest.param(["table", NET, "--input", "3,0,32"], id="table-input-zero"),
    pytest.param(["table", NET, "--format", "pdf"], id="table-unknown-format"),
    pytest.param(["table", NET + ":Nope"], id="table-no-such-class"),
    pytest.param(["table", NET, "--input", "3,4,4"], id="table-input-too-small"),
    pytest.param(["verify", NET, "--input", "3,4,4"], id="verify-input-too-small"),
    pytest.param(["verify", NET, "--format", "latex-ish"], id="verify-unknown-format"),
    pytest.param(["graph", NET], id="graph-no-output"),
    pytest.param(["graph", NET, "-o", "net.jpeg"], id="graph-unknown-suffix"),
]


@pytest.mark.parametrize("argv", RFCALC)
def test_rfcalc_bad_arguments(capsys, tmp_path, monkeypatch, argv):
    from rfcalc.cli import main

    monkeypatch.chdir(tmp_path)
    _assert_one_line_error(*_run(capsys, main, argv))


NETBUILDER = [
    pytest.param(["frobnicate"], id="unknown-command"),
    pytest.param(["variants", "--budget", "abc"], id="variants-budget-not-a-number"),
    pytest.param(["variants", "--budget", "-5"], id="variants-negative-budget"),
    pytest.param(["variants", "--budget", "10"], id="variants-budget-too-small"),
    pytest.param(["variants", "--min-rf", "nan"], id="variants-min-rf-nan"),
    pytest.param(["variants", "--format", "pdf"], id="variants-unknown-format"),
    pytest.param(["show", "dws-pooled-skip-x2"], id="show-unknown-variant"),
    pytest.param(["show", "s9", "--input", "3,x"], id="show-bad-input"),
    pytest.param(["show", "s9", "--input", "3,8,8"], id="show-input-too-small"),
    pytest.param(["export", "s9"], id="export-no-output"),
    pytest.param(["export", "missing.json", "-o", "net.py"], id="export-missing-spec"),
]


@pytest.mark.parametrize("argv", NETBUILDER)
def test_netbuilder_bad_arguments(capsys, tmp_path, monkeypatch, argv):
    from netbuilder.cli import main

    monkeypatch.chdir(tmp_path)
    _assert_one_line_error(*_run(capsys, main, argv))


def _rftrain_cases(tmp: Path) -> list:
    empty = tmp / "empty"
    empty.mkdir()
    base = ["--data-dir", str(empty), "--out", str(tmp / "out")]
    return [
        pytest.param([*base, "--preset", "s9"], id="no-data-in-folder"),
        pytest.param([*base, "--model", str(tmp / "missing.py")], id="missing-model-file"),
        pytest.param([*base, "--preset", "nope"], id="unknown-preset"),
        pytest.param([*base, "--preset", "s9", "--epochs", "0"], id="zero-epochs"),
        pytest.param([*base, "--preset", "s9", "--flip-p", "1.5"], id="probability-above-1"),
        pytest.param([*base, "--preset", "s9", "--loss", "bogus"], id="unknown-loss"),
        pytest.param([*base, "--preset", "s9", "--epochs", "x"], id="epochs-not-a-number"),
        pytest.param(["--out", str(tmp / "out"), "--preset", "s9"], id="no-data-dir"),
    ]


@pytest.mark.parametrize("case", range(8))
def test_rftrain_bad_arguments(capsys, tmp_path, request, case):
    from training.cli import main

    param = _rftrain_cases(tmp_path)[case]
    for mark in param.marks:
        request.applymarker(mark)
    _assert_one_line_error(*_run(capsys, main, list(param.values[0])))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
