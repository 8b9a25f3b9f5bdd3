"""The Pareto fronts of recorded trials, against fronts worked out by hand (no Ray here)."""

from __future__ import annotations

import pytest

from training.search_report import dominates, fronts, pareto_front, table

# Seven recorded trials. Worked by hand (smaller params/MACs and larger acc are better):
#  by params: 2 (90, .60) is cheapest; 0 and 5 (100, .70) beat it on acc and tie with each
#    other (neither dominates a twin); 3 (110, .65) loses to 0; 1 (120, .75) is the most
#    accurate; 6 (150, .50) loses to 1.                              -> 0, 1, 2, 5
#  by MACs: 6 (30, .50) is cheapest; 1 (40, .75) beats everything dearer.  -> 1, 6
#  by both: 3 is dominated by 0 (100 <= 110, 50 <= 55, .70 >= .65); every other one is the
#    cheapest or most accurate on some trade-off.                   -> 0, 1, 2, 5, 6
#  Trial 4 was stopped by ASHA after one epoch: it is never on a front, although its
#  numbers (80 params, .90) would dominate every other trial by params.
ROWS = [
    {"params": 100, "macs": 50, "acc": 0.70, "completed": True},
    {"params": 120, "macs": 40, "acc": 0.75, "completed": True},
    {"params": 90, "macs": 60, "acc": 0.60, "completed": True},
    {"params": 110, "macs": 55, "acc": 0.65, "completed": True},
    {"params": 80, "macs": 80, "acc": 0.90, "completed": False},
    {"params": 100, "macs": 50, "acc": 0.70, "completed": True},
    {"params": 150, "macs": 30, "acc": 0.50, "completed": True},
]


def test_fronts_by_hand():
    assert fronts(ROWS) == {
        "params": [0, 1, 2, 5],
        "macs": [1, 6],
        "params+macs": [0, 1, 2, 5, 6],
    }


def test_a_stopped_trial_counts_once_it_completed():
    rows = [dict(r) for r in ROWS]
    rows[4]["completed"] = True
    # 80 params at .90: cheaper and more accurate than every other trial
    assert pareto_front(rows, ("params",)) == [4]
    # by MACs (80, the second dearest) it is a trade-off against 1 and 6 instead
    assert pareto_front(rows, ("macs",)) == [1, 4, 6]


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ({"params": 1, "acc": 0.5}, {"params": 1, "acc": 0.5}, False),  # a twin
        ({"params": 1, "acc": 0.6}, {"params": 1, "acc": 0.5}, True),
        ({"params": 1, "acc": 0.5}, {"params": 2, "acc": 0.5}, True),
        ({"params": 1, "acc": 0.4}, {"params": 2, "acc": 0.5}, False),  # a trade-off
    ],
)
def test_dominates(a, b, expected):
    assert dominates(a, b, ("params",)) is expected


def test_table_marks_the_fronts_and_the_stopped():
    rows = [
        dict(r, label=f"net{i}", rf=44, epochs=3 if r["completed"] else 1)
        for i, r in enumerate(ROWS)
    ]
    body = table(rows, fronts(rows)).splitlines()[2:]
    cells = [[c.strip() for c in line.strip()[1:-1].split("|")] for line in body]
    mark = {c[1]: c[-1] for c in cells}
    assert mark == {
        "net0": "P",
        "net1": "PM",
        "net2": "P",
        "net3": "",
        "net4": "",
        "net5": "P",
        "net6": "M",
    }
    epochs = {c[1]: c[5] for c in cells}
    assert epochs["net4"] == "1 (stopped)" and epochs["net1"] == "3"
    # best accuracy first
    assert [c[1] for c in cells][:2] == ["net4", "net1"]
