"""What the tensor pipeline draws (ranges, unrounded shifts, jitter order per image, hole
positions) and one op at a time where a whole-pipeline comparison cannot tell ops apart. The
expected ranges are albumentations' documented ones, not values read from the code."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import training.augment as aug
from training.augment import AugConfig, TensorAugment, affine, color_jitter

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.1)
ALL = dict(flip_p=1, affine_p=1, jitter_p=1, gray_p=1, cutout_p=1)


def params(cfg: AugConfig, n: int, h: int, w: int, seed: int = 0) -> dict:
    """The per-image parameters one call would draw for n images of h x w."""
    aug_ = TensorAugment(cfg, MEAN, STD)
    u = torch.rand(n, aug_.columns, generator=torch.Generator().manual_seed(seed))
    return aug_.params(u, h, w)


def spans(t: torch.Tensor, lo: float, hi: float, slack: float) -> bool:
    """All values in [lo, hi], and both ends approached within `slack`."""
    return bool(t.min() >= lo and t.max() <= hi and t.min() < lo + slack and t.max() > hi - slack)


def test_affine_draws_cover_the_documented_ranges():
    # shift 0.25 of an 8-pixel side: uniform in [-2, 2] pixels, not rounded (1.3.x's
    # ShiftScaleRotate adds dx * width as it is). 4000 draws: each end of a uniform range
    # comes within 1 % of its width with probability 1 - 0.99^4000.
    p = params(AugConfig(**ALL, shift=0.25, cutout_size=3), n=4000, h=8, w=8)
    assert spans(p["angle"], -15, 15, 0.3) and spans(p["scale"], 0.9, 1.1, 0.002)
    for t in (p["dx"], p["dy"]):
        pixels = t * 8
        assert spans(pixels, -2, 2, 0.04)
        assert ((pixels - pixels.round()).abs() > 0.25).float().mean() > 0.4


def test_jitter_draws_cover_the_documented_ranges_and_shuffle_per_image():
    p = params(AugConfig(**ALL, brightness=0.2, contrast=0.2, cutout_size=3), n=4000, h=8, w=8)
    for key in ("brightness", "contrast", "saturation"):
        assert spans(p[key], 0.8, 1.2, 0.004), key
    assert spans(p["hue"], -0.1, 0.1, 0.002)
    orders = [tuple(o) for o in p["jitter_ops"].tolist()]
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)
    # one of 24 orders per image: the first 40 images of one batch all alike has
    # probability 24^-39
    assert len(set(orders[:40])) > 5


def test_a_factor_range_stops_at_zero():
    # [max(0, 1 - v), 1 + v], as albumentations: strength 1.5 draws in [0, 2.5]
    p = params(AugConfig(**ALL, contrast=1.5, cutout_size=3), n=4000, h=8, w=8)
    assert spans(p["contrast"], 0, 2.5, 0.03)


def test_cutout_holes_lie_inside_and_reach_every_edge():
    p = params(AugConfig(**ALL, cutout_size=3), n=4000, h=8, w=10)
    # 8 - 3 + 1 = 6 rows and 10 - 3 + 1 = 8 columns where a 3 x 3 hole fits whole
    assert set(p["top"].flatten().tolist()) == set(range(6))
    assert set(p["left"].flatten().tolist()) == set(range(8))


def test_cutout_off_ignores_a_hole_that_could_not_fit():
    # cutout_p 0 turns the op off whatever its other settings (a 64-pixel hole on 8 x 8)
    cfg = AugConfig(cutout_p=0, cutout_holes=1, cutout_size=64)
    g = torch.Generator().manual_seed(0)
    out = TensorAugment(cfg, MEAN, STD)(torch.zeros(2, 8, 8, 3, dtype=torch.uint8), g)
    assert out.shape == (2, 3, 8, 8)


@pytest.mark.parametrize("op", [0, 1, 2, 3])
def test_each_jitter_op_is_the_one_its_number_names(op):
    # Factors that change the image for every op; `order=(op,)` must apply exactly that op:
    # the same as the whole pipeline with the other three at their identity.
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    n = len(x)
    factors = [torch.full((n,), v) for v in (1.3, 0.6, 0.4, 0.2)]
    identity = [torch.ones(n), torch.ones(n), torch.ones(n), torch.zeros(n)]
    alone = [f if k == op else i for k, (f, i) in enumerate(zip(factors, identity))]
    expected = color_jitter(x, *alone, order=(0, 1, 2, 3))
    assert not torch.allclose(expected, x, atol=1e-3)
    assert torch.allclose(color_jitter(x, *factors, order=(op,)), expected, atol=1e-5)


def test_contrast_pulls_each_image_towards_its_own_mean_grey():
    # a dark and a bright image: contrast 0.5 halves each one's distance to its own mean luma
    x = torch.stack([torch.full((3, 4, 4), 0.1), torch.full((3, 4, 4), 0.9)])
    x[:, :, 0, 0] += 0.05
    half, one, zero = torch.full((2,), 0.5), torch.ones(2), torch.zeros(2)
    out = color_jitter(x, one, half, one, zero, order=(1,))
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # grey images: luma = the value
    assert torch.allclose(out, mean + 0.5 * (x - mean), atol=1e-6)


def test_affine_on_a_wide_image_matches_opencv():
    # Non-square: the rotation must stay a rotation in pixels (not in the [-1, 1] units of
    # each axis). cv2's warpAffine about the image centre, bilinear, black border.
    h, w = 24, 40
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx / w, yy / h, (xx + yy) / (w + h)], -1).astype(np.float32)
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 20, 1.0)
    ref = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    one = torch.ones(1)
    out = affine(x, torch.tensor([20.0]), one, torch.zeros(1), torch.zeros(1))
    diff = (out[0].permute(1, 2, 0) - torch.from_numpy(ref)).abs()
    assert diff[6:18, 10:30].max() < 1e-3  # inside: the same bilinear samples


def test_affine_keeps_the_images_dtype():
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    t = torch.tensor([10.0, -5.0])
    out = affine(x, t, torch.ones(2), torch.zeros(2), torch.zeros(2))
    assert out.dtype == torch.float64


def test_every_op_stays_on_the_batchs_device():
    # On a GPU every tensor an op makes must be made there; the meta device stands in for
    # one here (no data, and mixing it with a CPU tensor is an error, as with CUDA).
    meta = torch.device("meta")
    cfg = AugConfig(flip_p=1, affine_p=1, jitter_p=1, gray_p=1, cutout_p=1, cutout_size=3)
    images = torch.zeros(4, 8, 8, 3, dtype=torch.uint8, device=meta)
    assert TensorAugment(cfg, MEAN, STD)(images, None).device == meta
    x, f = torch.zeros(2, 3, 8, 8, device=meta), torch.ones(2, device=meta)
    assert color_jitter(x, f, f, f, f, order=(0, 1, 2, 3)).device == meta
    assert affine(x, f, f, f, f).device == meta
    fill = torch.ones(3, device=meta)
    hole = aug.cutout(x, f.long(), f.long(), 3, fill, f.bool())
    assert hole.device == meta


def _only(pipe, kind):
    (t,) = [t for t in pipe.transforms if type(t).__name__ == kind]
    return t


def test_reference_affine_has_the_previous_ranges():
    # The previous recipe: shift +-10 %, scale 0.9-1.1, rotate +-15 degrees, p 0.5, black
    # border (the assignment's: test_augment_recipe.py)
    t = _only(aug.albumentations_pipeline(AugConfig.previous(), MEAN, STD), "ShiftScaleRotate13")
    assert (t.shift, t.scale, t.rotate, t.border, t.p) == (0.1, 0.1, 15.0, "constant", 0.5)


def test_reference_pipeline_is_seeded_when_built():
    # Built twice with one config, it draws the same (the loaders reseed it per batch; a
    # caller using it directly gets a reproducible pipeline too).
    imgs = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    cfg = AugConfig(**ALL, cutout_size=4)
    a, b = (aug.albumentations_pipeline(cfg, MEAN, STD) for _ in range(2))
    for im in imgs:
        assert torch.equal(a(image=im)["image"], b(image=im)["image"])


def test_no_holes_means_no_cutout_on_either_path():
    imgs = np.random.default_rng(1).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    cfg = AugConfig(flip_p=0, affine_p=0, jitter_p=0, gray_p=0, cutout_p=1, cutout_holes=0)
    plain = TensorAugment(AugConfig.off(), MEAN, STD)(torch.from_numpy(imgs), None)
    pipe = aug.albumentations_pipeline(cfg, MEAN, STD)
    ref = torch.stack([pipe(image=im)["image"] for im in imgs])
    ten = TensorAugment(cfg, MEAN, STD)(torch.from_numpy(imgs), torch.Generator())
    assert torch.allclose(ref, plain, atol=1e-5) and torch.equal(ten, plain)


def test_a_hole_may_be_as_large_as_the_image_and_no_larger():
    AugConfig(cutout_size=8).check_image(8, 8)
    with pytest.raises(ValueError, match="cutout_size 9 is larger than the 8x8 images"):
        AugConfig(cutout_size=9).check_image(8, 8)


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(rotate=-1), "augmentation rotate must be >= 0, got -1"),
        (dict(flip_p=1.5), "augmentation flip_p is a probability, got 1.5"),
        (dict(scale=1.0), "augmentation scale must be < 1, got 1.0"),
        (dict(hue=0.6), "augmentation hue must be <= 0.5, got 0.6"),
        (dict(cutout_size=0), "augmentation cutout_size must be at least 1 with cutout on"),
    ],
)
def test_bad_settings_say_which_and_what(bad, message):
    with pytest.raises(ValueError) as err:
        AugConfig(**bad)
    assert str(err.value) == message


def test_settings_at_their_limits_are_accepted():
    # hue 0.5 turns half the circle; a 1-pixel hole; a probability of exactly 1
    AugConfig(hue=0.5, cutout_size=1, flip_p=1, scale=0.99)
    AugConfig(cutout_p=0, cutout_size=0)  # no hole size needed with cutout off
