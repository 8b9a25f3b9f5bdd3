"""`rfcalc table|verify|graph TARGET`: arguments, exit codes, nothing else.

Exit status: 0 fine, 1 `verify` found a disagreement, 2 bad input (one line on stderr).
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Callable, NoReturn, Optional, Sequence

from rfcalc.files import write_bytes
from rfcalc.geometry import RFError
from rfcalc.load import TargetError, load_target, parse_input
from rfcalc.render import FORMATS
from rfcalc.render.verify import FORMATS as VERIFY_FORMATS

__all__ = ["main"]

DEFAULT_INPUT = "3,32,32"
GRAPH_FORMATS = ("svg", "png", "pdf", "dot")


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but its errors are one line (no usage block) so scripts can read them."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _input(text: str) -> tuple[int, ...]:
    try:
        return parse_input(text)
    except TargetError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rfcalc", description="Exact receptive fields of a PyTorch model.")
    subs = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, help_: str, run: Callable[[argparse.Namespace], int]):
        sub = subs.add_parser(name, help=help_, description=help_)
        sub.add_argument("target", metavar="TARGET",
                         help="model.py, model.py:Name (class or factory) or package.module:attr")
        sub.add_argument("--input", type=_input, default=_input(DEFAULT_INPUT), metavar="C,H,W",
                         help=f"input shape without the batch (default {DEFAULT_INPUT}; "
                              "C,L for Conv1d)")
        sub.set_defaults(run=run)
        return sub

    table = command("table", "Print every layer's kernel, stride, jump and receptive field.",
                    _table)
    table.add_argument("--format", choices=FORMATS, default="text")
    verify = command("verify", "Compare the computed fields with a gradient measurement.",
                     _verify)
    verify.add_argument("--format", choices=VERIFY_FORMATS, default="text")
    verify.add_argument("--fast", action="store_true",
                        help="measure each distinct field once; rows that pass a field on "
                             "unchanged (ReLU, BatchNorm) reuse that measurement")
    verify.add_argument("--progress", action="store_true",
                        help="show a progress bar on stderr even when it is not a terminal")
    graph = command("graph", "Draw the architecture with each layer's size and field.", _graph)
    graph.add_argument("-o", "--output", required=True, metavar="FILE",
                       help=f"output file; its suffix picks the format ({', '.join(GRAPH_FORMATS)})")
    graph.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    graph.add_argument("--compact", action="store_true",
                       help="leave out ops that change neither size nor field (BatchNorm, "
                            "ReLU, dropout, ...), keeping the edges through them")
    return parser


def _analyze(args: argparse.Namespace):
    """Load the target and analyse it; bad targets and too-small inputs become UsageError."""
    with _user_prints_to_stderr():
        model = load_target(args.target)  # first, so a bad target is reported before any work
        from rfcalc import analyze

        try:
            return model, analyze(model, args.input)
        except RFError as exc:  # the analyzer's "input too small at layer X", a failed forward
            shape = ",".join(map(str, args.input))
            raise UsageError(f"{args.target} at input {shape}: {exc}") from None


def _user_prints_to_stderr():
    """The model file's own prints (at import, in __init__ or forward) go to stderr, so
    stdout holds only our output and `--format json` stays parseable."""
    return contextlib.redirect_stdout(sys.stderr)


def _table(args: argparse.Namespace) -> int:
    from rfcalc.render import render

    _, analysis = _analyze(args)
    sys.stdout.write(render(analysis, args.format))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from rfcalc.render import verify as render_verify
    from rfcalc.verify import verify

    model, analysis = _analyze(args)
    with _user_prints_to_stderr():
        result = verify(model, args.input, analysis, unique=args.fast,
                        progress=True if args.progress else None)
    sys.stdout.write(render_verify.render(result, args.format))
    return 0 if result.agree else 1


def _graph(args: argparse.Namespace) -> int:
    import graphviz

    from rfcalc.render.graphviz import build

    path = Path(args.output)
    fmt = path.suffix.lower().lstrip(".")
    if fmt == "gv":
        fmt = "dot"
    if fmt not in GRAPH_FORMATS:
        raise UsageError(f"{path}: unknown graph format {path.suffix or '(no suffix)'!r}; "
                         f"use one of .{', .'.join(GRAPH_FORMATS)}")
    if not path.parent.is_dir():
        raise UsageError(f"{path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise UsageError(f"{path} is a folder; give a file name such as net.svg")
    if path.exists() and not args.force:
        raise UsageError(f"{path} exists; pass --force to overwrite it")
    _, analysis = _analyze(args)
    dot = build(analysis, compact_rows=args.compact)
    if fmt == "dot":
        data = dot.source.encode()
    else:
        try:
            data = dot.pipe(format=fmt)
        except graphviz.ExecutableNotFound:
            raise UsageError(f"graphviz's `dot` program was not found on PATH: install graphviz "
                             f"to write .{fmt}, or write a .dot file") from None
        except graphviz.CalledProcessError as exc:
            detail = (exc.stderr or b"").decode(errors="replace").strip()
            raise UsageError(f"graphviz's `dot` failed: {detail}") from None
    _write(path, data, overwrite=args.force)
    print(f"wrote {path}")
    return 0


def _write(path: Path, data: bytes, overwrite: bool) -> None:
    """Write atomically; without `overwrite`, never replace a file that appeared meanwhile."""
    try:
        write_bytes(path, data, overwrite=overwrite)
    except FileExistsError:
        raise UsageError(f"{path} exists; pass --force to overwrite it") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status (the console script passes it to sys.exit)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a one-line argparse error
        return int(exc.code or 0)
    try:
        return args.run(args)
    except (UsageError, TargetError, RFError) as exc:
        message = " ".join(str(exc).split())  # one line, whatever the message held
        print(f"rfcalc: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `rfcalc table ... | head`: not an error worth a traceback
        with contextlib.suppress(OSError):
            sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
