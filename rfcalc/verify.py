"""Measure every row's receptive field with gradients and compare it with the theory.

The model is deep-copied and made linear in float64: ReLU & friends and dropout become the
identity, max pools average pools of the same window, BatchNorm the identity, and every weight
a positive constant (1/fan-in), so no path can cancel another. For each row, the centre unit of
its output (summed over channels) is backpropagated to a constant probe; the input pixels with
a non-zero gradient span the measured field. The theory is the exact field of that same unit,
clipped to the image (padding pixels have no gradient to measure).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterable, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .analysis import UNKNOWN, Analysis, _validate, probe_for
from .geometry import Field, RFError
from .record import Step, record

Span = tuple[int, int]


@dataclass(frozen=True)
class RowCheck:
    """One row, theory next to measurement (spans are inclusive input pixel ranges per axis)."""

    name: str
    op: str
    status: str
    size: tuple[int, ...]                 # the row's output size (() once flattened)
    centre: tuple[int, ...]               # index of the unit checked, per axis
    theory_rf: tuple[Fraction, ...]       # the row's rf (the widest unit's), unclipped
    theory_span: Optional[tuple[Span, ...]]    # the centre unit's field clipped to the image
    measured_span: Optional[tuple[Span, ...]]  # pixels with non-zero gradient; None: none
    agree: Optional[bool]                 # None where nothing is claimed (UNKNOWN rows)
    note: str = ""

    @property
    def theory_clipped_rf(self) -> Optional[tuple[int, ...]]:
        return None if self.theory_span is None else tuple(b - a + 1 for a, b in self.theory_span)

    @property
    def measured_rf(self) -> Optional[tuple[int, ...]]:
        return None if self.measured_span is None else \
            tuple(b - a + 1 for a, b in self.measured_span)


@dataclass(frozen=True)
class Verification:
    """All checks in execution order."""

    input_shape: tuple[int, ...]
    checks: tuple[RowCheck, ...]
    notes: tuple[str, ...] = ()

    @property
    def disagreements(self) -> list[RowCheck]:
        return [c for c in self.checks if c.agree is False]

    @property
    def agree(self) -> bool:
        return not self.disagreements

    def __getitem__(self, name: str) -> RowCheck:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)


def _identity(x, *args, **kwargs):
    return x


def _max_to_avg(nd: int) -> Callable:
    avg = getattr(F, f"avg_pool{nd}d")
    max_ = getattr(F, f"max_pool{nd}d")

    def pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
             return_indices=False):
        if dilation not in (1, (1,) * nd, [1] * nd) or return_indices:
            return max_(x, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode,
                        return_indices=return_indices)
        return avg(x, kernel_size, stride, padding, ceil_mode=ceil_mode,
                   count_include_pad=True)
    return pool


def _adaptive_to_avg(nd: int) -> Callable:
    avg = getattr(F, f"adaptive_avg_pool{nd}d")
    return lambda x, output_size, *args, **kwargs: avg(x, output_size)


def _amax_to_mean(x, dim=None, keepdim=False):
    return x.mean(dim=dim, keepdim=keepdim) if dim is not None else x.mean()


LINEARISE: dict[str, Callable] = {
    **{name: _identity for name in (
        "relu", "relu6", "leaky_relu", "gelu", "silu", "hardswish", "hardsigmoid", "sigmoid",
        "tanh", "elu", "selu", "celu", "mish", "softplus", "hardtanh", "clamp", "prelu", "rrelu",
        "logsigmoid", "threshold", "dropout", "dropout1d", "dropout2d", "dropout3d",
        "alpha_dropout", "feature_alpha_dropout", "batch_norm")},
    **{f"max_pool{n}d": _max_to_avg(n) for n in (1, 2, 3)},
    **{f"adaptive_max_pool{n}d": _adaptive_to_avg(n) for n in (1, 2, 3)},
    "amax": _amax_to_mean,
}


def linearised(model: nn.Module) -> nn.Module:
    """A float64 deep copy whose weights are positive constants (1/fan-in), biases zero."""
    lin = copy.deepcopy(model).to(torch.float64).eval()
    with torch.no_grad():
        for name, p in lin.named_parameters():
            if p.dim() >= 2:
                p.fill_(1.0 / p[0].numel())
            elif name.endswith("bias"):
                p.zero_()
            else:  # norm scales, PReLU slopes, learned per-channel factors
                p.fill_(1.0)
    return lin


def _span(mask: torch.Tensor) -> Optional[tuple[Span, ...]]:
    if not bool(mask.any()):
        return None
    spans = []
    for axis in range(mask.dim()):
        others = [d for d in range(mask.dim()) if d != axis]
        hit = mask.any(dim=others) if others else mask
        idx = torch.nonzero(hit).flatten()
        spans.append((int(idx[0]), int(idx[-1])))
    return tuple(spans)


def _theory(f: Field, centre: tuple[int, ...], spatial: tuple[int, ...]) -> Optional[tuple[Span, ...]]:
    spans = []
    for a, c, n in zip(f.axes, centre, spatial):
        lo, hi = a.unit(c)
        lo, hi = max(lo, 0), min(hi, n - 1)
        if lo > hi:
            return None  # the unit sees only padding
        spans.append((lo, hi))
    return tuple(spans)


def _key(f: Field) -> tuple:
    return (f.axes, f.dims, f.status)


def verify(model: nn.Module, input_shape: Sequence[int], analysis: Optional[Analysis] = None,
           *, rows: Optional[Iterable[str]] = None, unique: bool = True) -> Verification:
    """Gradient check of every row with a spatial field (see the module docstring).

    `analysis` (optional) is the `analyze` result shown to the user; row names that this run
    did not reproduce are listed in the notes. `rows` limits the check to those names;
    `unique` (default) measures only the first row of each distinct field and gives later
    rows with the same field its measurement, with a note saying so: on ResNet-50 that is 23
    backward passes instead of 175. `unique=False` measures every row (the tests do).
    """
    shape = _validate(input_shape)
    spatial = shape[1:]
    lin = linearised(model)
    probe = probe_for(lin, shape, dtype=torch.float64, fill=1.0).requires_grad_(True)
    with torch.enable_grad():
        wanted = set(rows) if rows is not None else None
        rec = record(lin, probe, keep_tensors=True if wanted is None else wanted,
                     substitute=LINEARISE)
        checks = []
        measured: dict[tuple, tuple[str, Optional[tuple[Span, ...]]]] = {}
        for step in rec.steps:
            if wanted is not None and step.name not in wanted:
                continue
            checks.append(_check(step, spatial, probe, measured, unique))
    notes = []
    if analysis is not None:
        missing = [r.name for r in analysis.rows if r.name not in {s.name for s in rec.steps}]
        if missing:
            notes.append("rows of the analysis not reached by the linearised run "
                         f"(data-dependent control flow?): {', '.join(missing)}")
    return Verification(shape, tuple(checks), tuple(notes))


def _check(step: Step, spatial: tuple[int, ...], probe: torch.Tensor,
           measured: dict, unique: bool) -> RowCheck:
    from .analysis import to_row

    f = step.field
    row = to_row(step.name, step.op, f, size=step.size)
    if f.status == UNKNOWN:
        return RowCheck(step.name, step.op, UNKNOWN, step.size, (), (), None, None, None,
                        f.note or "nothing is claimed, so nothing is measured")
    centre = tuple((a.size - 1) // 2 for a in f.axes)
    theory = _theory(f, centre, spatial)
    note = ""
    key = _key(f)
    if step.tensor is not None and not step.tensor.is_floating_point():
        return RowCheck(step.name, step.op, row.status, step.size, centre, row.rf, theory, None,
                        None, "a boolean or integer output has no gradient to measure")
    if unique and key in measured:
        first, span = measured[key]
        note = f"same field as {first}: measured there"
    else:
        span = _measure(step, centre, probe)
        measured.setdefault(key, (step.name, span))
    return RowCheck(step.name, step.op, row.status, step.size, centre, row.rf, theory, span,
                    theory == span, note)


def _measure(step: Step, centre: tuple[int, ...], probe: torch.Tensor
             ) -> Optional[tuple[Span, ...]]:
    grad = _unit_gradient(step, centre, probe)
    return None if grad is None else _span(grad != 0)


def _unit_gradient(step: Step, unit: tuple[int, ...], probe: torch.Tensor
                   ) -> Optional[torch.Tensor]:
    """|d out[unit] / d input|, summed over the output's and the input's channels."""
    out = step.tensor
    if out is None or not out.requires_grad:
        return None
    f = step.field
    if f.dims is None:
        target = out.sum()
    else:
        index = [slice(None)] * out.dim()
        for d, c in zip(f.dims, unit):
            index[d] = c
        target = out[tuple(index)].sum()
    grad, = torch.autograd.grad(target, probe, retain_graph=True, allow_unused=True)
    return None if grad is None else grad[0].abs().sum(0)


def gradient_map(model: nn.Module, input_shape: Sequence[int], row: Optional[str] = None,
                 unit: Optional[Sequence[int]] = None) -> torch.Tensor:
    """The input pixels one unit sees, as a map: |gradient| per input pixel (float64, the
    input's spatial shape) of unit `unit` (default: the centre unit) of row `row` (default:
    the model's output), measured on the linearised copy that `verify` uses. Non-zero exactly
    inside the unit's field (clipped to the image); the values show how many paths reach each
    pixel. Raises RFError for an unknown row, a unit outside the map, or a row without a field.
    """
    shape = _validate(input_shape)
    lin = linearised(model)
    probe = probe_for(lin, shape, dtype=torch.float64, fill=1.0).requires_grad_(True)
    with torch.enable_grad():
        rec = record(lin, probe, keep_tensors=True if row is None else {row},
                     substitute=LINEARISE)
        if row is None:
            step = rec.output
        else:
            step = next((s for s in rec.steps if s.name == row), None)
            if step is None:
                raise RFError(f"no row named {row!r} (rows: {', '.join(s.name for s in rec.steps)})")
        if step is None or step.field.status == UNKNOWN or step.field.dims is None \
                and unit is not None:
            raise RFError(f"{row or 'the output'} has no spatial field to take a unit of")
        sizes = tuple(a.size for a in step.field.axes)
        unit = tuple((n - 1) // 2 for n in sizes) if unit is None else tuple(unit)
        if len(unit) != len(sizes) or not all(0 <= u < n for u, n in zip(unit, sizes)):
            raise RFError(f"unit {unit} is outside the {'x'.join(map(str, sizes))} map "
                          f"of {step.name}")
        grad = _unit_gradient(step, unit, probe)
    if grad is None:
        raise RFError(f"{step.name}: the output does not depend on the input through autograd")
    return grad.detach()
