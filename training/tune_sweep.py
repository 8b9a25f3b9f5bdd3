"""rfsweep's runs as one Ray Tune experiment: the Ray session, each run's resources, and
restoring an interrupted experiment.

Ray starts embedded on this machine unless an address is given (`--address` or RAY_ADDRESS):
then the runs go to that cluster, whose nodes must see the run folders and the data at the
same paths (a shared file system) and have rfkit installed. Every unfinished run is one
trial of `training.tune_trial.train_trial` with the CPUs and (fractional) GPUs asked for;
Tune places as many at once as the cluster holds. The experiment lives in OUT/tune/NAME
(Tune's state, each trial's result.json, progress.csv and TensorBoard events). Started
again, rfsweep restores the latest experiment (`Tuner.restore`) when it holds every run
still unfinished, not yet completed in Tune's eyes, with the same options and resources;
otherwise it starts a new one for those runs. Either way the run folders decide: a finished
run is not trained again, an interrupted one resumes from its last.pt.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import signal
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from rfkit_base.commandline import UserError

from .fsutil import write_json
from .tune_trial import run_status, train_trial, trial_record

EXPERIMENTS = "tune"  # OUT/tune: one folder per Tune experiment of the sweep
PLAN = "rfsweep-plan.json"  # in the experiment folder: its runs' configs and resources


class RayUnavailable(Exception):
    """Ray could not be started or reached: a one-line message, exit status 1."""


@dataclass(frozen=True)
class Resources:
    """What each trial asks Ray for."""

    cpus: float
    gpus: float

    def request(self) -> dict:
        return {"cpu": self.cpus, "gpu": self.gpus}


def ray_version() -> str:
    from importlib.metadata import version

    return version("ray")


def start_ray(address: Optional[str] = None, tries: int = 3, **kwargs) -> None:
    """ray.init: the cluster at `address`, else a new Ray embedded in this process (never a
    cluster someone started on this machine with `ray start`), dashboard off. Ray gives its
    helper processes 15-30 s to come up, which a loaded machine can miss (their imports then
    run from a warm cache): a local start is tried `tries` times. RayUnavailable if it fails.
    """
    import ray

    kwargs = {"log_to_driver": False, "configure_logging": False, **kwargs}
    for attempt in range(1, tries + 1):
        try:
            if address:
                ray.init(address=address, **kwargs)
            else:
                with _lean_imports():
                    ray.init(address="local", include_dashboard=False, **kwargs)
            return
        except Exception as exc:  # Ray's own errors name no common class
            ray.shutdown()
            message = " ".join(str(exc).split()) or type(exc).__name__
            if attempt == tries or address:
                where = address or "on this machine"
                raise RayUnavailable(f"Ray did not start ({where}): {message}") from None
            print(f"Ray did not start ({message}); trying again", file=sys.stderr, flush=True)


# Every Ray process imports jsonschema, which imports rfc3987_syntax when it is installed (the
# book's Jupyter packages bring it): that module builds a parser at import, 1.4 s of CPU of
# the 2.0 s a Ray helper takes to import here (measured with -X importtime and `time`), and
# Ray gives its dashboard agent 15 s to start. A module of that name that refuses to import,
# first on the path of the processes Ray starts here, leaves jsonschema without its optional
# IRI format checks, which Ray does not use.
_STUB = 'raise ImportError("rfsweep leaves rfc3987_syntax out of its Ray processes")\n'


@contextlib.contextmanager
def _lean_imports() -> Iterator[None]:
    """PYTHONPATH, while Ray starts its processes, led by a folder holding the stub (kept
    until this process exits: the workers Ray starts later read it too)."""
    import atexit
    import shutil
    import tempfile

    before = os.environ.get("PYTHONPATH")
    folder = tempfile.mkdtemp(prefix="rfsweep-ray-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    Path(folder, "rfc3987_syntax.py").write_text(_STUB)
    with _environ("PYTHONPATH", os.pathsep.join(p for p in (folder, before) if p)):
        yield


@contextlib.contextmanager
def ray_session(address: Optional[str], gpus: Optional[str] = None) -> Iterator[str]:
    """Ray for the sweep (`start_ray`); `gpus` '' hides the GPUs from Ray started here, '0,2'
    shows those only. A session already started (a test's, a notebook's) is used as it is
    and left running. Yields where the runs go: 'local', the address, or 'existing session'."""
    import ray

    if ray.is_initialized():
        yield "existing session"
        return
    # CUDA_VISIBLE_DEVICES is read by Ray's GPU count at init
    with _environ("CUDA_VISIBLE_DEVICES", None if address else gpus):
        start_ray(address)
    try:
        yield address or "local"
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _environ(name: str, value: Optional[str]) -> Iterator[None]:
    """The environment variable `name` set to `value` (None: left as it is), then put back."""
    before = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def resources(
    cpus_per_run: Optional[float], gpus_per_run: Optional[float], runs_per_device: Optional[int]
) -> Resources:
    """Each run's share, checked against the cluster (Ray must be up): by default one CPU,
    and one GPU where the cluster has GPUs; `runs_per_device` K gives each run 1/K of a GPU
    (on a cluster without GPUs, 1/K of its CPUs)."""
    import ray

    cluster = ray.cluster_resources()
    total_cpus, total_gpus = cluster.get("CPU", 0), cluster.get("GPU", 0)
    gpus = gpus_per_run
    cpus = cpus_per_run
    if runs_per_device is not None:
        if gpus is not None:
            raise UserError("give --gpus-per-run or --runs-per-device, not both")
        if total_gpus:
            # Ray counts resources in units of 1/10,000: 1/6 rounded up would let 5 fit
            gpus = math.floor(10_000 / runs_per_device) / 10_000
        elif cpus is None:
            cpus = max(total_cpus // runs_per_device, 1)
    if gpus is None:
        gpus = 1.0 if total_gpus else 0.0
    if cpus is None:
        cpus = 1.0
    if gpus > total_gpus:
        raise UserError(
            f"--gpus-per-run {gpus:g}: the Ray cluster has {total_gpus:g} GPUs "
            "(--gpus-per-run 0 trains on the CPU)"
        )
    if cpus > total_cpus:
        raise UserError(f"--cpus-per-run {cpus:g}: the Ray cluster has {total_cpus:g} CPUs")
    return Resources(cpus=float(cpus), gpus=float(gpus))


def check_share(value: float, what: str) -> float:
    """A resource amount Ray accepts: positive (GPUs: or 0), a fraction below 1 or whole."""
    low_ok = what == "gpus" and value == 0
    if not (value > 0 or low_ok) or (value > 1 and value != int(value)):
        raise UserError(
            f"--{what}-per-run {value:g}: give a fraction of one (0.25: four runs share one) "
            "or a whole number" + (", or 0" if what == "gpus" else "")
        )
    return value


def _trial_name(trial) -> str:
    """A trial is named by its run (folder names are plain, checked by load_sweep)."""
    return str(trial.config["run"]).replace("/", "--")


def _sweep_trial(config: dict, plan: dict) -> None:
    try:
        train_trial(plan[config["run"]])
    except UserError:
        # bad input (rftrain's one line, in the run's log and trial.json) fails the same way
        # every time: the trial ends here, not retried; `execute` reports the run failed
        return


def _statuses(experiment: Path) -> dict[str, str]:
    """Each run's trial status in a saved experiment (PENDING, RUNNING, TERMINATED, ERROR)."""
    from ray.tune import ExperimentAnalysis

    try:
        analysis = ExperimentAnalysis(str(experiment))
    except Exception:  # a state Tune cannot read: not restorable
        return {}
    return {t.config.get("run"): t.status for t in analysis.trials}


def _restorable(root: Path, plan: dict, res: Resources) -> Optional[tuple[Path, dict]]:
    """The latest experiment under `root` and its plan, if restoring it runs what is left:
    every run of `plan` a trial there, not completed, with the same config and resources."""
    from ray.tune import Tuner

    folders = sorted(p for p in root.glob("sweep-*") if (p / PLAN).is_file())
    if not folders or not Tuner.can_restore(str(folders[-1])):
        return None
    latest = folders[-1]
    try:
        saved = json.loads((latest / PLAN).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if saved.get("resources") != asdict(res):
        return None
    if any(saved["runs"].get(key) != config for key, config in plan.items()):
        return None
    statuses = _statuses(latest)
    if any(statuses.get(key) in (None, "TERMINATED") for key in plan):
        return None
    return latest, saved["runs"]


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[-1] if lines else "(no message)"


def execute(
    plan: dict[str, dict],
    out: Path,
    res: Resources,
    *,
    max_failures: int = 2,
    say: Callable[[str], None] = print,
) -> dict[str, str]:
    """Run the trials of `plan` (run key -> train_trial config) on Ray Tune, restoring the
    latest experiment under OUT/tune when it holds them; returns {run key: outcome}:
    finished, unfinished (interrupted: resumes next time) or failed (...)."""
    from ray import tune

    from .tune_progress import Progress

    # one experiment snapshot per epoch (the checkpoint) is what a sweep wants, not a warning;
    # nor is a trial without metrics, which a stopped sweep never started
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    # Tune's newer console output names a TensorBoard folder in Ray's session files; the
    # events that stay are in OUT/tune (README), and Progress prints the runs' lines
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    root = (out / EXPERIMENTS).absolute()
    latest = _restorable(root, plan, res)
    if latest is not None:
        # its runs finished since then are trials too: they only report (the folder decides)
        latest, plan = latest[0], {**latest[1], **plan}
    trainable = tune.with_resources(tune.with_parameters(_sweep_trial, plan=plan), res.request())
    if latest is not None:
        say(f"restore the Tune experiment {latest}")
        tuner = tune.Tuner.restore(
            str(latest), trainable, resume_unfinished=True, resume_errored=True
        )
        experiment = latest
    else:
        name = "sweep-" + dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
        experiment = root / name
        tuner = tune.Tuner(
            trainable,
            param_space={"run": tune.grid_search(list(plan))},
            tune_config=tune.TuneConfig(
                reuse_actors=True,  # a run after another in the same worker: torch imported
                trial_name_creator=_trial_name,
                trial_dirname_creator=_trial_name,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=str(root),
                failure_config=tune.FailureConfig(max_failures=max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                callbacks=[Progress()],
                verbose=0,
            ),
        )
        write_json(experiment / PLAN, {"runs": plan, "resources": asdict(res)})
    started = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    with _sigterm_stops_tune():
        grid = tuner.fit()
    # the run folders say what is done; Tune adds the errors (a trial that never started,
    # the sweep stopped first, has no config)
    outcome = {
        key: "finished" if run_status(config["out"]) == "finished" else "unfinished"
        for key, config in plan.items()
    }
    for result in grid:
        key = (result.config or {}).get("run")
        if key in outcome and result.error is not None and outcome[key] != "finished":
            outcome[key] = f"failed: {_last_line(result.error)}"
    for key, config in plan.items():  # bad input, which its trial ended without a retry
        last = (trial_record(config["out"]) or {"attempts": [{}]})["attempts"][-1]
        if outcome[key] != "finished" and last.get("error") and last["started"] >= started:
            outcome[key] = f"failed: {last['error']}"
    return outcome


@contextlib.contextmanager
def _sigterm_stops_tune() -> Iterator[None]:
    """SIGTERM (a batch system, a time-limited campaign) stops the sweep as Ctrl-C does: Tune
    saves its state and stops the trials, which resume next time. Tune leaves its own SIGINT
    handler behind; the one before it is put back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda signum, frame: signal.raise_signal(signal.SIGINT))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before[0])
        signal.signal(signal.SIGTERM, before[1])
