"""`AugConfig()` is the assignment's recipe, line by line as issue #26's table gives it (read
from the assignment's published code, albumentations 1.3.x), on both paths; the settings used
before stay as `AugConfig.previous()`. Expected values are written out from the table, not
read from the code."""

from __future__ import annotations

import argparse
from dataclasses import asdict

import numpy as np
import pytest
import torch

import training.augment as aug
from rfkit_base.commandline import Parser as OneLineParser
from rfkit_base.settings import add_dataclass_options
from training.augment import AUG_PRESETS, AugConfig, TensorAugment, albumentations_pipeline

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
OFF = {f: 0.0 for f in ("flip_p", "affine_p", "jitter_p", "gray_p", "cutout_p")}


def rand_images(n: int, seed: int = 0, side: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


def both_paths(cfg: AugConfig, imgs: np.ndarray) -> dict[str, torch.Tensor]:
    pipe = albumentations_pipeline(cfg, MEAN, STD)
    ref = torch.stack([pipe(image=im)["image"] for im in imgs])
    g = torch.Generator().manual_seed(0)
    return {
        "albumentations": ref,
        "tensor": TensorAugment(cfg, MEAN, STD)(torch.from_numpy(imgs), g),
    }


def kinds(cfg: AugConfig) -> list[str]:
    return [type(t).__name__ for t in albumentations_pipeline(cfg, MEAN, STD).transforms]


def pick(cfg: AugConfig, kind: str):
    (t,) = [
        t for t in albumentations_pipeline(cfg, MEAN, STD).transforms if type(t).__name__ == kind
    ]
    return t


# ---------------------------------------------------------------- order: Normalize first
def test_order_is_normalize_jitter_gray_flip_shift_scale_rotate_cutout():
    assert AugConfig().order == "normalize,jitter,gray,flip,affine,cutout"
    assert kinds(AugConfig()) == [
        "Normalize",
        "ColorJitter13",
        "ToGray",
        "HorizontalFlip",
        "ShiftScaleRotate13",
        "CoarseDropout",
        "ToTensorV2",
    ]


def test_tensor_path_runs_the_ops_in_the_same_order(monkeypatch):
    calls: list[str] = []

    def recorder(name, fn):
        def wrapped(*args, **kw):
            calls.append(name)
            return fn(*args, **kw)

        return wrapped

    for name in ("color_jitter_per_image", "to_gray", "hflip", "shift_scale_rotate", "cutout"):
        monkeypatch.setattr(aug, name, recorder(name, getattr(aug, name)))
    monkeypatch.setattr(TensorAugment, "normalize", recorder("normalize", TensorAugment.normalize))
    TensorAugment(AugConfig(), MEAN, STD)(torch.from_numpy(rand_images(2)), torch.Generator())
    assert calls == [
        "normalize",
        "color_jitter_per_image",
        "to_gray",
        "hflip",
        "shift_scale_rotate",
        "cutout",
    ]
    calls.clear()
    TensorAugment(AugConfig.previous(), MEAN, STD)(torch.from_numpy(rand_images(2)), None)
    assert calls == ["hflip", "shift_scale_rotate", "color_jitter_per_image", "to_gray", "cutout"]


def test_jitter_acts_on_the_normalized_image_and_clips_it_to_0_1():
    # Normalize first and 1.3.x's clipping: a jittered image (contrast only, never exactly 1)
    # ends inside 0..1 in normalized units: below the channel mean -> 0, above mean + 1 std
    # -> 1. Jittered before Normalize (the previous order) it would span about -2..2.
    imgs = rand_images(6)
    cfg = AugConfig(**{**OFF, "jitter_p": 1.0}, saturation=0, hue=0)
    for path, out in both_paths(cfg, imgs).items():
        assert out.min() >= 0 and out.max() <= 1, path
        assert (out == 0).float().mean() > 0.3 and (out == 1).float().mean() > 0.1, path
    before = AugConfig.previous()
    cfg = AugConfig(
        **{**asdict(before), **OFF, "jitter_p": 1.0},
    )
    for path, out in both_paths(cfg, imgs).items():
        assert out.min() < -1.5 and out.max() > 1.5, path
    # and with the clipping turned off, the normalized range stays
    cfg = AugConfig(**{**OFF, "jitter_p": 1.0}, saturation=0, hue=0, jitter_clip=False)
    for path, out in both_paths(cfg, imgs).items():
        assert out.min() < -1.5 and out.max() > 1.5, path


# ---------------------------------------------------------------- ColorJitter
def test_color_jitter_is_0_0_1_0_2_0_1_at_p_0_4_with_1_3_clipping():
    cfg = AugConfig()
    assert (cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue) == (0.0, 0.1, 0.2, 0.1)
    assert cfg.jitter_p == 0.4 and cfg.jitter_clip is True
    t = pick(cfg, "ColorJitter13")
    assert (t.brightness, t.contrast, t.saturation, t.hue, t.clip, t.p) == (
        0.0,
        0.1,
        0.2,
        0.1,
        True,
        0.4,
    )


# ---------------------------------------------------------------- ToGray, flip
def test_to_gray_p_0_1_and_flip_p_0_5():
    cfg = AugConfig()
    assert (cfg.gray_p, cfg.flip_p) == (0.1, 0.5)
    assert pick(cfg, "ToGray").p == 0.1 and pick(cfg, "HorizontalFlip").p == 0.5


# ---------------------------------------------------------------- ShiftScaleRotate
def test_shift_scale_rotate_0_0625_0_1_15_at_p_0_5_reflect101():
    cfg = AugConfig()
    assert (cfg.shift, cfg.scale, cfg.rotate, cfg.affine_p) == (0.0625, 0.1, 15.0, 0.5)
    assert cfg.border == "reflect101"
    t = pick(cfg, "ShiftScaleRotate13")
    assert (t.shift, t.scale, t.rotate, t.border, t.p) == (0.0625, 0.1, 15.0, "reflect101", 0.5)


@pytest.mark.parametrize("border", ["reflect101", "constant"])
def test_border_by_hand_on_both_paths(border):
    # Shift right by 2 pixels exactly (no rotation, no zoom): output column j shows input
    # column j - 2; columns 0 and 1 are outside: reflect-101 mirrors about column 0 without
    # repeating it (-2 -> 2, -1 -> 1), constant shows 0.
    x = np.random.default_rng(3).normal(size=(6, 8, 3)).astype(np.float32)
    t = pick(AugConfig(**{**OFF, "affine_p": 1.0}, border=border), "ShiftScaleRotate13")
    ref = t.apply(x, angle=0.0, zoom=1.0, dx=2 / 8, dy=0.0)
    one = torch.ones(1)
    ten = aug.shift_scale_rotate(
        torch.from_numpy(x).permute(2, 0, 1)[None], 0 * one, one, one * 2 / 8, 0 * one, border
    )[0].permute(1, 2, 0)
    expected = np.empty_like(x)
    expected[:, 2:] = x[:, :-2]
    expected[:, :2] = x[:, [2, 1]] if border == "reflect101" else 0
    assert np.abs(ref - expected).max() < 1e-5
    assert np.abs(ten.numpy() - expected).max() < 1e-5


# ---------------------------------------------------------------- CoarseDropout
def test_cutout_one_16x16_hole_at_p_0_2():
    cfg = AugConfig()
    assert (cfg.cutout_holes, cfg.cutout_size, cfg.cutout_p) == (1, 16, 0.2)
    t = pick(cfg, "CoarseDropout")
    assert t.num_holes_range == (1, 1) and t.p == 0.2
    assert t.hole_height_range == (16, 16) and t.hole_width_range == (16, 16)


def test_cutout_fills_0_in_normalized_space_on_both_paths():
    # White images: a hole is the only place where a value is exactly 0 (normalized white is
    # about 2); exactly one 16 x 16 square per image, all channels.
    imgs = np.full((5, 32, 32, 3), 255, np.uint8)
    for path, out in both_paths(AugConfig(**{**OFF, "cutout_p": 1.0}), imgs).items():
        hole = out == 0
        assert hole.all(1).sum((1, 2)).tolist() == [256] * 5, path
        assert torch.equal(hole.any(1), hole.all(1)), path
        square = hole.all(1)
        assert all(int(s.any(1).sum()) == 16 and int(s.any(0).sum()) == 16 for s in square)


# ---------------------------------------------------------------- presets, flags
def test_previous_is_exactly_the_settings_used_before():
    assert asdict(AugConfig.previous()) == {
        "order": "flip,affine,jitter,gray,cutout,normalize",
        "flip_p": 0.5,
        "affine_p": 0.5,
        "shift": 0.1,
        "scale": 0.1,
        "rotate": 15.0,
        "border": "constant",
        "jitter_p": 0.5,
        "brightness": 0.2,
        "contrast": 0.2,
        "saturation": 0.2,
        "hue": 0.1,
        "jitter_clip": True,
        "gray_p": 0.1,
        "cutout_p": 0.5,
        "cutout_holes": 1,
        "cutout_size": 16,
    }
    assert kinds(AugConfig.previous()) == [
        "HorizontalFlip",
        "ShiftScaleRotate13",
        "ColorJitter",
        "ToGray",
        "CoarseDropout",
        "Normalize",
        "ToTensorV2",
    ]
    # the previous cutout is filled with the mean colour in uint8, before Normalize
    assert pick(AugConfig.previous(), "CoarseDropout").fill == (125, 123, 114)


def test_presets_and_off():
    assert set(AUG_PRESETS) == {"assignment", "previous"}
    assert AUG_PRESETS["assignment"] == AugConfig()
    assert AUG_PRESETS["previous"] == AugConfig.previous()
    off = AugConfig.off()
    assert (off.flip_p, off.affine_p, off.jitter_p, off.gray_p, off.cutout_p) == (0, 0, 0, 0, 0)
    assert kinds(off) == ["Normalize", "ToTensorV2"]


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="rftrain")
    add_dataclass_options(p, AugConfig)
    return p


def test_every_field_is_a_flag_the_new_ones_included():
    args = parser().parse_args(
        ["--order", "flip,affine,jitter,gray,cutout,normalize", "--border", "constant"]
    )
    assert (args.order, args.border, args.jitter_clip) == (
        "flip,affine,jitter,gray,cutout,normalize",
        "constant",
        True,
    )
    assert parser().parse_args(["--no-jitter-clip"]).jitter_clip is False
    defaults = vars(parser().parse_args([]))
    assert AugConfig(**defaults) == AugConfig()


def test_a_bad_choice_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit:
        parser().parse_args(["--border", "wrap"])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.count("\n") == 1 and "--border" in err


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(order="jitter,normalize"), "augmentation order must be one of"),
        (dict(border="wrap"), "augmentation border must be one of"),
        (
            dict(order="flip,affine,jitter,gray,cutout,normalize", jitter_clip=False),
            "jitter_clip off needs Normalize first",
        ),
    ],
)
def test_bad_new_settings_say_which(bad, message):
    with pytest.raises(ValueError, match=message):
        AugConfig(**bad)


def test_reference_draws_in_the_tables_ranges():
    # The reference's own ColorJitter and ShiftScaleRotate draw as 1.3.x: 4000 draws, each
    # end of a uniform range approached within 1 % of its width (missed with probability
    # 0.99^4000); brightness 0 is the factor 1 exactly; each order a permutation.
    pipe = albumentations_pipeline(AugConfig(), MEAN, STD)
    pipe.set_random_seed(0)
    jitter, ssr = pick(AugConfig(), "ColorJitter13"), pick(AugConfig(), "ShiftScaleRotate13")
    jitter.set_random_state(pipe.random_generator, pipe.py_random)
    ssr.set_random_state(pipe.random_generator, pipe.py_random)
    j = [jitter.get_params() for _ in range(4000)]
    g = [ssr.get_params() for _ in range(4000)]

    def spans(values, lo, hi):
        v, slack = np.array(values), 0.01 * (hi - lo)
        return v.min() >= lo and v.max() <= hi and v.min() < lo + slack and v.max() > hi - slack

    assert {d["b"] for d in j} == {1.0}
    assert spans([d["c"] for d in j], 0.9, 1.1) and spans([d["s"] for d in j], 0.8, 1.2)
    assert spans([d["h"] for d in j], -0.1, 0.1)
    assert all(sorted(d["order"]) == [0, 1, 2, 3] for d in j)
    assert len({tuple(d["order"]) for d in j}) == 24
    assert spans([d["angle"] for d in g], -15, 15) and spans([d["zoom"] for d in g], 0.9, 1.1)
    assert spans([d["dx"] for d in g], -0.0625, 0.0625)
    assert spans([d["dy"] for d in g], -0.0625, 0.0625)
