"""The recipe means what its flags say: momentum (fixed or cycled), lr schedules, L1, norms,
and what a run records about them; class-balanced subsets; data fingerprints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn
from train_synth import CLASSES, make_images

from rfkit_base.commandline import UserError
from training import checkpoint
from training.augment import AugConfig
from training.config import TrainConfig
from training.data import Cifar
from training.models import _groups, convert_norm, load_model
from training.run import train_run

CPU = torch.device("cpu")


def synthetic(n_train: int = 32, n_test: int = 8, seed: int = 0) -> Cifar:
    x, y = make_images(n_train + n_test, seed=seed)
    return Cifar(x[:n_train], y[:n_train], x[n_train:], y[n_train:], CLASSES, "synthetic")


def go(tmp_path, name, model, data=None, recipe=TrainConfig, **cfg):
    """A run of `recipe` (a RECIPES factory) with `cfg` changed, without augmentation."""
    out = tmp_path / name
    summary = train_run(
        lambda: load_model(str(model)),
        data or synthetic(),
        recipe(aug=AugConfig.off(), **cfg),
        out,
        device=CPU,
        progress=False,
    )
    return summary, checkpoint.load(out / "last.pt")


def test_momentum_flag_is_honoured(tmp_path, tiny_model):
    # Before the fix OneCycleLR overwrote --momentum (0.9 and 0.5 gave the same weights).
    kw = dict(epochs=2, batch_size=8, momentum_schedule="fixed")
    _, a = go(tmp_path, "a", tiny_model, momentum=0.9, **kw)
    _, b = go(tmp_path, "b", tiny_model, momentum=0.5, **kw)
    assert a["trainer"]["momentum_steps"] == [0.9] * 8
    assert b["trainer"]["momentum_steps"] == [0.5] * 8
    assert b["trainer"]["optimizer"]["param_groups"][0]["momentum"] == 0.5
    wa, wb = a["trainer"]["model"], b["trainer"]["model"]
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)


def test_cycled_momentum_by_hand(tmp_path, tiny_model):
    # 10 steps, three phases, pct_start 0.4: the momentum falls from max to base over steps
    # 0..3 (cosine), rises back by step 6, then stays at max. Step 1:
    # 0.95 + (0.85 - 0.95) * (1 - cos(pi / 3)) / 2 = 0.925.
    _, s = go(
        tmp_path,
        "c",
        tiny_model,
        synthetic(10, 4),
        epochs=2,
        batch_size=2,
        momentum_schedule="cycle",
    )
    m = s["trainer"]["momentum_steps"]
    assert m[0] == pytest.approx(0.95) and m[1] == pytest.approx(0.925)
    assert m[3] == pytest.approx(0.85) and m[6] == pytest.approx(0.95)
    assert m[9] == pytest.approx(0.95)


def test_pytorch_reading_starts_at_max_lr_over_25(tmp_path, tiny_model):
    summary, s = go(
        tmp_path,
        "b",
        tiny_model,
        synthetic(10, 4),
        epochs=1,
        batch_size=2,
        lr=0.1 / 25,
        momentum_schedule="cycle",
    )
    assert s["trainer"]["lr_steps"][0] == pytest.approx(0.004)
    assert summary["schedule"]["momentum"].startswith("cycled")
    assert "0.004 -> 0.1" in summary["schedule"]["lr"]


def test_constant_schedule_keeps_the_lr(tmp_path, tiny_model):
    summary, s = go(
        tmp_path,
        "k",
        tiny_model,
        epochs=2,
        batch_size=8,
        schedule="constant",
        lr=0.1,
        momentum_schedule="fixed",
    )
    assert s["trainer"]["lr_steps"] == [0.1] * 8
    assert summary["schedule"] == {"lr": "constant 0.1 for 8 steps", "momentum": "fixed 0.9"}


def test_history_and_printout_show_the_schedule_that_ran(tmp_path, tiny_model, capsys):
    summary, s = go(
        tmp_path,
        "h",
        tiny_model,
        synthetic(10, 4),
        recipe=TrainConfig.previous,
        epochs=2,
        batch_size=2,
    )
    out = capsys.readouterr().out
    lrs = s["trainer"]["lr_steps"]
    h = json.loads((tmp_path / "h" / "history.json").read_text())
    assert [(r["lr_start"], r["lr_end"]) for r in h] == [(lrs[0], lrs[4]), (lrs[5], lrs[9])]
    assert [r["momentum_start"] for r in h] == [0.9, 0.9]
    # The last epoch ends at 0.05 / 1e4 = 5e-06: printed as such, not 0.0000.
    assert "->5e-06" in out and "0.0000" not in out
    assert "momentum: fixed 0.9" in out
    # OneCycleLR's phases end at steps 0.4 * 10 - 1 = 3, 2 * 0.4 * 10 - 2 = 6 and 9.
    # (the printout wraps at 76 columns: compare with its lines joined)
    assert "0.05 -> 0.1 at step 3 -> 0.05 at step 6 -> 5e-06 at step 9" in " ".join(out.split())


def test_l1_adds_lr_times_l1_times_sign(tmp_path, tiny_model):
    # One SGD step without momentum from the same weights and batch: the L1 term moves each
    # conv/linear weight by exactly -lr * l1 * sign(w) more; biases and BatchNorm not at all.
    kw = dict(
        epochs=1,
        batch_size=16,
        schedule="constant",
        lr=0.1,
        momentum=0.0,
        momentum_schedule="fixed",
    )
    data = synthetic(16, 4)
    _, plain = go(tmp_path, "p", tiny_model, data, **kw)
    _, l1 = go(tmp_path, "l", tiny_model, data, l1=0.01, **kw)
    torch.manual_seed(1)
    init = load_model(str(tiny_model)).state_dict()
    for k, w0 in init.items():
        delta = l1["trainer"]["model"][k].float() - plain["trainer"]["model"][k].float()
        if k.endswith("weight") and w0.dim() > 1:
            assert torch.allclose(delta, -0.1 * 0.01 * torch.sign(w0), atol=2e-6), k
        elif w0.is_floating_point():
            assert torch.allclose(delta, torch.zeros_like(delta), atol=1e-6), k


def test_norm_conversion():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.BatchNorm2d(8),
        nn.Sequential(nn.Conv2d(8, 23, 1), nn.BatchNorm2d(23, eps=1e-3)),
    )
    g = convert_norm(model, "group", 4)
    norms = [m for m in g.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))]
    assert [(type(m).__name__, m.num_groups, m.num_channels) for m in norms] == [
        ("GroupNorm", 4, 8),
        ("GroupNorm", 1, 23),
    ]
    assert norms[1].eps == 1e-3
    layer = convert_norm(nn.Sequential(nn.BatchNorm2d(6)), "layer")
    assert layer[0].num_groups == 1
    assert (_groups(93, 4), _groups(64, 4), _groups(63, 8)) == (3, 4, 7)


def test_checkpoints_load_weights_only(tmp_path, tiny_model):
    go(tmp_path, "w", tiny_model, epochs=1, batch_size=16)
    for name in ("last.pt", "best.pt"):
        assert torch.load(tmp_path / "w" / name, weights_only=True)


def test_images_per_s_is_total_images_over_total_time(tmp_path, tiny_model):
    summary, _ = go(tmp_path, "t", tiny_model, epochs=2, batch_size=16)
    h = json.loads((tmp_path / "t" / "history.json").read_text())
    assert summary["train_images_per_s"] == pytest.approx(
        2 * 32 / (h[0]["train_seconds"] + h[1]["train_seconds"])
    )


def test_limit_is_stratified():
    # class k has 10 * (k + 1) images (550); 110 of them is exactly 2 * (k + 1) per class.
    y = np.repeat(np.arange(10), 10 * np.arange(1, 11))
    x = np.zeros((len(y), 32, 32, 3), np.uint8)
    x[:, 0, 0, 0] = np.arange(len(y)) % 256
    d = Cifar(x, y, x[:20], y[:20], CLASSES, "synthetic").limited(110, None)
    assert np.bincount(d.train_y, minlength=10).tolist() == [2 * (k + 1) for k in range(10)]
    assert len(d.test_y) == 20
    again = Cifar(x, y, x[:20], y[:20], CLASSES, "synthetic").limited(110, None)
    assert np.array_equal(d.train_x, again.train_x)  # the same subset every time
    balanced = synthetic(60, 20).limited(25, 10)
    counts = np.bincount(balanced.train_y, minlength=10)
    assert counts.sum() == 25 and counts.max() - counts.min() == 1
    assert np.bincount(balanced.test_y, minlength=10).tolist() == [1] * 10


def test_resume_refuses_other_data_of_the_same_size(tmp_path, tiny_model):
    def stop(epoch, record, preds):
        raise KeyboardInterrupt

    out = tmp_path / "r"
    cfg = TrainConfig(epochs=2, batch_size=16, aug=AugConfig.off())
    with pytest.raises(KeyboardInterrupt):
        train_run(
            lambda: load_model(str(tiny_model)),
            synthetic(seed=0),
            cfg,
            out,
            device=CPU,
            progress=False,
            on_epoch_end=[stop],
        )
    with pytest.raises(UserError, match="different data .* 32/8 train/test images"):
        train_run(
            lambda: load_model(str(tiny_model)),
            synthetic(seed=5),
            cfg,
            out,
            device=CPU,
            progress=False,
            resume=True,
        )
    assert not list(out.glob(".*.tmp"))  # the interrupted writes left no temporaries


def test_schedules_in_words():
    s = TrainConfig.previous(epochs=10).schedules(98)
    # 980 steps: 0.4 * 980 - 1 = 391, 2 * 392 - 2 = 782, 979
    assert s["lr"] == (
        "one-cycle per step (980 steps, cosine, counted from 0): 0.05 -> 0.1 "
        "at step 391 -> 0.05 at step 782 -> 5e-06 at step 979"
    )
    assert s["momentum"] == "fixed 0.9"
    two = TrainConfig.previous(epochs=1, three_phase=False, pct_start=0.3).schedules(10)["lr"]
    assert two.endswith("0.05 -> 0.1 at step 2 -> 5e-06 at step 9")
    assert (
        TrainConfig(three_phase=False).schedules(1)["momentum"]
        == "cycled opposite to the lr (cosine): 0.95 -> 0.85 at step 39 -> 0.95 at step 99"
    )
    old = TrainConfig.previous()
    assert (old.lr, old.momentum, old.momentum_schedule, old.recipe) == (
        0.05,
        0.9,
        "fixed",
        "previous",
    )


def test_unstratified_limit_is_the_subset_older_runs_used():
    # Runs before stratifying took the first N of one permutation drawn with seed 0; the book's
    # chapter-8 CPU runs were made that way and --no-limit-stratify must give them back.
    d = synthetic(60, 20)
    old = np.sort(np.random.default_rng(0).permutation(60)[:25])
    assert np.array_equal(d.limited(25, None, stratify=False).train_y, d.train_y[old])


def test_the_assignments_schedule_in_words():
    # 100 epochs of 98 batches (50,000 / 512): 9,800 steps; OneCycleLR's phases end at
    # 0.4 * 9800 - 1 = 3919, 2 * 0.4 * 9800 - 2 = 7838 and 9799. Start 0.1 / 20 = 0.005, end
    # 0.005 / 1e4 = 5e-7.
    s = TrainConfig().schedules(98)
    assert s["lr"] == (
        "one-cycle per step (9800 steps, cosine, counted from 0): 0.005 -> 0.1 "
        "at step 3919 -> 0.005 at step 7838 -> 5e-07 at step 9799"
    )
    assert s["momentum"] == (
        "cycled opposite to the lr (cosine): 0.95 -> 0.85 at step 3919 -> 0.95 at step 7838, "
        "then held"
    )
    cfg = TrainConfig()
    assert (cfg.recipe, cfg.batch_size, cfg.epochs, cfg.weight_decay) == ("assignment", 512, 100, 0)


def _torch_one_cycle(total: int) -> tuple[list[float], list[float]]:
    """The lr and momentum of each step under the assignment's own arguments: SGD(lr=0.05,
    momentum=0.9) and OneCycleLR(max_lr=0.1, pct_start=0.4, div_factor=20, three_phase=True),
    every other argument torch's default."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.1, total_steps=total, pct_start=0.4, div_factor=20, three_phase=True
    )
    lrs, moms = [], []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    return lrs, moms


def test_the_trainer_steps_as_the_assignments_one_cycle(tmp_path, tiny_model):
    # 10 images, batch 2, 2 epochs: 10 steps of the default recipe, step by step as torch's
    # OneCycleLR with the assignment's arguments gives them.
    _, s = go(tmp_path, "a", tiny_model, synthetic(10, 4), epochs=2, batch_size=2)
    lrs, moms = _torch_one_cycle(10)
    assert s["trainer"]["lr_steps"] == pytest.approx(lrs, rel=1e-12, abs=0)
    assert s["trainer"]["momentum_steps"] == pytest.approx(moms, rel=1e-12, abs=0)
    # by hand: peak at step 0.4 * 10 - 1 = 3, back at 2 * 4 - 2 = 6, floor at 9
    assert [lrs[i] for i in (0, 3, 6, 9)] == pytest.approx([0.005, 0.1, 0.005, 5e-7], rel=1e-12)
    assert [moms[i] for i in (0, 3, 6, 9)] == pytest.approx([0.95, 0.85, 0.95, 0.95], rel=1e-12)


def test_the_previous_recipe_steps_as_before(tmp_path, tiny_model):
    _, s = go(
        tmp_path,
        "p",
        tiny_model,
        synthetic(10, 4),
        recipe=TrainConfig.previous,
        epochs=2,
        batch_size=2,
    )
    lr = s["trainer"]["lr_steps"]
    # start 0.05 (div_factor 0.1 / 0.05 = 2), floor 0.05 / 1e4; momentum held at 0.9
    assert [lr[i] for i in (0, 3, 6, 9)] == pytest.approx([0.05, 0.1, 0.05, 5e-6], rel=1e-12)
    assert s["trainer"]["momentum_steps"] == [0.9] * 10


def test_recipes_and_departures():
    from training.config import RECIPES

    assert set(RECIPES) == {"assignment", "previous"}
    assert RECIPES["assignment"]() == TrainConfig()
    assert RECIPES["previous"]() == TrainConfig.previous()
    assert TrainConfig().departures() == {} and TrainConfig.previous().departures() == {}
    assert TrainConfig.previous(lr=0.02, seed=3).departures() == {"lr": 0.02, "seed": 3}
    changed = TrainConfig(aug=AugConfig.off()).departures()
    assert changed and all(k.startswith("aug.") and k.endswith("_p") for k in changed)
    # undecided automatic settings (None) and the worker count are not departures; decided
    # for the CPU they are what the assignment's code did (float32, per-image augmentation)
    assert TrainConfig().resolved(CPU).departures() == {}
    with pytest.raises(ValueError, match="--recipe must be one of assignment, previous"):
        TrainConfig(recipe="mine").check()


def test_departures_show_the_settings_a_gpu_decides():
    """The assignment's code trained in float32 on contiguous tensors, uncompiled, with
    albumentations per image and a DataLoader keeping each epoch's last partial batch; a GPU
    run decides all five the other way, and each must show as a departure."""
    gpu = torch.device("cuda")  # resolved() only reads the type: no GPU needed
    on_gpu = {"fast": True, "amp": True, "channels_last": True, "compile": True}
    assert TrainConfig().resolved(gpu).departures() == {**on_gpu, "drop_last": True}
    # the same for the previous recipe, beside its own departures
    assert TrainConfig.previous(lr=0.02).resolved(gpu).departures() == {
        "lr": 0.02,
        **on_gpu,
        "drop_last": True,
    }
    # set by hand: the tensor path keeping its partial batches departs only in the path
    assert TrainConfig(fast=True, drop_last=False).departures() == {"fast": True}
    # still undecided: not counted
    assert TrainConfig(amp=None, compile=None).departures() == {}
