"""scripts/ch8_speed.py: chapter 8's six networks timed in turns, in one process."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ch8_speed.py"


@pytest.fixture(scope="module")
def speed():
    spec = importlib.util.spec_from_file_location("ch8_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_planned_network_is_timed_once_per_round(speed, tmp_path):
    import torch

    out = tmp_path / "speed.json"
    threads = torch.get_num_threads()
    args = ["--rounds", "2", "--batch", "2", "--json", str(out)]
    assert speed.main(args) == 0
    assert torch.get_num_threads() == threads  # the measurement's one thread is undone
    doc = json.loads(out.read_text())
    # chapter 8's plan: the baseline first (ratios are taken against it), then five changes
    assert list(doc["step_seconds"]) == list(speed.PLAN)
    assert speed.PLAN[0] == "dws-dilated-skip-x2" and len(set(speed.PLAN)) == 6
    for kind in ("step_seconds", "step_cpu_seconds"):
        assert all(len(v) == 2 and min(v) > 0 for v in doc[kind].values()), kind
    # the order rotates by one place a round (order effects spread, not fixed)
    assert doc["order_per_round"] == [list(speed.PLAN), [*speed.PLAN[1:], speed.PLAN[0]]]
    # one load reading before the rounds and one after each
    assert len(doc["load_average_per_round"]) == 3
    assert (doc["batch"], doc["rounds"], doc["threads"]) == (2, 2, 1)
    assert doc["command"] == " ".join(["python scripts/ch8_speed.py", *args])


@pytest.mark.parametrize("flag", ["--rounds", "--batch", "--threads", "--budget"])
def test_a_count_below_one_is_one_line_and_exit_2(speed, flag, capsys):
    assert speed.main([flag, "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1
