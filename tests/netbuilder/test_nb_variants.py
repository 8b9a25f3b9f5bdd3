"""The variant family: names, widened specs, receptive fields, skipping, sorting, tables."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from fractions import Fraction

import pytest

from netbuilder.presets import s9
from netbuilder.spec import SpecError
from netbuilder.table import render
from netbuilder.variants import Variant, family, generate, lookup, sort_variants


def _expected_rf(transition: str, depth: int) -> int:
    """Output field by hand: 4*depth size-keeping 3x3 units, four transitions, then the GAP."""
    if transition == "dilated":  # units +2 each, transitions +2*(1+2+4+8); 2x2 map: GAP +1
        return 1 + 2 * 4 * depth + 30 + 1
    if transition == "none":  # units +2, transitions +2 each; 24x24 map: GAP +23
        return 1 + 2 * 4 * depth + 8 + 23
    # strided: stage i runs at jump 2**i: units +2*2**i each, transitions +2*2**i;
    # 2x2 map at jump 16: GAP +16
    return 1 + sum(2 * 2**i * (depth + 1) for i in range(4)) + 16


@pytest.fixture(scope="module")
def measured():
    return generate(200_000, (3, 32, 32), min_rf=44)


def test_family_names():
    names = list(family())
    assert len(names) == len(set(names)) == 2 * 3 * 2 * 3
    assert "dws-dilated-skip-x2" in names and "plain-strided-noskip-x1" in names
    with pytest.raises(SpecError, match="unknown variant 'dws-pooled-skip-x2'"):
        lookup("dws-pooled-skip-x2")


def test_dws_dilated_skip_x2_is_the_assignment_structure():
    assert lookup("dws-dilated-skip-x2").stages == s9().stages


def test_receptive_fields_and_budget(measured):
    assert len(measured) == 36 and not any(v.skipped for v in measured)
    for v in measured:
        assert 0 < v.params <= 200_000, v.name
        assert tuple(v.rf) == (_expected_rf(v.transition, v.depth),) * 2, v.name
        assert v.meets_rf == (_expected_rf(v.transition, v.depth) >= 44), v.name
    below = sorted(v.name for v in measured if not v.meets_rf)
    # dilated and none at depth 1: 1 + 8 + 30 + 1 = 40 and 1 + 8 + 8 + 23 = 40
    assert below == sorted(
        f"{c}-{t}-{s}-x1"
        for c in ("dws", "plain")
        for t in ("dilated", "none")
        for s in ("noskip", "skip")
    )


def test_geometry_that_vanishes_is_skipped_with_a_reason(measured):
    small = generate(200_000, (3, 16, 16), min_rf=0)
    skipped = {v.name: v.skipped for v in small if v.skipped}
    # dilated: 16 -> 14 -> 10 -> 2 -> 2 - 16 < 1; none and strided stay >= 1 pixel
    assert sorted(skipped) == sorted(n for n in family() if "-dilated-" in n)
    assert all("t4 shrinks the map from 2x2" in r for r in skipped.values())


def test_the_narrowest_budget_builds_only_the_narrowest_variants(measured):
    # plain x1 at widths 1,1,1,1: 29 + 4*11 + 3*11 + 20 = 126 parameters (see test_nb_cli)
    built = [v for v in generate(126, (3, 32, 32)) if not v.skipped]
    assert sorted(v.name for v in built) == sorted(
        n for n in family() if n.startswith("plain-") and n.endswith("-x1")
    )
    assert {v.params for v in built} == {126}


def _fake(name: str, rf: int, params: int, macs: int) -> Variant:
    conv, trans, skip, depth = name.split("-")
    return Variant(
        name,
        s9(),
        conv,
        trans,
        skip == "skip",
        int(depth[1:]),
        params=params,
        macs=macs,
        size=(2, 2),
        rf=(Fraction(rf), Fraction(rf)),
        rf_status="exact",
        meets_rf=rf >= 44,
    )


FAKES = [
    _fake("dws-dilated-skip-x2", 48, 190_000, 9),
    _fake("plain-none-skip-x1", 40, 199_000, 7),
    _fake("dws-strided-skip-x1", 77, 150_000, 8),
    _fake("plain-dilated-skip-x3", 48, 195_000, 5),
]


def test_sorting():
    names = lambda vs: [v.name for v in vs]  # noqa: E731
    assert names(sort_variants(FAKES, "rf")) == [
        "dws-strided-skip-x1",
        "plain-dilated-skip-x3",
        "dws-dilated-skip-x2",
        "plain-none-skip-x1",
    ]  # rf down, then params down
    assert names(sort_variants(FAKES, "params"))[0] == "plain-none-skip-x1"
    assert names(sort_variants(FAKES, "macs"))[0] == "dws-dilated-skip-x2"
    assert names(sort_variants(FAKES, "name"))[0] == "dws-dilated-skip-x2"


def test_tables():
    skipped = [
        Variant(
            "dws-dilated-skip-x1", s9(), "dws", "dilated", True, 1, skipped="t4 shrinks the map"
        )
    ]
    data = json.loads(render(FAKES, "json", budget=200_000, min_rf=44, skipped=skipped))
    assert data["budget"] == 200_000 and data["min_rf"] == 44
    assert isinstance(data["min_rf"], int)
    assert [r["name"] for r in data["variants"]] == [v.name for v in FAKES]
    first = data["variants"][0]
    # numbers are numbers, per-axis values lists in axis order
    assert first["rf"] == [48, 48] and first["out"] == [2, 2] and first["params"] == 190_000
    assert first["widths"] == [23, 32, 63, 93] and first["macs"] == 9 and first["depth"] == 2
    assert first["skip"] is True and first["meets_rf"] is True
    assert data["skipped"] == [{"name": "dws-dilated-skip-x1", "reason": "t4 shrinks the map"}]
    assert json.loads(render(FAKES, "json", budget=1, min_rf=44.5))["min_rf"] == 44.5
    rows = list(
        csv.DictReader(io.StringIO(render(FAKES, "csv", budget=1, min_rf=0, skipped=skipped)))
    )
    assert rows[1] == {
        "name": "plain-none-skip-x1",
        "conv": "plain",
        "transition": "none",
        "skip": "yes",
        "depth": "1",
        "widths": "23,32,63,93",
        "params": "199000",
        "macs": "7",
        "out": "2",
        "rf": "40",
        "rf_status": "exact",
        "meets_rf": "NO",
        "skipped": "",
    }
    assert rows[-1]["skipped"] == "t4 shrinks the map" and rows[-1]["params"] == "-"
    md = render(FAKES, "markdown", budget=1, min_rf=0).splitlines()
    assert md[2].startswith("| name |") and len(md) == 4 + len(FAKES)
    assert md[5] == (
        "| plain-none-skip-x1 | plain | none | yes | 1 | 23,32,63,93 | 199,000 "
        "| 7 | 2 | 40 | exact | NO |"
    )
    text = render(FAKES, "text", budget=200_000, min_rf=44, skipped=skipped).splitlines()
    assert text[0] == "budget 200,000 parameters, required receptive field 44"
    assert text[4].split() == [
        "dws-dilated-skip-x2",
        "dws",
        "dilated",
        "yes",
        "2",
        "23,32,63,93",
        "190,000",
        "9",
        "2",
        "48",
        "exact",
        "yes",
    ]
    assert text[5].endswith("NO")
    assert text[-2:] == [
        "Variants that cannot be built:",
        "  dws-dilated-skip-x1: t4 shrinks the map",
    ]


def test_per_axis_values_keep_their_axis_order():
    tall = replace(FAKES[0], size=(2, 82), rf=(Fraction(48), Fraction(128)))
    assert json.loads(render([tall], "json", budget=1, min_rf=0))["variants"][0]["rf"] == [48, 128]
    text = render([tall], "text", budget=1, min_rf=0)
    assert " 2×82  48×128 " in text
