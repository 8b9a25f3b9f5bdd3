"""`rfsweep SWEEP.json`: many rftrain runs (models x recipes x seeds) to completion, one per
free device (or K at once on each with `--runs-per-device K`), then one JSON with every run's
result.

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
run starts, and model and recipe names must be plain folder names. Each run lives in
OUT/MODEL/RECIPE/seedN and logs to OUT/logs/MODEL--RECIPE--seedN.log. A finished run
(summary.json says so) is skipped, an interrupted one (last.pt) resumed, so the command can
simply be started again after a kill. A `variant` is exported by netbuilder into
OUT/models/NAME.py first.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as dt
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from .fsutil import write_json
from .options import OneLineParser, UserError, fail, package_version
from .options import flag as option_flag
from .record import SUMMARY_KEYS, epoch_rows

PROG = "rfsweep"
# rftrain options the sweep sets for each run itself (its folder, device, model, restart).
SWEEP_SETS = frozenset({"out", "device", "model", "preset", "resume", "force", "help", "version"})
# The sweep's own folders beside the models' (OUT/models/NAME.py, OUT/logs/*.log).
RESERVED_NAMES = frozenset({"models", "logs"})
# A row of the result: the run record's keys (training/record.py) and its history as "epochs";
# "recipe" stays the sweep's name for the run's options (the record's is in config.recipe).
RESULT_KEYS = tuple(k for k in SUMMARY_KEYS if k not in ("history", "recipe"))


@dataclass(frozen=True)
class Run:
    """One rftrain run of the sweep."""

    model: str
    recipe: str
    seed: int
    target: list[str]  # --model X or --preset X
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.model}/{self.recipe}/seed{self.seed}"


@dataclass
class Sweep:
    name: str
    out: Path
    result: Path
    data: list[str]
    runs: list[Run]
    variants: dict[str, tuple[str, Optional[int]]]  # model name -> (netbuilder name, budget)

    def folder(self, run: Run) -> Path:
        return self.out / run.model / run.recipe / f"seed{run.seed}"

    def log(self, run: Run) -> Path:
        return self.out / "logs" / f"{run.model}--{run.recipe}--seed{run.seed}.log"


def _flags(options: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for name, value in options.items():
        flag = option_flag(name)
        if value is None:
            continue
        if value is True:
            args.append(flag)
        elif value is False:
            args.append("--no-" + flag[2:])
        else:
            args += [flag, str(value)]
    return args


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
        argv = [*run.target, *sweep.data, "--out", str(sweep.folder(run)), *_flags(run.options)]
        if tuple(argv) in seen:
            continue
        seen.add(tuple(argv))
        try:
            check_options(argv)
        except UserError as exc:
            raise UserError(f"{where}: run {run.key}: {exc}") from None


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
    data = ["--data-dir", str(spec["data_dir"])]
    if spec.get("data_cache"):
        data += ["--data-cache", str(spec["data_cache"])]
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
            targets[name] = ["--model", str(out / "models" / f"{name}.py")]
        else:
            targets[name] = [f"--{kind}", str(m[kind])]
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


def run_status(folder: Path) -> str:
    """finished, interrupted (resumable), or new."""
    summary = folder / "summary.json"
    if summary.is_file():
        try:
            if json.loads(summary.read_text()).get("finished"):
                return "finished"
        except (OSError, json.JSONDecodeError):
            pass
    return "interrupted" if (folder / "last.pt").is_file() else "new"


def command(sweep: Sweep, run: Run, device: str) -> list[str]:
    """The rftrain command line of `run` on `device` ('cpu' or 'cuda'). A finished run gets
    neither --resume nor --force: the sweep skips it, and the line copied by hand must not
    wipe it."""
    folder = sweep.folder(run)
    status = run_status(folder)
    again = []
    if status == "interrupted":
        again = ["--resume"]
    elif status == "new" and folder.is_dir():  # a run that stopped before its first checkpoint
        again = ["--force"]
    return [
        sys.executable,
        "-m",
        "training",
        *run.target,
        *sweep.data,
        "--out",
        str(folder),
        "--device",
        device,
        "--no-progress",
        *_flags(run.options),
        *again,
    ]


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


def free_devices(spec: Optional[str]) -> list[str]:
    """The devices: each GPU (as its index), or the CPU once; `spec` lists them ('cpu,cpu'
    runs two CPU runs side by side, '0,2' two GPUs)."""
    if spec:
        devices = [s.strip() for s in spec.split(",") if s.strip()]
        bad = [d for d in devices if d != "cpu" and not d.isdigit()]
        if bad or not devices:
            raise UserError(
                f"--devices {spec!r}: give GPU indices or cpu, comma-separated (e.g. 0,1 or cpu)"
            )
        return devices
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [str(i) for i in range(n)] or ["cpu"]


def device_slots(devices: Sequence[str], per_device: int = 1) -> list[str]:
    """One slot per run that may go at once: each device `per_device` times. A device with
    several slots numbers them (`0#1`, `0#2`): each slot holds one run."""
    if per_device < 1:
        raise UserError(f"--runs-per-device must be at least 1, got {per_device}")
    names = [d for d in devices for _ in range(per_device)]
    out, seen = [], {}
    for d in names:
        seen[d] = seen.get(d, 0) + 1
        out.append(f"{d}#{seen[d]}" if names.count(d) > 1 else d)
    return out


def _device_of(slot: str) -> str:
    return slot.split("#", 1)[0]


def _die_with_parent() -> None:
    # Linux: a run is stopped (SIGTERM) when the sweep dies, even by SIGKILL; a no-op elsewhere.
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _launch(sweep: Sweep, run: Run, slot: str, threads: Optional[int] = None) -> subprocess.Popen:
    env = dict(os.environ)
    if threads is not None and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(threads)  # runs side by side share the cores
    if _device_of(slot) == "cpu":
        device = "cpu"
    else:
        env["CUDA_VISIBLE_DEVICES"] = _device_of(slot)
        device = "cuda"
    cmd = command(sweep, run, device)
    log = sweep.log(run)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as fh:
        fh.write(f"== {dt.datetime.now().isoformat(timespec='seconds')} {' '.join(cmd)}\n")
        fh.flush()
        return subprocess.Popen(
            cmd,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_die_with_parent if os.name == "posix" else None,
        )


def _last_line(path: Path) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def execute(sweep: Sweep, slots: Sequence[str], say=print) -> dict[str, str]:
    """Run every unfinished run, one per slot at a time (`device_slots`); returns {run key:
    outcome}."""
    todo = [r for r in sweep.runs if run_status(sweep.folder(r)) != "finished"]
    outcome = {r.key: "finished (skipped)" for r in sweep.runs if r not in todo}
    for key in outcome:
        say(f"skip {key} (finished)")
    if todo:
        export_variants(sweep)
    busy: dict[str, tuple[Run, subprocess.Popen]] = {}
    threads = max(1, (os.cpu_count() or 1) // len(slots)) if len(slots) > 1 else None
    try:
        while todo or busy:
            for slot in [s for s in slots if s not in busy]:
                if not todo:
                    break
                run = todo.pop(0)
                what = run_status(sweep.folder(run))
                busy[slot] = (run, _launch(sweep, run, slot, threads))
                say(f"start {run.key} on {slot}" + (" (resume)" if what == "interrupted" else ""))
            time.sleep(0.2)
            for slot, (run, proc) in list(busy.items()):
                if proc.poll() is None:
                    continue
                del busy[slot]
                if proc.returncode == 0:
                    outcome[run.key] = "finished"
                    say(f"done  {run.key}")
                else:
                    outcome[run.key] = f"failed ({proc.returncode}): {_last_line(sweep.log(run))}"
                    say(f"FAIL  {run.key}: {outcome[run.key]}")
    finally:
        for _, proc in busy.values():  # interrupted: stop our runs (they resume next time)
            proc.terminate()
        for _, proc in busy.values():
            proc.wait()
    return outcome


def collect(sweep: Sweep) -> dict:
    """Every run's summary (and per-epoch numbers) in one object; see the README for the
    layout. Runs without a summary are listed with status 'missing'."""
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
        rows.append(row)
    return {
        "sweep": sweep.name,
        "collected": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "runs": rows,
    }


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


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=PROG,
        description="Run a sweep of rftrain runs (models x recipes x seeds) to completion, one "
        "(or --runs-per-device K) per device at a time, and collect their results into one JSON.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("sweep", help="the sweep file (JSON)")
    p.add_argument(
        "--devices",
        help="device slots, e.g. 0,1 (GPUs) or cpu,cpu (default: every GPU, else the CPU once)",
    )
    p.add_argument(
        "--runs-per-device",
        type=int,
        default=1,
        metavar="K",
        help="runs at once on each device: a small net leaves a GPU idle much of the time, so "
        "K runs side by side train more images per second in all (default: 1)",
    )
    p.add_argument(
        "--list",
        action="store_true",
        help="print each run's status and command, run nothing (default: off)",
    )
    p.add_argument(
        "--collect-only",
        action="store_true",
        help="write the result JSON from the runs there are (default: off)",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    return p


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM (a batch system, a time-limited campaign) stops the sweep as Ctrl-C does: its
    runs are stopped too and resume next time. (SIGINT may be ignored in a background job.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if not argv:  # a bare command: what it takes, on stderr with status 2 like the others
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        sweep = load_sweep(args.sweep)
        slots = device_slots(free_devices(args.devices), args.runs_per_device)
        if args.list:
            for run in sweep.runs:
                print(
                    f"{run_status(sweep.folder(run)):<12} {run.key}: "
                    f"{' '.join(command(sweep, run, 'cpu')[3:])}"
                )
            sys.stdout.flush()  # a closed pipe shows here, where it is handled
            return 0
        if args.collect_only:
            outcome = {}
        else:
            with _sigterm_interrupts():
                outcome = execute(sweep, slots)
    except UserError as exc:
        return fail(PROG, str(exc))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; start the same command again to continue", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `rfsweep S.json --list | head`: the reader has what it wanted
        with contextlib.suppress(OSError):
            sys.stderr.close()
        return 0
    result = collect(sweep)
    write_json(sweep.result, result)
    print(results_table(result), end="")
    done = sum(r["status"] == "finished" for r in result["runs"])
    print(f"{done} of {len(result['runs'])} runs finished; results in {sweep.result}")
    failed = [k for k, v in outcome.items() if v.startswith("failed")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
