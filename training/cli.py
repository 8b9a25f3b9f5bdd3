"""`rftrain` / `python -m training`: arguments and exit codes (2 = bad input), nothing else.

The recipe and augmentation options are derived from the `TrainConfig` and `AugConfig`
dataclasses (names, defaults, types, help), so a new setting is one new field.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Optional, Sequence

from .allocator import tune_malloc
from .augment import AugConfig
from .config import RECIPES, TrainConfig
from .options import (
    CheckingParser,
    OneLineParser,
    UserError,
    add_dataclass_options,
    dataclass_values,
    fail,
    package_version,
    resolve_device,
)

PROG = "rftrain"
SPEED = (
    "fast",
    "amp",
    "channels_last",
    "compile",
    "compile_mode",
    "drop_last",
    "eval_batch_size",
    "workers",
    "sync_bn",
)


RECIPE_HELP = {
    "assignment": "the assignment's published code: OneCycleLR 0.005 -> 0.1 (at 40 %%) -> "
    "0.005 (80 %%) -> 5e-7, momentum cycled 0.95 -> 0.85 -> 0.95, its augmentation",
    "previous": "this package's earlier default: OneCycleLR from 0.05, momentum fixed at 0.9, "
    "the earlier augmentation",
}


def _parser(
    recipe: str = "assignment", parser_class: type[OneLineParser] = OneLineParser
) -> argparse.ArgumentParser:
    """rftrain's options, their defaults those of the named recipe."""
    start = RECIPES[recipe]()
    p = parser_class(
        prog=PROG,
        description="Train a net on CIFAR-10 with a named recipe (default: the assignment's, "
        "SGD + OneCycleLR with its augmentation); other flags change single settings. Under "
        "torchrun (torchrun --nproc_per_node N -m training ...) N processes train one model.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    what = p.add_argument_group("model (one of)").add_mutually_exclusive_group()
    what.add_argument(
        "--model", metavar="TARGET", help="model.py, model.py:Name or package.module:attr"
    )
    what.add_argument("--preset", metavar="NAME", help="a netbuilder preset, e.g. s9")

    g = p.add_argument_group("data and output")
    g.add_argument(
        "--data-dir",
        help="cifar-10-batches-py/ or train/ + test/ image folders "
        "(or where --download puts the batches); required",
    )
    g.add_argument("--download", action="store_true", help="fetch CIFAR-10 with torchvision")
    g.add_argument(
        "--data-cache",
        metavar="FILE.npz",
        help="keep decoded image folders in this .npz (rebuilt if the folder changes)",
    )
    g.add_argument("--out", help="output folder; required")
    g.add_argument("--resume", action="store_true", help="continue the run in --out")
    g.add_argument("--force", action="store_true", help="start over in a non-empty --out")
    g.add_argument(
        "--stop-after",
        type=int,
        metavar="EPOCHS",
        help="stop after this many more epochs; continue later with --resume "
        "(for time-limited sessions)",
    )
    g.add_argument(
        "--limit-train", type=int, metavar="N", help="train on a fixed class-balanced subset of N"
    )
    g.add_argument(
        "--limit-test", type=int, metavar="N", help="test on a fixed class-balanced subset of N"
    )

    g.add_argument(
        "--limit-stratify",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="--limit-* keep each class's share; --no-limit-stratify takes the "
        "first N of a fixed permutation, as runs before this option did",
    )

    g = p.add_argument_group("recipe")
    g.add_argument(
        "--recipe",
        choices=tuple(RECIPES),
        default=recipe,
        help="the settings to start from; the flags below change single ones. "
        + "; ".join(f"{name}: {text}" for name, text in RECIPE_HELP.items()),
    )
    add_dataclass_options(g, TrainConfig, skip=("aug", "recipe", *SPEED), defaults=start)
    g = p.add_argument_group("augmentation (same config for both pipelines)")
    g.add_argument("--no-augment", action="store_true", help="normalize only")
    add_dataclass_options(g, AugConfig, defaults=start.aug)

    g = p.add_argument_group("speed")
    g.add_argument(
        "--device",
        default="auto",
        help="auto, cpu, cuda, cuda:1, ... (under "
        "torchrun, cuda means each process's LOCAL_RANK GPU)",
    )
    g.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (None: only on a terminal)",
    )
    add_dataclass_options(
        g,
        TrainConfig,
        skip=tuple(n for n in TrainConfig.__dataclass_fields__ if n not in SPEED),
        defaults=start,
    )
    return p


def parse(
    argv: Sequence[str], parser_class: type[OneLineParser] = OneLineParser
) -> argparse.Namespace:
    """Parse twice: first the recipe's name, then every option with that recipe's values as
    the defaults, so a flag given overrides one setting and the rest are the recipe's."""
    first = parser_class(prog=PROG, add_help=False)  # --help waits for the recipe's defaults
    first.add_argument("--recipe", choices=tuple(RECIPES), default="assignment")
    recipe = first.parse_known_args(argv)[0].recipe
    return _parser(recipe, parser_class).parse_args(argv)


def option_names() -> frozenset[str]:
    """Every long option rftrain takes, as typed (`--lr`, `--no-augment`)."""
    return frozenset(s for s in _parser()._option_string_actions if s.startswith("--"))


def check_options(argv: Sequence[str]) -> TrainConfig:
    """The TrainConfig `argv` describes, parsed and checked as rftrain will; UserError (one
    line) for a value rftrain would refuse, and no exit, so a caller can check ahead."""
    return config_from_args(parse(argv, CheckingParser))


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig the parsed options describe (automatic settings still None)."""
    try:
        aug = AugConfig.off() if args.no_augment else AugConfig(**dataclass_values(AugConfig, args))
        values = {k: v for k, v in dataclass_values(TrainConfig, args).items() if k != "aug"}
        cfg = TrainConfig(**values, aug=aug)
        cfg.check()
    except ValueError as exc:  # the configs' own range checks
        raise UserError(str(exc)) from None
    return cfg


def _run(
    args: argparse.Namespace, argv: list[str], on_epoch_end: Sequence = ()
) -> tuple[dict, bool]:
    """Train as the options say; returns the summary and whether this process is rank 0.
    `on_epoch_end`: train_run's callbacks (rfsweep's Ray trial reports each epoch to Tune)."""
    from . import distributed
    from .data import load_cifar10
    from .models import load_model
    from .run import check_out, train_run

    if args.model is None and args.preset is None:
        raise UserError("give the model: --model TARGET or --preset NAME")
    for name in ("data_dir", "out"):
        if getattr(args, name) is None:
            raise UserError(f"--{name.replace('_', '-')} is required")
    device = resolve_device(args.device)
    cfg = config_from_args(args)
    world = distributed.world_from_env(device)
    # Fail fast on a bad target or output folder, before decoding 60,000 images; nothing is
    # written before the data and the model have passed their checks too (train_run).
    load_model(args.model, args.preset)
    check_out(Path(args.out), resume=args.resume, force=args.force)
    data = load_cifar10(args.data_dir, download=args.download, cache=args.data_cache)
    full = (len(data.train_y), len(data.test_y))
    data = data.limited(args.limit_train, args.limit_test, stratify=args.limit_stratify)
    if world.main:
        used = (len(data.train_y), len(data.test_y))
        of = f" (of {full[0]} / {full[1]})" if used != full else ""
        print(
            f"data: {data.source}: {used[0]} train, {used[1]} test images{of} "
            f"({data.decode_seconds:.1f} s to load)",
            flush=True,
        )
    summary = train_run(
        lambda: load_model(args.model, args.preset),
        data,
        cfg,
        args.out,
        device=device,
        resume=args.resume,
        force=args.force,
        command=shlex.join([PROG, *argv]),
        progress=args.progress,
        world=world,
        stop_after=args.stop_after,
        on_epoch_end=on_epoch_end,
    )
    return summary, world.main


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _stop_on_sigterm():
    """SIGTERM (a sweep or a batch system stopping the run) unwinds like Ctrl-C: temporary
    files are removed and the last checkpoint stays the one to resume from. Returns the
    handler to restore (None where it could not be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _interrupt)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if not argv:  # a bare command: what it takes, on stderr with status 2 like rfcalc's
        parser.print_help(sys.stderr)
        return 2
    args = parse(argv)
    tune_malloc()  # before the data and the model take their memory
    from . import distributed

    previous = _stop_on_sigterm()
    try:
        summary, main_rank = _run(args, argv)
    except UserError as exc:
        return fail(PROG, str(exc))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; continue with the same command and --resume", file=sys.stderr)
        return 130
    finally:
        distributed.shutdown()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if main_rank:
        best = summary["best_test_acc"]
        what = "done" if summary["finished"] else "stopped (continue with --resume)"
        print(
            f"{what}: {summary['epochs_done']} epochs, best test accuracy "
            f"{best:.2%} in {summary['wall_seconds']:.0f} s; results in {args.out}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
