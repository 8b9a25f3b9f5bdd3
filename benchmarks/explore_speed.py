"""How long `rfcalc explore` takes to write the assignment Net's page (examples/s9_net.py at
3x32x32, the default 100 noise images for the ERF), and where the time goes.

1. The whole command, wall time, as a user runs it (a fresh process: imports, model, analysis,
   reachable sets, ERFs, the page): this checkout, and with --baseline PATH another checkout
   (say the main branch before a change) run alternately in the same session, so both see
   the same machine load. Median of --repeats runs each.
2. In this process, the reachable sets two ways: through the one-channel support copy (what
   the page uses) and through the full linearised model (one float32 forward per pixel of the
   whole network: the method the support copy replaced; it is also the fallback).

    python benchmarks/explore_speed.py [--repeats 3] [--baseline /work/main] [--n 100]

The machine is shared: report the load average printed with the numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NET = "examples/s9_net.py"


def command_seconds(checkout: Path, n: int, out: Path) -> float:
    """Wall time of one `rfcalc explore` run with `checkout` first on sys.path."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    cmd = [sys.executable, "-m", "rfcalc", "explore", str(ROOT / NET), "--n", str(n)]
    cmd += ["-o", str(out), "--force"]
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=checkout, check=True, capture_output=True)
    return time.perf_counter() - start


def reach_seconds() -> tuple[float, float]:
    """(one-channel copy, full linearised model): seconds for every capturable row's sets."""
    sys.path.insert(0, str(ROOT))
    import torch

    from rfcalc import analyze, reach
    from rfcalc.explore import _capturable
    from rfcalc.load import load_target

    torch.manual_seed(0)
    model = load_target(str(ROOT / NET)).eval()
    analysis = analyze(model, (3, 32, 32))
    names = list(_capturable(model, analysis))
    start = time.perf_counter()
    fast = reach.reachable_sets(model, analysis, names)
    t_fast = time.perf_counter() - start
    start = time.perf_counter()
    lin = reach._linear_copy(model).float()
    full = reach._reach(lin, analysis, names, 256, None, torch.float32)
    t_full = time.perf_counter() - start
    assert all((fast[k] == full[k]).all() for k in names), "the two methods disagree"
    return t_fast, t_full


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline", type=Path, help="another checkout to time the same way")
    ap.add_argument("--n", type=int, default=100, help="ERF images (the command's default)")
    args = ap.parse_args()
    runs: dict[str, list[float]] = {"this checkout": []}
    if args.baseline:
        runs[f"baseline {args.baseline}"] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "net.html"
        for _ in range(args.repeats):
            runs["this checkout"].append(command_seconds(ROOT, args.n, out))
            size = out.stat().st_size
            if args.baseline:
                runs[f"baseline {args.baseline}"].append(
                    command_seconds(args.baseline, args.n, Path(tmp) / "base.html")
                )
    print(f"rfcalc explore {NET} (3x32x32, --n {args.n}), {args.repeats} runs each")
    for label, times in runs.items():
        print(
            f"  {label}: median {statistics.median(times):.1f} s "
            f"(runs: {', '.join(f'{t:.1f}' for t in times)})"
        )
    print(f"  page size (this checkout): {size / 1e6:.2f} MB")
    t_fast, t_full = reach_seconds()
    print(
        f"reachable sets, every row: one-channel copy {t_fast:.2f} s, "
        f"full linearised model {t_full:.2f} s (same sets)"
    )
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
