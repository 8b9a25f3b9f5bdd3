"""Attention with a mask over tokens, by SDPA's own arguments: `F.scaled_dot_product_
attention(q, k, v, is_causal=True)` or `attn_mask=` (boolean: True takes part; float: added,
-inf takes a key away), and `nn.MultiheadAttention`'s `attn_mask` (boolean: True is *not*
allowed), `key_padding_mask` and `is_causal`.

The tokens (a map flattened into one dim) keep their places: query position i reads itself
and the keys its row allows, and each unit of the map reads, per axis, the hull of those
positions' coordinates (an upper bound where that box over-covers: approx), the same as
attention written out by hand with a mask (rfcalc.rules.scores). A mask computed from the
input, a class token in front, extra keys (`bias_k`, `add_zero_attn`) or a mask whose
values are not at hand (fake tensors) are not followed: the caller shows every token
reading every position, as before.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from ..geometry import GLOBAL, Field
from .dispatch import Call, Outcome, mixed
from .scores import _boxes

CAUSAL_NOTE = "causal attention: token i reads tokens 0..i (row-major), a box per axis"


def _values(t: torch.Tensor) -> Optional[torch.Tensor]:
    """A constant mask's values on the CPU (None: fake or meta, no values)."""
    from torch._subclasses.fake_tensor import FakeTensor

    if isinstance(t, FakeTensor) or t.device.type == "meta":
        return None
    return t.detach().cpu()


def _free(mask: torch.Tensor, true_allows: bool) -> torch.Tensor:
    """Where a mask lets a key take part: a boolean's True (or False), a float's not -inf."""
    if mask.dtype == torch.bool:
        return mask if true_allows else ~mask
    return mask != float("-inf")


def allowed(call: Call, n: int) -> Optional[torch.Tensor]:
    """(n, n) booleans: whether query token i may read key token j, for some batch element
    or head (their union: a field shared by the batch); None where not followed."""
    given = [t for t, _ in call.inputs]
    sdpa = call.name == "scaled_dot_product_attention"
    if sdpa:
        mask, padding = call.arg(3, "attn_mask"), None
        causal = bool(call.arg(5, "is_causal", False))
    else:
        mask, padding = call.kwargs.get("attn_mask"), call.kwargs.get("key_padding_mask")
        causal = bool(call.kwargs.get("is_causal", False)) and mask is None
        if call.arg(7, "bias_k") is not None or bool(call.arg(9, "add_zero_attn", False)):
            return None  # keys beyond the tokens
    with torch._C.DisableTorchFunction():
        ok = torch.ones(n, n, dtype=torch.bool)
        if causal:
            ok = ok.tril()
        for m, rows in ((mask, True), (padding, False)):
            if m is None:
                continue
            if not isinstance(m, torch.Tensor) or any(m is t for t in given):
                return None  # computed from the input: not a constant mask
            v = _values(m)
            if v is None or v.dim() < 1 or v.shape[-1] != n:
                return None
            free = _free(v, sdpa)
            if rows:  # (…, n, n): any batch element or head
                if free.dim() < 2:
                    free = free.expand(n, n)
                free = free.reshape(-1, *free.shape[-2:]).any(0).expand(n, n)
            else:  # key padding (B, n): a key any batch element keeps
                free = free.reshape(-1, n).any(0)[None, :].expand(n, n)
            ok = ok & free
        if not bool(ok.any(1).all()):
            return None  # a query with no key: NaN, not a field
        return ok


def tokens(call: Call, p: tuple, before: Field) -> Optional[Outcome]:
    """Masked attention over the tokens `p` (a flattened map, its field `before`): each
    token reads the box of the keys its row allows. None: not followed."""
    if p[0] != "flat" or tuple(p[1]) != tuple(a.size for a in _ordered(before)):
        return None
    n = math.prod(p[1])
    ok = allowed(call, n)
    if ok is None:
        return None
    f = call.first
    if bool(ok.all()):  # a mask that takes no key away (a learned bias): every token
        seen = mixed(before, f"{call.name}: attention reads every position")
        return Outcome(Field(f.axes, None, GLOBAL, seen.note, (p[0], p[1], p[2], seen)))
    field = _boxes(before, tuple(p[1]), ok)
    if field is None:
        return None
    if call.name == "scaled_dot_product_attention":
        causal = bool(call.arg(5, "is_causal", False))
    else:
        causal = bool(call.kwargs.get("is_causal", False))
    if causal and not before.note:
        field = Field(field.axes, field.dims, field.status, CAUSAL_NOTE)
    return Outcome(Field(f.axes, None, field.status, field.note, (p[0], p[1], p[2], field)))


def _ordered(f: Field) -> list:
    """The field's axes in the order of their tensor dims (the order tokens are flattened)."""
    return [f.axes[i] for i in sorted(range(len(f.axes)), key=lambda i: f.dims[i])]
