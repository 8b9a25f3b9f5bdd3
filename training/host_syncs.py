"""Count the places where the host waits for the device, so that a test on the CPU can say
"this training step never synchronises" without a GPU.

On a GPU, `torch.cuda.set_sync_debug_mode("error")` catches the synchronisations themselves;
on the CPU every tensor is already on the host, so nothing blocks and nothing can be caught
that way. This counter looks for the calls that *would* block on a GPU instead:

* a value read into Python (`.item()`, `.tolist()`, `.numpy()`, `bool(t)`, `int(t)`, ...);
* an op whose output size depends on the data (`nonzero`, a boolean-mask index,
  `masked_select`, `unique`, ...): the host must learn the size before it can go on;
* a tensor made from host data for a device inside the step (`torch.tensor(list,
  device=...)`, `torch.as_tensor(..., device=...)`), or a blocking `.to(device)` (without
  `non_blocking=True`): on a GPU a copy from pageable memory that waits for the stream;
* a copy to the host (`.cpu()`).

On the CPU every device is the same, so a `.to(device)` is counted whatever it names: inside
a training step every tensor should already be where it is used. Random draws on the device,
arithmetic and in-place updates are not syncs and are not counted.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Optional

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

_READS = {
    torch.Tensor.item: "item",
    torch.Tensor.tolist: "tolist",
    torch.Tensor.numpy: "numpy",
    torch.Tensor.__bool__: "bool",
    torch.Tensor.__int__: "int",
    torch.Tensor.__float__: "float",
    torch.Tensor.__index__: "index",
    torch.Tensor.__array__: "array",
    torch.Tensor.cpu: "cpu",
}
_FROM_HOST = {torch.tensor: "tensor", torch.as_tensor: "as_tensor"}
# Data-dependent output sizes, at the dispatcher (also reached through indexing).
_DATA_SIZED = ("nonzero", "masked_select", "unique", "_unique", "_unique2", "unique_dim")


class _Functions(TorchFunctionMode):
    def __init__(self, counts: Counter):
        super().__init__()
        self.counts = counts

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = _READS.get(func)
        if name is not None:
            self.counts[name] += 1
        elif func in _FROM_HOST and "device" in kwargs and kwargs["device"] is not None:
            self.counts[f"{_FROM_HOST[func]}(device=...)"] += 1
        elif func is torch.Tensor.to and args and isinstance(args[0], torch.Tensor):
            target = _target_device(args[1:], kwargs)
            # Inside a step every tensor should already be where it is used: a blocking copy
            # to a named device is counted whatever the devices (on the CPU they are the same).
            if target is not None and not kwargs.get("non_blocking", False):
                self.counts["to(device)"] += 1
        elif func is torch.Tensor.__getitem__ and len(args) > 1 and _has_bool_index(args[1]):
            self.counts["bool-mask index"] += 1
        return func(*args, **kwargs)


def _target_device(args: tuple, kwargs: dict) -> Optional[torch.device]:
    for a in (*args, kwargs.get("device")):
        if isinstance(a, (torch.device, str)):
            try:
                return torch.device(a)
            except RuntimeError:
                continue
    return None


def _has_bool_index(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


class _Dispatch(TorchDispatchMode):
    def __init__(self, counts: Counter):
        super().__init__()
        self.counts = counts

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in _DATA_SIZED:
            self.counts[name] += 1
        elif name == "_local_scalar_dense":
            self.counts["scalar read"] += 1
        return func(*args, **(kwargs or {}))


class count_host_syncs:
    """Context manager: `with count_host_syncs(device) as c: step()`; then `c.counts` maps
    each kind of would-be synchronisation to how often it happened, and `c.total` sums them.

    Counting is for tests and benchmarks: it slows every op down.
    """

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self._modes: list = []

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __enter__(self) -> "count_host_syncs":
        self._modes = [_Functions(self.counts), _Dispatch(self.counts)]
        for m in self._modes:
            m.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        for m in reversed(self._modes):
            m.__exit__(*exc)
