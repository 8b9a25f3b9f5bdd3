"""Walk a model by execution: one forward pass, every torch op seen, fields propagated.

A `TorchFunctionMode` sees every torch function and Tensor method the forward calls (the
F.conv2d inside nn.Conv2d, F.max_pool2d, torch.cat, x + y, x.view), so Python control flow
needs nothing special: only the executed path is recorded. Global module hooks supply the
qualified names. A leaf module (nn.Conv2d, nn.ReLU, ...) becomes one row named by its path;
functional ops get generated names (`add`, `add_1`) under the path of the module running them.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import weakref
from collections import Counter
from dataclasses import dataclass
from dataclasses import field as dc_field
from types import FrameType, TracebackType
from typing import Any, Callable, Iterator, Optional, Union

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode
from torch.utils.hooks import RemovableHandle
from torch.utils.weak import WeakIdKeyDictionary

from . import geometry as g
from . import rules
from .geometry import EXACT, GLOBAL, UNKNOWN, Field, RFError, Window, input_axis
from .macs import op_macs


@dataclass
class Step:
    """One recorded op (a row to be): its name, op, window, output field and output tensor."""

    name: str
    op: str
    field: Field
    params: int = 0
    window: Optional[Window] = None
    size: tuple[int, ...] = ()
    tensor: Optional[torch.Tensor] = None  # kept only when Recording.keep_tensors
    inputs: tuple[str, ...] = ()  # the steps (or "input") whose outputs fed this op
    macs: int = 0  # multiply-accumulates of the op (a leaf module: of every op inside it)
    shape: tuple[int, ...] = ()  # the output tensor's shape without the batch dimension


@dataclass
class _Frame:
    module: nn.Module
    path: str
    leaf: bool
    inner: list[rules.Outcome] = dc_field(default_factory=list)
    inputs: list[Field] = dc_field(default_factory=list)
    sources: tuple[str, ...] = ()
    macs: int = 0  # a leaf module's: the sum over the ops it ran


# Tensor methods through which values leave torch: what comes back (torch.from_numpy,
# torch.tensor) has no recorded producer, so it may depend on the input unseen
_ESCAPES = frozenset(
    # untyped_storage / storage: pickling and torch.save read a tensor's memory through them
    {"numpy", "tolist", "array", "dlpack", "untyped_storage", "storage", "_typed_storage"}
)

# ops whose output holds no defined values until something writes it: a tensor made so and
# read before any recorded op wrote it was filled another way (pickle.loads and torch.load
# rebuild a tensor as torch.empty, then point it at memory they filled themselves)
_BLANK = frozenset({"empty", "empty_like", "new_empty", "empty_strided", "new_empty_strided"})

# ops that make a tensor from data outside torch: after data left torch (or with a Python
# number taken from a map among their arguments) what they make may be the input's values
_IMPORTS = frozenset({"tensor", "as_tensor", "asarray", "from_numpy", "from_dlpack"})

# ops whose values do not depend on their input's (only its shape, dtype, device): like
# torch.zeros, what they make is a fresh tensor without a field (`x.new_zeros(...)` as the
# canvas of the U-Net's "pad the decoder map to the skip's size" idiom)
_FRESH = frozenset(
    {
        "zeros_like",
        "ones_like",
        "empty_like",
        "full_like",
        "rand_like",
        "randn_like",
        "randint_like",
        "new_zeros",
        "new_ones",
        "new_empty",
        "new_full",
    }
)

# ops that write their value into their first argument, and which argument is the value
_WRITES_VALUE = {"setitem": 2, "copy": 1}


def _storage_key(t: torch.Tensor) -> int:
    """What identifies a tensor's memory: every alias of it shares the key, also those that
    are no view of it as far as `_base` knows (`.data`, `.detach()`, `set_`, dlpack)."""
    with torch._C.DisableTorchFunction():
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError, TypeError):
            return id(t._base if t._base is not None else t)
        fake = sys.modules.get("torch._subclasses.fake_tensor")  # none made if not imported
        # no data: the storage object identifies it (is_meta first would cost a fake 6 us)
        if (fake is not None and isinstance(t, fake.FakeTensor)) or t.is_meta:
            return storage._cdata
        # the memory itself, also shared by a dlpack or numpy round trip
        return storage.data_ptr() or storage._cdata


def _layout(t: torch.Tensor) -> tuple:
    """Which elements of its memory a tensor views: shape, strides, offset."""
    with torch._C.DisableTorchFunction():
        return (tuple(t.shape), t.stride(), t.storage_offset())


def _placed(value: Field, region: torch.Tensor, base: torch.Tensor, name: str) -> Field:
    """The field of a fresh tensor `base` (no field: constant) once `value` is written into
    `region`, a view of it: units inside the region see what the value's units see, units
    outside see nothing (a zero padding of the value). UNKNOWN where the region is no plain
    box of `base` (a strided or transposed slice, a broadcast along the map)."""
    unknown = Field(
        (),
        None,
        UNKNOWN,
        f"{name}: a map written into part of a fresh tensor in a way rfcalc cannot place",
    )
    if value.status == UNKNOWN or value.dims is None or not value.axes:
        return Field((), None, UNKNOWN, value.note or unknown.note)
    with torch._C.DisableTorchFunction():
        n = base.dim()
        if region.dim() != n or any(-d > n for d in value.dims):
            return unknown
        rest = region.storage_offset() - base.storage_offset()
        offsets = [0] * n
        for d in sorted(range(n), key=lambda d: -base.stride(d)):
            if base.shape[d] > 1 and base.stride(d) > 0:
                offsets[d], rest = divmod(rest, base.stride(d))
        if rest or any(
            region.shape[d] > 1 and region.stride(d) != base.stride(d) for d in range(n)
        ):
            return unknown
        if any(o + r > b for o, r, b in zip(offsets, region.shape, base.shape)):
            return unknown
        axes = []
        for a, d in zip(value.axes, value.dims):
            if region.shape[d] != a.size:
                return unknown
            lo = offsets[d]
            axes.append(g.pad(a, lo, base.shape[d] - lo - a.size))
    return Field(tuple(axes), value.dims, value.status, value.note)


def _version(t: torch.Tensor) -> int:
    """The tensor's version counter (bumped by every in-place write, shared by its views)."""
    try:
        with torch._C.DisableTorchFunction():
            return t._version
    except RuntimeError:  # an inference tensor keeps none
        return -1


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    """Tensors inside nested tuples, lists and dicts, in order."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors(item)


# Frames in these folders are the machinery (torch, rfcalc, the standard library), not the
# user's model: an error names the deepest frame outside them
_MACHINERY = tuple(
    os.path.dirname(os.path.abspath(p)) + os.sep for p in (torch.__file__, __file__)
) + (sysconfig.get_paths()["stdlib"] + os.sep,)


def _shown_path(filename: str) -> str:
    """A file as a user reads it: relative to the working folder when inside it, else
    relative to the sys.path entry that holds it (`torchvision/models/resnet.py`)."""
    path = os.path.abspath(filename)
    here = os.getcwd() + os.sep
    if path.startswith(here):
        return path[len(here) :]
    roots = [os.path.abspath(p) + os.sep for p in sys.path if p]
    root = max((r for r in roots if path.startswith(r)), key=len, default="")
    return path[len(root) :] if root and "site-packages" in root else path


def user_location(start: Union[FrameType, TracebackType, None]) -> str:
    """`model.py:12`: the innermost line of the user's own code (outside torch, rfcalc and
    the standard library) in a traceback (innermost last) or a frame (walked outwards);
    "" when there is none."""
    frames: list[tuple[str, int]] = []
    if isinstance(start, TracebackType):
        tb: Optional[TracebackType] = start
        while tb is not None:
            frames.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno))
            tb = tb.tb_next
        frames.reverse()
    else:
        frame = start
        while frame is not None:
            frames.append((frame.f_code.co_filename, frame.f_lineno))
            frame = frame.f_back
    for filename, line in frames:
        if filename.startswith("<") or os.path.abspath(filename).startswith(_MACHINERY):
            continue
        return f"{_shown_path(filename)}:{line}"
    return ""


def labelled_tensors(obj: Any, where: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Tensors inside nested tuples, lists and dicts, in order, each with where it sits:
    `[0]`, `['aux']`, `[1][0]`; a lone tensor is `""`."""
    if isinstance(obj, torch.Tensor):
        yield where, obj
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            yield from labelled_tensors(item, f"{where}[{i}]")
    elif isinstance(obj, dict):
        for key, item in obj.items():
            yield from labelled_tensors(item, f"{where}[{key!r}]")


def input_field(spatial: tuple[int, ...]) -> Field:
    """The input pixels: jump 1, rf 1, start 0 on every spatial axis."""
    return Field(tuple(input_axis(n) for n in spatial), tuple(range(-len(spatial), 0)))


class Recording(TorchFunctionMode):
    """The recorder: use `record(model, probe)` rather than this class directly.

    `substitute` maps a canonical op name to a replacement function (the linearised run of
    `verify`); the rule of the original op still gives the field.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        keep_tensors: Union[bool, set[str]] = False,
        substitute: Optional[dict[str, Callable]] = None,
    ):
        super().__init__()
        self.fields: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self.made_by: WeakIdKeyDictionary = WeakIdKeyDictionary()  # tensor -> Step
        self.steps: list[Step] = []
        self.keep_tensors = keep_tensors
        self.substitute = substitute or {}
        self.paths = {}
        for path, module in model.named_modules(remove_duplicate=False):
            self.paths.setdefault(module, path)
        self.stack: list[_Frame] = []
        self.calls: dict[nn.Module, int] = {}
        self.used_names: set[str] = set()
        self.counters: dict[str, int] = {}
        self._handles: list[RemovableHandle] = []
        self._quiet = 0  # >0 inside an autograd.Function: its internals are not ours to read
        self.unruled: Counter[str] = Counter()  # ops that had no rule, with their counts
        # writes the rules cannot see: tensors sharing storage (views of one base), and data
        # that left torch (numpy, tolist) from a field-carrying tensor
        self.aliases: dict[int, list[weakref.ref]] = {}
        self.escaped = ""
        # set once the forward does work the recorder cannot follow (inference mode, vmap,
        # another thread): every row from there on is unknown, with this as its note
        self.blind = ""
        # Python floats returned by .item() / .tolist() of a map: id -> (the float, its field)
        self.scalars: dict[int, tuple[float, Field]] = {}
        # maps whose memory went to numpy: storage key -> their values then
        self.exposed: dict[int, torch.Tensor] = {}
        # tensors made during the forward by ops the recorder saw, without a field-carrying
        # input: known constants (0), or blanks made by torch.empty (their storage key)
        self.made: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self.blank_keys: set[int] = set()  # storage keys of blanks no recorded op wrote yet
        # memory a map was written into while the tensor written had no field (a canvas, a
        # parameter's .data): storage key -> {layout: (field, step)}. Any other object over
        # the same memory (the Parameter itself, read later) takes the field from here
        self.filled: dict[int, dict[tuple, tuple[Field, Optional[Step]]]] = {}
        # the model's own tensors (parameters, buffers, tensor attributes): known constants
        self.owned = {
            id(t)
            for m in model.modules()
            for t in _tensors(
                [*m.parameters(recurse=False), *m.buffers(recurse=False), *vars(m).values()]
            )
        }

    # ------------------------------------------------------------------ naming
    def _unique(self, base: str) -> str:
        n = self.counters.get(base, 0)
        name = base if n == 0 else f"{base}_{n}"
        while name in self.used_names:
            n += 1
            name = f"{base}_{n}"
        self.counters[base] = n + 1
        self.used_names.add(name)
        return name

    def _scope(self) -> str:
        for frame in reversed(self.stack):
            if not frame.leaf:
                return frame.path
        return ""

    def where(self, location: str = "") -> str:
        """The innermost module path being run, and the user's line that ran into the error
        (`conv1 (model.py:12)`), for error messages."""
        path = self.stack[-1].path if self.stack else ""
        at = f" ({location})" if location else ""
        return f"{path}{at}" if path else f"the model's forward{at}"

    # ------------------------------------------------------------------ fields
    def set_field(self, tensor: torch.Tensor, f: Field, step: Optional[Step]) -> None:
        self.fields[tensor] = f
        if step is not None:
            self.made_by[tensor] = step
        key = _storage_key(tensor)
        if key in self.filled:
            self.filled[key][_layout(tensor)] = (f, step or self.made_by.get(tensor))
        views = self.aliases.setdefault(key, [])
        if not any(r() is tensor for r in views):
            views.append(weakref.ref(tensor))

    def _written(self, tensor: torch.Tensor, f: Field, step: Optional[Step], name: str) -> None:
        """`tensor` was changed in place: every tensor sharing its storage changed with it.
        Those that view exactly the same elements get its new field; others (a slice, a
        reshaped view) are partly overwritten: nothing is claimed for them."""
        key = _storage_key(tensor)
        with torch._C.DisableTorchFunction():
            layout = (tuple(tensor.shape), tensor.stride(), tensor.storage_offset())
            others = [(r(), None) for r in self.aliases.get(key, [])]
            others = [
                (o, (tuple(o.shape), o.stride(), o.storage_offset()))
                for o, _ in others
                if o is not None
            ]
        for other, where in others:
            if other is tensor or other not in self.fields:
                continue
            same = where == layout
            g = (
                f
                if same
                else Field(
                    (),
                    None,
                    UNKNOWN,
                    f"{name}: written in place through a "
                    "view of it (slice assignment, an in-place op on a view)",
                )
            )
            self.set_field(other, g, step or self.made_by.get(other))

    def field_of(self, tensor: torch.Tensor) -> Optional[Field]:
        return self.fields.get(tensor)

    def sources(self, tensors) -> tuple[str, ...]:
        """Names of the steps that made these field-carrying tensors ("input" for the probe),
        each once, in order: the data-flow edges of the graph."""
        names = (self.made_by[t].name if t in self.made_by else "input" for t in tensors)
        return tuple(dict.fromkeys(names))

    def _emit(self, step: Step, outs: list[torch.Tensor]) -> None:
        if outs:
            f = step.field
            step.size = tuple(outs[0].shape[d] for d in f.dims) if f.dims is not None else ()
            step.shape = tuple(outs[0].shape[1:])
            keep = self.keep_tensors
            if keep is True or (keep and step.name in keep):
                # a clone: later in-place ops on the original must not change this row's value
                step.tensor = outs[0].clone() if outs[0].requires_grad else outs[0]
        self.steps.append(step)

    # ------------------------------------------------------------------ ops
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = rules.canonical(func)
        key = rules.qualified(func)
        run = self.substitute.get(name, func) if self.substitute else func
        if self._quiet:
            return run(*args, **kwargs)
        if not self.blind:
            self._watch_transforms()
        tensors = list(_tensors((args, kwargs)))
        if self.filled:
            self._adopt(tensors)
        inputs = [(t, self.fields[t]) for t in tensors if t in self.fields]
        versions = [(t, _version(t)) for t, _ in inputs]
        raw = getattr(func, "__name__", "") or ""
        writes = inputs and (
            name in _WRITES_VALUE
            or (raw.endswith("_") and not raw.startswith("_"))
            or raw.startswith("__i")
            or "out" in kwargs
        )
        # fresh tensors (no field) this op may write into: a canvas, a buffer used as a cache
        blanks = [(t, _version(t)) for t in tensors if t not in self.fields] if writes else []
        if self.exposed:
            self._check_exposed(tensors)
            inputs = [(t, self.fields[t]) for t in tensors if t in self.fields]
            versions = [(t, _version(t)) for t, _ in inputs]
        if inputs and name in _ESCAPES:
            self.escaped = self.escaped or f"{name} on a map"
            if name == "numpy" and not inputs[0][0].is_meta:
                with torch._C.DisableTorchFunction():
                    first = inputs[0][0]
                    self.exposed[_storage_key(first)] = first.detach().clone()
        in_place = raw.endswith("_") and not raw.startswith("_") or raw.startswith("__i")
        # an op writing into a tensor (torch.empty(n).fill_(c), out=) does not read it
        targets = tensors[:1] if in_place or name in _WRITES_VALUE else []
        targets += list(_tensors(kwargs.get("out")))
        readers = [t for t in tensors if not any(t is w for w in targets)]
        # a blank read before any recorded write was filled unseen (set_ onto a map's storage)
        unwritten = [t for t in readers if self._blank(t)]
        strangers = any(self._stranger(t) for t in readers) if self.escaped else bool(unwritten)
        if not inputs and name in _IMPORTS and (self.escaped or self.scalars):
            strangers = strangers or self._outside_data((args, kwargs))
        # set_ points a tensor at other memory: no value a recorded op computed
        for t in targets if not strangers and name != "set" else ():
            if self.made.get(t):  # a blank (or a view of one) written by a recorded op
                self.blank_keys.discard(_storage_key(t))
        try:
            out = run(*args, **kwargs)
        except RFError:
            raise
        except Exception as exc:
            if not inputs:
                raise
            sizes = "x".join(
                str(n) for n in inputs[0][1].axes and (a.size for a in inputs[0][1].axes) or ()
            )
            raise RFError(
                f"{self.where(user_location(sys._getframe()))}: "
                f"{name} failed on a map of size {sizes or '?'}: "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from exc
        if not inputs or name in _FRESH:
            self._made(out, name, strangers, unwritten)
            return out
        if name in ("item", "tolist"):
            self._scalars(out, inputs[0][1])
        outs = list(_tensors(out))
        mutated = [t for t, v in versions if _version(t) != v and not any(t is o for o in outs)]
        written = [t for t, v in blanks if _version(t) != v]
        if written and name in _WRITES_VALUE:  # a canvas or cache receives a map
            self._fill(name, args, written, inputs)
            self._mark_filled(written)
            return out
        if not outs:
            for t in mutated:  # setitem, copy_ into a slice, out=: written, nothing returned
                f = Field((), None, UNKNOWN, f"{name}: part of the map is overwritten in place")
                self.set_field(t, f, self.made_by.get(t))
                self._written(t, f, self.made_by.get(t), name)
            return out
        call = rules.Call(name, tuple(args), kwargs, inputs, out)
        outcome = rules.apply(call, key)
        if outcome.no_rule:
            self.unruled[name] += 1
        f = outcome.field
        if self.scalars and f.status != UNKNOWN:
            f = self._tainted(f, args, kwargs, name)
        if self.blind and f.status != UNKNOWN:
            f = Field((), f.dims, UNKNOWN, self.blind)
        if strangers and f.status != UNKNOWN:
            f = Field((), None, UNKNOWN, self._stranger_note(name))
        if f.status != UNKNOWN and f.dims is not None:
            actual = (
                tuple(outs[0].shape[d] for d in f.dims)
                if outs[0].dim() >= max([-d for d in f.dims] or [0])
                else None
            )
            if actual != tuple(a.size for a in f.axes):
                f = Field(
                    (),
                    None,
                    UNKNOWN,
                    f"{name}: the rule's size {tuple(a.size for a in f.axes)} disagrees "
                    f"with the op's output {actual}",
                )
        frame = self.stack[-1] if self.stack else None
        step = None
        macs = op_macs(name, args, kwargs, out)
        if frame is not None and frame.leaf:
            frame.inner.append(outcome)
            frame.macs += macs
        elif not outcome.alias:
            scope = self._scope()
            step = Step(
                self._unique(f"{scope}.{name}" if scope else name),
                name,
                f,
                0,
                outcome.window,
                inputs=self.sources(t for t, _ in inputs),
                macs=macs,
            )
            self._emit(step, outs)
        # an alias op (clone, contiguous, to, detach) makes no row: its output is named by
        # the row that made its input (a fresh copy has no producer of its own)
        source = self.made_by.get(inputs[0][0]) if outcome.alias else None
        for t in outs:
            previous = self.made_by.get(t, source) if outcome.alias else None
            self.set_field(t, f, step or previous)
        for t in outs + mutated:
            if _version(t) != dict((id(a), v) for a, v in versions).get(id(t), _version(t)):
                self._written(t, self.fields[t] if t in self.fields else f, step, name)
        for t in mutated:
            self.set_field(t, Field((), None, UNKNOWN, f"{name}: overwritten in place"), step)
        for t in written:  # an in-place op on a view of a fresh tensor: its base changed too
            if self._unseen_alias(t, name):
                continue
            with torch._C.DisableTorchFunction():
                view = t._base is not None
            if view or not any(t is o for o in outs):
                self._fill(name, args, [t], inputs, f)
        self._mark_filled(written)
        return out

    def _made(self, out: Any, name: str, strangers: bool, unwritten: list) -> None:
        """Outputs of an op without a field-carrying input: constants the recorder saw made
        (blank where torch.empty made them), or, where the op read a stranger after data
        left torch (a tensor rebuilt by pickle), UNKNOWN: they may hold the input's values."""
        outs = list(_tensors(out))
        if strangers and unwritten and not self.escaped:
            keys = {_storage_key(b) for b in unwritten}
            if all(_storage_key(t) in keys for t in outs):  # a view of a blank: no read
                for t in outs:
                    self.made[t] = _storage_key(t)
                return
        if strangers:
            note = self._stranger_note(name)
            for t in outs:
                self.set_field(t, Field((), None, UNKNOWN, note), None)
            return
        for t in outs:
            if t not in self.made:
                self.made[t] = _storage_key(t) if name in _BLANK else 0
                if name in _BLANK:
                    self.blank_keys.add(self.made[t])

    def _unseen_alias(self, t: torch.Tensor, name: str) -> bool:
        """Whether `t`, written as a fresh tensor, shares its memory with maps that carry a
        field (made by dlpack or numpy, which the recorder does not see as aliases): then
        they and `t` changed in a way nothing describes, and claim nothing."""
        others = [
            o
            for o in (r() for r in self.aliases.get(_storage_key(t), []))
            if o is not None and o is not t and o in self.fields
        ]
        if not others:
            return False
        unknown = Field((), None, UNKNOWN, f"{name}: written through an alias rfcalc did not see")
        for o in [*others, t]:
            self.set_field(o, unknown, self.made_by.get(o))
        return True

    def _mark_filled(self, tensors: list[torch.Tensor]) -> None:
        """These tensors had no field and received a map: remember their memory's field."""
        for t in tensors:
            if t in self.fields:
                key = _storage_key(t)
                self.filled.setdefault(key, {})[_layout(t)] = (self.fields[t], self.made_by.get(t))

    def _adopt(self, tensors: list[torch.Tensor]) -> None:
        """Tensors without a field over memory a map was written into (`p.data.copy_(...)`,
        then `p` read) hold that map: the field written there, or UNKNOWN where they view its
        elements another way."""
        for t in tensors:
            if t in self.fields:
                continue
            kept = self.filled.get(_storage_key(t))
            if not kept:
                continue
            f, step = kept.get(_layout(t), (None, None))
            if f is None:
                note = "shares memory with a map written in place, viewed another way"
                f, step = Field((), None, UNKNOWN, note), None
            self.fields[t] = f
            if step is not None:
                self.made_by[t] = step

    def _stranger_note(self, name: str) -> str:
        if not self.escaped:
            return (
                f"{name}: reads a tensor made by torch.empty that no recorded op wrote "
                "(filled another way: set_, a C extension): it may come from the input"
            )
        return (
            f"{name}: reads a tensor with no recorded producer after data left torch "
            f"({self.escaped}): it may come from the input"
        )

    def _outside_data(self, obj: Any) -> bool:
        """Whether an import op's arguments hold data from outside torch (a numpy array, a
        buffer) or a Python number taken from a map (.item(), .tolist())."""
        stack = [obj]
        while stack:
            v = stack.pop()
            if isinstance(v, float):
                kept = self.scalars.get(id(v))
                if kept is not None and kept[0] is v:
                    return True
            elif isinstance(v, (list, tuple)):
                stack.extend(v)
            elif isinstance(v, dict):
                stack.extend(v.values())
            elif self.escaped and (
                isinstance(v, (bytes, bytearray, memoryview)) or hasattr(v, "__array_interface__")
            ):
                return True
        return False

    def _blank(self, t: torch.Tensor) -> bool:
        """Made by torch.empty (or a view of it) and not written by any recorded op since,
        or pointed at other memory unseen (set_)."""
        made = self.made.get(t)
        if not made or t in self.fields:
            return False
        key = _storage_key(t)
        return key != made or key in self.blank_keys

    def _stranger(self, t: torch.Tensor) -> bool:
        """A tensor without a field that no recorded op made as a constant (nor the model
        owns): after data left torch, it may hold the input's values."""
        if t in self.fields or id(t) in self.owned:
            return False
        return t not in self.made and t.dim() > 0 or self._blank(t)

    def _check_exposed(self, tensors: list[torch.Tensor]) -> None:
        """Maps whose memory went to numpy (`.numpy()`) may be written there, where no
        version counter sees it: a map that no longer holds what it held then claims nothing."""
        for t in tensors:
            if t not in self.fields:
                continue
            kept = self.exposed.get(_storage_key(t))
            if kept is None:
                continue
            with torch._C.DisableTorchFunction():
                same = kept.shape == t.shape and bool(torch.equal(kept, t))
            if not same:
                self.exposed[_storage_key(t)] = t.detach().clone()
                note = "written through numpy: its values changed where rfcalc cannot see"
                self.set_field(t, Field((), None, UNKNOWN, note), self.made_by.get(t))

    # ------------------------------------------------------------------ unseen work
    def _watch_transforms(self) -> None:
        """Inference mode keeps no version counters (no write is seen) and functorch's
        transforms (torch.vmap) run their body on tensors the recorder never saw: from
        there on, nothing is claimed."""
        where = self.where()
        if torch.is_inference_mode_enabled():
            self.blind = f"torch.inference_mode() in {where}: writes there leave no trace"
        elif torch._C._functorch.peek_interpreter_stack() is not None:
            self.blind = f"torch.vmap (or another functorch transform) in {where}: not followed"

    def _scalars(self, out: Any, f: Field) -> None:
        """Keep the Python floats that .item() / .tolist() took from a map (by identity)."""
        stack = [out]
        while stack:
            v = stack.pop()
            if isinstance(v, float):
                self.scalars[id(v)] = (v, f)
            elif isinstance(v, (list, tuple)):
                stack.extend(v)

    def _tainted(self, f: Field, args: tuple, kwargs: dict, name: str) -> Field:
        """`f`, widened by the fields of the maps that Python floats among the arguments were
        taken from: every unit reads such a number (`y * x.mean().item()`)."""
        sources = []
        stack = [args, kwargs]
        while stack:
            v = stack.pop()
            if isinstance(v, float):
                kept = self.scalars.get(id(v))
                if kept is not None and kept[0] is v:
                    sources.append(kept[1])
            elif isinstance(v, (list, tuple)):
                stack.extend(v)
            elif isinstance(v, dict):
                stack.extend(v.values())
        if not sources:
            return f
        note = f"{name}: reads a Python number taken from the map (.item(), .tolist())"
        if f.dims is None or any(
            s.status == UNKNOWN or len(s.axes) != len(f.axes) for s in sources
        ):
            return Field((), f.dims, UNKNOWN, note)
        axes = tuple(
            g.union([a] + [g.broadcast(g.collapse(s.axes[i]), a.size) for s in sources], False)
            for i, a in enumerate(f.axes)
        )
        status = GLOBAL if all(a.mixed for a in axes) else f.status
        return Field(axes, f.dims, status, f.note or note)

    def _fill(
        self,
        name: str,
        args: tuple,
        written: list[torch.Tensor],
        inputs: list,
        value: Optional[Field] = None,
    ) -> None:
        """Fresh tensors (no field) that this op wrote into get the written field, placed
        where it was written (rfcalc.record._placed); their base (the whole canvas) too."""
        if value is None:
            index = _WRITES_VALUE[name]
            source = args[index] if len(args) > index else None
            fields = [fi for t, fi in inputs if t is source]
            others = [fi for t, fi in inputs if t is not source]
            if not fields:
                return  # a constant written into a constant
            value = (
                fields[0]
                if not others
                else Field((), None, UNKNOWN, f"{name}: an index computed from the map")
            )
        for t in written:
            with torch._C.DisableTorchFunction():
                base = t._base if t._base is not None else t
                region: Optional[torch.Tensor] = t
                if name == "setitem":
                    try:
                        region = t[args[1]]
                    except Exception:  # noqa: BLE001 - an index only torch's setitem takes
                        region = None
            if region is None or _storage_key(region) != _storage_key(base):
                f = Field((), None, UNKNOWN, f"{name}: written into a fresh tensor")
            else:
                f = _placed(value, region, base, name)
            frame = self.stack[-1] if self.stack else None
            step = None
            if frame is None or not frame.leaf:
                scope = self._scope()
                step = Step(
                    self._unique(f"{scope}.{name}" if scope else name),
                    name,
                    f,
                    inputs=self.sources(t for t, _ in inputs),
                )
                self._emit(step, [base])
            self.filled.setdefault(_storage_key(base), {})  # read later through any alias
            self.set_field(base, f, step)
            self._written(base, f, step, name)

    # ------------------------------------------------------------------ modules
    def _pre(self, module: nn.Module, args: tuple) -> None:
        path = self.paths.get(module, type(module).__name__.lower())
        leaf = next(iter(module.children()), None) is None
        frame = _Frame(module, path, leaf)
        tensors = [t for t in _tensors(args) if t in self.fields]
        frame.inputs = [self.fields[t] for t in tensors]
        frame.sources = self.sources(tensors)
        self.stack.append(frame)

    def _post(self, module: nn.Module, args: tuple, output: Any) -> None:
        if not self.stack or self.stack[-1].module is not module:
            return
        frame = self.stack.pop()
        if not frame.leaf and frame.inputs and not self._quiet:
            # a module fed maps that returns tensors no recorded op made ran its body where
            # the recorder cannot see (a TorchScript module): they are no constants
            note = f"{frame.path or type(module).__name__}: computed where rfcalc cannot see"
            for t in _tensors(output):
                if t not in self.fields and t not in self.made and id(t) not in self.owned:
                    self.set_field(t, Field((), None, UNKNOWN, note + " (TorchScript?)"), None)
        if not frame.leaf or self._quiet or not frame.inputs:
            return
        outs = list(_tensors(output))
        if not outs:
            return
        n = self.calls.get(module, 0)
        self.calls[module] = n + 1
        # parameters are counted on a module's first call only, so the column sums to the total
        params = 0 if n else sum(p.numel() for p in module.parameters(recurse=False))
        f = self.fields.get(outs[0])
        if f is None:  # computed outside torch (numpy, a C extension): nothing is claimed
            f = Field((), None, UNKNOWN, f"{frame.path}: output not produced by torch ops")
        step = Step(
            self._unique(frame.path or type(module).__name__.lower()),
            type(module).__name__,
            f,
            params,
            _module_window(frame.inner),
            inputs=frame.sources,
            macs=frame.macs,
        )
        self._emit(step, outs)
        for t in outs:
            self.set_field(t, self.fields.get(t, f), step)

    def __enter__(self):
        self._handles = [
            nn.modules.module.register_module_forward_pre_hook(self._pre),
            nn.modules.module.register_module_forward_hook(self._post),
        ]
        self._original_apply = torch.autograd.Function.__dict__["apply"]
        recorder = self

        def apply(cls, *args, **kwargs):
            """A custom autograd.Function: its backward is arbitrary, so nothing is claimed."""
            tensors = [t for t in _tensors((args, kwargs)) if t in recorder.fields]
            inputs = [recorder.fields[t] for t in tensors]
            recorder._quiet += 1
            try:
                out = recorder._original_apply.__get__(None, cls)(*args, **kwargs)
            finally:
                recorder._quiet -= 1
            if inputs and not recorder._quiet:
                outs = list(_tensors(out))
                dims = (
                    inputs[0].dims
                    if outs
                    and inputs[0].dims is not None
                    and outs[0].dim() >= max(-d for d in inputs[0].dims)
                    else None
                )
                f = Field((), dims, UNKNOWN, f"{cls.__name__}: a custom autograd.Function")
                scope = recorder._scope()
                step = Step(
                    recorder._unique(f"{scope}.{cls.__name__}" if scope else cls.__name__),
                    cls.__name__,
                    f,
                    inputs=recorder.sources(tensors),
                )
                recorder._emit(step, outs)
                for t in outs:
                    recorder.set_field(t, f, step)
            return out

        torch.autograd.Function.apply = classmethod(apply)
        self._threads = _watch_threads(self)
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            torch.autograd.Function.apply = self._original_apply
            for owner, attr, original in self._threads:
                setattr(owner, attr, original)
            for handle in self._handles:
                handle.remove()
            self._handles = []


def _watch_threads(recorder: Recording) -> list[tuple[Any, str, Any]]:
    """Work handed to another thread escapes the recorder (its torch-function mode is
    thread-local): starting a thread or submitting to a pool during the forward makes the
    rows from there on unknown. Returns what to put back."""
    import concurrent.futures
    import threading

    patched = []
    for owner, attr in (
        (threading.Thread, "start"),
        (concurrent.futures.ThreadPoolExecutor, "submit"),
    ):
        original = getattr(owner, attr)

        def watched(*args, _original=original, _attr=attr, **kwargs):
            recorder.blind = recorder.blind or (
                f"work in another thread ({_attr} in {recorder.where()}): not followed"
            )
            return _original(*args, **kwargs)

        setattr(owner, attr, watched)
        patched.append((owner, attr, original))
    return patched


def _module_window(inner: list[rules.Outcome]) -> Optional[Window]:
    """A leaf module's window: its last sliding window, with every padding inside it summed
    (nn.Conv2d with padding_mode="reflect" is F.pad, then conv2d with padding 0)."""
    windows = [o.window for o in inner if o.window is not None and o.window.kernel is not None]
    pads = [
        o.window.padding for o in inner if o.window is not None and o.window.padding is not None
    ]
    if not windows and not pads:
        return None
    last = windows[-1] if windows else Window()
    padding = tuple(map(sum, zip(*pads))) if pads else None
    return Window(last.kernel, last.stride, padding, last.dilation)


@dataclass
class Record:
    """What one forward pass left: the steps in order, the output's field, the ops that had
    no rule (name -> how many calls), and the probe and what the model returned (verify
    back-propagates from them)."""

    steps: list[Step]
    output: Optional[Step]
    output_field: Optional[Field]
    unruled: dict[str, int] = dc_field(default_factory=dict)
    probe: Optional[torch.Tensor] = None
    result: Any = None
    # every returned tensor when there are several: (where, its field, the step that made it)
    outputs: list[tuple[str, Optional[Field], Optional[Step]]] = dc_field(default_factory=list)
    model: Optional[nn.Module] = None  # the model that ran (a materialised one, say)
    before: Any = None  # the model's state before the run (rfcalc.crosscheck.capture)


def record(
    model: nn.Module,
    probe: torch.Tensor,
    *,
    keep_tensors: Union[bool, set[str]] = False,
    substitute: Optional[dict[str, Callable]] = None,
) -> Record:
    """Run `model(probe)` once under the recorder. Errors in the forward become RFError."""
    rec = Recording(model, keep_tensors=keep_tensors, substitute=substitute)
    spatial = tuple(probe.shape[2:])
    rec.set_field(probe, input_field(spatial), None)
    try:
        with rec:
            result = model(probe)
    except RFError:
        raise
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else ""
        where = rec.where(user_location(exc.__traceback__))
        # "the model's forward (net.py:9) raised ...", or "block (net.py:9): the forward raised"
        said = "" if where.startswith("the model's forward") else ": the forward"
        raise RFError(
            f"{where}{said} raised {type(exc).__name__}" + (f": {message}" if message else "")
        ) from exc
    outs = list(_tensors(result))
    if rec.exposed:  # returned as written through numpy, with no op after it
        rec._check_exposed(outs)
    out_field = rec.fields.get(outs[0]) if outs else None
    out_step = rec.made_by.get(outs[0]) if outs else None
    labelled = list(labelled_tensors(result))
    outputs = (
        [(where, rec.fields.get(t), rec.made_by.get(t)) for where, t in labelled]
        if len(labelled) > 1
        else []
    )
    return Record(rec.steps, out_step, out_field, dict(rec.unruled), probe, result, outputs, model)


__all__ = ["Step", "Record", "record", "input_field", "EXACT"]
