"""The training augmentation, twice from one config: albumentations (the reference, per image
on CPU workers) and batched torch ops (the fast path, on whatever device holds the data).

Order in both: flip, affine (shift/scale/rotate), colour jitter, grey, cutout, normalize.
Cutout comes after the colour ops so its hole keeps exactly the data set's mean colour, which
Normalize turns into 0. The affine border is black (0), as ShiftScaleRotate's default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601, as cv2.COLOR_RGB2GRAY


def _aug(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class AugConfig:
    """Probabilities and strengths shared by both pipelines (the assignment's defaults); each
    field is also an `rftrain` flag."""

    flip_p: float = _aug(0.5, "probability of a horizontal flip")
    affine_p: float = _aug(0.5, "probability of the shift/scale/rotate")
    shift: float = _aug(0.1, "shift, fraction of width/height, uniform in [-shift, shift]")
    scale: float = _aug(0.1, "zoom factor uniform in [1 - scale, 1 + scale]")
    rotate: float = _aug(15.0, "degrees, uniform in [-rotate, rotate]")
    jitter_p: float = _aug(0.5, "probability of the colour jitter")
    brightness: float = _aug(0.2, "brightness factor uniform in [1 - b, 1 + b]")
    contrast: float = _aug(0.2, "contrast factor uniform in [1 - c, 1 + c]")
    saturation: float = _aug(0.2, "saturation factor uniform in [1 - s, 1 + s]")
    hue: float = _aug(0.1, "hue shift uniform in [-hue, hue] turns (0.5 = half the circle)")
    gray_p: float = _aug(0.1, "probability of turning the image grey")
    cutout_p: float = _aug(0.5, "probability of cutout")
    cutout_holes: int = _aug(1, "cutout holes per image")
    cutout_size: int = _aug(
        16, "cutout hole side in pixels (filled with the data set's mean); at most the image side"
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value < 0:
                raise ValueError(f"augmentation {f.name} must be >= 0, got {value}")
            if f.name.endswith("_p") and value > 1:
                raise ValueError(f"augmentation {f.name} is a probability, got {value}")
        if self.scale >= 1:
            raise ValueError(f"augmentation scale must be < 1, got {self.scale}")
        if self.hue > 0.5:
            raise ValueError(f"augmentation hue must be <= 0.5, got {self.hue}")
        if self.cutout_p and self.cutout_holes and self.cutout_size < 1:
            raise ValueError("augmentation cutout_size must be at least 1 with cutout on")

    def check_image(self, height: int, width: int) -> None:
        """ValueError if a setting cannot apply to height x width images (both paths)."""
        if self.cutout_p and self.cutout_holes and self.cutout_size > min(height, width):
            raise ValueError(
                f"augmentation cutout_size {self.cutout_size} is larger than the "
                f"{height}x{width} images"
            )

    @classmethod
    def off(cls) -> "AugConfig":
        """No augmentation at all (normalize only)."""
        return cls(**{f.name: 0 for f in fields(cls) if f.name.endswith("_p")})


# ---------------------------------------------------------------------------- albumentations
def albumentations_pipeline(cfg: AugConfig, mean: Sequence[float], std: Sequence[float]):
    """The reference pipeline: HWC uint8 numpy image in, normalized CHW float tensor out."""
    import albumentations as A
    import cv2
    from albumentations.pytorch import ToTensorV2

    ops = []
    if cfg.flip_p:
        ops.append(A.HorizontalFlip(p=cfg.flip_p))
    if cfg.affine_p:
        # Affine with these ranges is exactly what the deprecated ShiftScaleRotate builds.
        ops.append(
            A.Affine(
                scale=(1 - cfg.scale, 1 + cfg.scale),
                translate_percent=(-cfg.shift, cfg.shift),
                rotate=(-cfg.rotate, cfg.rotate),
                interpolation=cv2.INTER_LINEAR,
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                p=cfg.affine_p,
            )
        )
    if cfg.jitter_p:
        ops.append(
            A.ColorJitter(
                brightness=cfg.brightness,
                contrast=cfg.contrast,
                saturation=cfg.saturation,
                hue=cfg.hue,
                p=cfg.jitter_p,
            )
        )
    if cfg.gray_p:
        ops.append(A.ToGray(num_output_channels=3, method="weighted_average", p=cfg.gray_p))
    if cfg.cutout_p and cfg.cutout_holes:
        ops.append(
            A.CoarseDropout(
                num_holes_range=(cfg.cutout_holes, cfg.cutout_holes),
                hole_height_range=(cfg.cutout_size, cfg.cutout_size),
                hole_width_range=(cfg.cutout_size, cfg.cutout_size),
                fill=tuple(round(m * 255) for m in mean),
                p=cfg.cutout_p,
            )
        )
    ops += [A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0), ToTensorV2()]
    return A.Compose(ops, seed=0)


# ----------------------------------------------------------------------- batched torch ops
# Each op takes a float N x 3 x H x W batch in 0..1 and explicit per-image parameters, so
# tests can compare one op against albumentations with the same numbers.
def hflip(x: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """Mirror the images where `apply` (N bools) is set."""
    return torch.where(apply[:, None, None, None], x.flip(-1), x)


def affine(
    x: torch.Tensor, angle: torch.Tensor, scale: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor
) -> torch.Tensor:
    """Rotate by `angle` degrees (counter-clockwise on screen), zoom by `scale` and shift by
    (tx, ty) fractions of the width and height (right and down), about the image centre;
    bilinear, black border. Per-image parameters, shape (N,).
    """
    n, _, h, w = x.shape
    rad = angle * (math.pi / 180)
    cos, sin = torch.cos(rad), torch.sin(rad)
    # grid_sample wants output -> input: the inverse map, in coordinates normalized to [-1, 1]
    # per axis (so on a non-square image the rotation is conjugated by the aspect ratio).
    # Forward in pixels (y down): out = s * R(-a) @ in + t, R(-a) = [[c, s], [-s, c]].
    # Inverse: in = R(a) @ (out - t) / s, R(a) = [[c, -s], [s, c]].
    ax, ay = w / 2, h / 2  # normalized = pixel / (w/2)
    a00, a01 = cos / scale, -sin / scale * (ay / ax)
    a10, a11 = sin / scale * (ax / ay), cos / scale
    bx, by = 2 * tx, 2 * ty  # the shift in normalized units
    theta = torch.stack(
        [
            torch.stack([a00, a01, -(a00 * bx + a01 * by)], dim=1),
            torch.stack([a10, a11, -(a10 * bx + a11 * by)], dim=1),
        ],
        dim=1,
    ).to(x.dtype)
    grid = F.affine_grid(theta, [n, 3, h, w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def gray(x: torch.Tensor) -> torch.Tensor:
    """Luma (N x 1 x H x W) with cv2's RGB->grey weights."""
    wts = torch.tensor(GRAY_WEIGHTS, dtype=x.dtype, device=x.device)
    return (x * wts[None, :, None, None]).sum(1, keepdim=True)


def to_gray(x: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """Replace the images where `apply` is set by their grey version (3 channels)."""
    return torch.where(apply[:, None, None, None], gray(x).expand_as(x), x)


def _rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r, g, b = x.unbind(1)
    maxc, minc = x.amax(1), x.amin(1)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2 + rc - bc, 4 + gc - rc))
    h = torch.where(delta > 0, (h / 6) % 1, torch.zeros_like(h))
    s = torch.where(
        maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc)
    )
    return h, s, maxc


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    # f(n) = v - v*s*clamp(min(k, 4 - k), 0, 1) with k = (n + 6h) mod 6; R, G, B = f(5, 3, 1)
    n = torch.tensor([5.0, 3.0, 1.0], dtype=h.dtype, device=h.device)[None, :, None, None]
    k = (n + 6 * h[:, None]) % 6
    return v[:, None] - v[:, None] * s[:, None] * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def color_jitter(
    x: torch.Tensor,
    brightness: torch.Tensor,
    contrast: torch.Tensor,
    saturation: torch.Tensor,
    hue: torch.Tensor,
    order: Sequence[int] = (0, 1, 2, 3),
) -> torch.Tensor:
    """torchvision-style jitter with per-image factors (1, 1, 1, 0 = unchanged), in `order`
    (0 brightness, 1 contrast, 2 saturation, 3 hue); clipped to 0..1 after each step."""
    col = lambda t: t[:, None, None, None]  # noqa: E731  (N,) -> N x 1 x 1 x 1
    for op in order:
        if op == 0:
            x = x * col(brightness)
        elif op == 1:
            mean = gray(x).mean(dim=(1, 2, 3), keepdim=True)
            x = col(contrast) * x + (1 - col(contrast)) * mean
        elif op == 2:
            x = col(saturation) * x + (1 - col(saturation)) * gray(x)
        else:
            h, s, v = _rgb_to_hsv(x)
            x = _hsv_to_rgb((h + hue[:, None, None]) % 1, s, v)
        x = x.clamp(0, 1)
    return x


def cutout(
    x: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    size: int,
    fill: torch.Tensor,
    apply: torch.Tensor,
) -> torch.Tensor:
    """Fill a size x size square at (top, left) with `fill` (3 values) where `apply` is set."""
    _, _, h, w = x.shape
    rows = torch.arange(h, device=x.device)[None, :]
    cols = torch.arange(w, device=x.device)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + size)  # N x H
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + size)  # N x W
    hole = (in_rows[:, :, None] & in_cols[:, None, :]) & apply[:, None, None]
    return torch.where(hole[:, None], fill.to(x.dtype)[None, :, None, None], x)


class TensorAugment:
    """The whole pipeline on a batch: uint8 N x H x W x 3 in, normalized float N x 3 x H x W
    out, on the batch's device. Random draws come from the `generator` passed per call."""

    def __init__(self, cfg: Optional[AugConfig], mean: Sequence[float], std: Sequence[float]):
        self.cfg = cfg or AugConfig.off()
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)

    def __call__(
        self, images: torch.Tensor, generator: Optional[torch.Generator] = None, train: bool = True
    ) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float().div_(255)
        if train:
            x = self._augment(x, generator)
        mean, std = self.mean.to(x.device), self.std.to(x.device)
        return (x - mean[None, :, None, None]) / std[None, :, None, None]

    def _augment(self, x: torch.Tensor, g: Optional[torch.Generator]) -> torch.Tensor:
        cfg, n, dev = self.cfg, x.shape[0], x.device
        _, _, h, w = x.shape

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return torch.rand(n, generator=g, device=dev) * (hi - lo) + lo

        def coin(p: float) -> torch.Tensor:
            return torch.rand(n, generator=g, device=dev) < p

        if cfg.flip_p:
            x = hflip(x, coin(cfg.flip_p))
        if cfg.affine_p:
            apply = coin(cfg.affine_p)
            # albumentations truncates the shift to whole pixels; so do we.
            tx = torch.trunc(uniform(-cfg.shift, cfg.shift) * w) / w
            ty = torch.trunc(uniform(-cfg.shift, cfg.shift) * h) / h
            moved = affine(
                x, uniform(-cfg.rotate, cfg.rotate), uniform(1 - cfg.scale, 1 + cfg.scale), tx, ty
            )
            x = torch.where(apply[:, None, None, None], moved, x)
        if cfg.jitter_p:
            apply = coin(cfg.jitter_p)
            b = uniform(1 - cfg.brightness, 1 + cfg.brightness)
            c = uniform(1 - cfg.contrast, 1 + cfg.contrast)
            s, hue = uniform(1 - cfg.saturation, 1 + cfg.saturation), uniform(-cfg.hue, cfg.hue)
            # albumentations shuffles the four per image; here once per batch (cheaper).
            order = torch.randperm(4, generator=g, device=dev).tolist()
            x = torch.where(apply[:, None, None, None], color_jitter(x, b, c, s, hue, order), x)
        if cfg.gray_p:
            x = to_gray(x, coin(cfg.gray_p))
        if cfg.cutout_p and cfg.cutout_holes:
            apply = coin(cfg.cutout_p)
            cfg.check_image(h, w)  # no silent clamp: the albumentations path cannot either
            size = cfg.cutout_size
            fill = (torch.round(self.mean * 255) / 255).to(dev)  # as albumentations' uint8 fill
            for _ in range(cfg.cutout_holes):
                top = torch.randint(0, h - size + 1, (n,), generator=g, device=dev)
                left = torch.randint(0, w - size + 1, (n,), generator=g, device=dev)
                x = cutout(x, top, left, size, fill, apply)
        return x
