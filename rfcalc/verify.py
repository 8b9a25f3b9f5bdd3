"""Measure every row's receptive field with gradients and compare it with the theory.

The model is deep-copied and made linear in float64: ReLU & friends and dropout become the
identity, max pools average pools of the same window, BatchNorm the identity, and every weight
a positive constant (1/fan-in), so no path can cancel another. For each row, the centre unit of
its output (summed over channels) is backpropagated to a constant probe; the input pixels with
a non-zero gradient span the measured field. The theory is the exact field of that same unit,
clipped to the image (padding pixels have no gradient to measure).

Speed. With uniform weights and a constant probe, a convolution's output channels are all the
same sum of its input channels, so the linearised run convolves the channel sum (per group)
with one kernel and copies it to every output channel: exactly the same values and gradients
for a fraction of the arithmetic (`channel_summed`); the convolution of a channel sum with a
constant kernel is a box filter, run as an average pool (float64 depthwise and dilated
convolutions have no fast CPU kernel). One backward pass per measured row, on one thread:
each pass only walks the graph below its row, which measured cheaper than packing rows into
batch elements (a batched pass carries every element through the whole graph), and the maps
are small enough that a second thread costs more in synchronisation than it saves.

What autograd cannot see is flagged, not passed: values that leave torch (`.numpy()`,
`.tolist()`, `.item()`) and come back have no producer that either the recorder or autograd
can follow, so rows from that point on are not measured (`-`), with a note naming the op. The
model's returned tensor is measured as the model returns it: when it was written in place after
its row was recorded (`y[..., 4:-4] = ...`), an `output` check compares the analysis's output
field with what autograd sees.
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterable, Iterator, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .analysis import UNKNOWN, Analysis, _validate, token_index, tokens
from .geometry import Field, RFError
from .probe import probe_for
from .record import Record, Step, _tensors, record

Span = tuple[int, int]


@dataclass(frozen=True)
class RowCheck:
    """One row, theory next to measurement (spans are inclusive input pixel ranges per axis)."""

    name: str
    op: str
    status: str
    size: tuple[int, ...]  # the row's output size (() once flattened)
    centre: tuple[int, ...]  # index of the unit checked, per axis
    theory_rf: tuple[Fraction, ...]  # the row's rf (the widest unit's), unclipped
    theory_span: Optional[tuple[Span, ...]]  # the centre unit's field clipped to the image
    measured_span: Optional[tuple[Span, ...]]  # pixels with non-zero gradient; None: none
    agree: Optional[bool]  # None where nothing is claimed (UNKNOWN rows)
    note: str = ""

    @property
    def theory_clipped_rf(self) -> Optional[tuple[int, ...]]:
        return None if self.theory_span is None else tuple(b - a + 1 for a, b in self.theory_span)

    @property
    def measured_rf(self) -> Optional[tuple[int, ...]]:
        return (
            None if self.measured_span is None else tuple(b - a + 1 for a, b in self.measured_span)
        )

    def __repr__(self) -> str:
        from .render.verify import check_cells

        c = check_cells(self)
        return (
            f"<RowCheck {c['name']} ({c['op']}): rf {c['rf']}, theory {c['theory']}, "
            f"measured {c['measured']}: {c['check']}>"
        )


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

    def __len__(self) -> int:
        return len(self.checks)

    def __iter__(self) -> Iterator[RowCheck]:
        return iter(self.checks)

    # print() gives the text table, a notebook its HTML, repr() one line with the counts

    def render(self, fmt: str = "text") -> str:
        """The checks in one of rfcalc.render.FORMATS (`rfcalc verify --format`)."""
        from .render.verify import render

        return render(self, fmt)

    def __str__(self) -> str:
        return self.render("text")

    def __repr__(self) -> str:
        from .render.cells import shape

        unmeasured = sum(c.agree is None for c in self.checks)
        differ = len(self.disagreements)
        names = f": {', '.join(c.name for c in self.disagreements[:3])}" if differ else ""
        more = " …" if differ > 3 else ""
        return (
            f"<Verification at {shape(self.input_shape)}: {len(self.checks)} rows, "
            f"{len(self.checks) - differ - unmeasured} agree, {differ} differ{names}{more}, "
            f"{unmeasured} not measured>"
        )

    def _repr_html_(self) -> str:
        from .render import html
        from .render.verify import table

        return html.fragment(table(self))


def _identity(x, *args, **kwargs):
    return x


def _max_to_avg(nd: int) -> Callable:
    avg = getattr(F, f"avg_pool{nd}d")
    max_ = getattr(F, f"max_pool{nd}d")

    def pool(
        x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
    ):
        if dilation not in (1, (1,) * nd, [1] * nd) or return_indices:
            return max_(
                x,
                kernel_size,
                stride,
                padding,
                dilation,
                ceil_mode=ceil_mode,
                return_indices=return_indices,
            )
        return avg(x, kernel_size, stride, padding, ceil_mode=ceil_mode, count_include_pad=True)

    return pool


def _adaptive_to_avg(nd: int) -> Callable:
    avg = getattr(F, f"adaptive_avg_pool{nd}d")
    return lambda x, output_size, *args, **kwargs: avg(x, output_size)


def _amax_to_mean(x, dim=None, keepdim=False):
    return x.mean(dim=dim, keepdim=keepdim) if dim is not None else x.mean()


def _layer_norm_linear(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """LayerNorm's reach without its cancellation: on a constant probe the normalised values,
    and so their gradient, are zero. x plus its mean over the normalised dims reads what the
    norm reads (each element, and every element of its dims through the mean), positively."""
    n = len(tuple(normalized_shape)) if not isinstance(normalized_shape, int) else 1
    dims = tuple(range(x.dim() - n, x.dim()))
    out = x + x.mean(dim=dims, keepdim=True)
    if weight is not None:
        out = out * weight
    return out if bias is None else out + bias


LINEARISE: dict[str, Callable] = {
    **{
        name: _identity
        for name in (
            "relu",
            "relu6",
            "leaky_relu",
            "gelu",
            "silu",
            "hardswish",
            "hardsigmoid",
            "sigmoid",
            "tanh",
            "elu",
            "selu",
            "celu",
            "mish",
            "softplus",
            "hardtanh",
            "clamp",
            "prelu",
            "rrelu",
            "logsigmoid",
            "threshold",
            "dropout",
            "dropout1d",
            "dropout2d",
            "dropout3d",
            "alpha_dropout",
            "feature_alpha_dropout",
            "batch_norm",
        )
    },
    **{f"max_pool{n}d": _max_to_avg(n) for n in (1, 2, 3)},
    **{f"adaptive_max_pool{n}d": _adaptive_to_avg(n) for n in (1, 2, 3)},
    "amax": _amax_to_mean,
    "layer_norm": _layer_norm_linear,
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


def _theory(
    f: Field, centre: tuple[int, ...], spatial: tuple[int, ...]
) -> Optional[tuple[Span, ...]]:
    spans = []
    for a, c, n in zip((tokens(f) or f).axes, centre, spatial):
        lo, hi = a.unit(c)
        lo, hi = max(lo, 0), min(hi, n - 1)
        if lo > hi:
            return None  # the unit sees only padding
        spans.append((lo, hi))
    return tuple(spans)


def _key(f: Field) -> tuple:
    shown = tokens(f) or f
    return (shown.axes, shown.dims, shown.status, f.dims is None)


def _box(
    x: torch.Tensor, value: float, kernel: tuple[int, ...], stride, padding, dilation
) -> torch.Tensor:
    """A convolution of every channel with a kernel that is `value` everywhere, as a sum of
    shifted strided slices: float64 depthwise and dilated convolutions have no fast kernel on
    CPU, slices and adds do. Zero padding, as F.conv*d pads (`same`: the extra pixel after)."""
    nd = len(kernel)
    stride, dilation = _tuple(stride, nd), _tuple(dilation, nd)
    if padding == "valid":
        pads = [(0, 0)] * nd
    elif padding == "same":
        pads = [
            (d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation)
        ]
    else:
        pads = [(p, p) for p in _tuple(padding, nd)]
    flat = [v for lo_hi in reversed(pads) for v in lo_hi]  # F.pad lists the last axis first
    xp = F.pad(x, flat) if any(flat) else x
    if all(d == 1 for d in dilation) and 1 <= nd <= 3:  # a box filter is an average pool
        pool = getattr(F, f"avg_pool{nd}d")
        return pool(xp, kernel, stride, 0, count_include_pad=True) * (value * math.prod(kernel))
    # dilated: the box is separable, so one axis at a time, k shifted strided slices each
    out = xp
    for axis, (k, d, s) in enumerate(zip(kernel, dilation, stride)):
        n = (out.shape[2 + axis] - d * (k - 1) - 1) // s + 1
        taps = [out.narrow(2 + axis, t * d, s * (n - 1) + 1) for t in range(k)]
        summed = torch.stack(taps).sum(0) if k > 1 else taps[0]
        out = summed[(slice(None),) * (2 + axis) + (slice(None, None, s),)]
    return out * value


def _tuple(value, n: int) -> tuple[int, ...]:
    return tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else (int(value),) * n


def _summed_conv(op: Callable, uniform: set[int], transpose: bool) -> Callable:
    """`op` (a convolution) on the channel sum of each group, copied to every output channel.

    Exact only for the weights `linearised` sets (one positive constant everywhere) and a zero
    bias; any other weight (a filter computed from the input, say) runs the real op.
    """

    def conv(x, weight, bias=None, *rest, **kwargs):
        args = dict(
            zip(
                ("stride", "padding", "output_padding", "groups", "dilation")
                if transpose
                else ("stride", "padding", "dilation", "groups"),
                rest,
            )
        )
        args.update(kwargs)
        groups = args.get("groups", 1)
        if (
            id(weight) not in uniform
            or (bias is not None and id(bias) not in uniform)
            or x.dim() != weight.dim()
            or not isinstance(groups, int)
        ):
            return op(x, weight, bias, *rest, **kwargs)
        n, c, spatial = x.shape[0], x.shape[1], x.shape[2:]
        summed = x.reshape(n, groups, c // groups, *spatial).sum(2)
        value = float(weight.detach().flatten()[0])
        if transpose:
            kernel = weight.new_full((groups, 1, *weight.shape[2:]), value)
            out = op(summed, kernel, None, **args)
        else:
            out = _box(
                summed,
                value,
                tuple(weight.shape[2:]),
                args.get("stride", 1),
                args.get("padding", 0),
                args.get("dilation", 1),
            )
        per_group = weight.shape[1] if transpose else weight.shape[0] // groups
        return (
            out.unsqueeze(2)
            .expand(n, groups, per_group, *out.shape[2:])
            .reshape(n, groups * per_group, *out.shape[2:])
            .contiguous()
        )

    return conv


def _summed_linear(uniform: set[int]) -> Callable:
    def linear(x, weight, bias=None):
        if id(weight) not in uniform or (bias is not None and id(bias) not in uniform):
            return F.linear(x, weight, bias)
        w = float(weight.detach().flatten()[0])
        return (x.sum(-1, keepdim=True) * w).expand(*x.shape[:-1], weight.shape[0]).contiguous()

    return linear


def channel_summed(lin: nn.Module) -> dict[str, Callable]:
    """Substitutes for the linearised run: convolutions and linear layers of `lin` compute
    on channel sums (see the module docstring); same values, a fraction of the arithmetic."""
    uniform = {id(p) for name, p in lin.named_parameters() if p.dim() >= 2 or name.endswith("bias")}
    subs: dict[str, Callable] = {"linear": _summed_linear(uniform)}
    for n in (1, 2, 3):
        subs[f"conv{n}d"] = _summed_conv(getattr(F, f"conv{n}d"), uniform, False)
        subs[f"conv_transpose{n}d"] = _summed_conv(getattr(F, f"conv_transpose{n}d"), uniform, True)
    return subs


# Tensor methods whose values leave torch as arrays or lists: what comes back from them has no
# producer that the recorder or autograd can follow
LEAVES_TORCH = frozenset({"numpy", "tolist", "__array__"})


class _Leaks(torch.overrides.TorchFunctionMode):
    """Notes where probe-dependent values leave torch, and how many rows were recorded then."""

    def __init__(self):
        super().__init__()
        self.found: list[tuple[int, str]] = []  # (rows recorded before it, "op at where")

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        recorder = _running_recorder() if name in LEAVES_TORCH else None
        if recorder is not None and any(
            isinstance(a, torch.Tensor) and recorder.field_of(a) is not None for a in args
        ):
            self.found.append((len(recorder.steps), f"`{name}` at {recorder.where()}"))
        return func(*args, **(kwargs or {}))


def _running_recorder():
    """The Recording whose op handler called us (it is off the mode stack while it runs)."""
    from .record import Recording

    frame = sys._getframe(2)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, Recording):
            return owner
        frame = frame.f_back
    return None


def verify(
    model: nn.Module,
    input_shape: Sequence[int],
    analysis: Optional[Analysis] = None,
    *,
    rows: Optional[Iterable[str]] = None,
    unique: bool = True,
    progress: Optional[bool] = None,
) -> Verification:
    """Gradient check of every row with a spatial field (see the module docstring).

    `analysis` (optional) is the `analyze` result shown to the user; row names that this run
    did not reproduce are listed in the notes. `rows` limits the check to those names;
    `unique` (default) measures only the first row of each distinct field and gives later
    rows with the same field its measurement, with a note saying so: on ResNet-50 that is 23
    measurements instead of 175. `unique=False` measures every row (the tests do). `progress`:
    a tqdm bar on stderr (None: only when stderr is a terminal and it takes over a second).
    """
    shape = _validate(input_shape)
    spatial = shape[1:]
    lin = linearised(model)
    subs = {**LINEARISE, **channel_summed(lin)}
    wanted = set(rows) if rows is not None else None
    leaks = _Leaks()
    with torch.enable_grad(), _one_thread():
        probe = probe_for(lin, shape, dtype=torch.float64, fill=1.0).requires_grad_(True)
        with leaks:
            rec = record(
                lin, probe, keep_tensors=True if wanted is None else wanted, substitute=subs
            )
        checks: list[Optional[RowCheck]] = []
        todo: list[tuple[int, Step, tuple[int, ...]]] = []  # rows to measure, by check index
        first: dict[tuple, int] = {}  # field -> check that measures it
        copies: list[tuple[int, Step, tuple[int, ...], int]] = []
        blind = leaks.found[0] if leaks.found else None
        for index, step in enumerate(rec.steps):
            if wanted is not None and step.name not in wanted:
                continue
            if blind is not None and index >= blind[0] and step.field.status != UNKNOWN:
                checks.append(
                    _unmeasured(
                        step, spatial, f"after values left torch ({blind[1]}): not measurable"
                    )
                )
                continue
            check, centre = _plan(step, spatial)
            checks.append(check)
            if check is not None:
                continue
            key = _key(step.field)
            if unique and key in first:
                copies.append((len(checks) - 1, step, centre, first[key]))
            else:
                first.setdefault(key, len(checks) - 1)
                todo.append((len(checks) - 1, step, centre))
        spans = _measure_all(rec, [(s, c) for _, s, c in todo], progress)
        for (index, step, centre), span in zip(todo, spans):
            checks[index] = _result(step, spatial, centre, span)
        for index, step, centre, source in copies:
            checks[index] = _result(
                step,
                spatial,
                centre,
                checks[source].measured_span,
                f"same field as {checks[source].name}: measured there",
            )
        output = _output_check(rec, spatial, probe) if blind is None else None
    notes = []
    if blind is not None:
        notes.append(
            f"values left torch ({blind[1]}): neither the analysis nor autograd can "
            "follow what comes back, so rows from there on are not measured"
        )
    if analysis is not None:
        missing = [r.name for r in analysis.rows if r.name not in {s.name for s in rec.steps}]
        if missing:
            notes.append(
                "rows of the analysis not reached by the linearised run "
                f"(data-dependent control flow?): {', '.join(missing)}"
            )
    final = tuple(c for c in checks if c is not None) + ((output,) if output else ())
    return Verification(shape, final, tuple(notes))


@contextlib.contextmanager
def _one_thread():
    """torch on one thread for the measurement, restored after (see the module docstring)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _plan(step: Step, spatial: tuple[int, ...]) -> tuple[Optional[RowCheck], tuple[int, ...]]:
    """The row's check where nothing is to be measured, else None; and its centre unit."""

    f = step.field
    if f.status == UNKNOWN:
        return RowCheck(
            step.name,
            step.op,
            UNKNOWN,
            step.size,
            (),
            (),
            None,
            None,
            None,
            f.note or "nothing is claimed, so nothing is measured",
        ), ()
    centre = tuple((a.size - 1) // 2 for a in (tokens(f) or f).axes)
    if step.tensor is not None and not step.tensor.is_floating_point():
        note = "a boolean or integer output has no gradient to measure"
        return _unmeasured(step, spatial, note), centre
    return None, centre


def _unmeasured(step: Step, spatial: tuple[int, ...], note: str) -> RowCheck:
    from .analysis import to_row

    row = to_row(step.name, step.op, step.field, size=step.size)
    centre = tuple((a.size - 1) // 2 for a in (tokens(step.field) or step.field).axes)
    return RowCheck(
        step.name,
        step.op,
        row.status,
        step.size,
        centre,
        row.rf,
        _theory(step.field, centre, spatial),
        None,
        None,
        note,
    )


def _result(
    step: Step,
    spatial: tuple[int, ...],
    centre: tuple[int, ...],
    span: Optional[tuple[Span, ...]],
    note: str = "",
) -> RowCheck:
    from .analysis import to_row

    row = to_row(step.name, step.op, step.field, size=step.size)
    theory = _theory(step.field, centre, spatial)
    return RowCheck(
        step.name,
        step.op,
        row.status,
        step.size,
        centre,
        row.rf,
        theory,
        span,
        theory == span,
        note,
    )


def _measure_all(
    rec: Record, todo: list[tuple[Step, tuple[int, ...]]], progress: Optional[bool]
) -> list[Optional[tuple[Span, ...]]]:
    """The measured span of each (row, centre unit): one backward pass each, from the row
    down to the probe (a pass only walks the graph below its row; see the module docstring)."""
    from tqdm import tqdm

    show = sys.stderr.isatty() if progress is None else progress
    with tqdm(
        todo,
        unit="row",
        desc="verify",
        file=sys.stderr,
        leave=False,
        disable=not show,
        delay=0 if progress else 1.0,
    ) as rows:
        return [_span_of(_unit_gradient(step, centre, rec.probe)) for step, centre in rows]


def _span_of(grad: Optional[torch.Tensor]) -> Optional[tuple[Span, ...]]:
    return None if grad is None else _span(grad != 0)


def _output_check(rec: Record, spatial: tuple[int, ...], probe: torch.Tensor) -> Optional[RowCheck]:
    """The returned tensor as the model returns it, where that differs from its row: a write
    after the row was recorded (slice assignment, an in-place op through a view)."""
    outs = [t for t in _tensors(rec.result)]
    step = rec.output
    if (
        not outs
        or step is None
        or step.tensor is None
        or rec.output_field is None
        or rec.output_field.status == UNKNOWN
        or not outs[0].requires_grad
    ):
        return None
    final = Step("output", step.op, rec.output_field, size=step.size, tensor=outs[0])
    centre = tuple((a.size - 1) // 2 for a in final.field.axes)
    recorded = _span_of(_unit_gradient(step, centre, probe))
    seen = _span_of(_unit_gradient(final, centre, probe))
    if seen == recorded:
        return None
    return _result(
        final,
        spatial,
        centre,
        seen,
        f"the returned tensor was written after {step.name} was recorded",
    )


def _unit_gradient(
    step: Step, unit: tuple[int, ...], probe: torch.Tensor
) -> Optional[torch.Tensor]:
    """|d out[unit] / d input|, summed over the output's and the input's channels."""
    out = step.tensor
    if out is None or not out.requires_grad:
        return None
    f = step.field
    at = token_index(f, unit)
    if at is not None:  # one token of a flattened map: its element, not the whole vector
        target = out.select(at[0], at[1]).sum()
    elif f.dims is None:
        target = out.sum()
    else:
        index = [slice(None)] * out.dim()
        for d, c in zip(f.dims, unit):
            index[d] = c
        target = out[tuple(index)].sum()
    (grad,) = torch.autograd.grad(target, probe, retain_graph=True, allow_unused=True)
    return None if grad is None else grad[0].abs().sum(0)


def gradient_map(
    model: nn.Module,
    input_shape: Sequence[int],
    row: Optional[str] = None,
    unit: Optional[Sequence[int]] = None,
) -> torch.Tensor:
    """The input pixels one unit sees, as a map: |gradient| per input pixel (float64, the
    input's spatial shape) of unit `unit` (default: the centre unit) of row `row` (default:
    the model's output), measured on the linearised copy that `verify` uses. Non-zero exactly
    inside the unit's field (clipped to the image); the values show how many paths reach each
    pixel. Raises RFError for an unknown row, a unit outside the map, or a row without a field.
    """
    shape = _validate(input_shape)
    lin = linearised(model)
    probe = probe_for(lin, shape, dtype=torch.float64, fill=1.0).requires_grad_(True)
    with torch.enable_grad(), _one_thread():
        rec = record(
            lin,
            probe,
            keep_tensors=True if row is None else {row},
            substitute={**LINEARISE, **channel_summed(lin)},
        )
        if row is None:
            step = rec.output
        else:
            step = next((s for s in rec.steps if s.name == row), None)
            if step is None:
                names = ", ".join(s.name for s in rec.steps)
                raise RFError(f"no row named {row!r} (rows: {names})")
        if (
            step is None
            or step.field.status == UNKNOWN
            or step.field.dims is None
            and unit is not None
        ):
            raise RFError(f"{row or 'the output'} has no spatial field to take a unit of")
        sizes = tuple(a.size for a in step.field.axes)
        unit = tuple((n - 1) // 2 for n in sizes) if unit is None else tuple(unit)
        if len(unit) != len(sizes) or not all(0 <= u < n for u, n in zip(unit, sizes)):
            raise RFError(
                f"unit {unit} is outside the {'x'.join(map(str, sizes))} map of {step.name}"
            )
        grad = _unit_gradient(step, unit, probe)
    if grad is None:
        raise RFError(f"{step.name}: the output does not depend on the input through autograd")
    return grad.detach()
