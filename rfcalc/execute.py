"""Run the recorder without data: the cost of an analysis is the number of ops, not of pixels.

Every number rfcalc reports (sizes, strides, paddings, dilations, the fields built from them)
is a shape fact, so `record_shapes` runs the recorded forward pass on tensors that carry
shapes but no values, and only falls back to a real forward pass where the model itself asks
for values.

Why `torch._subclasses.FakeTensorMode` rather than the `meta` device: the meta device needs
the model's parameters on `meta` too, which means a copy of the model per call (or moving the
user's own parameters away); a fake tensor mode with `allow_non_fake_inputs=True` wraps the
real parameters where they are (shape, dtype and device only, no data is copied) for the
duration of the call. Fake tensors also keep reporting their real device (`cpu`, `cuda:0`),
so a forward that checks `x.device` or builds tensors `device=x.device` runs as it would for
real, where meta tensors would report `meta`. Shapes are static (no ShapeEnv): the input
shape is fixed, which is what an analysis is about.

Small models on small inputs (REAL_UP_TO) run on real values from the start: there a real
forward pass is cheaper than the data-free machinery's one-off start-up cost.

A forward that needs values fails on fake tensors with a clear signal: `.item()`, `bool(t)`
(`if x.mean() > 0`), `.tolist()`, `nonzero`, boolean-mask indexing, `.numpy()`. Any failure
of the data-free run is retried on real values (a genuine error, such as an input too small
for the model, fails again there and is reported from the real run); a retry that succeeds
returns a note naming the model's source line and module that needed values.
"""

from __future__ import annotations

import itertools
import linecache
import math
import os
from types import FrameType, TracebackType
from typing import Any, Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

from .probe import probe_for
from .record import Record, record

# The first data-free op of a process imports torch's compiler stack (torch._dynamo): about
# 1 s on an idle 2-core CPU, 4 s on a loaded one. A real forward pass on a small model and
# input costs less than that, so where parameters x input pixels (a bound on the forward's
# multiply-adds for a convnet) is at most this, the pass runs on real values: the assignment's
# Net at 32x32 is 2e8, ResNet-18 at 32x32 1.1e10, ResNet-50 at 224x224 1.3e12 (data-free).
# Both paths give the same rows (tests/rfcalc/test_execute.py).
REAL_UP_TO = 2 * 10**10

# frames in torch or rfcalc are not the model's code
_SKIP = (os.path.dirname(torch.__file__) + os.sep, os.path.dirname(__file__) + os.sep)


def record_shapes(
    model: nn.Module,
    shape: tuple[int, ...],
    *,
    real: Optional[bool] = None,
    materialize: Optional[Callable[[], nn.Module]] = None,
    capture: Optional[Callable[[nn.Module], Any]] = None,
) -> tuple[Record, Optional[str]]:
    """`record(model, probe)` on a (1, *shape) probe without data, or on real values where
    the model needs them. `real`: True always real values, False data-free first, None (the
    default) real values for inputs of up to REAL_UP_TO pixels, data-free above. Returns the
    record and, when a data-free run was tried and abandoned, a note saying where values were
    needed (None otherwise).

    A model built on the `meta` device (no weights at all: `rfcalc table` builds it so, since
    initialising a big model's weights costs more than its analysis) runs data-free as any
    other; where real values are needed, `materialize()` builds the same model with weights
    and that one runs. Without `materialize` such a model raises RFError there.

    The caller sets eval mode and no_grad. The model's state is left as it was: module
    attributes the data-free forward set to fake tensors (a lazily built cache) are undone.
    `capture(model)`, where given, is taken right before a run on real values and kept as
    the record's `before` (the state the perturbation check starts each forward from).
    """

    def on_values(note: Optional[str]) -> tuple[Record, Optional[str]]:
        runner = _with_values(model, materialize, note)
        probe = probe_for(runner, shape)
        before = capture(runner) if capture is not None else None
        rec = record(runner, probe)
        rec.before = before
        return rec, note

    if real is None:
        real = math.prod(shape[1:]) * sum(p.numel() for p in model.parameters()) <= REAL_UP_TO
    if real:
        return on_values(None)
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters()):
        # lazy modules materialise their parameters on the first real forward: fake ones
        # would replace the user's
        return on_values("ran on real values: the model has lazy modules still to initialise")
    before = _attributes(model)
    try:
        with FakeTensorMode(allow_non_fake_inputs=True):
            return record(model, probe_for(model, shape), substitute=SHAPE_ONLY), None
    except Exception as exc:  # noqa: BLE001 - any failure is retried on real values below
        reason = _needed_values(exc, model)
    finally:
        _undo_fakes(model, before)
    return on_values(f"ran on real values: {reason}")


def on_meta(model: nn.Module) -> bool:
    """Whether any parameter or buffer of the model is on the meta device (has no values)."""
    return any(t.is_meta for t in itertools.chain(model.parameters(), model.buffers()))


def _with_values(
    model: nn.Module, materialize: Optional[Callable[[], nn.Module]], note: Optional[str]
) -> nn.Module:
    """The model itself, or where it was built on the meta device, the one `materialize`
    builds with weights (in eval mode, as the caller set the first)."""
    if not on_meta(model):
        return model
    if materialize is None:
        from .geometry import RFError

        why = (
            note.removeprefix("ran on real values: ")
            if note
            else "real=True or a small model and input (rfcalc.execute.REAL_UP_TO) run on them"
        )
        raise RFError(
            f"the model is on the meta device but needs real values: {why}; "
            "pass materialize= (a function that builds it with weights) or a built model"
        )
    built = materialize()
    built.eval()
    return built


def _batch_norm_shape(
    x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5
):
    """Eval-mode batch norm on fake tensors: an output like `x`, after the checks torch makes.

    Fake tensors run batch norm through Python decompositions, 36 ms a call on ResNet-50 (most
    of its analysis time); its output is shaped like its input, which is all the record needs.
    Anything unusual (training statistics, sizes that do not fit) runs the real op.
    """
    per_channel = [t for t in (running_mean, running_var, weight, bias) if t is not None]
    if training or x.dim() < 2 or any(t.numel() != x.shape[1] for t in per_channel):
        return F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    return torch.empty_like(x)


def _stand_in(t):
    """A data-free tensor with the metadata of a real one (a parameter), made directly:
    FakeTensorMode's own conversion of a real tensor costs ~9 ms a weight on ResNet-50."""
    if isinstance(t, torch.Tensor) and not isinstance(t, FakeTensor):
        return torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=t.device)
    return t


def _with_stand_ins(op):
    def run(x, weight, bias=None, *args, **kwargs):
        return op(x, _stand_in(weight), _stand_in(bias), *args, **kwargs)

    return run


# ops replaced on the data-free run only; the recorder still applies the original op's rule
SHAPE_ONLY = {
    "batch_norm": _batch_norm_shape,
    "linear": _with_stand_ins(F.linear),
    **{f"conv{n}d": _with_stand_ins(getattr(F, f"conv{n}d")) for n in (1, 2, 3)},
    **{
        f"conv_transpose{n}d": _with_stand_ins(getattr(F, f"conv_transpose{n}d")) for n in (1, 2, 3)
    },
}


def _attributes(model: nn.Module) -> dict[nn.Module, dict]:
    """Shallow copies of each module's attribute dicts (cheap: references only)."""
    return {
        m: {
            "__dict__": dict(m.__dict__),
            "_buffers": dict(m._buffers),
            "_parameters": dict(m._parameters),
        }
        for m in model.modules()
    }


def _undo_fakes(model: nn.Module, before: dict[nn.Module, dict]) -> None:
    """Put back every module attribute that the data-free run replaced with a fake tensor."""
    for m in model.modules():
        saved = before.get(m)
        for where, now in (
            ("__dict__", m.__dict__),
            ("_buffers", m._buffers),
            ("_parameters", m._parameters),
        ):
            for key, value in list(now.items()):
                if isinstance(value, FakeTensor):
                    old = saved[where] if saved is not None else {}
                    if key in old:
                        now[key] = old[key]
                    else:
                        del now[key]


def _needed_values(exc: BaseException, model: nn.Module) -> str:
    """Where the data-free forward failed: the model's source line and module, and what
    torch could not answer without values (e.g. aten._local_scalar_dense for `.item()`)."""
    innermost, seen = exc, {id(exc)}
    while (innermost.__cause__ or innermost.__context__) is not None and id(
        innermost.__cause__ or innermost.__context__
    ) not in seen:
        innermost = innermost.__cause__ or innermost.__context__
        seen.add(id(innermost))
    what = str(innermost).splitlines()[0] if str(innermost) else type(innermost).__name__
    frame = _deepest_frame(innermost.__traceback__)
    paths = {m: p for p, m in model.named_modules()}
    line = module = None
    while frame is not None and (line is None or module is None):
        if line is None and not frame.f_code.co_filename.startswith(_SKIP):
            text = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
            text = text.split("  #")[0].rstrip()  # a trailing comment is not the code
            line = f"`{text}` ({os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno})"
        code = frame.f_code
        owner = (
            frame.f_locals.get(code.co_varnames[0])
            if code.co_name == "forward" and code.co_argcount
            else None
        )
        if module is None and isinstance(owner, nn.Module) and owner in paths:
            module = f"at {paths[owner]}" if paths[owner] else "in the model's forward"
        frame = frame.f_back
    del frame
    where = " ".join(part for part in (line, module) if part)
    return f"{where or 'the forward'} needs tensor values ({what})"


def _deepest_frame(tb: Optional[TracebackType]) -> Optional[FrameType]:
    frame = None
    while tb is not None:
        frame, tb = tb.tb_frame, tb.tb_next
    return frame


__all__ = ["on_meta", "record_shapes"]
