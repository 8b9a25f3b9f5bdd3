"""rfsweep's lines while Tune runs (a Tune callback): a run's start, each epoch's test
accuracy, a retry, its end; Tune's own progress tables stay off (verbose=0)."""

from __future__ import annotations

from ray import tune


def _run(trial) -> str:
    return str(trial.config.get("run", trial))


class Progress(tune.Callback):
    """Prints one line per event, flushed (a log file follows the sweep as it goes)."""

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        print(f"start {_run(trial)}", flush=True)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if "epoch" in result and "test_acc" in result:
            print(
                f"      {_run(trial)} epoch {result['epoch']}: test accuracy "
                f"{result['test_acc']:.2%}",
                flush=True,
            )

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        print(f"retry {_run(trial)} from its last epoch (its worker failed)", flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        print(f"done  {_run(trial)}", flush=True)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        print(f"error {_run(trial)}", flush=True)
