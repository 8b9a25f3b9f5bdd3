"""Spec checking: every way a spec can be wrong is a one-line SpecError naming the unit."""

from __future__ import annotations

import dataclasses
import json

import pytest

from netbuilder.build import build
from netbuilder.presets import preset, s9
from netbuilder.spec import DWS, ConvUnit, NetSpec, SpecError, Stage, check, from_dict


def _with_transition(spec: NetSpec, i: int, unit: ConvUnit) -> NetSpec:
    stages = list(spec.stages)
    stages[i] = Stage(stages[i].units, unit)
    return dataclasses.replace(spec, stages=tuple(stages))


def test_s9_sizes():
    sizes = check(s9(), (3, 32, 32))
    assert len(sizes) == 12  # 8 block units, 4 t's
    assert sizes[:3] == [(32, 32), (32, 32), (30, 30)]  # t1: 32 - 2
    assert sizes[-1] == (2, 2)  # 18 - 2*8


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda s: _with_transition(s, 0, ConvUnit(groups=4)), "groups 4 must divide"),  # 23 -> 32
        (lambda s: _with_transition(s, 1, ConvUnit(kind=DWS, groups=2)), "groups applies"),
        (lambda s: _with_transition(s, 0, ConvUnit(skip=True)), "skip needs equal channels"),
        (lambda s: _with_transition(s, 3, ConvUnit(skip=True)), "size-keeping"),  # 93 -> 93
        (lambda s: _with_transition(s, 0, ConvUnit(kind="sep")), "unknown unit kind"),
        (lambda s: _with_transition(s, 0, ConvUnit(kernel=0)), "kernel must be"),
        (lambda s: _with_transition(s, 0, ConvUnit(dropout=1.0)), "dropout"),
        (lambda s: _with_transition(s, 0, ConvUnit(dropout="0.1")), "dropout"),  # from JSON
        (lambda s: _with_transition(s, 0, ConvUnit(dilation="2")), "dilation must be"),
        (lambda s: dataclasses.replace(s, widths=(23, 32, 63)), "3 widths for 4 stages"),
        (lambda s: dataclasses.replace(s, widths=(23, 0, 63, 93)), "width of stage 2"),
        (
            lambda s: dataclasses.replace(
                s, stages=(Stage((), s.stages[0].transition),), widths=(23,)
            ),
            "no units",
        ),
    ],
)
def test_bad_specs(make, message):
    with pytest.raises(SpecError, match=message) as info:
        check(make(s9()), (3, 32, 32))
    assert "\n" not in str(info.value)


def test_a_dilation_that_shrinks_the_map_below_one_pixel():
    # 16 -> 14 (t1) -> 10 (t2, -4) -> 2 (t3, -8) -> 2 - 16 < 1 at t4
    with pytest.raises(SpecError, match=r"t4 shrinks the map from 2x2 to -14x-14"):
        check(s9(), (3, 16, 16))
    with pytest.raises(SpecError, match="t1 shrinks"):
        check(_with_transition(s9(), 0, ConvUnit(kernel=40)), (3, 32, 32))


def test_input_must_match():
    with pytest.raises(SpecError, match="has 1 channels"):
        check(s9(), (1, 32, 32))
    with pytest.raises(SpecError, match="C,H,W"):
        check(s9(), (3, 32))


def test_unknown_preset():
    with pytest.raises(SpecError, match="unknown preset 'vgg'"):
        preset("vgg")


def test_json_round_trip_builds_the_same_net():
    spec = from_dict(json.loads(json.dumps(s9().to_dict())))
    assert spec == s9()
    assert sum(p.numel() for p in build(spec).parameters()) == 190_509
    with pytest.raises(SpecError, match="malformed spec"):
        from_dict({"widths": [1]})
