"""Both augmentation paths, op by op, against numbers computed once with albumentations 1.3.1
(tests/training/fixtures/alb13_ops.npz, made by make_alb13_fixture.py beside it): the same
normalized images, the same explicit parameters. Independent of the installed albumentations.

Tolerances (absolute, on normalized values of magnitude up to 2.2, float32 ulp there 2.4e-7):
* the reference path (numpy/OpenCV, `augment_ref`, and the pipeline's transforms): 5e-6, about
  20 ulp: a chain of up to four steps, OpenCV's SIMD and scalar loops round differently;
* the tensor path (`augment_ops`): 2e-5. The hue step divides by (max - min + eps) and
  multiplies back (measured 1.6e-6); grid_sample recomputes each source position from
  coordinates normalized to [-1, 1] (about 1e-6 pixel) times steps of up to 4.2 between
  neighbouring pixels (measured 6.7e-6).
Both are far below the effects checked: the 0..1 clipping moves values by up to 1.2, OpenCV's
HSV on negative values by up to 1, the 1/32-pixel sampling grid by up to 0.06.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training import augment_ops as ops
from training import augment_ref as ref
from training.augment import AugConfig, TensorAugment, albumentations_pipeline

FIXTURE = np.load(Path(__file__).parent / "fixtures" / "alb13_ops.npz")
MEAN, STD = tuple(FIXTURE["mean"]), tuple(FIXTURE["std"])
X = FIXTURE["normalize"]  # N x H x W x 3 float32, what 1.3.1's Normalize made
N = len(X)
REF_TOL, TORCH_TOL = 5e-6, 2e-5


def nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2)


def full(v: float) -> torch.Tensor:
    return torch.full((N,), float(v))


def each(fn) -> np.ndarray:
    return np.stack([fn(im.copy()) for im in X])


def assert_close_ref(out: np.ndarray, key: str) -> None:
    assert out.dtype == np.float32 and out.shape == FIXTURE[key].shape
    assert np.abs(out - FIXTURE[key]).max() <= REF_TOL, key


def assert_close_torch(out: torch.Tensor, key: str) -> None:
    assert out.dtype == torch.float32
    assert (out - nchw(FIXTURE[key])).abs().max().item() <= TORCH_TOL, key


def only(**kw) -> AugConfig:
    off = {f: 0.0 for f in ("flip_p", "affine_p", "jitter_p", "gray_p", "cutout_p")}
    return AugConfig(**{**off, **kw})


def transform(cfg: AugConfig, kind: str):
    """The one transform of `kind` in the reference pipeline built from `cfg`."""
    (t,) = [
        t for t in albumentations_pipeline(cfg, MEAN, STD).transforms if type(t).__name__ == kind
    ]
    return t


def test_the_fixture_shows_what_it_is_for():
    # Values below the mean and above mean + 1 std in every channel (so clipping shows), and
    # 1.3.1's contrast step really clipped: many values exactly 0 and 1 afterwards.
    assert all((X[..., c] < 0).any() and (X[..., c] > 1).any() for c in range(3))
    clipped = FIXTURE["contrast_1.1"]
    assert (clipped == 0).mean() > 0.3 and (clipped == 1).mean() > 0.1
    assert clipped.min() == 0 and clipped.max() == 1
    # brightness 1 is a no-op, not a clip
    assert np.array_equal(FIXTURE["brightness_1.0"], X)


def test_normalize_both_paths():
    images = FIXTURE["images"]
    t = transform(AugConfig.off(), "Normalize")
    assert_close_ref(np.stack([t.apply(im) for im in images]), "normalize")
    out = TensorAugment(AugConfig(), MEAN, STD).normalize(torch.from_numpy(images))
    assert (out - nchw(X)).abs().max().item() <= 1e-6


@pytest.mark.parametrize("f", [1.0, 1.2, 0.7])
def test_brightness(f):
    assert_close_ref(each(lambda im: ref.brightness(im, f)), f"brightness_{f}")
    assert_close_torch(ops.brightness(nchw(X), full(f)), f"brightness_{f}")


@pytest.mark.parametrize("f", [0.9, 1.1])
def test_contrast(f):
    assert_close_ref(each(lambda im: ref.contrast(im, f)), f"contrast_{f}")
    assert_close_torch(ops.contrast(nchw(X), full(f)), f"contrast_{f}")


@pytest.mark.parametrize("f", [0.8, 1.2])
def test_saturation(f):
    assert_close_ref(each(lambda im: ref.saturation(im, f)), f"saturation_{f}")
    assert_close_torch(ops.saturation(nchw(X), full(f)), f"saturation_{f}")


@pytest.mark.parametrize("f", [-0.1, 0.07])
def test_hue_through_opencvs_hsv(f):
    assert_close_ref(each(lambda im: ref.hue(im, f)), f"hue_{f}")
    assert_close_torch(ops.hue(nchw(X), full(f)), f"hue_{f}")


@pytest.mark.parametrize("key", ["jitter_a", "jitter_b"])
def test_whole_jitter_in_an_order_on_both_paths(key):
    p = FIXTURE[key + "_params"]
    b, c, s, h = (float(v) for v in p[:4])
    order = [int(o) for o in p[4:]]
    t = transform(AugConfig(jitter_p=1), "ColorJitter13")
    assert_close_ref(each(lambda im: t.apply(im, b=b, c=c, s=s, h=h, order=order)), key)
    x = nchw(X)
    assert_close_torch(ops.color_jitter(x, full(b), full(c), full(s), full(h), order), key)
    # the per-image form, every image in this order
    per_image = torch.tensor([order] * N)
    out = ops.color_jitter_per_image(x, per_image, full(b), full(c), full(s), full(h))
    assert_close_torch(out, key)


def test_per_image_orders_are_each_images_own():
    # Image k in its own order must equal the whole batch in that order, image k's row.
    p = FIXTURE["jitter_a_params"]
    b, c, s, h = (full(float(v)) for v in p[:4])
    orders = torch.tensor([[3, 1, 0, 2], [1, 2, 3, 0], [0, 3, 2, 1]])
    x = nchw(X)
    out = ops.color_jitter_per_image(x, orders, b, c, s, h)
    for k in range(N):
        alone = ops.color_jitter(x, b, c, s, h, orders[k].tolist())
        assert torch.allclose(out[k], alone[k], atol=1e-6)
    # and not jittered (NONE in every slot): untouched
    none = torch.full((N, 4), ops.NONE)
    assert torch.equal(ops.color_jitter_per_image(x, none, b, c, s, h), x)


def test_to_gray_and_flip_both_paths():
    t = transform(only(gray_p=1), "ToGray")
    assert_close_ref(each(t.apply), "to_gray")
    assert_close_torch(ops.to_gray(nchw(X), torch.ones(N, dtype=torch.bool)), "to_gray")
    t = transform(only(flip_p=1), "HorizontalFlip")
    assert_close_ref(each(t.apply), "hflip")
    assert_close_torch(ops.hflip(nchw(X), torch.ones(N, dtype=torch.bool)), "hflip")


@pytest.mark.parametrize("key", ["ssr_a", "ssr_b", "ssr_c"])
def test_shift_scale_rotate_both_paths(key):
    angle, scale, dx, dy, constant = (float(v) for v in FIXTURE[key + "_params"])
    border = "constant" if constant else "reflect101"
    t = transform(only(affine_p=1, border=border), "ShiftScaleRotate13")
    assert_close_ref(each(lambda im: t.apply(im, angle=angle, zoom=scale, dx=dx, dy=dy)), key)
    out = ops.shift_scale_rotate(nchw(X), full(angle), full(scale), full(dx), full(dy), border)
    assert_close_torch(out, key)


def test_cutout_both_paths():
    x1, y1, x2, y2 = (int(v) for v in FIXTURE["cutout_params"])
    t = transform(only(cutout_p=1, cutout_size=8), "CoarseDropout")
    holes = np.array([[x1, y1, x2, y2]])
    assert_close_ref(each(lambda im: t.apply(im, holes=holes, seed=0)), "cutout")
    top, left = torch.full((N,), y1), torch.full((N,), x1)
    out = ops.cutout(nchw(X), top, left, x2 - x1, 0.0, torch.ones(N, dtype=torch.bool))
    assert_close_torch(out, "cutout")


def test_jitter_clip_off_is_the_same_arithmetic_unclipped():
    # No fixture for it (1.3.x always clips): with clip off, contrast is f x + (1 - f) mean
    # exactly, by hand from the mean of cv2's grey weights.
    x = nchw(X)
    grey = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    mean = grey.mean(dim=(1, 2))[:, None, None, None]
    expected = 1.1 * x + (1 - 1.1) * mean
    assert torch.allclose(ops.contrast(x, full(1.1), clip=False), expected, atol=1e-5)
    out = each(lambda im: ref.contrast(im, 1.1, clip=False))
    assert np.abs(out - expected.permute(0, 2, 3, 1).numpy()).max() < 1e-5
    assert out.min() < -1 and out.max() > 1.5  # nothing clipped


@pytest.mark.parametrize("active", [(0, 1, 2, 3), (1, 2, 3), (0, 1, 2), (2,), (3,)])
def test_per_image_jitter_with_fewer_active_steps_is_the_same(active):
    # A batch of 24 images, each in another of the 24 orders, three not jittered; the steps
    # left out of `active` are at their identity (factor 1, hue 0), so leaving them out may
    # not change a number: each image equals the whole-batch jitter in its own order.
    x = nchw(X).repeat(8, 1, 1, 1)
    n = len(x)
    rng = np.random.default_rng(0)
    orders = torch.from_numpy(np.stack([rng.permutation(4) for _ in range(n)]))
    orders[[2, 11, 17]] = ops.NONE
    strengths = {0: 1.15, 1: 0.92, 2: 1.1, 3: 0.06}
    identity = {0: 1.0, 1: 1.0, 2: 1.0, 3: 0.0}
    f = [torch.full((n,), strengths[k] if k in active else identity[k]) for k in range(4)]
    out = ops.color_jitter_per_image(x, orders, *f, active=active)
    for k in range(n):
        if k in (2, 11, 17):
            assert torch.equal(out[k], x[k])
        else:
            alone = ops.color_jitter(x[k : k + 1], *(t[:1] for t in f), orders[k].tolist())
            assert torch.allclose(out[k], alone[0], atol=1e-6), (k, orders[k])
