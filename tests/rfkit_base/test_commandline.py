"""rfkit_base.commandline: the conventions all four commands share."""

import argparse
import io

import pytest

from rfkit_base.commandline import (
    CheckingParser,
    Parser,
    UserError,
    check_output,
    fail,
    flag,
    progress,
    run,
    sigterm_interrupts,
    write_output,
)


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


def test_a_checking_parser_raises_the_bare_message():
    parser = CheckingParser(prog="tool")
    parser.add_argument("--epochs", type=int)
    with pytest.raises(UserError, match=r"^argument --epochs: invalid int value: 'x'$"):
        parser.parse_args(["--epochs", "x"])
    with pytest.raises(
        UserError, match=r"^unrecognized arguments --epohcs 3; did you mean .--epochs.\?$"
    ):
        parser.parse_args(["--epohcs", "3"])


def test_a_command_without_subcommands_runs_its_own_default(capsys):
    seen = []

    def train(args):
        seen.append(args.epochs)
        if args.epochs == 0:
            raise UserError("--epochs must be at least 1")
        if args.epochs < 0:
            raise KeyboardInterrupt
        return 0

    def parser():
        p = Parser(prog="trainer")
        p.set_defaults(run=train)
        p.add_traceback_flag()
        p.add_argument("--epochs", type=int, default=3)
        return p

    def parse(argv):  # a command that parses its own way (rftrain: twice, for a recipe)
        return parser().parse_args([*argv, "--epochs", "5"] if not argv[1:] else argv)

    assert run(parser(), ["--epochs", "2"]) == 0 and seen == [2]
    assert run(parser(), ["--traceback"], parse=parse) == 0 and seen[-1] == 5
    assert run(parser(), ["--epochs", "0"]) == 2
    assert capsys.readouterr().err == "trainer: error: --epochs must be at least 1\n"
    assert run(parser(), ["--epochs", "0", "--traceback"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.endswith(
        "trainer: error: --epochs must be at least 1\n"
    )
    assert run(parser(), ["--epochs", "-1"], interrupted="stopped; resume later") == 130
    assert capsys.readouterr().err == "trainer: stopped; resume later\n"


def test_flag_fail_and_an_output_format(capsys, tmp_path):
    assert flag("eval_batch_size") == flag("--eval_batch_size") == "--eval-batch-size"
    assert fail("tool", "two\nlines") == 2
    assert capsys.readouterr().err == "tool: error: two lines\n"
    with pytest.raises(
        UserError, match=r"x\.gif: unknown picture '\.gif'; use one of \.png, \.svg$"
    ):
        check_output(
            tmp_path / "x.gif", force=False, example="a.png", formats=("png", "svg"), what="picture"
        )
    with pytest.raises(UserError, match=r"unknown format '\(no suffix\)'"):
        check_output(tmp_path / "x", force=False, example="a.png", formats=("png",))
    assert check_output(tmp_path / "x.PNG", force=False, example="a.png", formats=("png",))


def test_help_adds_a_default_unless_the_help_gives_it(capsys):
    parser = Parser(prog="tool")
    parser.add_argument("--border", default="reflect", help="as albumentations' default does")
    parser.add_argument("--n", type=int, default=100, help="how many (default 100)")
    parser.add_argument("--out", default="a.html", help="the page; default: a.html")
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default does (default: reflect)" in text
    assert "(default 100)" in text and "default: 100" not in text
    assert text.count("a.html") == 1


def test_sigterm_stops_the_block_as_ctrl_c_does_and_the_handler_comes_back():
    import os
    import signal

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with sigterm_interrupts():
            os.kill(os.getpid(), signal.SIGTERM)  # Python runs the handler at once, here
    assert signal.getsignal(signal.SIGTERM) is before
