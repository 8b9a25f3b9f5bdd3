"""Issue #27: Swin's rows stay per-axis fields stage by stage (window attention is local),
through the shifted windows (torch.roll), the (B, H·W, C) view around each block's MLP and
the PatchMerging reshape between stages; they used to turn global after stage 1's first
block. Every claim is measured by gradient (float64, random weights and probe: a masked
key's weight e^-100 is still non-zero there), never read from rfcalc's output.

A shifted window at the map's edge holds positions from both ends (Swin's mask adds -100,
not -inf, so those keys are still read): the widest unit of a shifted block reads the whole
image along an axis, and the rf (the widest unit's) says so, while a unit in the middle
reads its window. The per-unit claims are what the tests pin.
"""

from __future__ import annotations

import os

import pytest
import torch

from rfcalc import APPROX, EXACT, GLOBAL, UNKNOWN, analyze
from rfcalc.record import record

timm = pytest.importorskip("timm")
from timm.models.swin_transformer import SwinTransformer  # noqa: E402

SHAPE = (3, 32, 32)  # patches of 2: a 16x16 map, windows of 4 tokens (8 pixels), 3 stages
BLOCK_ROWS = [
    "layers.0.blocks.0.add",  # after window attention
    "layers.0.blocks.0.reshape_1",  # after the MLP over (B, H·W, C), back as the map
    "layers.0.blocks.1.add",  # after shifted window attention (roll, mask, roll back)
    "layers.0.blocks.1.reshape_1",
    "layers.1.downsample.reduction",  # PatchMerging: 2x2 positions into channels
    "layers.1.blocks.0.add",
    "layers.1.blocks.1.reshape_1",
    "layers.2.downsample.reduction",
]


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return (
        SwinTransformer(
            img_size=32,
            patch_size=2,
            embed_dim=8,
            depths=(2, 2, 2),
            num_heads=(1, 1, 1),
            window_size=4,
            num_classes=0,
        )
        .double()
        .eval()
    )


def measured_lines(m, rows: list[str]) -> dict[str, list[list[tuple[int, int]]]]:
    """{row: per axis, per unit o along it, the first and last input pixel (along that
    axis) that any unit at o reaches}: the gradient of the sum over the slice at o."""
    gen = torch.Generator().manual_seed(1)
    probe = torch.randn((1, *SHAPE), dtype=torch.float64, generator=gen)
    probe.requires_grad_(True)
    with torch.enable_grad():
        rec = record(m, probe, keep_tensors=set(rows))
        out = {}
        for step in rec.steps:
            if step.name not in rows:
                continue
            t, dims = step.tensor, (-3, -2)  # every row here is (B, H, W, C)
            per_axis = []
            for i, d in enumerate(dims):
                spans = []
                for o in range(t.shape[d]):
                    index = [slice(None)] * t.dim()
                    index[d] = o
                    (grad,) = torch.autograd.grad(t[tuple(index)].sum(), probe, retain_graph=True)
                    line = grad[0].abs().sum(0).sum(1 - i) != 0
                    hit = torch.nonzero(line).flatten()
                    spans.append((int(hit[0]), int(hit[-1])))
                per_axis.append(spans)
            out[step.name] = per_axis
    return out


@pytest.fixture(scope="module")
def swin():
    m = model()
    return m, analyze(m, SHAPE), measured_lines(m, BLOCK_ROWS)


def test_every_stage_keeps_a_per_axis_field_that_holds_what_units_read(swin):
    m, a, lines = swin
    assert set(lines) == set(BLOCK_ROWS)
    for name in BLOCK_ROWS:
        row = a[name]
        assert row.status == APPROX, (name, row.status, row.note)
        assert row.size == (len(lines[name][0]), len(lines[name][1]))
        for i, spans in enumerate(lines[name]):
            widest = max(hi - lo + 1 for lo, hi in spans)
            assert widest <= row.rf[i], (name, i, widest, row.rf[i])  # never under-claimed


def test_units_claim_the_window_they_read(swin):
    """Per unit along each axis, the claimed span is the measured one (tight, and so never
    smaller): checked against the recorded fields unit by unit."""
    m, a, lines = swin
    probe = torch.zeros((1, *SHAPE), dtype=torch.float64)
    rec = record(m, probe)
    fields = {s.name: s.field for s in rec.steps if s.name in BLOCK_ROWS}
    for name in BLOCK_ROWS:
        f = fields[name]
        assert f.dims == (-3, -2)
        for i, spans in enumerate(lines[name]):
            claimed = [f.axes[i].sees(o) for o in range(f.axes[i].size)]
            assert claimed == spans, (name, i)


def test_window_attention_is_local_stage_by_stage(swin):
    # the numbers below are the gradient's (measured_lines), by hand: the first block's
    # windows are 4 tokens of 2 pixels, so unit 8 reads pixels 16..23
    _, a, lines = swin
    assert lines["layers.0.blocks.0.add"][0][8] == (16, 23)
    assert a["layers.0.blocks.0.add"].rf == (8, 8)
    # shifted by 2 tokens: unit 8 sits in the window of tokens 6..9 (pixels 12..19), and the
    # unshifted window before it makes that 8..23; at the edge a window wraps round
    assert lines["layers.0.blocks.1.add"][0][8] == (8, 23)
    assert lines["layers.0.blocks.1.add"][0][0] == (0, 31)
    assert a["layers.0.blocks.1.add"].rf == (32, 32)
    # PatchMerging: unit 4 of the 8x8 map holds tokens 8 and 9
    assert lines["layers.1.downsample.reduction"][0][4] == (8, 23)
    # the last stage's one window is the whole map: attention there is global, and so is
    # every row after it (not unknown: the window reverse puts the map back)
    assert a["layers.2.blocks.0.attn.proj"].status == GLOBAL
    assert a["layers.2.blocks.1.reshape_1"].status == GLOBAL
    assert a["layers.2.blocks.1.reshape_1"].size == (4, 4)
    assert a.output.status == GLOBAL
    assert a["patch_embed.proj"].status == EXACT
    assert not [r.name for r in a.rows if r.status == UNKNOWN]


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RFCALC_SLOW") != "1", reason="set RFCALC_SLOW=1 (20 s)")
def test_swin_tiny_rows_after_stage_one_are_not_global():
    """timm's swin_tiny at 224²: the stages with more than one window (56², 28², 14² maps of
    7x7 windows) keep per-axis fields; the last (7², one window) is global."""
    torch.manual_seed(0)
    m = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False).eval()
    a = analyze(m, (3, 224, 224))
    for stage, side in [(0, 56), (1, 28), (2, 14)]:
        rows = [r for r in a.rows if r.name.startswith(f"layers.{stage}.blocks.")]
        ends = [r for r in rows if r.name.endswith(".reshape_1")]
        assert ends and all(r.status == APPROX and r.size == (side, side) for r in ends)
    assert a["layers.0.blocks.0.add"].rf == (28, 28)  # a window: 7 tokens of 4 pixels
    assert a["layers.3.blocks.0.attn.proj"].status == GLOBAL
    assert a["layers.3.blocks.1.reshape_1"].status == GLOBAL
    assert not [r.name for r in a.rows if r.status == UNKNOWN]
