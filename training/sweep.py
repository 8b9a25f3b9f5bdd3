"""`rfsweep SWEEP.json`: many rftrain runs (models x recipes x seeds) to completion as the
trials of one Ray Tune experiment, then one JSON with every run's result.

A sweep file (JSON; relative paths are relative to the current folder, as for rftrain):

    {"name": "ch8", "out": "runs/ch8", "result": "book/results/ch8.json",
     "data_dir": "data/cifar10-jpeg", "data_cache": "data/cifar10-jpeg.npz",
     "common": {"epochs": 3, "limit_train": 10000, "fast": true},
     "models": {"s9": {"preset": "s9", "seeds": [1, 2, 3]},
                "dws-dilated-skip-x2": {"variant": "dws-dilated-skip-x2", "budget": 200000},
                "mine": {"model": "nets/mine.py:Net", "options": {"batch_size": 256}}},
     "recipes": {"onecycle": {}, "fixed-lr-0.1": {"schedule": "constant", "lr": 0.1,
                                  "momentum_schedule": "fixed"}},
     "seeds": [1, 2]}

Options are rftrain's (`lr` or `--lr`); true is `--flag`, false `--no-flag`, null leaves the
default. They merge common < model < recipe, and the seed comes last; a model's own "seeds"
replace the sweep's. Every run's options are checked as rftrain checks them before the first
run starts (and before --list), as are the data folder and each model file (it must load),
and model and recipe names must be plain folder names. Each run lives in
OUT/MODEL/RECIPE/seedN and logs to OUT/logs/MODEL--RECIPE--seedN.log. A finished run
(summary.json says so) is skipped, an interrupted one (last.pt) resumed, so the command can
simply be started again after a kill. A `variant` is exported by netbuilder into
OUT/models/NAME.py first.

Ray: started inside rfsweep on this machine (dashboard off, nothing to set up), or the cluster
at --address / RAY_ADDRESS (its nodes must see OUT and the data at the same paths). Each run is
a Tune trial with --cpus-per-run CPUs and --gpus-per-run GPUs (0.25: four runs share a GPU);
Tune runs as many at once as fit. A killed trial is retried from its last epoch
(--max-failures); an interrupted sweep, started again, restores its Tune experiment in
OUT/tune/ (TensorBoard: tensorboard --logdir OUT/tune).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from rfkit_base.commandline import Parser as OneLineParser
from rfkit_base.commandline import UserError, fail
from rfkit_base.commandline import flag as option_flag

from .fsutil import write_json
from .record import SUMMARY_KEYS, epoch_rows
from .tune_sweep import RayUnavailable
from .tune_trial import option_flags, rftrain_argv, run_status, trial_config, trial_record

PROG = "rfsweep"
# rftrain options the sweep sets for each run itself (its folder, device, model, restart).
SWEEP_SETS = frozenset({"out", "device", "model", "preset", "resume", "force", "help", "version"})
# The sweep's own folders beside the models' (OUT/models/NAME.py, OUT/logs/*.log, OUT/tune).
RESERVED_NAMES = frozenset({"models", "logs", "tune"})
# A row of the result: the run record's keys (training/record.py) and its history as "epochs";
# "recipe" stays the sweep's name for the run's options (the record's is in config.recipe).
RESULT_KEYS = tuple(k for k in SUMMARY_KEYS if k not in ("history", "recipe"))


@dataclass(frozen=True)
class Run:
    """One rftrain run of the sweep."""

    model: str
    recipe: str
    seed: int
    target: dict[str, str]  # {"model": X} or {"preset": X}
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.model}/{self.recipe}/seed{self.seed}"


@dataclass
class Sweep:
    name: str
    out: Path
    result: Path
    data: dict[str, str]  # data_dir (and data_cache)
    runs: list[Run]
    variants: dict[str, tuple[str, Optional[int]]]  # model name -> (netbuilder name, budget)

    def folder(self, run: Run) -> Path:
        return self.out / run.model / run.recipe / f"seed{run.seed}"

    def log(self, run: Run) -> Path:
        return self.out / "logs" / f"{run.model}--{run.recipe}--seed{run.seed}.log"

    def trial_options(self, run: Run) -> dict[str, Any]:
        """rftrain's options of the run (model, data and the run's own), as its trial gets
        them: paths absolute, since a trial runs in its own folder, maybe on another node."""
        return {**_absolute(run.target), **_absolute(self.data), **run.options}


def _absolute(paths: dict[str, str]) -> dict[str, str]:
    """Model files and data paths made absolute (a `package.module:attr` target is kept)."""
    out = {}
    for name, value in paths.items():
        file, colon, attr = value.partition(":") if name == "model" else (value, "", "")
        if name != "preset" and (name != "model" or file.endswith(".py") or Path(file).exists()):
            value = str(Path(file).absolute()) + colon + attr
        out[name] = value
    return out


def _dict(spec: dict, key: str, where: str) -> dict:
    value = spec.get(key, {})
    if not isinstance(value, dict):
        raise UserError(f"{where}: '{key}' must be an object of rftrain options")
    return value


def _plain_name(name: str, what: str, where: str) -> str:
    """`name` if it is one plain path component (it becomes a folder under OUT): UserError
    for '', '.', '..', a slash, or the sweep's own folders, which would put a run elsewhere."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\0") or name != name.strip():
        raise UserError(
            f"{where}: {what} name {name!r} must be a plain folder name (no slash, not . or ..)"
        )
    if name in RESERVED_NAMES:
        raise UserError(f"{where}: {what} name {name!r} is taken by the sweep's own {name} folder")
    return name


def _check_target(name: str, m: dict, where: str) -> None:
    """A preset or a variant (and its budget) that netbuilder knows; UserError otherwise."""
    from netbuilder.spec import SpecError

    try:
        if "preset" in m:
            from netbuilder.presets import preset

            preset(str(m["preset"]))
        elif "variant" in m:
            from netbuilder.factory import MAX_BUDGET, check_budget
            from netbuilder.variants import lookup

            lookup(str(m["variant"]))
            budget = m.get("budget")
            if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool)):
                raise SpecError(
                    f"budget must be a whole number of parameters from 1 to {MAX_BUDGET:,}, "
                    f"not {budget!r}"
                )
            check_budget(budget)
    except SpecError as exc:
        raise UserError(f"{where}: model {name!r}: {exc}") from None


def _near(name: str, known: list[str]) -> str:
    """' (did you mean X?)' for a shortened or mistyped option name, else ''."""
    from difflib import get_close_matches

    near = [k for k in known if k.startswith(name)] or get_close_matches(name, known, n=1)
    return f" (did you mean {near[0].replace('-', '_')!r}?)" if len(near) == 1 else ""


def check_runs(sweep: Sweep, where: str) -> None:
    """Every run's options parsed and checked as rftrain will (names, values, the TrainConfig
    they make), before the first run starts: UserError naming the run and the bad value."""
    from .cli import check_options, option_names

    known = option_names()
    seen: set[tuple] = set()
    for run in sweep.runs:
        for name in run.options:
            flag = option_flag(name)
            if flag[2:] in SWEEP_SETS:
                raise UserError(
                    f"{where}: run {run.key}: option {name!r} is set by rfsweep for each run"
                )
            if flag not in known:  # exact names: argparse would take `ep` for `epochs`
                hint = _near(flag[2:], sorted(k[2:] for k in known))
                raise UserError(f"{where}: run {run.key}: {name!r} is not an rftrain option{hint}")
        options = {**run.target, **sweep.data, **run.options}
        argv = ["--out", str(sweep.folder(run)), *option_flags(options)]
        if tuple(argv) in seen:
            continue
        seen.add(tuple(argv))
        try:
            check_options(argv)
        except UserError as exc:
            raise UserError(f"{where}: run {run.key}: {exc}") from None


def check_inputs(sweep: Sweep, where: str, runs: Optional[Sequence[Run]] = None) -> None:
    """The data folder and each model file (or module target) of `runs` (default: all)
    there and loadable, as rftrain checks them first: UserError naming the run, before Ray
    starts, so that bad input is one line and status 2 rather than a trial Tune retries.
    A netbuilder variant's file is written later (export_variants) and checked by name."""
    from rfkit_base.commandline import prints_to_stderr

    from .data import check_data_dir
    from .models import load_model

    runs = sweep.runs if runs is None else runs
    checked: set[tuple[str, str]] = set()
    for run in runs:
        inputs = [("data_dir", sweep.data["data_dir"])]
        if run.model not in sweep.variants and "model" in run.target:
            inputs.append(("model", run.target["model"]))
        for kind, value in inputs:
            if (kind, value) in checked or (kind == "data_dir" and run.options.get("download")):
                continue
            try:
                if kind == "data_dir":
                    check_data_dir(value)
                else:
                    with prints_to_stderr():  # --list's stdout stays the list
                        load_model(value)  # imports the file and builds the net, as rftrain
            except UserError as exc:
                raise UserError(f"{where}: run {run.key}: {exc}") from None
            checked.add((kind, value))


def load_sweep(path: str | os.PathLike) -> Sweep:
    """Read and check a sweep file; UserError with the reason if it is not one."""
    path = Path(path)
    try:
        spec = json.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise UserError(f"{path}: a sweep is a JSON object")
    unknown = set(spec) - {
        "name",
        "out",
        "result",
        "data_dir",
        "data_cache",
        "common",
        "models",
        "recipes",
        "seeds",
    }
    if unknown:
        raise UserError(f"{path}: unknown keys {', '.join(sorted(unknown))}")
    for key in ("out", "data_dir", "models"):
        if key not in spec:
            raise UserError(f"{path}: '{key}' is missing")
    out = Path(spec["out"])
    data = {"data_dir": str(spec["data_dir"])}
    if spec.get("data_cache"):
        data["data_cache"] = str(spec["data_cache"])
    common = _dict(spec, "common", str(path))
    recipes = spec.get("recipes") or {"default": {}}
    seeds = spec.get("seeds") or [1]
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
        raise UserError(f"{path}: 'seeds' must be a list of integers")
    models = spec["models"]
    if not isinstance(models, dict) or not models:
        raise UserError(f"{path}: 'models' must name at least one model")
    if not isinstance(recipes, dict):
        raise UserError(f"{path}: 'recipes' must be an object of named rftrain options")
    for recipe in recipes:
        _plain_name(recipe, "recipe", str(path))
    targets, variants = {}, {}
    for name, m in models.items():
        _plain_name(name, "model", str(path))
        if not isinstance(m, dict):
            raise UserError(f"{path}: model {name!r} must be an object")
        given = [k for k in ("model", "preset", "variant") if k in m]
        if len(given) != 1:
            raise UserError(f"{path}: model {name!r} needs exactly one of model, preset, variant")
        kind = given[0]
        if kind == "variant":
            variants[name] = (m["variant"], m.get("budget"))
            targets[name] = {"model": str(out / "models" / f"{name}.py")}
        else:
            targets[name] = {kind: str(m[kind])}
        _check_target(name, m, str(path))
    runs = []
    for (model, m), (recipe, r) in itertools.product(models.items(), recipes.items()):
        if not isinstance(r, dict):
            raise UserError(f"{path}: recipe {recipe!r} must be an object of rftrain options")
        for seed in m.get("seeds", seeds):  # a model may repeat with its own seeds
            options = {
                **common,
                **_dict(m, "options", f"{path}: model {model!r}"),
                **r,
                "seed": seed,
            }
            runs.append(Run(model, recipe, seed, targets[model], options))
    sweep = Sweep(
        name=str(spec.get("name", path.stem)),
        out=out,
        result=Path(spec.get("result", out / "sweep.json")),
        data=data,
        runs=runs,
        variants=variants,
    )
    check_runs(sweep, str(path))
    return sweep


def rftrain_command(sweep: Sweep, run: Run) -> list[str]:
    """The rftrain command line of `run` (--resume for an interrupted run, --force for a
    folder left without a checkpoint; a finished run gets neither). Its trial runs the same,
    with --force for a new run too: the trial writes trial.json into the folder first."""
    return ["rftrain", *rftrain_argv(sweep.trial_options(run), sweep.folder(run))]


def export_variants(sweep: Sweep) -> None:
    """Write each netbuilder variant's model file once (kept for resumed runs)."""
    for name, (variant, budget) in sweep.variants.items():
        target = sweep.out / "models" / f"{name}.py"
        if target.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "netbuilder", "export", variant, "-o", str(target)]
        if budget is not None:
            cmd += ["--budget", str(budget)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            reason = (proc.stderr.strip().splitlines() or ["failed"])[-1]
            raise UserError(f"netbuilder export {variant}: {reason}")


def trial_plan(sweep: Sweep, runs: Sequence[Run], device: str) -> dict[str, dict]:
    """Each run's Tune trial config (training.tune_trial.trial_config), by run key."""
    return {
        run.key: trial_config(
            sweep.trial_options(run), sweep.folder(run), device=device, log=sweep.log(run)
        )
        for run in runs
    }


def collect(sweep: Sweep, ray: Optional[dict] = None) -> dict:
    """Every run's summary (and per-epoch numbers) in one object; see the README for the
    layout. Runs without a summary are listed with status 'missing'. Each run's Ray version
    and resources come from its trial.json (those of its last Tune trial); `ray` says where
    this invocation ran (version, cluster)."""
    rows = []
    for run in sweep.runs:
        folder = sweep.folder(run)
        row: dict[str, Any] = {
            "model": run.model,
            "recipe": run.recipe,
            "seed": run.seed,
            "dir": str(folder),
            "options": run.options,
        }
        summary, history = folder / "summary.json", folder / "history.json"
        if not summary.is_file():
            row["status"] = "missing"
        else:
            s = json.loads(summary.read_text())
            row["status"] = "finished" if s.get("finished") else "unfinished"
            row.update({k: s.get(k) for k in RESULT_KEYS})
            if "history" in s:
                h = s["history"]
            else:  # a record from before the summary kept the history
                h = json.loads(history.read_text()) if history.is_file() else []
            row["epochs"] = epoch_rows(h)
        trial = trial_record(folder)
        if trial is not None:
            last = trial["attempts"][-1]
            row["ray"], row["resources"] = last["ray"], last["resources"]
            row["trials"] = len(trial["attempts"])
        rows.append(row)
    result = {
        "sweep": sweep.name,
        "collected": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "runs": rows,
    }
    if ray is not None:
        result["ray"] = ray
    return result


def results_table(result: dict) -> str:
    """The collected runs (`collect`) as the project's text table: one row a run."""
    from rfcalc.render.table import Column, Table, TableRow, write

    def pct(value: Any) -> str:
        if isinstance(value, list):  # the record's test_acc: one a epoch
            value = value[-1] if value else None
        return "-" if value is None else f"{value:.2%}"

    columns = (
        Column("model"),
        Column("recipe"),
        Column("seed", numeric=True),
        Column("status"),
        Column("epochs", numeric=True),
        Column("best test acc", numeric=True),
        Column("best epoch", numeric=True),
        Column("last test acc", numeric=True),
        Column("seconds", numeric=True),
    )
    rows = []
    for r in result["runs"]:
        wall = r.get("wall_seconds")
        cells = {
            "model": r["model"],
            "recipe": r["recipe"],
            "seed": r["seed"],
            "status": r["status"],
            "epochs": "-" if r.get("epochs_done") is None else r["epochs_done"],
            "best test acc": pct(r.get("best_test_acc")),
            "best epoch": "-" if r.get("best_epoch") is None else r["best_epoch"],
            "last test acc": pct(r.get("test_acc")),
            "seconds": "-" if wall is None else round(wall),
        }
        rows.append(TableRow(cells))
    return write(Table(columns=columns, rows=tuple(rows), document=result), "text")


def _share(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=PROG,
        version=True,
        description="Run a sweep of rftrain runs (models x recipes x seeds) to completion as "
        "Ray Tune trials (Ray embedded on this machine, or a cluster with --address), and "
        "collect their results into one JSON.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("sweep", help="the sweep file (JSON)")
    p.add_argument(
        "--address",
        default=os.environ.get("RAY_ADDRESS") or None,
        help="the Ray cluster to run on, e.g. ray://head:10001 or head:6379 (default: "
        "$RAY_ADDRESS, else Ray started inside rfsweep on this machine)",
    )
    p.add_argument(
        "--gpus-per-run",
        type=_share,
        metavar="G",
        help="GPUs each run asks Ray for; a fraction shares one: 0.25 trains four runs on "
        "each GPU at once (default: 1 where Ray sees a GPU, else 0: the CPU)",
    )
    p.add_argument(
        "--cpus-per-run",
        type=_share,
        metavar="C",
        help="CPUs each run asks Ray for, also its torch threads (default: 1)",
    )
    p.add_argument(
        "--runs-per-device",
        type=int,
        metavar="K",
        help="K runs at once on each GPU: --gpus-per-run 1/K (with no GPU: --cpus-per-run "
        "the CPUs / K); kept from rfsweep before Ray",
    )
    p.add_argument(
        "--devices",
        help="with Ray started here: the GPUs it may use, e.g. 0,2, or cpu for none "
        "(default: every GPU)",
    )
    p.add_argument(
        "--max-failures",
        type=int,
        default=2,
        metavar="N",
        help="times Tune retries a run whose worker died or raised (not for rftrain's bad "
        "input error); each retry resumes from the run's last epoch (default: 2)",
    )
    p.add_argument(
        "--list",
        action="store_true",
        help="print each run's status and rftrain command, run nothing",
    )
    p.add_argument(
        "--collect-only",
        action="store_true",
        help="write the result JSON from the runs there are, run nothing",
    )
    return p


def _gpus_of(devices: Optional[str], address: Optional[str]) -> Optional[str]:
    """--devices as the CUDA_VISIBLE_DEVICES of Ray started here: '' for cpu."""
    if devices is None:
        return None
    if address:
        raise UserError("--devices chooses GPUs of Ray started here; a cluster has its own")
    names = [d.strip() for d in devices.split(",") if d.strip()]
    if names and all(d == "cpu" for d in names):
        return ""
    if not names or not all(d.isdigit() for d in names):
        raise UserError(
            f"--devices {devices!r}: give GPU indices or cpu, comma-separated (e.g. 0,1 or cpu)"
        )
    return ",".join(names)


def _check_placement(args: argparse.Namespace) -> None:
    from .tune_sweep import check_share

    if args.gpus_per_run is not None:
        check_share(args.gpus_per_run, "gpus")
    if args.cpus_per_run is not None:
        check_share(args.cpus_per_run, "cpus")
    if args.runs_per_device is not None and args.runs_per_device < 1:
        raise UserError(f"--runs-per-device must be at least 1, got {args.runs_per_device}")
    if args.max_failures < 0:
        raise UserError(f"--max-failures must be 0 or more, got {args.max_failures}")


def run_sweep(sweep: Sweep, args: argparse.Namespace, say=print) -> tuple[dict, dict]:
    """Every unfinished run of `sweep` as a Tune trial; returns ({run key: outcome}, where
    Ray ran: version and cluster)."""
    from . import tune_sweep

    todo = [r for r in sweep.runs if run_status(sweep.folder(r)) != "finished"]
    outcome = {r.key: "finished (skipped)" for r in sweep.runs if r not in todo}
    for key in outcome:
        say(f"skip {key} (finished)")
    ray = {"version": tune_sweep.ray_version()}
    if not todo:
        return outcome, ray
    gpus = _gpus_of(args.devices, args.address)
    export_variants(sweep)
    with tune_sweep.ray_session(args.address, gpus) as where:
        res = tune_sweep.resources(args.cpus_per_run, args.gpus_per_run, args.runs_per_device)
        ray.update(cluster=where, cpus_per_run=res.cpus, gpus_per_run=res.gpus)
        say(
            f"Ray {ray['version']} ({where}): {len(todo)} runs, each {res.cpus:g} CPU "
            f"and {res.gpus:g} GPU"
        )
        plan = trial_plan(sweep, todo, "cuda" if res.gpus else "cpu")
        done = tune_sweep.execute(plan, sweep.out, res, max_failures=args.max_failures, say=say)
    for run in todo:
        outcome[run.key] = done.get(run.key, "unfinished")
        if outcome[run.key].startswith("failed"):
            say(f"FAIL  {run.key}: {outcome[run.key]} (log: {sweep.log(run)})")
    return outcome, ray


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if not argv:  # a bare command: what it takes, on stderr with status 2 like the others
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        _check_placement(args)
        sweep = load_sweep(args.sweep)
        if not args.collect_only:
            check_inputs(sweep, args.sweep)
        if args.list:
            for run in sweep.runs:
                command = shlex.join(rftrain_command(sweep, run))
                print(f"{run_status(sweep.folder(run)):<12} {run.key}: {command}")
            sys.stdout.flush()  # a closed pipe shows here, where it is handled
            return 0
        if args.collect_only:
            outcome, ray = {}, None
        else:
            outcome, ray = run_sweep(sweep, args)
    except UserError as exc:
        return fail(PROG, str(exc))
    except RayUnavailable as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; start the same command again to continue", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `rfsweep S.json --list | head`: the reader has what it wanted
        with contextlib.suppress(OSError):
            sys.stderr.close()
        return 0
    result = collect(sweep, ray)
    write_json(sweep.result, result)
    print(results_table(result), end="")
    done = sum(r["status"] == "finished" for r in result["runs"])
    print(f"{done} of {len(result['runs'])} runs finished; results in {sweep.result}")
    if any(v.startswith("failed") for v in outcome.values()):
        return 1
    if any(v == "unfinished" for v in outcome.values()):
        print(f"{PROG}: interrupted; start the same command again to continue", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
