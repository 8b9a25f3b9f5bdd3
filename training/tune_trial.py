"""One rftrain run as a Ray Tune trial: `train_trial(config)`, the trainable of `rfsweep`.

The config is a plain dict (see `trial_config`):

    {"options": {"preset": "s9", "data_dir": "/abs/data", "epochs": 3, "seed": 1, ...},
     "out": "/abs/runs/s9/default/seed1",   # the run folder (our layout and checkpoints)
     "device": "cpu" | "cuda" | "auto",     # cuda: the GPU (share) Ray assigned to the trial
     "log": "/abs/runs/logs/x.log" | None}  # the run's printed lines go there (appended)

`options` are rftrain's (`lr` or `--lr`, true is `--flag`, false `--no-flag`, null the
default) and name the model (`model` or `preset`) and the data (`data_dir`, `data_cache`).
Paths must be absolute: Tune runs a trial in its own working folder, on any node of the
cluster (there the run folder and the data must be at the same path: a shared file system).

The trial trains in this process, on the device Ray gave it (CUDA_VISIBLE_DEVICES), with
as many threads as the CPUs it asked for. Its run folder is the truth: a finished run
(summary.json says so) is never trained again, an interrupted one (last.pt) resumes from its
last epoch, a folder left without a checkpoint starts over. So a trial that Tune retries
(FailureConfig(max_failures)) or restores (Tuner.restore) loses at most the epoch it was in.

After each epoch it calls `ray.tune.report` with the epoch's record (`EPOCH_KEYS`: epoch,
train_loss, train_acc, test_loss, test_acc, lr_end, images_per_s, ...) and a small
checkpoint that holds the epoch number only (the weights stay in the run folder): a
restored trial then replays to Tune the epochs Tune has not seen (from summary.json), so
each run's Tune record and TensorBoard curve hold every epoch once. A scheduler that stops a
trial early (ASHA) leaves a resumable run folder. The trial also appends what it ran with
(Ray version, resources, node, GPU ids, epochs trained) to `trial.json` in the run folder.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Optional

from rfkit_base.commandline import CheckingParser, UserError
from rfkit_base.commandline import flag as option_flag

from .fsutil import write_json
from .record import EPOCH_KEYS

TRIAL_RECORD = "trial.json"
# what Tune's checkpoint of a trial holds: the last epoch reported (the weights are in last.pt)
_SEEN = "epoch.json"


def option_flags(options: dict[str, Any]) -> list[str]:
    """rftrain's flags for an options dict: true `--flag`, false `--no-flag`, null omitted."""
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


def run_status(folder: str | os.PathLike) -> str:
    """finished, interrupted (resumable from last.pt), or new."""
    folder = Path(folder)
    summary = folder / "summary.json"
    if summary.is_file():
        try:
            if json.loads(summary.read_text()).get("finished"):
                return "finished"
        except (OSError, json.JSONDecodeError):
            pass
    return "interrupted" if (folder / "last.pt").is_file() else "new"


def rftrain_argv(options: dict[str, Any], out: str | os.PathLike) -> list[str]:
    """The rftrain arguments of the run in `out`: --resume for an interrupted run, --force for
    a folder a run left before its first checkpoint; a finished run gets neither (a line
    copied by hand must not wipe it)."""
    folder = Path(out)
    status = run_status(folder)
    again: list[str] = []
    if status == "interrupted":
        again = ["--resume"]
    elif status == "new" and folder.is_dir() and any(folder.iterdir()):
        again = ["--force"]
    return ["--out", str(folder), *option_flags(options), *again]


def trial_config(
    options: dict[str, Any],
    out: str | os.PathLike,
    *,
    device: str = "auto",
    log: Optional[str | os.PathLike] = None,
) -> dict:
    """The config `train_trial` takes (a plain, JSON-able dict; paths made absolute here)."""
    return {
        "options": dict(options),
        "out": str(Path(out).absolute()),
        "device": device,
        "log": None if log is None else str(Path(log).absolute()),
    }


def _epoch_metrics(record: dict) -> dict:
    return {k: record[k] for k in EPOCH_KEYS if k in record and record[k] is not None}


def _seen_epoch() -> int:
    """The last epoch Tune has from this trial (its checkpoint), 0 for none."""
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return 0
    with checkpoint.as_directory() as folder:
        return int(json.loads((Path(folder) / _SEEN).read_text())["epoch"])


def _report(metrics: dict) -> None:
    """One epoch to Tune, with the checkpoint that says which epoch it was."""
    from ray import tune

    with tempfile.TemporaryDirectory(prefix="rfsweep-seen-") as folder:
        (Path(folder) / _SEEN).write_text(json.dumps({"epoch": metrics["epoch"]}))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _replay(out: Path, seen: int) -> int:
    """Report the epochs the run folder has and Tune has not seen; returns the last one."""
    summary = out / "summary.json"
    if not summary.is_file():
        return seen
    try:
        history = json.loads(summary.read_text()).get("history") or []
    except (OSError, json.JSONDecodeError):
        return seen
    for row in history:
        if row.get("epoch", 0) > seen:
            _report(_epoch_metrics(row))
            seen = row["epoch"]
    return seen


def _resources() -> dict:
    """What Ray gave this trial: CPUs and GPUs (fractions kept), node, visible GPUs."""
    import ray
    from ray import tune

    bundles = tune.get_context().get_trial_resources().bundles
    total: dict[str, float] = {}
    for bundle in bundles:
        for name, amount in bundle.items():
            total[name] = total.get(name, 0) + amount
    return {
        "cpu": total.get("CPU", 0),
        "gpu": total.get("GPU", 0),
        "node": ray.util.get_node_ip_address(),
        "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
    }


@contextlib.contextmanager
def _output_to(log: Optional[str]) -> Iterator[None]:
    """The run's printed lines (rftrain's, torch's warnings) appended to its log file."""
    if log is None:
        yield
        return
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", buffering=1) as fh, contextlib.redirect_stdout(fh):
        with contextlib.redirect_stderr(fh):
            yield


def run_lock(out: str | os.PathLike) -> Path:
    """The lock file of the run in `out` (beside the folder: rftrain cleans the folder)."""
    out = Path(out)
    return out.parent / f".{out.name}.lock"


@contextlib.contextmanager
def _exclusive(out: Path, say) -> Iterator[None]:
    """Hold the run's lock: a worker of a killed sweep may live on for a moment and still
    write the folder; the trial that takes the run over waits for it (the kernel drops the
    lock when its process dies)."""
    import fcntl

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(run_lock(out), "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another process that trains {out}")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def train_trial(config: dict) -> None:
    """Train (or continue, or only report) one run inside a Ray Tune trial; see the module
    docstring for `config`. Raises UserError for options rftrain refuses."""
    out = Path(config["out"])
    with _exclusive(out, lambda line: print(line, flush=True)):
        _train_trial(config, out)


def _train_trial(config: dict, out: Path) -> None:
    import ray
    import torch

    from .cli import _run, parse

    resources = _resources()
    # the trial's CPU share: runs side by side must not each take every core
    torch.set_num_threads(max(1, int(resources["cpu"])))
    seen = _replay(out, _seen_epoch())
    status = run_status(out)
    if status == "finished":
        return
    attempt = {
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "ray": ray.__version__,
        "resources": resources,
        "status_before": status,
        "epochs": [],
    }
    attempts = _attempts(out)

    def record_attempt() -> None:
        write_json(out / TRIAL_RECORD, {"attempts": [*attempts, attempt]})

    # recorded before training, so a worker killed at any moment leaves its trace; the
    # folder then holds trial.json, and a new run is started with --force (which removes
    # only what a run writes)
    record_attempt()
    argv = [
        *rftrain_argv(config["options"], out),
        "--device",
        config.get("device") or "auto",
        "--no-progress",
    ]
    args = parse(argv, CheckingParser)

    def on_epoch_end(epoch: int, record: dict, preds) -> None:
        nonlocal seen
        attempt["epochs"].append(epoch)
        record_attempt()
        if epoch > seen:
            _report(_epoch_metrics(record))
            seen = epoch

    with _output_to(config.get("log")):
        print(
            f"== {attempt['started']} rftrain {' '.join(argv)} "
            f"(ray {ray.__version__}, {resources['cpu']:g} CPU, {resources['gpu']:g} GPU)",
            flush=True,
        )
        try:
            _run(args, argv, on_epoch_end=[on_epoch_end])
        except UserError as exc:
            print(f"rftrain: error: {exc}", flush=True)
            # the sweep reports it as the run's failure (training.tune_sweep: not retried)
            attempt["error"] = f"rftrain: error: {exc}"
            record_attempt()
            raise
        except Exception as exc:  # the traceback is in Tune's error.txt of the trial
            print(f"failed: {type(exc).__name__}: {exc}", flush=True)
            raise
    # epochs on disk that Tune has not seen: the last one of a run killed before reporting it
    _replay(out, seen)


def _attempts(out: Path) -> list:
    try:
        return json.loads((out / TRIAL_RECORD).read_text()).get("attempts", [])
    except (OSError, json.JSONDecodeError):
        return []


def trial_record(out: str | os.PathLike) -> Optional[dict]:
    """The run folder's trial.json (what each Tune trial of the run had), None if absent."""
    attempts = _attempts(Path(out))
    return {"attempts": attempts} if attempts else None
