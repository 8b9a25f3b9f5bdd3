"""albumentations 1.3.x's float arithmetic for the ops whose numbers changed in 2.x, in numpy
and OpenCV, and albumentations transforms that apply it (the reference pipeline's ColorJitter
and ShiftScaleRotate). The pinned albumentations (2.0.8) differs from 1.3.x here: its
ShiftScaleRotate is an Affine that rounds the shift to whole pixels about another centre, and
OpenCV 5 samples warpAffine at exact positions where OpenCV 4 used 1/32 pixel.

Read in albumentations 1.3.1's `augmentations/functional.py` and `geometric/functional.py`;
checked against numbers computed with 1.3.1 (tests/training/fixtures/alb13_ops.npz).
"""

from __future__ import annotations

from typing import Any, Sequence

import albumentations as A
import cv2
import numpy as np


def _clip(img: np.ndarray, clip: bool) -> np.ndarray:
    return np.clip(img, 0, 1).astype(np.float32) if clip else img.astype(np.float32)


def brightness(img: np.ndarray, f: float, clip: bool = True) -> np.ndarray:
    """1.3.x `adjust_brightness_torchvision` on float32: f == 1 is a no-op (not clipped)."""
    if f == 0:
        return np.zeros_like(img)
    if f == 1:
        return img
    return _clip(img * f, clip)


def contrast(img: np.ndarray, f: float, clip: bool = True) -> np.ndarray:
    """1.3.x `adjust_contrast_torchvision` on float32: towards the mean of cv2's grey."""
    if f == 1:
        return img
    mean = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).mean()
    if f == 0:
        return np.full_like(img, mean, dtype=img.dtype)
    return _clip(img.astype(np.float32) * f + mean * (1 - f), clip)


def saturation(img: np.ndarray, f: float, clip: bool = True) -> np.ndarray:
    """1.3.x `adjust_saturation_torchvision` on float32: addWeighted with the grey image."""
    if f == 1:
        return img
    grey = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    if f == 0:
        return grey
    return _clip(cv2.addWeighted(img, f, grey, 1 - f, gamma=0), clip)


def hue(img: np.ndarray, f: float) -> np.ndarray:
    """1.3.x `adjust_hue_torchvision` on float32: OpenCV's HSV (hue in degrees), not clipped."""
    if f == 0:
        return img
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = np.mod(hsv[..., 0] + f * 360, 360)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def color_jitter(
    img: np.ndarray,
    b: float,
    c: float,
    s: float,
    h: float,
    order: Sequence[int] = (0, 1, 2, 3),
    clip: bool = True,
) -> np.ndarray:
    """1.3.x `ColorJitter.apply`: the four steps in `order` (0 brightness ... 3 hue)."""
    steps = (
        lambda x: brightness(x, b, clip),
        lambda x: contrast(x, c, clip),
        lambda x: saturation(x, s, clip),
        lambda x: hue(x, h),
    )
    for i in order:
        img = steps[i](img)
    return img


BORDER_MODES = {"reflect101": cv2.BORDER_REFLECT_101, "constant": cv2.BORDER_CONSTANT}


def shift_scale_rotate_matrix(
    height: int, width: int, angle: float, scale: float, dx: float, dy: float
) -> np.ndarray:
    """1.3.x `shift_scale_rotate`'s forward matrix: cv2's rotation about the pixel grid's
    centre, plus the shift in pixels (not rounded)."""
    matrix = cv2.getRotationMatrix2D((width / 2 - 0.5, height / 2 - 0.5), angle, scale)
    matrix[0, 2] += dx * width
    matrix[1, 2] += dy * height
    return matrix


def warp_affine_opencv4(img: np.ndarray, matrix: np.ndarray, border: str) -> np.ndarray:
    """cv2.warpAffine(img, matrix, INTER_LINEAR) as OpenCV 4.x computes it, on any OpenCV:
    the inverse map walked in fixed point and rounded to 1/32 pixel (OpenCV 5 samples exact
    positions), then cv2.remap at those positions."""
    height, width = img.shape[:2]
    inv = cv2.invertAffineTransform(matrix)
    x, y = np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)
    fixed = lambda v: np.rint(v * 1024).astype(np.int64)  # noqa: E731  (saturate_cast<int>)
    sx = fixed(inv[0, 1] * y + inv[0, 2])[:, None] + 16 + fixed(inv[0, 0] * x)[None, :]
    sy = fixed(inv[1, 1] * y + inv[1, 2])[:, None] + 16 + fixed(inv[1, 0] * x)[None, :]
    map_x = ((sx >> 5) / 32).astype(np.float32)
    map_y = ((sy >> 5) / 32).astype(np.float32)
    return cv2.remap(
        img,
        map_x,
        map_y,
        interpolation=cv2.INTER_LINEAR,
        borderMode=BORDER_MODES[border],
        borderValue=0,
    )


def shift_scale_rotate(
    img: np.ndarray, angle: float, scale: float, dx: float, dy: float, border: str = "reflect101"
) -> np.ndarray:
    """1.3.x `ShiftScaleRotate.apply` (bilinear) with `border` reflect101 or constant (0)."""
    matrix = shift_scale_rotate_matrix(img.shape[0], img.shape[1], angle, scale, dx, dy)
    return warp_affine_opencv4(img, matrix, border)


def _range(value: float, bias: float, clip: bool) -> tuple[float, float]:
    lo = bias - value
    return (max(lo, 0.0) if clip else lo), bias + value


class ColorJitter13(A.ImageOnlyTransform):
    """albumentations 1.3.x's ColorJitter on float images, order drawn per image; `clip=False`
    leaves out the clipping to 0..1 after brightness, contrast and saturation."""

    def __init__(
        self,
        brightness: float = 0.2,
        contrast: float = 0.2,
        saturation: float = 0.2,
        hue: float = 0.2,
        clip: bool = True,
        p: float = 0.5,
    ):
        super().__init__(p=p)
        self.brightness, self.contrast, self.saturation, self.hue = (
            brightness,
            contrast,
            saturation,
            hue,
        )
        self.clip = clip

    def get_params(self) -> dict[str, Any]:
        rnd = self.py_random
        order = [0, 1, 2, 3]
        rnd.shuffle(order)
        return {
            "b": rnd.uniform(*_range(self.brightness, 1, True)),
            "c": rnd.uniform(*_range(self.contrast, 1, True)),
            "s": rnd.uniform(*_range(self.saturation, 1, True)),
            "h": rnd.uniform(*_range(self.hue, 0, False)),
            "order": order,
        }

    def apply(self, img: np.ndarray, b: float, c: float, s: float, h: float, order, **params):
        if img.dtype != np.float32:
            raise TypeError("ColorJitter13 works on float32 (normalized) images")
        return color_jitter(img, b, c, s, h, order, self.clip)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("brightness", "contrast", "saturation", "hue", "clip")


class ShiftScaleRotate13(A.ImageOnlyTransform):
    """albumentations 1.3.x's ShiftScaleRotate (bilinear): angle, scale, dx, dy drawn in that
    order, uniform in +-rotate, 1 +- scale, +-shift, +-shift."""

    def __init__(
        self,
        shift: float = 0.0625,
        scale: float = 0.1,
        rotate: float = 45,
        border: str = "reflect101",
        p: float = 0.5,
    ):
        super().__init__(p=p)
        if border not in BORDER_MODES:
            raise ValueError(f"border must be one of {tuple(BORDER_MODES)}, got {border!r}")
        self.shift, self.scale, self.rotate, self.border = shift, scale, rotate, border

    def get_params(self) -> dict[str, Any]:
        rnd = self.py_random
        return {
            "angle": rnd.uniform(-self.rotate, self.rotate),
            "zoom": rnd.uniform(1 - self.scale, 1 + self.scale),
            "dx": rnd.uniform(-self.shift, self.shift),
            "dy": rnd.uniform(-self.shift, self.shift),
        }

    def apply(self, img: np.ndarray, angle: float, zoom: float, dx: float, dy: float, **params):
        return shift_scale_rotate(img, angle, zoom, dx, dy, self.border)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("shift", "scale", "rotate", "border")


class Compose13(A.Compose):
    """A.Compose whose transforms share one random stream, as albumentations 1.x's transforms
    shared the global `random`. 2.x's Compose gives every transform its own generator seeded
    with the same seed: transforms that draw alike (a flip and ToGray each draw one coin an
    image) then draw the same numbers, and their coins coincide (every grey image flipped)."""

    def set_random_seed(self, seed: int | None) -> None:
        super().set_random_seed(seed)
        self.set_random_state(self.random_generator, self.py_random)
