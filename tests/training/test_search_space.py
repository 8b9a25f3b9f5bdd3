"""rfsearch's sampler: seeded, within the budget, above the field floor; bad spaces refused.

Parameters are counted on the built module (sum of numel), MACs with torch's own FLOP
counter, and one receptive field worked out by hand: none from netbuilder's polynomials.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from netbuilder.build import Net
from rfkit_base.commandline import UserError
from training.search_space import design_spec, parse_space, sample

SPACE = {
    "seed": 3,
    "samples": 5,
    "min_rf": 44,
    "space": {
        "conv": ["plain", "dws"],
        "transition": ["dilated", "strided"],
        "skip": [True, False],
        "depth": [1, 2],
        "widths": [[8, 8, 16, 16], [4, 8, 16, 32]],
        "budget": [6000, 20000],
    },
}


@pytest.fixture(scope="module")
def sampled():
    return sample(parse_space(SPACE))


def test_same_space_and_seed_same_candidates(sampled):
    again = sample(parse_space(SPACE))
    assert [c.key for c in again.candidates] == [c.key for c in sampled.candidates]
    other = sample(parse_space({**SPACE, "seed": 4}))
    assert [c.key for c in other.candidates] != [c.key for c in sampled.candidates]


def test_candidates_within_budget_and_above_the_floor(sampled):
    assert len(sampled.candidates) == 5
    assert len({c.key for c in sampled.candidates}) == 5
    for c in sampled.candidates:
        model = Net(c.spec).eval()
        params = sum(p.numel() for p in model.parameters())
        assert params == c.params <= c.design["budget"], c.key
        # maximal: the widths a budget buys are not far below it (every stage at least
        # one channel narrower would not be the solved net)
        assert params > 0.5 * c.design["budget"], c.key
        with FlopCounterMode(display=False) as flops:
            model(torch.zeros(1, 3, 32, 32))
        # torch counts a multiply-add as 2 FLOPs; biases, norms and pooling as none
        assert flops.get_total_flops() == 2 * c.macs, c.key
        assert c.rf >= 44, c.key


def test_the_rejected_are_counted(sampled):
    looked = len(sampled.candidates) + sum(sampled.rejected.values())
    assert sampled.record()["looked_at"] == looked
    # 2*2*2*2 structures (dilated ones have one dilation schedule) x 2 widths x 2 budgets
    assert sampled.points == 64


def test_receptive_field_by_hand():
    # plain-strided-noskip-x1: the stem, then t1, and one unit + transition per later stage,
    # all 3x3. rf grows by 2*jump per layer, the jump doubles at each strided transition:
    # 3, 5 (jump 2), 9, 13 (4), 21, 29 (8), 45, 61 (16); the map is 2x2 after t4 (32 ->
    # 16 -> 8 -> 4 -> 2), and the global average over 2 positions adds one jump: 77.
    space = parse_space(
        {
            "samples": 1,
            "space": {
                "conv": ["plain"],
                "transition": ["strided"],
                "skip": [False],
                "depth": [1],
                "budget": [50000],
            },
        }
    )
    (c,) = sample(space).candidates
    assert c.rf == 77


def test_dilations_axis_sets_the_transitions():
    spec = design_spec(
        {
            "conv": "plain",
            "transition": "dilated",
            "skip": False,
            "depth": 1,
            "widths": [8, 8, 8, 8],
            "dilations": [1, 1, 2, 3],
            "budget": 5000,
        }
    )
    assert [st.transition.dilation for st in spec.stages] == [1, 1, 2, 3]
    # the schedule is an axis of dilated transitions only: strided points appear once
    points = parse_space(
        {
            "space": {
                "transition": ["dilated", "strided"],
                "conv": ["plain"],
                "skip": [False],
                "depth": [1],
                "dilations": [[1, 2, 4, 8], [1, 1, 2, 2]],
            }
        }
    ).points()
    assert len(points) == 3


@pytest.mark.parametrize(
    "space, words",
    [
        ([], "expected a JSON object"),
        ({"spaces": {}}, "unknown key"),
        ({"space": {"conv": ["plain", "grouped"]}}, "'grouped' is not one of"),
        ({"space": {"depth": []}}, "non-empty list"),
        ({"space": {"budget": [0]}}, "positive integers"),
        ({"space": {"widths": [[8, 8, 8, 8]], "dilations": [[1, 2]]}}, "one dilation per stage"),
        ({"train": {"lr": -1}}, "--lr must be positive"),
        ({"train": {"learning_rate": 0.1}}, "not a training setting"),
        ({"samples": 0}, "integer >= 1"),
        ({"space": {"budget": [10]}, "samples": 2}, "none of its"),
    ],
)
def test_bad_spaces_are_one_line_errors(space, words):
    with pytest.raises(UserError, match=words) as exc:
        sample(parse_space(space))
    assert "\n" not in str(exc.value)
