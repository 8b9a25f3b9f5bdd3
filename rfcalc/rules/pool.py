"""Pooling: max / avg / lp pools and the adaptive pools."""

from __future__ import annotations

from functools import partial

from .. import geometry as g
from ..geometry import Window
from .dispatch import Call, Outcome, ints, placed, rule, spatial_window, with_axes


def pool(call: Call, nd: int, kind: str) -> Outcome:
    """max/avg/lp pools over `nd` spatial dims: kernel, stride (default: kernel), padding,
    dilation, ceil_mode."""
    f = spatial_window(call, nd)
    if kind == "lp":  # lp_pool(input, norm_type, kernel_size, stride, ceil_mode)
        k = ints(call.arg(2, "kernel_size"), nd)
        stride, p, d, ceil = call.arg(3, "stride"), 0, 1, call.arg(4, "ceil_mode", False)
    else:
        k = ints(call.arg(1, "kernel_size"), nd)
        stride = call.arg(2, "stride")
        p = call.arg(3, "padding", 0)
        if kind == "max":
            d, ceil = call.arg(4, "dilation", 1), call.arg(5, "ceil_mode", False)
        else:
            d, ceil = 1, call.arg(4, "ceil_mode", False)
    s = ints(stride, nd) if stride not in (None, (), []) else k
    p, d = ints(p, nd), ints(d, nd)
    axes = tuple(
        g.window(a, ki, si, pi, pi, di, bool(ceil)) for a, ki, si, pi, di in zip(f.axes, k, s, p, d)
    )
    return Outcome(with_axes(call.first, placed(call, axes)), Window(k, s, p, d))


def adaptive_pool(call: Call, nd: int) -> Outcome:
    """Adaptive pools: unit o reads [floor(o·n/N), ceil((o+1)·n/N)); uneven -> APPROX."""
    f = spatial_window(call, nd)
    out = tuple(call.out_tensor.shape[-nd:])
    axes = tuple(g.adaptive(a, n) for a, n in zip(f.axes, out))
    k = tuple(-(-a.size // n) if a.size % n else a.size // n for a, n in zip(f.axes, out))
    s = tuple(a.size // n for a, n in zip(f.axes, out))
    window = Window(k, s, (0,) * nd, (1,) * nd)
    return Outcome(with_axes(call.first, placed(call, axes)), window)


# The catalogue: the ops each rule answers for. Registered by calls rather than
# decorators so that mutation testing (mutmut leaves decorated functions alone)
# reaches the rules' bodies.
for _n in (1, 2, 3):
    rule(f"max_pool{_n}d", f"max_pool{_n}d_with_indices", f"_max_pool{_n}d")(
        partial(pool, nd=_n, kind="max")
    )
    rule(f"avg_pool{_n}d")(partial(pool, nd=_n, kind="avg"))
    rule(f"lp_pool{_n}d")(partial(pool, nd=_n, kind="lp"))
    rule(
        f"adaptive_avg_pool{_n}d", f"adaptive_max_pool{_n}d", f"adaptive_max_pool{_n}d_with_indices"
    )(partial(adaptive_pool, nd=_n))
