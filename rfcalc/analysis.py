"""`analyze(model, input_shape)`: the record of one forward pass, combined with the rules.

The record types below are the contract between the analyzer and everything that shows its
results (renderers, CLI, netbuilder, the book): rows in, text out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Callable, Optional, Sequence

# A row's status: how far its field can be trusted. Defined (torch-free) in geometry.py:
# EXACT the classic arithmetic, exactly; APPROX units differ (up-sampling, uneven adaptive
# pool) and rf is the widest unit's; GLOBAL every unit sees the whole map (a pooled gate
# broadcast back, flatten + Linear, attention, statistics over the map); UNKNOWN an op without
# a rule touched the spatial map: nothing is claimed.
from .geometry import APPROX, EXACT, GLOBAL, UNKNOWN, Field, RFError, Window

if TYPE_CHECKING:
    import torch.nn as nn

Num = Fraction  # spatial quantities are exact rationals: up-sampling makes jumps fractional


@dataclass(frozen=True)
class Row:
    """One executed operation, with the field of its output (one value per spatial axis)."""

    name: str  # qualified module path, or e.g. "add_1", "cat"
    op: str  # module class or torch function name
    window: Optional[Window]  # kernel, stride, padding, dilation; None: no window
    size: tuple[int, ...]  # output spatial size; () once the map is flattened
    jump: tuple[Num, ...]
    rf: tuple[Num, ...]
    start: tuple[Num, ...]
    params: int  # parameters owned by this op (0 for functional ops)
    status: str = EXACT  # the row's: the least trusted of its axes
    note: str = ""  # why a row is approx/global/unknown
    inputs: Optional[tuple[str, ...]] = None  # rows (or "input") that fed it; None: not recorded
    axis_status: tuple[str, ...] = ()  # per axis (global along W, exact along H)

    @property
    def kernel(self) -> Optional[tuple[int, ...]]:
        return self.window.kernel if self.window else None

    @property
    def stride(self) -> Optional[tuple[int, ...]]:
        return self.window.stride if self.window else None

    @property
    def padding(self) -> Optional[tuple[int, ...]]:
        return self.window.padding if self.window else None

    @property
    def dilation(self) -> Optional[tuple[int, ...]]:
        return self.window.dilation if self.window else None


@dataclass(frozen=True)
class Analysis:
    """All rows in execution order, plus the summary of the model's output."""

    input_shape: tuple[int, ...]  # (C, *spatial) as given by the user
    rows: Sequence[Row]
    output: Row  # the field of the model's (first) output tensor
    params: int  # total parameters of the model (each counted once)
    # what the notes section under the table shows: one line per row that is not exact,
    # "name (status): note", in execution order (then any note on the model as a whole)
    notes: tuple[str, ...] = field(default_factory=tuple)
    unruled: dict = field(default_factory=dict)  # ops of this model without a rule: count
    # whether some output unit sees every input pixel, read from what each unit sees
    # (`analyze` sets it; None: judged from the output row's rf and status alone)
    covers: Optional[bool] = None

    @property
    def covers_input(self) -> bool:
        """Whether some unit of the output sees the whole input: along every axis, some
        unit's field (what it really reaches, after crops and pads) spans the image. An
        Analysis built by hand, without that, answers from the output row: rf at least the
        input on every axis, or a global axis."""
        if self.covers is not None:
            return self.covers
        o = self.output
        if o.status == GLOBAL and (not o.axis_status or all(s == GLOBAL for s in o.axis_status)):
            return True
        per = o.axis_status or (o.status,) * len(o.rf)
        return bool(o.rf) and all(
            s == GLOBAL or r >= n for r, n, s in zip(o.rf, self.input_shape[1:], per)
        )

    # How an Analysis shows itself (the renderers do the work): print() and str() give the
    # text table, a notebook the table with its status colours, repr() one line.

    def __str__(self) -> str:
        from .render import render

        return render(self, "text")

    def __repr__(self) -> str:
        from .render.cells import rf_cell, shape

        return (
            f"<Analysis of a {shape(self.input_shape)} input: {len(self.rows)} rows, "
            f"output rf {rf_cell(self.output)} ({self.output.status}), "
            f"{self.params:,} parameters>"
        )

    def _repr_markdown_(self) -> str:
        from .render import render

        return render(self, "markdown")

    def _repr_html_(self) -> str:
        from .render import html, layers

        return html.fragment(layers.table(self))


_RANK = {EXACT: 0, APPROX: 1, GLOBAL: 2, UNKNOWN: 3}


def axis_names(n: int) -> tuple[str, ...]:
    """How the spatial axes are called in notes: L; H, W; D, H, W."""
    return {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}.get(
        n, tuple(f"axis {i}" for i in range(n))
    )


def judge(f: Field) -> tuple[str, tuple[str, ...], str]:
    """The one place a row's status is decided: (status, status per axis, note).

    Per axis: GLOBAL where every unit sees the whole map along it (or the map was flattened
    after mixing); APPROX where the units differ (up-sampling, an uneven pool), where the
    classic field clipped to the image is not what each unit really sees (a padding mode
    that copies pixels, a crop, a flip), or where a rule said so; else EXACT. The row's
    status is its least trusted axis's; UNKNOWN claims nothing.
    """
    if f.status == UNKNOWN:
        return UNKNOWN, (), f.note
    per = []
    for a in f.axes:
        if f.status == GLOBAL or a.mixed:
            per.append(GLOBAL)
        elif f.status == APPROX or not a.uniform or not a.faithful:
            per.append(APPROX)
        else:
            per.append(EXACT)
    status = max(per, key=_RANK.__getitem__) if per else f.status
    note = f.note
    if APPROX in per and not note:
        if all(a.faithful for a in f.axes):
            note = "units differ: rf is the widest unit's, jump the mean spacing"
        else:
            note = "some units see other pixels than the classic field: rf is the widest unit's"
    if GLOBAL in per and len(set(per)) > 1:
        names = axis_names(len(per))
        where = ", ".join(f"{s} along {n}" for s, n in zip(per, names))
        note = f"{note} ({where})" if note else where
    return status, tuple(per), note


def to_row(
    name: str,
    op: str,
    f: Field,
    *,
    params: int = 0,
    size: tuple[int, ...] = (),
    window: Optional[Window] = None,
    inputs: Optional[tuple[str, ...]] = None,
) -> Row:
    """A Row from a recorded field; an UNKNOWN field claims no jump, rf or start."""
    status, per_axis, note = judge(f)
    if status == UNKNOWN:
        jump = rf = start = ()
    else:
        jump = tuple(a.jump for a in f.axes)
        rf = tuple(a.rf for a in f.axes)
        start = tuple(a.start for a in f.axes)
    return Row(name, op, window, size, jump, rf, start, params, status, note, inputs, per_axis)


def _validate(input_shape: Sequence[int]) -> tuple[int, ...]:
    try:
        shape = tuple(int(n) for n in input_shape)
    except (TypeError, ValueError):
        raise RFError(f"input shape {input_shape!r} is not a sequence of integers") from None
    if len(shape) < 2 or any(n < 1 for n in shape) or any(int(n) != n for n in input_shape):
        raise RFError(
            f"input shape {input_shape!r} must be (channels, *spatial) with every "
            "size a positive integer"
        )
    return shape


def probe_for(model: "nn.Module", shape: tuple[int, ...], dtype=None, fill: Optional[float] = None):
    """A (1, *shape) probe on the model's device: seeded normal noise, or a constant."""
    import torch

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = dtype or (
        param.dtype if param is not None and param.is_floating_point() else torch.float32
    )
    if fill is not None:
        return torch.full((1, *shape), fill, dtype=dtype, device=device)
    gen = torch.Generator().manual_seed(0)
    return torch.randn((1, *shape), generator=gen).to(device=device, dtype=dtype)


def analyze(
    model: "nn.Module",
    input_shape: Sequence[int],
    *,
    real: Optional[bool] = None,
    materialize: Optional[Callable[[], "nn.Module"]] = None,
    check: bool = True,
) -> Analysis:
    """The field of every op of one forward pass of `model` on a (1, *input_shape) probe.

    For all but small models on small inputs the pass runs on tensors without data
    (rfcalc.execute), so its cost does not grow with the input size; where the model needs
    values (`.item()`, `if x.mean() > 0`, `nonzero`) it runs on real values instead and a note
    says where. Small cases run on real values (cheaper there). `real=True` always runs on
    real values, `real=False` data-free wherever the model allows. A model built on the meta
    device (no weights) runs data-free; where values are needed `materialize()` must build it
    with weights (see rfcalc.execute.record_shapes).

    Where the pass ran on real values, every row's claim is checked by perturbing input
    pixels (rfcalc.crosscheck: one more forward pass, on a batch of about ten images): a row
    that a perturbation contradicts, and every row that depends on it, becomes unknown with
    a note saying what moved. `check=False` skips that. The data-free pass has no values to
    perturb: a note says its rows are unchecked.

    Runs in eval mode under no_grad (the model's train/eval flags are restored). Rows come in
    execution order; a leaf module's row is named by its path (`c1.0.conv`), functional ops by
    the op under the running module's path (`layer1.0.add`, again `layer1.0.add_1`). A module
    called twice gives two rows (`conv`, `conv_1`); its parameters are counted on the first
    only, so the params column sums to `Analysis.params` when no parameter is used outside a
    module row. Raises RFError (a ValueError) when the input is too small or the forward fails.
    """
    import torch

    from .execute import record_shapes

    shape = _validate(input_shape)
    flags = {m: m.training for m in model.modules()}
    model.eval()
    checked = ""
    try:
        with torch.inference_mode(False), torch.no_grad():
            rec, ran_real = record_shapes(model, shape, real=real, materialize=materialize)
            checked = _check(rec, check)
    finally:
        for m, flag in flags.items():
            m.train(flag)
    rows = tuple(
        to_row(
            s.name, s.op, s.field, params=s.params, size=s.size, window=s.window, inputs=s.inputs
        )
        for s in rec.steps
    )
    by_name = {r.name: r for r in rows}
    if rec.output_field is None:
        output = Row(
            "output",
            "output",
            None,
            (),
            (),
            (),
            (),
            0,
            UNKNOWN,
            "the output does not come from the input through torch ops",
        )
    elif rec.output is None:  # the model returned its input
        output = to_row("input", "input", rec.output_field, size=tuple(n for n in shape[1:]))
    else:
        output = by_name[rec.output.name]
        if rec.output_field is not rec.output.field:  # changed by an alias op after its row
            output = to_row(
                output.name,
                output.op,
                rec.output_field,
                params=output.params,
                size=output.size,
                inputs=output.inputs,
            )
    params = sum(p.numel() for p in model.parameters())
    notes = tuple(
        f"{r.name} ({r.status}): {r.note}" if r.note else f"{r.name} ({r.status})"
        for r in rows
        if r.status != EXACT
    )
    if rec.unruled:
        notes += (
            "no rule for: "
            + ", ".join(f"{op} ×{n}" if n > 1 else op for op, n in rec.unruled.items())
            + " (rfcalc.register_rule adds one)",
        )
    if ran_real:
        notes += (ran_real,)
    if checked:
        notes += (checked,)
    return Analysis(shape, rows, output, params, notes, dict(rec.unruled), covers(rec.output_field))


UNCHECKED = (
    "unchecked: the analysis ran without values (a large input), so no row was checked by "
    "perturbing pixels (analyze(..., real=True) checks them)"
)


def _check(rec, check: bool) -> str:
    """The perturbation check (rfcalc.crosscheck) of a run on real values: rows it
    contradicts, and every row that depends on one, become UNKNOWN in `rec`. Returns the note
    to add ("" when there is nothing to say)."""
    from torch._subclasses.fake_tensor import FakeTensor

    from .crosscheck import OUTPUT, crosscheck

    if isinstance(rec.probe, FakeTensor):
        return UNCHECKED
    if not check or rec.model is None:
        return ""
    bad, how = crosscheck(rec.model, rec)
    why = dict(bad)
    for step in rec.steps:
        if step.name in why:
            continue
        cause = next((i for i in step.inputs if i in why), None)
        if cause is not None:
            why[step.name] = f"depends on {cause}, which the perturbation check contradicted"
    for step in rec.steps:
        if step.name in why and step.field.status != UNKNOWN:
            was = step.field is rec.output_field
            step.field = Field((), step.field.dims, UNKNOWN, why[step.name])
            if was:
                rec.output_field = step.field
    if rec.output_field is not None and rec.output_field.status != UNKNOWN:
        cause = bad.get(OUTPUT) or (rec.output is not None and why.get(rec.output.name))
        if cause:
            rec.output_field = Field((), rec.output_field.dims, UNKNOWN, cause)
    return how


def covers(f: Optional[Field]) -> Optional[bool]:
    """Whether some unit of a field sees every input pixel (None: the field is unknown)."""
    if f is None or f.status == UNKNOWN or not f.axes:
        return None
    return all(any(s == (0, a.extent - 1) for s in a.seen) for a in f.axes)
