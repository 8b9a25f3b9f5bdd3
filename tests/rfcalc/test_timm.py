"""Issue #27: five timm models that came out unknown (weights never downloaded:
pretrained=False). Analysed on real values, so the perturbation check ran over every exact
row: a contradicted row would be unknown, and none is."""

from __future__ import annotations

import os

import pytest
import torch
from measure import reads, unit_gradient

from rfcalc import APPROX, EXACT, GLOBAL, UNKNOWN, analyze
from rfcalc.record import record

timm = pytest.importorskip("timm")

# (model, input side): HaloNet's blocks of 8 need a side that stage 3 divides by 8; its
# default 256 (at 224 the model itself refuses: 14 % 8)
MODELS = [
    ("mobilevit_xxs", 224),
    ("tresnet_m", 224),
    ("halonet26t", 256),
    ("efficientformerv2_s0", 224),
    ("tiny_vit_5m_224", 224),
]


@pytest.mark.parametrize("name,side", MODELS)
def test_no_row_is_unknown(name, side):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False).eval()
    a = analyze(model, (3, side, side))
    unknown = [(r.name, r.note) for r in a.rows if r.status == UNKNOWN]
    assert not unknown, unknown[:3]
    assert a.rows[0].status == EXACT  # the stem's first conv (or TResNet's space-to-depth)
    # attention, or an SE gate, over the whole map: a global output; TinyViT's windows and
    # its global pool: an approx field as wide as the image
    assert a.output.status in (GLOBAL, APPROX) and a.covers_input


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RFCALC_SLOW") != "1", reason="set RFCALC_SLOW=1 (8 s)")
def test_tiny_vit_window_attention_is_local():
    # stage 1's 7x7-token windows (SDPA with a learned bias as its mask): each unit reads
    # its window, not the image. At initialisation unit (10, 10)'s gradient spans rows and
    # columns 49..111 (63 pixels) only because timm starts the MBConv blocks' last
    # BatchNorm at weight 0 (bn_weight_init=0.0): stage 0's blocks add nothing yet, and
    # each token reads 15 pixels instead of its 31. With those weights at 1 the same unit
    # reads 41..119: its window's 7 tokens (8 pixels apart) with 31 pixels each, 79 wide,
    # which is the approx rf (the widest unit's), so the bound is tight
    torch.manual_seed(0)
    model = timm.create_model("tiny_vit_5m_224", pretrained=False).eval()
    row = "stages.1.blocks.0.reshape_1"
    r = analyze(model, (3, 224, 224))[row]
    assert r.status == APPROX and r.size == (28, 28)
    grad = unit_gradient(model, (3, 224, 224), row, (10, 10), dtype=torch.float32)
    _, spans = reads(grad)
    assert spans == ((49, 111), (49, 111))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.fill_(1.0)
    grad = unit_gradient(model, (3, 224, 224), row, (10, 10), dtype=torch.float32)
    _, spans = reads(grad)
    assert spans == ((41, 119), (41, 119))
    assert all(hi - lo + 1 == rf for (lo, hi), rf in zip(spans, r.rf))


def test_tresnet_space_to_depth_reads_its_block():
    # measured: one unit of the space-to-depth's output, its gradient on the input
    model = timm.create_model("tresnet_m", pretrained=False).eval()
    a = analyze(model, (3, 224, 224))
    s2d = a["body.s2d"]
    assert s2d.status == EXACT and s2d.size == (56, 56)
    probe = torch.randn(1, 3, 224, 224, requires_grad=True)
    out = model.body.s2d(probe)
    (grad,) = torch.autograd.grad(out[0, :, 10, 20].sum(), probe)
    rows, cols = torch.nonzero(grad[0].abs().sum(0), as_tuple=True)
    assert (int(rows.min()), int(rows.max())) == (40, 43)  # 4·10 .. 4·10 + 3
    assert (int(cols.min()), int(cols.max())) == (80, 83)
    assert int((grad[0].abs().sum(0) != 0).sum()) == 16  # every pixel of the block
    assert s2d.rf == (4, 4) and s2d.jump == (4, 4) and s2d.start == (1.5, 1.5)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RFCALC_SLOW") != "1", reason="set RFCALC_SLOW=1 (1 min)")
def test_halonet_halo_attention_reads_its_blocks_window():
    # stage 3's halo attention at 256² (a 16x16 map, blocks of 8, halo 2): measured by
    # gradient (BatchNorm weights at 1: timm starts some at 0), a unit of the first block
    # reads pixels 0..179 per axis, one of the second block 61..255: a window, not the image
    torch.manual_seed(0)
    model = timm.create_model("halonet26t", pretrained=False).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.fill_(1.0)
    seen = {}
    model.stages[2][1].self_attn.register_forward_hook(lambda m, i, o: seen.update(out=o))
    x = torch.randn(1, 3, 256, 256, requires_grad=True)
    model(x)
    spans = {}
    for unit in [(0, 0), (15, 15)]:
        (grad,) = torch.autograd.grad(
            seen["out"][0, :, unit[0], unit[1]].sum(), x, retain_graph=True
        )
        spans[unit] = reads(grad[0].abs().sum(0))[1]
    assert spans == {(0, 0): ((0, 179), (0, 179)), (15, 15): ((61, 255), (61, 255))}
    rows = [r for r in analyze(model, (3, 256, 256)) if r.name.startswith("stages.2.1.self_attn")]
    out = rows[-1]
    assert out.status == APPROX and out.size == (16, 16)
    assert all(rf >= 195 for rf in out.rf) and all(rf < 256 for rf in out.rf)
    # unit by unit, the claim is the measured window (never narrower)
    step = next(s for s in record(model, x.detach()).steps if s.name == out.name)
    for i in range(2):
        assert (step.field.axes[i].sees(0), step.field.axes[i].sees(15)) == (
            spans[(0, 0)][i],
            spans[(15, 15)][i],
        )
