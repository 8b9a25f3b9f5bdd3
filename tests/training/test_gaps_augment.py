"""The augmentation's defaults and its whole pipeline on both paths, beyond one op at a time."""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import torch

from training.augment import AugConfig, TensorAugment, albumentations_pipeline

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.1)


def rand_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def reference(cfg: AugConfig, images: np.ndarray) -> torch.Tensor:
    pipe = albumentations_pipeline(cfg, MEAN, STD)
    return torch.stack([pipe(image=im)["image"] for im in images])


def tensor(cfg: AugConfig, images: np.ndarray, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return TensorAugment(cfg, MEAN, STD)(torch.from_numpy(images), g)


def test_defaults_are_the_documented_recipe():
    # The README's augmentation table (flip, affine, jitter, grey, cutout), written out here
    # rather than read from the code: a changed default must fail a test.
    assert asdict(AugConfig()) == {
        "flip_p": 0.5,
        "affine_p": 0.5,
        "shift": 0.1,
        "scale": 0.1,
        "rotate": 15.0,
        "jitter_p": 0.5,
        "brightness": 0.2,
        "contrast": 0.2,
        "saturation": 0.2,
        "hue": 0.1,
        "gray_p": 0.1,
        "cutout_p": 0.5,
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


def test_default_pipeline_leaves_the_expected_share_untouched_on_both_paths():
    # The five ops are independent coins: an image comes out as normalize-only with
    # probability (1 - .5)(1 - .5)(1 - .5)(1 - .1)(1 - .5) = 0.05625. n = 1600: mean 90,
    # sd = sqrt(n q (1 - q)) = 9.2; 5 sd = 46. Two paths against each other: 5 sqrt(2) sd = 65.
    n, q = 1600, 0.5 * 0.5 * 0.5 * 0.9 * 0.5
    imgs = rand_images(n, seed=7)
    plain = tensor(AugConfig.off(), imgs)
    counts = []
    for out in (reference(AugConfig(), imgs), tensor(AugConfig(), imgs, seed=11)):
        counts.append(int(torch.isclose(out, plain, atol=1e-5).flatten(1).all(1).sum()))
    sd = math.sqrt(n * q * (1 - q))
    assert all(abs(c - n * q) < 5 * sd for c in counts), counts
    assert abs(counts[0] - counts[1]) < 5 * math.sqrt(2) * sd, counts


def test_order_flip_grey_then_cutout_with_identity_strengths():
    # Affine and jitter at zero strength are the identity, so the whole pipeline at p = 1 is
    # exactly: mirror, grey (cv2 weights), then one 16 x 16 hole of the mean colour, which a
    # grey step *after* the cutout would have turned grey.
    imgs = rand_images(6, seed=2)
    cfg = AugConfig(
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
