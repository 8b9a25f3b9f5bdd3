"""rfcalc.commandline: the conventions shared by the rfcalc and netbuilder commands."""

import argparse
import io

import pytest

from rfcalc.commandline import Parser, UserError, check_output, progress, run, write_output


def test_output_files_are_checked_first_and_never_clobbered(tmp_path):
    path = tmp_path / "model.py"
    assert check_output(path, force=False, example="model.py") == path
    path.write_text("# mine\n")
    with pytest.raises(UserError, match="model.py exists; pass --force to overwrite it"):
        check_output(path, force=False, example="model.py")
    with pytest.raises(UserError, match="exists; pass --force"):
        write_output(path, "new", force=False)  # a file that appeared after the check
    assert path.read_text() == "# mine\n"
    write_output(path, "new\n", force=True)
    assert path.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["model.py"]  # no temporary file left
    with pytest.raises(UserError, match="is a folder; give a file name such as model.py"):
        check_output(tmp_path, force=True, example="model.py")
    with pytest.raises(UserError, match="folder .*nope does not exist"):
        check_output(tmp_path / "nope" / "m.py", force=True, example="model.py")


def _parser(calls):
    def run_go(args):
        calls.append(args.speed)
        if args.speed < 0:
            raise UserError("--speed must be >= 0,\nnot negative")
        if args.speed == 0:
            raise ValueError("a library's own error")
        return 0

    parser = Parser(prog="tool", description="A tool.")
    go = parser.command("go", "Go somewhere.", run_go)
    go.add_argument("--speed", type=int, default=3, help="how fast")
    go.add_argument("--where", default=None, help="where to (default: here)")
    return parser


def test_run_exit_statuses_and_one_line_errors(capsys):
    calls = []
    assert run(_parser(calls), ["go", "--speed", "5"]) == 0 and calls == [5]
    assert run(_parser(calls), ["go", "--speed", "-1"]) == 2
    assert capsys.readouterr().err == "tool: error: --speed must be >= 0, not negative\n"
    assert run(_parser(calls), ["go", "--speed", "0"], errors=(ValueError,)) == 2
    assert capsys.readouterr().err == "tool: error: a library's own error\n"
    with pytest.raises(ValueError):  # not a user error unless the caller says so
        run(_parser(calls), ["go", "--speed", "0"])
    assert run(_parser(calls), ["go", "--speed", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid int value: 'x'" in err


def test_bare_command_prints_the_help_on_stderr_and_exits_2(capsys):
    assert run(_parser([]), []) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: tool")
    assert ["go", "Go", "somewhere."] in [line.split() for line in err.splitlines()]


def test_help_shows_defaults_but_not_none(capsys):
    assert run(_parser([]), ["go", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "how fast (default: 3)" in text
    assert "where to (default: here)" in text and "None" not in text


def test_progress_only_when_asked_or_on_a_terminal(monkeypatch):
    items = [1, 2, 3]
    assert progress(items, show=False) is items
    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a terminal
    assert progress(items) is items
    bar = progress(items, total=3, desc="nets", show=True)
    assert list(bar) == items
    import sys

    assert "nets:" in sys.stderr.getvalue() and "/3 [" in sys.stderr.getvalue()


def test_version_is_the_distributions(capsys):
    from importlib.metadata import version

    parser = Parser(prog="tool", version=True)
    with pytest.raises(SystemExit):
        parser.parse_args(["--version"])
    assert capsys.readouterr().out == f"tool {version('rfkit')}\n"
    assert isinstance(parser, argparse.ArgumentParser)
