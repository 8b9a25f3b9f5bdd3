"""Atomic file writes for a run's folder (rfkit_base.files), which is made on demand: a crash
or a full disk never leaves a half-written file behind."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ContextManager

from rfkit_base import files
from rfkit_base.files import is_temporary

__all__ = ["atomic_path", "is_temporary", "write_text", "write_json"]


def atomic_path(path: str | os.PathLike) -> ContextManager[Path]:
    """rfkit_base.files.atomic_path, creating the folder first."""
    return files.atomic_path(path, make_parents=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write text atomically, creating the folder first."""
    files.write_text(path, text, make_parents=True)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON (indented, trailing newline) atomically, creating the folder first."""
    files.write_json(path, obj, make_parents=True)
