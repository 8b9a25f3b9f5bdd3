"""Issue #27: halo attention (timm's HaloAttn, HaloNet): queries in blocks of b×b, keys and
values from overlapping windows of b + 2·halo cut by `Tensor.unfold` (size win, step b)
after a zero pad, relative-position logits computed from each query alone. Each unit reads
its block's window, not the map: an approx field (the box per axis), measured here by
gradient (float64, random weights and probe), unit line by unit line."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from rfcalc import APPROX, analyze
from rfcalc.record import record

pytest.importorskip("timm")
from timm.layers.halo_attn import HaloAttn  # noqa: E402

SHAPE = (3, 16, 16)
BLOCK, HALO = 4, 1  # windows of 6: block k reads map units 4k-1 .. 4k+4 (clipped)


def model() -> nn.Module:
    torch.manual_seed(0)
    attn = HaloAttn(16, 16, num_heads=2, block_size=BLOCK, halo_size=HALO)
    return nn.Sequential(nn.Conv2d(3, 16, 1), attn).double().eval()


def measured_lines(m: nn.Module, row: str) -> list[list[tuple[int, int]]]:
    """Per axis, per unit o along it: the first and last input pixel (along that axis)
    that any unit at o reaches (the gradient of the sum over the slice at o)."""
    gen = torch.Generator().manual_seed(1)
    probe = torch.randn((1, *SHAPE), dtype=torch.float64, generator=gen).requires_grad_(True)
    with torch.enable_grad():
        step = next(s for s in record(m, probe, keep_tensors={row}).steps if s.name == row)
        t = step.tensor  # (B, C, H, W)
        out = []
        for i, d in enumerate((-2, -1)):
            spans = []
            for o in range(t.shape[d]):
                index = [slice(None)] * t.dim()
                index[d] = o
                (grad,) = torch.autograd.grad(t[tuple(index)].sum(), probe, retain_graph=True)
                hit = torch.nonzero(grad[0].abs().sum(0).sum(1 - i) != 0).flatten()
                spans.append((int(hit[0]), int(hit[-1])))
            out.append(spans)
    return out


def test_halo_attention_reads_its_blocks_window():
    m = model()
    a = analyze(m, SHAPE)
    out = a.output
    assert out.status == APPROX and out.size == (16, 16)
    lines = measured_lines(m, out.name)
    # by hand: block 0 (units 0..3) reads units 0..4 (the halo before it is padding),
    # block 1 (units 4..7) reads 3..8, the last block 11..15
    assert lines[0][0] == (0, 4) and lines[0][5] == (3, 8) and lines[0][15] == (11, 15)
    assert out.rf == (6, 6)  # an interior block's window: 4 + 2·1
    zeros = torch.zeros((1, *SHAPE), dtype=torch.float64)
    field = next(s for s in record(m, zeros).steps if s.name == out.name).field
    for i in range(2):
        assert [field.axes[i].sees(o) for o in range(16)] == lines[i]
