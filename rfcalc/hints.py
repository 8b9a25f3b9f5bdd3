"""Hints for the usual mistakes behind a failed forward pass, read from torch's own message.

A student's model fails on rfcalc's probe for the reasons it fails anywhere: an input with
the wrong number of channels (a grey-scale net given 3, channels typed last), or an input
size other than the one the model was written for (a Linear or a view sized for 28×28 given
32×32). torch's message says what, not why; `hint` adds the why in the caller's terms
(`--input` on the command line, `input_size` from Python). Torch-free.
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

__all__ = ["hint"]

_CHANNELS = re.compile(r"expected input\[[^\]]*\] to have (\d+) channels, but got (\d+) channels")
_MATMUL = re.compile(r"mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)")
_VIEW = re.compile(r"shape '\[[^\]]*\]' is invalid for input of size (\d+)")
_SMALL = re.compile(r"Kernel size can't be greater than actual input size|Output size is too small")


def _shape(dims: Sequence[int]) -> str:
    return ",".join(map(str, dims))


def _channels(n: int) -> str:
    return f"{n} channel" if n == 1 else f"{n} channels"


def hint(
    message: str, shape: Sequence[int], flag: str = "--input", batch: Optional[int] = None
) -> str:
    """One sentence for the likely cause of `message` with input `shape` (C, *spatial), or "".

    `flag` names the input as the caller typed it: `--input` (C,H,W) on the command line,
    `input_size` from Python, where `batch` (if the caller gave one) comes first."""
    shape = tuple(shape)
    if flag.startswith("-"):
        show = _shape
    else:  # a Python tuple, with the batch the caller gave

        def show(dims: Sequence[int]) -> str:
            return f"=({', '.join(map(str, (batch, *dims) if batch else dims))})"

    found = _CHANNELS.search(message)
    if found:
        wanted, got = int(found.group(1)), int(found.group(2))
        if got != shape[0]:  # not the input's channels: the model's own layers disagree
            return (
                f"hint: a layer takes {_channels(wanted)} but the layer before it gives {got}: "
                "the model's channel counts do not chain"
            )
        if wanted in shape[1:]:  # channels typed last: move them to the front
            spatial = list(shape)
            spatial.remove(wanted)
            better = (wanted, *spatial)
        else:
            better = (wanted, *shape[1:])
        layout = "C,H,W" if len(shape) == 3 else "C first"
        if batch:
            layout = f"N,{layout}"
        sep = " " if flag.startswith("-") else ""
        return (
            f"hint: the first layer takes {_channels(wanted)}; {flag} is {layout}: "
            f"try {flag}{sep}{show(better)}"
        )
    found = _MATMUL.search(message)
    if found:
        got, wanted = int(found.group(2)), int(found.group(3))
        if got != wanted:
            return (
                f"hint: a Linear layer takes {wanted:,} features and gets {got:,}: the model "
                f"was written for another input size than {flag} {_shape(shape)}"
            )
    if _SMALL.search(message):
        return f"hint: the map shrinks below a kernel: the model needs a larger {flag}"
    if _VIEW.search(message):
        return (
            "hint: the forward reshapes to a fixed size: the model was written for another "
            f"input size than {flag} {_shape(shape)}"
        )
    return ""
