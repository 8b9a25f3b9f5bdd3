"""The width solver against brute force over built modules, and `meets_rf` at its boundary."""

from __future__ import annotations

import random

import pytest
from test_nb_budget import _ratio_widths, random_spec

from netbuilder.budget import BudgetError, solve
from netbuilder.build import build, count_params
from netbuilder.spec import ConvUnit, NetSpec, Stage, divisors
from netbuilder.variants import family, measure


@pytest.mark.parametrize("seed", range(5))
def test_solver_matches_brute_force_over_built_modules(seed):
    """Walk t = 1, 2, ... building every version: the last one that fits is the solver's."""
    spec = random_spec(random.Random(500 + seed))
    base, div = spec.widths, divisors(spec)
    counts = []
    t = 1
    while True:
        n = count_params(build(spec.with_widths(_ratio_widths(base, div, t))))
        counts.append(n)
        if n > 20_000 or t > 60:
            break
        t += 1
    assert all(a < b for a, b in zip(counts, counts[1:]))  # strictly growing in t
    for budget in sorted(
        {counts[0], counts[len(counts) // 2] - 1, counts[len(counts) // 2], counts[-2] + 1}
    ):
        best = max(i + 1 for i, n in enumerate(counts) if n <= budget)
        sizing = solve(spec, budget)
        assert sizing.t == best, (budget, counts)
        assert sizing.spec.widths == _ratio_widths(base, div, best)
        assert sizing.params == counts[best - 1] and sizing.next_params == counts[best]


@pytest.fixture(scope="module")
def dws_dilated_x2():
    return family()["dws-dilated-skip-x2"]


@pytest.mark.parametrize("min_rf, meets", [(47, True), (48, True), (48.5, False), (49, False)])
def test_meets_rf_at_the_boundary(dws_dilated_x2, min_rf, meets):
    # rf by hand (as in test_nb_variants): 1 + 2*4*2 (units) + 2*(1+2+4+8) (dilated
    # transitions) + 1 (the average over the 2x2 map) = 48: a field of exactly the required
    # size meets it.
    v = measure(dws_dilated_x2, 50_000, (3, 32, 32), min_rf)
    assert tuple(v.rf) == (48, 48)
    assert v.meets_rf is meets


def test_budget_errors_say_what_and_why():
    from netbuilder.budget import BudgetError
    from netbuilder.presets import s9

    # widths 1,1,1,1 cost 191 by the hand polynomial in test_nb_budget
    with pytest.raises(BudgetError) as small:
        solve(s9(), 190)
    assert str(small.value) == (
        "budget 190 is too small for s9: its narrowest version (widths 1,1,1,1) has 191 parameters"
    )
    with pytest.raises(BudgetError, match="^budget 1 is too small"):
        solve(s9(), 1)
    for bad in (0, -5):
        with pytest.raises(BudgetError) as exc:
            solve(s9(), bad)
        assert str(exc.value) == f"budget must be a positive number of parameters, not {bad}"


def test_evaluate_refuses_fractional_counts():
    import sympy

    from netbuilder.budget import evaluate, width_symbols
    from netbuilder.spec import SpecError

    (w1,) = width_symbols(1)
    assert evaluate(3 * w1**2 + 1, (4,)) == 49
    with pytest.raises(SpecError, match="fractional"):
        evaluate(sympy.Rational(1, 2) * w1, (3,))


def test_relaxed_polynomial_scales_the_widest_stage_wherever_it_is():
    import sympy

    from netbuilder.budget import count
    from netbuilder.presets import s9

    base = s9()
    spec = base.with_widths((32, 93, 63, 23))  # the widest stage second, not last
    sizing = solve(spec, 150_000)
    t = sizing.relaxed.free_symbols.pop()
    # on the relaxed axis the widest stage is t itself: at t = 93 every width is the base's
    assert sizing.relaxed.subs(t, 93) == count(spec)
    # and the root is where the relaxed count meets the budget
    assert abs(float(sizing.relaxed.subs(t, sizing.root)) - 150_000) < 1e-6
    assert sympy.Poly(sizing.relaxed, t).degree() == 2


def test_width_symbols_are_w1_to_wn_and_the_sizing_keeps_its_budget():
    from netbuilder.budget import latex, params_poly
    from netbuilder.presets import s9

    assert {str(s) for s in params_poly(s9()).free_symbols} == {"w1", "w2", "w3", "w4"}
    assert "w_{0}" not in latex(s9()) and "w_{4}" in latex(s9())
    assert solve(s9(), 100_000).budget == 100_000


def test_a_budget_below_every_real_root_is_too_small_not_a_crash():
    # 32 plain 3x3 convs at width t (the first from 3 channels: 27 t, the other 31: 9 t^2
    # each), batch norms (2 t each) and a 100-class head (100 t + 100):
    # P(t) = 279 t^2 + 191 t + 100. With a budget of 1, P(t) = 1 has no real root
    # (191^2 < 4 * 279 * 99); the solver must still say the budget is too small, with the
    # narrowest net's count (P(1) = 570) measured on the built module
    u = ConvUnit(padding=1)
    stages = tuple(Stage((u,) * 7, ConvUnit(padding=1)) for _ in range(4))
    spec = NetSpec("deep", stages, (1, 1, 1, 1), num_classes=100)
    narrowest = count_params(build(spec))
    with pytest.raises(BudgetError) as err:
        solve(spec, 1)
    assert str(err.value) == (
        f"budget 1 is too small for deep: its narrowest version (widths 1,1,1,1) has "
        f"{narrowest:,} parameters"
    )
