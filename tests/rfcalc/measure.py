"""Plain-autograd measurement of what each unit sees, and the contract rows must keep.

Independent of rfcalc's own `verify`: the model is run as written (the tests build linear,
positive-weight models, so no path cancels and no ReLU hides a pixel), every unit of a row is
back-propagated to the input on its own, and the input pixels with a non-zero gradient give
its span per axis. rfcalc's recorder is used only to find the tensor each row produced.
"""

from __future__ import annotations

import itertools
from typing import Optional

import torch
import torch.nn as nn

from rfcalc.analysis import judge
from rfcalc.geometry import APPROX, EXACT, GLOBAL, UNKNOWN, Field
from rfcalc.record import record

Span = Optional[tuple[int, int]]


def positive(model: nn.Module, dtype=torch.float64) -> nn.Module:
    """The model in `dtype` with every weight a positive constant and biases zero."""
    model = model.to(dtype).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.fill_(1.0 / p[0].numel())
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.fill_(1.0)
    return model


def _spans(grad: torch.Tensor) -> Optional[tuple[tuple[int, int], ...]]:
    hit = grad != 0
    if not bool(hit.any()):
        return None
    out = []
    for axis in range(hit.dim()):
        others = [d for d in range(hit.dim()) if d != axis]
        line = hit.any(dim=others) if others else hit
        idx = torch.nonzero(line).flatten()
        out.append((int(idx[0]), int(idx[-1])))
    return tuple(out)


def measure(
    model: nn.Module, shape: tuple[int, ...], rows: Optional[list[str]] = None, dtype=torch.float64
):
    """{row name: (field, {unit: spans per axis or None})} for rows with a spatial map."""
    probe = torch.ones((1, *shape), dtype=dtype, requires_grad=True)
    with torch.enable_grad():
        rec = record(model, probe, keep_tensors=True if rows is None else set(rows))
        result = {}
        for step in rec.steps:
            if (rows is not None and step.name not in rows) or step.tensor is None:
                continue
            f = step.field
            if f.status == UNKNOWN or f.dims is None or not step.tensor.requires_grad:
                result[step.name] = (f, None)
                continue
            units = {}
            for unit in itertools.product(*(range(a.size) for a in f.axes)):
                index = [slice(None)] * step.tensor.dim()
                for d, c in zip(f.dims, unit):
                    index[d] = c
                (grad,) = torch.autograd.grad(
                    step.tensor[tuple(index)].sum(), probe, retain_graph=True, allow_unused=True
                )
                units[unit] = None if grad is None else _spans(grad[0].abs().sum(0))
            result[step.name] = (f, units)
    return result


def contract(name: str, f: Field, units: Optional[dict]) -> list[str]:
    """What is wrong with one row's claim against its measurement ([] if nothing).

    Exact axes: every unit whose classic field lies inside the image sees exactly it, and a
    unit the image's edge clips sees a part of its clipped field. Approx axes:
    the rf is never narrower than any unit. Global axes: every unit sees the whole map along
    it. Unknown rows claim nothing. And on every claimed axis, what rfcalc says each unit
    sees (`Axis.unit`) is what it sees.
    """
    status, per, _ = judge(f)
    if status == UNKNOWN or units is None:
        return []
    errors = []
    for u, m in units.items():
        if m is None and all(a.sees(o) is not None for a, o in zip(f.axes, u)):
            errors.append(f"{name} unit {u}: claims pixels, measured none")
    for i, (a, s) in enumerate(zip(f.axes, per)):
        measured = {u: m[i] for u, m in units.items() if m is not None}
        reach = list(measured.values())
        whole = (min(m[0] for m in reach), max(m[1] for m in reach)) if reach else None
        for u, m in measured.items():
            o = u[i]
            claim = a.clipped(o) if s == EXACT else a.sees(o)
            lo, hi = a._virtual(o)
            inside = lo >= 0 and hi <= a.extent - 1
            # the published convention: a unit whose classic field lies inside the image
            # reaches exactly it; one the edge clips reaches a part of its clipped field
            if s == EXACT and inside and m != claim:
                errors.append(f"{name} axis {i} unit {u}: exact {claim}, measured {m}")
            if (
                s == EXACT
                and not inside
                and (claim is None or not claim[0] <= m[0] <= m[1] <= claim[1])
            ):
                errors.append(f"{name} axis {i} unit {u}: exact, clipped {claim}, measured {m}")
            if s == APPROX and m and m[1] - m[0] + 1 > a.rf:
                errors.append(f"{name} axis {i} unit {u}: approx rf {a.rf} < measured {m}")
            if s == GLOBAL and m != whole:
                errors.append(f"{name} axis {i} unit {u}: global, measured {m} of {whole}")
            if a.sees(o) != m:
                errors.append(f"{name} axis {i} unit {u}: sees {a.sees(o)}, measured {m}")
    return errors


def check(
    model: nn.Module, shape: tuple[int, ...], rows: Optional[list[str]] = None, dtype=torch.float64
) -> dict:
    """Measure and assert the contract on every measured row; returns the measurement."""
    result = measure(model, shape, rows, dtype)
    errors = [e for name, (f, units) in result.items() for e in contract(name, f, units)]
    assert not errors, "\n".join(errors[:20])
    return result


def unit_gradient(
    model: nn.Module,
    shape: tuple[int, ...],
    row: str,
    unit: Optional[tuple[int, ...]] = None,
    dtype=torch.float64,
) -> torch.Tensor:
    """|d out / d input| per input pixel (channels summed) of one unit of a row (None: the
    sum of all its units, so a pixel with zero is read by no unit). Plain autograd on the
    model as written (positive weights: no path cancels)."""
    probe = torch.ones((1, *shape), dtype=dtype, requires_grad=True)
    with torch.enable_grad():
        rec = record(model, probe, keep_tensors={row})
        step = next(s for s in rec.steps if s.name == row)
        out = step.tensor
        if unit is None:
            target = out.sum()
        else:
            index = [slice(None)] * out.dim()
            for d, c in zip(step.field.dims, unit):
                index[d] = c
            target = out[tuple(index)].sum()
        (grad,) = torch.autograd.grad(target, probe)
    return grad[0].abs().sum(0)


def reads(grad: torch.Tensor) -> tuple[int, tuple[tuple[int, int], ...]]:
    """How many pixels a gradient map reaches, and its span per axis (the box it lies in)."""
    spans = _spans(grad)
    return int((grad != 0).sum()), spans


def perturb(model: nn.Module, shape: tuple[int, ...], dtype=torch.float64) -> dict:
    """{unit: spans per axis} of the model's output map (batch, channels, *spatial), by
    perturbation: a random input, then each input pixel (all channels) changed on its own,
    one batch element each; a unit sees the pixels whose change moves it. For ops whose
    gradient cancels on a constant probe (a LayerNorm over equal channels)."""
    gen = torch.Generator().manual_seed(0)
    base = torch.randn((1, *shape), generator=gen, dtype=dtype)
    spatial = shape[1:]
    pixels = list(itertools.product(*(range(n) for n in spatial)))
    batch = base.repeat(len(pixels), *([1] * len(shape)))
    for i, p in enumerate(pixels):
        batch[(i, slice(None), *p)] += 1.0
    with torch.no_grad():
        ref = model(base)
        out = model(batch)
    moved = ((out - ref).abs() > 1e-9).flatten(1, -len(spatial) - 1).any(1)  # pixel x units
    units = {}
    for u in itertools.product(*(range(n) for n in out.shape[-len(spatial) :])):
        hit = [p for i, p in enumerate(pixels) if bool(moved[(i, *u)])]
        units[u] = (
            tuple((min(p[a] for p in hit), max(p[a] for p in hit)) for a in range(len(spatial)))
            if hit
            else None
        )
    return units


def perturb_element(
    model: nn.Module, shape: tuple[int, ...], select, dtype=torch.float64
) -> Optional[tuple[tuple[int, int], ...]]:
    """The spans of the input pixels whose change (all channels, one pixel per batch element)
    moves `select(output)` (one value per batch element, e.g. `lambda o: o[:, 7].sum(-1)`):
    a perturbation measurement of one element, for outputs that are not maps (tokens)."""
    gen = torch.Generator().manual_seed(0)
    base = torch.randn((1, *shape), generator=gen, dtype=dtype)
    pixels = list(itertools.product(*(range(n) for n in shape[1:])))
    batch = base.repeat(len(pixels), *([1] * len(shape)))
    for i, p in enumerate(pixels):
        batch[(i, slice(None), *p)] += 1.0
    with torch.no_grad():
        ref = select(model(base))
        moved = ((select(model(batch)) - ref).abs() > 1e-9).flatten(1).any(1)
    hit = [p for i, p in enumerate(pixels) if bool(moved[i])]
    if not hit:
        return None
    return tuple((min(p[a] for p in hit), max(p[a] for p in hit)) for a in range(len(shape) - 1))
