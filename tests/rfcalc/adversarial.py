"""Adversarial models of issue 27, one pattern each, and their truth measured by perturbation.

Each model reaches its output by a path the recorder does not follow as a Python object (a
fresh canvas written into, an alias without `_base`, inference mode, vmap, a thread, a scalar
taken from a map) or asks `covers_input` / the output row's name and size a hard question.
The truth comes from the values, not from rfcalc: every input pixel is changed on its own in a
forward pass of its own (batch 1, so nothing can mix batch elements), and the output elements
that move give each output unit's field. Gradients would not do: `.data`, `.item()`, numpy
and inference mode cut them.

    PYTHONPATH=$PWD python tests/rfcalc/adversarial.py [--no-check]   # the counts of the set
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

SHAPE = (1, 12, 12)
Span = Optional[tuple[int, int]]


class Fn(nn.Module):
    """A model from a function of (self, x), with convolutions and a buffer to use."""

    def __init__(self, fn: Callable):
        super().__init__()
        self.fn = fn
        self.c1 = nn.Conv2d(1, 1, 1)
        self.c3 = nn.Conv2d(1, 1, 3, padding=1)
        self.c7 = nn.Conv2d(1, 1, 7, padding=3)
        self.register_buffer("cache", torch.zeros(1, 1, 12, 12))
        with torch.no_grad():  # positive weights: no path can cancel another
            for p in self.parameters():
                p.fill_(0.1)

    def forward(self, x):
        return self.fn(self, x)

    def extra_repr(self) -> str:
        return getattr(self.fn, "__name__", "")


# ---------------------------------------------------------------- under-claims (issue 27)


def canvas(s, x):
    # the U-Net idiom: the decoder map written into a zeros canvas of the skip's size
    up = s.c7(x)[..., 2:-2, 2:-2]
    out = torch.zeros(1, 1, 12, 12, dtype=x.dtype)
    out[..., 2:-2, 2:-2] = up
    return s.c1(out + x)


def canvas_new_zeros(s, x):
    up = s.c7(x)[..., 1:-1, 1:-1]
    out = x.new_zeros(x.shape)
    out[:, :, 1:-1, 1:-1] = up
    return torch.cat([x, out], 1)


def buffer_cache(s, x):
    s.cache.copy_(s.c7(x))
    return s.c1(x) + s.cache


def copy_into_view(s, x):
    out = torch.zeros(1, 1, 12, 12, dtype=x.dtype)
    out[..., 1:-1, 1:-1].copy_(s.c7(x)[..., 1:-1, 1:-1])
    return x + out


def data_add(s, x):
    y = s.c1(x)
    y.data.add_(s.c7(x))
    return y


def detach_add(s, x):
    y = s.c1(x)
    y.detach().add_(s.c7(x))
    return y


def set_storage(s, x):
    y = s.c1(x)
    y.set_(s.c7(x))
    return y


def numpy_write(s, x):
    y = s.c1(x)
    y.numpy()[...] += s.c7(x).numpy()
    return y


def dlpack_alias(s, x):
    y = s.c1(x)
    torch.from_dlpack(y).add_(s.c7(x))
    return y


def inference_mode(s, x):
    with torch.inference_mode():
        y = s.c1(x)
        y.view(-1).add_(s.c7(x).view(-1))
    return y.clone()


def vmapped(s, x):
    return s.c1(x) + torch.vmap(lambda t: F.conv2d(t, s.c7.weight, padding=3))(x)


def other_thread(s, x):
    with ThreadPoolExecutor(1) as pool:
        far = pool.submit(lambda: F.conv2d(x, s.c7.weight, padding=3)).result()
    return s.c1(x) + far


def item_scalar(s, x):
    return s.c1(x) * s.c7(x).mean().item()


def tolist_scalar(s, x):
    return s.c1(x) * sum(s.c7(x).mean((2, 3)).flatten().tolist())


def weight_from_input(s, x):
    s.c3.weight.data = s.c7(x).mean().expand(1, 1, 3, 3).clone()
    return s.c3(x)


# ---------------------------------------------------------------- covers_input, output row


def crop_mean_broadcast(s, x):
    return s.c1(x)[..., 4:8, 4:8].mean((2, 3), keepdim=True).expand(1, 1, 12, 12).contiguous()


def classifier_on_centre_crop(s, x):
    return F.linear(s.c3(x)[..., 4:8, 4:8].flatten(1), torch.ones(2, 16, dtype=x.dtype))


def ends_with_clone(s, x):
    return s.c3(x)[..., :11, :11].clone()


def ends_with_channels_last(s, x):
    return s.c3(x)[..., :11, :11].contiguous(memory_format=torch.channels_last)


def ends_with_dtype_copy(s, x):
    # `.double()` of a float32 model: here the model is float64, so the copy is .float()
    return s.c3(x)[..., :11, :11].float()


def ends_with_detach(s, x):
    return s.c3(x)[..., :11, :11].detach()


def ends_with_permute_contiguous(s, x):
    return s.c3(x)[..., :11, :10].permute(0, 1, 3, 2).contiguous()


ends_with_permute_contiguous.dims = (-1, -2)  # the output's H is its last dim


UNDER = [
    canvas,
    canvas_new_zeros,
    buffer_cache,
    copy_into_view,
    data_add,
    detach_add,
    set_storage,
    numpy_write,
    dlpack_alias,
    inference_mode,
    vmapped,
    other_thread,
    item_scalar,
    tolist_scalar,
    weight_from_input,
]
COVERS = [crop_mean_broadcast, classifier_on_centre_crop]
OUTPUT_ROW = [
    ends_with_clone,
    ends_with_channels_last,
    ends_with_dtype_copy,
    ends_with_detach,
    ends_with_permute_contiguous,
]
ALL = UNDER + COVERS + OUTPUT_ROW


def model(fn: Callable) -> nn.Module:
    return Fn(fn).double().eval()


# ---------------------------------------------------------------- the truth, by perturbation


def dependence(net: nn.Module, shape=SHAPE) -> tuple[torch.Tensor, torch.Tensor]:
    """(output, moved): the model's output on a probe, and for every input pixel (all
    channels changed at once, one forward pass each) which output elements moved:
    moved[p_0, ..., p_n, *output.shape] (bool)."""
    gen = torch.Generator().manual_seed(0)
    probe = torch.rand((1, *shape), generator=gen, dtype=torch.float64) + 1
    spatial = shape[1:]
    with torch.no_grad():
        base = net(probe.clone()).detach().clone()
        moved = torch.zeros((*spatial, *base.shape), dtype=torch.bool)
        for p in torch.cartesian_prod(*(torch.arange(n) for n in spatial)).view(-1, len(spatial)):
            x = probe.clone()
            x[(0, slice(None), *p.tolist())] += 1.0
            moved[tuple(p.tolist())] = net(x).detach() != base
    return base, moved


def unit_spans(moved: torch.Tensor, nd: int, dims: Optional[tuple[int, ...]]) -> dict:
    """{output unit: the pixels that move it, as a span per input axis (None: none)}; the
    unit is a position along `dims` of the output (every other dim taken together), or the
    whole output where dims is None (a flattened output)."""
    if dims is None:
        return {(): _spans(moved.flatten(nd).any(-1))}
    rank = moved.dim() - nd
    keep = [nd + (d % rank) for d in dims]
    others = [d for d in range(nd, moved.dim()) if d not in keep]
    per = moved.any(dim=others) if others else moved  # (pixels..., *units in dim order)
    order = sorted(keep)
    per = per.permute(*range(nd), *(nd + order.index(k) for k in keep))
    units = {}
    for u in torch.cartesian_prod(*(torch.arange(n) for n in per.shape[nd:])).view(
        -1, per.dim() - nd
    ):
        units[tuple(u.tolist())] = _spans(per[(..., *u.tolist())])
    return units


def _spans(hit: torch.Tensor) -> Optional[tuple[tuple[int, int], ...]]:
    if not bool(hit.any()):
        return None
    out = []
    for axis in range(hit.dim()):
        line = hit.any(dim=[d for d in range(hit.dim()) if d != axis]) if hit.dim() > 1 else hit
        idx = torch.nonzero(line).flatten()
        out.append((int(idx[0]), int(idx[-1])))
    return tuple(out)


def under_claims(row, shape, units: dict) -> list[str]:
    """Where an analysis row claims less than the measurement: an exact axis whose classic
    field (clipped to the image) leaves out a pixel that moves the unit, an approx or global
    axis whose rf is narrower than what one unit reaches. Unknown rows claim nothing."""
    if row.status == "unknown" or not row.rf:
        return []
    errors = []
    per = row.axis_status or (row.status,) * len(row.rf)
    for unit, spans in units.items():
        if spans is None:
            continue
        for i, ((a, b), status) in enumerate(zip(spans, per)):
            rf, jump, start = (Fraction(v) for v in (row.rf[i], row.jump[i], row.start[i]))
            if status == "exact" and unit:
                centre = start + unit[i] * jump
                lo = max(0, centre - (rf - 1) / 2)
                hi = min(shape[1 + i] - 1, centre + (rf - 1) / 2)
                if a < lo or b > hi:
                    errors.append(f"unit {unit} axis {i}: exact {lo}..{hi}, moved by {a}..{b}")
            elif b - a + 1 > rf:
                errors.append(f"unit {unit} axis {i}: {status} rf {rf}, moved by {a}..{b}")
    return errors


def output_dims(out: torch.Tensor, nd: int) -> Optional[tuple[int, ...]]:
    """The output's spatial dims for these models: its last `nd` dims, or None when flat."""
    return tuple(range(-nd, 0)) if out.dim() == 2 + nd else None


def main(argv: Optional[list[str]] = None) -> int:
    """Print each model's verdict and the counts; `--no-check`: without the perturbation
    check (what the source alone gets right)."""
    from rfcalc import analyze

    argv = sys.argv[1:] if argv is None else argv
    options = {"check": False} if "--no-check" in argv else {}
    counts = {"under-claims": 0, "covers_input wrong": 0, "output row wrong": 0}
    for fn in ALL:
        net = model(fn)
        try:
            a = analyze(net, SHAPE, **options)
        except Exception as exc:  # noqa: BLE001 - a crash is reported as such
            print(f"{fn.__name__:32} analysis failed: {exc}")
            continue
        base, moved = dependence(model(fn))
        dims = getattr(fn, "dims", output_dims(base, len(SHAPE) - 1))
        units = unit_spans(moved, len(SHAPE) - 1, dims)
        errors = under_claims(a.output, SHAPE, units)
        reach = [s for s in units.values() if s is not None]
        covers = any(all(sp == (0, n - 1) for sp, n in zip(s, SHAPE[1:])) for s in reach)
        wrong = []
        if errors:
            counts["under-claims"] += 1
            wrong.append(errors[0])
        if a.output.status != "unknown" and a.covers_input != covers:
            counts["covers_input wrong"] += 1
            wrong.append(f"covers_input {a.covers_input}, measured {covers}")
        size = tuple(base.shape[d] for d in dims) if dims else ()
        if fn in OUTPUT_ROW and (a.output.size != size or a.output.name == "input"):
            counts["output row wrong"] += 1
            wrong.append(f"output {a.output.name} size {a.output.size}, returned {size}")
        print(f"{fn.__name__:32} {a.output.status:8} " + ("; ".join(wrong) or "ok"))
    print(", ".join(f"{k}: {v}" for k, v in counts.items()), f"(of {len(ALL)} models)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
