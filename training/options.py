"""rftrain's device option (the command-line kit itself is rfkit_base.commandline, one for
all five commands)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from rfkit_base.commandline import UserError

if TYPE_CHECKING:  # torch loads when a device is chosen, not for `rftrain --help`
    import torch

__all__ = ["resolve_device"]


def resolve_device(name: str) -> torch.device:
    """'auto' picks cuda when present; asking for an absent GPU is a user error. Under torchrun
    a GPU without an index is the process's LOCAL_RANK."""
    import torch

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"--device {name!r}: {exc}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: no CUDA GPU is available here (try --device cpu)")
        if device.index is None:
            device = torch.device("cuda", local)
    return device
