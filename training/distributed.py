"""Several processes training one model (torchrun): who am I, and the few collective steps.

torchrun sets WORLD_SIZE, RANK and LOCAL_RANK; without them (or with WORLD_SIZE=1) this is a
single process and every helper here is a no-op. The process group uses NCCL on GPUs and gloo
on CPUs. Each rank trains on its shard of every global batch (see `GlobalBatchShard`), DDP
averages the gradients, rank 0 alone writes files and prints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Sized

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one run."""

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes checkpoints, history, plots and prints progress."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of `t` over all ranks (in place; returned for chaining)."""
        if self.size > 1:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t


SINGLE = World()


def world_from_env(device: torch.device) -> World:
    """The World torchrun describes in the environment, joining its process group (NCCL for
    a GPU device, gloo for the CPU) the first time; a single process without torchrun."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SINGLE
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return World(rank=dist.get_rank(), size=dist.get_world_size())


def shutdown() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_seed(seed: int, epoch: int, stream: int, rank: int) -> int:
    """A seed for (run seed, epoch, stream) on a rank other than 0: distinct per rank."""
    return int(
        np.random.SeedSequence([seed, epoch, stream, rank]).generate_state(1, np.uint64)[0]
        >> np.uint64(1)
    )


class GlobalBatchShard(Sampler[int]):
    """Rank `rank`'s part of every global batch of `base`'s order: cut into global batches of
    `batch_size`, each split into `world` equal consecutive slices. Read in batches of
    batch_size / world, rank r's k-th batch is slice r of global batch k, so the ranks together
    see exactly the single-process batches. The order is first padded (by wrapping round, as
    DistributedSampler does) to a multiple of `world`, so the last batch splits evenly too.
    """

    def __init__(self, base: Sized, batch_size: int, world: World):
        if batch_size % world.size:
            raise ValueError(
                f"--batch-size {batch_size} must be a multiple of the "
                f"{world.size} processes (it is the global batch)"
            )
        self.base, self.batch_size, self.world = base, batch_size, world
        self.padded = -(-len(base) // world.size) * world.size

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return self.padded // self.world.size

    def __iter__(self) -> Iterator[int]:
        order = list(iter(self.base))
        order += order[: self.padded - len(order)]
        mine: list[int] = []
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            per = len(chunk) // self.world.size
            mine += chunk[self.world.rank * per : (self.world.rank + 1) * per]
        return iter(mine)
