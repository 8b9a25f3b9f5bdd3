"""Reductions (rfcalc/rules/mixing.py): dims and keepdim by position, as lists or beside the
map, partial reductions put back by unsqueeze, `max` of two tensors.
Expected fields are worked out by hand and measured by gradients (see rulenets.py)."""

from __future__ import annotations

from fractions import Fraction as Fr

import pytest
import torch
import torch.nn.functional as F
from measure import check  # rules/conftest.py puts tests/rfcalc on sys.path
from rulenets import SOFTMAX_W, D, grid_sampled, model, out

from rfcalc import EXACT, GLOBAL, UNKNOWN, analyze


@pytest.mark.parametrize(
    "fn",
    [
        lambda s, x: torch.max(s.c3(x), torch.zeros(7, dtype=D)),
        lambda s, x: torch.max(s.c3(x), other=torch.zeros(7, dtype=D)),
        lambda s, x: torch.max(s.c3(x), s.c4(x)),
    ],
    ids=["constant by position", "constant by keyword", "two maps"],
)
def test_max_with_a_second_tensor_is_elementwise(fn):
    # max(a, b) with two tensors takes the larger element at each position: nothing is
    # reduced, each unit keeps the conv's field (both convs see the same 3x3 pixels)
    m = model(fn)
    o = analyze(m, (1, 6, 7)).output
    assert o.size == (6, 7) and o.rf == (3, 3) and o.status == EXACT
    check(m, (1, 6, 7))


@pytest.mark.parametrize(
    "fn, measured",
    [
        (lambda s, x: torch.sum(s.c3(x), -1, True), True),
        # a max passes the gradient to one pixel only: not measured
        (lambda s, x: s.c3(x).amax(-1, True), False),
        (lambda s, x: torch.max(s.c3(x), -1, True)[0], False),
    ],
    ids=["sum", "amax", "max"],
)
def test_keepdim_by_position_keeps_the_map_one_unit_wide(fn, measured):
    # reduced along W, kept as one unit: that unit reads conv units 0..6, pixels -1..7 (rf 9,
    # centred on 3, one window 7 units wide: jump 7); H keeps the conv's 3. Nothing is mixed
    # into a unit that it does not read: exact, and no note
    m = model(fn)
    o = analyze(m, (1, 6, 7)).output
    assert (o.size, o.jump, o.rf, o.start) == ((6, 1), (1, 7), (3, 9), (0, 3))
    assert o.status == EXACT and o.note == ""
    if measured:
        check(m, (1, 6, 7))


@pytest.mark.parametrize(
    "fn, size, rf",
    [
        # no dims at all: torch reduces every dim, the whole map becomes one value
        (lambda s, x: s.c3(x).sum([]), (), (8, 9)),
        (lambda s, x: s.c3(x).sum(()), (), (8, 9)),
        # a list of one dim, the channels: the map is untouched
        (lambda s, x: s.c4(x).sum([1]), (6, 7), (3, 3)),
    ],
    ids=["empty list", "empty tuple", "channels as a list"],
)
def test_reduction_dims_given_as_a_list(fn, size, rf):
    o = out(fn)
    assert o.size == size and o.rf == rf and o.status == EXACT and o.note == ""


@pytest.mark.parametrize(
    "fn, rf, note",
    [
        # (N, H, C, W): the channels between H and W summed away, the map's dims close up to
        # (N, H, W); added to the conv's own map (C, H, W): both have the conv's field
        (lambda s, x: s.c4(x).permute(0, 2, 1, 3).sum(2) + s.c3(x)[0], (3, 3), ""),
        # the same with a softmax along W first: its note and global W go along
        (
            lambda s, x: F.softmax(s.c4(x), -1).permute(0, 2, 1, 3).sum(2) + s.c3(x)[0],
            (3, 9),
            SOFTMAX_W,
        ),
        # channels last, summed away or kept as one: the map stays where it is
        (lambda s, x: s.c4(x).permute(0, 2, 3, 1).sum(-1), (3, 3), ""),
        (lambda s, x: s.c4(x).permute(0, 2, 3, 1).sum(-1, keepdim=True), (3, 3), ""),
    ],
    ids=["channels inside", "channels inside, softmax", "channels last", "kept"],
)
def test_reducing_dims_beside_the_map_keeps_its_field(fn, rf, note):
    m = model(fn)
    o = analyze(m, (1, 6, 7)).output
    assert o.size == (6, 7) and o.rf == rf and o.note == note
    assert o.status == (EXACT if rf == (3, 3) else GLOBAL)
    check(m, (1, 6, 7))


@pytest.mark.parametrize(
    "fn",
    [
        lambda s, x: s.c3(x).sum(-1),
        lambda s, x: torch.norm(s.c3(x), dim=-1),
        # torch.ops.aten.norm takes its dim by position, after p
        lambda s, x: torch.ops.aten.norm(s.c3(x), 2, [-1]),
    ],
    ids=["sum", "norm", "aten norm"],
)
def test_a_partial_reduction_is_shown_as_a_whole_and_unsqueeze_puts_it_back(fn):
    # W summed away: the 6 values left are shown as one whole, the conv's 6x7 map (rf (8, 9),
    # jump (6, 7)), global, with the note why
    o = out(fn)
    assert (o.size, o.jump, o.rf, o.start) == ((), (6, 7), (8, 9), (Fr(5, 2), 3))
    assert o.status == GLOBAL and o.note == f"{o.name}: part of the map is reduced away"
    # unsqueezed back where W was: W as one unit reading pixels -1..7 (as with keepdim)
    m = model(lambda s, x: fn(s, x).unsqueeze(-1))
    o = analyze(m, (1, 6, 7)).output
    assert (o.size, o.jump, o.rf, o.start) == ((6, 1), (1, 7), (3, 9), (0, 3))
    assert o.status == EXACT and o.note == ""
    check(m, (1, 6, 7))


@pytest.mark.parametrize(
    "fn, size, rf",
    [
        # softmax along W, then H reduced: kept as one unit, summed away and put back, or
        # everything summed: H one unit (rf 8, exact), W global (rf 9); the softmax's note stays
        (lambda y: y.sum(-2, keepdim=True), (1, 7), (8, 9)),
        (lambda y: y.sum(-2).unsqueeze(-2), (1, 7), (8, 9)),
        (lambda y: y.sum((-1, -2)), (), (8, 9)),
    ],
    ids=["keepdim", "unsqueezed back", "everything"],
)
def test_a_reduction_keeps_the_note_of_what_it_reduces(fn, size, rf):
    o = out(lambda s, x: fn(F.softmax(s.c3(x), -1)))
    assert o.size == size and o.rf == rf and o.axis_status == (EXACT, GLOBAL)
    assert o.note == SOFTMAX_W


def test_a_pooled_vector_viewed_back_gates_a_map_one_unit_wide():
    # an SE gate: the mean over the map (one value seeing pixels -1..6 x -1..7) viewed back
    # as a 1x1 map, times the map summed along W and kept one unit wide (rows: pixels u-1..u+1
    # along H, -1..7 along W). Along H the gate is spread over the 6 units: global, rf 8;
    # along W both are one unit seeing -1..7: rf 9, exact (a status the merge ranks)
    m = model(lambda s, x: s.c3(x).sum(-1, keepdim=True) * s.c3(x).mean((-2, -1)).view(1, 1, 1, 1))
    o = analyze(m, (1, 6, 7)).output
    assert o.size == (6, 1) and o.rf == (8, 9) and o.axis_status == (GLOBAL, EXACT)
    check(m, (1, 6, 7))


def test_partial_reductions_merged_across_a_broadcast_are_not_the_same_map():
    # channels last with as many channels as rows (1, H=6, W=7, C=6): a = y.sum(W) is
    # (1, H, C), b = y.sum(W, C) is (1, H); a + b broadcasts b along a's channels, so
    # element (h, c) reads rows h and c: unsqueezed where W was, it is not the reduced map
    # (each unit would read row h alone) and the gradients say so
    def fn(s, x):
        y = s.c3(x).permute(0, 2, 3, 1)
        return (y.sum(2) + y.sum((2, 3))).unsqueeze(2)

    m = model(fn, c=6)
    assert analyze(m, (6, 6, 7)).output.size != (6, 1)
    check(m, (6, 6, 7))


@pytest.mark.parametrize(
    "fn, size",
    [
        # the whole map, or part of it, reduced away: no size is claimed (this crashed the
        # analysis, or showed a size that was not the map's, before the fix)
        (lambda y: y.sum(), ()),
        (lambda y: y.sum((1, 2, 3)), ()),
        (lambda y: y.sum(-1), ()),
        (lambda y: y.sum(-1).unsqueeze(-1), ()),
        # kept one unit wide, or only the channels reduced: the map's size stands
        (lambda y: y.amax((-2, -1), keepdim=True), (1, 1)),
        (lambda y: y.sum(1), (6, 7)),
    ],
)
def test_an_unknown_map_reduced_claims_only_the_size_that_is_left(fn, size):
    o = out(lambda s, x: fn(grid_sampled(s, x)))
    assert o.status == UNKNOWN and o.size == size
    assert o.note == "grid_sample: no rule for this op"


@pytest.mark.parametrize(
    "fn",
    [
        # std / var take `unbiased` at position 2 and keepdim at 3; norm takes p, dim, keepdim
        lambda y: torch.std(y, -1, True),
        lambda y: torch.std_mean(y, -1, True)[0],
        lambda y: torch.var(y, -1, False),
        lambda y: torch.norm(y, 2, -1),
    ],
    ids=["std", "std_mean", "var", "norm"],
)
def test_reduced_away_when_keepdim_is_not_given(fn):
    # W reduced away, H left: shown as a whole (rf 8 x 9) until an unsqueeze puts W back as
    # one unit: then H is the conv's 3 again and W one window of the whole width (rf 9)
    o = out(lambda s, x: fn(s.c3(x)))
    assert o.status == GLOBAL and o.rf == (8, 9)
    o = out(lambda s, x: fn(s.c3(x)).unsqueeze(-1))
    assert o.size == (6, 1) and o.rf == (3, 9) and o.status == EXACT


@pytest.mark.parametrize(
    "fn",
    [
        lambda y: torch.std(y, -1, True, True),
        lambda y: torch.var(y, [-1], False, True),
        lambda y: torch.norm(y, 2, -1, True),
        lambda y: torch.std(y, -1, keepdim=True),
    ],
    ids=["std", "var", "norm", "std by keyword"],
)
def test_keepdim_by_position_after_unbiased_or_p(fn):
    # kept one unit wide along W: rf 9 there, the conv's 3 along H
    o = out(lambda s, x: fn(s.c3(x)))
    assert o.size == (6, 1) and o.rf == (3, 9) and o.status == EXACT


def test_std_without_a_dim_reduces_everything():
    # torch.std(x, unbiased): the bool is not a dim. Everything pooled into one unit: an
    # exact window as large as the map, rf 8 x 9, as for y.sum()
    o = out(lambda s, x: torch.std(s.c3(x), True))
    assert o.status == EXACT and o.rf == (8, 9) and o.size == ()
