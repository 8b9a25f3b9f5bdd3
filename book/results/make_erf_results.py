"""Make the ERF section's stored results (section 4.1 is built without the data set).

    python book/results/make_erf_results.py [--run RUN_DIR] [--images data/cifar10-jpeg/test]

With --run (a finished `rftrain` run of the Net), first copies its best weights:
  s9_net_trained.pt    the Net's state_dict from RUN_DIR/best.pt (the book loads it)
  s9_net_trained.json  where they came from: the run's command, data, device, epochs and
                       test accuracy, read from RUN_DIR/summary.json and best.pt
  (with the run's seed and recipe, from its config). Then, from s9_net_trained.pt and the
Net as initialised the way the training run started it (training.seeding.seed_everything
with the run's seed, then the Net; checked: SGD without weight decay never changes the sum
of the head's weight rows, so the two Nets' sums must match), writes
  erf_net_cifar10.json the ERFs of the Net on 100 CIFAR-10 test images (rfcalc.erf, on the
                       CPU): of each image's predicted class's logit, of each class's logit,
                       and of t4 (the last spatial map, summed over its channels); with the
                       command, device, versions and weights that made it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

from rfcalc import analyze, erf
from rfcalc.erf import erfs, load_images, load_weights
from rfcalc.files import write_bytes, write_text
from rfcalc.load import load_target
from rfcalc.readout import one_logit
from rfcalc.render.erf import as_dict
from training.seeding import seed_everything

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NET = REPO / "examples" / "s9_net.py"
WEIGHTS = HERE / "s9_net_trained.pt"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def net(trained: bool, seed: int) -> torch.nn.Module:
    """The Net as the training run started it (seeded as `train_run` seeds), then the
    trained weights if asked."""
    seed_everything(seed)
    model = load_target(str(NET))
    if trained:
        load_weights(model, WEIGHTS)
    return model.eval()


def check_start(init: torch.nn.Module, trained: torch.nn.Module) -> float:
    """The distance between the two Nets' sums of head weight rows (training keeps it)."""
    gap = (init.head.weight.sum(0) - trained.head.weight.sum(0)).norm().item()
    if gap > 1e-4:
        raise SystemExit(f"the Net as initialised is not the trained Net's start ({gap:.3g})")
    return gap


def numbers(e) -> dict:
    """rfcalc's numbers of one ERF (its JSON form, without the map)."""
    d = as_dict(e, with_map=False)
    for key in ("inputs", "weights", "note"):
        d.pop(key)
    return d


def measure(model: torch.nn.Module, images: torch.Tensor, analysis) -> dict:
    """The ERFs of one model: predicted class, each class, t4."""
    with torch.no_grad():
        predicted = model(images).argmax(1)
    with one_logit(model):
        headline = erf(model, images, "head", analysis=analysis)
    per_class = []
    for k, name in enumerate(CLASSES):
        with one_logit(model, which=k):
            e = erf(model, images, "head", analysis=analysis)
        per_class.append({"class": name, **numbers(e)})
    (t4,) = erfs(model, images, ["t4"], analysis=analysis)
    return {
        "predicted_counts": np.bincount(predicted.numpy(), minlength=len(CLASSES)).tolist(),
        "predicted": numbers(headline),
        "per_class": per_class,
        "t4": numbers(t4),
    }


def copy_run(run: Path) -> None:
    """s9_net_trained.pt and .json from a finished rftrain run."""
    best = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
    summary = json.loads((run / "summary.json").read_text())
    buf = io.BytesIO()
    torch.save(best["model"], buf)
    write_bytes(WEIGHTS, buf.getvalue())
    source = {
        "source_run": str(run),
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
        "seed": summary["config"]["seed"],
        "recipe": summary["config"]["recipe"],
    }
    write_text(HERE / "s9_net_trained.json", json.dumps(source, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a finished rftrain run to take weights from")
    parser.add_argument("--images", type=Path, default=REPO / "data" / "cifar10-jpeg" / "test")
    args = parser.parse_args(argv)
    if not args.images.is_dir():
        print(f"{args.images}: no such folder (unpack the CIFAR-10 JPEG copy)", file=sys.stderr)
        return 2
    if args.run is not None:
        copy_run(args.run)
    torch.set_num_threads(2)
    source = json.loads((HERE / "s9_net_trained.json").read_text())
    init, trained = net(False, source["seed"]), net(True, source["seed"])
    gap = check_start(init, trained)
    analysis = analyze(init, (3, 32, 32))
    images, words = load_images(args.images, (3, 32, 32), n=100, seed=0)
    images_arg = args.images.resolve()
    images_arg = images_arg.relative_to(REPO) if images_arg.is_relative_to(REPO) else images_arg
    doc = {
        "command": f"python book/results/make_erf_results.py --images {images_arg}",
        "device": f"cpu ({platform.machine()}, torch threads {torch.get_num_threads()})",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "weights": {
            "file": "book/results/s9_net_trained.pt",
            "sha256": hashlib.sha256(WEIGHTS.read_bytes()).hexdigest(),
            "source_run": source["source_run"],
            "epochs_done": source["epochs_done"],
            "best_test_acc": source["best_test_acc"],
            "seed": source["seed"],
            "recipe": source["recipe"],
        },
        "as_initialised": (
            f"training.seeding.seed_everything({source['seed']}), then "
            "examples/s9_net.py's Net() (the training run's start)"
        ),
        "head_row_sum_gap": gap,
        "inputs": words.replace(str(REPO) + "/", ""),
        "n": int(images.shape[0]),
        "classes": list(CLASSES),
        "models": {
            "as initialised": measure(init, images, analysis),
            "trained": measure(trained, images, analysis),
        },
    }
    write_text(HERE / "erf_net_cifar10.json", json.dumps(doc, indent=1) + "\n")
    print(f"wrote {HERE / 'erf_net_cifar10.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
