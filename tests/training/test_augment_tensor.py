"""The tensor path as the fast loop needs it: no host synchronisation, static shapes, one graph
for torch.compile with the same numbers as eager, per-image draws with the recipe's
probabilities and ranges."""

from __future__ import annotations

import math
import os
from dataclasses import replace
from itertools import permutations

import pytest
import torch

from training.augment import AUG_PRESETS, NONE, AugConfig, TensorAugment
from training.host_syncs import count_host_syncs

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
ALL = dict(flip_p=1, affine_p=1, jitter_p=1, gray_p=1, cutout_p=1, cutout_size=4)


def images(n: int = 8, h: int = 8, w: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, h, w, 3), dtype=torch.uint8, generator=g)


CONFIGS = {
    "assignment": AugConfig(cutout_size=4),
    "previous": replace(AugConfig.previous(), cutout_size=4),
    "assignment, all at p 1": AugConfig(**ALL),
    "previous, all at p 1": replace(AugConfig.previous(), **ALL),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_a_whole_call_makes_no_host_sync(name):
    aug = TensorAugment(CONFIGS[name], MEAN, STD)
    g = torch.Generator().manual_seed(0)
    x = images()
    with count_host_syncs() as counted:
        out = aug(x, g)
        aug(x, g, train=False)
    assert counted.total == 0, dict(counted.counts)
    assert out.shape == (8, 3, 8, 8) and out.dtype == torch.float32


def test_the_counter_would_see_a_sync_here():
    # the check above is not vacuous: reading one drawn value back is counted
    aug = TensorAugment(CONFIGS["assignment"], MEAN, STD)
    with count_host_syncs() as counted:
        aug(images(), torch.Generator().manual_seed(0)).sum().item()
    assert counted.counts["item"] == 1


def test_shapes_do_not_depend_on_the_draws():
    # Whatever is drawn, every intermediate has the batch's shape: the same op sequence
    # with every op drawn and with none drawn (p 1 against p 0 gives the same graph).
    aug = TensorAugment(AugConfig(**ALL), MEAN, STD)
    u_all = torch.zeros(8, aug.columns)  # every coin < p
    u_none = torch.full((8, aug.columns), 0.999)
    for u in (u_all, u_none):
        assert aug._augment(images(), u).shape == (8, 3, 8, 8)


def test_compiles_to_one_graph_with_the_eager_numbers():
    # dynamo captures the whole augmentation (all but the one torch.rand: a Generator cannot
    # enter a graph) in one graph; AOT autograd's functionalization and decompositions (what
    # inductor starts from) give eager's numbers for the same draws. Inductor: the slow test.
    # (fullgraph=True: a graph break would be an error.)
    torch._dynamo.reset()
    for cfg in (AugConfig(**ALL), CONFIGS["previous, all at p 1"]):
        aug = TensorAugment(cfg, MEAN, STD)
        x = images()
        eager = aug(x, torch.Generator().manual_seed(3))
        aug.compile(backend="aot_eager")
        assert torch.allclose(aug(x, torch.Generator().manual_seed(3)), eager, atol=1e-6)
        torch._dynamo.reset()


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RFCALC_SLOW") != "1", reason="set RFCALC_SLOW=1 (minutes)")
def test_inductor_gives_the_eager_numbers():
    # Inductor's C++ kernels on the CPU (the GPU gets Triton's): fused float arithmetic may
    # round differently, 1e-5 on values of size ~2. (About 2 minutes to compile here.)
    torch._dynamo.reset()
    aug = TensorAugment(AugConfig(**ALL), MEAN, STD)
    x = images()
    eager = aug(x, torch.Generator().manual_seed(3))
    aug.compile()
    assert torch.allclose(aug(x, torch.Generator().manual_seed(3)), eager, atol=1e-5)
    torch._dynamo.reset()


def draws(cfg: AugConfig, n: int, h: int = 32, w: int = 32, seed: int = 0) -> dict:
    aug = TensorAugment(cfg, MEAN, STD)
    u = torch.rand(n, aug.columns, generator=torch.Generator().manual_seed(seed))
    return aug.params(u, h, w)


@pytest.mark.parametrize("preset", ["assignment", "previous"])
def test_each_op_is_drawn_with_its_probability(preset):
    # n = 20000 images: a coin with probability p comes up n p times, sd sqrt(n p (1 - p))
    # (at most 71); 5 sd either way. Half or double the probability is far outside.
    cfg = AUG_PRESETS[preset]
    n = 20000
    p = draws(cfg, n)
    for key, prob in (
        ("flip", cfg.flip_p),
        ("affine", cfg.affine_p),
        ("jitter", cfg.jitter_p),
        ("gray", cfg.gray_p),
        ("cutout", cfg.cutout_p),
    ):
        count = int(p[key].sum())
        assert abs(count - n * prob) < 5 * math.sqrt(n * prob * (1 - prob)), (key, count)
    # the coins are independent: flip and jitter together n p q times
    both = int((p["flip"] & p["jitter"]).sum())
    pq = cfg.flip_p * cfg.jitter_p
    assert abs(both - n * pq) < 5 * math.sqrt(n * pq * (1 - pq))


def spans(t: torch.Tensor, lo: float, hi: float) -> bool:
    """All in [lo, hi] and both ends approached within 1 % of the width (20000 uniform draws
    miss that with probability 0.99^20000)."""
    slack = 0.01 * (hi - lo)
    return bool(t.min() >= lo and t.max() <= hi and t.min() < lo + slack and t.max() > hi - slack)


def test_the_assignments_parameters_in_their_ranges():
    p = draws(AugConfig(), 20000)
    assert spans(p["angle"], -15, 15) and spans(p["scale"], 0.9, 1.1)
    assert spans(p["dx"], -0.0625, 0.0625) and spans(p["dy"], -0.0625, 0.0625)
    # continuous shifts (1.3.x), not whole pixels: 0.0625 * 32 = 2 pixels, fractions too
    pixels = p["dx"] * 32
    assert (pixels - pixels.round()).abs().max() > 0.4
    assert torch.equal(p["brightness"], torch.ones(20000))  # brightness 0: factor exactly 1
    assert spans(p["contrast"], 0.9, 1.1) and spans(p["saturation"], 0.8, 1.2)
    assert spans(p["hue"], -0.1, 0.1)
    # one 16 x 16 hole whose corner lies where it fits whole: 0..16 on a 32-pixel side
    assert p["top"].shape == (20000, 1)
    assert set(p["top"].flatten().tolist()) == set(range(17))
    assert set(p["left"].flatten().tolist()) == set(range(17))


def test_the_previous_parameters_in_their_ranges():
    p = draws(AugConfig.previous(), 20000)
    assert spans(p["dx"], -0.1, 0.1) and spans(p["dy"], -0.1, 0.1)
    for key in ("brightness", "contrast", "saturation"):
        assert spans(p[key], 0.8, 1.2), key


def test_jitter_order_is_a_uniform_permutation_per_image():
    # Each jittered image takes one of the 24 orders, each with probability 1/24: over
    # m jittered images each order comes m/24 times, sd sqrt(m/24 (23/24)); 5 sd. Images
    # not jittered take no step in any slot.
    p = draws(AugConfig(), 24000)
    ops, jittered = p["jitter_ops"], p["jitter"]
    assert torch.equal(ops[~jittered], torch.full_like(ops[~jittered], NONE))
    rows = [tuple(r) for r in ops[jittered].tolist()]
    m = len(rows)
    expected, sd = m / 24, math.sqrt(m / 24 * 23 / 24)
    counts = {o: rows.count(o) for o in permutations(range(4))}
    assert sum(counts.values()) == m  # nothing but permutations of the four steps
    assert all(abs(c - expected) < 5 * sd for c in counts.values()), counts


def test_draws_come_from_the_generator_on_the_batchs_device():
    # The same generator state, the same output; another state, another output; and no draw
    # from torch's global generator (reseeding it changes nothing).
    aug = TensorAugment(AugConfig(), MEAN, STD)
    x = images(16, 32, 32)
    torch.manual_seed(0)
    a = aug(x, torch.Generator().manual_seed(5))
    torch.manual_seed(1)
    b = aug(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert not torch.equal(a, aug(x, torch.Generator().manual_seed(6)))


def test_every_op_stays_on_the_batchs_device():
    # On a GPU every tensor the pipeline makes must be made there; the meta device stands in
    # for one here (no data, and mixing it with a CPU tensor is an error, as with CUDA).
    meta = torch.device("meta")
    for cfg in (AugConfig(**ALL), CONFIGS["previous, all at p 1"]):
        x = torch.zeros(4, 8, 8, 3, dtype=torch.uint8, device=meta)
        assert TensorAugment(cfg, MEAN, STD)(x, None).device == meta
