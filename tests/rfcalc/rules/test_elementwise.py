"""Element-wise ops and merges (rfcalc/rules/elementwise.py): cat and stack, a map plus a
vector, maps merged with maps whose fields differ.
Expected fields are worked out by hand and measured by gradients (see rulenets.py)."""

from __future__ import annotations

from fractions import Fraction as Fr

import pytest
import torch
import torch.nn.functional as F
from measure import check  # rules/conftest.py puts tests/rfcalc on sys.path
from rulenets import SAME, D, grid_sampled, model, out

from rfcalc import EXACT, GLOBAL, UNKNOWN, analyze


def test_stack_in_front_of_the_map_keeps_the_field_and_inside_it_is_unknown():
    # stacked in front (then summed): the conv3's field, rf 3, exact
    o = out(lambda s, x: torch.stack([s.c3(x), s.c3(x)], 1).sum(1))
    assert o.status == EXACT and o.rf == (3, 3)
    # a new dim between H and W: the map is cut apart
    o = out(lambda s, x: torch.stack([s.c3(x), s.c3(x)], -2).sum(-2))
    assert o.status == UNKNOWN and "stacking inside the spatial dims" in o.note


def test_cat_along_a_spatial_axis_is_unknown():
    o = out(SAME["cat by keyword"][0][0])
    assert o.status == UNKNOWN and "concatenation along a spatial axis" in o.note
    assert out(lambda s, x: torch.cat([s.c3(x), x], 1)).rf == (3, 3)


def test_stack_by_default_goes_in_front_of_the_first_dim():
    # two unbatched H x W maps stacked at dim 0 (torch's default), in front of H: the map is
    # whole (at dim 1 it would be inside it)
    o = out(lambda s, x: torch.stack([s.c3(x)[0, 0], s.c3(x)[0, 0]]).sum(0))
    assert o.status == EXACT and o.rf == (3, 3) and o.size == (6, 7)
    o = out(lambda s, x: torch.stack([s.c3(x), s.c3(x)], -1).sum(-1))
    assert o.status == UNKNOWN and o.note == "stack: stacking inside the spatial dims"


def test_cat_by_default_joins_the_first_dim():
    # two unbatched (C, H, W) maps joined at dim 0 (torch's default), the channels: the field
    # stays the conv3's; along W the map would be cut in two
    o = out(lambda s, x: torch.cat([s.c3(x)[0], s.c3(x)[0]]).sum(0))
    assert o.status == EXACT and o.rf == (3, 3) and o.size == (6, 7)
    o = out(lambda s, x: torch.cat([s.c3(x), s.c3(x)], -1))
    assert o.status == UNKNOWN and o.note == "cat: concatenation along a spatial axis"


def test_stacking_right_before_w_is_inside_the_map():
    # two 2x7 maps stacked at dim 3 of the output (1, 1, 2, 2, 7): the new dim sits between
    # H and W. Its size (2) equals H's, so nothing failed: the table claimed a 2x7 map
    o = out(lambda s, x: torch.stack([s.c3(x), s.c3(x)], 3).sum(3), (1, 2, 7))
    assert o.status == UNKNOWN and "stacking inside the spatial dims" in o.note
    # at dim 2, in front of H, the map is whole
    o = out(lambda s, x: torch.stack([s.c3(x), s.c3(x)], 2).sum(2), (1, 2, 7))
    assert o.status == EXACT and o.rf == (3, 3)


def test_an_unknown_input_is_absorbed_only_by_a_field_global_on_every_axis():
    # softmax along W then along H: every unit sees the whole map. Multiplied by a map whose
    # field is unknown, every unit still sees at least the whole map: global, not unknown
    whole = lambda s, x: F.softmax(F.softmax(s.c3(x), -1), -2)  # noqa: E731
    o = out(lambda s, x: grid_sampled(s, x) * whole(s, x))
    assert o.status == GLOBAL and o.rf == (8, 9)
    # a field global along W only cannot absorb it
    o = out(lambda s, x: grid_sampled(s, x) * F.softmax(s.c3(x), -1))
    assert o.status == UNKNOWN


L1 = torch.full((1, 42), 1 / 42, dtype=D)  # a Linear over the flattened map, to one number


@pytest.mark.parametrize(
    "fn",
    [
        lambda s, x: s.c3(x) + F.linear(s.c3(x).flatten(1), L1),
        lambda s, x: F.linear(s.c3(x).flatten(1), L1) + s.c3(x),
    ],
    ids=["map + vector", "vector + map"],
)
def test_a_map_plus_a_vector_that_mixed_everything_is_that_vector(fn):
    # the Linear's one number read every position (pixels -1..6 x -1..7: rf (8, 9)); added to
    # each unit of the map, every output unit reads them all: one global vector
    m = model(fn)
    o = analyze(m, (1, 6, 7)).output
    assert (o.status, o.size, o.rf) == (GLOBAL, (), (8, 9))
    assert o.note == "linear: mixes every position of the map"
    check(m, (1, 6, 7))


def test_a_map_plus_its_transpose_is_unknown():
    # unit (i, j) reads conv units (i, j) and (j, i): the two maps keep H and W in different
    # dims, which no single field per axis describes
    m = model(lambda s, x: s.c3(x) + s.c3(x).transpose(-1, -2))
    o = analyze(m, (1, 6, 6)).output
    assert (o.status, o.size) == (UNKNOWN, (6, 6))
    assert o.note == "add: the merged tensors keep their maps in different dims"
    check(m, (1, 6, 6))


@pytest.mark.parametrize(
    "fn",
    [
        lambda s, x: torch.relu(s.c3(x).view(1, 2, 21)),
        lambda s, x: s.c3(x).view(1, 2, 21) * 2,
        lambda s, x: s.c3(x).view(1, 2, 21) + s.c3(x).view(1, 2, 21),
        lambda s, x: s.c3(x).flatten(1)[:, :1] + s.c3(x)[..., 1:].flatten(1)[:, :1],
    ],
    ids=["relu", "times a constant", "plus itself", "two picked entries"],
)
def test_an_element_wise_op_on_a_vector_shown_as_a_whole_keeps_it_global(fn):
    # each entry of the flattened map still reads one 3x3 patch; the vector is only shown as
    # the whole map (global, rf (8, 9)). An element-wise op must not make that an exact
    # claim that every entry reads all 8 x 9 pixels (it did: exact)
    o = out(fn)
    assert (o.status, o.size, o.rf) == (GLOBAL, (), (8, 9))
    assert o.note.endswith("the spatial map is flattened, per-position fields end here")


@pytest.mark.parametrize(
    "fn, status, note",
    [
        # two vectors only shown as a whole: each entry still reads one patch
        (
            lambda s, x: s.c3(x).view(1, 2, 21) + s.c3(x).view(1, 2, 21),
            UNKNOWN,
            "sort: no rule for this op",
        ),
        # a vector whose every entry read every position (a Linear over the map) plus a
        # global mean: every entry of the sum read every position too
        (
            lambda s, x: F.linear(s.c3(x).flatten(1), L1) + s.c3(x).mean((2, 3)),
            GLOBAL,
            "linear: mixes every position of the map",
        ),
    ],
    ids=["shown as a whole", "really mixed"],
)
def test_a_sum_of_vectors_is_really_mixed_only_if_an_input_was(fn, status, note):
    o = out(lambda s, x: torch.sort(fn(s, x), -1)[0])
    assert (o.status, o.note) == (status, note)


def test_an_element_wise_op_on_an_unbatched_map_keeps_it():
    # the map viewed as a bare 6 x 7 tensor (its dims are all the tensor has), times 2
    m = model(lambda s, x: s.c3(x).view(6, 7) * 2)
    o = analyze(m, (1, 6, 7)).output
    assert (o.status, o.size, o.rf, o.start) == (EXACT, (6, 7), (3, 3), (0, 0))
    check(m, (1, 6, 7))


def test_pooled_vectors_merge_into_an_exact_vector():
    # a global mean (pixels -1..6 x -1..7) plus a global max of the map cropped to W units
    # 1..6 (pixels -1..6 x 0..7): each is one exact window; their sum reads the union
    o = out(lambda s, x: s.c3(x).mean((2, 3)) + s.c3(x)[..., 1:].amax((2, 3)))
    assert (o.status, o.size, o.rf, o.start) == (EXACT, (), (8, 9), (Fr(5, 2), 3))


def test_three_maps_added_in_turn_stay_exact():
    # (a + b) + c: the first sum is an exact map again, so the second merge is as the first
    m = model(lambda s, x: s.c3(x) + s.c3(x) + s.c3(x))
    o = analyze(m, (1, 6, 7)).output
    assert (o.status, o.size, o.rf, o.note) == (EXACT, (6, 7), (3, 3), "")
    check(m, (1, 6, 7))


W77 = torch.full((7, 7), 1 / 7, dtype=D)


@pytest.mark.parametrize(
    "fn, note",
    [
        (
            lambda s, x: F.linear(s.c3(x), W77) + s.c3(x),
            "linear: mixes every position along the axis",
        ),
        (lambda s, x: s.c3(x) @ W77 + s.c3(x), "matmul: mixes every position along the axis"),
        (
            lambda s, x: s.c3(x).sum(-1).unsqueeze(-1) + s.c3(x),
            "add: one unit's field is spread over the whole map",
        ),
    ],
    ids=["Linear along W", "x @ W", "sum along W put back"],
)
def test_a_map_mixed_along_one_axis_merges_with_an_exact_map(fn, note):
    # each unit of the left operand reads all 7 conv units along W (pixels -1..7: rf 9) and
    # conv rows u-1..u+1 along H (rf 3); the right operand's 3x3 lies inside that. The sum:
    # exact along H, global along W
    m = model(fn)
    o = analyze(m, (1, 6, 7)).output
    assert (o.size, o.rf, o.status, o.axis_status) == ((6, 7), (3, 9), GLOBAL, (EXACT, GLOBAL))
    assert o.note == f"{note} (exact along H, global along W)"
    check(m, (1, 6, 7))


def test_a_map_added_to_half_of_a_buffer_is_not_exact_along_the_other_axis():
    # c7 written into columns 0..5 of a zeroed buffer, then c1(x) + buffer: a unit in columns
    # 0..5 reads rows i-3..i+3, one in columns 6..11 only row i (measured by perturbation),
    # which no per-axis field says exactly: the rows axis is approx, rf the widest unit's
    import adversarial as adv

    def fn(s, x):
        s.cache.zero_()
        s.cache[..., :, :6].add_(s.c7(x)[..., :, :6])
        return s.c1(x) + s.cache

    _, moved = adv.dependence(adv.model(fn))
    units = adv.unit_spans(moved, 2, (-2, -1))
    assert units[(5, 2)][0] == (2, 8) and units[(5, 8)][0] == (5, 5)
    o = analyze(adv.model(fn), adv.SHAPE, check=False).output
    assert o.axis_status[0] != EXACT and o.rf[0] == 7
    assert adv.under_claims(o, adv.SHAPE, units) == []
