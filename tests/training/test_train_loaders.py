"""The two batch loaders beyond batch order: training batches augmented and test batches not,
a caller's sampler honoured, augmentation draws reproducible per (seed, epoch) and distinct
per batch, labels as int64 whatever their stored type."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Sampler

from training.augment import AugConfig
from training.distributed import World
from training.loaders import EpochShuffle, ReferenceBatches, TensorBatches, _BatchKeys

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.1)
CPU = torch.device("cpu")
N = 24


def images(n: int = N, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)


def normalized(x: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
    return (t - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


def make(kind: str, aug, *, labels=None, sampler=None, seed: int = 3, data=None):
    data = images() if data is None else data
    labels = np.arange(len(data)) if labels is None else labels
    if kind == "tensor":
        return TensorBatches(
            data, labels, 8, aug, MEAN, STD, seed=seed, device=CPU, sampler=sampler
        )
    return ReferenceBatches(data, labels, 8, aug, MEAN, STD, seed=seed, sampler=sampler)


def epoch(batches, e: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(batches.epoch(e))


KINDS = ["tensor", "reference"]
# every op on at p = 1, with a hole that fits the 16 x 16 test images
ALL = AugConfig(flip_p=1, affine_p=1, jitter_p=1, gray_p=1, cutout_p=1, cutout_size=4)


@pytest.mark.parametrize("kind", KINDS)
def test_without_augmentation_the_batches_are_the_normalized_images(kind):
    data = images()
    for x, y in epoch(make(kind, None, data=data), 0):
        assert torch.allclose(x, normalized(data[y.numpy()]), atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_with_augmentation_every_image_is_changed(kind):
    data = images()
    for x, y in epoch(make(kind, ALL, data=data), 0):
        same = torch.isclose(x, normalized(data[y.numpy()]), atol=1e-3).flatten(1).all(1)
        assert not same.any()


class Backwards(Sampler[int]):
    def __init__(self, n: int):
        self.n, self.epochs = n, []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(range(self.n - 1, -1, -1))


@pytest.mark.parametrize("kind", KINDS)
def test_a_callers_sampler_decides_the_order_and_hears_the_epoch(kind):
    sampler = Backwards(N)
    batches = make(kind, None, sampler=sampler)
    order = [int(i) for _, y in epoch(batches, 5) for i in y]
    assert order == list(range(N - 1, -1, -1)) and sampler.epochs == [5]


@pytest.mark.parametrize("kind", KINDS)
def test_draws_are_fixed_by_seed_and_epoch_not_by_the_global_generator(kind):
    same = np.repeat(images(1), N, axis=0)  # one image: only the draws tell batches apart
    batches = make(kind, ALL, data=same)
    torch.manual_seed(11)
    np.random.seed(11)
    first = epoch(batches, 2)
    torch.manual_seed(12)
    np.random.seed(12)
    again = epoch(batches, 2)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again))
    # other epochs draw otherwise, and so does each batch of one epoch
    assert not torch.equal(first[0][0], epoch(batches, 3)[0][0])
    xs = [x for x, _ in first]
    assert all(not torch.equal(xs[i], xs[j]) for i in range(3) for j in range(i + 1, 3))


@pytest.mark.parametrize("kind", KINDS)
def test_batches_of_one_epoch_are_not_seeded_alike(kind):
    # Eight batches of the same image: batch seeds that repeat (a few distinct values) would
    # give two equal batches.
    same = np.repeat(images(1), 64, axis=0)
    xs = [x for x, _ in epoch(make(kind, ALL, data=same), 0)]
    assert len(xs) == 8
    assert len({x.numpy().tobytes() for x in xs}) == 8


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stored", [np.uint8, np.int32])
def test_labels_come_out_int64_whatever_they_were_stored_as(kind, stored):
    labels = (np.arange(N) % 10).astype(stored)
    for _, y in epoch(make(kind, None, labels=labels), 0):
        assert y.dtype == torch.int64


class WhereAmI:
    """A transform whose image says where it ran: 1 in a DataLoader worker, 0 in-process."""

    def set_random_seed(self, seed):
        pass

    def __call__(self, image):
        inside = torch.utils.data.get_worker_info() is not None
        return {"image": torch.full((3, 16, 16), float(inside))}


@pytest.mark.parametrize("workers, inside", [(None, 0.0), (0, 0.0), (2, 1.0)])
def test_reference_batches_load_where_workers_says(workers, inside):
    # Workers are opt-in: by default (and with 0) the main process loads; with 2, workers do.
    # (Left out of mutmut's runs, like the other test that forks DataLoader workers.)
    data = images()
    kw = {} if workers is None else {"workers": workers}
    batches = ReferenceBatches(data, np.arange(N), 8, None, MEAN, STD, seed=3, **kw)
    batches.dataset.transform = WhereAmI()
    xs = [x for x, _ in batches.epoch(0)]
    assert len(xs) == 3 and all(bool((x == inside).all()) for x in xs)


@pytest.mark.parametrize("n, size", [(10, 4), (8, 4), (1, 4), (0, 4)])
def test_batch_keys_count_their_batches(n, size):
    keys = _BatchKeys(range(n), size, lambda k: k)
    assert len(keys) == len(list(keys)) == -(-n // size)


def _rank_batches(rank: int, seed: int = 3) -> TensorBatches:
    same = np.repeat(images(1), N, axis=0)
    return TensorBatches(
        same, np.arange(N), 8, ALL, MEAN, STD, seed=seed, device=CPU, world=World(rank, 2)
    )


def test_each_rank_draws_its_own_augmentation_fixed_by_seed_and_epoch():
    # Two processes share every global batch of 8 (4 images each). All images are the same,
    # so only the draws differ: rank 1 must not repeat rank 0's, and its draws, like rank
    # 0's, are fixed by (seed, epoch) and change with either.
    def first(rank: int, seed: int = 3, e: int = 0) -> torch.Tensor:
        x, y = next(iter(_rank_batches(rank, seed).epoch(e)))
        assert len(y) == 4
        return x

    zero, one = first(0), first(1)
    assert not torch.equal(zero, one)
    assert torch.equal(one, first(1))
    assert not torch.equal(one, first(1, seed=4)) and not torch.equal(one, first(1, e=1))


def test_augmentation_changes_with_the_run_seed():
    same = np.repeat(images(1), N, axis=0)
    for kind in KINDS:
        a = epoch(make(kind, ALL, data=same, seed=3), 0)[0][0]
        b = epoch(make(kind, ALL, data=same, seed=4), 0)[0][0]
        assert not torch.equal(a, b), kind


def test_no_two_of_two_hundred_epochs_shuffle_alike():
    # A long run must not repeat an epoch's order (a seed space of a few hundred would).
    s = EpochShuffle(30, seed=1)
    orders = set()
    for e in range(200):
        s.set_epoch(e)
        orders.add(tuple(s))
    assert len(orders) == 200


def test_reference_batches_load_quietly_without_an_accelerator():
    # Memory pinning is opt-in: asked for on a machine without a GPU, torch warns each epoch.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(epoch(make("reference", None), 0)) == 3


def test_reference_batches_pin_memory_when_asked():
    # Asked to pin, the loader pins (with a GPU) or torch says it cannot (without one).
    data = images()
    batches = ReferenceBatches(data, np.arange(N), 8, None, MEAN, STD, seed=3, pin_memory=True)
    if torch.cuda.is_available():
        assert all(x.is_pinned() for x, _ in batches.epoch(0))
    else:
        with pytest.warns(UserWarning, match="pin_memory"):
            list(batches.epoch(0))


@pytest.mark.parametrize("kind", KINDS)
def test_drop_last_leaves_out_the_partial_batch_other_images_each_epoch(kind):
    # 50 images in batches of 8: six full batches; the 2 left over are dropped, and since
    # each epoch shuffles anew, they are other images in other epochs.
    n, data = 50, images(50)
    labels = np.arange(n)  # the label says which image it is

    def batches(drop_last: bool):
        if kind == "tensor":
            return TensorBatches(
                data, labels, 8, None, MEAN, STD, seed=3, device=CPU, drop_last=drop_last
            )
        return ReferenceBatches(data, labels, 8, None, MEAN, STD, seed=3, drop_last=drop_last)

    dropping, keeping = batches(True), batches(False)
    assert (len(dropping), dropping.batch_sizes()) == (6, (8,))
    assert (len(keeping), keeping.batch_sizes()) == (7, (8, 2))
    left_out = set()
    for e in range(3):
        got = [y.tolist() for _, y in dropping.epoch(e)]
        assert [len(b) for b in got] == [8] * 6
        order = [i for b in got for i in b]
        assert len(set(order)) == 48
        # the same order as without dropping, cut before its last two
        assert order == [int(i) for _, y in keeping.epoch(e) for i in y][:48]
        left_out |= set(range(n)) - set(order)
    assert len(left_out) > 2


@pytest.mark.parametrize(
    "n, drop_last, sizes",
    [(50, False, (8, 2)), (50, True, (8,)), (48, False, (8,)), (5, False, (5,)), (5, True, ())],
)
def test_batch_sizes_of_an_epoch(n, drop_last, sizes):
    batches = TensorBatches(
        images(n), np.arange(n), 8, None, MEAN, STD, seed=1, device=CPU, drop_last=drop_last
    )
    assert batches.batch_sizes() == sizes
    assert sorted({len(y) for _, y in batches.epoch(0)}, reverse=True) == list(sizes)


def test_an_unaugmented_set_is_normalized_once_into_the_same_numbers():
    # The test set is normalized when loaded; its batches equal normalizing each batch.
    data = images()
    batches = make("tensor", None, data=data)
    augment = batches.augment
    for x, y in batches.epoch(0):
        assert torch.equal(x, augment(torch.from_numpy(data[y.numpy()]), None, train=False))
