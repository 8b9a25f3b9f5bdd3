"""`netbuilder variants | export | show`: arguments, exit codes, nothing else.

Every user error is one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from typing import NoReturn, Optional, Sequence

from rfcalc.load import TargetError, parse_input
from rfcalc.render import cells

from .budget import Sizing, evaluate, macs_poly, params_poly, solve
from .build import build, count_params
from .export import ExportError, source, write
from .presets import PRESETS, preset
from .spec import NetSpec, SpecError, check, from_dict
from .table import FORMATS, render
from .variants import SORT_KEYS, generate, lookup, receptive_field, sort_variants

DEFAULT_BUDGET = 200_000
MAX_BUDGET = 20_000_000  # every variant is built and run once on the CPU: keep that sane


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and still exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="netbuilder", description="Budgeted variants of a compact CIFAR-10 CNN.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(sp: argparse.ArgumentParser, budget_help: str) -> None:
        sp.add_argument("--budget", type=int, default=None, help=budget_help)
        sp.add_argument("--input", default="3,32,32", help="input shape C,H,W (default 3,32,32)")

    v = sub.add_parser("variants", help="the family widened to one budget, with rf, params, MACs")
    common(v, f"parameter budget (default {DEFAULT_BUDGET:,})")
    v.add_argument("--min-rf", type=float, default=0.0,
                   help="required output receptive field; smaller variants are hidden")
    v.add_argument("--format", choices=FORMATS, default="text")
    v.add_argument("--sort", choices=SORT_KEYS, default="rf",
                   help="rf/params/macs: largest first; name: alphabetical (default rf)")
    v.add_argument("--all", action="store_true",
                   help="also list variants below --min-rf and those that cannot be built")

    names = "s9, a variant name from `netbuilder variants`, or a spec .json file"
    e = sub.add_parser("export", help="write a standalone model file")
    e.add_argument("name", help=names)
    e.add_argument("-o", "--output", required=True, help="the .py file to write")
    e.add_argument("--force", action="store_true", help="overwrite an existing file")
    common(e, f"widen to this budget (variants: default {DEFAULT_BUDGET:,}; presets and spec "
              "files: as written unless given)")

    s = sub.add_parser("show", help="a net's widths, parameter formula, MACs and field")
    s.add_argument("name", help=names)
    s.add_argument("--latex", action="store_true", help="print the formula as LaTeX")
    common(s, "as for export")
    return p


def resolve(name: str, budget: Optional[int]) -> tuple[NetSpec, Optional[int]]:
    """The spec a NAME means, and the budget it is widened to (None: as written)."""
    if name.endswith(".json"):
        try:
            with open(name, encoding="utf-8") as fh:
                spec = from_dict(json.load(fh))
        except OSError as exc:
            raise SpecError(f"{name}: cannot read: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise SpecError(f"{name}: not JSON: {exc}") from None
    elif name in PRESETS:
        spec = preset(name)
    else:
        spec = lookup(name)
        budget = DEFAULT_BUDGET if budget is None else budget
    return spec, budget


def _budget(budget: Optional[int]) -> Optional[int]:
    if budget is not None and not 1 <= budget <= MAX_BUDGET:
        raise SpecError(f"--budget must be between 1 and {MAX_BUDGET:,} parameters, "
                        f"not {budget:,}")
    return budget


def _sized(args: argparse.Namespace) -> tuple[NetSpec, tuple[int, ...], Optional[Sizing]]:
    """The spec NAME means at its widths (solved if there is a budget), the input, the sizing."""
    shape = parse_input(args.input)
    spec, budget = resolve(args.name, _budget(args.budget))
    check(spec, shape)
    sizing = solve(spec, budget) if budget is not None else None
    return (sizing.spec if sizing else spec), shape, sizing


def cmd_variants(args: argparse.Namespace) -> str:
    shape = parse_input(args.input)
    budget = DEFAULT_BUDGET if args.budget is None else _budget(args.budget)
    if not (math.isfinite(args.min_rf) and args.min_rf >= 0):
        raise SpecError(f"--min-rf must be a number >= 0, not {args.min_rf:g}")
    measured = generate(budget, shape, args.min_rf)
    built = [v for v in measured if not v.skipped]
    skipped = [v for v in measured if v.skipped]
    shown = built if args.all else [v for v in built if v.meets_rf]
    hidden = []
    if not args.all and (len(shown) < len(built) or skipped):
        hidden.append(f"({len(built) - len(shown)} below receptive field {args.min_rf:g} and "
                      f"{len(skipped)} that cannot be built are hidden; --all lists them)")
    return render(sort_variants(shown, args.sort), args.format, budget=budget,
                  min_rf=args.min_rf, skipped=skipped if args.all else (), summary=hidden)


def cmd_export(args: argparse.Namespace) -> str:
    spec, shape, sizing = _sized(args)
    argv = ["netbuilder", "export", args.name, "-o", args.output]
    if sizing is not None:
        argv += ["--budget", str(sizing.budget)]
    write(args.output, source(spec, shape, command=shlex.join(argv)), force=args.force)
    return f"wrote {args.output}: {spec.name}, widths {','.join(map(str, spec.widths))}, " \
           f"{count_params(build(spec)):,} parameters\n"


def cmd_show(args: argparse.Namespace) -> str:
    spec, shape, sizing = _sized(args)
    poly = params_poly(spec)
    model = build(spec, shape).eval()
    sizes = check(spec, shape)
    rf, status = receptive_field(model, shape)
    lines = [f"{spec.name} on input {','.join(map(str, shape))}",
             f"widths      {', '.join(map(str, spec.widths))}",
             f"parameters  {count_params(model):,}",
             f"formula     P = {poly}",
             f"MACs        {evaluate(macs_poly(spec, shape), spec.widths):,}",
             f"output map  {cells.shape(sizes[-1])} before the global average",
             f"rf          {'?' if rf is None else cells.axes(rf)} ({status})"]
    if sizing is not None:
        lines.append(f"budget      {sizing.budget:,}: widths "
                     f"{','.join(map(str, sizing.next_widths))} would need "
                     f"{sizing.next_params:,}")
    if args.latex:
        import sympy
        lines.append(f"latex       {sympy.latex(poly)}")
    return "\n".join(lines) + "\n"


COMMANDS = {"variants": cmd_variants, "export": cmd_export, "show": cmd_show}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input)."""
    args = _parser().parse_args(argv)
    try:
        out = COMMANDS[args.command](args)
    except (SpecError, ExportError, TargetError) as exc:
        print(f"netbuilder: error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
