"""scripts/collect_seed_results.py: every seed of every variant, and the schedule that ran."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "collect_seed_results.py"


@pytest.fixture(scope="module")
def collector():
    spec = importlib.util.spec_from_file_location("collect_seed_results", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(
    folder: Path,
    seed: int,
    accs: list[float],
    *,
    finished: bool = True,
    cycle_momentum: bool | None = None,
) -> None:
    """A run folder as rftrain leaves it (only the fields the collector reads)."""
    folder.mkdir(parents=True)
    history = [{"test_acc": a, "train_seconds": 10.0} for a in accs]
    (folder / "history.json").write_text(json.dumps(history))
    (folder / "summary.json").write_text(
        json.dumps(
            {
                "command": "rftrain ...",
                "torch": "x",
                "data": "d",
                "path": "tensor (fast)",
                "config": {"seed": seed},
                "epochs_done": len(accs),
                "train_images": 100,
                "test_images": 50,
                "params": 7,
                "best_test_acc": max(accs),
                "wall_seconds": 35.0,
                "finished": finished,
            }
        )
    )
    if cycle_momentum is not None:
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.05, momentum=0.9)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=0.1,
            total_steps=10,
            div_factor=2,
            three_phase=True,
            cycle_momentum=cycle_momentum,
        )
        torch.save(
            {"trainer": {"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}},
            folder / "last.pt",
        )


def test_collects_every_seed_keeps_old_records_and_lists_the_missing(collector, tmp_path):
    runs = tmp_path / "runs" / "exp"
    _run(runs / "a", 1, [0.1, 0.3])  # seed 1: the folder has no -seed tail
    _run(runs / "a-seed2", 2, [0.2, 0.25], cycle_momentum=True)
    _run(
        runs / "b-seed3",
        3,
        [0.4],
        finished=False,  # still running: not collected,
        cycle_momentum=True,
    )  # but its schedule is read
    old = {
        "about": "kept",
        "variants": {"b": {"seed": 1, "best_test_acc": 0.5}},
        "repeats": {"a-seed2": {"seed": 2, "best_test_acc": 0.99}},
    }
    doc = collector.collect(runs, old, ["a", "b", "c"], [1, 2, 3])
    assert doc["about"] == "kept" and "repeats" not in doc
    a = doc["variants"]["a"]["runs"]
    assert [r["seed"] for r in a] == [1, 2]
    assert a[1]["best_test_acc"] == 0.25  # the folder wins over the old record
    assert a[0]["train_images_per_s"] == 10.0  # 100 images x 2 epochs / 20 s
    assert doc["variants"]["b"]["runs"] == [{"seed": 1, "best_test_acc": 0.5}]
    assert "c" not in doc["variants"]
    assert doc["missing"] == [
        "a seed 3",
        "b seed 2",
        "b seed 3",
        "c seed 1",
        "c seed 2",
        "c seed 3",
    ]
    # OneCycleLR's default: momentum from 0.95 down to 0.85 and back, whatever SGD was given;
    # lr from max_lr / div_factor = 0.05 up to 0.1
    assert doc["schedule"]["momentum"] == [0.95, 0.85, 0.95]
    assert (doc["schedule"]["start_lr"], doc["schedule"]["max_lr"]) == (0.05, 0.1)
    # folders named from the project root above the runs folder, as rftrain was given them
    assert doc["schedule_read_from"] == ["runs/exp/a-seed2", "runs/exp/b-seed3"]
    assert a[0]["run"] == "runs/exp/a"


def test_a_fixed_momentum_is_recorded_and_mixed_schedules_are_refused(collector, tmp_path):
    runs = tmp_path / "runs"
    _run(runs / "a", 1, [0.1], cycle_momentum=False)
    doc = collector.collect(runs, {}, ["a"], [1])
    assert doc["schedule"]["momentum"] == [0.9]
    _run(runs / "a-seed2", 2, [0.1], cycle_momentum=True)
    with pytest.raises(SystemExit, match="2 different schedules"):
        collector.collect(runs, {}, ["a"], [1, 2])


def test_a_newer_record_says_how_the_run_was_trained(collector, tmp_path):
    _run(tmp_path / "a", 1, [0.1])
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    how = {"recipe": "previous", "departures": {"lr": 0.02}, "config": {"seed": 1, "lr": 0.02}}
    (tmp_path / "a" / "summary.json").write_text(json.dumps({**summary, **how}))
    (rec,) = collector.collect(tmp_path, {}, ["a"], [1])["variants"]["a"]["runs"]
    assert {k: rec[k] for k in how} == how
    _run(tmp_path / "b", 1, [0.1])  # an older record: nothing made up
    (old,) = collector.collect(tmp_path, {}, ["b"], [1])["variants"]["b"]["runs"]
    assert "recipe" not in old and "departures" not in old and old["config"] == {"seed": 1}


def test_a_folder_whose_seed_disagrees_is_refused(collector, tmp_path):
    _run(tmp_path / "a-seed2", 3, [0.1])
    with pytest.raises(SystemExit, match="seed 2, the run seed 3"):
        collector.collect(tmp_path, {}, ["a"], [1, 2])


def test_rfsweeps_layout_is_collected_next_to_rftrains(collector, tmp_path):
    runs = tmp_path / "runs" / "ch8"
    _run(runs / "a" / "as-run" / "seed2", 2, [0.2, 0.3], cycle_momentum=True)
    _run(runs / "a" / "as-run" / "seed3", 3, [0.1, 0.4], cycle_momentum=True)
    _run(runs / "b-seed2", 2, [0.5])  # rftrain's layout in the same folder
    (runs / "logs").mkdir()
    (runs / "logs" / "a--as-run--seed2.log").write_text("epoch 1\n")
    (runs / "models").mkdir()
    (runs / "models" / "a.py").write_text("")
    old = {"variants": {"a": {"runs": [{"seed": 1, "best_test_acc": 0.25}]}}}
    doc = collector.collect(runs, old, ["a", "b"], [1, 2, 3])
    assert [(r["seed"], r["best_test_acc"]) for r in doc["variants"]["a"]["runs"]] == [
        (1, 0.25),
        (2, 0.3),
        (3, 0.4),
    ]
    assert doc["variants"]["a"]["runs"][2]["run"] == "runs/ch8/a/as-run/seed3"
    assert [r["seed"] for r in doc["variants"]["b"]["runs"]] == [2]
    assert doc["missing"] == ["b seed 1", "b seed 3"]
    assert doc["schedule_read_from"] == ["runs/ch8/a/as-run/seed2", "runs/ch8/a/as-run/seed3"]
