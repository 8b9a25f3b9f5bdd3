"""Gaps that mutation testing found in the mixing rules (rfcalc/rules/mixing.py): reductions
given their dims and keepdim by position, as lists or beside the map, partial reductions put
back by unsqueeze, `max` of two tensors, a dim contracted with a constant (Linear, x @ W),
softmax by position, and the notes these rules keep or write.

Expected fields are worked out by hand in the comments and measured by gradients (`check`).
The conv3 (`s.c3`, padding 1) before each op: unit u sees pixels u-1..u+1 (rf 3, start 0).
Its whole 6x7 map as one unit sees pixels -1..6 along H and -1..7 along W (padding counted):
rf (8, 9), centred on (2.5, 3), one window of 6 x 7 units (jump (6, 7))."""

from __future__ import annotations

from fractions import Fraction as Fr

import pytest
import torch
import torch.nn.functional as F
from measure import check, positive  # tests/rfcalc is on sys.path, as for zoo
from test_gaps_rules import L42, RM, RV, D, _grid_sampled, model, out, refolded

from rfcalc import EXACT, GLOBAL, UNKNOWN, analyze

SOFTMAX_W = "softmax: computed along a spatial dim (exact along H, global along W)"

# ---------------------------------------------------------------- reductions


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
    o = out(lambda s, x: fn(_grid_sampled(s, x)))
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


# ---------------------------------------------------------------- contractions with a constant


@pytest.mark.parametrize(
    "fn, size, jump",
    [
        # W (7) contracted with 5 rows of weights: 5 new units along W, each reading the
        # whole width (pixels -1..7, rf 9, jump 0); H keeps the conv's 3
        (lambda y: F.linear(y, torch.ones(5, 7, dtype=D)), (6, 5), (1, 0)),
        (lambda y: F.linear(y, torch.ones(2, 7, dtype=D)), (6, 2), (1, 0)),
        # as many new units as old ones
        (lambda y: F.linear(y, torch.ones(7, 7, dtype=D)), (6, 7), (1, 0)),
        # a single unit: one window as wide as the map (jump 7), not a broadcast one
        (lambda y: F.linear(y, torch.ones(1, 7, dtype=D)), (6, 1), (1, 7)),
        (lambda y: y @ torch.ones(7, 1, dtype=D), (6, 1), (1, 7)),
    ],
    ids=["7 to 5", "7 to 2", "7 to 7", "7 to 1", "matmul 7 to 1"],
)
def test_a_linear_along_w_mixes_w(fn, size, jump):
    m = model(lambda s, x: fn(s.c3(x)))
    o = analyze(m, (1, 6, 7)).output
    assert o.size == size and o.jump == jump and o.rf == (3, 9)
    assert o.axis_status == ((EXACT, GLOBAL) if size[1] > 1 else (EXACT, EXACT))
    if size[1] > 1:
        assert o.note == (
            f"{o.name}: mixes every position along the axis (exact along H, global along W)"
        )
    check(m, (1, 6, 7))


def test_a_linear_along_w_merges_with_itself():
    # the same field twice: their union, global along W (a status the merge can rank)
    w = torch.ones(5, 7, dtype=D)
    o = out(lambda s, x: F.linear(s.c3(x), w) + F.linear(s.c3(x), w))
    assert o.size == (6, 5) and o.rf == (3, 9) and o.axis_status == (EXACT, GLOBAL)


def test_a_linear_along_a_global_axis_keeps_the_note_that_made_it_global():
    # a softmax along W already made every unit see the whole width: the Linear adds nothing
    o = out(lambda s, x: F.linear(F.softmax(s.c3(x), -1), torch.ones(7, 7, dtype=D)))
    assert o.rf == (3, 9) and o.axis_status == (EXACT, GLOBAL) and o.note == SOFTMAX_W


def test_a_linear_that_drops_a_spatial_dim_is_unknown():
    # a 1-D weight contracts W away: the map loses a dim
    o = out(lambda s, x: F.linear(s.c3(x), torch.ones(7, dtype=D)))
    assert o.status == UNKNOWN and o.note == "linear: linear changes the number of dims"


# ---------------------------------------------------------------- along a dim, flattened maps


@pytest.mark.parametrize(
    "fn",
    [
        lambda y: torch.softmax(y, -1),
        lambda y: y.softmax(-1),
        lambda y: y.log_softmax(-1),
    ],
    ids=["torch.softmax", "Tensor.softmax", "Tensor.log_softmax"],
)
def test_softmax_dim_by_position(fn):
    # along W: every unit sees the whole width (rf 3 + 7 - 1 = 9), H keeps the conv's 3
    m = model(lambda s, x: fn(s.c3(x)))
    o = analyze(m, (1, 6, 7)).output
    assert o.rf == (3, 9) and o.axis_status == (EXACT, GLOBAL)
    assert o.note == f"{o.name}: computed along a spatial dim (exact along H, global along W)"
    check(m, (1, 6, 7))


@pytest.mark.filterwarnings("ignore:Implicit dimension choice")
def test_softmax_without_a_dim_is_unknown():
    # F.softmax(x) picks a dim from the tensor's number of dims (with a warning): not guessed
    o = out(lambda s, x: F.softmax(s.c3(x)))
    assert o.status == UNKNOWN and o.note == "softmax: implicit softmax dim"


def test_an_unknown_map_in_einsum_keeps_its_size():
    o = out(lambda s, x: torch.einsum("bchw->bchw", _grid_sampled(s, x)))
    assert o.status == UNKNOWN and o.size == (6, 7)
    assert o.note == "grid_sample: no rule for this op"


def test_running_statistics_of_a_flattened_map_keep_each_position():
    # eval batch norm is per channel: each element of the flattened map keeps its position's
    # field (issue #27: a token is a position; until then shown as one whole). Measured:
    # element 2·7 + 3 = 17 (position (2, 3)) reaches pixels 1..3 x 2..4
    fn = lambda s, x: F.batch_norm(s.c3(x).flatten(2), RM, RV)  # noqa: E731
    o = out(fn)
    assert o.status == EXACT and o.rf == (3, 3) and o.start == (0, 0) and o.size == (6, 7)
    probe = torch.ones(1, 1, 6, 7, dtype=D, requires_grad=True)
    (grad,) = torch.autograd.grad(model(fn)(probe)[0, 0, 17], probe)
    hit = torch.nonzero(grad[0, 0]).tolist()
    assert {h for h, _ in hit} == {1, 2, 3} and {w for _, w in hit} == {2, 3, 4}


@pytest.mark.parametrize(
    "op",
    [
        lambda v: F.softmax(v, -1),
        lambda v: v.unsqueeze(-1).sum(-1),
        lambda v: F.batch_norm(v, torch.zeros(5, dtype=D), torch.ones(5, dtype=D)),
    ],
    ids=["softmax", "sum", "batch_norm"],
)
def test_a_vector_that_mixed_every_position_stays_so(op):
    # after a Linear over the flattened map every element read every position: an op after
    # it cannot undo that, so even an op with no rule (sort) leaves it global (this was
    # unknown: the mark was dropped by the op in between)
    o = out(lambda s, x: torch.sort(op(F.linear(s.c3(x).flatten(1), L42)), -1)[0])
    assert o.status == GLOBAL and o.note == "linear: mixes every position of the map"


# ---------------------------------------------------------------- norms between unfold and fold

R9M, R9V = torch.zeros(9, dtype=D), torch.full((9,), 4.0, dtype=D)  # 1 channel x 3x3 window


@pytest.mark.parametrize(
    "norm",
    [
        lambda c: F.batch_norm(c, R9M, R9V),
        lambda c: torch.batch_norm(c, None, None, R9M, R9V, False, 0.1, 1e-5, False),
        lambda c: F.instance_norm(c, R9M, R9V, use_input_stats=False),
        lambda c: torch.instance_norm(c, None, None, R9M, R9V, False, 0.1, 1e-5, False),
    ],
    ids=["F.batch_norm", "torch.batch_norm", "F.instance_norm", "torch.instance_norm"],
)
def test_a_norm_with_running_statistics_keeps_the_unfolded_layout(norm):
    # running statistics scale and shift each entry on its own: F.fold still finds the
    # windows of the unfold (before: unknown, the layout was dropped)
    m = model(refolded(norm))
    o = analyze(m, (1, 6, 7)).output
    assert o.status == EXACT and o.size == (6, 7) and o.rf == (3, 3) and o.start == (0, 0)
    check(m, (1, 6, 7))


def test_a_norm_with_batch_statistics_loses_the_unfolded_layout():
    # batch statistics mix every entry of a channel (all windows): F.fold cannot undo that
    m = model(refolded(lambda c: F.batch_norm(c, None, None, training=True)))
    assert analyze(m, (1, 6, 7)).output.status != EXACT


@pytest.mark.parametrize("fn", [lambda c: c.sum(1), lambda c: c.mean(-1)], ids=["sum", "mean"])
def test_a_reduction_of_unfolded_windows_keeps_the_unfold_note(fn):
    # F.unfold flattens the windows into one dim (the map is gone, every entry global); a
    # reduction after it says nothing new, so the row keeps the unfold's reason
    a = analyze(model(lambda s, x: fn(F.unfold(s.c3(x), 2))), (1, 6, 7))
    assert a.output.status == GLOBAL and a.output.size == ()
    assert a.output.note == "unfold: the windows are flattened into one dim"


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


def test_fold_of_a_product_with_a_flattened_map_that_no_unfold_made_is_unknown():
    # W @ x.flatten(2) has the (N, C*k*k, L) shape F.fold wants, but its columns are not
    # windows of an unfold: rfcalc does not describe it (it says so rather than guess)
    w = torch.full((9, 1), 1 / 9, dtype=D)
    m = model(lambda s, x: F.fold(w @ s.c3(x).flatten(2), (6, 7), 3, padding=1))
    o = analyze(m, (1, 6, 7)).output
    assert o.status == UNKNOWN
    assert o.note == (
        "fold: F.fold of a tensor that is not (a layout-keeping function of) the output of F.unfold"
    )


class _Vector(torch.nn.Module):
    """A conv1d (k3, padding 1) over 7 positions, taken as a vector of 7 and multiplied by a
    constant 7x5 matrix, from the left or from the right."""

    def __init__(self, left: bool):
        super().__init__()
        self.c = torch.nn.Conv1d(1, 1, 3, padding=1)
        self.left = left

    def forward(self, x):
        v = self.c(x)[0, 0]
        w = torch.full((7, 5), 0.1, dtype=v.dtype)
        return w.T @ v if self.left else v @ w


@pytest.mark.parametrize("left", [False, True], ids=["v @ W", "W @ v"])
def test_a_vector_times_a_matrix_contracts_the_vector(left):
    # either way the 7 positions are summed into 5 units: each reads conv units 0..6, pixels
    # -1..7 (rf 9, centred on 3), five windows on top of each other (jump 7)
    m = positive(_Vector(left))
    o = analyze(m, (1, 7)).output
    assert (o.size, o.rf, o.start, o.status) == ((5,), (9,), (3,), GLOBAL)
    assert o.note == "matmul: mixes every position along the axis"
    check(m, (1, 7))


def test_a_flattened_map_times_a_matrix_stays_one_global_vector():
    # flatten(1) ends the per-position fields (every entry is shown as the whole 6x7 map:
    # rf (8, 9)); a product with a constant matrix cannot narrow that
    w = torch.full((42, 5), 0.1, dtype=D)
    m = model(lambda s, x: s.c3(x).flatten(1) @ w)
    o = analyze(m, (1, 6, 7)).output
    assert (o.size, o.rf, o.status) == ((), (8, 9), GLOBAL)
    assert o.note == "the spatial map is flattened, per-position fields end here"
    check(m, (1, 6, 7))


def test_a_matrix_times_an_unbatched_map_contracts_its_rows():
    # W (6 x 6) @ the (1, 6, 7) map: every output row sums all 6 conv rows (pixels -1..6:
    # rf 8, centred on 2.5), each column keeps its own 3 pixels (rf 3)
    w = torch.full((6, 6), 0.1, dtype=D)
    m = model(lambda s, x: w @ s.c3(x)[0])
    o = analyze(m, (1, 6, 7)).output
    assert (o.size, o.rf, o.start, o.axis_status) == (
        (6, 7),
        (8, 3),
        (Fr(5, 2), 0),
        (GLOBAL, EXACT),
    )
    check(m, (1, 6, 7))
