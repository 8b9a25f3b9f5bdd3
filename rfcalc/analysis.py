"""`analyze(model, input_shape)`: the record of one forward pass, combined with the rules.

The record types below are the contract between the analyzer and everything that shows its
results (renderers, CLI, netbuilder, the book): rows in, text out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Optional, Sequence

# A row's status: how far its field can be trusted.
EXACT = "exact"        # the classic arithmetic, exactly
APPROX = "approx"      # a bound: widest window of an uneven adaptive pool, up-sampling border
GLOBAL = "global"      # every input pixel can reach every unit (Linear, GAP, attention, SE gate)
UNKNOWN = "unknown"    # an op without a rule touched the spatial map: nothing is claimed

Num = Fraction  # spatial quantities are exact rationals: up-sampling makes jumps fractional


@dataclass(frozen=True)
class Row:
    """One executed operation, with the field of its output (one value per spatial axis)."""

    name: str                              # qualified module path, or e.g. "add_1", "cat"
    op: str                                # module class or torch function name
    kernel: Optional[tuple[int, ...]]      # None where the op has no window
    stride: Optional[tuple[int, ...]]
    padding: Optional[tuple[int, ...]]
    dilation: Optional[tuple[int, ...]]
    size: tuple[int, ...]                  # output spatial size; () once the map is flattened
    jump: tuple[Num, ...]
    rf: tuple[Num, ...]
    start: tuple[Num, ...]
    params: int                            # parameters owned by this op (0 for functional ops)
    status: str = EXACT
    note: str = ""                         # why a row is approx/global/unknown

    @property
    def is_global(self) -> bool:
        return self.status == GLOBAL


@dataclass(frozen=True)
class Analysis:
    """All rows in execution order, plus the summary of the model's output."""

    input_shape: tuple[int, ...]           # (C, *spatial) as given by the user
    rows: Sequence[Row]
    output: Row                            # the field of the model's (first) output tensor
    params: int                            # total parameters of the model (each counted once)
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def covers_input(self) -> bool:
        """Whether the output field is at least as large as the input on every axis."""
        o = self.output
        if o.status == GLOBAL:
            return True
        return bool(o.rf) and all(r >= n for r, n in zip(o.rf, self.input_shape[1:]))
