"""Make the ERF section's stored results from a finished `rftrain --preset s9` run.

    python book/results/make_erf_results.py RUN_DIR [--images data/cifar10-jpeg/test]

Writes, next to this file:
  s9_net_trained.pt         the Net's state_dict from RUN_DIR/best.pt (the book loads it)
  s9_net_trained.json       where it came from: the run's command, data, device, epochs and
                            test accuracy, read from RUN_DIR/summary.json and best.pt
  erf_net_cifar10.json      `rfcalc erf examples/s9_net.py --compare init s9_net_trained.pt
                            --images IMAGES --format json` (the book is built without data)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

import torch

from rfcalc.cli import main as rfcalc
from rfcalc.files import write_bytes, write_text

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--images", default=str(REPO / "data" / "cifar10-jpeg" / "test"))
    args = parser.parse_args()
    best = torch.load(args.run / "best.pt", map_location="cpu", weights_only=True)
    summary = json.loads((args.run / "summary.json").read_text())
    buf = io.BytesIO()
    torch.save(best["model"], buf)
    write_bytes(HERE / "s9_net_trained.pt", buf.getvalue())
    source = {
        "source_run": str(args.run),
        "command": summary["command"],
        "finished": summary["finished"],
        "device": summary["device"],
        "torch": summary["torch"],
        "data": summary["data"],
        "train_images": summary["train_images"],
        "test_images": summary["test_images"],
        "epochs_planned": summary["config"]["epochs"],
        "epochs_done": summary["epochs_done"],
        "test_acc_per_epoch": summary["test_acc"],
        "best_epoch": best["epoch"],
        "best_test_acc": best["test_acc"],
    }
    write_text(HERE / "s9_net_trained.json", json.dumps(source, indent=1) + "\n")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = rfcalc(
            [
                "erf",
                str(REPO / "examples" / "s9_net.py"),
                "--compare",
                "init",
                str(HERE / "s9_net_trained.pt"),
                "--images",
                args.images,
                "--format",
                "json",
            ]
        )
    if code:
        return code
    doc = json.loads(out.getvalue())
    # paths relative to the repository, so the stored file is the same on every machine
    for item in doc["compare"]:
        for key in ("inputs", "weights"):
            if item[key]:
                item[key] = item[key].replace(str(REPO) + "/", "")
    doc["command"] = (
        "rfcalc erf examples/s9_net.py --compare init "
        "book/results/s9_net_trained.pt --images data/cifar10-jpeg/test "
        "--format json"
    )
    write_text(HERE / "erf_net_cifar10.json", json.dumps(doc, indent=1) + "\n")
    print(json.dumps(source, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
