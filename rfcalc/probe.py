"""The input an analysis runs on: one (1, *shape) probe on the model's device.

Its own module so that the recorder (execute.py) and the analysis (analysis.py), and the
gradient checks (verify.py), take it from one place below all three, with no import back up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

__all__ = ["probe_for"]


def probe_for(
    model: nn.Module,
    shape: tuple[int, ...],
    dtype: Optional[torch.dtype] = None,
    fill: Optional[float] = None,
) -> torch.Tensor:
    """A (1, *shape) probe on the model's device: seeded normal noise, or a constant."""
    import torch

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = dtype or (
        param.dtype if param is not None and param.is_floating_point() else torch.float32
    )
    if fill is not None:
        return torch.full((1, *shape), fill, dtype=dtype, device=device)
    gen = torch.Generator().manual_seed(0)
    return torch.randn((1, *shape), generator=gen).to(device=device, dtype=dtype)
