"""Atomic file writes: a crash or a full disk never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ContextManager

from rfcalc import files


def atomic_path(path: str | os.PathLike) -> ContextManager[Path]:
    """rfcalc.files.atomic_path, creating the folder first (run folders are made on demand)."""
    return files.atomic_path(path, make_parents=True)


def is_temporary(name: str) -> bool:
    """A temporary file of atomic_path (`.NAME.XXXX.tmp`): left only by a killed process."""
    return name.startswith(".") and name.endswith(".tmp")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write text atomically."""
    files.write_text(path, text, make_parents=True)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON (indented, trailing newline) atomically."""
    write_text(path, json.dumps(obj, indent=2) + "\n")
