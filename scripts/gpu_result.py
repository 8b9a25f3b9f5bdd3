"""One small JSON of what a finished run measured (command, device, versions, figures), for
the book and the README: `python scripts/gpu_result.py RUN_DIR [OUT.json]`.

Reads RUN_DIR/summary.json and, where `scripts/gpu_train.sh` wrote it, RUN_DIR/throughput.json;
writes RUN_DIR/result.json unless OUT.json is given.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training.fsutil import write_json  # noqa: E402

KEYS = (
    "command",
    "device",
    "world_size",
    "torch",
    "data",
    "data_digest",
    "train_images",
    "test_images",
    "data_decode_seconds",
    "path",
    "params",
    "schedule",
    "epochs_done",
    "finished",
    "test_acc",
    "best_test_acc",
    "wall_seconds",
    "time_to_85_seconds",
    "train_images_per_s",
)
THROUGHPUT = ("pipeline_images_per_s", "train_images_per_s", "amp_bf16", "channels_last", "compile")


def result(run: Path) -> dict:
    s = json.loads((run / "summary.json").read_text())
    out = {k: s[k] for k in KEYS}
    out["seed"] = s["config"]["seed"]
    bench = run / "throughput.json"
    if bench.is_file():
        b = json.loads(bench.read_text())
        out["throughput"] = {k: b[k] for k in THROUGHPUT}
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
