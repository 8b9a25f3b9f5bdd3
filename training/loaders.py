"""Mini-batches for one epoch, two ways with the same interface (`len()`, `epoch(e)`):

* `ReferenceBatches`: a torch DataLoader whose workers run the albumentations pipeline per
  image (the reference, portable, CPU-bound);
* `TensorBatches`: the uint8 set kept on the training device, augmented there a whole batch
  at a time with torch ops (the fast path on a GPU).

Both take a `sampler` (any torch Sampler; one with `set_epoch` is told the epoch); the default
shuffles from (seed, epoch), which is what makes a resumed run draw the same batches as an
uninterrupted one. Under torchrun both shard every global batch over the ranks
(`distributed.GlobalBatchShard`). With `drop_last` an epoch ends with its last full batch, so
every batch has one shape (what torch.compile and CUDA graphs want).

`TensorBatches` makes no host synchronisation in an epoch: the epoch's order goes to the
device in one asynchronous copy, batches are cut from it there, and a set that is not
augmented (the test set) is normalized once, when it is loaded.
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional, Sequence, Sized

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .augment import AugConfig, TensorAugment, albumentations_pipeline
from .distributed import SINGLE, GlobalBatchShard, World, rank_seed


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A distinct 63-bit seed per (run seed, epoch, stream): order, augmentation, workers."""
    return (seed * 1_000_003 + epoch * 101 + stream) % (2**63)


class EpochShuffle(Sampler[int]):
    """A fresh permutation each epoch, fixed by (seed, epoch); `shuffle=False` keeps order."""

    def __init__(self, n: int, seed: int, shuffle: bool = True):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def order(self) -> torch.Tensor:
        """This epoch's order as a CPU tensor (what `iter` yields, without a Python list)."""
        if not self.shuffle:
            return torch.arange(self.n)
        g = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        return torch.randperm(self.n, generator=g)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order().tolist())


def _num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    return n // batch_size if drop_last else (n + batch_size - 1) // batch_size


def _batch_sizes(n: int, batch_size: int, drop_last: bool) -> tuple[int, ...]:
    """The distinct batch sizes of an epoch of n: the full one, and a partial last one."""
    full = (batch_size,) if n >= batch_size else ()
    rest = n % batch_size
    return full + ((rest,) if rest and not drop_last else ())


class _AlbumentationsBatches(Dataset):
    """Indexed by (batch seed, image indices): the batch, each image through the pipeline,
    the pipeline seeded once per batch. Whichever worker makes a batch, it comes out the same,
    so the results do not depend on the number of workers."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: tuple[int, list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        seed, idx = key
        self.transform.set_random_seed(seed)
        x = torch.stack([self.transform(image=self.images[i])["image"] for i in idx])
        return x, torch.as_tensor(self.labels[idx], dtype=torch.long)


class _BatchKeys(Sampler[tuple[int, list[int]]]):
    """The epoch's batches as (seed, indices): `sampler`'s order cut into batches."""

    def __init__(
        self,
        sampler: Sized,
        batch_size: int,
        seed_of: Callable[[int], int],
        drop_last: bool = False,
    ):
        self.sampler, self.batch_size, self.seed_of = sampler, batch_size, seed_of
        self.drop_last = drop_last

    def __len__(self) -> int:
        return _num_batches(len(self.sampler), self.batch_size, self.drop_last)

    def __iter__(self) -> Iterator[tuple[int, list[int]]]:
        order = list(iter(self.sampler))
        for k in range(len(self)):
            yield self.seed_of(k), order[k * self.batch_size : (k + 1) * self.batch_size]


def _stream_seed(seed: int, epoch: int, stream: int, world: World) -> int:
    """Rank 0 (and a single process) keeps the original streams; other ranks get their own."""
    if world.rank == 0:
        return epoch_seed(seed, epoch, stream)
    return rank_seed(seed, epoch, stream, world.rank)


def _sharded(sampler: Sized, batch_size: int, world: World) -> tuple[Sized, int]:
    """This rank's sampler and batch size: the global batch split over the ranks."""
    if world.size == 1:
        return sampler, batch_size
    return GlobalBatchShard(sampler, batch_size, world), batch_size // world.size


class ReferenceBatches:
    """Batches through a DataLoader running the albumentations pipeline in `workers` processes.

    The augmentation of batch k of epoch e is seeded from (seed, e, k), whatever the number
    of workers. `batch_size` is the global batch: under torchrun (`world`) each rank loads its
    slice of every global batch. `drop_last` leaves out the last partial batch.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        aug: Optional[AugConfig],
        mean: Sequence[float],
        std: Sequence[float],
        *,
        seed: int,
        workers: int = 0,
        sampler: Optional[Sampler] = None,
        pin_memory: bool = False,
        world: World = SINGLE,
        drop_last: bool = False,
    ):
        transform = albumentations_pipeline(aug or AugConfig.off(), mean, std)
        self.dataset = _AlbumentationsBatches(images, labels, transform)
        base = sampler if sampler is not None else EpochShuffle(len(labels), seed)
        self.sampler, self.batch_size = _sharded(base, batch_size, world)
        self.seed, self.workers, self.world = seed, workers, world
        self.pin_memory, self.drop_last = pin_memory, drop_last

    def __len__(self) -> int:
        return _num_batches(len(self.sampler), self.batch_size, self.drop_last)  # type: ignore[arg-type]

    def batch_sizes(self) -> tuple[int, ...]:
        """The distinct batch sizes of an epoch (for compiling each shape before epoch 1)."""
        return _batch_sizes(len(self.sampler), self.batch_size, self.drop_last)  # type: ignore[arg-type]

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        base = _stream_seed(self.seed, epoch, 1, self.world)
        keys = _BatchKeys(
            self.sampler, self.batch_size, lambda k: (base + 7919 * k) % 2**32, self.drop_last
        )
        loader = DataLoader(
            self.dataset,
            batch_size=None,
            sampler=keys,
            num_workers=self.workers,
            pin_memory=self.pin_memory,
            persistent_workers=False,
        )
        return iter(loader)


class TensorBatches:
    """Batches cut from a uint8 set held on `device` and augmented there (or only normalized).
    `batch_size` is the global batch; under torchrun each rank takes its slice of each.
    `drop_last` leaves out the last partial batch.

    An epoch makes no host synchronisation of its own: the order is copied to the device once
    (asynchronously from pinned memory on a GPU) and the batches are cut from it there. Without
    augmentation the set is normalized once here, and a batch is one gather.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        aug: Optional[AugConfig],
        mean: Sequence[float],
        std: Sequence[float],
        *,
        seed: int,
        device: torch.device,
        sampler: Optional[Sized] = None,
        shuffle: bool = True,
        world: World = SINGLE,
        drop_last: bool = False,
    ):
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(device)
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
        self.augment = TensorAugment(aug, mean, std)
        self.train = aug is not None
        # The same op as per batch, once for the whole set: equal numbers, no per-step work.
        self.normalized = None if self.train else self._normalize_all()
        base = sampler if sampler is not None else EpochShuffle(len(labels), seed, shuffle)
        self.sampler, self.batch_size = _sharded(base, batch_size, world)
        self.seed, self.device, self.world, self.drop_last = seed, device, world, drop_last
        self._fixed_order: Optional[torch.Tensor] = None

    def _normalize_all(self, chunk: int = 4096) -> torch.Tensor:
        parts = [
            self.augment(self.images[i : i + chunk], None, train=False)
            for i in range(0, len(self.images), chunk)
        ]
        return torch.cat(parts) if len(parts) != 1 else parts[0]

    def __len__(self) -> int:
        return _num_batches(len(self.sampler), self.batch_size, self.drop_last)

    def batch_sizes(self) -> tuple[int, ...]:
        """The distinct batch sizes of an epoch (for compiling each shape before epoch 1)."""
        return _batch_sizes(len(self.sampler), self.batch_size, self.drop_last)

    def _order(self) -> torch.Tensor:
        """The epoch's order on the device, without waiting for the copy."""
        s = self.sampler
        if isinstance(s, EpochShuffle) and not s.shuffle:
            if self._fixed_order is None:  # the same every epoch: copied once
                self._fixed_order = torch.arange(s.n, device=self.device)
            return self._fixed_order
        order = (
            s.order()
            if isinstance(s, EpochShuffle)
            else torch.as_tensor(list(iter(s)), dtype=torch.long)
        )
        if self.device.type == "cuda":
            order = order.pin_memory()
        return order.to(self.device, non_blocking=True)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        order = self._order()
        g = None
        if self.train:
            g = torch.Generator(device=self.device)
            g.manual_seed(_stream_seed(self.seed, epoch, 1, self.world))
        for k in range(len(self)):
            idx = order[k * self.batch_size : (k + 1) * self.batch_size]
            if self.normalized is not None:
                yield self.normalized[idx], self.labels[idx]
            else:
                yield self.augment(self.images[idx], g, train=True), self.labels[idx]
