"""The augmentation's ops on a whole batch with torch: float N x 3 x H x W images and explicit
per-image parameters (shape (N,)), so that each op can be checked against albumentations 1.3.x
with the same numbers (tests/training/fixtures/alb13_ops.npz).

Every op is written for torch.compile and CUDA graphs: no host synchronisation, no
data-dependent shapes, no Python branching on tensor values. An op that applies to only some
images computes on all of them and selects with `torch.where`; for the elementwise ops
(flip, grey, the jitter steps, cutout) torch.compile fuses the op and the selection into one
kernel, so the images that did not draw the op cost one read and one write, as they would with
any masked kernel. The affine resampling (grid_sample) also runs on the whole batch: a gather
of four neighbours per output value, memory-bound like the rest; picking out the drawn images
would need a data-dependent size (a host sync).

The arithmetic is albumentations 1.3.x's on float32 images (which is OpenCV 4.x's):

* ColorJitter: brightness, contrast and saturation are each `f * x + (1 - f) * ref` (ref 0,
  the image's mean grey, the grey pixel), clipped to 0..1 unless f is exactly 1 (the step is
  skipped) or 0 (the reference itself); hue goes through OpenCV's float HSV conversion, which
  on values outside 0..1 is not a round trip (`hue`), and is skipped at a shift of exactly 0.
* ShiftScaleRotate: OpenCV's rotation matrix about ((w - 1) / 2, (h - 1) / 2), the shift
  (dx * w, dy * h) added unrounded, sampled where OpenCV 4's warpAffine samples (positions in
  fixed point, 1/32 pixel), bilinear, border reflect-101 or constant 0.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601, as cv2.COLOR_RGB2GRAY
FLT_EPSILON = 1.1920928955078125e-07  # OpenCV's RGB2HSV guards its divisions with it
BORDERS = ("reflect101", "constant")
# Jitter step numbers, as albumentations' ColorJitter.transforms; NONE marks "no step here".
BRIGHTNESS, CONTRAST, SATURATION, HUE, NONE = 0, 1, 2, 3, 4


def _col(t: torch.Tensor) -> torch.Tensor:
    """(N,) -> N x 1 x 1 x 1, to broadcast a per-image value over an image."""
    return t[:, None, None, None]


def hflip(x: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """Mirror the images where `apply` (N bools) is set."""
    return torch.where(_col(apply), x.flip(-1), x)


def gray(x: torch.Tensor) -> torch.Tensor:
    """Luma (N x 1 x H x W) with cv2's RGB->grey weights (no clipping, as cv2 on floats)."""
    r, g, b = x.unbind(1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b)[:, None]


def to_gray(x: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """Replace the images where `apply` is set by their grey version (3 channels)."""
    return torch.where(_col(apply), gray(x).expand_as(x), x)


# ------------------------------------------------------------------------------ colour jitter
def _linear_step(x: torch.Tensor, f: torch.Tensor, ref: torch.Tensor, clip: bool) -> torch.Tensor:
    """1.3.x's brightness/contrast/saturation: f x + (1 - f) ref, clipped; f == 1 returns the
    image untouched (no clipping either) and f == 0 the reference (unclipped)."""
    f4 = _col(f)
    out = f4 * x + (1 - f4) * ref
    if clip:
        out = out.clamp(0, 1)
    return torch.where(f4 == 1, x, torch.where(f4 == 0, ref.expand_as(x), out))


def brightness(x: torch.Tensor, f: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """Multiply by f per image (1.3.x `adjust_brightness_torchvision` on floats)."""
    return _linear_step(x, f, torch.zeros_like(x[:, :1]), clip)


def contrast(x: torch.Tensor, f: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """Pull towards the image's mean grey (1.3.x `adjust_contrast_torchvision` on floats)."""
    return _linear_step(x, f, gray(x).mean(dim=(1, 2, 3), keepdim=True), clip)


def saturation(x: torch.Tensor, f: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """Pull towards each pixel's grey (1.3.x `adjust_saturation_torchvision` on floats)."""
    return _linear_step(x, f, gray(x), clip)


def _rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # OpenCV's RGB2HSV_f: s = (max - min) / (|max| + eps), so for a pixel whose largest value
    # is negative (below the mean in every channel, once normalized) s is positive and may
    # exceed 1; hue in degrees.
    r, g, b = x.unbind(1)
    v = torch.maximum(torch.maximum(r, g), b)
    diff = v - torch.minimum(torch.minimum(r, g), b)
    s = diff / (v.abs() + FLT_EPSILON)
    k = 60 / (diff + FLT_EPSILON)
    h = torch.where(v == r, (g - b) * k, torch.where(v == g, (b - r) * k + 120, (r - g) * k + 240))
    return torch.where(h < 0, h + 360, h), s, v


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    # OpenCV's HSV2RGB_f: sector and fraction of h / 60, then v, v(1 - s), v(1 - s f),
    # v(1 - s (1 - f)) per sector. With v < 0 or s > 1 this is not RGB2HSV's inverse.
    h6 = h * (6 / 360)
    sector = torch.floor(h6)
    frac = h6 - sector
    wrap = sector >= 6  # h a hair below 360 may round up to sector 6: OpenCV makes it 0
    sector, frac = torch.where(wrap, 0, sector), torch.where(wrap, 0, frac)
    t0, t1 = v, v * (1 - s)
    t2, t3 = v * (1 - s * frac), v * (1 - s * (1 - frac))

    def pick(table: Sequence[torch.Tensor]) -> torch.Tensor:
        out = table[5]
        for k in range(4, -1, -1):
            out = torch.where(sector == k, table[k], out)
        return out

    r = pick((t0, t2, t1, t1, t3, t0))
    g = pick((t3, t0, t0, t2, t1, t1))
    b = pick((t1, t1, t3, t0, t0, t2))
    return torch.stack([r, g, b], dim=1)


def hue(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Turn the hue by f turns per image through OpenCV's float HSV (1.3.x
    `adjust_hue_torchvision`); f == 0 leaves the image as it is. Not clipped."""
    h, s, v = _rgb_to_hsv(x)
    h = torch.remainder(h + (f * 360)[:, None, None], 360)
    return torch.where(_col(f) == 0, x, _hsv_to_rgb(h, s, v))


def linear_step(
    x: torch.Tensor, op: torch.Tensor, b: torch.Tensor, c: torch.Tensor, s: torch.Tensor, clip: bool
) -> torch.Tensor:
    """One brightness, contrast or saturation step, chosen per image: `op` (N ints) is
    BRIGHTNESS, CONTRAST, SATURATION or NONE. The three are one formula with another
    reference and factor, so every image computes it once (elementwise, plus one mean per
    image: one fused kernel under torch.compile) and an image without a step keeps x."""
    g = gray(x)
    m = g.mean(dim=(1, 2, 3), keepdim=True)
    o4 = op[:, None, None, None]
    ref = torch.where(o4 == BRIGHTNESS, torch.zeros_like(g), torch.where(o4 == CONTRAST, m, g))
    f = torch.where(op == BRIGHTNESS, b, torch.where(op == CONTRAST, c, s))
    return torch.where(o4 == NONE, x, _linear_step(x, f, ref, clip))


def color_jitter(
    x: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    s: torch.Tensor,
    h: torch.Tensor,
    order: Sequence[int] = (0, 1, 2, 3),
    clip: bool = True,
) -> torch.Tensor:
    """The four steps in `order` for every image (factors 1, 1, 1, 0 leave an image as is)."""
    steps = (
        lambda t: brightness(t, b, clip),
        lambda t: contrast(t, c, clip),
        lambda t: saturation(t, s, clip),
        lambda t: hue(t, h),
    )
    for op in order:
        x = steps[op](x)
    return x


def color_jitter_per_image(
    x: torch.Tensor,
    ops: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    s: torch.Tensor,
    h: torch.Tensor,
    clip: bool = True,
    active: Sequence[int] = (BRIGHTNESS, CONTRAST, SATURATION, HUE),
) -> torch.Tensor:
    """The jitter with an order per image: `ops` (N x 4 ints) is each image's order (a
    permutation of 0..3, or NONE four times for an image not jittered); shapes never depend
    on the draws.

    `active` names the steps that can change an image; leave out one whose strength is 0
    (factor exactly 1, or a hue shift of exactly 0: 1.3.x skips it). Each image's active steps
    are m in its order with the hue among them once: at most m - 1 linear steps before it
    and m - 1 after. So m - 1 linear slots, the hue for every image at once, m - 1 linear
    slots, rather than four slots each computing the HSV round trip (the costly step).
    """
    active = sorted(set(active))
    m = len(active)
    if m == 0:
        return x
    keep = torch.zeros_like(ops, dtype=torch.bool)
    for op in active:
        keep |= ops == op
    # each image's active steps first, in its order (a stable sort of the positions)
    pos = torch.arange(ops.shape[1], device=ops.device)[None, :]
    first = torch.argsort(torch.where(keep, pos, pos + ops.shape[1]), dim=1)[:, :m]
    seq = torch.where(torch.gather(keep, 1, first), torch.gather(ops, 1, first), NONE)
    if HUE not in active:
        for k in range(m):
            x = linear_step(x, seq[:, k], b, c, s, clip)
        return x
    is_hue = seq == HUE
    before = (is_hue.cumsum(1) == 0).sum(1)  # steps before the hue (m if no hue: not jittered)
    for k in range(m - 1):
        op = torch.where(before > k, seq[:, k], NONE)
        x = linear_step(x, op, b, c, s, clip)
    x = torch.where(is_hue.any(1)[:, None, None, None], hue(x, h), x)
    for k in range(m - 1):
        at = before + 1 + k
        op = torch.gather(seq, 1, at.clamp(max=m - 1)[:, None])[:, 0]
        x = linear_step(x, torch.where(at < m, op, NONE), b, c, s, clip)
    return x


# ------------------------------------------------------------------------------ geometry
def _fixed_point(v: torch.Tensor) -> torch.Tensor:
    """OpenCV's saturate_cast<int>(v * 1024): rounded half to even, as lrint."""
    return torch.round(v * 1024).long()


def shift_scale_rotate(
    x: torch.Tensor,
    angle: torch.Tensor,
    scale: torch.Tensor,
    dx: torch.Tensor,
    dy: torch.Tensor,
    border: str = "reflect101",
) -> torch.Tensor:
    """albumentations 1.3.x's ShiftScaleRotate per image: rotate by `angle` degrees
    (counter-clockwise on screen) and zoom by `scale` about the centre ((w - 1) / 2, (h - 1) / 2),
    then shift by (dx * w, dy * h) pixels, unrounded; bilinear, border reflect-101 or constant 0.

    Sampled where OpenCV 4's warpAffine samples: it inverts the matrix in double and walks the
    output in fixed point (1/1024 pixel, rounded to 1/32), so the source positions are
    multiples of 1/32 pixel; computing them the same way gives the same samples.
    """
    if border not in BORDERS:
        raise ValueError(f"border must be one of {BORDERS}, got {border!r}")
    n, _, h, w = x.shape
    rad = angle.double() * (math.pi / 180)
    alpha, beta = torch.cos(rad) * scale.double(), torch.sin(rad) * scale.double()
    cx, cy = w / 2 - 0.5, h / 2 - 0.5  # albumentations 1.x: the centre of the pixel grid
    # cv2.getRotationMatrix2D plus the shift: [[alpha, beta, m02], [-beta, alpha, m12]]
    m02 = (1 - alpha) * cx - beta * cy + dx.double() * w
    m12 = beta * cx + (1 - alpha) * cy + dy.double() * h
    # cv2.invertAffineTransform, term by term (output pixel -> source pixel)
    det = 1 / (alpha * alpha + beta * beta)
    a11, a12, a21, a22 = alpha * det, -beta * det, beta * det, alpha * det
    b1, b2 = -a11 * m02 - a12 * m12, -a21 * m02 - a22 * m12
    xs = torch.arange(w, device=x.device, dtype=torch.float64)[None, :]
    ys = torch.arange(h, device=x.device, dtype=torch.float64)[None, :]
    col = lambda t: t[:, None]  # noqa: E731
    # warpAffine: X = (round((a12 y + b1) 1024) + 16 + round(a11 x 1024)) >> 5, in 1/32 pixel
    sx = _fixed_point(col(a12) * ys + col(b1))[:, :, None] + _fixed_point(col(a11) * xs)[:, None]
    sy = _fixed_point(col(a22) * ys + col(b2))[:, :, None] + _fixed_point(col(a21) * xs)[:, None]
    sx = torch.div(sx + 16, 32, rounding_mode="floor").to(x.dtype) / 32  # N x H x W, pixels
    sy = torch.div(sy + 16, 32, rounding_mode="floor").to(x.dtype) / 32
    # grid_sample with align_corners=True puts -1 and 1 on the first and last pixel centres and
    # reflects about them: that is reflect-101 (the edge pixel not repeated).
    grid = torch.stack([sx * (2 / max(w - 1, 1)) - 1, sy * (2 / max(h - 1, 1)) - 1], dim=-1)
    padding = "reflection" if border == "reflect101" else "zeros"
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=True)


def affine(
    x: torch.Tensor,
    angle: torch.Tensor,
    scale: torch.Tensor,
    tx: torch.Tensor,
    ty: torch.Tensor,
    border: str = "constant",
) -> torch.Tensor:
    """`shift_scale_rotate` with a black (0) border by default; (tx, ty) fractions of the
    width and height (right and down)."""
    return shift_scale_rotate(x, angle, scale, tx, ty, border)


def cutout(
    x: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    size: int,
    fill: torch.Tensor | float,
    apply: torch.Tensor,
) -> torch.Tensor:
    """Fill a size x size square at (top, left) with `fill` (a number, or 3 values) where
    `apply` is set."""
    _, _, h, w = x.shape
    rows = torch.arange(h, device=x.device)[None, :]
    cols = torch.arange(w, device=x.device)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + size)  # N x H
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + size)  # N x W
    hole = (in_rows[:, :, None] & in_cols[:, None, :]) & apply[:, None, None]
    if isinstance(fill, torch.Tensor):
        fill = fill.to(x.dtype)[None, :, None, None]
    return torch.where(hole[:, None], fill, x)
