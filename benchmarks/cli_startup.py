"""Wall time of the commands that should answer at once: `--version`, `--help`, a bare command.

Each command runs as a fresh process (`python -m rfcalc ...`, the code of this checkout) several
times; the table gives the median, minimum and maximum wall time. Nothing is asserted: the
times depend on the machine and its load (say both when quoting them).

    python benchmarks/cli_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (
    ("rfcalc", "--version"),
    ("rfcalc", "--help"),
    ("rfcalc",),
    ("rfcalc", "table", "--help"),
    ("rfcalc", "tabel"),
    ("netbuilder", "--help"),
    ("netbuilder",),
)


def wall_time(argv: tuple[str, ...]) -> float:
    """Seconds for one fresh `python -m argv...` to exit (its output thrown away)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per command (default 7)")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'command':32}  median    min    max")
    for argv in COMMANDS:
        times = [wall_time(argv) for _ in range(args.runs)]
        print(
            f"{' '.join(argv):32}  {statistics.median(times):5.2f}s  {min(times):5.2f}s"
            f"  {max(times):5.2f}s"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
