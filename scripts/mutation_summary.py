"""Per-module mutation score from mutmut's results (`make mutation` prints it after a run).

Reads `mutmut results --all true` (one `    module.function__mutmut_N: status` line per mutant)
and prints, per mutated module, killed/checked (timeouts count as killed and are also shown
apart) and the survivors by name. Mutants that were
not run (`not checked`, e.g. outside `make mutation MUTATE=...`) are counted apart.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

DETECTED = {"killed", "caught by type check", "segfault"}
TIMEOUT = {"timeout"}  # counted as detected, but shown apart: on a loaded machine it may be noise
NOT_RUN = {"not checked", "skipped"}


def module_of(key: str) -> str:
    """`netbuilder.budget.x_solve__mutmut_3` -> `netbuilder.budget`."""
    head = key.rsplit("__mutmut_", 1)[0]
    parts = head.split(".")
    return ".".join(p for p in parts[:-1])


def main() -> int:
    mutmut = Path(sys.executable).with_name("mutmut")
    done = subprocess.run([str(mutmut), "results", "--all", "true"], capture_output=True, text=True)
    if done.returncode != 0:
        print(
            done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "mutmut failed",
            file=sys.stderr,
        )
        return 1
    counts: dict[str, Counter] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    for line in done.stdout.splitlines():
        key, sep, status = line.strip().rpartition(": ")
        if not sep:
            continue
        module = module_of(key)
        counts[module][status] += 1
        if status not in DETECTED | TIMEOUT | NOT_RUN:
            survivors[module].append(f"{key} ({status})")
    print(f"{'module':24} {'killed/checked':>15} {'timeouts':>9} {'score':>7} {'not run':>8}")
    for module in sorted(counts):
        c = counts[module]
        checked = sum(n for s, n in c.items() if s not in NOT_RUN)
        timeouts = sum(n for s, n in c.items() if s in TIMEOUT)
        killed = sum(n for s, n in c.items() if s in DETECTED) + timeouts
        not_run = sum(n for s, n in c.items() if s in NOT_RUN)
        score = f"{100 * killed / checked:.1f}%" if checked else "-"
        print(f"{module:24} {f'{killed}/{checked}':>15} {timeouts:>9} {score:>7} {not_run:>8}")
    for module in sorted(survivors):
        print(f"\nsurvivors in {module} (see tests/MUTATION.md; `mutmut show NAME` for the diff):")
        for name in survivors[module]:
            print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
