"""Keep glibc's malloc from handing big activations back to the OS after every step.

glibc serves a request above its (dynamic) mmap threshold with a fresh mmap and returns it
with munmap on free; it also trims the heap top above M_TRIM_THRESHOLD. At the recipe's batch
of 512 the s9 Net's activations are large enough that every training step maps them anew:
about 3 million page faults a step, and the step runs at a third of the batch-128 speed
(measured on the project's 2-core CPU; the same numbers come out either way). Turning mmap
off for malloc (M_MMAP_MAX = 0) and raising the trim threshold keeps the pages in the heap
for the next step. The price: the process keeps its peak memory until it exits.

Applied once by the entry points that train, not on import: `rftrain` (so each run of a
sweep) and `train_run` (the notebooks), and benchmarks/train_throughput.py; glibc only, a
no-op elsewhere. RFTRAIN_MALLOC=system in the environment leaves malloc alone (for
comparisons: benchmarks/train_throughput.py --allocator both).
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1  # from glibc's <malloc.h>
M_MMAP_MAX = -4
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: the largest, 2 GiB
OPT_OUT = "RFTRAIN_MALLOC"

_applied: bool | None = None


def tune_malloc() -> bool:
    """Apply the settings once; True if glibc accepted them (then or earlier)."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if (
        os.environ.get(OPT_OUT, "").lower() == "system"
        or platform.system() != "Linux"
        or platform.libc_ver()[0] != "glibc"
    ):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # mallopt returns 1 on success, 0 on error.
    _applied = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    return _applied


def malloc_tuned() -> bool:
    """Whether this process runs with the settings (for reports)."""
    return bool(_applied)
