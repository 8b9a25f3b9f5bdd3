"""Products across positions (rfcalc/rules/mixing.py): Linear and matmul over a dim, bmm and
friends, einsum, attention.
Expected fields are worked out by hand and measured by gradients (see rulenets.py)."""

from __future__ import annotations

from fractions import Fraction as Fr

import pytest
import torch
import torch.nn.functional as F
from measure import check, positive  # rules/conftest.py puts tests/rfcalc on sys.path
from rulenets import L42, SOFTMAX_W, W13, D, grid_sampled, model, out

from rfcalc import EXACT, GLOBAL, UNKNOWN, analyze


@pytest.mark.parametrize(
    "op, fn",
    [
        ("bmm", lambda s, x: torch.bmm(s.c4(x).flatten(2).transpose(1, 2), s.c4(x).flatten(2))),
        (
            "baddbmm",
            lambda s, x: torch.baddbmm(
                torch.zeros(1, 42, 42, dtype=D),
                s.c4(x).flatten(2).transpose(1, 2),
                s.c4(x).flatten(2),
            ),
        ),
        (
            "addmm",
            lambda s, x: torch.addmm(
                torch.zeros(4, 4, dtype=D), s.c4(x)[0].flatten(1), s.c4(x)[0].flatten(1).T
            ),
        ),
        ("tensordot", lambda s, x: torch.tensordot(s.c4(x), s.c4(x), dims=([2, 3], [2, 3]))),
    ],
)
def test_batched_products_of_maps_see_everything(op, fn):
    o = out(fn)
    assert o.status == GLOBAL and o.note == f"{op}: a product across positions"


class TestEinsum:
    """One map operand: an index kept is per position, one contracted with a constant and
    replaced by a fresh output index mixes that axis; two map operands mix everything."""

    def test_a_permutation_moves_the_axes_with_their_dims(self):
        # H and W swapped, then a 1x3 conv along the tensor's last dim, which is now H: H
        # widens to 3 + 2 = 5, W keeps the conv3's 3 (sizes are given per axis, H first)
        m = model(lambda s, x: F.conv2d(torch.einsum("bchw->bcwh", s.c3(x)), W13, padding=(0, 1)))
        o = analyze(m, (1, 6, 7)).output
        assert o.status == EXACT and o.rf == (5, 3) and o.size == (6, 7)
        check(m, (1, 6, 7))

    def test_the_operands_may_come_as_one_list(self):
        o = out(lambda s, x: torch.einsum("bchw,c->bhw", [s.c4(x), torch.ones(4, dtype=D)]))
        assert o.status == EXACT and o.rf == (3, 3) and o.size == (6, 7)

    def test_a_channel_contraction_is_per_position(self):
        m = model(lambda s, x: torch.einsum("bchw,dc->bdhw", s.c4(x), torch.ones(2, 4, dtype=D)))
        o = analyze(m, (1, 6, 7)).output
        assert o.status == EXACT and o.rf == (3, 3) and o.size == (6, 7)
        check(m, (1, 6, 7))

    def test_a_scale_per_position_is_per_position(self):
        o = out(lambda s, x: torch.einsum("bchw,w->bchw", s.c3(x), torch.ones(7, dtype=D)))
        assert o.status == EXACT and o.rf == (3, 3)

    def test_w_contracted_into_a_fresh_index_is_global_along_w(self):
        # W (7) summed against a constant 7x5 matrix: 5 new units along W, each sees the
        # whole width; H keeps the conv's 3
        m = model(lambda s, x: torch.einsum("bchw,wv->bchv", s.c3(x), torch.ones(7, 5, dtype=D)))
        o = analyze(m, (1, 6, 7)).output
        # (the rf of a global axis counts the conv's padding: 3 + 7 - 1 = 9)
        assert o.size == (6, 5) and o.rf == (3, 9) and o.axis_status == (EXACT, GLOBAL)
        assert o.note.startswith("einsum: sums over a spatial index (bchw,wv->bchv) (")
        check(m, (1, 6, 7))
        # to a single unit: collapsed, not broadcast: one window as wide as the map, its
        # jump the map's width (7), where a broadcast unit would have jump 0
        o = out(lambda s, x: torch.einsum("bchw,wv->bchv", s.c3(x), torch.ones(7, 1, dtype=D)))
        assert o.size == (6, 1) and o.rf == (3, 9) and o.jump == (1, 7)

    def test_spaces_in_the_equation_are_ignored(self):
        o = out(
            lambda s, x: torch.einsum(
                "b c h w , w v -> b c h v", s.c3(x), torch.ones(7, 5, dtype=D)
            )
        )
        assert o.size == (6, 5) and o.rf == (3, 9)

    def test_summing_a_spatial_index_away_is_unknown(self):
        o = out(lambda s, x: torch.einsum("bchw,w->bch", s.c3(x), torch.ones(7, dtype=D)))
        assert o.status == UNKNOWN and o.note == "einsum: einsum sums a spatial index away"

    def test_two_maps_mix_everything(self):
        o = out(lambda s, x: torch.einsum("bchw,bcij->bhwij", s.c3(x), s.c3(x)).sum((-1, -2)))
        assert o.status == GLOBAL and "einsum: a product across positions" in o.note

    def test_a_permutation_keeps_the_note_it_had(self):
        # no index summed: the conv's field (no note) moves on as it is, and stays a field
        # that merges (a status the merge can rank)
        o = out(lambda s, x: torch.einsum("bchw->bcwh", s.c3(x)) * 2 + s.c3(x).transpose(2, 3))
        assert o.status == EXACT and o.note == "" and o.rf == (3, 3)

    def test_the_sublist_form_spells_the_same_equation(self):
        # einsum(x, [0, 1, 2, 3], [0, 1, 3, 2]) is "ABCD->ABDC" (torch spells it before the
        # call is recorded): the permutation above
        m = model(
            lambda s, x: F.conv2d(
                torch.einsum(s.c3(x), [0, 1, 2, 3], [0, 1, 3, 2]), W13, padding=(0, 1)
            )
        )
        o = analyze(m, (1, 6, 7)).output
        assert o.status == EXACT and o.rf == (5, 3) and o.size == (6, 7)
        check(m, (1, 6, 7))
        # W contracted with a 7x5 constant into a fresh index: global along W
        v = torch.ones(7, 5, dtype=D)
        o = out(lambda s, x: torch.einsum(s.c3(x), [0, 1, 2, 3], v, [3, 4], [0, 1, 2, 4]))
        assert o.size == (6, 5) and o.rf == (3, 9) and o.axis_status == (EXACT, GLOBAL)
        # an implicit output (no output sublist) is taken as global
        o = out(lambda s, x: torch.einsum(s.c3(x), [0, 1, 2, 3], v, [3, 4]).sum(-1))
        assert o.status == GLOBAL and o.note == "einsum: a product across positions"

    def test_a_fresh_index_of_two_units_is_global(self):
        # two units along the new W, each reading the whole width
        o = out(lambda s, x: torch.einsum("bchw,wv->bchv", s.c3(x), torch.ones(7, 2, dtype=D)))
        assert o.size == (6, 2) and o.rf == (3, 9) and o.axis_status == (EXACT, GLOBAL)

    def test_an_unknown_or_flattened_map_stays_as_it_was(self):
        o = out(
            lambda s, x: torch.einsum(
                "bchw,wv->bchv", grid_sampled(s, x), torch.ones(7, 5, dtype=D)
            )
        )
        assert o.status == UNKNOWN and o.note == "grid_sample: no rule for this op"
        # a flattened map is shown as a whole: the conv3's units 0..5 along H see pixels
        # -1..6 (rf 8, centred on 2.5), units 0..6 along W pixels -1..7 (rf 9, centred on 3)
        o = out(lambda s, x: torch.einsum("bcn->bnc", s.c3(x).flatten(2)))
        assert o.status == GLOBAL and o.rf == (8, 9) and o.start == (Fr(5, 2), 3)

    def test_an_ellipsis_is_taken_as_global(self):
        o = out(lambda s, x: torch.einsum("...hw->...wh", s.c3(x)))
        assert o.status == GLOBAL and o.note == "einsum: a product across positions"


def test_attention_sees_everything_and_absorbs_an_unknown_input():
    def attend(q, k, v):
        seq = lambda t: t.flatten(2).transpose(1, 2)  # noqa: E731  (1, HW, C)
        return F.scaled_dot_product_attention(seq(q), seq(k), seq(v))

    o = out(lambda s, x: attend(s.c4(x), s.c4(x), s.c4(x)))
    assert (
        o.status == GLOBAL
        and o.note == "scaled_dot_product_attention: attention reads every position"
    )
    # the query's field unknown: every output still mixes every key's position
    o = out(lambda s, x: attend(grid_sampled(s, x), s.c3(x), s.c3(x)))
    assert o.status == GLOBAL
    # nothing known: nothing is claimed
    o = out(lambda s, x: attend(grid_sampled(s, x), grid_sampled(s, x), grid_sampled(s, x)))
    assert o.status == UNKNOWN


@pytest.mark.parametrize(
    "fn, rf, axis_status",
    [
        # x @ W: W's rows mix the last dim (W) into 5 new units: global along W
        (lambda s, x: s.c3(x) @ torch.ones(7, 5, dtype=D), (3, 9), (EXACT, GLOBAL)),
        (lambda s, x: torch.matmul(s.c3(x), torch.ones(7, 5, dtype=D)), (3, 9), (EXACT, GLOBAL)),
        # W @ x: mixes the second-to-last dim (H)
        (lambda s, x: torch.ones(4, 6, dtype=D) @ s.c3(x), (8, 3), (GLOBAL, EXACT)),
        (lambda s, x: torch.mm(torch.ones(4, 6, dtype=D), s.c3(x)[0, 0]), (8, 3), (GLOBAL, EXACT)),
        # the same by keyword
        (
            lambda s, x: torch.matmul(input=s.c3(x), other=torch.ones(7, 5, dtype=D)),
            (3, 9),
            (EXACT, GLOBAL),
        ),
        (
            lambda s, x: torch.ones(4, 6, dtype=D).matmul(other=s.c3(x)),
            (8, 3),
            (GLOBAL, EXACT),
        ),
        (
            lambda s, x: torch.mm(input=torch.ones(4, 6, dtype=D), mat2=s.c3(x)[0, 0]),
            (8, 3),
            (GLOBAL, EXACT),
        ),
    ],
)
def test_a_product_with_a_constant_mixes_one_axis(fn, rf, axis_status):
    # rf of a global axis: the whole map and the conv's padding, 3 + n - 1
    m = model(fn)
    o = analyze(m, (1, 6, 7)).output
    assert o.rf == rf and o.axis_status == axis_status
    check(m, (1, 6, 7))


def test_a_product_with_an_unknown_map_stays_unknown():
    o = out(lambda s, x: grid_sampled(s, x) @ torch.ones(7, 5, dtype=D))
    assert o.status == UNKNOWN and o.note == "grid_sample: no rule for this op"


def test_a_product_of_two_maps_mixes_everything():
    o = out(lambda s, x: s.c3(x) @ s.c3(x).transpose(-1, -2))
    assert o.status == GLOBAL and o.note == "matmul: a product across positions"


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


def test_an_unknown_map_in_einsum_keeps_its_size():
    o = out(lambda s, x: torch.einsum("bchw->bchw", grid_sampled(s, x)))
    assert o.status == UNKNOWN and o.size == (6, 7)
    assert o.note == "grid_sample: no rule for this op"


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
