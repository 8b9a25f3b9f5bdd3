"""The would-be host synchronisation counter: each kind it must see, and what it must not."""

from __future__ import annotations

import pytest
import torch

from training.host_syncs import count_host_syncs

x = torch.arange(12.0).reshape(3, 4)


@pytest.mark.parametrize(
    "step, kind",
    [
        (lambda: x.sum().item(), "item"),
        (lambda: x[0].tolist(), "tolist"),
        (lambda: x.numpy(), "numpy"),
        (lambda: bool(x[0, 1] > 0), "bool"),
        (lambda: int(x[0, 1]), "int"),
        (lambda: float(x[0, 1]), "float"),
        (lambda: x.cpu(), "cpu"),
        (lambda: torch.nonzero(x > 3), "nonzero"),
        (lambda: x[x > 3], "bool-mask index"),
        (lambda: torch.masked_select(x, x > 3), "masked_select"),
        (lambda: torch.tensor([1, 2], device="cpu"), "tensor(device=...)"),
        (lambda: torch.as_tensor([1, 2], device=torch.device("cpu")), "as_tensor(device=...)"),
        (lambda: x.to("cpu"), "to(device)"),
        (lambda: x.to(device=torch.device("cpu")), "to(device)"),
    ],
)
def test_each_kind_of_sync_is_counted(step, kind):
    with count_host_syncs() as c:
        step()
    assert c.counts[kind] >= 1, dict(c.counts)


def test_device_side_work_is_not_counted():
    g = torch.Generator().manual_seed(0)
    with count_host_syncs() as c:
        r = torch.rand(3, 4, generator=g)
        y = torch.where(r < 0.5, x * 2, x).flip(-1)
        y.add_(1).clamp_(0, 5)
        y.to(torch.float64)  # a dtype, no device
        y.to("cpu", non_blocking=True)  # asynchronous from pinned memory on a GPU
        torch.randperm(5, generator=g)
        y.argmax(1)
    assert c.total == 0, dict(c.counts)


def test_counts_add_up_and_stop_at_exit():
    with count_host_syncs() as c:
        x.sum().item()
        x.tolist()
    x.sum().item()  # outside: not counted
    assert c.total == sum(c.counts.values()) >= 2
    assert c.counts["tolist"] == 1
