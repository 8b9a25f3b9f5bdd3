"""Ops along one dim (rfcalc/rules/mixing.py): cumsum, glu, softmax and friends, and the
note that says which op made a map global.
Expected fields are worked out by hand and measured by gradients (see rulenets.py)."""

from __future__ import annotations

from fractions import Fraction as Fr

import pytest
import torch
import torch.nn.functional as F
from measure import check, positive  # rules/conftest.py puts tests/rfcalc on sys.path
from rulenets import L42, SAME, Line, model, out

from rfcalc import EXACT, GLOBAL, UNKNOWN, analyze
from rfcalc.geometry import Field, spread
from rfcalc.rules import Outcome, register_rule


def test_cumsum_along_w_sees_every_unit_before():
    # conv3 unit o along W sees [o-1, o+1]; the running sum's unit o sees units 0..o, so
    # pixels 0..min(o+1, 6): the widest, units 5 and 6, see all 7. H keeps the conv's 3.
    m = model(SAME["cumsum by keyword"][0][0])
    a = analyze(m, (1, 6, 7))
    assert a.output.rf == (3, 7) and a.output.status != UNKNOWN
    assert a.output.note == "cumsum: unit o sees units 0..o"
    measured = check(m, (1, 6, 7))
    units = measured[a.rows[-1].name][1]
    assert [units[(2, o)][1] for o in range(7)] == [(0, min(o + 1, 6)) for o in range(7)]
    # along channels: every position on its own, the conv's field
    o = out(lambda s, x: s.c4(x).cumsum(1), c=1)
    assert o.rf == (3, 3) and o.status == EXACT


@pytest.mark.parametrize(
    "fn", [lambda y: y.cumsum(-1), lambda y: F.glu(y, -1)], ids=["cumsum", "glu"]
)
def test_cumsum_and_glu_of_a_flattened_map_show_it_as_a_whole(fn):
    # the conv3's map flattened (6x7 -> 42): shown as a whole, rf 8 x 9 centred on (2.5, 3)
    # (units 0..5 along H see pixels -1..6, units 0..6 along W pixels -1..7)
    o = out(lambda s, x: fn(s.c3(x).flatten(2)))
    assert o.status == GLOBAL and o.rf == (8, 9) and o.start == (Fr(5, 2), 3)


def test_glu_reads_unit_o_and_unit_o_plus_half():
    # W = 8 halves to 4: unit o reads conv units o and o + 4, which see [o-1, o+1] and
    # [o+3, o+5]: together [o-1, o+5] clipped to 0..7: (0,5), (0,6), (1,7), (2,7)
    m = model(SAME["glu by keyword and default"][0][0])
    a = analyze(m, (1, 6, 8))
    assert a.output.size == (6, 4) and a.output.rf == (3, 7)
    assert a.output.note == "glu: unit o reads units o and o + n/2"
    units = check(m, (1, 6, 8))[a.rows[-1].name][1]
    assert [units[(2, o)][1] for o in range(4)] == [(0, 5), (0, 6), (1, 7), (2, 7)]
    # along channels (4 -> 2): per position
    o = out(lambda s, x: F.glu(s.c4(x), 1))
    assert o.status == EXACT and o.rf == (3, 3) and o.size == (6, 7)


def test_mixing_again_keeps_the_note_of_the_op_that_mixed_first():
    # a product of the mixed vector with itself mixes nothing new: the Linear's note stays
    def fn(s, x):
        y = F.linear(s.c3(x).flatten(1), L42)
        return y.unsqueeze(-1) @ y.unsqueeze(-2)

    assert out(fn).note == "linear: mixes every position of the map"
    # along W twice: the first op's note; then along H: the op that mixed H says so
    o = out(lambda s, x: F.log_softmax(F.softmax(s.c3(x), -1), -1))
    assert o.axis_status == (EXACT, GLOBAL)
    assert o.note.startswith("softmax: computed along a spatial dim")
    o = out(lambda s, x: F.log_softmax(F.softmax(s.c3(x), -1), -2))
    assert o.status == GLOBAL and o.note == "log_softmax: computed along a spatial dim"


def test_a_mix_of_a_map_already_global_keeps_the_note_of_what_made_it_so(restore_registry):
    # a user's rule makes a 1-D map global on its one axis and writes no note; a softmax
    # along that axis then adds nothing, and must not claim to have made the map global
    # (every built-in rule that makes a map global writes a note, so only a rule of one's
    # own shows this)
    def whole(call):
        f = call.first
        return Outcome(Field(tuple(spread(a) for a in f.axes), f.dims, GLOBAL, ""))

    register_rule("special_erf", whole)
    m = Line(lambda y: torch.special.erf(y).softmax(-1))
    erf, soft = analyze(positive(m), (1, 9)).rows[-2:]
    assert (erf.status, erf.note) == (GLOBAL, "")
    assert (soft.op, soft.status, soft.rf, soft.note) == ("softmax", GLOBAL, erf.rf, "")
    # a map not yet global gets the softmax's own note
    fresh = analyze(positive(Line(lambda y: y.softmax(-1))), (1, 9)).output
    assert fresh.note == "softmax: computed along a spatial dim"


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
