"""The sympy polynomials against built modules, and the width solver's maximality."""

from __future__ import annotations

import random

import pytest
import sympy
import torch
import torch.nn as nn

from netbuilder.budget import (
    BudgetError,
    count,
    evaluate,
    latex,
    macs_poly,
    params_poly,
    scaled_widths,
    solve,
    width_symbols,
)
from netbuilder.build import Net, build, count_params
from netbuilder.presets import s9
from netbuilder.spec import DWS, PLAIN, ConvUnit, NetSpec, Stage, divisors
from netbuilder.variants import family, measure


def random_spec(rng: random.Random) -> NetSpec:
    """A random buildable spec: 1-4 stages, mixed kinds, kernels, dilations, groups, skips."""
    n = rng.randint(1, 4)
    groups = [rng.choice((1, 1, 2, 4)) for _ in range(n)]  # grouped transitions
    widths = tuple(g * rng.randint(1, 12) for g in groups)
    widths = tuple(w * max(groups) for w in widths)  # every width divisible by any groups
    stages = []
    for i in range(n):
        units = []
        for j in range(rng.randint(1, 3)):
            k = rng.choice((1, 3, 5))
            d = rng.choice((1, 2))
            can_skip = not (i == 0 and j == 0)  # the stem changes channel count
            units.append(
                ConvUnit(
                    kind=rng.choice((PLAIN, DWS)),
                    kernel=k,
                    dilation=d,
                    padding=d * (k - 1) // 2,
                    skip=can_skip and rng.random() < 0.5,
                )
            )
        stages.append(
            Stage(
                tuple(units),
                ConvUnit(kernel=rng.choice((1, 3)), stride=rng.choice((1, 2)), groups=groups[i]),
            )
        )
    return NetSpec(
        "random",
        tuple(stages),
        widths,
        in_channels=rng.choice((1, 3)),
        num_classes=rng.choice((2, 10)),
    )


def test_s9_polynomial_by_hand():
    w1, w2, w3, w4 = width_symbols(4)
    # c1.0 plain 3->w1: 27*w1 + 2*w1 (BN) = 29*w1; c1.1 dws(w1): 9w1+w1 + w1^2+w1 + 2w1
    # = w1^2 + 13*w1; t_i: 9*w_i*w_(i+1) + 2*w_(i+1); two dws(w): 2*w^2 + 26*w;
    # t4 = 9*w4^2 + 2*w4; head 10*w4 + 10.
    expected = (
        w1**2
        + 42 * w1
        + 9 * w1 * w2
        + 2 * w2
        + 2 * w2**2
        + 26 * w2
        + 9 * w2 * w3
        + 2 * w3
        + 2 * w3**2
        + 26 * w3
        + 9 * w3 * w4
        + 2 * w4
        + 2 * w4**2
        + 26 * w4
        + 9 * w4**2
        + 2 * w4
        + 10 * w4
        + 10
    )
    assert sympy.expand(params_poly(s9()) - expected) == 0
    assert count(s9()) == 190_509
    assert "w_{1}^{2}" in latex(s9())


@pytest.mark.parametrize("seed", range(20))
def test_polynomial_matches_built_module(seed):
    spec = random_spec(random.Random(seed))
    assert evaluate(params_poly(spec), spec.widths) == count_params(build(spec))


def _hook_macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    """Weight multiply-accumulates counted by running the model: output pixels x weight size."""
    total = 0

    def hook(module, _inputs, out):
        nonlocal total
        total += out.shape[-2] * out.shape[-1] * module.weight.numel()

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model.eval()(torch.zeros(1, *shape))
    return total


@pytest.mark.parametrize("seed", range(6))
def test_macs_polynomial_matches_a_forward_pass(seed):
    spec = random_spec(random.Random(100 + seed))
    shape = (spec.in_channels, 40, 36)
    assert evaluate(macs_poly(spec, shape), spec.widths) == _hook_macs(build(spec), shape)


def test_s9_macs():
    # size x size x weights: c1.0 32^2*621; c1.1 32^2*(207+529); t1 30^2*6624;
    # c2 2*30^2*(288+1024); t2 26^2*18144; c3 2*26^2*(567+3969); t3 18^2*52731;
    # c4 2*18^2*(837+8649); t4 2^2*77841; head 930.
    expected = (
        1024 * 621
        + 1024 * 736
        + 900 * 6624
        + 2 * 900 * 1312
        + 676 * 18144
        + 2 * 676 * 4536
        + 324 * 52731
        + 2 * 324 * 9486
        + 4 * 77841
        + 930
    )
    assert evaluate(macs_poly(s9(), (3, 32, 32)), s9().widths) == expected


def _ratio_widths(base: tuple[int, ...], div: tuple[int, ...], t: int) -> tuple[int, ...]:
    """The documented rule, written out independently of the solver: the widest stage gets
    div_ref * t, every other stage its ratio to it rounded half up to a multiple of its divisor
    (and at least the divisor)."""
    ref = base.index(max(base))
    out = []
    for b, d in zip(base, div):
        num, den = t * div[ref] * b, base[ref] * d  # the exact ratio num / den
        rounded = (2 * num + den) // (2 * den)  # floor(x + 1/2): half up
        out.append(d * max(1, rounded))
    return tuple(out)


def test_s9_budget_gives_back_its_own_widths():
    assert solve(s9(), 190_509).spec.widths == (23, 32, 63, 93)
    # one parameter less and t = 93 no longer fits; t = 92 by hand: 23*92/93 = 22.75 -> 23,
    # 32*92/93 = 31.66 -> 32, 63*92/93 = 62.32 -> 62, and 92
    assert solve(s9(), 190_508).spec.widths == (23, 32, 62, 92)


def test_scaled_widths_by_hand():
    # t = 46 on s9: 11.38 -> 11, 15.83 -> 16, 31.16 -> 31, 46
    assert scaled_widths((23, 32, 63, 93), (1, 1, 1, 1), 46) == (11, 16, 31, 46)
    # exact halves round up (not to even): 1*5/2 = 2.5 -> 3, 1*3/2 = 1.5 -> 2
    assert scaled_widths((1, 2), (1, 1), 5) == (3, 5)
    assert scaled_widths((1, 2), (1, 1), 3) == (2, 3)
    # never below one (or the divisor): 1*1/10 = 0.1 -> 1
    assert scaled_widths((1, 10), (1, 1), 1) == (1, 1)
    # divisors: ref 96 with d 4 at t = 10 is 40; 24*40/96 = 10 -> 2.5 groups of 4 -> 3 -> 12;
    # 32*40/96 = 13.3 -> 3.33 groups -> 3 -> 12; 64*40/96 = 26.7 -> 6.67 -> 7 -> 28
    assert scaled_widths((24, 32, 64, 96), (4, 4, 4, 4), 10) == (12, 12, 28, 40)
    # a divisor on one stage only: ref 8 (d 1) at t = 7: 6*7/8 = 5.25 is 2.6 groups of 2 -> 3 -> 6
    assert scaled_widths((6, 8), (2, 1), 7) == (6, 7)


def test_narrowest_budget():
    # widths 1,1,1,1 in the hand polynomial: 1+42+9+28+2+9+28+2+9+40+11+10 = 191
    assert solve(s9(), 191).spec.widths == (1, 1, 1, 1)
    with pytest.raises(BudgetError, match="too small"):
        solve(s9(), 190)


@pytest.mark.parametrize("budget", [50_000, 100_000, 200_000, 500_000])
def test_every_variant_is_maximal_within_budget(budget):
    for v in family().values():
        sizing = solve(v.spec, budget)
        fits = count_params(Net(sizing.spec))
        one_more = _ratio_widths(v.spec.widths, divisors(v.spec), sizing.t + 1)
        over = count_params(Net(v.spec.with_widths(one_more)))
        assert fits <= budget < over, v.name
        assert sizing.spec.widths == _ratio_widths(v.spec.widths, divisors(v.spec), sizing.t)
        assert (sizing.params, sizing.next_params) == (fits, over), v.name
        assert max(sizing.spec.widths) == sizing.t  # the widest stage is the scaled axis


def test_grouped_transitions_get_divisible_widths():
    base = s9()
    stages = tuple(
        Stage(s.units, ConvUnit(dilation=s.transition.dilation, groups=4)) for s in base.stages
    )
    spec = NetSpec("grouped", stages, (24, 32, 64, 96))
    assert divisors(spec) == (4, 4, 4, 4)
    sizing = solve(spec, 60_000)
    assert all(w % 4 == 0 for w in sizing.spec.widths)
    assert (
        count_params(build(sizing.spec))
        <= 60_000
        < count_params(build(spec.with_widths(sizing.next_widths)))
    )
    assert sizing.next_widths[-1] == sizing.spec.widths[-1] + 4


# ----------------------------------------------------------------------------
# The width solver against brute force over built modules, and `meets_rf` at its boundary.


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
