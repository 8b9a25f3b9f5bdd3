"""A run's files written off the training thread: the next epoch starts while the last one's
checkpoint is still being saved.

What is handed over must not change while it is written, so tensors are first copied to the
host (`host_copy`, at the end of an epoch when the device has nothing queued). One writer
thread writes the files in the order they were handed over; errors come back at `wait`.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

import torch


def host_copy(obj: Any) -> Any:
    """`obj` with every tensor copied to the CPU and every dict, list and tuple rebuilt, so
    nothing in it is shared with the training (which goes on updating its tensors in place)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: host_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(host_copy(v) for v in obj)
    return obj


class BackgroundWriter:
    """Runs write jobs one at a time, in order, on one thread."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rftrain-writer")
        self._pending: list[Future] = []

    def submit(self, job: Callable[..., Any], *args: Any) -> None:
        self._pending.append(self._pool.submit(job, *args))

    def wait(self) -> None:
        """Block until every job handed over has run; raise the first one's error."""
        pending, self._pending = self._pending, []
        errors = [f.exception() for f in pending]  # waits for each
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first

    def close(self, quiet: bool = False) -> None:
        """Finish the jobs and end the thread; `quiet` drops their errors (another error is
        already on its way up)."""
        try:
            self.wait()
        except Exception:
            if not quiet:
                raise
        finally:
            self._pool.shutdown(wait=True)
