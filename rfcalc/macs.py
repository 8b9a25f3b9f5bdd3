"""Multiply-accumulates (MACs) of one op, per image of a batch-1 probe, from shapes alone.

Counted: the weight products of convolutions (transposed too), linear layers, matrix products
and attention (`scaled_dot_product_attention`, `multi_head_attention_forward`), which is where
a CNN's or a transformer's arithmetic is. Not counted: bias additions, normalisation, pooling,
activations (a handful of operations per element, not per weight). This is the course's (and
netbuilder's) definition; torchinfo's "Mult-Adds" add each bias once per output position and a
norm layer's parameters once per image, so its conv rows are higher by bias × positions.

Works on real, fake and meta tensors alike: only shapes are read.
"""

from __future__ import annotations

from math import prod
from typing import Any, Callable, Optional

__all__ = ["op_macs", "COUNTED"]


def _arg(args: tuple, kwargs: dict, index: int, key: str) -> Any:
    if key in kwargs:
        return kwargs[key]
    return args[index] if len(args) > index else None


def _first_tensor(out: Any):
    import torch

    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    return None


def _conv(args: tuple, kwargs: dict, out: Any) -> int:
    weight, y = _arg(args, kwargs, 1, "weight"), _first_tensor(out)
    if weight is None or y is None:
        return 0
    # every output element: (in channels per group) x kernel products
    return y.numel() * prod(weight.shape[1:])


def _conv_transpose(args: tuple, kwargs: dict, out: Any) -> int:
    x, weight = _arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "weight")
    if x is None or weight is None:
        return 0
    # every input element is scattered into (out channels per group) x kernel outputs
    return x.numel() * prod(weight.shape[1:])


def _linear(args: tuple, kwargs: dict, out: Any) -> int:
    weight, y = _arg(args, kwargs, 1, "weight"), _first_tensor(out)
    if weight is None or y is None:
        return 0
    return y.numel() * (weight.shape[-1] if weight.dim() > 1 else 1)


def _inner(a: Any) -> int:
    return a.shape[-1] if a.dim() >= 1 else 1


def _matmul(args: tuple, kwargs: dict, out: Any) -> int:
    a, y = _arg(args, kwargs, 0, "input"), _first_tensor(out)
    if a is None or y is None:
        return 0
    return max(y.numel(), 1) * _inner(a)


def _addmm(args: tuple, kwargs: dict, out: Any) -> int:  # addmm(bias, a, b), baddbmm, addbmm
    a, y = _arg(args, kwargs, 1, "mat1"), _first_tensor(out)
    if a is None:  # `or` would ask a tensor for its truth value
        a = _arg(args, kwargs, 1, "batch1")
    if a is None or y is None:
        return 0
    return max(y.numel(), 1) * _inner(a)


def _sdpa(args: tuple, kwargs: dict, out: Any) -> int:
    q, k, y = _arg(args, kwargs, 0, "query"), _arg(args, kwargs, 1, "key"), _first_tensor(out)
    if q is None or k is None or y is None:
        return 0
    keys = k.shape[-2]
    # q·kᵀ: every query position against every key; then the weights times the values
    return q.numel() * keys + y.numel() * keys


def _mha(args: tuple, kwargs: dict, out: Any) -> int:
    """F.multi_head_attention_forward: input projections, attention, output projection."""
    q, k = _arg(args, kwargs, 0, "query"), _arg(args, kwargs, 1, "key")
    if q is None or k is None:
        return 0
    e = q.shape[-1]
    q_tokens, k_tokens = q.numel() // e, k.numel() // k.shape[-1]
    keys = k.shape[0]  # (S, N, E), or (S, E) unbatched: the functional form is not batch_first
    projections = (q_tokens + 2 * k_tokens) * e * e  # q, k and v projections (kdim = E)
    attention = 2 * q_tokens * keys * e  # q·kᵀ, then the weights times v, over all heads
    return projections + attention + q_tokens * e * e  # out_proj


_RULES: dict[str, Callable[[tuple, dict, Any], int]] = {
    **{f"conv{n}d": _conv for n in (1, 2, 3)},
    **{f"conv_transpose{n}d": _conv_transpose for n in (1, 2, 3)},
    "linear": _linear,
    "matmul": _matmul,
    "mm": _matmul,
    "bmm": _matmul,
    "addmm": _addmm,
    "baddbmm": _addmm,
    "scaled_dot_product_attention": _sdpa,
    "multi_head_attention_forward": _mha,
}
COUNTED = frozenset(_RULES)


def op_macs(name: str, args: tuple, kwargs: Optional[dict], out: Any) -> int:
    """MACs of one call of the op with canonical name `name` (0 for ops not counted)."""
    rule = _RULES.get(name)
    if rule is None:
        return 0
    try:
        return int(rule(args, kwargs or {}, out))
    except (AttributeError, TypeError, IndexError, ValueError, ZeroDivisionError):
        return 0  # an unusual call form: count nothing rather than fail the analysis
