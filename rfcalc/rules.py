"""One rule per op: how a torch function changes the field of the tensors it reads.

A rule gets the `Call` (the function's canonical name, its arguments, the fields of the
field-carrying tensors among them, and the result) and returns an `Outcome`: the new field,
plus the kernel/stride/padding/dilation to show for window ops. Supporting a new op is one
`@rule("name")` function here and one test. Ops without a rule make their output UNKNOWN.
"""
from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from fractions import Fraction
from typing import Any, Callable, Optional

import torch

from . import geometry as g
from .geometry import EXACT, GLOBAL, UNKNOWN, Field, NotGeometric

Ints = Optional[tuple[int, ...]]


@dataclass
class Call:
    """One executed torch function as the rules see it."""

    name: str                                    # canonical name: "conv2d", "add", "getitem"
    args: tuple
    kwargs: dict
    inputs: list[tuple[torch.Tensor, Field]]     # field-carrying tensors, in argument order
    out: Any                                     # what the function returned

    def arg(self, index: int, key: str, default: Any = None) -> Any:
        """The argument given by position `index` or keyword `key`."""
        if key in self.kwargs:
            return self.kwargs[key]
        return self.args[index] if len(self.args) > index else default

    @property
    def first(self) -> Field:
        return self.inputs[0][1]

    @property
    def first_tensor(self) -> torch.Tensor:
        return self.inputs[0][0]

    @property
    def out_tensor(self) -> torch.Tensor:
        out = self.out
        while isinstance(out, (tuple, list)):
            out = out[0]
        return out


@dataclass(frozen=True)
class Outcome:
    """A rule's answer: the output's field and, for window ops, the window to show."""

    field: Field
    kernel: Ints = None
    stride: Ints = None
    padding: Ints = None
    dilation: Ints = None
    alias: bool = False      # a layout no-op (contiguous, to, ...): propagates, gets no row
    extra: dict = dc_field(default_factory=dict)


Rule = Callable[[Call], Outcome]
RULES: dict[str, Rule] = {}


def rule(*names: str) -> Callable[[Rule], Rule]:
    """Register a rule under one or more canonical op names."""
    def register(fn: Rule) -> Rule:
        for name in names:
            RULES[name] = fn
        return fn
    return register


_BINARY = {"add", "sub", "mul", "div", "truediv", "floordiv", "mod", "pow", "matmul", "and",
           "or", "xor", "lshift", "rshift"}


def canonical(func: Callable) -> str:
    """The rule key of a torch function or Tensor method: `__radd__`, `add_` -> `add`."""
    name = getattr(func, "__name__", "") or ""
    if name == "__get__":  # a Tensor property such as .data or .T
        return "get_" + getattr(getattr(func, "__self__", None), "__name__", "?")
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        if name[:1] in "ri" and name[1:] in _BINARY:
            name = name[1:]
    elif name.endswith("_") and not name.startswith("_"):
        name = name[:-1]  # in-place variant
    return {"truediv": "div", "concat": "cat", "concatenate": "cat", "swapaxes": "transpose",
            "swapdims": "transpose", "moveaxis": "movedim", "clip": "clamp"}.get(name, name)


def lookup(name: str) -> Optional[Rule]:
    """The rule for a canonical op name, or None (then the output is UNKNOWN)."""
    found = RULES.get(name)
    if found is None and _aten_pointwise(name):
        return pointwise
    return found


def _aten_pointwise(name: str) -> bool:
    """Whether ATen tags the op `pointwise` (each output element reads the same position)."""
    op = getattr(torch.ops.aten, name, None) if name.isidentifier() else None
    if op is None or not hasattr(op, "overloads"):
        return False
    try:
        return any(torch.Tag.pointwise in getattr(op, o).tags for o in op.overloads())
    except (AttributeError, RuntimeError):
        return False


# ---------------------------------------------------------------- helpers

def _unknown(call: Call, why: str) -> Outcome:
    dims = call.first.dims if call.inputs else None
    return Outcome(Field((), _same_dims(call, dims), UNKNOWN, f"{call.name}: {why}"))


def _same_dims(call: Call, dims: Optional[tuple[int, ...]]) -> Optional[tuple[int, ...]]:
    out = call.out_tensor
    if dims is None or not isinstance(out, torch.Tensor) or out.dim() < len(dims) \
            or any(-d > out.dim() for d in dims):
        return None
    return dims


def _positive(dims: tuple[int, ...], ndim: int) -> tuple[int, ...]:
    return tuple(d % ndim for d in dims)


def _tuple(value: Any, n: int) -> tuple[int, ...]:
    if isinstance(value, (list, tuple, torch.Size)):
        value = tuple(int(v) for v in value)
        return value * n if len(value) == 1 and n > 1 else value
    return (int(value),) * n


def _global(field_: Field, note: str, dims: Optional[tuple[int, ...]] = None,
            spread: bool = False) -> Field:
    """The field once positions are mixed: every unit sees the whole map."""
    if field_.status == UNKNOWN:
        return field_
    axes = tuple(g.spread(a) if spread else g.collapse(a) for a in field_.axes)
    keep_note = field_.note if field_.status == GLOBAL else note
    return Field(axes, dims if spread else None, GLOBAL, keep_note)


def _with(field_: Field, axes: tuple[g.Axis, ...], dims: Optional[tuple[int, ...]] = None) -> Field:
    return Field(axes, field_.dims if dims is None else dims, field_.status, field_.note)


def _spatial_window(call: Call, nd: int) -> tuple[Field, tuple[int, ...]]:
    """The input field, checked to have its `nd` axes in the op's last `nd` dims."""
    f = call.first
    if f.status == UNKNOWN:
        raise _Passthrough
    if f.dims != tuple(range(-nd, 0)):
        raise NotGeometric(f"the op's {nd} window dims are not the map's spatial dims {f.dims}")
    return f, tuple(call.first_tensor.shape[-nd:])


class _Passthrough(Exception):
    """The input is already UNKNOWN: the output stays UNKNOWN whatever the op."""


def apply(call: Call) -> Outcome:
    """Run the op's rule; no rule, or no exact description, gives an UNKNOWN outcome."""
    fn = lookup(call.name)
    if fn is None:
        if all(f.status == GLOBAL for _, f in call.inputs) and call.inputs:
            return Outcome(call.first)  # already global: nothing can widen it further
        return _unknown(call, "no rule for this op")
    try:
        return fn(call)
    except _Passthrough:
        bad = next(f for _, f in call.inputs if f.status == UNKNOWN)
        return Outcome(Field((), _same_dims(call, bad.dims), UNKNOWN, bad.note))
    except NotGeometric as exc:
        if call.inputs and all(f.status == GLOBAL for _, f in call.inputs):
            # every unit already sees the whole map: no op can make that less true
            f = call.first
            return Outcome(Field(f.axes, _same_dims(call, f.dims), GLOBAL, f.note))
        return _unknown(call, str(exc))


# ---------------------------------------------------------------- element-wise and merges

_NO_CHANGE = ("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
              "feature_alpha_dropout", "hardswish", "prelu", "rrelu", "logsigmoid", "softsign",
              "tanhshrink", "softshrink", "hardshrink", "relu6", "silu", "mish", "gelu",
              "hardsigmoid", "local_response_norm", "channel_shuffle", "native_channel_shuffle",
              "expand", "expand_as", "broadcast_to", "masked_fill", "type_as", "bernoulli")
_ALIASES = ("contiguous", "clone", "detach", "to", "float", "double", "half", "bfloat16",
            "type", "cpu", "cuda", "requires_grad", "get_data", "coalesce")


@rule("pointwise", *_NO_CHANGE)
def pointwise(call: Call) -> Outcome:
    """Each output element reads the same position of every input: the union of the fields.

    A size-1 map broadcast over a larger one (a pooled gate) gives every unit the same field:
    GLOBAL. Broadcasting that makes no geometric sense is UNKNOWN.
    """
    out = call.out_tensor
    fields = [f for _, f in call.inputs]
    globals_ = [f for f in fields if f.status == GLOBAL]
    if any(f.status == UNKNOWN for f in fields):
        if not globals_:
            raise _Passthrough
        fields = globals_
    if len({f.dims for f in fields}) > 1:
        if globals_ and all(f.dims is None for f in globals_):
            return Outcome(_global(globals_[0], globals_[0].note))
        raise NotGeometric("the merged tensors keep their maps in different dims")
    dims = fields[0].dims
    if dims is None:
        axes = tuple(g.union([g.collapse(f.axes[i]) for f in fields])
                     for i in range(len(fields[0].axes)))
        status = GLOBAL if globals_ else EXACT
        note = globals_[0].note if globals_ else ""
        return Outcome(Field(axes, None, status, note))
    if out.dim() < max(-d for d in dims):
        raise NotGeometric("the output has fewer dims than the map")
    sizes = [out.shape[d] for d in dims]
    broadcast = False
    per_axis: list[list[g.Axis]] = [[] for _ in dims]
    for f in fields:
        for i, (a, n) in enumerate(zip(f.axes, sizes)):
            if a.size != n:
                a = g.broadcast(a, n)
                broadcast = True
            per_axis[i].append(a)
    axes = tuple(g.union(group) for group in per_axis)
    if globals_:
        return Outcome(Field(axes, dims, GLOBAL, globals_[0].note))
    if broadcast:
        return Outcome(Field(axes, dims, GLOBAL,
                             f"{call.name}: one unit's field is spread over the whole map"))
    return Outcome(Field(axes, dims))


@rule(*_ALIASES)
def alias(call: Call) -> Outcome:
    """Same values, maybe another dtype or device: the field travels on, without a row."""
    return Outcome(call.first, alias=True)


@rule("cat")
def cat(call: Call) -> Outcome:
    """Concatenation of channels: the union of the fields (along a spatial axis: UNKNOWN)."""
    out = call.out_tensor
    dim = int(call.arg(1, "dim", 0)) % out.dim()
    for _, f in call.inputs:
        if f.dims is not None and dim in _positive(f.dims, out.dim()):
            raise NotGeometric("concatenation along a spatial axis")
    return pointwise(call)


@rule("stack")
def stack(call: Call) -> Outcome:
    """Stacking along a new dim in front of the map keeps the fields' (negative) dims."""
    out = call.out_tensor
    dim = int(call.arg(1, "dim", 0)) % out.dim()
    dims = call.first.dims
    if dims is not None and dim > min(_positive(dims, out.dim())):
        raise NotGeometric("stacking inside the spatial dims")
    return pointwise(call)


# ---------------------------------------------------------------- windows

def _conv(nd: int) -> Rule:
    def conv(call: Call) -> Outcome:
        """conv{nd}d(input, weight, bias, stride, padding, dilation, groups)."""
        f, sizes = _spatial_window(call, nd)
        k = tuple(call.arg(1, "weight").shape[2:])
        s = _tuple(call.arg(3, "stride", 1), nd)
        d = _tuple(call.arg(5, "dilation", 1), nd)
        p = call.arg(4, "padding", 0)
        if isinstance(p, str):
            if p == "valid":
                lo = hi = (0,) * nd
            else:  # "same": PyTorch puts the odd pixel of an even total on the right
                total = [di * (ki - 1) for di, ki in zip(d, k)]
                lo = tuple(t // 2 for t in total)
                hi = tuple(t - t // 2 for t in total)
        else:
            lo = hi = _tuple(p, nd)
        axes = tuple(g.window(a, ki, si, pl, ph, di)
                     for a, ki, si, pl, ph, di in zip(f.axes, k, s, lo, hi, d))
        return Outcome(_with(f, axes), k, s, lo, d)
    return conv


def _pool(nd: int, kind: str) -> Rule:
    def pool(call: Call) -> Outcome:
        """max/avg/lp pools: kernel, stride (default: kernel), padding, dilation, ceil_mode."""
        f, sizes = _spatial_window(call, nd)
        if kind == "lp":  # lp_pool(input, norm_type, kernel_size, stride, ceil_mode)
            k = _tuple(call.arg(2, "kernel_size"), nd)
            stride, p, d, ceil = call.arg(3, "stride"), 0, 1, call.arg(4, "ceil_mode", False)
        else:
            k = _tuple(call.arg(1, "kernel_size"), nd)
            stride = call.arg(2, "stride")
            p = call.arg(3, "padding", 0)
            if kind == "max":
                d, ceil = call.arg(4, "dilation", 1), call.arg(5, "ceil_mode", False)
            else:
                d, ceil = 1, call.arg(4, "ceil_mode", False)
        s = _tuple(stride, nd) if stride not in (None, (), []) else k
        p, d = _tuple(p, nd), _tuple(d, nd)
        axes = tuple(g.window(a, ki, si, pi, pi, di, bool(ceil))
                     for a, ki, si, pi, di in zip(f.axes, k, s, p, d))
        return Outcome(_with(f, axes), k, s, p, d)
    return pool


def _conv_transpose(nd: int) -> Rule:
    def conv_transpose(call: Call) -> Outcome:
        """conv_transpose{nd}d(input, weight, bias, stride, padding, output_padding, groups,
        dilation): the jump shrinks by the stride."""
        f, sizes = _spatial_window(call, nd)
        k = tuple(call.arg(1, "weight").shape[2:])
        s = _tuple(call.arg(3, "stride", 1), nd)
        p = _tuple(call.arg(4, "padding", 0), nd)
        op = _tuple(call.arg(5, "output_padding", 0), nd)
        d = _tuple(call.arg(7, "dilation", 1), nd)
        axes = tuple(g.transposed(a, ki, si, pi, di, oi)
                     for a, ki, si, pi, di, oi in zip(f.axes, k, s, p, d, op))
        return Outcome(_with(f, axes), k, s, p, d)
    return conv_transpose


def _adaptive(nd: int) -> Rule:
    def adaptive(call: Call) -> Outcome:
        """Adaptive pools: unit o reads [floor(o·n/N), ceil((o+1)·n/N)); uneven -> APPROX."""
        f, sizes = _spatial_window(call, nd)
        out = tuple(call.out_tensor.shape[-nd:])
        axes = tuple(g.adaptive(a, n) for a, n in zip(f.axes, out))
        k = tuple(-(-a.size // n) if a.size % n else a.size // n for a, n in zip(f.axes, out))
        s = tuple(a.size // n for a, n in zip(f.axes, out))
        return Outcome(_with(f, axes), k, s, (0,) * nd, (1,) * nd)
    return adaptive


for _n in (1, 2, 3):
    rule(f"conv{_n}d")(_conv(_n))
    rule(f"conv_transpose{_n}d")(_conv_transpose(_n))
    rule(f"max_pool{_n}d", f"max_pool{_n}d_with_indices", f"_max_pool{_n}d")(_pool(_n, "max"))
    rule(f"avg_pool{_n}d")(_pool(_n, "avg"))
    rule(f"lp_pool{_n}d")(_pool(_n, "lp"))
    rule(f"adaptive_avg_pool{_n}d", f"adaptive_max_pool{_n}d",
         f"adaptive_max_pool{_n}d_with_indices")(_adaptive(_n))


@rule("pad")
def pad(call: Call) -> Outcome:
    """F.pad: padding shifts the start and grows the map; negative padding crops."""
    f = call.first
    if f.status == UNKNOWN:
        raise _Passthrough
    widths = list(call.arg(1, "pad"))
    ndim = call.first_tensor.dim()
    lo_hi: dict[int, tuple[int, int]] = {}
    for i in range(len(widths) // 2):  # pairs run from the last dim backwards
        lo_hi[ndim - 1 - i] = (int(widths[2 * i]), int(widths[2 * i + 1]))
    if f.dims is None:
        return Outcome(f)
    pos = _positive(f.dims, ndim)
    axes = tuple(g.window(a, 1, 1, *lo_hi.get(d, (0, 0))) for a, d in zip(f.axes, pos))
    return Outcome(_with(f, axes), padding=tuple(lo_hi.get(d, (0, 0))[0] for d in pos))


@rule("interpolate", "upsample")
def interpolate(call: Call) -> Outcome:
    """F.interpolate: nearest / nearest-exact / (bi/tri)linear / bicubic / area sampling."""
    out = call.out_tensor
    nd = out.dim() - 2
    f, sizes = _spatial_window(call, nd)
    mode = call.arg(3, "mode", "nearest")
    align = bool(call.arg(4, "align_corners", False))
    scale_factor = call.arg(2, "scale_factor")
    if call.arg(6, "antialias", False):
        raise NotGeometric("antialiased resampling widens the kernel")
    recompute = call.arg(5, "recompute_scale_factor")
    new = tuple(out.shape[-nd:])
    if mode == "area":
        return Outcome(_with(f, tuple(g.adaptive(a, n) for a, n in zip(f.axes, new))))
    factors = _tuple(scale_factor, nd) if scale_factor is not None and not recompute \
        else (None,) * nd
    axes = []
    for a, n, sf in zip(f.axes, new, factors):
        if n == a.size:
            axes.append(a)
            continue
        # PyTorch samples at o·scale (+ offsets), with scale = 1/scale_factor when given
        if mode in ("nearest", "nearest-exact") or not align:
            scale = (1 / Fraction(sf).limit_denominator(1 << 10)) if sf else Fraction(a.size, n)
        else:
            scale = Fraction(a.size - 1, n - 1) if n > 1 else Fraction(0)
        if mode == "nearest":
            axes.append(g.interpolate(a, n, scale, Fraction(0), linear=False))
        elif mode == "nearest-exact":
            axes.append(g.interpolate(a, n, scale, scale / 2, linear=False))
        elif mode in ("linear", "bilinear", "trilinear", "bicubic"):
            offset = Fraction(0) if align else scale / 2 - Fraction(1, 2)
            ax = g.interpolate(a, n, scale, offset, linear=True)
            if mode == "bicubic":  # 4 taps: one more unit on each side (none at whole src)
                ax = _widen_cubic(a, n, scale, offset)
            axes.append(ax)
        else:
            raise NotGeometric(f"unknown interpolation mode {mode!r}")
    return Outcome(_with(f, tuple(axes)))


def _widen_cubic(a: g.Axis, n: int, scale: Fraction, offset: Fraction) -> g.Axis:
    def taps(o: int) -> tuple[int, int]:
        src = o * scale + offset
        first = src.numerator // src.denominator
        return (first, first) if src == first else (first - 1, first + 2)
    return g.resample(a, n, scale.numerator, scale.denominator, taps)


# ---------------------------------------------------------------- normalisation, softmax

def _spread_if(call: Call, spatial: bool, note: str) -> Outcome:
    f = call.first
    if f.status == UNKNOWN:
        raise _Passthrough
    if not spatial or f.dims is None:
        return Outcome(f)
    return Outcome(_global(f, f"{call.name}: {note}", f.dims, spread=True))


@rule("batch_norm")
def batch_norm(call: Call) -> Outcome:
    """Running statistics (eval): per channel, no change. Batch statistics: the whole map."""
    training = call.arg(5, "training", False) or call.arg(1, "running_mean") is None
    return _spread_if(call, bool(training), "batch statistics are taken over the whole map")


@rule("instance_norm")
def instance_norm(call: Call) -> Outcome:
    """Instance statistics are taken over the whole map of each channel."""
    use_input = call.arg(5, "use_input_stats", True) or call.arg(1, "running_mean") is None
    return _spread_if(call, bool(use_input), "statistics are taken over the whole map")


@rule("group_norm")
def group_norm(call: Call) -> Outcome:
    """GroupNorm's statistics cover each group's channels *and* the whole map."""
    return _spread_if(call, True, "statistics are taken over the whole map")


@rule("layer_norm", "rms_norm")
def layer_norm(call: Call) -> Outcome:
    """Normalising over channels only (channels-last) is per position; over H, W it is global."""
    shape = call.arg(1, "normalized_shape")
    ndim = call.first_tensor.dim()
    normed = set(range(ndim - len(_tuple(shape, 1) if not isinstance(shape, int) else (shape,)),
                       ndim))
    dims = call.first.dims
    spatial = dims is not None and bool(normed & set(_positive(dims, ndim)))
    return _spread_if(call, spatial, "normalised over the spatial dims")


@rule("softmax", "log_softmax", "softmin", "glu", "cumsum", "cumprod", "normalize")
def along_dim(call: Call) -> Outcome:
    """Ops along one dim: per position when it is a channel dim, else the whole axis."""
    ndim = call.first_tensor.dim()
    default = 1 if call.name == "normalize" else -1
    dim = call.arg(2 if call.name == "normalize" else 1, "dim", default)
    if dim is None:
        raise NotGeometric("implicit softmax dim")
    dims = call.first.dims
    spatial = dims is not None and int(dim) % ndim in _positive(dims, ndim)
    if spatial and call.name in ("glu", "cumsum", "cumprod"):
        raise NotGeometric(f"{call.name} along a spatial dim")
    return _spread_if(call, spatial, "computed along a spatial dim")


# ---------------------------------------------------------------- shape ops

def _reshaped(call: Call, note: str) -> Outcome:
    """view/reshape/flatten/squeeze: keep the map if its trailing dims survive unchanged."""
    f = call.first
    if f.status == UNKNOWN:
        raise _Passthrough
    src, out = call.first_tensor, call.out_tensor
    if f.dims is None:
        n = len(f.axes)
        if n and out.dim() >= n + 1 and all(out.shape[d] == 1 for d in range(-n, 0)) \
                and all(a.size == 1 for a in f.axes):
            # a pooled vector viewed back as a 1x1 map (an SE gate): the map is back
            return Outcome(Field(f.axes, tuple(range(-n, 0)), f.status, f.note))
        return Outcome(f)
    m = max(-d for d in f.dims)
    if out.dim() >= m and tuple(src.shape[-m:]) == tuple(out.shape[-m:]):
        return Outcome(f)
    if all(a.size == 1 for a in f.axes):  # a 1x1 map: nothing mixes, the field lives on
        return Outcome(Field(f.axes, None, f.status, f.note))
    return Outcome(_global(f, f"{call.name}: {note}"))


@rule("view", "reshape", "flatten", "view_as", "reshape_as", "squeeze", "unsqueeze",
      "unflatten", "ravel")
def reshape(call: Call) -> Outcome:
    return _reshaped(call, "the spatial map is flattened, per-position fields end here")


@rule("permute", "transpose", "movedim", "get_T", "get_mT", "t")
def permute(call: Call) -> Outcome:
    """Reordering dims moves the map with them."""
    f = call.first
    if f.status == UNKNOWN:
        raise _Passthrough
    if f.dims is None:
        return Outcome(f)
    ndim = call.first_tensor.dim()
    order = list(range(ndim))
    if call.name == "permute":
        rest = call.args[1:] or (call.kwargs.get("dims"),)
        perm = rest[0] if len(rest) == 1 and isinstance(rest[0], (list, tuple)) else rest
        order = [int(p) % ndim for p in perm]
    elif call.name in ("transpose", "t", "get_T", "get_mT"):
        if call.name == "transpose":
            a, b = int(call.arg(1, "dim0")) % ndim, int(call.arg(2, "dim1")) % ndim
        else:
            a, b = (ndim - 2, ndim - 1) if ndim >= 2 else (0, 0)
            if call.name == "get_T":
                order = order[::-1]
        if call.name != "get_T":
            order[a], order[b] = order[b], order[a]
    else:  # movedim(source, destination)
        src, dst = call.arg(1, "source"), call.arg(2, "destination")
        src = [int(s) % ndim for s in (src if isinstance(src, (list, tuple)) else [src])]
        dst = [int(d) % ndim for d in (dst if isinstance(dst, (list, tuple)) else [dst])]
        rest = [d for d in range(ndim) if d not in src]
        order = [None] * ndim
        for s_, d_ in zip(src, dst):
            order[d_] = s_
        it = iter(rest)
        order = [o if o is not None else next(it) for o in order]
    where = {old: new for new, old in enumerate(order)}
    dims = tuple(where[d] - ndim for d in _positive(f.dims, ndim))
    return Outcome(Field(f.axes, dims, f.status, f.note))


@rule("getitem")
def getitem(call: Call) -> Outcome:
    """Basic indexing: batch/channel selections keep the map, spatial slices crop it."""
    f = call.first
    if f.status == UNKNOWN:
        raise _Passthrough
    src = call.first_tensor
    index = call.args[1]
    index = index if isinstance(index, tuple) else (index,)
    if any(i is None or isinstance(i, (torch.Tensor, list, bool)) for i in index):
        raise NotGeometric("advanced indexing")
    if f.dims is None:
        return Outcome(f)
    ndim = src.dim()
    if index.count(Ellipsis) > 1:
        raise NotGeometric("several ellipses")
    if Ellipsis in index:
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (ndim - len(index) + 1) + index[at + 1:]
    index = index + (slice(None),) * (ndim - len(index))
    pos = _positive(f.dims, ndim)
    axes = []
    for d, item in enumerate(index):
        if d in pos:
            if not isinstance(item, slice):
                raise NotGeometric("an integer index removes a spatial dim")
            a = f.axes[pos.index(d)]
            start, stop, step = item.indices(a.size)
            if step < 1:
                raise NotGeometric("negative step")
            size = max(0, -(-(stop - start) // step))
            if size < 1:
                raise NotGeometric("empty slice of the map")
            # a crop is a window of 1 with stride `step` and padding -start
            axes.append(g.resample(a, size, step, 1, lambda o, s=start, t=step: (o * t + s,) * 2))
    dims = tuple(d for d in f.dims)  # negative dims are unchanged by indexing in front
    if any(not isinstance(item, slice) for d, item in enumerate(index) if d > min(pos)):
        raise NotGeometric("an integer index after the spatial dims")
    return Outcome(Field(tuple(axes), dims, f.status, f.note))


@rule("chunk", "split", "unbind", "tensor_split", "split_with_sizes")
def split(call: Call) -> Outcome:
    """Splitting channels: every piece keeps the field (along a spatial axis: UNKNOWN)."""
    f = call.first
    if f.status == UNKNOWN:
        raise _Passthrough
    ndim = call.first_tensor.dim()
    default = 0
    dim = int(call.arg(1 if call.name == "unbind" else 2, "dim", default)) % ndim
    if f.dims is not None and dim in _positive(f.dims, ndim):
        raise NotGeometric("split along a spatial axis")
    if call.name == "unbind" and f.dims is not None and dim > min(_positive(f.dims, ndim)):
        raise NotGeometric("unbind after the spatial dims")
    return Outcome(f)


_REDUCTIONS = ("mean", "sum", "amax", "amin", "max", "min", "std", "var", "prod", "norm",
               "logsumexp", "nansum", "nanmean", "median", "any", "all", "argmax", "argmin",
               "count_nonzero", "std_mean", "var_mean")


@rule(*_REDUCTIONS)
def reduction(call: Call) -> Outcome:
    """Reducing over the spatial dims pools the whole map into one unit (exact window);
    `max(a, b)` with two tensors is element-wise."""
    if len(call.inputs) > 1 or isinstance(call.arg(1, "dim"), torch.Tensor) \
            or isinstance(call.kwargs.get("other"), torch.Tensor):
        return pointwise(call)
    f = call.first
    if f.status == UNKNOWN:
        raise _Passthrough
    ndim = call.first_tensor.dim()
    dim = call.arg(1, "dim")
    if call.name == "norm":
        dim = call.arg(2, "dim")
    keep = bool(call.kwargs.get("keepdim", call.args[2] if len(call.args) > 2
                                and isinstance(call.args[2], bool) else False))
    if f.dims is None:
        return Outcome(f)
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        reduced = set(range(ndim))
    else:
        reduced = {int(d) % ndim for d in (dim if isinstance(dim, (list, tuple)) else [dim])}
    pos = _positive(f.dims, ndim)
    hit = reduced & set(pos)
    if not hit:
        if keep or all(r < min(pos) for r in reduced):
            return Outcome(f)
        new = [p - sum(1 for r in reduced if r < p) for p in pos]
        out_ndim = ndim - len(reduced)
        return Outcome(Field(f.axes, tuple(p - out_ndim for p in new), f.status, f.note))
    axes = tuple(g.collapse(a) if p in hit else a for a, p in zip(f.axes, pos))
    if keep:
        return Outcome(Field(axes, f.dims, f.status, f.note))
    if hit == set(pos):
        return Outcome(Field(axes, None, f.status, f.note))
    return Outcome(_global(f, f"{call.name}: part of the map is reduced away"))


# ---------------------------------------------------------------- mixing ops

@rule("linear", "bilinear")
def linear(call: Call) -> Outcome:
    """Linear mixes its last dim: the whole map when that is spatial, else per position."""
    f = call.first
    if f.status == UNKNOWN:
        raise _Passthrough
    if f.dims is None:
        return Outcome(f)
    if -1 in f.dims:
        return Outcome(_global(f, f"{call.name}: mixes every position of the map"))
    return Outcome(f)


@rule("matmul", "bmm", "mm", "einsum", "baddbmm", "addmm", "tensordot")
def matmul(call: Call) -> Outcome:
    """A product with constant weights over a channel dim is per position; anything else
    (attention's q·kᵀ, products over positions) mixes the whole map."""
    f = call.first
    if len(call.inputs) == 1 and call.name in ("matmul", "mm") and call.args \
            and call.args[0] is call.first_tensor and (f.dims is None or -1 not in f.dims):
        if f.status == UNKNOWN:
            raise _Passthrough
        return Outcome(f)
    known = [fi for _, fi in call.inputs if fi.status != UNKNOWN]
    if not known:
        raise _Passthrough
    return Outcome(_global(known[0], f"{call.name}: a product across positions"))


@rule("scaled_dot_product_attention", "multi_head_attention_forward")
def attention(call: Call) -> Outcome:
    """Attention lets every position read every other."""
    known = [fi for _, fi in call.inputs if fi.status != UNKNOWN]
    if not known:
        raise _Passthrough
    return Outcome(_global(known[0], f"{call.name}: attention reads every position"))


@rule("repeat")
def repeat(call: Call) -> Outcome:
    """Tiling channels keeps the map; tiling a spatial dim is not geometric."""
    f = call.first
    reps = call.args[1:]
    reps = tuple(reps[0]) if len(reps) == 1 and isinstance(reps[0], (list, tuple)) else reps
    out = call.out_tensor
    if f.dims is not None and any(out.shape[d] != call.first_tensor.shape[d] for d in f.dims):
        raise NotGeometric("repeat tiles the spatial map")
    return Outcome(f)


__all__ = ["Call", "Outcome", "RULES", "rule", "lookup", "apply", "canonical"]
