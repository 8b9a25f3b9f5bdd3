"""Checkpoints written atomically (temp file + os.replace), and read back for --resume."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from rfkit_base.commandline import UserError

from .fsutil import atomic_path

LAST = "last.pt"  # everything needed to continue: model, optimizer, schedule, RNG, history
BEST = "best.pt"  # the weights with the best test accuracy so far


def save(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """torch.save into a temporary file, then rename: a crash leaves the old file intact."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint on the CPU; UserError if it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no checkpoint to resume from: {path} does not exist")
    try:
        # Tensors, numbers and strings only (RNG states included): a shared run folder
        # cannot make this process run code.
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):  # not a disallowed object: damaged
            raise UserError(
                f"{path} is not a readable checkpoint (damaged, or not a torch file)"
            ) from None
        raise UserError(
            f"{path} holds more than tensors and numbers (an older rftrain's "
            "checkpoint, or not ours) and is not loaded: start over with --force"
        ) from None
    except Exception as exc:
        raise UserError(
            f"{path} is not a readable checkpoint ({type(exc).__name__}: {exc})".splitlines()[0]
        ) from None
