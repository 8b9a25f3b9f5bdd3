"""The command-line kit of all five commands (`rfcalc`, `netbuilder`, `rftrain`, `rfsweep`,
`rfsearch`).

- `UserError`: bad input. `run` prints it as one line, `prog: error: message`, exit status 2;
  `--traceback` (on every subcommand, or the command itself) prints the full traceback above
  it, for a user debugging their own model. `fail` prints the same line where a command
  reports an error itself.
- `Parser`: argparse with one-line errors under the one prefix `prog: error:` (a
  subcommand's too), "did you mean" for a mistyped subcommand, choice or option (difflib:
  Python 3.11's argparse has no suggest_on_error), every default shown once in `--help`,
  and `--version` (the installed package's version). A bare command (no subcommand) prints
  the full help, each subcommand with its one-line purpose, on stderr and exits 2:
  argparse's convention for a missing required argument, since nothing that was asked for
  was done. `CheckingParser` raises UserError instead of exiting (options checked ahead).
- `whole_number`, `flag`, `add_progress_flag`: argument types and flags the commands share.
- `check_output` / `write_output`: an output file is validated before the work and written
  atomically after it, never over an existing file without `--force`.
- `progress` / `progress_bar`: a tqdm bar on stderr, only on a terminal or when asked
  (`--progress`); `prints_to_stderr`: the user's own prints kept off the command's stdout.
- `sigterm_interrupts`: SIGTERM stops a long command as Ctrl-C does.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import gc
import re
import signal
import sys
import threading
import traceback
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable, Iterator, NoReturn, Optional, Sequence, TypeVar, Union

from rfkit_base.files import write_bytes

__all__ = [
    "UserError",
    "Parser",
    "CheckingParser",
    "did_you_mean",
    "installed_version",
    "whole_number",
    "flag",
    "add_progress_flag",
    "progress",
    "progress_bar",
    "prints_to_stderr",
    "run",
    "sigterm_interrupts",
    "fail",
    "exit_with",
    "check_output",
    "write_output",
    "DISTRIBUTION",
]

DISTRIBUTION = "rfkit"  # the package on PyPI terms: pyproject.toml's [project] name

T = TypeVar("T")


class UserError(Exception):
    """Bad input (a file, a name, a setting): printed as one line, exit status 2."""


def installed_version() -> str:
    """The installed distribution's version, from its metadata (pyproject.toml's)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


# "(default 100)", "(default: here)", "default: the output": the help gives the default itself
# ("albumentations' default" does not)
_SAYS_DEFAULT = re.compile(r"\(default\b|\bdefault:", re.IGNORECASE)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show every default that has a value, once: not where the help already says it, not
    for a flag that is off unless given; a None default's help says in words what it does."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is False or _SAYS_DEFAULT.search(text):
            return text
        return super()._get_help_string(action)


def whole_number(minimum: int, too_small: str) -> Callable[[str], int]:
    """An argparse `type`: a whole number of at least `minimum`; `too_small` ends the message
    for a smaller one, right after the number."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"{n}{too_small}")
        return n

    return parse


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`; did you mean 'table'?` for the closest choice, or "" when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def flag(name: str) -> str:
    """The command-line flag of a setting: `eval_batch_size` (or `--eval_batch_size`) ->
    `--eval-batch-size`."""
    return "--" + name.lstrip("-").replace("_", "-")


class Parser(argparse.ArgumentParser):
    """argparse with the project's conventions (see the module docstring)."""

    def __init__(self, *args, version: bool = False, root: Optional[str] = None, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)
        self.root = root or self.prog  # the program's name: every error says it alone
        self._commands: Optional[argparse._SubParsersAction] = None
        if version:
            self.add_argument(
                "--version",
                action="version",
                version=f"%(prog)s {installed_version()}",
                help="print the version and exit",
            )

    def error(self, message: str) -> NoReturn:
        # one line (no usage block) under the program's one prefix, so a script or a test
        # can read it; a subcommand's own errors name it in the message instead
        where = self.prog[len(self.root) :].strip()
        text = f"{where}: {message}" if where and not message.startswith(where) else message
        self.exit(2, f"{self.root}: error: {text}\n")

    def _check_value(self, action: argparse.Action, value) -> None:
        if action.choices is not None and value not in action.choices:
            choices = ", ".join(map(repr, action.choices))
            hint = did_you_mean(str(value), map(str, action.choices))
            if isinstance(action, argparse._SubParsersAction):
                what = f"unknown command {value!r}"
            else:
                what = f"{argparse._get_action_name(action)}: invalid choice: {value!r}"
            raise argparse.ArgumentError(None, f"{what}{hint} (choose from {choices})")
        super()._check_value(action, value)

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            parser = self
            chosen = getattr(parsed, "command", None)
            if self._commands is not None and chosen in self._commands.choices:
                parser = self._commands.choices[chosen]  # the subcommand's options
            options = [o for a in parser._actions for o in a.option_strings]
            first = extras[0]
            hint = did_you_mean(first.split("=")[0], options) if first.startswith("-") else ""
            s = "s" if len(extras) > 1 else ""
            parser.error(f"unrecognized argument{s} {' '.join(extras)}{hint}")
        return parsed

    def command(
        self, name: str, purpose: str, run: Callable[[argparse.Namespace], int]
    ) -> "Parser":
        """A subcommand: `purpose` is its line in the help, `run(args)` its exit status."""
        if self._commands is None:
            self._commands = self.add_subparsers(
                dest="command", metavar="COMMAND", parser_class=Parser, title="commands"
            )
        sub = self._commands.add_parser(name, help=purpose, description=purpose, root=self.root)
        sub.set_defaults(run=run)
        sub.add_traceback_flag()
        return sub

    def add_traceback_flag(self) -> None:
        """`--traceback`: `run` prints the full traceback above a one-line error (every
        subcommand has it; a command without subcommands adds it itself)."""
        self.add_argument(
            "--traceback",
            action="store_true",
            help="on an error, print the full Python traceback above the one-line message",
        )


class CheckingParser(Parser):
    """A Parser that raises UserError (the bare message) instead of exiting: options checked
    ahead of time, e.g. rfsweep checks every run's before the first one starts."""

    def error(self, message: str) -> NoReturn:
        raise UserError(message)


def add_progress_flag(parser: argparse.ArgumentParser) -> None:
    """`--progress` / `--no-progress`; unset: a bar only when stderr is a terminal."""
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on stderr (default: only on a terminal)",
    )


def progress(
    items: Iterable[T],
    *,
    total: Optional[int] = None,
    desc: str = "",
    unit: str = "it",
    show: Optional[bool] = None,
) -> Iterable[T]:
    """`items`, with a tqdm bar on stderr when `show` (None: when stderr is a terminal)."""
    if show is None:
        show = sys.stderr.isatty()
    if not show:
        return items
    from tqdm import tqdm  # a text bar on stderr, never a notebook widget

    return tqdm(items, total=total, desc=desc, file=sys.stderr, leave=False, unit=unit)


def progress_bar(
    *, total: Optional[int], desc: str = "", unit: str = "it", show: Optional[bool] = None
):
    """A tqdm bar on stderr to advance by hand (`bar.update(n)`), shown when `show` (None:
    when stderr is a terminal) from the start, since one step may be all the work."""
    from tqdm import tqdm  # a text bar on stderr, never a notebook widget

    if show is None:
        show = sys.stderr.isatty()
    return tqdm(
        total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, disable=not show, delay=0
    )


def prints_to_stderr() -> contextlib.AbstractContextManager:
    """Prints of the user's own code (a model file's, at import, in __init__ or forward) go to
    stderr, so stdout holds only the command's output and `--format json` stays parseable."""
    return contextlib.redirect_stdout(sys.stderr)


def check_output(
    path: Union[str, Path],
    *,
    force: bool,
    example: str,
    formats: Sequence[str] = (),
    what: str = "format",
) -> Path:
    """The output path, if it can be written: its suffix one of `formats` (when given), its
    folder exists, it is not a folder, and it is not there already unless `force`. UserError
    otherwise (checked before any work)."""
    path = Path(path)
    if formats and path.suffix.lower().lstrip(".") not in formats:
        raise UserError(
            f"{path}: unknown {what} {path.suffix or '(no suffix)'!r}; "
            f"use one of .{', .'.join(formats)}"
        )
    if path.is_dir():
        raise UserError(f"{path} is a folder; give a file name such as {example}")
    if not path.parent.is_dir():
        raise UserError(f"{path}: folder {path.parent} does not exist")
    if path.exists() and not force:
        raise UserError(f"{path} exists; pass --force to overwrite it")
    return path


def write_output(path: Union[str, Path], data: Union[bytes, str], *, force: bool) -> None:
    """Write atomically (rfkit_base.files); without `force` never replace a file, even one that
    appeared meanwhile. UserError if it cannot be written."""
    path = Path(path)
    try:
        write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data, overwrite=force)
    except FileExistsError:
        raise UserError(f"{path} exists; pass --force to overwrite it") from None
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


def run(
    parser: argparse.ArgumentParser,
    argv: Optional[Sequence[str]],
    errors: tuple[type[Exception], ...] = (),
    *,
    parse: Optional[Callable[[list[str]], argparse.Namespace]] = None,
    interrupted: str = "interrupted",
) -> int:
    """Parse argv and run the chosen subcommand's `run(args) -> int` (a command without
    subcommands: the parser's own `set_defaults(run=...)`); returns the exit status.

    UserError and `errors` (the library's own, e.g. a model that cannot be loaded) become one
    line on stderr and status 2; --help, --version and argparse's errors keep theirs.
    `parse(argv)` replaces `parser.parse_args` (rftrain parses twice, for its recipe's
    defaults); `interrupted` is what Ctrl-C prints after `prog: `, status 130.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # a bare command: what it can do, not a terse "a command is required"
        parser.print_help(sys.stderr)
        return 2
    try:
        args = (parse or parser.parse_args)(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    command: Optional[Callable[[argparse.Namespace], int]] = getattr(args, "run", None)
    if command is None:  # options but no subcommand
        parser.print_help(sys.stderr)
        return 2
    try:
        return command(args)
    except (UserError, *errors) as exc:
        if getattr(args, "traceback", False):
            traceback.print_exc()
        return fail(parser.prog, str(exc))
    except KeyboardInterrupt:
        print(f"{parser.prog}: {interrupted}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `rfcalc table ... | head`: not an error worth a traceback
        with contextlib.suppress(OSError):
            sys.stderr.close()
        return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (a sweep, a batch system, a time-limited session stopping the command) unwinds
    as Ctrl-C does inside the block: temporary files are removed, `run` prints `interrupted`,
    status 130. Only the main thread can set a handler; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def fail(prog: str, message: str) -> int:
    """Print `prog: error: message` as one line on stderr; returns 2, the status for bad
    input."""
    message = " ".join(message.split())  # one line, whatever the message held
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def exit_with(status: int) -> NoReturn:
    """End a console script's process with `status`, skipping the interpreter's final garbage
    collection: after `import torch` (and torchvision) it walks millions of objects that the
    process is about to drop anyway, 0.9 s of a 3.5 s `rfcalc table` on 2 cores. Frozen
    objects are left to the OS; atexit handlers still run and streams are flushed as usual.
    Only for a process's last step: frozen objects are never collected."""
    gc.freeze()
    sys.exit(status)
