"""The training loop never waits for the device inside an epoch or a test pass: the would-be
host synchronisations (`training.host_syncs`) of a pass do not grow with its steps.

Most tests here run without augmentation (the augmentation's own draws are tested with its
code, tests/training/test_augment_tensor.py); one runs each recipe's augmentation through the
whole loop (batch order, augmentation, steps, sums, progress bar, the test pass).
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from train_synth import make_images

from training.augment import AUG_PRESETS
from training.config import TrainConfig
from training.distributed import GlobalBatchShard, World
from training.engine import Trainer
from training.host_syncs import count_host_syncs
from training.loaders import EpochShuffle, TensorBatches
from training.models import load_model

CPU = torch.device("cpu")
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def trainer(tiny_model, train_steps: int, test_batches: int, progress: bool) -> Trainer:
    """Batches of 2 training images and 3 test images; the last test batch is partial (2 of
    3: padded)."""
    n_train, n_test = 2 * train_steps, 3 * test_batches - 1
    x, y = make_images(n_train + n_test, seed=0)
    train = TensorBatches(x[:n_train], y[:n_train], 2, None, MEAN, STD, seed=1, device=CPU)
    test = TensorBatches(
        x[n_train:], y[n_train:], 3, None, MEAN, STD, seed=1, device=CPU, shuffle=False
    )
    cfg = TrainConfig(epochs=2, batch_size=2)
    return Trainer(
        load_model(str(tiny_model)), train, test, cfg, CPU, loss="nll", progress=progress
    )


def syncs(step) -> Counter:
    with count_host_syncs() as c:
        step()
    return c.counts


def test_a_training_epoch_reads_back_once_whatever_its_length(tiny_model):
    # 2 steps against 22: a per-step read, or one every 20 steps (the progress bar's running
    # loss was one), would show as a difference. The bar is on.
    a, b = (trainer(tiny_model, n, 2, True) for n in (2, 22))
    short, long = syncs(lambda: a.train_epoch(0)), syncs(lambda: b.train_epoch(0))
    assert short == long
    assert sum(short.values()) == 1  # the epoch's sums, once, at its end


@pytest.mark.parametrize("recipe", ["assignment", "previous"])
def test_with_the_recipes_augmentation_an_epoch_still_reads_back_once(tiny_model, recipe):
    # The whole fast path as rftrain runs it: batch order, each recipe's augmentation on the
    # device (draws, jitter, affine, cutout), forward, backward, step.
    aug = AUG_PRESETS[recipe]

    def augmented(steps: int) -> Trainer:
        x, y = make_images(2 * steps + 5, seed=0)
        train = TensorBatches(x[:-5], y[:-5], 2, aug, MEAN, STD, seed=1, device=CPU)
        test = TensorBatches(x[-5:], y[-5:], 3, None, MEAN, STD, seed=1, device=CPU, shuffle=False)
        cfg = TrainConfig(epochs=2, batch_size=2)
        return Trainer(load_model(str(tiny_model)), train, test, cfg, CPU, loss="nll")

    a, b = augmented(2), augmented(9)
    short, long = syncs(lambda: a.train_epoch(0)), syncs(lambda: b.train_epoch(0))
    assert short == long
    assert sum(short.values()) == 1, dict(short)


def test_a_test_pass_reads_back_once_whatever_its_length(tiny_model):
    a, b = (trainer(tiny_model, 2, n, False) for n in (2, 8))
    short, long = syncs(a.evaluate), syncs(b.evaluate)
    assert short == long
    # the sums, and the predictions (one copy to the host, counted as .cpu and .numpy)
    assert short == Counter({"tolist": 1, "cpu": 1, "numpy": 1})


def test_the_batch_order_goes_to_the_device_in_one_piece():
    # The default shuffle hands its order over as a tensor; any other sampler (here the
    # shards of torchrun) is read once per epoch, not per batch.
    x, y = make_images(24, seed=0)
    for sampler, per_epoch in (
        (None, 0),
        (GlobalBatchShard(EpochShuffle(24, 1), 4, World(0, 2)), 1),
    ):
        batches = TensorBatches(x, y, 4, None, MEAN, STD, seed=1, device=CPU, sampler=sampler)
        counts = syncs(lambda b=batches: list(b.epoch(0)))
        assert sum(counts.values()) == per_epoch, dict(counts)


@pytest.mark.parametrize("shuffle", [True, False])
def test_epoch_shuffle_order_tensor_is_what_iteration_yields(shuffle):
    s = EpochShuffle(30, seed=4, shuffle=shuffle)
    s.set_epoch(3)
    assert s.order().tolist() == list(s)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_the_loop_synchronises_per_pass_not_per_step(tiny_model):
    # The same on a GPU, where torch itself reports each synchronisation: compiled with CUDA
    # graphs (the default there), after the warm-up.
    import warnings

    def counted(trainer: Trainer, step) -> int:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                step()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    gpu = torch.device("cuda")
    counts = []
    for steps in (2, 6):
        x, y = make_images(8 * steps + 20, seed=0)
        train = TensorBatches(x[:-20], y[:-20], 8, None, MEAN, STD, seed=1, device=gpu)
        test = TensorBatches(
            x[-20:], y[-20:], 8, None, MEAN, STD, seed=1, device=gpu, shuffle=False
        )
        cfg = TrainConfig(epochs=2, batch_size=8)  # compile, bf16, channels_last: the GPU's
        t = Trainer(load_model(str(tiny_model)), train, test, cfg, gpu, loss="nll")
        assert t.cuda_graphs
        t.warm_up()
        counts.append((counted(t, lambda t=t: t.train_epoch(0)), counted(t, t.evaluate)))
        assert t.graphs_since() == 0
    assert counts[0] == counts[1], counts
