"""Time `rfcalc.analyze` on torchvision's ResNet-50 (weights=None) at 3×224×224.

A torchinfo `summary` of the same model, which also runs one forward pass with hooks, is
timed alongside as the yardstick. Prints best and median of N runs for both and exits 1 if
rfcalc's median is 3 s or more.  `make bench` runs it.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from typing import Callable

import torch
import torchinfo
import torchvision

from rfcalc import analyze

INPUT = (3, 224, 224)
LIMIT_S = 3.0


def timings(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall-clock seconds of `repeats` calls (after one untimed warm-up for lazy imports)."""
    fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each (default 5)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    model = torchvision.models.resnet50(weights=None).eval()
    analysis = analyze(model, INPUT)
    print(f"ResNet-50 at {'×'.join(map(str, INPUT))}: {len(analysis.rows)} rows, "
          f"output rf {'×'.join(str(r) for r in analysis.output.rf) or analysis.output.status}, "
          f"{analysis.params:,} parameters")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads")

    results = {
        "rfcalc.analyze": timings(lambda: analyze(model, INPUT), args.repeats),
        "torchinfo.summary": timings(
            lambda: torchinfo.summary(model, input_size=(1, *INPUT), verbose=0, device="cpu"),
            args.repeats),
    }
    print(f"{'':<18} {'best':>8} {'median':>8}   ({args.repeats} runs each)")
    for name, times in results.items():
        print(f"{name:<18} {min(times):>7.3f}s {statistics.median(times):>7.3f}s")

    median = statistics.median(results["rfcalc.analyze"])
    if median >= LIMIT_S:
        print(f"FAIL: rfcalc.analyze median {median:.3f}s >= {LIMIT_S:.0f}s", file=sys.stderr)
        return 1
    print(f"OK: rfcalc.analyze median {median:.3f}s < {LIMIT_S:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
