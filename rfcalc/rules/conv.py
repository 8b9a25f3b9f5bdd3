"""Convolutions and other sliding windows: conv, transposed conv, Tensor.unfold."""

from __future__ import annotations

from functools import partial

from .. import geometry as g
from ..geometry import Field, NotGeometric, Window
from .dispatch import (
    Call,
    Outcome,
    ints,
    mixed,
    placed,
    plus_arguments,
    positive,
    rule,
    spatial_window,
    with_axes,
)


def conv(call: Call, nd: int) -> Outcome:
    """conv1d/2d/3d over `nd` spatial dims (input, weight, bias, stride, padding, dilation,
    groups)."""
    f = spatial_window(call, nd)
    k = tuple(call.arg(1, "weight").shape[2:])
    s = ints(call.arg(3, "stride", 1), nd)
    d = ints(call.arg(5, "dilation", 1), nd)
    p = call.arg(4, "padding", 0)
    if isinstance(p, str):
        if p == "valid":
            lo = hi = (0,) * nd
        else:  # "same": PyTorch puts the odd pixel of an even total on the right
            total = [di * (ki - 1) for di, ki in zip(d, k)]
            lo = tuple(t // 2 for t in total)
            hi = tuple(t - t // 2 for t in total)
    else:
        lo = hi = ints(p, nd)
    axes = tuple(
        g.window(a, ki, si, pl, ph, di) for a, ki, si, pl, ph, di in zip(f.axes, k, s, lo, hi, d)
    )
    field = plus_arguments(call, with_axes(call.first, placed(call, axes)))
    return Outcome(field, Window(k, s, lo, d))


def conv_transpose(call: Call, nd: int) -> Outcome:
    """conv_transpose1d/2d/3d over `nd` spatial dims (input, weight, bias, stride, padding,
    output_padding, groups, dilation): the jump shrinks by the stride."""
    f = spatial_window(call, nd)
    k = tuple(call.arg(1, "weight").shape[2:])
    s = ints(call.arg(3, "stride", 1), nd)
    p = ints(call.arg(4, "padding", 0), nd)
    op = ints(call.arg(5, "output_padding", 0), nd)
    d = ints(call.arg(7, "dilation", 1), nd)
    axes = tuple(
        g.transposed(a, ki, si, pi, di, oi) for a, ki, si, pi, di, oi in zip(f.axes, k, s, p, d, op)
    )
    field = plus_arguments(call, with_axes(call.first, placed(call, axes)))
    return Outcome(field, Window(k, s, p, d))


def tensor_unfold(call: Call) -> Outcome:
    """x.unfold(dim, size, step): windows of `size` along `dim`, every window's elements in a
    new last dim. Summed over that dim (as a channel), a unit is a window of k=size, s=step."""
    f = call.first
    ndim = call.first_tensor.dim()
    dim, size, step = (int(call.arg(i, k)) for i, k in ((1, "dimension"), (2, "size"), (3, "step")))
    if f.dims is None:
        return Outcome(f)
    pos = positive(f.dims, ndim)
    dim %= ndim
    dims = tuple(d - 1 for d in f.dims)  # one new dim at the end
    if dim not in pos:
        return Outcome(Field(f.axes, dims, f.status, f.note))
    i = pos.index(dim)
    axes = tuple(g.window(a, size, step) if j == i else a for j, a in enumerate(f.axes))
    k = tuple(size if j == i else 1 for j in range(len(f.axes)))
    s = tuple(step if j == i else 1 for j in range(len(f.axes)))
    return Outcome(with_axes(f, axes, dims), Window(k, s, (0,) * len(k), (1,) * len(k)))


def _window_args(call: Call, at: int, nd: int):
    k = ints(call.arg(at, "kernel_size"), nd)
    d = ints(call.arg(at + 1, "dilation", 1), nd)
    p = ints(call.arg(at + 2, "padding", 0), nd)
    s = ints(call.arg(at + 3, "stride", 1), nd)
    return k, d, p, s


def im2col(call: Call) -> Outcome:
    """F.unfold(input, kernel_size, dilation, padding, stride): every window's pixels become
    channels and the windows one flat dim. The fields are those of a conv with that window;
    the map is flattened (F.fold with the same window puts it back)."""
    f = spatial_window(call, len(call.first.axes))
    nd = len(f.axes)
    if nd != 2:
        raise NotGeometric("F.unfold of a map that is not 2-D")
    k, d, p, s = _window_args(call, 1, nd)
    axes = placed(
        call,
        tuple(g.window(a, ki, si, pi, pi, di) for a, ki, si, pi, di in zip(f.axes, k, s, p, d)),
    )
    windows = with_axes(call.first, axes)
    flat = mixed(windows, "unfold: the windows are flattened into one dim", keep_dims=False)
    size = tuple(a.size for a in windows.axes)
    # entries still apart: F.fold with the same window puts every pixel back in its place
    return Outcome(
        Field(
            flat.axes,
            None,
            flat.status,
            flat.note,
            packed=("unfold", (k, d, p, s), size, call.first, windows),
        ),
        Window(k, s, p, d),
    )


def col2im(call: Call) -> Outcome:
    """F.fold(input, output_size, kernel_size, dilation, padding, stride): every window's
    entries are summed back into place. Straight after F.unfold with the same window (only
    element-wise ops between) each pixel gets back its own values: the field before the
    unfold. After the entries were mixed (a weight @ the columns), each output pixel reads
    every window holding it: a transposed window over the windows."""
    packed = call.first.packed
    if call.first.dims is not None or packed is None or packed[0] not in ("unfold", "cols"):
        raise NotGeometric(
            "F.fold of a tensor that is not (a layout-keeping function of) the output of F.unfold"
        )
    k, d, p, s = _window_args(call, 2, 2)
    out = tuple(call.out_tensor.shape[-2:])
    if packed[0] == "unfold":
        before = packed[3]
        if packed[1] != (k, d, p, s) or tuple(a.size for a in before.axes) != out:
            raise NotGeometric("F.fold with another window than its F.unfold")
        return Outcome(_refolded(before, packed[2], k, d, p, s), Window(k, s, p, d))
    f = packed[4]
    axes = []
    for a, ki, di, pi, si, n in zip(f.axes, k, d, p, s, out):
        t = g.transposed(a, ki, si, pi, di, 0)
        if t.size != n:  # output_padding: the folded map is larger than the windows reach
            t = g.transposed(a, ki, si, pi, di, n - t.size)
        axes.append(t)
    return Outcome(Field(tuple(axes), f.dims, f.status, f.note), Window(k, s, p, d))


def _refolded(before: Field, windows: tuple, k, d, p, s) -> Field:
    """The field F.fold gives back after F.unfold with the same window: each pixel its own,
    except pixels no window covered (a stride or dilation that skips them), which get 0."""
    axes = []
    for i, (a, dim) in enumerate(zip(before.axes, before.dims)):
        j = dim % 2  # the window is given per tensor dim (H, W); `windows` per axis
        covered = {o * s[j] - p[j] + t * d[j] for o in range(windows[i]) for t in range(k[j])}
        if covered.issuperset(range(a.size)):
            axes.append(a)
        else:
            axes.append(g.gather(a, [[i] if i in covered else [] for i in range(a.size)], a))
    if all(x is y for x, y in zip(axes, before.axes)):
        return before
    note = before.note or "fold: pixels no window of the unfold covered get nothing back"
    return Field(tuple(axes), before.dims, before.status, note)


# The catalogue: the ops each rule answers for. Registered by calls rather than
# decorators so that mutation testing (mutmut leaves decorated functions alone)
# reaches the rules' bodies.
for _n in (1, 2, 3):
    rule(f"conv{_n}d")(partial(conv, nd=_n))
    rule(f"conv_transpose{_n}d")(partial(conv_transpose, nd=_n))
rule("Tensor.unfold")(tensor_unfold)
rule("F.unfold")(im2col)
rule("F.fold")(col2im)
