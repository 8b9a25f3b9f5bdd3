"""The rule table (rfcalc/rules/dispatch.py): registering a rule, canonical op names, and
what a row says for an op with no rule.
Expected fields are worked out by hand and measured by gradients (see rulenets.py)."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from measure import check  # rules/conftest.py puts tests/rfcalc on sys.path
from rulenets import L42, grid_sampled, model, out

from rfcalc import GLOBAL, UNKNOWN, analyze
from rfcalc.rules import RULES, Outcome, dispatch, key_of, register_rule, rule


def _same(call):
    return Outcome(call.first)


def test_the_rule_decorator_registers_every_name_with_its_flags(restore_registry):
    plain = rule("grid_sample")(_same)
    assert plain is _same and RULES["grid_sample"] is _same
    assert "grid_sample" not in dispatch._SEES_UNKNOWN and _same not in dispatch._KEEPS_LAYOUT

    def other(call):
        return Outcome(call.first)

    rule("affine_grid", "grid_sample", unknown_inputs=True, keeps_layout=True)(other)
    assert RULES["affine_grid"] is other and RULES["grid_sample"] is other
    assert {"affine_grid", "grid_sample"} <= dispatch._SEES_UNKNOWN
    assert other in dispatch._KEEPS_LAYOUT


def test_unknown_inputs_decides_whether_a_rule_sees_an_unknown_field(restore_registry):
    seen = []

    def spy(call):
        seen.append(call.first.status)
        return Outcome(call.first)

    m = model(lambda s, x: torch.special.erf(grid_sampled(s, x)))
    # check=False: the perturbation check's own forward would ask the rule again
    register_rule("special_erf", spy)
    assert analyze(m, (1, 6, 7), check=False).output.status == UNKNOWN and seen == []
    register_rule("special_erf", spy, unknown_inputs=True)
    analyze(m, (1, 6, 7), check=False)
    assert seen == [UNKNOWN]
    register_rule("special_erf", spy)  # re-registered without the flag: not asked again
    analyze(m, (1, 6, 7), check=False)
    assert seen == [UNKNOWN]


def test_register_rule_errors_name_the_op(restore_registry):
    with pytest.raises(TypeError, match=r"^the rule for grid_sample must be callable, got int$"):
        register_rule(F.grid_sample, 3)
    with pytest.raises(ValueError, match=r"^conv2d already has a rule$"):
        register_rule("conv2d", _same, replace=False)


def __private():  # a name with leading underscores only: not a dunder
    pass


class _Descriptor:
    """A property-like object without a name of its own."""

    def __get__(self, obj, owner=None):
        return obj


@pytest.mark.parametrize(
    "func, name",
    [
        (torch.Tensor.__radd__, "add"),  # reflected: 2 + x
        (torch.Tensor.__iadd__, "add"),  # in place: x += y
        (torch.Tensor.__rmatmul__, "matmul"),
        (torch.Tensor.__xor__, "xor"),  # not "or": x is not a reflected/in-place prefix
        (torch.Tensor.__ior__, "or"),
        (torch.Tensor.add_, "add"),
        (torch.Tensor.__getitem__, "getitem"),
        (torch.Tensor.T.__get__, "get_T"),  # a Tensor property: what __torch_function__ gets
        (torch.Tensor.data.__get__, "get_data"),
        (_Descriptor().__get__, "get_?"),  # a property with no name
        (_Descriptor.__get__, "get_?"),  # the same, unbound: no __self__ at all
        (torch.Tensor._coalesced_, "_coalesced_"),  # private: the trailing _ is not in-place
        (__private, "__private"),
    ],
)
def test_canonical_names(func, name):
    assert dispatch.canonical(func) == name


def test_a_callable_without_a_name_has_the_empty_name():
    # a functools.partial has no __name__; a callable may also carry None as its name
    class Nameless:
        __name__ = None

        def __call__(self, x):
            return x

    for fn in (functools.partial(torch.relu), Nameless()):
        assert dispatch.canonical(fn) == "" and dispatch.qualified(fn) == ""


def test_key_of_qualifies_only_the_names_two_functions_share():
    assert key_of(F.unfold) == "F.unfold" and key_of(torch.Tensor.unfold) == "Tensor.unfold"
    assert key_of(F.conv2d) == "conv2d" and key_of(torch.Tensor.add_) == "add"
    assert key_of("anything") == "anything"


@pytest.mark.parametrize(
    "fn, size",
    [
        # an op with no rule on an unbatched H x W map: as many dims as the map has
        (lambda s, x: torch.sort(s.c3(x)[0, 0], -1)[0], (6, 7)),
        # a map permuted to (N, H, C, W), its dims -3 and -1, reduced by an op with no rule
        # to (H, W): two dims, but not the map's: no size is claimed
        (lambda s, x: torch.linalg.vector_norm(s.c3(x).permute(0, 2, 1, 3), dim=(0, 2)), ()),
    ],
)
def test_an_unknown_row_keeps_the_maps_size_only_where_its_dims_survive(fn, size):
    o = out(fn)
    assert o.status == UNKNOWN and o.size == size and o.note.endswith(": no rule for this op")


@pytest.mark.parametrize(
    "fn, status, note",
    [
        # flattened (or reshaped out of order), nothing mixed yet: each element still reads
        # one position, so an op with no rule after it is unknown
        (lambda y: y.flatten(2), UNKNOWN, "sort: no rule for this op"),
        (lambda y: y.reshape(1, 2, 21), UNKNOWN, "sort: no rule for this op"),
        # a Linear over the flattened map: every element read every position, which no op
        # can undo; the note says which op mixed it
        (lambda y: F.linear(y.flatten(1), L42), GLOBAL, "linear: mixes every position of the map"),
        # a product of the map with itself across positions (attention's q·kᵀ): the same
        (
            lambda y: y.flatten(2).transpose(1, 2) @ y.flatten(2),
            GLOBAL,
            "matmul: a product across positions",
        ),
    ],
)
def test_only_a_map_really_mixed_stays_global_through_an_op_with_no_rule(fn, status, note):
    o = out(lambda s, x: torch.sort(fn(s.c3(x)), -1)[0])
    assert o.status == status and o.note == note


def test_unknown_rows_keep_the_size_of_their_map():
    # an op with no rule: unknown, but the table still gives its map's size; so does the op
    # after it (unknown in, unknown out)
    a = analyze(model(lambda s, x: torch.relu(grid_sampled(s, x))), (1, 6, 7))
    *_, grid, relu = a.rows
    assert grid.status == UNKNOWN and grid.size == (6, 7)
    assert relu.status == UNKNOWN and relu.size == (6, 7) and relu.note == grid.note
    # an op with no rule whose output has fewer dims than the map: no size
    o = out(lambda s, x: torch.diag(s.c3(x)[0, 0]))
    assert o.status == UNKNOWN and o.size == ()


def test_an_op_with_a_rule_after_an_unknown_map_keeps_the_map_size():
    # the conv's rule is not asked about an unknown input: the row is unknown, with the
    # unknown op's reason, but the size of its map is still shown
    o = out(lambda s, x: s.c3(grid_sampled(s, x)))
    assert (o.status, o.size, o.note) == (UNKNOWN, (6, 7), "grid_sample: no rule for this op")


def test_an_op_a_rule_cannot_describe_keeps_a_map_that_sees_everything():
    # each unit of `gated` reads the whole map (a global mean spread over it, pixels -1..6:
    # rf 8); adding its transpose (dims swapped: the rule gives up) cannot make that less
    # true: global, the size kept, the note of the op that made it global
    def gated(s, x):
        return s.c3(x) * s.c3(x).mean((2, 3), keepdim=True)

    m = model(lambda s, x: gated(s, x) + gated(s, x).transpose(-1, -2))
    o = analyze(m, (1, 6, 6)).output
    assert (o.status, o.size, o.rf) == (GLOBAL, (6, 6), (8, 8))
    assert o.note == "mul: one unit's field is spread over the whole map"
    check(m, (1, 6, 6))
