"""Parameters and MACs as sympy polynomials in the widths, and the width solver.

The widths of a spec are the symbols w1..wn (one per stage). Every unit contributes a
polynomial with positive coefficients, so the count grows strictly with every width.

The solver scales a spec along one integer axis t: the widest stage (the reference) gets
width d_ref*t, every other stage keeps its ratio to it, rounded half up to a multiple of its
divisor d_i (the groups that touch it; 1 without grouped convolutions), and at least d_i:

    w_i(t) = d_i * max(1, round(t * d_ref * b_i / (b_ref * d_i)))

Every w_i(t) is non-decreasing in t and w_ref strictly increasing, so the parameter count
P(t) is strictly increasing. "Maximal" means: P(t) <= budget < P(t + 1), i.e. one more unit
on the scaled axis would exceed the budget. sympy solves the relaxed quadratic (fractional
widths) for a first t; a short integer search then lands on the maximal one exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import sympy

from .spec import DWS, NetSpec, SpecError, check, divisors, steps

# Macs are multiply-accumulates of conv weights; biases, BatchNorm, ReLU, the average pool
# and the skip additions are not counted (they are an output-size term, not a product).


class BudgetError(SpecError):
    """A budget that no version of the spec fits."""


def width_symbols(n: int) -> tuple[sympy.Symbol, ...]:
    """w1..wn, positive integers."""
    return tuple(sympy.Symbol(f"w{i + 1}", positive=True, integer=True) for i in range(n))


def _channels(spec: NetSpec, w: tuple[sympy.Symbol, ...]):
    for step in steps(spec):
        c_in = sympy.Integer(spec.in_channels) if step.c_in_width is None else w[step.c_in_width]
        yield step, c_in, w[step.c_out_width]


def params_poly(spec: NetSpec) -> sympy.Expr:
    """Parameter count as a polynomial in w1..wn (BatchNorm's weight and bias included)."""
    check(spec)
    w = width_symbols(len(spec.widths))
    total = sympy.Integer(0)
    for step, c_in, c_out in _channels(spec, w):
        u, kk = step.unit, step.unit.kernel**2
        if u.kind == DWS:
            conv = kk * c_in + c_in + c_in * c_out + c_out  # depthwise + bias, pointwise + bias
        else:
            conv = sympy.Rational(kk, u.groups) * c_in * c_out
        total += conv + 2 * c_out  # BatchNorm weight and bias
    total += w[-1] * spec.num_classes + spec.num_classes  # 1x1 head with bias
    return sympy.expand(total)


def macs_poly(spec: NetSpec, input_shape: tuple[int, ...]) -> sympy.Expr:
    """Multiply-accumulates of the conv weights for one input, a polynomial in w1..wn."""
    sizes = check(spec, input_shape)
    w = width_symbols(len(spec.widths))
    total = sympy.Integer(0)
    for (step, c_in, c_out), (h, wd) in zip(_channels(spec, w), sizes):
        u, kk, hw = step.unit, step.unit.kernel**2, h * wd
        if u.kind == DWS:
            total += hw * kk * c_in + hw * c_in * c_out
        else:
            total += hw * sympy.Rational(kk, u.groups) * c_in * c_out
    total += w[-1] * spec.num_classes  # the head runs on the 1x1 average
    return sympy.expand(total)


def evaluate(poly: sympy.Expr, widths: tuple[int, ...]) -> int:
    """The polynomial's value at integer widths."""
    w = width_symbols(len(widths))
    value = poly.subs(dict(zip(w, widths)))
    if not value.is_Integer:
        raise SpecError(f"widths {widths} give a fractional count {value}")
    return int(value)


def count(spec: NetSpec) -> int:
    """Parameters of the spec at its widths, from the polynomial."""
    return evaluate(params_poly(spec), spec.widths)


@dataclass(frozen=True)
class Sizing:
    """A spec widened to a budget, with what proves the widths maximal."""

    spec: NetSpec  # the structure at the solved widths
    budget: int
    t: int  # position on the scaled axis
    params: int  # P(t) <= budget
    next_params: int  # P(t + 1) > budget
    next_widths: tuple[int, ...]
    relaxed: sympy.Expr  # P with fractional widths, a polynomial in t
    root: sympy.Expr  # where the relaxed polynomial meets the budget (exact)


def scaled_widths(base: tuple[int, ...], div: tuple[int, ...], t: int) -> tuple[int, ...]:
    """Widths at position t of the scaled axis (see the module docstring)."""
    ref = max(range(len(base)), key=lambda i: base[i])
    out = []
    for b, d in zip(base, div):
        exact = Fraction(t * div[ref] * b, base[ref] * d)
        out.append(d * max(1, math.floor(exact + Fraction(1, 2))))
    return tuple(out)


def solve(spec: NetSpec, budget: int) -> Sizing:
    """The widest version of the spec (its widths as the ratios) with at most `budget` params."""
    if budget < 1:
        raise BudgetError(f"budget must be a positive number of parameters, not {budget}")
    poly = params_poly(spec)
    base, div = spec.widths, divisors(spec)
    ref = max(range(len(base)), key=lambda i: base[i])
    t_sym = sympy.Symbol("t", positive=True)
    w = width_symbols(len(base))
    relaxed = sympy.expand(
        poly.subs(
            {w[i]: t_sym * sympy.Rational(div[ref] * base[i], base[ref]) for i in range(len(base))}
        )
    )
    # Exact roots in radicals (the quadratic formula for these nets): sympy.roots is 20x
    # faster than sympy.solve here and gives the same closed form.
    roots = [r for r in sympy.roots(sympy.Poly(relaxed - budget, t_sym)) if r.is_real]
    root = max(roots, key=float) if roots else sympy.Integer(1)

    def p(t: int) -> int:
        return evaluate(poly, scaled_widths(base, div, t))

    t = max(1, math.floor(float(root)))
    while t > 1 and p(t) > budget:
        t -= 1
    if p(t) > budget:
        narrow = scaled_widths(base, div, 1)
        raise BudgetError(
            f"budget {budget:,} is too small for {spec.name}: its narrowest "
            f"version (widths {','.join(map(str, narrow))}) has {p(1):,} parameters"
        )
    while p(t + 1) <= budget:
        t += 1
    widths = scaled_widths(base, div, t)
    nxt = scaled_widths(base, div, t + 1)
    return Sizing(spec.with_widths(widths), budget, t, p(t), p(t + 1), nxt, relaxed, root)


def latex(spec: NetSpec) -> str:
    """The parameter polynomial as LaTeX, for the book."""
    return sympy.latex(params_poly(spec))
