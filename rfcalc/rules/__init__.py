"""The rule catalogue: how each torch op changes the field of the tensors it reads.

One module per family, each registering its rules in the table of `dispatch`:

- `conv`: convolutions, transposed convolutions, F.unfold / F.fold, Tensor.unfold
- `pool`: max / avg / lp pools, adaptive pools
- `resample`: interpolate / upsample, pixel_shuffle / pixel_unshuffle, F.pad of every mode
- `elementwise`: element-wise ops and merges (add, mul, cat, stack), layout no-ops
- `shape`: view / reshape / flatten, permute / transpose, crops, flip, roll
- `mixing`: norms, softmax along a dim, reductions, Linear / matmul / einsum, attention

Adding an op is one rule + one test: `rfcalc.register_rule(op, rule)` (see dispatch).
Ops without a rule make their output UNKNOWN, and the table says which ones they were.
"""

from . import conv, elementwise, mixing, pool, resample, shape  # noqa: F401  (registers)
from .dispatch import (
    NO_RULE,
    RULES,
    Call,
    Outcome,
    Rule,
    apply,
    canonical,
    key_of,
    lookup,
    qualified,
    register_rule,
    rule,
    supported_ops,
)
from .elementwise import pointwise

__all__ = [
    "Call",
    "Outcome",
    "Rule",
    "RULES",
    "NO_RULE",
    "register_rule",
    "rule",
    "supported_ops",
    "lookup",
    "apply",
    "canonical",
    "qualified",
    "key_of",
    "pointwise",
]
