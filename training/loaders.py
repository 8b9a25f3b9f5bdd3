"""Mini-batches for one epoch, two ways with the same interface (`len()`, `epoch(e)`):

* `ReferenceBatches`: a torch DataLoader whose workers run the albumentations pipeline per
  image (the reference, portable, CPU-bound);
* `TensorBatches`: the uint8 set kept on the training device, augmented there a whole batch
  at a time with torch ops (the fast path on a GPU).

Both take a `sampler` (any torch Sampler; one with `set_epoch`, such as DistributedSampler,
is told the epoch) so a DDP run can shard the data; the default shuffles from (seed, epoch),
which is what makes a resumed run draw the same batches as an uninterrupted one.
"""
from __future__ import annotations

from typing import Iterator, Optional, Sequence, Sized

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .augment import AugConfig, TensorAugment, albumentations_pipeline


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A distinct 63-bit seed per (run seed, epoch, stream): order, augmentation, workers."""
    return (seed * 1_000_003 + epoch * 101 + stream) % (2 ** 63)


class EpochShuffle(Sampler[int]):
    """A fresh permutation each epoch, fixed by (seed, epoch); `shuffle=False` keeps order."""

    def __init__(self, n: int, seed: int, shuffle: bool = True):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.n))
        g = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.n, generator=g).tolist())


def _num_batches(n: int, batch_size: int) -> int:
    return (n + batch_size - 1) // batch_size


class _AlbumentationsSet(Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(image=self.images[i])["image"], int(self.labels[i])


def _seed_worker(worker_id: int) -> None:
    # Each worker's torch seed is derived from the loader's generator: reuse it for albumentations.
    info = torch.utils.data.get_worker_info()
    info.dataset.transform.set_random_seed(torch.initial_seed() % 2 ** 32)


class ReferenceBatches:
    """Batches through a DataLoader running the albumentations pipeline in `workers` processes."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int,
                 aug: Optional[AugConfig], mean: Sequence[float], std: Sequence[float], *,
                 seed: int, workers: int = 0, sampler: Optional[Sampler] = None,
                 pin_memory: bool = False):
        transform = albumentations_pipeline(aug or AugConfig.off(), mean, std)
        self.dataset = _AlbumentationsSet(images, labels, transform)
        self.sampler = sampler if sampler is not None else EpochShuffle(len(labels), seed)
        self.batch_size, self.seed, self.workers = batch_size, seed, workers
        self.pin_memory = pin_memory

    def __len__(self) -> int:
        return _num_batches(len(self.sampler), self.batch_size)  # type: ignore[arg-type]

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        if self.workers == 0:
            self.dataset.transform.set_random_seed(epoch_seed(self.seed, epoch, 1) % 2 ** 32)
        loader = DataLoader(self.dataset, batch_size=self.batch_size, sampler=self.sampler,
                            num_workers=self.workers, worker_init_fn=_seed_worker,
                            generator=torch.Generator().manual_seed(epoch_seed(self.seed, epoch, 2)),
                            pin_memory=self.pin_memory, persistent_workers=False)
        return iter(loader)


class TensorBatches:
    """Batches cut from a uint8 set held on `device` and augmented there (or only normalized)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int,
                 aug: Optional[AugConfig], mean: Sequence[float], std: Sequence[float], *,
                 seed: int, device: torch.device, sampler: Optional[Sized] = None,
                 shuffle: bool = True):
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(device)
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
        self.augment = TensorAugment(aug, mean, std)
        self.train = aug is not None
        self.sampler = sampler if sampler is not None else EpochShuffle(len(labels), seed, shuffle)
        self.batch_size, self.seed, self.device = batch_size, seed, device

    def __len__(self) -> int:
        return _num_batches(len(self.sampler), self.batch_size)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        order = torch.as_tensor(list(iter(self.sampler)), dtype=torch.long).to(self.device)
        g = torch.Generator(device=self.device)
        g.manual_seed(epoch_seed(self.seed, epoch, 1))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.augment(self.images[idx], g, train=self.train), self.labels[idx]
