"""Collect chapter 8's short CPU runs, every seed of every variant, into the book's JSON.

    python scripts/collect_seed_results.py --runs runs/exp-cpu \
        --json book/results/cpu-experiments.json

Run folders: `<runs>/<variant>` (seed 1) and `<runs>/<variant>-seed<N>`, as rftrain wrote them
(summary.json, history.json, last.pt), or `<runs>/<variant>/<recipe>/seed<N>` as rfsweep does
(`rfsweep scripts/sweeps/ch8-cpu.json`, then `--runs runs/ch8-cpu`). A finished run becomes
one record under `variants[<variant>]["runs"]`, sorted by seed. Records already in the JSON
whose folders are gone (the first seed-1 runs) are kept as they are; a folder's record
replaces the JSON's for the same variant and seed. The recipe that actually ran (learning
rates and momentum) is read from the optimizer and schedule saved in every last.pt under
`--runs` (finished or not), not from the configuration's nominal values: OneCycleLR cycles
momentum by default whatever the optimizer was given.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Optional

from training.fsutil import write_json

RUN_NAME = re.compile(r"^(?P<variant>[a-z0-9-]+?)(?:-seed(?P<seed>\d+))?$")


def schedule(last_pt: Path) -> Optional[dict[str, Any]]:
    """The lr and momentum schedule a run's optimizer really followed (from its last.pt)."""
    if not last_pt.is_file():
        return None
    import torch

    state = torch.load(last_pt, map_location="cpu", weights_only=False)["trainer"]
    group = state["optimizer"]["param_groups"][0]
    sched = state["scheduler"]
    out = {
        "start_lr": group["initial_lr"],
        "max_lr": group["max_lr"],
        "min_lr": group["min_lr"],
        "phases": len(sched["_schedule_phases"]),
        "total_steps": sched["total_steps"],
        "cycle_momentum": sched["cycle_momentum"],
    }
    if sched["cycle_momentum"]:
        out["momentum"] = [group["max_momentum"], group["base_momentum"], group["max_momentum"]]
    else:
        out["momentum"] = [group["momentum"]]
    return out


def record(folder: Path) -> Optional[dict[str, Any]]:
    """One finished run as the book shows it; None while the run is missing or unfinished."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
        history = json.loads((folder / "history.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not summary.get("finished"):
        return None
    train_s = sum(h["train_seconds"] for h in history)
    return {
        "run": str(folder),
        "command": summary["command"],
        "torch": summary["torch"],
        "data": summary["data"],
        "path": summary["path"],
        "seed": summary["config"]["seed"],
        "epochs": summary["epochs_done"],
        "train_images": summary["train_images"],
        "test_images": summary["test_images"],
        "params": summary["params"],
        "test_acc": [h["test_acc"] for h in history],
        "best_test_acc": summary["best_test_acc"],
        "wall_seconds": summary["wall_seconds"],
        # training images seen / seconds spent training (test time excluded)
        "train_images_per_s": round(summary["train_images"] * len(history) / train_s, 1),
        "schedule": schedule(folder / "last.pt"),
        # how it was trained, where the run record keeps it (training/record.py; newer runs)
        **{k: summary[k] for k in ("recipe", "departures", "config") if k in summary},
    }


def old_records(doc: dict) -> dict[tuple[str, int], dict]:
    """(variant, seed) -> record from a JSON in this layout or in the first one (one seed-1
    record per variant plus `repeats` named `<variant>-seed<N>`)."""
    found = {}
    for name, entry in doc.get("variants", {}).items():
        for rec in entry["runs"] if "runs" in entry else [entry]:
            found[(name, rec["seed"])] = rec
    for name, rec in doc.get("repeats", {}).items():
        found[(RUN_NAME.match(name)["variant"], rec["seed"])] = rec
    return found


def run_folders(runs: Path) -> list[tuple[str, int, Path]]:
    """(variant, seed, folder) of every run folder under `runs`, in either layout: rftrain's
    `<variant>` / `<variant>-seed<N>`, or rfsweep's `<variant>/<recipe>/seed<N>`."""
    if not runs.is_dir():
        return []
    out = []
    for folder in sorted(p for p in runs.iterdir() if p.is_dir()):
        m = RUN_NAME.match(folder.name)
        swept = [
            run
            for run in sorted(folder.glob("*/seed*"))
            if run.is_dir() and run.name.removeprefix("seed").isdigit()
        ]
        if m and swept:
            out += [(folder.name, int(run.name.removeprefix("seed")), run) for run in swept]
        elif m:
            out.append((m["variant"], int(m["seed"] or 1), folder))
    return out


def _shown(folder: Path, runs: Path) -> str:
    """`runs/exp-cpu/<name>`: the folder as seen from the project root above `runs`."""
    return str(folder.resolve().relative_to(runs.resolve().parent.parent))


def collect(runs: Path, doc: dict, variants: list[str], seeds: list[int]) -> dict:
    """The JSON document with every finished (variant, seed) of `variants` x `seeds`."""
    found = old_records(doc)
    located = run_folders(runs)
    folders = [folder for _, _, folder in located]
    for variant, seed, folder in located:
        rec = record(folder)
        if rec is None:
            continue
        if rec["seed"] != seed:
            raise SystemExit(f"{folder}: the folder says seed {seed}, the run seed {rec['seed']}")
        rec["run"] = _shown(folder, runs)
        found[(variant, seed)] = rec
    out = {k: v for k, v in doc.items() if k not in ("variants", "repeats", "missing")}
    out["variants"] = {
        name: {"runs": [found[(name, s)] for s in sorted(s for n, s in found if n == name)]}
        for name in variants
        if any(n == name for n, _ in found)
    }
    out["missing"] = [
        f"{name} seed {s}" for name in variants for s in seeds if (name, s) not in found
    ]
    # The schedule is the code's, not the run's result: read it from every checkpoint, of
    # finished and unfinished runs alike (the first seed-1 runs left none).
    sources = {_shown(f, runs): schedule(f / "last.pt") for f in folders}
    sources = {f: sched for f, sched in sources.items() if sched}
    ran = {json.dumps(sched, sort_keys=True) for sched in sources.values()}
    if len(ran) > 1:
        raise SystemExit(f"the runs followed {len(ran)} different schedules: {sorted(ran)}")
    out["schedule"] = json.loads(ran.pop()) if ran else None
    out["schedule_read_from"] = sorted(sources)
    return out


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=Path("runs/exp-cpu"))
    p.add_argument("--json", type=Path, default=Path("book/results/cpu-experiments.json"))
    p.add_argument(
        "--variants",
        nargs="+",
        default=[
            "dws-dilated-skip-x2",
            "dws-dilated-noskip-x2",
            "dws-strided-skip-x2",
            "plain-dilated-skip-x2",
            "dws-dilated-skip-x3",
            "dws-none-skip-x2",
        ],
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    a = p.parse_args(argv)
    doc = json.loads(a.json.read_text()) if a.json.is_file() else {}
    out = collect(a.runs, doc, a.variants, a.seeds)
    write_json(a.json, out)
    n = sum(len(e["runs"]) for e in out["variants"].values())
    print(
        f"wrote {a.json}: {n} runs of {len(out['variants'])} variants; "
        f"missing: {', '.join(out['missing']) or 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
