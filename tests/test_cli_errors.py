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


# ---------------------------------------------------------------- errors that help a user

ONE_PREFIX = re.compile(r"^(rfcalc|netbuilder): error: \S.*\n\Z")  # no `rfcalc table: error:`


@pytest.mark.parametrize(
    "argv, says",
    [
        (["tabel", NET], "unknown command 'tabel'; did you mean 'table'?"),
        (["table", NET, "--inptu", "3,32,32"], "--inptu 3,32,32; did you mean '--input'?"),
        (["table", NET, "--format", "jsn"], "invalid choice: 'jsn'; did you mean 'json'?"),
        (["table", NET, "--format", "pdf"], "--format: invalid choice: 'pdf' (choose from"),
        (["graph", NET], "graph: the following arguments are required: -o/--output"),
        (["table", NET, "--columns", "rf,sise"], "unknown column 'sise'; choose from name"),
    ],
)
def test_rfcalc_mistypes_get_one_prefix_and_a_suggestion(capsys, argv, says):
    from rfcalc.cli import main

    code, out, err = _run(capsys, main, argv)
    _assert_one_line_error(code, out, err)
    assert ONE_PREFIX.match(err) and says in err, err
    if "did you mean" not in says:
        assert "did you mean" not in err  # nothing close: no guess


def test_netbuilder_mistypes_get_a_suggestion(capsys):
    from netbuilder.cli import main

    code, out, err = _run(capsys, main, ["variants", "--sort", "macz"])
    _assert_one_line_error(code, out, err)
    assert ONE_PREFIX.match(err) and "did you mean 'macs'?" in err
    code, out, err = _run(capsys, main, ["shwo", "s9"])
    assert code == 2 and "unknown command 'shwo'; did you mean 'show'?" in err


def _model(tmp_path, body: str) -> str:
    path = tmp_path / "mine.py"
    path.write_text("import torch.nn as nn\n\n\n" + body)
    return str(path)


GREY = """class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3)

    def forward(self, x):
        return self.conv1(x)
"""
SIZED = """class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(8 * 26 * 26, 10)

    def forward(self, x):
        x = self.conv1(x)
        return self.fc(x.flatten(1))
"""
RAISES = """class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        y = self.conv1(x)
        return y + self.missing
"""


@pytest.mark.parametrize(
    "body, argv, says",
    [
        # line 10 of the file: `return self.conv1(x)` (3 lines of imports come first)
        (
            GREY,
            [],
            "conv1 (line 10): conv2d failed on a map of size 32x32: ",
        ),
        (
            GREY,
            [],
            "; hint: the first layer takes 1 channel; --input is C,H,W: try --input 1,32,32",
        ),
        # channels typed last: the hint moves them to the front
        (GREY, ["--input", "32,32,1"], "try --input 1,32,32 (--traceback shows the rest)"),
        # written for 28×28 (26 after the conv), run at 32×32 (30·30·8 = 7,200 features)
        (SIZED, [], "fc (line 12): linear failed"),
        (SIZED, [], "hint: a Linear layer takes 5,408 features and gets 7,200"),
        (RAISES, [], "the model's forward (line 11) raised AttributeError: "),
    ],
)
def test_a_failing_forward_says_where_and_why(capsys, tmp_path, body, argv, says):
    from rfcalc.cli import main

    target = _model(tmp_path, body)
    code, out, err = _run(capsys, main, ["table", target, *argv])
    _assert_one_line_error(code, out, err)
    assert ONE_PREFIX.match(err) and says in err, err
    assert err.count(target) == 1  # the file is named once; its lines by number
    assert "the model's forward: the model's forward" not in err


def test_traceback_flag_shows_the_users_frame(capsys, tmp_path):
    from rfcalc.cli import main

    target = _model(tmp_path, RAISES)
    code, out, err = _run(capsys, main, ["table", target, "--traceback"])
    assert code == 2 and out == ""
    assert "Traceback (most recent call last)" in err
    assert f'File "{target}", line 11, in forward' in err  # the user's own frame
    assert err.rstrip("\n").splitlines()[-1].startswith("rfcalc: error: ")


def test_a_file_that_is_no_checkpoint_is_called_that(capsys, tmp_path):
    from rfcalc.cli import main

    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a checkpoint\n")
    code, out, err = _run(capsys, main, ["erf", NET, "--weights", str(garbage), "--n", "1"])
    _assert_one_line_error(code, out, err)
    assert err == f"rfcalc: error: {garbage} is not a PyTorch checkpoint (torch.save writes one)\n"


@pytest.mark.parametrize("command", ["table", "verify", "graph", "erf", "explore"])
def test_help_says_each_default_once(capsys, command):
    from rfcalc.cli import main

    code, out, _ = _run(capsys, main, [command, "--help"])
    assert code == 0
    text = " ".join(out.split())
    for option in re.split(r" (?=--?[a-z])", text):
        assert option.count("default") <= 1, option
    assert "(default: False)" not in text
