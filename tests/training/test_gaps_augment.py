"""The augmentation's defaults and its whole pipeline on both paths, beyond one op at a time."""

from __future__ import annotations

import math
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from training.augment import AUG_PRESETS, AugConfig, TensorAugment, albumentations_pipeline

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.1)


def rand_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def reference(cfg: AugConfig, images: np.ndarray) -> torch.Tensor:
    pipe = albumentations_pipeline(cfg, MEAN, STD)
    return torch.stack([pipe(image=im)["image"] for im in images])


def tensor(cfg: AugConfig, images: np.ndarray, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return TensorAugment(cfg, MEAN, STD)(torch.from_numpy(images), g)


def test_defaults_are_the_assignments_table():
    # Issue #26's table (the assignment's published code, albumentations 1.3.x), written out
    # here rather than read from the code: a changed default must fail a test.
    assert asdict(AugConfig()) == {
        "order": "normalize,jitter,gray,flip,affine,cutout",
        "flip_p": 0.5,
        "affine_p": 0.5,
        "shift": 0.0625,
        "scale": 0.1,
        "rotate": 15.0,
        "border": "reflect101",
        "jitter_p": 0.4,
        "brightness": 0.0,
        "contrast": 0.1,
        "saturation": 0.2,
        "hue": 0.1,
        "jitter_clip": True,
        "gray_p": 0.1,
        "cutout_p": 0.2,
        "cutout_holes": 1,
        "cutout_size": 16,
    }
    assert set(asdict(AugConfig.off()).items()) >= {
        ("flip_p", 0),
        ("affine_p", 0),
        ("jitter_p", 0),
        ("gray_p", 0),
        ("cutout_p", 0),
    }


@pytest.mark.parametrize(
    "preset, q",
    [
        # the five ops are independent coins: an image comes out as normalize-only with
        # probability (1 - flip)(1 - affine)(1 - jitter)(1 - grey)(1 - cutout)
        ("assignment", 0.5 * 0.5 * 0.6 * 0.9 * 0.8),  # 0.108
        ("previous", 0.5 * 0.5 * 0.5 * 0.9 * 0.5),  # 0.05625
    ],
)
def test_each_preset_leaves_the_expected_share_untouched_on_both_paths(preset, q):
    # n = 1600: sd = sqrt(n q (1 - q)) = 12.4 (assignment), 9.2 (previous); 5 sd either way.
    # Two paths against each other: 5 sqrt(2) sd.
    n = 1600
    cfg = AUG_PRESETS[preset]
    imgs = rand_images(n, seed=7)
    plain = tensor(AugConfig.off(), imgs)
    counts = []
    for out in (reference(cfg, imgs), tensor(cfg, imgs, seed=11)):
        counts.append(int(torch.isclose(out, plain, atol=1e-5).flatten(1).all(1).sum()))
    sd = math.sqrt(n * q * (1 - q))
    assert all(abs(c - n * q) < 5 * sd for c in counts), counts
    assert abs(counts[0] - counts[1]) < 5 * math.sqrt(2) * sd, counts


def test_previous_order_flip_grey_then_cutout_with_identity_strengths():
    # The previous order. Affine and jitter at zero strength are the identity, so the whole
    # pipeline at p = 1 is exactly: mirror, grey (cv2 weights), then one 16 x 16 hole of the
    # mean colour, which a grey step *after* the cutout would have turned grey.
    imgs = rand_images(6, seed=2)
    cfg = replace(
        AugConfig.previous(),
        flip_p=1,
        affine_p=1,
        shift=0,
        scale=0,
        rotate=0,
        jitter_p=1,
        brightness=0,
        contrast=0,
        saturation=0,
        hue=0,
        gray_p=1,
        cutout_p=1,
    )
    mirrored = imgs[:, :, ::-1].astype(np.float64)
    luma = mirrored @ np.array([0.299, 0.587, 0.114])  # N x H x W, 0..255
    fill = np.array([round(m * 255) for m in MEAN], dtype=np.float64)
    std, mean = torch.tensor(STD)[None, :, None, None], torch.tensor(MEAN)[None, :, None, None]
    for out, tol in ((reference(cfg, imgs), 1.0), (tensor(cfg, imgs), 1e-3)):
        x = ((out * std + mean) * 255).permute(0, 2, 3, 1).double().numpy()  # N x H x W x 3
        hole = np.abs(x - fill).max(-1) < 0.51
        assert hole.sum((1, 2)).tolist() == [256] * 6
        assert all(h.any(1).sum() == 16 and h.any(0).sum() == 16 for h in hole)
        # albumentations rounds the grey value to uint8: within one level; the tensor path exact
        assert np.abs(x[~hole] - luma[~hole][:, None]).max() <= tol


def test_reference_transforms_draw_independent_coins():
    # albumentations 2.x seeds every transform of a Compose alike; a flip and ToGray each draw
    # one coin an image, so with 2.x's Compose their coins coincide (every grey image is also
    # flipped). The reference shares one stream, as 1.x's global `random`. Reseeded per batch
    # of 8 as the loaders do; flip and grey at p 0.5: both on n / 4 images, sd
    # sqrt(n 1/4 3/4) = 19.4 for n = 2000 (coinciding coins: n / 2); 5 sd.
    n = 2000
    imgs = rand_images(n, seed=4)
    cfg = AugConfig(flip_p=0.5, affine_p=0, jitter_p=0, gray_p=0.5, cutout_p=0)
    pipe = albumentations_pipeline(cfg, MEAN, STD)
    outs = []
    for start in range(0, n, 8):
        pipe.set_random_seed(start)
        outs += [pipe(image=im)["image"] for im in imgs[start : start + 8]]
    out = torch.stack(outs)
    grey = (out[:, 0] == out[:, 1]).flatten(1).all(1) & (out[:, 1] == out[:, 2]).flatten(1).all(1)
    grey_plain = tensor(replace(cfg, flip_p=0, gray_p=1), imgs)
    candidates = torch.where(grey[:, None, None, None], grey_plain, tensor(AugConfig.off(), imgs))
    flipped = ~torch.isclose(out, candidates, atol=1e-4).flatten(1).all(1)
    assert torch.isclose(out[flipped], candidates[flipped].flip(-1), atol=1e-4).all()
    both = int((grey & flipped).sum())
    assert abs(both - n / 4) < 5 * math.sqrt(n * 3 / 16), both
    assert abs(int(grey.sum()) - n / 2) < 5 * math.sqrt(n / 4)
