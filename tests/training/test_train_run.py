"""A run's files, atomic checkpoints, refusing to mix runs, and interrupt + resume."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from train_synth import CLASSES, make_images

from rfkit_base.commandline import UserError
from training import checkpoint
from training.augment import AugConfig
from training.config import TrainConfig
from training.data import Cifar
from training.models import load_model
from training.run import train_run

TIMING = ("train_seconds", "test_seconds", "images_per_s")
CPU = torch.device("cpu")


class Stop(Exception):
    pass


def synthetic(n_train: int = 48, n_test: int = 16) -> Cifar:
    x, y = make_images(n_train + n_test, seed=0)
    return Cifar(x[:n_train], y[:n_train], x[n_train:], y[n_train:], CLASSES, "synthetic")


def go(model: Path, out: Path, cfg: TrainConfig, **kw) -> dict:
    return train_run(
        lambda: load_model(str(model)), synthetic(), cfg, out, device=CPU, progress=False, **kw
    )


def test_files_written(tmp_path, tiny_model):
    out = tmp_path / "run"
    summary = go(tiny_model, out, TrainConfig(epochs=2, batch_size=16), command="rftrain x")
    for name in (
        "last.pt",
        "best.pt",
        "history.json",
        "history.csv",
        "curves.png",
        "confusion.csv",
        "confusion.png",
        "summary.json",
    ):
        assert (out / name).stat().st_size > 0, name
    history = json.loads((out / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2]
    assert (out / "history.csv").read_text().count("\n") == 3  # header + 2 epochs
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == summary and summary["finished"] and summary["command"] == "rftrain x"
    assert summary["test_acc"] == [r["test_acc"] for r in history]
    # Confusion counts add up to the 16 test images; its diagonal is the last accuracy.
    rows = [line.split(",")[1:] for line in (out / "confusion.csv").read_text().splitlines()[1:]]
    counts = [[int(v) for v in r] for r in rows]
    assert sum(map(sum, counts)) == 16
    assert sum(counts[i][i] for i in range(10)) / 16 == pytest.approx(history[-1]["test_acc"])
    best = torch.load(out / "best.pt", weights_only=True)
    assert best["test_acc"] == max(r["test_acc"] for r in history)
    # A misclassified gallery exists unless every test image was right.
    assert (out / "misclassified.png").exists() == (history[-1]["test_acc"] < 1)


@pytest.mark.parametrize("fast", [False, True])
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, tiny_model, fast):
    cfg = TrainConfig(epochs=3, batch_size=16, fast=fast, aug=AugConfig(), seed=3)
    whole = go(tiny_model, tmp_path / "whole", cfg)

    def stop_after_first(epoch, record, preds):
        if epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        go(tiny_model, tmp_path / "cut", cfg, on_epoch_end=[stop_after_first])
    saved = checkpoint.load(tmp_path / "cut" / "last.pt")
    assert saved["epoch"] == 1 and len(saved["history"]) == 1
    assert not json.loads((tmp_path / "cut" / "summary.json").read_text())["finished"]

    resumed = go(tiny_model, tmp_path / "cut", cfg, resume=True)
    assert resumed["epochs_done"] == 3 and resumed["test_acc"] == whole["test_acc"]
    strip = lambda h: [{k: v for k, v in r.items() if k not in TIMING} for r in h]  # noqa: E731
    a = json.loads((tmp_path / "whole" / "history.json").read_text())
    b = json.loads((tmp_path / "cut" / "history.json").read_text())
    assert strip(a) == strip(b)
    wa = checkpoint.load(tmp_path / "whole" / "last.pt")["trainer"]
    wb = checkpoint.load(tmp_path / "cut" / "last.pt")["trainer"]
    assert wa["lr_steps"] == wb["lr_steps"]
    assert all(torch.equal(wa["model"][k], wb["model"][k]) for k in wa["model"])
    assert wa["optimizer"]["state"].keys() == wb["optimizer"]["state"].keys()
    for k, s in wa["optimizer"]["state"].items():
        assert torch.equal(s["momentum_buffer"], wb["optimizer"]["state"][k]["momentum_buffer"])


def test_refuses_to_mix_runs(tmp_path, tiny_model):
    out = tmp_path / "run"
    cfg = TrainConfig(epochs=1, batch_size=16)
    go(tiny_model, out, cfg)
    with pytest.raises(UserError, match="is not empty .* --resume .* --force"):
        go(tiny_model, out, cfg)
    with pytest.raises(UserError, match=r"different settings .*batch_size 16 -> 32"):
        go(tiny_model, out, TrainConfig(epochs=1, batch_size=32), resume=True)
    (out / "notes.txt").write_text("mine")
    go(tiny_model, out, cfg, force=True)
    assert (out / "notes.txt").read_text() == "mine"  # --force replaces only run files
    with pytest.raises(UserError, match="nothing to resume"):
        go(tiny_model, tmp_path / "empty", cfg, resume=True)


def _as_if_made_on_a_gpu(out: Path) -> None:
    """Rewrite a CPU run's records as a GPU run (bf16, channels_last) would have left them."""
    state = checkpoint.load(out / "last.pt")
    state["config"].update(amp=True, channels_last=True)
    checkpoint.save(out / "last.pt", state)
    summary = json.loads((out / "summary.json").read_text())
    summary.update(device="NVIDIA H200", torch="2.11.0+cu130")
    (out / "summary.json").write_text(json.dumps(summary))


def test_finished_run_made_elsewhere_is_read_back_unchanged(tmp_path, tiny_model):
    out = tmp_path / "run"
    cfg = TrainConfig(epochs=2, batch_size=16)
    go(tiny_model, out, cfg)
    _as_if_made_on_a_gpu(out)
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    summary = go(tiny_model, out, cfg, resume=True)  # this CPU runs without bf16
    assert summary == json.loads(before["summary.json"])
    assert summary["device"] == "NVIDIA H200"
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before  # nothing rewritten
    # A summary older than the last checkpoint (killed in between) is written again.
    stale = dict(json.loads(before["summary.json"]), finished=False, epochs_done=1)
    (out / "summary.json").write_text(json.dumps(stale))
    again = go(tiny_model, out, TrainConfig(epochs=2, batch_size=16), resume=True)
    assert again["finished"] and again["epochs_done"] == 2 and again["device"] != "NVIDIA H200"
    # Asking for more epochs is another run, whatever ran it.
    with pytest.raises(UserError, match=r"different settings .*epochs 2 -> 3"):
        go(tiny_model, out, TrainConfig(epochs=3, batch_size=16), resume=True)


def test_unfinished_run_made_with_bf16_is_not_continued_without(tmp_path, tiny_model):
    out = tmp_path / "run"
    cfg = TrainConfig(epochs=2, batch_size=16)
    go(tiny_model, out, cfg, stop_after=1)
    _as_if_made_on_a_gpu(out)
    with pytest.raises(UserError, match=r"amp True -> False, channels_last True -> False"):
        go(tiny_model, out, cfg, resume=True)


def _as_if_made_by_an_older_version(out: Path) -> None:
    """Drop from the run's saved settings what later versions added (a top-level setting and
    one of the augmentation's)."""
    state = checkpoint.load(out / "last.pt")
    del state["config"]["eval_batch_size"], state["config"]["aug"]["jitter_clip"]
    checkpoint.save(out / "last.pt", state)


def test_a_finished_run_of_an_older_version_is_read_back(tmp_path, tiny_model):
    out = tmp_path / "run"
    cfg = TrainConfig(epochs=1, batch_size=16)
    go(tiny_model, out, cfg)
    _as_if_made_by_an_older_version(out)
    before = (out / "summary.json").read_bytes()
    assert go(tiny_model, out, cfg, resume=True) == json.loads(before)
    # the settings it has are still compared
    with pytest.raises(UserError, match=r"different settings .*batch_size 16 -> 32"):
        go(tiny_model, out, TrainConfig(epochs=1, batch_size=32), resume=True)


def test_an_unfinished_run_of_an_older_version_is_not_continued(tmp_path, tiny_model):
    # its missing settings would take today's defaults for the epochs still to run
    out = tmp_path / "run"
    cfg = TrainConfig(epochs=2, batch_size=16)
    go(tiny_model, out, cfg, stop_after=1)
    _as_if_made_by_an_older_version(out)
    with pytest.raises(UserError, match=r"different settings .*: aug.jitter_clip None -> True$"):
        go(tiny_model, out, cfg, resume=True)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    checkpoint.save(path, {"epoch": 1})

    def crash(obj, f, *a, **k):
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, {"epoch": 2})
    monkeypatch.undo()
    assert checkpoint.load(path) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["last.pt"]  # no temporary file left behind


def test_corrupt_checkpoint_is_a_user_error(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"garbage")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        checkpoint.load(tmp_path / "last.pt")


def test_checkpoint_with_objects_is_refused_not_executed(tmp_path):
    # An older rftrain stored numpy RNG states; anything beyond tensors and numbers could run
    # code when unpickled, so it is refused with the way out.
    import numpy as np

    torch.save({"rng": np.zeros(3)}, tmp_path / "last.pt")
    with pytest.raises(UserError, match="holds more than tensors and numbers .* --force"):
        checkpoint.load(tmp_path / "last.pt")


def test_tensor_path_drops_the_partial_batch_and_says_so(tmp_path, tiny_model):
    # 48 training images in batches of 20: two steps of 20 an epoch, 8 images left out
    out = tmp_path / "run"
    cfg = TrainConfig(epochs=2, batch_size=20, fast=True, aug=AugConfig.off())
    summary = go(tiny_model, out, cfg)
    history = json.loads((out / "history.json").read_text())
    assert [r["train_images"] for r in history] == [40, 40]
    assert len(checkpoint.load(out / "last.pt")["trainer"]["lr_steps"]) == 4
    assert summary["config"]["drop_last"] is True  # the run record says which
    # the albumentations path keeps it (unless asked), and so trains on all 48
    go(tiny_model, tmp_path / "ref", TrainConfig(epochs=1, batch_size=20, fast=False))
    assert json.loads((tmp_path / "ref" / "history.json").read_text())[0]["train_images"] == 48


def test_dropping_the_only_partial_batch(tmp_path, tiny_model):
    # asked for, it is refused before anything is written
    cfg = TrainConfig(epochs=1, batch_size=64, fast=True, drop_last=True)
    with pytest.raises(UserError, match="--batch-size 64 is more than the 48 training images"):
        go(tiny_model, tmp_path / "run", cfg)
    assert not (tmp_path / "run").exists()
    # left automatic, the one partial batch is the epoch: every image trains
    summary = go(tiny_model, tmp_path / "auto", TrainConfig(epochs=1, batch_size=64, fast=True))
    assert summary["config"]["drop_last"] is False
    assert summary["history"][0]["train_images"] == 48


def test_figures_are_drawn_at_the_end_not_every_epoch(tmp_path, tiny_model, monkeypatch):
    from training import report

    drawn = []
    for name in ("plot_curves", "write_confusion", "plot_misclassified"):
        original = getattr(report, name)

        def counting(*a, _name=name, _f=original, **k):
            drawn.append(_name)
            return _f(*a, **k)

        monkeypatch.setattr(report, name, counting)
    cfg = TrainConfig(epochs=3, batch_size=16)
    go(tiny_model, tmp_path / "run", cfg, stop_after=1)  # a stop: the curves so far
    assert drawn == ["plot_curves"]
    drawn.clear()
    go(tiny_model, tmp_path / "run", cfg, resume=True)  # epochs 2 and 3: all, once
    assert drawn == ["plot_curves", "write_confusion", "plot_misclassified"]


def test_a_finished_run_resumed_draws_the_figures_it_lacks(tmp_path, tiny_model):
    out = tmp_path / "run"
    cfg = TrainConfig(epochs=2, batch_size=16)
    go(tiny_model, out, cfg)
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    for name in ("curves.png", "confusion.csv", "confusion.png"):
        (out / name).unlink()
    (out / "misclassified.png").unlink(missing_ok=True)
    go(tiny_model, out, cfg, resume=True)
    after = {f.name: f.read_bytes() for f in out.iterdir()}
    assert after.keys() == before.keys()
    assert after["confusion.csv"] == before["confusion.csv"]  # the last epoch's predictions
    untouched = set(before) - {"curves.png", "confusion.png", "misclassified.png"}
    assert all(after[k] == before[k] for k in untouched)


def test_checkpoints_are_written_off_the_training_thread(tmp_path, tiny_model, monkeypatch):
    import threading

    threads, save = [], checkpoint.save

    def recording(path, state):
        threads.append((Path(path).name, threading.current_thread().name))
        save(path, state)

    monkeypatch.setattr(checkpoint, "save", recording)
    go(tiny_model, tmp_path / "run", TrainConfig(epochs=2, batch_size=16))
    assert [name for name, _ in threads].count("last.pt") == 2
    assert all(t.startswith("rftrain-writer") for _, t in threads)


def test_a_failed_write_stops_the_run_with_its_error(tmp_path, tiny_model, monkeypatch):
    def full(path, state):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save", full)
    with pytest.raises(OSError, match="disk full"):
        go(tiny_model, tmp_path / "run", TrainConfig(epochs=3, batch_size=16))


def test_host_copy_shares_nothing_with_the_training():
    from training.writer import host_copy

    w = torch.ones(3)
    state = {"model": {"w": w}, "steps": [0.1, 0.2], "n": 1, "pair": (w, "x")}
    copy = host_copy(state)
    w.add_(1)
    state["steps"].append(0.3)
    assert copy["model"]["w"].tolist() == [1, 1, 1] and copy["pair"][0].tolist() == [1, 1, 1]
    assert copy["steps"] == [0.1, 0.2] and copy["n"] == 1 and copy["pair"][1] == "x"


# ----------------------------------------------------------------------------
# A run's reported numbers against an evaluation done here, from the saved weights alone.


@pytest.mark.parametrize("eval_batch_size", [1000, 5])
def test_reported_test_numbers_match_an_independent_evaluation(
    tmp_path, tiny_model, eval_batch_size
):
    # 16 test images: one batch of 16, or 5 + 5 + 5 + 1 padded to 5 (the padding not counted)
    x, y = make_images(64, seed=0)
    data = Cifar(x[:48], y[:48], x[48:], y[48:], CLASSES, "synthetic")
    out = tmp_path / "run"
    train_run(
        lambda: load_model(str(tiny_model)),
        data,
        TrainConfig(epochs=2, batch_size=16, eval_batch_size=eval_batch_size),
        out,
        device=torch.device("cpu"),
        progress=False,
    )
    history = json.loads((out / "history.json").read_text())

    # Normalize by the training images' per-channel mean and std (0..1 scale), by hand.
    train = x[:48].reshape(-1, 3).astype(np.float64) / 255
    mean, std = train.mean(0), train.std(0)
    test = (x[48:].astype(np.float64) / 255 - mean) / std
    inputs = torch.from_numpy(test).permute(0, 3, 1, 2).float()
    labels = torch.from_numpy(y[48:])

    def evaluate(state: dict) -> tuple[float, float, np.ndarray]:
        net = load_model(str(tiny_model))
        net.load_state_dict(state)
        with torch.no_grad():
            logp = net.eval()(inputs)  # Tiny ends in log_softmax: NLL
        pred = logp.argmax(1)
        return (
            F.nll_loss(logp, labels).item(),
            (pred == labels).float().mean().item(),
            pred.numpy(),
        )

    last = torch.load(out / "last.pt", weights_only=False)["trainer"]["model"]
    loss, acc, pred = evaluate(last)
    assert history[-1]["test_loss"] == pytest.approx(loss, rel=1e-4, abs=1e-5)
    assert history[-1]["test_acc"] == pytest.approx(acc, abs=1e-9)

    # confusion.csv after the last epoch: row = true class, column = predicted, by hand
    expected = np.zeros((10, 10), int)
    for t, p in zip(y[48:], pred):
        expected[t, p] += 1
    rows = list(csv.reader((out / "confusion.csv").open()))
    assert rows[0][1:] == list(CLASSES) and [r[0] for r in rows[1:]] == list(CLASSES)
    assert np.array_equal(np.array([[int(v) for v in r[1:]] for r in rows[1:]]), expected)

    # best.pt holds the weights of the best epoch, and that epoch's accuracy is what it says
    best = torch.load(out / "best.pt", weights_only=True)
    assert best["test_acc"] == max(r["test_acc"] for r in history)
    assert best["test_acc"] == pytest.approx(evaluate(best["model"])[1], abs=1e-9)
    assert history[best["epoch"] - 1]["test_acc"] == best["test_acc"]
