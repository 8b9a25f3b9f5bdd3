"""Atomic file writes, shared by the project's commands: a crash or a full disk never leaves a
half-written file, and an existing file is replaced only when the caller says so."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]


@contextlib.contextmanager
def atomic_path(
    path: PathLike, *, overwrite: bool = True, make_parents: bool = False
) -> Iterator[Path]:
    """Yield a temporary path next to `path`; when the block succeeds it becomes `path`.

    The temporary file lives in the same folder, so the final step is a rename on one file
    system (atomic on POSIX). Without `overwrite` it is a hard link instead, which fails with
    FileExistsError if `path` exists, even if it appeared meanwhile. The temporary file is
    removed in every case.
    """
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as fh:  # on disk before the rename makes it visible
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would surprise: the usual mode
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_bytes(
    path: PathLike, data: bytes, *, overwrite: bool = True, make_parents: bool = False
) -> None:
    """Write bytes atomically (see atomic_path)."""
    with atomic_path(path, overwrite=overwrite, make_parents=make_parents) as tmp:
        tmp.write_bytes(data)


def write_text(
    path: PathLike, text: str, *, overwrite: bool = True, make_parents: bool = False
) -> None:
    """Write UTF-8 text atomically (see atomic_path)."""
    write_bytes(path, text.encode("utf-8"), overwrite=overwrite, make_parents=make_parents)


def write_json(
    path: PathLike, obj: Any, *, overwrite: bool = True, make_parents: bool = False
) -> None:
    """Write JSON (indented, trailing newline) atomically (see atomic_path)."""
    write_text(
        path, json.dumps(obj, indent=2) + "\n", overwrite=overwrite, make_parents=make_parents
    )


def is_temporary(name: str) -> bool:
    """A temporary file of atomic_path (`.NAME.XXXX.tmp`): left only by a killed process."""
    return name.startswith(".") and name.endswith(".tmp")
