"""The training augmentation, twice from one config: albumentations (the reference, per image
on CPU workers) and batched torch ops (the fast path, on whatever device holds the data).

`AugConfig()` is the assignment's recipe, as its published code sets it with albumentations
1.3.x: Normalize first, then ColorJitter (brightness 0, contrast 0.1, saturation 0.2, hue 0.1,
p 0.4) on the normalized float image, ToGray (p 0.1), HorizontalFlip (p 0.5),
ShiftScaleRotate (shift 0.0625, scale 0.1, rotate 15, p 0.5, border reflect-101, bilinear),
CoarseDropout (one 16 x 16 hole, p 0.2, filled with 0 = the mean), ToTensor. On normalized
floats 1.3.x's jitter clips to 0..1 after contrast and saturation: in a jittered image every
value below its channel's mean becomes the mean (0) and every value above mean + 1 std
becomes mean + 1 std (1). `jitter_clip=False` leaves that out.

`AugConfig.previous()` is the recipe the project used before (flip, affine, jitter, grey,
cutout, normalize; jitter on 0..1 images, black border, cutout filled with the mean colour).
The arithmetic of each op is 1.3.x's on both paths (`augment_ops`, `augment_ref`), checked
against numbers computed with 1.3.1 (tests/training/fixtures/alb13_ops.npz).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional, Sequence

import numpy as np
import torch

from rfkit_base.settings import setting

from .augment_ops import (  # noqa: F401  (the ops are part of this module's interface)
    BORDERS,
    GRAY_WEIGHTS,
    NONE,
    affine,
    color_jitter,
    color_jitter_per_image,
    cutout,
    gray,
    hflip,
    shift_scale_rotate,
    to_gray,
)

ASSIGNMENT_ORDER = "normalize,jitter,gray,flip,affine,cutout"
PREVIOUS_ORDER = "flip,affine,jitter,gray,cutout,normalize"
ORDERS = (ASSIGNMENT_ORDER, PREVIOUS_ORDER)


@dataclass(frozen=True)
class AugConfig:
    """Probabilities, strengths and order shared by both pipelines; the defaults are the
    assignment's recipe. Each field is also an `rftrain` flag."""

    order: str = setting(
        ASSIGNMENT_ORDER,
        f"the ops' order, one of: {ASSIGNMENT_ORDER} (the assignment's: the colour ops act on "
        f"normalized floats, the cutout fills 0) or {PREVIOUS_ORDER} (before: on 0..1 "
        "images, the cutout fills the mean colour)",
        choices=ORDERS,
        metavar="ORDER",
    )
    flip_p: float = setting(0.5, "probability of a horizontal flip")
    affine_p: float = setting(0.5, "probability of the shift/scale/rotate")
    shift: float = setting(0.0625, "shift, fraction of width/height, uniform in [-shift, shift]")
    scale: float = setting(0.1, "zoom factor uniform in [1 - scale, 1 + scale]")
    rotate: float = setting(15.0, "degrees, uniform in [-rotate, rotate]")
    border: str = setting(
        "reflect101",
        "what the shift/scale/rotate shows outside the image: reflect101 (mirrored without "
        "repeating the edge, albumentations 1.x's default) or constant (0)",
        choices=BORDERS,
    )
    jitter_p: float = setting(0.4, "probability of the colour jitter")
    brightness: float = setting(0.0, "brightness factor uniform in [max(0, 1 - b), 1 + b]")
    contrast: float = setting(0.1, "contrast factor uniform in [max(0, 1 - c), 1 + c]")
    saturation: float = setting(0.2, "saturation factor uniform in [max(0, 1 - s), 1 + s]")
    hue: float = setting(0.1, "hue shift uniform in [-hue, hue] turns (0.5 = half the circle)")
    jitter_clip: bool = setting(
        True,
        "clip to 0..1 after the brightness, contrast and saturation steps, as albumentations "
        "1.3.x on float images (with Normalize first: below the mean -> 0, above mean + 1 std "
        "-> 1); --no-jitter-clip needs Normalize first",
    )
    gray_p: float = setting(0.1, "probability of turning the image grey")
    cutout_p: float = setting(0.2, "probability of cutout")
    cutout_holes: int = setting(1, "cutout holes per image")
    cutout_size: int = setting(
        16, "cutout hole side in pixels (filled with the data set's mean); at most the image side"
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str) or isinstance(value, bool):
                continue
            if value < 0:
                raise ValueError(f"augmentation {f.name} must be >= 0, got {value}")
            if f.name.endswith("_p") and value > 1:
                raise ValueError(f"augmentation {f.name} is a probability, got {value}")
        if self.order not in ORDERS:
            raise ValueError(f"augmentation order must be one of {ORDERS}, got {self.order!r}")
        if self.border not in BORDERS:
            raise ValueError(f"augmentation border must be one of {BORDERS}, got {self.border!r}")
        if self.scale >= 1:
            raise ValueError(f"augmentation scale must be < 1, got {self.scale}")
        if self.hue > 0.5:
            raise ValueError(f"augmentation hue must be <= 0.5, got {self.hue}")
        if self.cutout_p and self.cutout_holes and self.cutout_size < 1:
            raise ValueError("augmentation cutout_size must be at least 1 with cutout on")
        if self.jitter_p and not self.jitter_clip and not self.normalize_first:
            raise ValueError(
                "augmentation jitter_clip off needs Normalize first: on 0..255 images the "
                "colour jitter saturates anyway"
            )

    @property
    def normalize_first(self) -> bool:
        """Whether the ops after Normalize see normalized floats (the assignment's order)."""
        return self.order.startswith("normalize")

    @property
    def ops(self) -> tuple[str, ...]:
        """The ops in order, Normalize left out."""
        return tuple(op for op in self.order.split(",") if op != "normalize")

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

    @classmethod
    def previous(cls) -> "AugConfig":
        """The recipe used before the assignment's was known: flip, affine (shift 0.1, black
        border), jitter 0.2/0.2/0.2/0.1 at p 0.5 on 0..1 images, grey, cutout at p 0.5,
        normalize last."""
        return cls(
            order=PREVIOUS_ORDER,
            flip_p=0.5,
            affine_p=0.5,
            shift=0.1,
            scale=0.1,
            rotate=15.0,
            border="constant",
            jitter_p=0.5,
            brightness=0.2,
            contrast=0.2,
            saturation=0.2,
            hue=0.1,
            jitter_clip=True,
            gray_p=0.1,
            cutout_p=0.5,
            cutout_holes=1,
            cutout_size=16,
        )


AUG_PRESETS: dict[str, AugConfig] = {"assignment": AugConfig(), "previous": AugConfig.previous()}


def _normalize_constants(mean: Sequence[float], std: Sequence[float]) -> tuple[list, list]:
    """albumentations' Normalize in float32: (v - 255 mean) * (1 / (255 std)), v in 0..255."""
    m255 = np.asarray(mean, dtype=np.float32) * np.float32(255)
    inv = np.reciprocal(np.asarray(std, dtype=np.float32) * np.float32(255), dtype=np.float32)
    return [float(v) for v in m255], [float(v) for v in inv]


# ---------------------------------------------------------------------------- albumentations
def albumentations_pipeline(cfg: AugConfig, mean: Sequence[float], std: Sequence[float]):
    """The reference pipeline: HWC uint8 numpy image in, normalized CHW float tensor out."""
    import albumentations as A
    from albumentations.pytorch import ToTensorV2

    from . import augment_ref as ref

    normalize = A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0)
    ops = [normalize] if cfg.normalize_first else []
    for op in cfg.ops:
        if op == "flip" and cfg.flip_p:
            ops.append(A.HorizontalFlip(p=cfg.flip_p))
        elif op == "affine" and cfg.affine_p:
            ops.append(
                ref.ShiftScaleRotate13(cfg.shift, cfg.scale, cfg.rotate, cfg.border, p=cfg.affine_p)
            )
        elif op == "jitter" and cfg.jitter_p and cfg.normalize_first:
            jitter = (cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)
            ops.append(ref.ColorJitter13(*jitter, clip=cfg.jitter_clip, p=cfg.jitter_p))
        elif op == "jitter" and cfg.jitter_p:
            # on uint8 (Normalize last): albumentations' own ColorJitter, by lookup tables
            ops.append(
                A.ColorJitter(
                    brightness=cfg.brightness,
                    contrast=cfg.contrast,
                    saturation=cfg.saturation,
                    hue=cfg.hue,
                    p=cfg.jitter_p,
                )
            )
        elif op == "gray" and cfg.gray_p:
            ops.append(A.ToGray(num_output_channels=3, method="weighted_average", p=cfg.gray_p))
        elif op == "cutout" and cfg.cutout_p and cfg.cutout_holes:
            # the hole shows the data set's mean: 0 once normalized, else the mean in uint8
            fill = 0 if cfg.normalize_first else tuple(round(m * 255) for m in mean)
            ops.append(
                A.CoarseDropout(
                    num_holes_range=(cfg.cutout_holes, cfg.cutout_holes),
                    hole_height_range=(cfg.cutout_size, cfg.cutout_size),
                    hole_width_range=(cfg.cutout_size, cfg.cutout_size),
                    fill=fill,
                    p=cfg.cutout_p,
                )
            )
    if not cfg.normalize_first:
        ops.append(normalize)
    ops.append(ToTensorV2())
    return ref.Compose13(ops, seed=0)


# ----------------------------------------------------------------------- batched torch ops
# Columns of the uniform draws, one row per image (TensorAugment.params).
_FLIP, _GRAY, _AFFINE, _ANGLE, _SCALE, _DX, _DY = range(7)
_JITTER, _B, _C, _S, _H = range(7, 12)
_ORDER = slice(12, 16)  # four keys; their argsort is the image's jitter order
_CUTOUT, _HOLES = 16, 17  # then (top, left) per hole


def _channels(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    """1 x C x 1 x 1 constants made on `like`'s device without a copy from the host (a copy
    would be a synchronisation on a GPU); torch.compile folds them."""
    parts = [torch.full((), v, dtype=like.dtype, device=like.device) for v in values]
    return torch.stack(parts)[None, :, None, None]


class TensorAugment:
    """The whole pipeline on a batch: uint8 N x H x W x 3 in, normalized float N x 3 x H x W
    out, on the batch's device.

    Every random number comes from one `torch.rand` on the batch's device (with the
    `generator` passed per call): no host synchronisation, no data-dependent shapes, so the
    pure function of images and draws (`_augment`) compiles to one graph that CUDA graphs can
    capture (`compile()`; a torch.Generator cannot enter a compiled graph, so the draw stays
    outside it, one kernel). Each image draws its own parameters and its own jitter order, as
    albumentations does.
    """

    def __init__(self, cfg: Optional[AugConfig], mean: Sequence[float], std: Sequence[float]):
        self.cfg = cfg or AugConfig.off()
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.m255, self.inv255 = _normalize_constants(mean, std)
        cfg = self.cfg
        self.active = bool(cfg.flip_p or cfg.affine_p or cfg.jitter_p or cfg.gray_p or cfg.cutout_p)
        self.columns = _HOLES + 2 * cfg.cutout_holes
        # a step at strength 0 is the identity (factor exactly 1, hue shift exactly 0)
        strengths = (cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)
        self.jitter_steps = tuple(k for k, v in enumerate(strengths) if v > 0)

    def __call__(
        self, images: torch.Tensor, generator: Optional[torch.Generator] = None, train: bool = True
    ) -> torch.Tensor:
        if not (train and self.active):
            return self.normalize(images)
        u = torch.rand(images.shape[0], self.columns, generator=generator, device=images.device)
        return self._augment(images, u)

    def compile(self, **options) -> "TensorAugment":
        """Compile the pure part (everything but the draw) with torch.compile(fullgraph=True,
        **options), in place; returns self."""
        self._augment = torch.compile(self._augment, fullgraph=True, **options)  # type: ignore[method-assign]
        return self

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N x H x W x 3 -> normalized float N x 3 x H x W (albumentations' Normalize)."""
        x = images.permute(0, 3, 1, 2).float()
        return (x - _channels(self.m255, x)) * _channels(self.inv255, x)

    def params(self, u: torch.Tensor, height: int, width: int) -> dict[str, torch.Tensor]:
        """Per-image parameters from uniform draws `u` (N x columns), as albumentations draws
        them: coins below p; factors uniform in [max(0, 1 - v), 1 + v]; angle, zoom, shifts
        uniform in their ranges; the jitter order a uniform permutation (NONE for an image
        not jittered); hole corners uniform where the hole fits whole."""
        cfg = self.cfg

        def between(col: int, lo: float, hi: float) -> torch.Tensor:
            return lo + u[:, col] * (hi - lo)

        def factor(col: int, v: float) -> torch.Tensor:
            return between(col, max(0.0, 1 - v), 1 + v)

        jitter = u[:, _JITTER] < cfg.jitter_p
        order = torch.argsort(u[:, _ORDER], dim=1)
        p = {
            "flip": u[:, _FLIP] < cfg.flip_p,
            "gray": u[:, _GRAY] < cfg.gray_p,
            "affine": u[:, _AFFINE] < cfg.affine_p,
            "angle": between(_ANGLE, -cfg.rotate, cfg.rotate),
            "scale": between(_SCALE, 1 - cfg.scale, 1 + cfg.scale),
            "dx": between(_DX, -cfg.shift, cfg.shift),
            "dy": between(_DY, -cfg.shift, cfg.shift),
            "jitter": jitter,
            "brightness": factor(_B, cfg.brightness),
            "contrast": factor(_C, cfg.contrast),
            "saturation": factor(_S, cfg.saturation),
            "hue": between(_H, -cfg.hue, cfg.hue),
            "jitter_ops": torch.where(jitter[:, None], order, NONE),
            "cutout": u[:, _CUTOUT] < cfg.cutout_p,
        }
        size = cfg.cutout_size
        tops, lefts = [], []
        for k in range(cfg.cutout_holes if cfg.cutout_p else 0):
            corners = ((height, _HOLES + 2 * k, tops), (width, _HOLES + 2 * k + 1, lefts))
            for span, col, out in corners:
                room = span - size + 1  # corners where the hole fits whole, as albumentations
                out.append(torch.floor(u[:, col] * room).clamp(max=room - 1).long())
        if tops:
            p["top"], p["left"] = torch.stack(tops, 1), torch.stack(lefts, 1)
        return p

    def _augment(self, images: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """The augmented, normalized batch from the images and the draws (pure: no randomness
        of its own, so eager and compiled give the same numbers)."""
        cfg = self.cfg
        n, h, w, _ = images.shape
        cfg.check_image(h, w)  # no silent clamp: the albumentations path cannot either
        p = self.params(u, h, w)
        if cfg.normalize_first:
            x = self.normalize(images)
            fill: torch.Tensor | float = 0.0
        else:
            x = images.permute(0, 3, 1, 2).float() / 255
            fill = _channels([round(m * 255) / 255 for m in self.mean], x)[0, :, 0, 0]
        for op in cfg.ops:
            if op == "flip" and cfg.flip_p:
                x = hflip(x, p["flip"])
            elif op == "gray" and cfg.gray_p:
                x = to_gray(x, p["gray"])
            elif op == "affine" and cfg.affine_p:
                moved = shift_scale_rotate(
                    x, p["angle"], p["scale"], p["dx"], p["dy"], border=cfg.border
                )
                x = torch.where(p["affine"][:, None, None, None], moved, x)
            elif op == "jitter" and cfg.jitter_p:
                x = color_jitter_per_image(
                    x,
                    p["jitter_ops"],
                    p["brightness"],
                    p["contrast"],
                    p["saturation"],
                    p["hue"],
                    clip=cfg.jitter_clip,
                    active=self.jitter_steps,
                )
            elif op == "cutout" and cfg.cutout_p and cfg.cutout_holes:
                for k in range(cfg.cutout_holes):
                    top, left = p["top"][:, k], p["left"][:, k]
                    x = cutout(x, top, left, cfg.cutout_size, fill, p["cutout"])
        if not cfg.normalize_first:
            x = (x - _channels(self.mean, x)) / _channels(self.std, x)
        return x
