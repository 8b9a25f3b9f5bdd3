"""Issue #27: rows inside window attention (the map's positions as (windows·B, tokens, C):
the batch shares dim 0 with the windows) are perturbation-checked in their own layout, one
image per forward, element by element against the field of the position it holds. A wrong
window field planted in the rules is caught there, not only after the reverse view."""

from __future__ import annotations

import pytest
from measure import positive
from test_token_ops import WindowAttention

from rfcalc import APPROX, EXACT, UNKNOWN, analyze
from rfcalc.rules import positions

SHAPE = (1, 8, 12)
INSIDE = ["scaled_dot_product_attention", "transpose", "reshape_1", "proj"]  # after attention


def test_window_rows_keep_their_fields_when_nothing_is_wrong():
    a = analyze(positive(WindowAttention()), SHAPE)
    for name in INSIDE:
        assert a[name].status == APPROX and a[name].rf == (4, 4), name
    assert a["qkv"].status == EXACT and a["qkv"].rf == (1, 1)


def test_a_window_field_too_small_is_caught_in_the_windows(monkeypatch):
    # planted: attention no longer widens a position to its window, so the rows inside
    # the windows claim each element's own pixel (exact rf 1): an under-claim
    monkeypatch.setattr(positions, "attended", lambda q, k: positions.Positions(q.idx, q.before))
    a = analyze(positive(WindowAttention()), SHAPE)
    first = a[INSIDE[0]]
    assert first.status == UNKNOWN
    # the note names a unit and a pixel of its window (rows 0..3, columns 4..7 hold unit
    # (0, 4)), read by attention though the claim left it out
    assert "perturbation check" in first.note and "changes when pixel" in first.note
    for name in INSIDE[1:]:
        assert a[name].status == UNKNOWN, name
    assert a["qkv"].status == EXACT  # before attention the claim is right: not touched


@pytest.mark.parametrize("shift", [2])
def test_shifted_window_rows_are_checked_too(shift, monkeypatch):
    monkeypatch.setattr(positions, "attended", lambda q, k: positions.Positions(q.idx, q.before))
    a = analyze(positive(WindowAttention(shift=shift)), SHAPE)
    assert a[INSIDE[0]].status == UNKNOWN and "perturbation check" in a[INSIDE[0]].note


def test_window_rows_cost_one_forward_per_pixel_and_outside_pattern():
    # each one-image forward is a whole model's pass, so the window rows' check runs the
    # single pixels and the outsides of output units, not the eight sparse sets
    from rfcalc.crosscheck import patterns

    calls = []
    model = positive(WindowAttention())
    model.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape[0]))
    a = analyze(model, SHAPE)
    assert a[INSIDE[0]].status == APPROX
    found = patterns(SHAPE[1:], None)
    sparse = sum(p.sparse for p in found)
    assert sparse == 8 and len(found) == 5 + 8  # pixels, then the sparse sets
    # the analysis's run, the batched run (2 copies + every pattern) and its densest
    # pattern alone, then one image per forward: the probe and each non-sparse pattern
    assert calls[0] == 1 and calls[1] > 10
    singles = calls[2:]
    assert set(singles) == {1}
    assert len(singles) == 1 + 1 + (calls[1] - 2 - sparse)
