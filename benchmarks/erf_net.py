"""Time `rfcalc.erf` on the assignment's Net over 100 inputs, and the size of its explorer page.

    python benchmarks/erf_net.py [--images data/cifar10-jpeg/test] [--threads 2] [--page]

Prints the wall-clock and CPU seconds of each of --repeats ERF runs (after one untimed warm-up),
the machine's load average (a shared machine's wall time says little), and with --page the
time and size of `rfcalc explore`'s page for the Net. Exits 1 if the median wall time is 5 s or
more.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from rfcalc import analyze, erf
from rfcalc.erf import load_images, noise_images
from rfcalc.load import load_target

NET = Path(__file__).resolve().parents[1] / "examples" / "s9_net.py"
LIMIT_S = 5.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", help="a folder of images (default: Gaussian noise)")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--page", action="store_true", help="also build the explorer page")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = load_target(str(NET)).eval()
    analysis = analyze(model, (3, 32, 32))
    if args.images:
        images, words = load_images(args.images, (3, 32, 32), args.n)
    else:
        images, words = noise_images((3, 32, 32), args.n), f"{args.n} Gaussian-noise inputs"
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {args.threads} threads; inputs: {words}"
    )
    erf(model, images[:4], analysis=analysis)
    walls = []
    for _ in range(args.repeats):
        t, c = time.perf_counter(), time.process_time()
        erf(model, images, analysis=analysis)
        walls.append(time.perf_counter() - t)
        print(f"erf: wall {walls[-1]:.2f} s, cpu {time.process_time() - c:.2f} s")
    print(
        f"median wall {statistics.median(walls):.2f} s; load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    if args.page:
        from rfcalc.explore import build_page

        t = time.perf_counter()
        page = build_page(model, analysis, images, words, title="examples/s9_net.py")
        print(f"explore page: {time.perf_counter() - t:.1f} s, {len(page.encode()) / 1e6:.2f} MB")
    return 0 if statistics.median(walls) < LIMIT_S else 1


if __name__ == "__main__":
    sys.exit(main())
