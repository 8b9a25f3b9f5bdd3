"""The albumentations reference and the batched tensor pipeline apply the same operations.

`only` switches single ops on in the assignment's recipe (Normalize first); `only_previous` in
the previous recipe (the ops on 0..255 / 0..1 images, Normalize last), whose semantics some of
these tests pin."""

from __future__ import annotations

import math
from dataclasses import asdict, replace

import albumentations as A
import cv2
import numpy as np
import pytest
import torch

from training.augment import (
    AUG_PRESETS,
    AugConfig,
    TensorAugment,
    affine,
    albumentations_pipeline,
    color_jitter,
    cutout,
    hflip,
)

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.1)
ONLY = {f: 0.0 for f in ("flip_p", "affine_p", "jitter_p", "gray_p", "cutout_p")}


def only(**kw) -> AugConfig:
    return AugConfig(**{**ONLY, **kw})


def only_previous(**kw) -> AugConfig:
    return replace(AugConfig.previous(), **{**ONLY, **kw})


def smooth_image() -> np.ndarray:
    """Gradients plus one bright block: bilinear sampling of it differs little between libs."""
    yy, xx = np.mgrid[0:32, 0:32]
    img = np.stack([xx * 8, yy * 8, (xx + yy) * 4], -1).astype(np.uint8)
    img[4:10, 20:28] = 255
    return img


def rand_images(n: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def reference(cfg: AugConfig, images: np.ndarray) -> torch.Tensor:
    pipe = albumentations_pipeline(cfg, MEAN, STD)
    return torch.stack([pipe(image=im)["image"] for im in images])


def tensor(cfg: AugConfig, images: np.ndarray, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return TensorAugment(cfg, MEAN, STD)(torch.from_numpy(images), g)


def to01(x: torch.Tensor) -> torch.Tensor:
    """Undo Normalize: back to 0..1."""
    return x * torch.tensor(STD)[None, :, None, None] + torch.tensor(MEAN)[None, :, None, None]


def as_float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


def test_no_augmentation_is_normalize_only_in_both():
    imgs = rand_images()
    # (v/255 - mean) / std for one pixel by hand: v = imgs[0, 0, 0, 0], channel 0.
    v = int(imgs[0, 0, 0, 0])
    for out in (reference(AugConfig.off(), imgs), tensor(AugConfig.off(), imgs)):
        assert out.shape == (8, 3, 32, 32) and out.dtype == torch.float32
        assert out[0, 0, 0, 0].item() == pytest.approx((v / 255 - 0.5) / 0.25, abs=1e-5)
    assert torch.allclose(
        reference(AugConfig.off(), imgs), tensor(AugConfig.off(), imgs), atol=1e-5
    )


def test_flip_p1_is_the_same_image_in_both():
    imgs = rand_images()
    ref, ten = reference(only(flip_p=1), imgs), tensor(only(flip_p=1), imgs)
    expected = tensor(AugConfig.off(), imgs[:, :, ::-1].copy())
    assert torch.allclose(ref, expected, atol=1e-5) and torch.allclose(ten, expected, atol=1e-5)


def test_gray_p1_matches_cv2_weights():
    # previous order: grey of the 0..1 image (the assignment's greys the normalized one:
    # test_augment_alb13.py)
    imgs = rand_images()
    cfg = only_previous(gray_p=1)
    ref, ten = to01(reference(cfg, imgs)), to01(tensor(cfg, imgs))
    # By hand for one pixel: 0.299 R + 0.587 G + 0.114 B.
    r, g, b = (int(c) for c in imgs[0, 5, 7])
    luma = (0.299 * r + 0.587 * g + 0.114 * b) / 255
    assert ten[0, :, 5, 7].tolist() == pytest.approx([luma] * 3, abs=1e-5)
    assert (ten - ref).abs().max() <= 1 / 255 + 1e-5  # albumentations rounds to uint8


@pytest.mark.parametrize(
    "angle, scale, tx, ty",
    [
        (10.0, 1.0, 0.0, 0.0),
        (-15.0, 1.0, 0.0, 0.0),
        (0.0, 1.1, 0.0, 0.0),
        (0.0, 0.9, 0.0, 0.0),
        (0.0, 1.0, 3 / 32, 0.0),
        (0.0, 1.0, 0.0, -2 / 32),
        (15.0, 0.9, 0.07, -0.05),
        (90.0, 1.0, 0.0, 0.0),
    ],
)
def test_affine_matches_opencv_warp_affine(angle, scale, tx, ty):
    # albumentations 1.3.x's matrix (cv2.getRotationMatrix2D about the pixel grid's centre,
    # the shift in pixels unrounded) through the installed OpenCV. OpenCV 4 samples on a
    # 1/32-pixel grid (as the tensor path does), OpenCV 5 exactly: a position off by at most
    # 1/64 pixel per axis moves a bilinear value by at most 1/32 of the largest step between
    # neighbours (255 at the block's edge, 8 in the gradients).
    img = smooth_image()
    m = cv2.getRotationMatrix2D((32 / 2 - 0.5, 32 / 2 - 0.5), angle, scale)
    m[:, 2] += (tx * 32, ty * 32)
    ref = cv2.warpAffine(img, m, (32, 32), flags=cv2.INTER_LINEAR, borderValue=0)
    t = lambda v: torch.tensor([float(v)])  # noqa: E731
    out = affine(as_float(img[None]), t(angle), t(scale), t(tx), t(ty))
    diff = (out[0].permute(1, 2, 0) - torch.from_numpy(ref).float() / 255).abs()
    assert diff.max() <= 1 / 32 + 1 / 255  # and cv2 rounds to uint8
    assert diff.mean() < 0.003


def test_affine_90_degrees_is_counter_clockwise():
    x = torch.zeros(1, 3, 32, 32)
    x[0, :, 0, 31] = 1  # top-right corner
    out = affine(x, torch.tensor([90.0]), torch.ones(1), torch.zeros(1), torch.zeros(1))
    assert out[0, 0, 0, 0] == pytest.approx(1, abs=1e-5)  # -> top-left
    assert out.sum() == pytest.approx(3, abs=1e-4)


@pytest.mark.parametrize(
    "b, c, s, h",
    [
        (1.2, 1, 1, 0),
        (1, 0.8, 1, 0),
        (1, 1, 1.2, 0),
        (1, 1, 0.8, 0),
        (1, 1, 1, 0.1),
        (1, 1, 1, -0.1),
    ],
)
def test_color_jitter_matches_albumentations(b, c, s, h):
    # On 0..1 images (the previous order) the tensor jitter agrees with albumentations' own
    # uint8 ColorJitter up to its lookup tables' rounding.
    imgs = rand_images(4)
    ref = A.ColorJitter(brightness=(b, b), contrast=(c, c), saturation=(s, s), hue=(h, h), p=1)
    expected = torch.stack([torch.from_numpy(ref(image=im)["image"]) for im in imgs])
    expected = expected.permute(0, 3, 1, 2).float() / 255
    n = len(imgs)
    out = color_jitter(
        as_float(imgs),
        torch.full((n,), b),
        torch.full((n,), c),
        torch.full((n,), s),
        torch.full((n,), float(h)),
    )
    # albumentations works in uint8 (and hue in OpenCV's 0..179 steps): allow a few levels.
    assert (out - expected).abs().mean() < 1.5 / 255
    assert (out - expected).abs().max() <= 6 / 255


def test_color_jitter_identity_factors_change_nothing_but_hue_roundtrip():
    x = as_float(rand_images(2))
    ones, zero = torch.ones(2), torch.zeros(2)
    assert torch.allclose(color_jitter(x, ones, ones, ones, zero), x, atol=1e-5)


@pytest.mark.parametrize("make", [only, only_previous])
def test_cutout_p1_one_16x16_hole_of_the_mean_in_both(make):
    imgs = np.full((6, 32, 32, 3), 255, np.uint8)  # white: the mean-coloured hole stands out
    cfg = make(cutout_p=1)
    for out in (reference(cfg, imgs), tensor(cfg, imgs)):
        x = to01(out)
        hole = (x - 1).abs().amax(1) > 1e-4  # N x H x W
        assert hole.sum((1, 2)).tolist() == [256] * 6  # exactly one 16 x 16 hole each
        # the fill is 0 after Normalize, or before it the mean rounded to uint8 (~0 after)
        assert out.permute(0, 2, 3, 1)[hole].abs().max() <= 0.5 / 255 / min(STD) + 1e-5
        rows = hole.any(2)
        assert all(int(r.sum()) == 16 for r in rows)


def test_cutout_hole_position():
    x = torch.zeros(2, 3, 8, 8)
    fill = torch.tensor([0.1, 0.2, 0.3])
    out = cutout(
        x, torch.tensor([0, 5]), torch.tensor([2, 5]), 3, fill, torch.tensor([True, False])
    )
    assert out[0, 2, 0:3, 2:5].eq(0.3).all() and out[0].ne(0).sum() == 3 * 9
    assert out[1].eq(0).all()  # not applied


OPS = ("flip_p", "affine_p", "jitter_p", "gray_p", "cutout_p")


def changed(cfg: AugConfig, images: np.ndarray, path: str, seed: int = 3) -> int:
    """How many images the pipeline changed (compared with normalize only)."""
    out = reference(cfg, images) if path == "albumentations" else tensor(cfg, images, seed=seed)
    plain = tensor(AugConfig.off(), images)
    return int((~torch.isclose(out, plain, atol=1e-5).flatten(1).all(1)).sum())


@pytest.mark.parametrize("op", OPS)
def test_probabilities_are_honoured(op):
    # Random images: every op changes an image it is applied to (a flip, a grey version, a
    # hole, a random affine or jitter are never the identity on noise), so the count of
    # changed images is Binomial(n, p) on each path. n = 1200, p = 0.3: mean 360,
    # sd = sqrt(n p (1 - p)) = 15.9, 5 sd = 79; half the probability (180) or always (1200)
    # is far outside. The two paths against each other: the difference of two independent
    # counts has sd sqrt(2 n p (1 - p)) = 22.4, 5 sd = 112.
    n, p = 1200, 0.3
    imgs = rand_images(n, seed=1)
    ref = changed(only(**{op: p}), imgs, "albumentations")
    ten = changed(only(**{op: p}), imgs, "tensor")
    sd = math.sqrt(n * p * (1 - p))
    assert abs(ref - n * p) < 5 * sd, ("albumentations", ref)
    assert abs(ten - n * p) < 5 * sd, ("tensor", ten)
    assert abs(ref - ten) < 5 * math.sqrt(2) * sd, (ref, ten)


def test_all_ops_at_p1_content():
    # The previous order, every op applied: flip, affine, jitter, then grey makes R = G = B,
    # then the cutout hole keeps the mean colour (not grey): exactly one 16 x 16 square,
    # elsewhere grey pixels.
    imgs = rand_images(16)
    cfg = only_previous(flip_p=1, affine_p=1, jitter_p=1, gray_p=1, cutout_p=1)
    lo = min((0 - m) / s for m, s in zip(MEAN, STD))
    hi = max((1 - m) / s for m, s in zip(MEAN, STD))
    fill = torch.tensor([round(m * 255) / 255 for m in MEAN])
    grey_only = to01(tensor(only_previous(gray_p=1), imgs))
    for out in (reference(cfg, imgs), tensor(cfg, imgs)):
        assert out.shape == (16, 3, 32, 32) and out.dtype == torch.float32
        assert out.min() >= lo - 1e-4 and out.max() <= hi + 1e-4
        x = to01(out)
        colour = (x[:, 0] - x[:, 1]).abs().maximum((x[:, 1] - x[:, 2]).abs()) > 1e-4
        assert colour.sum((1, 2)).tolist() == [256] * 16
        rows, cols = colour.any(2), colour.any(1)
        assert rows.sum(1).tolist() == [16] * 16 and cols.sum(1).tolist() == [16] * 16
        assert (x.permute(0, 2, 3, 1)[colour] - fill).abs().max() < 1e-4
        # and the geometry and colours did change: not merely the grey input with a hole
        assert ((x - grey_only).abs().amax(1) > 0.05)[~colour].float().mean() > 0.5


def test_tensor_pipeline_is_seeded():
    imgs = rand_images(4)
    cfg = AugConfig()
    assert torch.equal(tensor(cfg, imgs, seed=5), tensor(cfg, imgs, seed=5))
    assert not torch.equal(tensor(cfg, imgs, seed=5), tensor(cfg, imgs, seed=6))


def test_hflip_mask():
    x = torch.arange(4.0).view(1, 1, 1, 4).expand(2, 3, 1, 4)
    out = hflip(x, torch.tensor([True, False]))
    assert out[0, 0, 0].tolist() == [3, 2, 1, 0] and out[1, 0, 0].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("bad", [dict(flip_p=1.5), dict(rotate=-1), dict(scale=1.0), dict(hue=0.6)])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        AugConfig(**bad)


# ----------------------------------------------------------------------------
# The augmentation's defaults and its whole pipeline on both paths, beyond one op at a time.


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
