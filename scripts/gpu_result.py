"""One JSON of what a finished run measured, for the book and the README: the whole run
record (command, device, versions, recipe, configuration, loss curve; schema in
training/record.py) with its seed, and the benchmark's figures where there are some.

    python scripts/gpu_result.py RUN_DIR [OUT.json]

Reads RUN_DIR/summary.json and, where `scripts/gpu_train.sh` wrote it, RUN_DIR/throughput.json;
writes RUN_DIR/result.json unless OUT.json is given.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training.fsutil import write_json  # noqa: E402
from training.record import SUMMARY_KEYS  # noqa: E402

THROUGHPUT = ("pipeline_images_per_s", "train_images_per_s", "amp_bf16", "channels_last", "compile")


def result(run: Path) -> dict:
    """The run's record (the keys it has: an older record lacks the newer ones), its seed and,
    where the benchmark ran beside it, that benchmark's figures."""
    s = json.loads((run / "summary.json").read_text())
    out = {k: s[k] for k in SUMMARY_KEYS if k in s}
    out["seed"] = s["config"]["seed"]
    bench = run / "throughput.json"
    if bench.is_file():
        b = json.loads(bench.read_text())
        out["throughput"] = {k: b[k] for k in THROUGHPUT if k in b}
    return out


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print("usage: python scripts/gpu_result.py RUN_DIR [OUT.json]", file=sys.stderr)
        return 2
    run = Path(argv[0])
    if not (run / "summary.json").is_file():
        print(
            f"gpu_result.py: {run / 'summary.json'} is missing: not a run folder", file=sys.stderr
        )
        return 2
    r = result(run)
    target = Path(argv[1]) if len(argv) == 2 else run / "result.json"
    write_json(target, r)
    t85 = r["time_to_85_seconds"]
    print(
        f"result: {target}: best test accuracy {r['best_test_acc']:.2%}, "
        f"85% after {'never' if t85 is None else f'{t85:.0f} s'}, "
        f"{r['wall_seconds']:.0f} s in all"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
