"""The effective receptive field (Luo et al., NeurIPS 2016): which input pixels a unit *uses*.

The ERF of a row is the gradient of the centre unit of that row's output (summed over its
channels) with respect to the input, its absolute value summed over input channels, averaged
over N images and normalised to sum 1. The model runs in eval mode with its real weights, all
N images in one batch (eval mode makes the images independent, so one backward pass gives each
image's own gradient).

The numbers beside it compare it with the theoretical field from `analyze`: the share of the
contribution inside the theoretical box, the side of the smallest centred square holding 20, 30,
50 and 99 % of it (the high-contribution area ratio of Ding et al., RepLKNet, CVPR 2022) and
the σ of a Gaussian fitted to it.

A row's output is captured with a forward hook on its module, so the rows that can be measured
are module outputs (`c1.0.conv`, a second call `conv_1`), any module path (`c1`: the last row
inside it), and functional ops that are the last op of their module (`c1.1.add`, the output of
`c1.1`).
"""

from __future__ import annotations

import difflib
import random
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn

from .analysis import GLOBAL, UNKNOWN, Analysis, Row, analyze
from .geometry import RFError

__all__ = [
    "ERF",
    "ERFError",
    "THRESHOLDS",
    "IMAGE_SUFFIXES",
    "erf",
    "erfs",
    "erf_maps",
    "resolve_row",
    "capture_point",
    "run_capturing",
    "noise_images",
    "noise_words",
    "load_images",
    "load_weights",
    "centred_square",
    "gaussian_sigma",
    "share_inside",
    "extent",
]

THRESHOLDS = (20, 30, 50, 99)  # percent of the contribution, as in Ding et al.
NOISE_SEED = 0
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
Span = tuple[int, int]


class ERFError(RFError):
    """Bad input to the ERF (a row, a checkpoint, an image folder): a one-line message."""


@dataclass(frozen=True)
class Square:
    """The smallest square centred on the unit's field holding a share of the contribution."""

    threshold: int  # percent
    side: int  # pixels
    of_rf: tuple[float, ...]  # side / theoretical rf, per axis (None rf: ())
    of_input: tuple[float, ...]  # side / input size, per axis
    area_ratio: float  # area of the square inside the image / input area (Ding)


@dataclass(frozen=True)
class ERF:
    """The ERF of one unit and its numbers (spans are inclusive input pixel ranges per axis)."""

    row: Row  # the row measured (geometry from `analyze`)
    unit: tuple[int, ...]  # the unit: the centre of the row's map
    map: np.ndarray  # float64, the input's spatial shape, sums to 1
    inputs: str  # which images were used, in words
    n: int  # how many
    box: Optional[tuple[Span, ...]]  # the unit's theoretical field (unclipped); None: unknown
    centre: tuple[float, ...]  # the unit's field centre, start + u·jump
    note: str = ""  # e.g. the output has no spatial map: which row was used
    weights: str = ""  # where the weights came from ("" as initialised)

    @property
    def input_size(self) -> tuple[int, ...]:
        return tuple(self.map.shape)

    @property
    def clipped_box(self) -> Optional[tuple[Span, ...]]:
        """The theoretical box clipped to the image."""
        if self.box is None:
            return None
        return tuple((max(lo, 0), min(hi, n - 1)) for (lo, hi), n in zip(self.box, self.map.shape))

    @property
    def extent(self) -> Optional[tuple[Span, ...]]:
        """The span of the pixels with any contribution at all."""
        return extent(self.map)

    @property
    def inside(self) -> Optional[float]:
        """The share of the contribution inside the theoretical box (None: no box)."""
        return None if self.box is None else share_inside(self.map, self.box)

    @property
    def squares(self) -> tuple[Square, ...]:
        rf = tuple(float(r) for r in self.row.rf) if self.row.status != UNKNOWN else ()
        out = []
        for t in THRESHOLDS:
            side = centred_square(self.map, self.centre, t / 100)
            area = _square_area_inside(side, self.centre, self.map.shape)
            out.append(
                Square(
                    t,
                    side,
                    tuple(side / r for r in rf),
                    tuple(side / n for n in self.map.shape),
                    area / float(np.prod(self.map.shape)),
                )
            )
        return tuple(out)

    @property
    def sigma(self) -> tuple[float, ...]:
        return gaussian_sigma(self.map)

    # print() gives the numbers (`rfcalc erf`'s text), a notebook the heatmap beside them,
    # repr() one line (the map itself is `.map`)

    def __str__(self) -> str:
        from .render.erf import render

        return render([self], "text")

    def __repr__(self) -> str:
        from .render.cells import rf_cell

        unit = ",".join(map(str, self.unit))
        inside = "" if self.inside is None else f", {100 * self.inside:.1f} % inside the box"
        half = next(sq for sq in self.squares if sq.threshold == 50)
        return (
            f"<ERF of {self.row.name} ({self.row.op}) unit {unit}, "
            f"{self.weights or 'as initialised'}, {self.n} inputs: rf {rf_cell(self.row)}"
            f"{inside}, 50 % within {half.side} px>"
        )

    def _repr_html_(self) -> str:
        import base64
        from html import escape

        from .render.erf import figure_bytes, render

        text = f"<pre>{escape(render([self], 'text'))}</pre>"
        if self.map.ndim != 2:
            return text
        png = base64.b64encode(figure_bytes([self], "png")).decode("ascii")
        return (
            '<div style="display: flex; gap: 1em; align-items: flex-start">'
            f'<img alt="ERF heatmap of {escape(self.row.name)}" '
            f'src="data:image/png;base64,{png}">{text}</div>'
        )


# ---------------------------------------------------------------------------------- numbers


def extent(m: np.ndarray) -> Optional[tuple[Span, ...]]:
    """Per axis, the first and last index where `m` is non-zero (None if it is all zero)."""
    nz = m != 0
    if not nz.any():
        return None
    spans = []
    for axis in range(m.ndim):
        hit = nz.any(axis=tuple(a for a in range(m.ndim) if a != axis))
        idx = np.flatnonzero(hit)
        spans.append((int(idx[0]), int(idx[-1])))
    return tuple(spans)


def _clip_slices(spans: Sequence[Span], shape: Sequence[int]) -> Optional[tuple[slice, ...]]:
    out = []
    for (lo, hi), n in zip(spans, shape):
        lo, hi = max(int(lo), 0), min(int(hi), n - 1)
        if lo > hi:
            return None
        out.append(slice(lo, hi + 1))
    return tuple(out)


def share_inside(m: np.ndarray, box: Sequence[Span]) -> float:
    """The share of the total of `m` inside the box (inclusive spans, clipped to the map)."""
    total = float(m.sum())
    sl = _clip_slices(box, m.shape)
    return 0.0 if sl is None or total == 0 else float(m[sl].sum()) / total


def _square_spans(side: int, centre: Sequence[float]) -> tuple[Span, ...]:
    """Inclusive pixel spans of a square of `side` pixels centred on `centre` (per axis)."""
    half = Fraction(side - 1, 2)
    return tuple((int(Fraction(c) - half), int(Fraction(c) + half)) for c in centre)


def _square_area_inside(side: int, centre: Sequence[float], shape: Sequence[int]) -> int:
    area = 1
    for (lo, hi), n in zip(_square_spans(side, centre), shape):
        area *= max(0, min(hi, n - 1) - max(lo, 0) + 1)
    return area


def centred_square(m: np.ndarray, centre: Sequence[float], share: float) -> int:
    """Side (pixels) of the smallest square centred on `centre` holding `share` of `m`'s total.

    A centre on a pixel (an integer) takes odd sides, one between pixels (a half-integer) even
    sides, so the square is always exactly centred. Pixels outside the map hold nothing.
    """
    centre = [Fraction(c).limit_denominator(1 << 20) for c in centre]
    if any(c.denominator not in (1, 2) for c in centre) or len({c.denominator for c in centre}) > 1:
        # centres that are not on a pixel or between two (or differ per axis): round each to
        # the nearest half pixel on the same grid, the square's closest honest description
        centre = [Fraction(round(c * 2), 2) for c in centre]
        if len({c.denominator for c in centre}) > 1:
            centre = [Fraction(int(c)) if c.denominator == 2 else c for c in centre]
    side = 1 if centre[0].denominator == 1 else 2
    total = float(m.sum())
    need = share * total * (1 - 1e-12)
    biggest = 2 * max(max(abs(c), abs(n - 1 - c)) for c, n in zip(centre, m.shape)) + 2
    while side <= biggest:
        sl = _clip_slices(_square_spans(side, centre), m.shape)
        if sl is not None and float(m[sl].sum()) >= need:
            return side
        side += 2
    return side


def gaussian_sigma(m: np.ndarray) -> tuple[float, ...]:
    """Per axis, the σ of the Gaussian fitted to `m` as a distribution (maximum likelihood:
    the standard deviation of the marginal around its own mean, in pixels)."""
    total = float(m.sum())
    out = []
    for axis in range(m.ndim):
        marginal = m.sum(axis=tuple(a for a in range(m.ndim) if a != axis)) / total
        pos = np.arange(m.shape[axis], dtype=np.float64)
        mean = float((marginal * pos).sum())
        out.append(float(np.sqrt((marginal * (pos - mean) ** 2).sum())))
    return tuple(out)


# ---------------------------------------------------------------------------------- rows


def _spatial(row: Row) -> bool:
    return bool(row.size)


def resolve_row(analysis: Analysis, layer: Optional[str]) -> tuple[Row, str]:
    """The row to measure, and a note: the output (or the last row with a spatial map, said
    so) when `layer` is None; a row name; or a module path (its last row)."""
    rows = list(analysis.rows)
    if layer is None:
        out = analysis.output
        if out.size and out.name in {r.name for r in rows}:
            return out, ""
        spatial = [r for r in rows if _spatial(r)]
        if not spatial:
            raise ERFError("no row of this model has a spatial map to take the ERF of")
        last = spatial[-1]
        return last, (
            f"the model's output ({out.name}) has no spatial map: the ERF is taken "
            f"at {last.name}, the last row that has one"
        )
    for r in rows:
        if r.name == layer:
            if not _spatial(r):
                raise ERFError(
                    f"row {layer!r} has no spatial map (flattened); rows with one: "
                    f"{_nearest(layer, [x.name for x in rows if _spatial(x)])}"
                )
            return r, ""
    inside = [r for r in rows if r.name.startswith(layer + ".")]
    if inside:
        last = inside[-1]
        if _spatial(last):
            return last, f"{layer} is a module: its output is row {last.name}"
    names = [r.name for r in rows]
    raise ERFError(f"no row named {layer!r}; nearest: {_nearest(layer, names)}")


def _nearest(name: str, names: Sequence[str]) -> str:
    near = difflib.get_close_matches(name, names, n=4, cutoff=0.4)
    return ", ".join(near) if near else ", ".join(names[:4]) + (" ..." if len(names) > 4 else "")


def capture_point(model: nn.Module, analysis: Analysis, row: Row) -> tuple[nn.Module, int]:
    """The module whose output is `row`'s output, and which call of it (0 = first)."""
    modules = dict(model.named_modules())
    name = row.name
    if name in modules:
        return modules[name], 0
    m = re.fullmatch(r"(.+)_(\d+)", name)
    if m and m.group(1) in modules:  # the second call of a module is row `conv_1`
        return modules[m.group(1)], int(m.group(2))
    prefix = name.rpartition(".")[0]
    rows = list(analysis.rows)
    index = next(i for i, r in enumerate(rows) if r.name == name)
    later = [r for r in rows[index + 1 :] if prefix == "" or r.name.startswith(prefix + ".")]
    if prefix in modules and not later:  # the last op of its module: the module's output
        return modules[prefix], 0
    raise ERFError(
        f"row {name!r} is a functional op inside {prefix or 'the model'} whose "
        "output is no module's output, so it cannot be captured; measure "
        f"{prefix + ' or ' if prefix else ''}a module row such as "
        f"{_nearest(name, [r.name for r in rows if r.name in modules])}"
    )


class _Captured(Exception):
    pass


Point = tuple[nn.Module, int]  # a module and which call of it (0 = first)


def run_capturing(
    model: nn.Module,
    points: Sequence[Point],
    x: torch.Tensor,
    on_output: Callable[[int, torch.Tensor], object],
) -> None:
    """Run `model(x)`, calling `on_output(i, tensor)` when point i's module call returns; the
    forward pass stops as soon as every point has been seen (the rest is not needed)."""
    wanted: dict[nn.Module, dict[int, list[int]]] = {}
    for i, (module, call) in enumerate(points):
        wanted.setdefault(module, {}).setdefault(call, []).append(i)
    calls = dict.fromkeys(wanted, 0)
    left = {"n": len(points)}

    def hook(module, _inp, out):
        k = calls[module]
        calls[module] += 1
        for i in wanted[module].get(k, ()):
            if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
                out = out[0]
            if not isinstance(out, torch.Tensor):
                raise ERFError(f"{type(module).__name__} did not return a tensor")
            on_output(i, out)
            left["n"] -= 1
        if left["n"] == 0:
            raise _Captured

    handles = [m.register_forward_hook(hook) for m in wanted]
    try:
        model(x)
    except _Captured:
        pass
    finally:
        for h in handles:
            h.remove()
    if left["n"]:
        raise ERFError(
            "the forward pass did not reach every row asked for (data-dependent control flow?)"
        )


# ---------------------------------------------------------------------------------- maps


def erf_maps(
    model: nn.Module,
    images: torch.Tensor,
    targets: Sequence[tuple[nn.Module, int, tuple[int, ...]]],
    batch_size: int = 128,
    progress: Optional[Callable[[int], object]] = None,
) -> list[np.ndarray]:
    """For each (module, call, spatial size): the summed |gradient| map of its centre unit,
    over all images (unnormalised, float64): one forward pass per batch for all targets, one
    backward pass per target. `progress(n)` after each batch of n images."""
    model.eval()
    sums: list = [None] * len(targets)
    for chunk in torch.split(images, batch_size):
        x = chunk.detach().clone().requires_grad_(True)
        outs: dict[int, torch.Tensor] = {}
        with torch.enable_grad():
            run_capturing(
                model,
                [(m, c) for m, c, _ in targets],
                x,
                lambda i, out, outs=outs: outs.__setitem__(i, out),
            )
            for i, (_, _, size) in enumerate(targets):
                out = outs[i]
                spatial = tuple(out.shape[-len(size) :]) if size else ()
                if spatial != tuple(size):
                    raise ERFError(
                        f"the captured output has shape {tuple(out.shape)}, not the "
                        f"row's spatial size {tuple(size)}"
                    )
                centre = tuple((n - 1) // 2 for n in size)
                target = out[(Ellipsis, *centre)].sum()  # over the batch and the channels
                (grad,) = torch.autograd.grad(
                    target, x, allow_unused=True, retain_graph=i < len(targets) - 1
                )
                g = (torch.zeros_like(x) if grad is None else grad).abs().sum(1).sum(0)
                g = g.to(torch.float64).cpu().numpy()
                sums[i] = g if sums[i] is None else sums[i] + g
        if progress is not None:
            progress(len(chunk))
    return sums


def _box(row: Row, unit: Sequence[int], shape: Sequence[int]) -> Optional[tuple[Span, ...]]:
    if row.status == UNKNOWN or not row.rf:
        return None
    if row.status == GLOBAL:
        return tuple((0, n - 1) for n in shape)
    spans = []
    for s, j, r, u in zip(row.start, row.jump, row.rf, unit):
        c = Fraction(s) + u * Fraction(j)
        half = (Fraction(r) - 1) / 2
        spans.append((int(c - half), int(c + half)))
    return tuple(spans)


def _centre(row: Row, unit: Sequence[int], shape: Sequence[int]) -> tuple[float, ...]:
    if row.status == UNKNOWN or row.status == GLOBAL or not row.start:
        return tuple((n - 1) / 2 for n in shape)
    return tuple(float(Fraction(s) + u * Fraction(j)) for s, j, u in zip(row.start, row.jump, unit))


def erf(
    model: nn.Module,
    images: torch.Tensor,
    layer: Optional[str] = None,
    *,
    analysis: Optional[Analysis] = None,
    inputs: str = "",
    weights: str = "",
    batch_size: Optional[int] = None,
    progress: Optional[Callable[[int], object]] = None,
) -> ERF:
    """The ERF of the centre unit of row `layer` (default: the model's output, or the last row
    with a spatial map) over `images` (N, C, *spatial), used as given (see `noise_images`,
    `load_images`). Raises ERFError for a row that does not exist or cannot be captured."""
    return erfs(
        model,
        images,
        [layer],
        analysis=analysis,
        inputs=inputs,
        weights=weights,
        batch_size=batch_size,
        progress=progress,
    )[0]


def erfs(
    model: nn.Module,
    images: torch.Tensor,
    layers: Sequence[Optional[str]],
    *,
    analysis: Optional[Analysis] = None,
    inputs: str = "",
    weights: str = "",
    batch_size: Optional[int] = None,
    progress: Optional[Callable[[int], object]] = None,
) -> list[ERF]:
    """`erf` for several layers at once: one forward pass per batch serves them all. Batches
    hold 128 images, fewer for large inputs (about 4 M input values a batch). `progress(n)` is
    called after each batch of n images (a progress bar's `update`)."""
    images = torch.as_tensor(images)
    if images.dim() < 3:
        raise ERFError(f"images must be (N, C, *spatial), got shape {tuple(images.shape)}")
    param = next(model.parameters(), None)
    if param is not None:
        images = images.to(device=param.device, dtype=param.dtype)
    if batch_size is None:
        batch_size = max(1, min(128, (1 << 22) // max(1, images[0].numel())))
    analysis = analysis or analyze(model, tuple(images.shape[1:]))
    picked = [resolve_row(analysis, layer) for layer in layers]
    targets = [(*capture_point(model, analysis, row), row.size) for row, _ in picked]
    flags = {m: m.training for m in model.modules()}
    try:
        totals = erf_maps(model, images, targets, batch_size, progress)
    finally:
        for m, flag in flags.items():
            m.train(flag)
    return [
        _result(row, total, images.shape[0], note, inputs, weights)
        for (row, note), total in zip(picked, totals)
    ]


def _result(row: Row, total: np.ndarray, n: int, note: str, inputs: str, weights: str) -> ERF:
    s = float(total.sum())
    if s == 0:
        raise ERFError(
            f"{row.name}: the centre unit's gradient is zero on every image "
            "(the unit does not depend on the input)"
        )
    unit = tuple((k - 1) // 2 for k in row.size)
    shape = total.shape
    return ERF(
        row,
        unit,
        total / s,
        inputs or f"{n} images",
        n,
        _box(row, unit, shape),
        _centre(row, unit, shape),
        note,
        weights,
    )


# ---------------------------------------------------------------------------------- inputs


def noise_images(shape: Sequence[int], n: int = 100, seed: int = NOISE_SEED) -> torch.Tensor:
    """n Gaussian-noise inputs N(0, 1) of shape (C, *spatial), as in Luo et al."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((n, *shape), generator=gen)


def load_images(
    folder: Union[str, Path], shape: Sequence[int], n: int = 100, seed: int = 0
) -> tuple[torch.Tensor, str]:
    """n images from a folder (searched recursively), as (n, C, H, W) float32, and a sentence
    saying how they were made.

    When the folder holds more than n, a seeded random sample (so a class-sorted folder such as
    CIFAR-10's gives every class). Each is converted to RGB (C=3) or grey (C=1), scaled so its
    shorter side fits and centre-cropped to H×W (bilinear), put on a 0..1 scale, and every
    channel standardised with the mean and std of these n images (what per-dataset
    normalisation does in training).
    """
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    if not folder.is_dir():
        raise ERFError(f"{folder}: no such folder")
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise ERFError(
            f"--images needs an input of 1 or 3 channels and 2 spatial axes, not "
            f"{','.join(map(str, shape))}"
        )
    files = sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    if not files:
        raise ERFError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    if len(files) > n:
        files = random.Random(seed).sample(files, n)
    c, h, w = shape
    arrays, unreadable = [], 0
    for path in files:
        try:
            with Image.open(path) as im:
                im = im.convert("RGB" if c == 3 else "L")
                arrays.append(np.asarray(_fit(im, w, h), dtype=np.float32) / 255)
        except (OSError, UnidentifiedImageError, ValueError):
            unreadable += 1
    if not arrays:
        raise ERFError(f"{folder}: none of the {len(files)} image files could be read")
    x = np.stack(arrays)
    x = x[:, None] if c == 1 else x.transpose(0, 3, 1, 2)
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    std = x.std(axis=(0, 2, 3), keepdims=True)
    x = (x - mean) / np.where(std > 0, std, 1)
    skipped = f", {unreadable} unreadable skipped" if unreadable else ""
    words = (
        f"{len(arrays)} images from {folder} (seeded sample{skipped}; fitted to {h}×{w}, "
        "channels standardised)"
    )
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), words


def _fit(im, w: int, h: int):
    """Scale so the image covers w×h, then crop the centre."""
    from PIL import Image

    if im.size == (w, h):
        return im
    scale = max(w / im.width, h / im.height)
    size = (max(w, round(im.width * scale)), max(h, round(im.height * scale)))
    im = im.resize(size, Image.BILINEAR)
    left, top = (im.width - w) // 2, (im.height - h) // 2
    return im.crop((left, top, left + w, top + h))


def noise_words(n: int, seed: int = NOISE_SEED) -> str:
    return f"{n} Gaussian-noise inputs N(0, 1), seed {seed} (no --images given)"


# ---------------------------------------------------------------------------------- weights


def load_weights(model: nn.Module, path: Union[str, Path]) -> None:
    """Load a checkpoint into `model`: a plain state_dict, `rftrain`'s best.pt
    ({"model": state_dict, ...}) or last.pt ({"trainer": {"model": ...}, ...}). Read with
    weights_only=True (no code from the file runs). ERFError names the keys that don't fit."""
    path = Path(path)
    if not path.is_file():
        raise ERFError(f"{path}: no such checkpoint file")
    try:
        # rftrain's last.pt holds numpy RNG states: allow numpy arrays (data, no code)
        with torch.serialization.safe_globals(_numpy_data_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, not a torch file, a disallowed global
        raise ERFError(_unreadable(path, exc)) from None
    state = _state_dict(obj)
    if state is None:
        keys = ", ".join(map(str, list(obj)[:6])) if isinstance(obj, dict) else type(obj).__name__
        raise ERFError(f"{path}: holds no state_dict (found: {keys})")
    state = _strip_prefix(state, model)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {list(state[k].shape)} vs {list(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape differs", shapes),
        ):
            if keys:
                more = f" (+{len(keys) - 4} more)" if len(keys) > 4 else ""
                parts.append(f"{label}: {', '.join(keys[:4])}{more}")
        raise ERFError(f"{path} does not fit the model: {'; '.join(parts)}")
    model.load_state_dict(state)


def _unreadable(path: Path, exc: Exception) -> str:
    """Why torch.load refused a file, in the user's terms (torch's own advice is about
    torch.load's arguments, which a user of rfcalc does not call)."""
    import zipfile

    with open(path, "rb") as fh:
        head = fh.read(2)
    if not zipfile.is_zipfile(path) and head[:1] != b"\x80":  # neither format torch.save writes
        return f"{path} is not a PyTorch checkpoint (torch.save writes one)"
    if "weights_only" in str(exc) or "Unsupported global" in str(exc):
        return (
            f"{path} holds Python objects, not only tensors (a whole model saved with "
            "torch.save(model)?): save model.state_dict() instead"
        )
    return f"{path} cannot be read as a checkpoint: {type(exc).__name__}"


def _numpy_data_globals() -> list:
    core = getattr(np, "_core", None) or np.core
    return [
        core.multiarray._reconstruct,
        np.ndarray,
        np.dtype,
        *{
            type(np.dtype(t))
            for t in ("uint8", "uint32", "int32", "int64", "float32", "float64", "bool")
        },
    ]


def _is_state(obj) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _state_dict(obj) -> Optional[dict]:
    if _is_state(obj):
        return obj
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "model_state_dict", "trainer"):
            found = _state_dict(obj.get(key)) if key in obj else None
            if found is not None:
                return found
    return None


def _strip_prefix(state: dict, model: nn.Module) -> dict:
    """Keys saved from a wrapped model (DataParallel's `module.`, torch.compile's
    `_orig_mod.`) mapped back to the plain model's names."""
    own = set(model.state_dict())
    for prefix in ("module.", "_orig_mod."):
        if not (set(state) & own) and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state
