"""`rfsearch SPACE.json`: sample a design space with netbuilder, train the samples on Ray Tune
with ASHA early stopping, and report accuracy against parameters, MACs and receptive field.

A space file (JSON; every key optional, paths relative to the current folder):

    {"name": "cpu-small", "seed": 0, "samples": 10, "min_rf": 32,
     "space": {"conv": ["plain", "dws"], "transition": ["dilated", "strided"],
               "skip": [true, false], "depth": [1, 2, 3],
               "widths": [[23, 32, 63, 93], [32, 32, 32, 32]],
               "dilations": [[1, 2, 4, 8], [1, 1, 2, 2]], "budget": [200000]},
     "train": {"epochs": 3, "batch_size": 128, "fast": true},
     "train_space": {"max_lr": [0.05, 0.1]},
     "asha": {"grace_period": 1, "reduction_factor": 2},
     "data": {"data_dir": "data/cifar10-jpeg", "data_cache": "data/cifar10-jpeg.npz",
              "limit_train": 3000, "validation": 1000},
     "resources": {"cpus_per_trial": 2, "gpus_per_trial": 0, "concurrent": 1},
     "out": "runs/search", "result": "book/results/search-cpu.json"}

Trials are selected on a validation split held out of the training images (`validation`
images, stratified, the same for every trial): the test set is never read, so the accuracy
that ranks the designs is not the one a final comparison would report.

Files in OUT: search.json (the result; also written to `result`), table.md, search.png and
search.svg (accuracy against params, MACs and rf, the Pareto front marked), models/KEY.py
(each sampled net as a netbuilder model file), trials/KEY/ (each trial's rftrain folder),
logs/KEY.log (what each trial printed), data/ (the training and validation images as CIFAR-10
batches, what every trial reads) and tune/ (Ray Tune's experiment, with TensorBoard logs).
The same command again resumes an interrupted search (`Tuner.restore`) and retrains nothing
that finished.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from rfkit_base.commandline import Parser as OneLineParser
from rfkit_base.commandline import UserError, fail

from .fsutil import write_json
from .search_space import DESIGN_AXES, Candidate, Sample, Space, parse_space, sample

PROG = "rfsearch"
SCHEMA = 1
METRIC = "val_acc"  # what ASHA and the front rank: accuracy on the validation split
# Every trial's rftrain scores its epochs on its data's test split, which here is the
# validation split: Tune's "test_acc" is the validation accuracy.
TUNE_METRIC = "test_acc"
REPORTED = {  # Tune's key -> the result's
    "epoch": "epoch",
    "test_acc": METRIC,
    "test_loss": "val_loss",
    "train_acc": "train_acc",
    "train_loss": "train_loss",
    "train_seconds": "train_seconds",
}
TUNE_DIR = "tune"


class Interrupted(UserError):
    """The search stopped before every trial ended; the same command resumes it."""


# ---------------------------------------------------------------- data


def validation_split(data, n_val: int, n_train: Optional[int] = None):
    """The Cifar to search on: `n_val` training images (stratified, fixed) become the "test"
    split every epoch is scored on, and up to `n_train` of the rest (stratified) are trained
    on. The real test images are dropped."""
    from dataclasses import replace

    import numpy as np

    y = data.train_y
    if not 0 < n_val < len(y):
        raise UserError(
            f"data.validation must be between 1 and {len(y) - 1} (the training images), not {n_val}"
        )
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(y))
    val = _stratified_take(y, perm, n_val)
    rest = perm[~np.isin(perm, val)]  # in the shuffled order
    train = rest if n_train is None or n_train >= len(rest) else _stratified_take(y, rest, n_train)
    train, val = np.sort(train), np.sort(val)
    return replace(
        data,
        train_x=data.train_x[train],
        train_y=y[train],
        test_x=data.train_x[val],
        test_y=y[val],
        source=f"{data.source}: {len(train):,} training images, "
        f"{len(val):,} held out of the training set for validation; test set not used",
    )


def _stratified_take(y, order, n: int):
    """The first indices of `order` per class, each class its share of `n` (largest
    remainders round)."""
    import numpy as np

    classes, counts = np.unique(y[order], return_counts=True)
    share = counts * n / len(order)
    take = np.floor(share).astype(int)
    take[np.argsort(-(share - take), kind="stable")[: n - take.sum()]] += 1
    picked = [order[y[order] == c][:k] for c, k in zip(classes, take)]
    return np.concatenate(picked)


def load_data(space: Space):
    """The space's data with its validation split (UserError if absent or malformed)."""
    from .data import load_cifar10

    d = space.data
    unknown = sorted(set(d) - {"data_dir", "data_cache", "limit_train", "validation"})
    if unknown:
        raise UserError(f"space: data.{unknown[0]}: unknown key")
    data = load_cifar10(d.get("data_dir", "data"), cache=d.get("data_cache"))
    return validation_split(data, int(d.get("validation", 5000)), d.get("limit_train"))


# ---------------------------------------------------------------- the trials


def write_split(data, folder: Path) -> Path:
    """The search's data as CIFAR-10 python batches in `folder`/cifar-10-batches-py: the
    training images in five batches, the validation images as `test_batch`, so that every
    trial's rftrain scores its epochs on the validation split. Written once per data digest."""
    import pickle

    import numpy as np

    batches = folder / "cifar-10-batches-py"
    stamp = folder / "split.json"
    digest = data.digest()
    if stamp.is_file() and json.loads(stamp.read_text()).get("digest") == digest:
        return folder
    batches.mkdir(parents=True, exist_ok=True)
    parts = np.array_split(np.arange(len(data.train_y)), 5)
    named = [(f"data_batch_{i + 1}", data.train_x[p], data.train_y[p]) for i, p in enumerate(parts)]
    named.append(("test_batch", data.test_x, data.test_y))
    for name, x, y in named:
        flat = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(len(x), -1)
        with open(batches / name, "wb") as fh:
            pickle.dump({b"labels": [int(v) for v in y], b"data": flat}, fh)
    with open(batches / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [c.encode() for c in data.classes]}, fh)
    write_json(stamp, {"digest": digest, "source": data.source})
    return folder


def trial_options(c: Candidate, space: Space, out: Path, data_dir: Path) -> dict:
    """rftrain's options of one trial: its model file, the split, the space's and its own
    training settings (augmentation settings are rftrain flags of their own)."""
    train = dict(space.train)
    aug = train.pop("aug", {})
    return {
        "model": f"{(out / 'models' / c.key).resolve()}.py:Net",
        "data_dir": str(data_dir.resolve()),
        **train,
        **aug,
        **c.train,
    }


def trial(config: dict, plan: Optional[dict] = None) -> None:
    """One Tune trial: the shared rftrain trainable (training.tune_trial) on the candidate
    `config["key"]`; its run folder is OUT/trials/KEY."""
    from .tune_trial import train_trial

    assert plan is not None
    train_trial(plan[config["key"]])


# ---------------------------------------------------------------- Ray Tune


def init_ray(address: Optional[str] = None, num_cpus: Optional[int] = None) -> None:
    """Join the cluster at `address` (or RAY_ADDRESS), else start Ray embedded here (rfsweep's
    `start_ray`: no dashboard, never someone else's `ray start` on this machine, tried again
    on a loaded machine); a session already started in this process (a notebook, a test) is
    used as it is."""
    import ray

    from .tune_sweep import RayUnavailable, start_ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    # the processes Ray starts import this checkout's packages, as this driver does (not
    # another installed copy)
    root = str(Path(__file__).resolve().parents[1])
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, *paths) if p)
    try:
        start_ray(address, **({} if address else {"num_cpus": num_cpus}))
    except RayUnavailable as exc:
        raise UserError(str(exc)) from None


def run_trials(
    candidates: Sequence[Candidate],
    space: Space,
    out: Path,
    data_dir: Path,
) -> dict[str, dict]:
    """Train the candidates (in their order) under ASHA; {key: {"history": the epochs Tune
    recorded, "error": the last line of its error or None}}. An
    experiment already in OUT/tune is restored: finished trials are not rerun."""
    # Tune's older progress reporter honours verbose=0 (the newer one prints tables anyway)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    from ray import tune
    from ray.tune.schedulers import AsyncHyperBandScheduler

    from .cli import check_options
    from .tune_trial import option_flags, trial_config

    epochs = int(space.train.get("epochs", 3))
    res = space.resources
    cpus, gpus = float(res.get("cpus_per_trial", 1)), float(res.get("gpus_per_trial", 0))
    plan = {}
    for c in candidates:
        options = {**trial_options(c, space, out, data_dir), "epochs": epochs}
        folder = (out / "trials" / c.key).resolve()
        check_options(["--out", str(folder), *option_flags(options)])  # before any trial
        plan[c.key] = trial_config(
            options,
            folder,
            device="cuda" if gpus > 0 else "cpu",
            log=(out / "logs" / f"{c.key}.log").resolve(),
        )
    trainable = tune.with_resources(
        tune.with_parameters(trial, plan=plan), {"cpu": cpus, "gpu": gpus}
    )
    path = out.resolve() / TUNE_DIR
    if tune.Tuner.can_restore(str(path)):
        tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_errored=True)
    else:
        asha = space.asha
        scheduler = AsyncHyperBandScheduler(
            time_attr="epoch",
            max_t=epochs,
            grace_period=int(asha.get("grace_period", 1)),
            reduction_factor=float(asha.get("reduction_factor", 2)),
        )
        tuner = tune.Tuner(
            trainable,
            param_space={"key": tune.grid_search([c.key for c in candidates])},
            tune_config=tune.TuneConfig(
                metric=TUNE_METRIC,
                mode="max",
                scheduler=scheduler,
                max_concurrent_trials=int(res.get("concurrent", 1)),
                reuse_actors=True,  # one worker process per slot: torch imports once
            ),
            run_config=tune.RunConfig(name=TUNE_DIR, storage_path=str(out.resolve()), verbose=0),
        )
    grid = tuner.fit()
    unfinished = len(grid) - grid.num_terminated - grid.num_errors
    if unfinished:  # Tune caught an interrupt (Ctrl-C, SIGTERM) and saved the experiment
        raise Interrupted(
            f"interrupted with {unfinished} of {len(grid)} trials unfinished: "
            f"run the same command again to resume (results so far are in {path})"
        )
    trials: dict[str, dict] = {}
    for result in grid:
        history: list[dict] = []
        df = result.metrics_dataframe
        if df is not None and not df.empty and "epoch" in df:
            for r in df[list(REPORTED)].dropna().to_dict("records"):
                row = {name: float(r[k]) for k, name in REPORTED.items()}
                row["epoch"] = int(row["epoch"])
                if not history or row["epoch"] > history[-1]["epoch"]:
                    history.append(row)
        error = None if result.error is None else str(result.error).strip().splitlines()[-1]
        trials[result.config["key"]] = {"history": history, "error": error}
    return trials


# ---------------------------------------------------------------- the result


def label(c: Candidate, space: Space) -> str:
    """The variant's name, with the axes the space varies beyond netbuilder's family."""
    d = c.design
    name = f"{d['conv']}-{d['transition']}-{'skip' if d['skip'] else 'noskip'}-x{d['depth']}"
    if len(space.axis("widths")) > 1:
        name += " w" + ":".join(map(str, d["widths"]))
    if len(space.axis("dilations")) > 1 and d["dilations"] is not None:
        name += " d" + "".join(map(str, d["dilations"]))
    if len(space.axis("budget")) > 1:
        name += f" {d['budget'] // 1000}K"
    return name + "".join(f" {k}={v}" for k, v in sorted(c.train.items()))


def result_rows(sampled: Sample, space: Space, trials: dict[str, dict]) -> list[dict]:
    """One row per candidate: design, measures, what training reached."""
    max_epochs = int(space.train.get("epochs", 3))
    rows = []
    for c in sampled.candidates:
        t = trials.get(c.key, {"history": [], "error": "not run"})
        hist = t["history"]
        accs = [h[METRIC] for h in hist]
        rows.append(
            {
                **c.record(),
                "label": label(c, space),
                "epochs": len(hist),
                "completed": bool(hist) and hist[-1]["epoch"] >= max_epochs and not t["error"],
                "acc": accs[-1] if accs else 0.0,
                "best_acc": max(accs) if accs else 0.0,
                "error": t["error"],
                "history": hist,
                "model_file": f"models/{c.key}.py",
                "run_dir": f"trials/{c.key}",
            }
        )
    return rows


def export_models(sampled: Sample, space: Space, out: Path, command: str) -> None:
    """models/KEY.py for every candidate: netbuilder's standalone model file."""
    from netbuilder.export import source

    folder = out / "models"
    folder.mkdir(parents=True, exist_ok=True)
    for c in sampled.candidates:
        (folder / f"{c.key}.py").write_text(source(c.spec, space.input, command))


def device_line(space: Space) -> str:
    import platform

    import torch

    if float(space.resources.get("gpus_per_trial", 0)) > 0 and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def check_out(out: Path, space: Space, force: bool) -> None:
    """Refuse to mix searches: OUT holding another space's search needs --force (which starts
    over) or another --out."""
    mark = out / "space.json"
    if force and out.exists():
        import shutil

        for name in ("space.json", "search.json", "table.md", "search.png", "search.svg"):
            (out / name).unlink(missing_ok=True)
        for name in ("models", "trials", "logs", "data", TUNE_DIR):
            shutil.rmtree(out / name, ignore_errors=True)
    if mark.is_file():
        then = json.loads(mark.read_text()).get("digest")
        if then != space.digest():
            raise UserError(
                f"{out} holds a search of another space (digest {then}, now "
                f"{space.digest()}): give another --out, or --force to start over there"
            )
    elif out.is_dir() and any(out.iterdir()):
        raise UserError(f"{out} is not empty and holds no search: give another --out")


def search(
    space: Space,
    *,
    force: bool = False,
    address: Optional[str] = None,
    command: str = "",
    data=None,
) -> dict:
    """Sample, train, report; returns the result also written to OUT/search.json."""
    import ray

    t0 = time.perf_counter()
    out = Path(space.out)
    check_out(out, space, force)
    sampled = sample(space)
    if data is None:
        data = load_data(space)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "space.json", {"digest": space.digest(), "space": space.to_dict()})
    export_models(sampled, space, out, command)
    data_dir = write_split(data, out / "data")
    init_ray(address)
    trials = run_trials(sampled.candidates, space, out, data_dir)
    rows = result_rows(sampled, space, trials)
    from .search_report import fronts, save_plot, table

    front = fronts(rows)
    from .record import versions

    result = {
        "schema": SCHEMA,
        "command": command,
        "name": space.name,
        "seed": space.seed,
        "budgets": sorted(set(space.axis("budget"))),
        "min_rf": space.min_rf,
        "space": space.to_dict(),
        "space_digest": space.digest(),
        "device": device_line(space),
        "resources": {
            "cpus_per_trial": float(space.resources.get("cpus_per_trial", 1)),
            "gpus_per_trial": float(space.resources.get("gpus_per_trial", 0)),
            "concurrent": int(space.resources.get("concurrent", 1)),
        },
        "ray": ray.__version__,
        "versions": versions(),
        "data": {
            "source": data.source,
            "digest": data.digest(),
            "train_images": int(len(data.train_y)),
            "validation_images": int(len(data.test_y)),
            "selected_on": "a validation split held out of the training images",
        },
        "asha": {
            "time_attr": "epoch",
            "max_t": int(space.train.get("epochs", 3)),
            "grace_period": int(space.asha.get("grace_period", 1)),
            "reduction_factor": float(space.asha.get("reduction_factor", 2)),
        },
        "metric": METRIC,
        "sample": {k: v for k, v in sampled.record().items() if k != "candidates"},
        "rows": rows,
        "fronts": front,
        "stopped_early": sum(
            1 for r in rows if r["epochs"] and not r["completed"] and not r["error"]
        ),
        "errors": sum(1 for r in rows if r["error"]),
        "train_seconds": round(sum(h["train_seconds"] for r in rows for h in r["history"]), 1),
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    write_json(out / "search.json", result)
    (out / "table.md").write_text(table(rows, front) + "\n")
    save_plot(rows, front, out, f"{space.name}: {METRIC} of {len(rows)} sampled designs")
    if space.result:
        Path(space.result).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(space.result), result)
    return result


# ---------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=PROG,
        version=True,
        description="Sample a design space (netbuilder), train the samples on Ray Tune with "
        "ASHA early stopping, and report accuracy against params, MACs and receptive field "
        "with the Pareto front.",
    )  # the kit's help formatter: each default shown once, where the help does not say it
    p.add_argument("space", help="the space file (JSON; see the module's docstring)")
    p.add_argument("--out", help="the search's folder (default: the file's `out`)")
    p.add_argument("--result", help="also write the result JSON here (default: the file's)")
    p.add_argument("--samples", type=int, help="how many designs to sample (default: the file's)")
    p.add_argument("--seed", type=int, help="the sampler's seed (default: the file's)")
    p.add_argument(
        "--cpus-per-trial", type=float, help="CPUs each trial asks Ray for (default: the file's)"
    )
    p.add_argument(
        "--gpus-per-trial",
        type=float,
        help="GPUs (or a fraction) each trial asks for (default: the file's)",
    )
    p.add_argument("--concurrent", type=int, help="trials at once, at most (default: the file's)")
    p.add_argument(
        "--address", help="a Ray cluster to run on (default: RAY_ADDRESS, else Ray started here)"
    )
    p.add_argument("--force", action="store_true", help="start over in --out")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the sampled designs and stop (no training, no Ray)",
    )
    return p


def space_from_args(args: argparse.Namespace) -> Space:
    """The space file with the command line's overrides; UserError on bad input."""
    try:
        data = json.loads(Path(args.space).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"{args.space}: cannot read: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{args.space}: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{args.space}: expected a JSON object")
    for key in ("out", "result", "samples", "seed"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    res = dict(data.get("resources", {})) if isinstance(data.get("resources"), dict) else {}
    for key in ("cpus_per_trial", "gpus_per_trial", "concurrent"):
        value = getattr(args, key)
        if value is not None:
            if value < 0 or (key != "gpus_per_trial" and value <= 0):
                raise UserError(f"--{key.replace('_', '-')} must be positive, not {value}")
            res[key] = value
    if res:
        data["resources"] = res
    return parse_space(data)


def dry_run(space: Space) -> str:
    s = sample(space)
    lines = [
        f"{len(s.candidates)} of {s.points} designs sampled (seed {space.seed}); passed over: "
        + ", ".join(f"{k} {v}" for k, v in s.rejected.items())
    ]
    lines += [
        f"  {c.key}: {c.params:,} params, {c.macs / 1e6:.1f}M MACs, rf {c.rf}" for c in s.candidates
    ]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if not argv:  # a bare command: what it takes, on stderr with status 2, as rfsweep
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    command = shlex.join([PROG, *argv])
    try:
        space = space_from_args(args)
        if args.dry_run:
            print(dry_run(space))
            return 0
        result = search(space, force=args.force, address=args.address, command=command)
    except Interrupted as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 130
    except UserError as exc:
        return fail(PROG, str(exc))
    from .search_report import table

    print(table(result["rows"], result["fronts"]))
    print(
        f"{len(result['rows'])} designs, {result['stopped_early']} stopped early by ASHA; "
        f"figure and models in {space.out}"
    )
    return 0


__all__ = ["DESIGN_AXES", "main", "search", "run_trials", "validation_split", "trial"]


if __name__ == "__main__":
    sys.exit(main())
