"""Issue #27: five timm models that came out unknown (weights never downloaded:
pretrained=False). Analysed on real values, so the perturbation check ran over every exact
row: a contradicted row would be unknown, and none is."""

from __future__ import annotations

import pytest
import torch

from rfcalc import EXACT, GLOBAL, UNKNOWN, analyze

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
    # attention, or an SE gate, over the whole map ends in a global output
    assert a.output.status == GLOBAL and a.covers_input


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
