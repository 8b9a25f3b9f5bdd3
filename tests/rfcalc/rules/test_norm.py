"""Normalisation rules (rfcalc/rules/mixing.py): global only with statistics of the map;
running statistics keep each position.
Expected fields are worked out by hand and measured by gradients (see rulenets.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from measure import check  # rules/conftest.py puts tests/rfcalc on sys.path
from rulenets import RM, RV, SAME, D, model, out

from rfcalc import EXACT, GLOBAL, analyze


@pytest.mark.parametrize(
    "fn, status",
    [
        (lambda s, x: F.instance_norm(s.c3(x)), GLOBAL),
        (lambda s, x: F.instance_norm(s.c3(x), RM, RV, use_input_stats=False), EXACT),
        (lambda s, x: F.instance_norm(s.c3(x), RM, RV), GLOBAL),
        (
            lambda s, x: torch.instance_norm(
                s.c3(x), None, None, None, None, True, 0.1, 1e-5, False
            ),
            GLOBAL,
        ),
        (
            lambda s, x: torch.instance_norm(s.c3(x), None, None, RM, RV, False, 0.1, 1e-5, False),
            EXACT,
        ),
        (
            lambda s, x: torch.instance_norm(s.c3(x), None, None, RM, RV, True, 0.1, 1e-5, False),
            GLOBAL,
        ),
        (
            lambda s, x: torch.batch_norm(s.c3(x), None, None, RM, RV, True, 0.1, 1e-5, False),
            GLOBAL,
        ),
        (
            lambda s, x: torch.batch_norm(s.c3(x), None, None, RM, RV, False, 0.1, 1e-5, False),
            EXACT,
        ),
        (lambda s, x: F.batch_norm(s.c3(x), RM, RV, training=True), GLOBAL),
        (lambda s, x: F.batch_norm(s.c3(x), None, None, training=True), GLOBAL),
    ],
)
def test_norms_global_only_with_statistics_of_the_map(fn, status):
    # statistics of the input's map: every unit sees the whole 6x7 image (the rf of a global
    # axis counts the conv's padding: 3 + 6 - 1, 3 + 7 - 1); running statistics are constants
    # per channel: the conv's field, 3
    m = model(fn)
    o = analyze(m, (1, 6, 7)).output
    assert o.status == status
    assert o.rf == ((8, 9) if status == GLOBAL else (3, 3))
    if status == GLOBAL:
        assert o.note.endswith("statistics are taken over the whole map")
    check(m, (1, 6, 7))


def test_layer_norm_is_global_along_the_dims_it_normalises():
    # over W only: global along W (rf 3 + 7 - 1 = 9, the whole width and the conv's
    # padding), the conv's 3 along H
    o = out(SAME["layer_norm by keyword"][0][0])
    assert o.rf == (3, 9) and o.axis_status == (EXACT, GLOBAL)
    assert o.note.startswith("layer_norm: normalised over spatial dims (")
    # over (H, W): global along both
    o = out(lambda s, x: F.layer_norm(s.c3(x), (6, 7)))
    assert o.rf == (8, 9) and o.status == GLOBAL
    # over channels, channels last: per position
    o = out(lambda s, x: F.layer_norm(s.c4(x).permute(0, 2, 3, 1), (4,)).permute(0, 3, 1, 2))
    assert o.rf == (3, 3) and o.status == EXACT


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
