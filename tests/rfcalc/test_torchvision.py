"""Published receptive fields of torchvision models (weights=None, nothing is downloaded).

VGG16 conv5_3 = 196 and pool5 = 212, ResNet-50 layer4 = 427 and Inception-v3 Mixed_7c = 1311
(Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural Networks",
Distill 2019). The gradient checks use inputs large enough that the centre unit's field lies
inside the image, so the measured span is the whole field.
"""

import os

import pytest
import torchvision

from rfcalc import EXACT, analyze, verify


def by_name(analysis):
    return {r.name: r for r in analysis.rows}


def test_vgg16_conv5_3_and_pool5():
    model = torchvision.models.vgg16(weights=None)
    r = by_name(analyze(model, (3, 224, 224)))
    # conv5_3 is features.28, pool5 features.30. By hand: 13 3x3 convs and 4 pools before
    # conv5_3 add 2·(1+1) + 1 + 2·(2+2) + 2 + 3·2·4 + 4 + 3·2·8 + 8 + 3·2·16 = 195 -> 196;
    # pool5 adds (2-1)·16 = 16 -> 212, with jump 32
    assert r["features.28"].rf == (196, 196) and r["features.28"].jump == (16, 16)
    assert r["features.30"].rf == (212, 212) and r["features.30"].jump == (32, 32)
    assert r["features.30"].status == EXACT
    # at 224 the centre units (6 of 14, 3 of 7) have fields inside the image:
    # centre 6·16 + 15/2 = 103.5 ± 97.5 -> 6..201, and 3·32 + 31/2 = 111.5 ± 105.5 -> 6..217
    result = verify(model, (3, 224, 224), rows=["features.28", "features.30"])
    assert result["features.28"].measured_span == ((6, 201), (6, 201))
    assert result["features.30"].measured_span == ((6, 217), (6, 217))
    assert result.agree


def test_resnet50_layer4():
    model = torchvision.models.resnet50(weights=None)
    a = analyze(model, (3, 224, 224))
    r = by_name(a)
    last = r["layer4.2.relu_2"]  # layer4's output (layer4 is a Sequential: its last row)
    assert last.rf == (427, 427) and last.jump == (32, 32) and last.start == (0, 0)
    assert last.size == (7, 7)
    # 16 bottlenecks, 4 strided shortcuts, each Parameter once: torchvision's count
    assert a.params == 25_557_032
    # at 480 the map is 15x15 and the centre unit 7 sits at 7·32 = 224: 224 ± 213 = 11..437,
    # inside the image, so the gradient must reach exactly 427 pixels per axis
    result = verify(model, (3, 480, 480), rows=["conv1", "maxpool", "layer4.2.relu_2"])
    check = result["layer4.2.relu_2"]
    assert check.theory_span == check.measured_span == ((11, 437), (11, 437))
    assert result.agree


def test_inception_v3_mixed_7c_theory():
    model = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    r = by_name(analyze(model, (3, 299, 299)))
    # Mixed_7c's output is its last concatenation; its widest branch (3x3dbl) gives 1311
    out = r["Mixed_7c.cat_2"]
    assert out.rf == (1311, 1311) and out.jump == (32, 32) and out.size == (8, 8)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RFCALC_SLOW") != "1", reason="set RFCALC_SLOW=1 (minutes)")
def test_inception_v3_mixed_7c_gradient():
    model = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    # start 37, jump 32: at 1355 the map is 41 wide and the centre unit 20 sits at
    # 37 + 20·32 = 677, its field 677 ± 655 = 22..1332 inside the image
    shape = (3, 1355, 1355)
    r = by_name(analyze(model, shape))
    out = r["Mixed_7c.cat_2"]
    result = verify(model, shape, rows=["Mixed_7c.cat_2"])
    check = result["Mixed_7c.cat_2"]
    assert out.rf == (1311, 1311)
    assert check.agree and check.measured_rf == (1311, 1311), check


def test_inception_blocks_gradient_by_default():
    """The Mixed_7c gradient check in small: torchvision's own Inception A, B, C and E blocks
    (1x7/7x1 factorised convs, branches concatenated, a grid reduction) on a 99x99 input."""
    import torch.nn as nn
    from torchvision.models.inception import (
        BasicConv2d,
        InceptionA,
        InceptionB,
        InceptionC,
        InceptionE,
    )

    model = nn.Sequential(
        BasicConv2d(3, 8, kernel_size=3, stride=2),  # 49x49
        InceptionA(8, pool_features=8),  # 224 + 8 channels
        InceptionB(232),  # 24x24, 712 channels
        InceptionC(712, channels_7x7=8),  # 768 channels
        InceptionE(768),
    )
    # By hand: stem rf 3, jump 2, start 1. A's widest branches (5x5, or two 3x3) add 4·2:
    # 11. B ends in 3x3 stride 2 on every branch, its double-3x3 branch adds 2·2 + 2·2: 19,
    # jump 4, start 1 + 2 = 3. C's 7x7dbl branch adds 6·4 twice per axis: 67. E's 3x3dbl
    # branch adds 2·4 (3x3), then 2·4 on each axis through its 1x3 | 3x1 pair: 83.
    shape = (3, 99, 99)
    last = analyze(model, shape).rows[-1]
    assert last.rf == (83, 83) and last.jump == (4, 4) and last.start == (3, 3)
    assert last.size == (24, 24)
    # the centre unit (24 - 1) // 2 = 11 sits at 3 + 11·4 = 47: its field 47 ± 41 = 6..88 is
    # inside the image, so the gradient sees all of it
    result = verify(model, shape, rows=[last.name])
    check = result[last.name]
    assert check.centre == (11, 11)
    assert check.measured_span == ((6, 88), (6, 88)) and check.agree, check
