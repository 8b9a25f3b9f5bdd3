"""`rfcalc table|verify|graph|erf|explore TARGET`: arguments, exit codes, nothing else.

Exit status: 0 fine, 1 `verify` found a disagreement, 2 bad input (one line on stderr) or no
command at all (the help, on stderr). The conventions are `rfkit_base.commandline`'s.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Optional, Sequence

from rfcalc.geometry import RFError
from rfcalc.load import TargetError, load_target, load_without_weights, parse_input
from rfcalc.render import FORMATS
from rfcalc.render.cells import TABLE_COLUMNS
from rfcalc.render.table import FORMATS as VERIFY_FORMATS  # verify writes through the same writer
from rfkit_base.commandline import (
    Parser,
    UserError,
    add_progress_flag,
    check_output,
    prints_to_stderr,
    run,
    whole_number,
    write_output,
)

__all__ = ["main"]

DEFAULT_INPUT = "3,32,32"
GRAPH_FORMATS = ("svg", "png", "pdf", "dot")


def _input(text: str) -> tuple[int, ...]:
    try:
        return parse_input(text)
    except TargetError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_depth = whole_number(0, ": give 0 (every row) or more")


def _columns(text: str) -> tuple[str, ...]:
    from rfcalc.render.layers import check_columns

    try:
        return check_columns(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="rfcalc", description="Exact receptive fields of a PyTorch model.", version=True
    )

    def command(name: str, help_: str, run: Callable[[argparse.Namespace], int]):
        sub = parser.command(name, help_, run)
        sub.add_argument(
            "target",
            metavar="TARGET",
            help="model.py, model.py:Name (class or factory) or package.module:attr",
        )
        sub.add_argument(
            "--input",
            type=_input,
            default=DEFAULT_INPUT,
            metavar="C,H,W",
            help="input shape without the batch (C,L for Conv1d, C,D,H,W for 3-D)",
        )
        return sub

    table = command(
        "table", "Print every layer's kernel, stride, jump and receptive field.", _table
    )
    table.add_argument("--format", choices=FORMATS, default="text", help="output format")
    table.add_argument(
        "--depth",
        type=_depth,
        metavar="N",
        help="fold rows nested deeper than N module levels into their module; 0: every row "
        "(default: text is fitted to 120 columns, other formats show every row)",
    )
    table.add_argument(
        "--columns",
        type=_columns,
        metavar="A,B,...",
        help=f"the columns to show, in order (name comes first): {', '.join(TABLE_COLUMNS)} "
        "(default: all; text leaves out dilation when no row is dilated)",
    )
    table.add_argument(
        "--compact",
        action="store_true",
        help="leave out rows that change neither size nor field (BatchNorm, ReLU, dropout, ...)",
    )
    verify = command("verify", "Compare the computed fields with a gradient measurement.", _verify)
    verify.add_argument("--format", choices=VERIFY_FORMATS, default="text", help="output format")
    verify.add_argument(
        "--fast",
        action="store_true",
        help="measure each distinct field once; rows that pass a field on "
        "unchanged (ReLU, BatchNorm) reuse that measurement",
    )
    add_progress_flag(verify)
    graph = command("graph", "Draw the architecture with each layer's size and field.", _graph)
    graph.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help=f"output file; its suffix picks the format ({', '.join(GRAPH_FORMATS)})",
    )
    graph.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    graph.add_argument(
        "--compact",
        action="store_true",
        help="leave out ops that change neither size nor field (BatchNorm, "
        "ReLU, dropout, ...), keeping the edges through them",
    )
    # the effective receptive field and the explorer page: arguments and runs in erf_cli
    from rfcalc.erf_cli import add_erf_arguments, add_explore_arguments, run_erf, run_explore

    add_erf_arguments(
        command(
            "erf",
            "The effective receptive field: the pixels a unit really uses (Luo et al. 2016).",
            run_erf,
        )
    )
    add_explore_arguments(
        command(
            "explore",
            "Write one offline HTML page to click through the fields of every layer.",
            run_explore,
        )
    )
    return parser


def _analyze(args: argparse.Namespace, *, weights: bool = True):
    """Load the target and analyse it; bad targets and too-small inputs become UserError.
    `weights=False`: the model may be built without weights (on the meta device), for
    commands that need its shapes only."""
    with prints_to_stderr():
        # first, so a bad target is reported before any work
        if weights:
            model, materialize = load_target(args.target), None
        else:
            model, materialize = load_without_weights(args.target)
        from rfcalc import analyze

        try:
            return model, analyze(model, args.input, materialize=materialize)
        except RFError as exc:  # the analyzer's "input too small at layer X", a failed forward
            raise UserError(_forward_error(args, exc)) from exc


def _forward_error(args: argparse.Namespace, exc: RFError) -> str:
    """`model.py at input 3,32,32: conv1 (line 11): ...; hint: ...`: the target's own file
    is named once, a hint added for the usual mistakes (rfcalc.hints)."""
    from rfcalc.hints import hint
    from rfcalc.load import split_target
    from rfcalc.record import _shown_path

    message = str(exc)
    where, _, is_file = split_target(args.target)
    if is_file:
        message = message.replace(f"({_shown_path(where)}:", "(line ")
    shape = ",".join(map(str, args.input))
    extra = hint(message, args.input)
    tail = f"; {extra}" if extra else ""
    return f"{args.target} at input {shape}: {message}{tail} (--traceback shows the rest)"


def _table(args: argparse.Namespace) -> int:
    from rfcalc.render import render

    _, analysis = _analyze(args, weights=False)
    options = {"depth": args.depth, "columns": args.columns, "compact": args.compact}
    sys.stdout.write(render(analysis, args.format, **options))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from rfcalc.render import verify as render_verify
    from rfcalc.verify import verify

    model, analysis = _analyze(args)
    with prints_to_stderr():
        result = verify(model, args.input, analysis, unique=args.fast, progress=args.progress)
    sys.stdout.write(render_verify.render(result, args.format))
    return 0 if result.agree else 1


def _graph(args: argparse.Namespace) -> int:
    import graphviz

    from rfcalc.render.graphviz import build

    formats = (*GRAPH_FORMATS, "gv")  # .gv: graphviz's other name for .dot
    path = check_output(
        args.output, force=args.force, example="net.svg", formats=formats, what="graph format"
    )
    fmt = path.suffix.lower().lstrip(".")
    fmt = "dot" if fmt == "gv" else fmt
    _, analysis = _analyze(args, weights=False)
    dot = build(analysis, compact_rows=args.compact)
    if fmt == "dot":
        data = dot.source.encode()
    else:
        try:
            data = dot.pipe(format=fmt)
        except graphviz.ExecutableNotFound:
            raise UserError(
                f"graphviz's `dot` program was not found on PATH: install graphviz "
                f"to write .{fmt}, or write a .dot file"
            ) from None
        except graphviz.CalledProcessError as exc:
            detail = (exc.stderr or b"").decode(errors="replace").strip()
            raise UserError(f"graphviz's `dot` failed: {detail}") from None
    write_output(path, data, force=args.force)
    print(f"wrote {path}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status (the console script passes it to sys.exit)."""
    return run(_parser(), argv, errors=(TargetError, RFError))


if __name__ == "__main__":
    sys.exit(main())
