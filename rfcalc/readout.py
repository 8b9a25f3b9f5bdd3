"""One class's logit as the unit whose ERF `rfcalc.erf` measures.

`erf` takes the centre unit of a row summed over its channels. At a classifier's head that is
the sum of the logits, a direction that log-softmax ignores: its gradient, p − y, sums to zero
over the classes, so SGD without weight decay never changes the sum of the head's weight rows
or biases, and the summed-logit ERF of a trained network is that of a readout training never
touched. `one_logit` makes the head output a single class's logit per image (the others times
a zero that is not differentiated), so the same `erf` call measures that class.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Union

import torch
import torch.nn as nn

from .erf import ERFError

__all__ = ["PREDICTED", "one_logit"]

PREDICTED = "predicted"  # each image's own predicted class (its largest logit)


@contextmanager
def one_logit(
    model: nn.Module, head: str = "head", which: Union[int, str] = PREDICTED
) -> Iterator[nn.Module]:
    """While active, module `head`'s output (N, classes, ...) keeps only class `which` (an
    index, or PREDICTED: each image's largest logit); the choice is not differentiated."""
    modules = dict(model.named_modules())
    if head not in modules:
        raise ERFError(f"no module named {head!r} to read a logit from")

    def keep(_module, _inputs, z: torch.Tensor) -> torch.Tensor:
        classes = z.shape[1]
        if which == PREDICTED:
            pick = z.detach().flatten(2).sum(2).argmax(1)
        elif isinstance(which, int) and 0 <= which < classes:
            pick = torch.full((z.shape[0],), which, device=z.device)
        else:
            raise ERFError(f"class {which!r} is not one of the head's {classes}")
        mask = nn.functional.one_hot(pick, classes).to(z.dtype)
        return z * mask.view(*mask.shape, *([1] * (z.dim() - 2)))

    handle = modules[head].register_forward_hook(keep)
    try:
        yield model
    finally:
        handle.remove()
