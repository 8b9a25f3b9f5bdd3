"""`netbuilder variants | export | show`: arguments, exit codes, nothing else.

Every user error is one line on stderr and exit status 2; a bare `netbuilder` prints the help
(each command's purpose) on stderr, status 2. The conventions are `rfkit_base.commandline`'s.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from rfcalc.load import TargetError, parse_input
from rfcalc.render import cells
from rfkit_base.commandline import (
    Parser,
    add_progress_flag,
    check_output,
    progress,
    run,
    write_output,
)

# budget (sympy), build and export (torch) are imported by the commands that use them, so
# `--help`, `--version` and a bad command line answer before either loads
from .factory import DEFAULT_BUDGET, resolve
from .factory import check_budget as _budget
from .spec import NetSpec, SpecError, check
from .table import FORMATS, render
from .variants import SORT_KEYS, family, generate, receptive_field, sort_variants

if TYPE_CHECKING:
    from .budget import Sizing

__all__ = ["main"]

DEFAULT_INPUT = "3,32,32"


def _parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="netbuilder", description="Budgeted variants of a compact CIFAR-10 CNN.", version=True
    )

    def command(name: str, purpose: str, text: Callable[[argparse.Namespace], str]):
        return p.command(name, purpose, lambda args: _print(text(args)))

    def common(sp: argparse.ArgumentParser, budget: Optional[int], budget_help: str) -> None:
        sp.add_argument("--budget", type=int, default=budget, help=budget_help)
        sp.add_argument(
            "--input", default=DEFAULT_INPUT, metavar="C,H,W", help="input shape without the batch"
        )

    v = command(
        "variants", "The family widened to one budget, with rf, params and MACs.", cmd_variants
    )
    common(v, DEFAULT_BUDGET, "parameter budget")
    v.add_argument(
        "--min-rf",
        type=float,
        default=0.0,
        help="required output receptive field; smaller variants are hidden",
    )
    v.add_argument("--format", choices=FORMATS, default="text", help="output format")
    v.add_argument(
        "--sort",
        choices=SORT_KEYS,
        default="rf",
        help="rf/params/macs: largest first; name: alphabetical",
    )
    v.add_argument(
        "--all",
        action="store_true",
        help="also list variants below --min-rf and those that cannot be built",
    )
    add_progress_flag(v)

    names = "s9, a variant name from `netbuilder variants`, or a spec .json file"
    as_written = (
        f"widen to this budget (default: {DEFAULT_BUDGET:,} for a variant; a preset "
        "or spec file as written)"
    )
    e = command("export", "Write a standalone model file.", cmd_export)
    e.add_argument("name", help=names)
    e.add_argument("-o", "--output", required=True, metavar="FILE", help="the .py file to write")
    e.add_argument("--force", action="store_true", help="overwrite an existing file")
    common(e, None, as_written)

    s = command("show", "A net's widths, parameter formula, MACs and receptive field.", cmd_show)
    s.add_argument("name", help=names)
    s.add_argument("--latex", action="store_true", help="print the formula as LaTeX")
    common(s, None, as_written)
    return p


def _print(text: str) -> int:
    sys.stdout.write(text)
    return 0


def _sized(args: argparse.Namespace) -> tuple[NetSpec, tuple[int, ...], Optional[Sizing]]:
    """The spec NAME means at its widths (solved if there is a budget), the input, the sizing."""
    from .budget import solve

    shape = parse_input(args.input)
    spec, budget = resolve(args.name, _budget(args.budget))
    check(spec, shape)
    sizing = solve(spec, budget) if budget is not None else None
    return (sizing.spec if sizing else spec), shape, sizing


def cmd_variants(args: argparse.Namespace) -> str:
    shape = parse_input(args.input)
    budget = _budget(args.budget)
    if not (math.isfinite(args.min_rf) and args.min_rf >= 0):
        raise SpecError(f"--min-rf must be a number >= 0, not {args.min_rf:g}")
    # 20-30 s on a laptop CPU: say how far it is (on a terminal, or with --progress)
    measured = generate(
        budget,
        shape,
        args.min_rf,
        progress=lambda items: progress(
            items, total=len(family()), desc="variants", unit="net", show=args.progress
        ),
    )
    built = [v for v in measured if not v.skipped]
    skipped = [v for v in measured if v.skipped]
    shown = built if args.all else [v for v in built if v.meets_rf]
    hidden = []
    if not args.all and (len(shown) < len(built) or skipped):
        hidden.append(
            f"({len(built) - len(shown)} below receptive field {args.min_rf:g} and "
            f"{len(skipped)} that cannot be built are hidden; --all lists them)"
        )
    return render(
        sort_variants(shown, args.sort),
        args.format,
        budget=budget,
        min_rf=args.min_rf,
        skipped=skipped if args.all else (),
        summary=hidden,
    )


def cmd_export(args: argparse.Namespace) -> str:
    from .build import build, count_params
    from .export import source

    check_output(args.output, force=args.force, example="model.py")
    spec, shape, sizing = _sized(args)
    argv = ["netbuilder", "export", args.name, "-o", args.output]
    if sizing is not None:
        argv += ["--budget", str(sizing.budget)]
    write_output(args.output, source(spec, shape, command=shlex.join(argv)), force=args.force)
    return (
        f"wrote {args.output}: {spec.name}, widths {','.join(map(str, spec.widths))}, "
        f"{count_params(build(spec)):,} parameters\n"
    )


def cmd_show(args: argparse.Namespace) -> str:
    from .budget import evaluate, macs_poly, params_poly
    from .build import build, count_params

    spec, shape, sizing = _sized(args)
    poly = params_poly(spec)
    model = build(spec, shape).eval()
    sizes = check(spec, shape)
    rf, status = receptive_field(model, shape)
    lines = [
        f"{spec.name} on input {','.join(map(str, shape))}",
        f"widths      {', '.join(map(str, spec.widths))}",
        f"parameters  {count_params(model):,}",
        f"formula     P = {poly}",
        f"MACs        {evaluate(macs_poly(spec, shape), spec.widths):,}",
        f"output map  {cells.shape(sizes[-1])} before the global average",
        f"rf          {'?' if rf is None else cells.axes(rf)} ({status})",
    ]
    if sizing is not None:
        lines.append(
            f"budget      {sizing.budget:,}: widths "
            f"{','.join(map(str, sizing.next_widths))} would need "
            f"{sizing.next_params:,}"
        )
    if args.latex:
        import sympy

        lines.append(f"latex       {sympy.latex(poly)}")
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input)."""
    return run(_parser(), argv, errors=(SpecError, TargetError))


if __name__ == "__main__":
    sys.exit(main())
