"""`analyze(model, input_shape)`: the record of one forward pass, combined with the rules.

The record types below are the contract between the analyzer and everything that shows its
results (renderers, CLI, netbuilder, the book): rows in, text out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional, Sequence, Union

# How an Analysis shows itself (_render, _cells, _html, _layers): the renderers import nothing
# from this module at run time (its types only, for checking), so these imports go one way.
from . import render as _render

# A row's status: how far its field can be trusted. Defined (torch-free) in geometry.py:
# EXACT the classic arithmetic, exactly; APPROX units differ (up-sampling, uneven adaptive
# pool) and rf is the widest unit's; GLOBAL every unit sees the whole map (a pooled gate
# broadcast back, flatten + Linear, attention, statistics over the map); UNKNOWN an op without
# a rule touched the spatial map: nothing is claimed.
from .geometry import APPROX, EXACT, GLOBAL, UNKNOWN, Field, RFError, Window
from .probe import probe_for  # noqa: F401 - its home was here; rfcalc.analysis.probe_for stays
from .render import cells as _cells
from .render import html as _html
from .render import layers as _layers

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
    note: str = ""  # why a row is approx/global/unknown (an exact row: what it is, tokens)
    inputs: Optional[tuple[str, ...]] = None  # rows (or "input") that fed it; None: not recorded
    axis_status: tuple[str, ...] = ()  # per axis (global along W, exact along H)
    macs: int = 0  # multiply-accumulates per image (rfcalc.macs says which ops count)
    shape: tuple[int, ...] = ()  # the output tensor's shape without the batch: (C, H, W)
    # extent is not density: of the rf's pixels (product over the axes), how many an interior
    # unit really reads, as (read, extent); read < extent: holes (a dilated stack's
    # gridding). None where not known or not exact.
    reads: Optional[tuple[int, int]] = None

    @property
    def channels(self) -> Optional[int]:
        """Output channels: C of a (C, *spatial) map; a vector's or a token sequence's last
        dimension (features, or tokens × features); None for a scalar output."""
        if not self.shape:
            return None
        if self.size and len(self.shape) == len(self.size) + 1:
            return self.shape[0]  # (C, *spatial), the layout of every conv net
        if len(self.shape) >= 3:  # a map whose field went global keeps its layout
            return self.shape[0]
        return self.shape[-1]  # (features,), (tokens, features): channels last

    @property
    def holes(self) -> bool:
        """Whether an interior unit leaves pixels of its field unread."""
        return self.reads is not None and self.reads[0] < self.reads[1]

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
    """All rows in execution order, plus the summary of the model's output.

    A sequence of rows as well: `a["t4.conv"]` (by name) or `a[3]`, `len(a)`, `for row in a`,
    `"t4.conv" in a`; `a.to_dict()` is the JSON document, `a.to_pandas()` a DataFrame (one row
    per op, indexed by name), `a.render(fmt)` any of rfcalc.render.FORMATS. `print(a)` and
    `str(a)` give the text table, a notebook its HTML, `repr(a)` one line.
    """

    input_shape: tuple[int, ...]  # (C, *spatial) as given by the user
    rows: Sequence[Row]
    output: Row  # the field of the model's (first) output tensor
    params: int  # total parameters of the model (each counted once)
    # what the notes section under the table shows: one line per row that is not exact,
    # "name (status): note", in execution order (then any note on the model as a whole)
    notes: tuple[str, ...] = field(default_factory=tuple)
    unruled: dict = field(default_factory=dict)  # ops of this model without a rule: count
    # every tensor the model returned, as (where in the returned object, its row): `[0]`,
    # `['aux']`; empty for a model that returns one tensor (then `output` is all there is)
    outputs: tuple[tuple[str, Row], ...] = ()
    modules: Mapping[str, str] = field(default_factory=dict, repr=False)  # path: class name
    batch: Optional[int] = None  # the batch size the caller gave (summary), None: none given
    # how print() and a notebook show it (rfcalc.summary's depth, columns, compact)
    display: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    as_table: bool = field(default=False, compare=False, repr=False)  # repr() is the table
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

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one forward pass per image (the rows' sum)."""
        return sum(r.macs for r in self.rows)

    # ------------------------------------------------------------- a sequence of rows

    def __len__(self) -> int:
        return len(self.rows)

    def __bool__(self) -> bool:  # an analysis is a result even when the model ran no op
        return True

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)

    def __contains__(self, name: object) -> bool:
        return any(r.name == name for r in self.rows)

    def __getitem__(self, key: Union[str, int, slice]) -> Any:
        """A row by name (`"t4.conv"`) or by position (a slice: a tuple of rows); KeyError
        names the closest rows."""
        if isinstance(key, (int, slice)):
            return tuple(self.rows[key]) if isinstance(key, slice) else self.rows[key]
        for row in self.rows:
            if row.name == key:
                return row
        import difflib

        close = difflib.get_close_matches(str(key), [r.name for r in self.rows], n=3)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise KeyError(f"no row named {key!r}{hint}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (`rfcalc table --format json`) as Python objects."""
        return _layers.document(self)

    def to_pandas(self):
        """One DataFrame row per op, indexed by name; per-axis values as tuples. Needs pandas
        (ImportError with the pip command otherwise)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "Analysis.to_pandas() needs pandas: pip install pandas "
                "(or use Analysis.to_dict(), which needs nothing)"
            ) from None
        records = []
        for row in self.rows:
            d = _layers.row_dict(row)
            records.append({k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
        return pd.DataFrame.from_records(records, index="name")

    # How an Analysis shows itself (the renderers do the work): print() and str() give the
    # text table, a notebook the table with its status colours, repr() one line.

    def render(self, fmt: str = "text", **options: Any) -> str:
        """The table in one of rfcalc.render.FORMATS; `options` (depth, columns, compact)
        override the display this analysis was made with."""
        return _render.render(self, fmt, **{**self.display, **options})

    def __str__(self) -> str:
        return self.render("text")

    def __repr__(self) -> str:
        if self.as_table:  # rfcalc.summary's result, shown at a prompt as torchinfo's is
            return self.render("text").rstrip("\n")
        return (
            f"<Analysis of a {_cells.shape(self.input_shape)} input: {len(self.rows)} rows, "
            f"output rf {_cells.rf_cell(self.output)} ({self.output.status}), "
            f"{self.params:,} parameters, {self.macs:,} MACs>"
        )

    def _repr_markdown_(self) -> str:
        return self.render("markdown")

    def _repr_html_(self) -> str:
        return _html.fragment(_layers.table(self, **self.display))


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
        elif f.status == APPROX or not a.uniform or not a.exact:
            per.append(APPROX)
        else:
            per.append(EXACT)
    status = max(per, key=_RANK.__getitem__) if per else f.status
    note = f.note
    if APPROX in per and not note:
        if all(a.exact for a in f.axes):
            note = "units differ: rf is the widest unit's, jump the mean spacing"
        else:
            note = "some units see other pixels than the classic field: rf is the widest unit's"
    if GLOBAL in per and len(set(per)) > 1:
        names = axis_names(len(per))
        where = ", ".join(f"{s} along {n}" for s, n in zip(per, names))
        note = f"{note} ({where})" if note else where
    return status, tuple(per), note


TOKENS_NOTE = "tokens: the map flattened into one dim, each element keeps its position's field"


def tokens(f: Field) -> Optional[Field]:
    """The per-position field of a map flattened into one dim whose elements nothing has
    moved or mixed yet (a patch embedding's (B, N, C) tokens, per-token ops after it): a
    token is a position. None for any other field."""
    p = f.packed
    if f.dims is not None or f.status == UNKNOWN or p is None or p[0] not in ("flat", "tokens"):
        return None
    before = p[3]
    return before if before.dims is not None and before.status != UNKNOWN else None


def token_index(f: Field, unit: Sequence[int]) -> Optional[tuple[int, int]]:
    """(tensor dim, index in it) of a token field's element at position `unit` (channel 0
    where channels were flattened with the map)."""
    if tokens(f) is None:
        return None
    _, tail, flat_dim, _, *offset = f.packed  # "tokens": tokens put in front (a class token)
    lead = (0,) * (len(tail) - len(unit))
    index = 0
    for i, n in zip(lead + tuple(unit), tail):
        index = index * n + i
    return flat_dim, index + (offset[0] if offset else 0)


PLACES_NOTE = (
    "windows: the map's positions as (windows·B, tokens, C); each element keeps its "
    "position's field, the size is the map's"
)


def _placed(f: Field) -> Optional[Field]:
    """A row whose elements are the map's positions with its windows folded into dim 0
    (Swin's window partition, the attention inside each window) shown as the map, like
    tokens: each position's field, the map's grid as the size (rfcalc.rules.positions).
    None for any other field."""
    from .rules import positions

    pos = positions.of(f)
    if f.dims is not None or f.status == UNKNOWN or pos is None or pos.idx.dim() < 2:
        return None
    if positions.constant_along(pos, [0]):
        # windows are folded into dim 0 (windows·B): a map merely viewed another way (a
        # (6, 7) map as (2, 21)) stays flattened, as before
        return None
    per = positions.held(pos)
    if per is None or per.status == UNKNOWN:
        return None
    return Field(per.axes, per.dims, per.status, per.note or PLACES_NOTE)


def to_row(
    name: str,
    op: str,
    f: Field,
    *,
    params: int = 0,
    size: tuple[int, ...] = (),
    window: Optional[Window] = None,
    inputs: Optional[tuple[str, ...]] = None,
    macs: int = 0,
    shape: tuple[int, ...] = (),
) -> Row:
    """A Row from a recorded field; an UNKNOWN field claims no jump, rf or start. A token
    field (see `tokens`) is shown as its positions' field, with the token grid as its size."""
    per_token = tokens(f)
    if per_token is not None:
        note = per_token.note or TOKENS_NOTE
        if f.packed[0] == "tokens" and per_token.status != GLOBAL:
            # (after attention over all tokens a class token read them all, as every token)
            note += f"; {f.packed[4]} token(s) in front see nothing of the input"
        f = Field(per_token.axes, per_token.dims, per_token.status, note)
        size = tuple(a.size for a in f.axes)
    else:
        per_place = _placed(f)
        if per_place is not None:
            f, size = per_place, tuple(a.size for a in per_place.axes)
    status, per_axis, note = judge(f)
    if status == UNKNOWN:
        jump = rf = start = ()
    else:
        jump = tuple(a.jump for a in f.axes)
        rf = tuple(a.rf for a in f.axes)
        start = tuple(a.start for a in f.axes)
    reads = reads_of(f) if status == EXACT else None
    return Row(
        name,
        op,
        window,
        size,
        jump,
        rf,
        start,
        params,
        status,
        note,
        inputs,
        per_axis,
        macs,
        shape,
        reads,
    )


def reads_of(f: Field) -> Optional[tuple[int, int]]:
    """(read, extent) of an interior unit's field over all axes: the product of each axis's
    pattern, which is the unit's pattern where the rules kept it separable (a merge that is
    not, a cross of 1×7 and 7×1, drops the patterns). None where any axis has none."""
    if f.dims is None or not f.axes:
        return None
    read = extent = 1
    for a in f.axes:
        n = a.reads
        if n is None:
            return None
        read *= n
        extent *= a.hi[0] - a.lo[0] + 1
    return read, extent


def holes_note(row: Row) -> str:
    """`reads 9 of 25 pixels of its field: holes` for a row whose units skip pixels."""
    if not row.holes:
        return ""
    read, extent = row.reads
    return f"reads {read:,} of {extent:,} pixels of its field: holes"


def _ranges(ranges: list[tuple[int, int]]) -> str:
    text = [f"{a}" if a == b else f"{a}..{b}" for a, b in ranges]
    many = len(ranges) > 1 or ranges[0][0] != ranges[0][1]
    return ("pixels " if many else "pixel ") + " and ".join(text)


def unread_note(f: Field) -> str:
    """`pixel 223 of H and W is read by no unit`: the image's edge pixels no unit of this map
    reaches (a VALID window whose stride does not divide the input), per axis; "" if none."""
    if f.status == UNKNOWN or f.dims is None:
        return ""
    names = axis_names(len(f.axes))
    by_text: dict[str, list[str]] = {}
    for a, n in zip(f.axes, names):
        if a.mixed:
            continue
        gaps = a.unread()
        if gaps:
            by_text.setdefault(_ranges(gaps), []).append(n)
    parts = []
    for text, axes_ in by_text.items():
        verb = "are" if text.startswith("pixels") else "is"
        parts.append(f"{text} of {' and '.join(axes_)} {verb} read by no unit")
    return "; ".join(parts)


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


def _notes(rows: Sequence[Row], steps) -> tuple[str, ...]:
    """One line per row that is not exact, per exact row with holes, and where the pixels at
    the image's edge that no unit reads first appear or change."""
    unread: dict[str, str] = {"input": ""}
    out = []
    for r, s in zip(rows, steps):
        why = [r.note] if r.status != EXACT and r.note else []
        if r.status == EXACT:
            why.append(holes_note(r))
        edge = unread_note(s.field) if r.status != UNKNOWN else ""
        unread[r.name] = edge
        if edge and all(unread.get(i) != edge for i in r.inputs or ("input",)):
            why.append(edge)
        why = [w for w in why if w]
        if r.status != EXACT or why:
            out.append(
                f"{r.name} ({r.status}): " + "; ".join(why) if why else f"{r.name} ({r.status})"
            )
    return tuple(out)


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
    pixels (rfcalc.crosscheck: one more forward pass, on a batch of up to 18 images for a
    2-D input): a row that a perturbation contradicts, and every row that depends on it,
    becomes unknown with a note saying what moved. `check=False` skips that. The check's
    forwards start from the model's state before the analysis's own forward (first-call
    paths included); the model is left as that one forward left it. The data-free pass has
    no values to perturb: a note says its rows are unchecked.

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
            rec, ran_real = record_shapes(
                model, shape, real=real, materialize=materialize, capture=_capture(check)
            )
            checked = _check(rec, check)
    finally:
        for m, flag in flags.items():
            m.train(flag)
    rows = tuple(
        to_row(
            s.name,
            s.op,
            s.field,
            params=s.params,
            size=s.size,
            window=s.window,
            inputs=s.inputs,
            macs=s.macs,
            shape=s.shape,
        )
        for s in rec.steps
    )
    by_name = {r.name: r for r in rows}
    output = _output_row(rec.output_field, rec.output, by_name, shape)
    outputs = tuple((where, _output_row(f, step, by_name, shape)) for where, f, step in rec.outputs)
    params = sum(p.numel() for p in model.parameters())
    notes = _notes(rows, rec.steps)
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
    modules = {path: type(m).__name__ for path, m in model.named_modules() if path}
    return Analysis(
        shape,
        rows,
        output,
        params,
        notes,
        dict(rec.unruled),
        outputs,
        modules=modules,
        covers=covers(rec.output_field),
    )


def _output_row(out_field, out_step, by_name: dict, shape: tuple[int, ...]) -> Row:
    """The row of one returned tensor: the row that made it, refreshed where an alias op
    changed its field after the row (a view written in place)."""
    if out_field is None:
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
    elif out_step is None:  # the model returned its input
        output = to_row("input", "input", out_field, size=tuple(n for n in shape[1:]))
    else:
        output = by_name[out_step.name]
        if out_field is not out_step.field:  # changed by an alias op after its row
            output = to_row(
                output.name,
                output.op,
                out_field,
                params=output.params,
                size=output.size,
                inputs=output.inputs,
                macs=output.macs,
                shape=output.shape,
            )
    return output


def _capture(check: bool):
    """What takes the model's state before a run on real values: the check's start."""
    if not check:
        return None
    from .crosscheck import capture

    return capture


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
    if f is not None and tokens(f) is not None:
        f = tokens(f)  # a token is a position: what the token at each position sees
    elif f is not None and _placed(f) is not None:
        f = _placed(f)  # windows: each element sees its position's field
    if f is None or f.status == UNKNOWN or not f.axes:
        return None
    return all(any(s == (0, a.extent - 1) for s in a.seen) for a in f.axes)
