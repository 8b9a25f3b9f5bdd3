"""A third held-out set for issue 27: new phrasings of its categories and a dozen ordinary
conv nets, each model's output (and, where cheap, its modules' outputs) measured by
perturbation against rfcalc's claim.

The truth: every input pixel changed on its own (all channels, by +1 and again by +8, the
second so that argmax/sort/threshold routing flips), one forward pass each on a batch of one
(nothing can mix batch elements), float64, eval mode; a unit moved when it changed by more
than 1e-9 of its magnitude plus the map's mean magnitude (no float noise reaches that: an
unaffected unit computes the same function of the same values). A model that keeps state
across calls is rebuilt fresh for every forward, so the truth is the field of one forward
of the model as analysed. Perturbation measures a lower bound of what a unit reaches (a
data-dependent path may not switch), so "global over-claim" and "exact wider than measured"
are flags to check by hand, not errors; an under-claim is always an error (the unit moved).

    PYTHONPATH=$PWD python tests/rfcalc/sweep27b.py [name ...]  # one line per model, counts
"""

from __future__ import annotations

import copy
import io
import pickle
import sys
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Callable, Optional

import adversarial as adv
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

SHAPE = (1, 12, 12)


class Net(nn.Module):
    """A model from a function of (self, x), with layers to use (weights 0.1: positive, so
    no path cancels another), a buffer, and an optional setup(self) for extra parts."""

    def __init__(self, fn: Callable):
        super().__init__()
        self.fn = fn
        c = getattr(fn, "shape", SHAPE)[0]
        self.c1 = nn.Conv2d(c, 1, 1)
        self.c3 = nn.Conv2d(c, 1, 3, padding=1)
        self.c5 = nn.Conv2d(c, 1, 5, padding=2)
        self.c7 = nn.Conv2d(c, 1, 7, padding=3)
        self.e4 = nn.Conv2d(c, 4, 3, padding=1)
        self.e4b = nn.Conv2d(c, 4, 5, padding=2)
        self.lin = nn.Linear(1, 1)
        self.W4 = nn.Parameter(torch.ones(2, 4))
        self.register_buffer("buf", torch.zeros(1, 1, 12, 12))
        setup = getattr(fn, "setup", None)
        if setup is not None:
            setup(self)
        with torch.no_grad():
            for p in self.parameters():
                p.fill_(0.1)
        if getattr(fn, "rand", False):  # channels that differ (attention scores that vary)
            gen = torch.Generator().manual_seed(3)
            with torch.no_grad():
                for p in self.parameters():
                    p.copy_(0.05 + 0.1 * torch.rand(p.shape, generator=gen))
        post = getattr(fn, "post", None)
        if post is not None:
            post(self)

    def forward(self, x):
        return self.fn(self, x)


def _setup(**layers):
    def setup(s):
        for k, v in layers.items():
            setattr(s, k, v() if callable(v) and not isinstance(v, nn.Module) else v)

    return setup


def tag(**kw):
    def deco(fn):
        for k, v in kw.items():
            setattr(fn, k, v)
        return fn

    return deco


# ---------------------------------------------------------------- writes the recorder may miss


def index_put_accumulate(s, x):
    out = torch.zeros(12, 12, dtype=x.dtype)
    r, c = torch.arange(12).repeat_interleave(12), torch.arange(12).repeat(12)
    out.index_put_((r, (c + 1) % 12), s.c5(x).flatten(), accumulate=True)
    return s.c1(x) + out[None, None]


def scatter_add_row_shift(s, x):
    idx = ((torch.arange(144) + 12) % 144).view(1, 1, 144)
    out = torch.zeros(1, 1, 144, dtype=x.dtype).scatter_add_(2, idx, s.c3(x).flatten(2))
    return out.view(1, 1, 12, 12) + s.c1(x)


def masked_scatter_fresh(s, x):
    mask = torch.zeros(1, 1, 12, 12, dtype=torch.bool)
    mask[..., ::2, :] = True  # source elements fill the mask in order: rows move
    return torch.zeros_like(x).masked_scatter_(mask, s.c7(x)) + s.c1(x)


def empty_like_copy(s, x):
    out = torch.empty_like(x)
    out.copy_(s.c5(x))
    return s.c1(x) * out


def new_empty_halves(s, x):
    out = x.new_empty(1, 1, 12, 12)
    out[:] = s.c7(x)
    out[..., :6, :] = s.c1(x)[..., :6, :]
    return out


def out_add(s, x):
    buf = torch.empty(1, 1, 12, 12, dtype=x.dtype)
    torch.add(s.c1(x), s.c7(x), out=buf)
    return buf


def out_cat(s, x):
    buf = torch.empty(1, 2, 12, 12, dtype=x.dtype)
    torch.cat([s.c1(x), s.c5(x)], 1, out=buf)
    return buf


def out_into_buffer(s, x):
    torch.mul(s.c3(x), s.c5(x), out=s.buf)
    return s.buf + 0


def as_strided_write(s, x):
    y = s.c1(x)
    y.as_strided((144,), (1,)).add_(s.c7(x).reshape(144))
    return y


def view_of_view_write(s, x):
    y = s.c1(x).clone()
    y.view(144).view(12, 12)[3:9].add_(s.c5(x)[0, 0, 3:9])
    return y


def untyped_storage_alias(s, x):
    y = s.c1(x)
    z = torch.empty(0, dtype=x.dtype).set_(y.untyped_storage(), 0, (12, 12), (12, 1))
    z.add_(s.c7(x)[0, 0])
    return y


def int_view_copy(s, x):
    y = s.c1(x)
    y.view(torch.int64).copy_(s.c5(x).view(torch.int64))  # y's bits become c5's
    return y


def row_copy_expand(s, x):
    b = torch.zeros(1, 1, 1, 12, dtype=x.dtype)
    b.copy_(s.c3(x)[..., 5:6, :])
    return s.c1(x) + b.expand(1, 1, 12, 12)


def buffer_half_view(s, x):
    s.buf.zero_()
    s.buf[..., :, :6].add_(s.c7(x)[..., :, :6])
    return s.c1(x) + s.buf


def buffer_index_add(s, x):
    s.buf.zero_()
    s.buf.index_add_(3, (torch.arange(12) + 3) % 12, s.c3(x))
    return s.buf * s.c1(x)


def put_reversed(s, x):
    z = torch.zeros(144, dtype=x.dtype)
    z.put_(torch.arange(143, -1, -1), s.c3(x).flatten())
    return z.view(1, 1, 12, 12) + s.c1(x)


def slice_scatter_half(s, x):
    return torch.slice_scatter(s.c1(x), s.c7(x)[..., :6, :], dim=2, start=0, end=6)


def setitem_local_mask(s, x):
    y = s.c1(x).clone()
    m = s.c3(x) > 1.45
    y[m] = s.c7(x)[m]
    return y


def stack_rows_reversed(s, x):
    y = s.c3(x)
    return torch.stack([y[..., 11 - i, :] for i in range(12)], 2)


def cat_columns_rotated(s, x):
    y = s.c5(x)
    return torch.cat([y[..., i : i + 1] for i in [*range(3, 12), 0, 1, 2]], 3)


def loop_pool_into_empty(s, x):
    y = s.c3(x)
    out = torch.empty(1, 1, 6, 6, dtype=x.dtype)
    for i in range(6):
        for j in range(6):
            out[..., i, j] = y[..., 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].amax((-2, -1))
    return out


def pickle_roundtrip(s, x):
    return pickle.loads(pickle.dumps(s.c5(x))) + s.c1(x)


def sparse_roundtrip(s, x):
    return s.c7(x).to_sparse().to_dense() + s.c1(x)


def numpy_roll_back(s, x):
    return torch.from_numpy(np.roll(s.c3(x).numpy(), 2, axis=3))


def data_write_far_pixel(s, x):
    y = s.c1(x)
    y.data[..., 1, 6] += x.data[..., 1, 9].sum()  # one unit, one far pixel
    return y


def numpy_write_far_pixel(s, x):
    y = s.c1(x)
    y.numpy()[0, 0, 9, 2] += x.numpy()[0, 0, 9, 7]
    return y


# ---------------------------------------------------------------- data-dependent routing


def gather_row_argmax(s, x):
    idx = s.c1(x).argmax(3, keepdim=True)
    return torch.gather(s.c3(x), 3, idx).expand(1, 1, 12, 12) + s.c1(x)


def index_select_int_argmax(s, x):
    i = int(s.c1(x).sum(2).argmax())
    return s.c1(x) + s.c3(x).index_select(3, torch.tensor([i])).expand(-1, -1, -1, 12)


def sort_values(s, x):
    return s.c3(x).flatten(2).sort(-1).values.view(1, 1, 12, 12)


def topk_flat(s, x):
    return s.c3(x).flatten(1).topk(5).values


def argmax_onehot(s, x):
    oh = F.one_hot(s.c3(x).flatten(2).argmax(-1), 144).view(1, 1, 12, 12).to(x.dtype)
    return s.c1(x) + oh


def where_global_threshold(s, x):
    y = s.c3(x)
    return torch.where(y > y.mean(), s.c1(x), s.c5(x))


def take_along_column_sort(s, x):
    return torch.take_along_dim(s.c3(x), s.c1(x).argsort(2), 2)


@tag(setup=_setup(table=lambda: nn.Embedding(10, 1)), rand=True)
def bucketize_embedding(s, x):
    idx = torch.bucketize(s.c3(x), torch.linspace(1, 2, 8, dtype=x.dtype))
    return s.table(idx[:, 0]).permute(0, 3, 1, 2)


def builtin_max_of_elements(s, x):
    return s.c1(x) * max(s.c7(x).flatten()[::7])


def float_standardize(s, x):
    y = s.c3(x)
    return (y - float(y.mean())) / float(y.std())


def numpy_scalar_shift(s, x):
    return s.c1(x) + s.c5(x).numpy().mean()


def item_kernel_size(s, x):
    k = int(s.c3(x).sum().item() * 1000) % 2 + 1
    return F.avg_pool2d(s.c1(x), 2 * k + 1, 1, k)


def bool_parity_branch(s, x):
    y = s.c1(x)
    if int(s.c7(x).sum() * 1000) % 2:
        y = y + 1
    return y


# ---------------------------------------------------------------- grad modes, transforms


def inference_mode_off_inside(s, x):
    with torch.inference_mode():
        far = s.c7(x)
        with torch.inference_mode(False):
            near = s.c1(x)
    return near + far.clone()


def inference_buffer_add(s, x):
    with torch.no_grad(), torch.enable_grad(), torch.inference_mode():
        acc = torch.zeros(1, 1, 12, 12, dtype=x.dtype)
        acc.add_(s.c5(x))
    return s.c1(x) + acc.clone()


def jvp_tangent(s, x):
    _, t = torch.func.jvp(s.c5, (x,), (x,))
    return s.c1(x) + t


def input_gradient_feature(s, x):
    with torch.enable_grad():
        xg = x.detach().requires_grad_()
        (g,) = torch.autograd.grad(s.c3(xg).pow(2).sum(), xg)
    return s.c1(x) + g.detach()


def func_grad_feature(s, x):
    g = torch.func.grad(lambda t: s.c3(t).pow(2).sum())(x)
    return s.c1(x) + g


def functional_call_scaled(s, x):
    params = {"weight": s.c7.weight * 1, "bias": s.c7.bias}
    return torch.func.functional_call(s.c7, params, (x,)) + s.c1(x)


def autocast_bf16(s, x):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = F.conv2d(x.float(), s.c5.weight.float(), s.c5.bias.float(), padding=2)
    return y.double() + s.c1(x)


def checkpoint_stack(s, x):
    return checkpoint(lambda t: s.c7(s.c3(t)), x, use_reentrant=False)


def checkpoint_reentrant(s, x):
    return checkpoint(s.c5, x, use_reentrant=True) + s.c1(x)


class _BoxNumpy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t):
        a = t.detach().numpy()
        return torch.from_numpy(sum(np.roll(a, k, axis=3) for k in range(-2, 3)))

    @staticmethod
    def backward(ctx, g):
        return g


def custom_function_numpy(s, x):
    return _BoxNumpy.apply(s.c1(x))


def _script_conv(s):
    s.js = torch.jit.script(nn.Conv2d(1, 1, 7, padding=3))


def _script_post(s):
    with torch.no_grad():
        s.js.weight.fill_(0.1)
        s.js.bias.fill_(0.1)


@tag(setup=_script_conv, post=_script_post)
def jit_script_conv(s, x):
    return s.js(x) + s.c1(x)


def _trace_pool(s):
    s.tp = torch.jit.trace(nn.AvgPool2d(5, 1, 2), torch.rand(1, 1, 12, 12, dtype=torch.float64))


@tag(setup=_trace_pool)
def jit_trace_pool(s, x):
    return s.tp(s.c1(x))


def aten_convolution(s, x):
    far = torch.ops.aten.convolution(x, s.c7.weight, None, [1, 1], [3, 3], [1, 1], False, [0, 0], 1)
    return far + s.c1(x)


def c_nn_avg_pool(s, x):
    return torch._C._nn.avg_pool2d(s.c1(x), 5, 1, 2)


# ---------------------------------------------------------------- hooks, state across calls


def _hook_far(s):
    s.c1.register_forward_hook(lambda m, inp, out: out + s.c7(inp[0]))


@tag(setup=_hook_far, hooks=True)
def hook_adds_far(s, x):
    return s.c1(x)


def _pre_hook_roll(s):
    s.c3.register_forward_pre_hook(lambda m, inp: (torch.roll(inp[0], 4, 3),))


@tag(setup=_pre_hook_roll, hooks=True)
def pre_hook_roll(s, x):
    return s.c3(x)


@tag(setup=_setup(scale=None), stateful=True)
def cached_first_scale(s, x):
    if s.scale is None:
        s.scale = s.c7(x).mean().item()
    return s.c1(x) * s.scale


@tag(stateful=True)
def previous_call_memory(s, x):
    out = s.c1(x) + s.buf
    s.buf = s.c7(x)
    return out


# ---------------------------------------------------------------- resampling, positions


def unfold_box_mean(s, x):
    return F.unfold(s.c1(x), 3, padding=1).mean(1, keepdim=True).view(1, 1, 12, 12)


def fold_flipped_patches(s, x):
    return F.fold(F.unfold(s.c1(x), 3, padding=1).flip(1), (12, 12), 3, padding=1)


@tag(setup=_setup(tok=lambda: nn.Linear(16, 2)))
def patchify_unfold_linear(s, x):
    t = s.tok(F.unfold(s.c3(x), 4, stride=4).transpose(1, 2))  # (1, 9, 2)
    return t.transpose(1, 2).reshape(1, 2, 3, 3)


@tag(setup=_setup(up=lambda: nn.Conv2d(1, 4, 3, stride=2, padding=1)))
def pixel_shuffle_up(s, x):
    return F.pixel_shuffle(s.up(x), 2)


@tag(setup=_setup(mid=lambda: nn.Conv2d(4, 4, 3, padding=1)))
def unshuffle_conv_shuffle(s, x):
    return F.pixel_shuffle(s.mid(F.pixel_unshuffle(x, 2)), 2)


def grid_sample_zoom(s, x):
    theta = torch.tensor([[[0.5, 0, 0], [0, 0.5, 0]]], dtype=x.dtype)
    grid = F.affine_grid(theta, (1, 1, 12, 12), align_corners=False)
    return F.grid_sample(s.c1(x), grid, align_corners=False)


def grid_sample_offsets(s, x):
    # a deformable-style sampler: where each unit samples depends on the data
    base = F.affine_grid(torch.eye(2, 3, dtype=x.dtype)[None], (1, 1, 12, 12), False)
    return F.grid_sample(s.c1(x), base + s.c3(x).permute(0, 2, 3, 1) * 0.3, align_corners=False)


def bicubic_align_corners(s, x):
    return F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="bicubic", align_corners=True)


def nearest_exact_1_5(s, x):
    return F.interpolate(s.c3(x), scale_factor=1.5, mode="nearest-exact")


def area_down_5(s, x):
    return F.interpolate(s.c1(x), size=(5, 5), mode="area")


def bilinear_antialias_down(s, x):
    return F.interpolate(s.c1(x), size=(6, 6), mode="bilinear", antialias=True)


def roll_wrap(s, x):
    return torch.roll(s.c3(x), shifts=(2, -3), dims=(2, 3))


def flip_plus_local(s, x):
    return s.c3(x).flip(3) + s.c1(x)


def repeat_crop_wrap(s, x):
    return s.c3(x).repeat(1, 1, 1, 2)[..., 6:18]


def repeat_interleave_up(s, x):
    y = s.c3(x)[..., ::2, ::2]
    return y.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


def list_index_rows(s, x):
    return s.c3(x)[..., [0, 5, 11], :]


def max_unpool(s, x):
    y, i = F.max_pool2d(s.c3(x), 2, 2, return_indices=True)
    return F.max_unpool2d(y, i, 2, 2)


def fft_lowpass(s, x):
    f = torch.fft.rfft2(s.c1(x))
    f[..., 3:-3, :] = 0
    f[..., 3:] = 0
    return torch.fft.irfft2(f, s=(12, 12))


def diff_columns(s, x):
    return torch.diff(s.c1(x), dim=3)


# ---------------------------------------------------------------- padding, windows, the edge


def pad_circular_valid(s, x):
    return F.conv2d(F.pad(s.c1(x), (2, 2, 2, 2), mode="circular"), s.c5.weight)


def pad_reflect_valid(s, x):
    return F.conv2d(F.pad(x, (3, 3, 3, 3), mode="reflect"), s.c7.weight)


def pad_replicate_asymmetric(s, x):
    return F.conv2d(F.pad(x, (0, 4, 1, 3), mode="replicate"), s.c5.weight)


def conv_k4_s2_p1(s, x):
    return F.conv2d(x, torch.full((1, 1, 4, 4), 0.1, dtype=x.dtype), stride=2, padding=1)


def conv_k2_s3_valid(s, x):
    return F.conv2d(x, torch.full((1, 1, 2, 2), 0.1, dtype=x.dtype), stride=3)


@tag(setup=_setup(t=lambda: nn.ConvTranspose2d(1, 1, 3, 2, 1, output_padding=1)))
def conv_transpose_k3_s2(s, x):
    return s.t(s.c3(x))


@tag(setup=_setup(d=lambda: nn.Conv2d(1, 1, 3, stride=2, padding=1),
                  t=lambda: nn.ConvTranspose2d(1, 1, 4, 2, 1)))  # fmt: skip
def conv_transpose_k4_s2(s, x):
    return s.t(s.d(x))


@tag(
    shape=(2, 12, 12),
    setup=_setup(
        g=lambda: nn.Conv2d(2, 4, 3, padding=2, dilation=2, groups=2),
        h=lambda: nn.Conv2d(4, 1, 3, padding=3, dilation=3),
    ),
)
def grouped_dilated_stack(s, x):
    return s.h(s.g(x))


def maxpool_ceil(s, x):
    return F.max_pool2d(s.c3(x), 3, 2, ceil_mode=True)


def avgpool_ceil_no_pad_count(s, x):
    return F.avg_pool2d(s.c1(x), 2, 2, padding=1, ceil_mode=True, count_include_pad=False)


def pool_after_odd_crop(s, x):
    return F.avg_pool2d(s.c1(x)[..., :11, :11], 2)


def adaptive_max_3x1(s, x):
    return F.adaptive_max_pool2d(s.c3(x), (3, 1))


def adaptive_avg_5(s, x):
    return F.adaptive_avg_pool2d(s.c1(x), 5)


def crop_mean_plus_local(s, x):
    return s.c3(x) + s.c1(x)[..., :6, :6].mean((2, 3), keepdim=True)


@tag(setup=_setup(head=lambda: nn.Linear(36, 4)))
def centre_crop_head(s, x):
    return s.head(s.c3(x)[..., 3:9, 3:9].flatten(1))


def instance_standardize(s, x):
    y = s.c3(x)
    return (y - y.mean((2, 3), keepdim=True)) / (y.var((2, 3), keepdim=True) + 1e-5).sqrt()


@tag(setup=_setup(gn=lambda: nn.GroupNorm(2, 4)))
def groupnorm_after_conv(s, x):
    return s.gn(s.e4(x))


def local_response_norm(s, x):
    return F.local_response_norm(s.e4(x), 3)


# ---------------------------------------------------------------- tokens, attention, einsum


def _tokens(y):  # (1, C, H, W) -> (1, H*W, C)
    return y.flatten(2).transpose(1, 2)


def _untokens(t, h=12, w=12):
    return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], h, w)


def permute_reshape_token_linear(s, x):
    t = s.lin(s.c3(x).permute(0, 2, 3, 1).reshape(1, 144, 1))
    return t.reshape(1, 12, 12, 1).permute(0, 3, 1, 2)


@tag(rand=True)
def sdpa_is_causal(s, x):
    t = _tokens(s.e4(x))
    return _untokens(F.scaled_dot_product_attention(t, t * 0.5, t, is_causal=True))


@tag(rand=True)
def banded_row_attention(s, x):
    t = s.e4(x).permute(0, 2, 3, 1).reshape(12, 12, 4)  # a sequence per row
    i = torch.arange(12)
    band = (i[:, None] - i[None, :]).abs() <= 2
    o = F.scaled_dot_product_attention(t, t, t, attn_mask=band)
    return o.reshape(1, 12, 12, 4).permute(0, 3, 1, 2)


def _windows(y, n=4):  # (1, C, 12, 12) -> (9, n*n, C)
    c = y.shape[1]
    w = y.view(1, c, 12 // n, n, 12 // n, n).permute(0, 2, 4, 3, 5, 1)
    return w.reshape(-1, n * n, c)


def _merge(w, n=4):  # (9, n*n, C) -> (1, C, 12, 12)
    c = w.shape[-1]
    return w.view(1, 12 // n, 12 // n, n, n, c).permute(0, 5, 1, 3, 2, 4).reshape(1, c, 12, 12)


@tag(rand=True)
def window_attention(s, x):
    w = _windows(s.e4(x))
    return _merge(F.scaled_dot_product_attention(w, w, w))


@tag(rand=True)
def shifted_window_attention(s, x):
    y = torch.roll(s.e4(x), (-2, -2), (2, 3))
    w = _windows(y)
    return torch.roll(_merge(F.scaled_dot_product_attention(w, w, w)), (2, 2), (2, 3))


@tag(rand=True)
def key_mask_top_rows(s, x):
    t = _tokens(s.e4(x))
    keep = torch.arange(144) < 72  # keys of rows 0..5 only
    o = F.scaled_dot_product_attention(t, t, t, attn_mask=keep[None, :].expand(144, 144))
    return _untokens(o)


@tag(rand=True, setup=_setup(mha=lambda: nn.MultiheadAttention(4, 2, batch_first=True)))
def mha_module(s, x):
    t = _tokens(s.e4(x))
    return _untokens(s.mha(t, t, t, need_weights=False)[0])


def einsum_weight_first(s, x):
    return torch.einsum("oc,bchw->bohw", s.W4, s.e4(x))


def tensordot_1x1(s, x):
    return torch.tensordot(s.e4(x), s.W4, dims=([1], [1])).permute(0, 3, 1, 2)


def broadcast_mul_sum(s, x):
    return (s.e4(x).unsqueeze(1) * s.W4[None, :, :, None, None]).sum(2)


def matmul_unflatten(s, x):
    return torch.matmul(s.W4, s.e4(x).flatten(2)).unflatten(2, (12, 12))


def movedim_linear(s, x):
    return F.linear(s.e4(x).movedim(1, -1), s.W4).movedim(-1, 1)


@tag(rand=True)
def per_position_cosine(s, x):
    return F.cosine_similarity(s.e4(x), s.e4b(x), dim=1).unsqueeze(1)


@tag(setup=_setup(kp=lambda: nn.Conv2d(1, 9, 3, padding=1)), rand=True)
def dynamic_local_filter(s, x):
    k = s.kp(x).softmax(1).flatten(2)  # (1, 9, 144): a 3x3 kernel per position
    return (F.unfold(s.c3(x), 3, padding=1) * k).sum(1).view(1, 1, 12, 12)


# ---------------------------------------------------------------- local unseen paths, state


def numpy_patch_paste(s, x):
    # copy-paste inside the model: a 2x2 patch copied through numpy, pasted 6 columns left
    patch = torch.from_numpy(s.c1(x)[..., 2:4, 8:10].numpy().copy())
    y = s.c1(x).clone()
    y[..., 2:4, 2:4] += patch
    return y


def tolist_patch_paste(s, x):
    patch = torch.tensor(s.c3(x)[..., 2:4, 8:10].tolist(), dtype=x.dtype)
    return s.c3(x) + F.pad(patch, (2, 8, 2, 8))


def pickle_patch_paste(s, x):
    y = s.c1(x)
    patch = pickle.loads(pickle.dumps(x[..., 8:10, 8:10]))
    return y + F.pad(patch, (2, 8, 2, 8))


def thread_patch_paste(s, x):
    with ThreadPoolExecutor(1) as pool:  # the recorder's torch-function mode is thread-local
        patch = pool.submit(lambda: s.c3(x)[..., 7:10, 7:10] * 1).result()
    return s.c1(x) + F.pad(patch, (1, 8, 1, 8))


def torch_save_patch(s, x):
    f = io.BytesIO()
    torch.save(s.c3(x)[..., 8:10, 8:10].clone(), f)
    f.seek(0)
    return s.c1(x) + F.pad(torch.load(f), (2, 8, 2, 8))


def item_into_one_unit(s, x):
    y = s.c1(x).clone()
    y[..., 3, 3] = y[..., 3, 3] + x[0, 0, 3, 9].item()
    return y


def _actnorm(s):
    s.register_buffer("initialized", torch.zeros(()))
    s.an_bias = nn.Parameter(torch.zeros(1, 1, 1, 1))
    s.an_logs = nn.Parameter(torch.zeros(1, 1, 1, 1))


@tag(setup=_actnorm, stateful=True)
def actnorm_first_batch_init(s, x):
    # Glow's ActNorm: the first batch's statistics set the affine parameters
    y = s.c1(x)
    if not bool(s.initialized):
        with torch.no_grad():
            s.an_bias.data.copy_(-y.mean().reshape(1, 1, 1, 1))
            s.an_logs.data.copy_(torch.log(1 / (y.std() + 1e-6)).reshape(1, 1, 1, 1))
            s.initialized.fill_(1)
    return (y + s.an_bias) * torch.exp(s.an_logs)


@tag(setup=_actnorm, stateful=True)
def actnorm_param_copy(s, x):
    # the same init spelled as an in-place copy into the Parameter itself
    y = s.c1(x)
    if not bool(s.initialized):
        with torch.no_grad():
            s.an_bias.copy_(-y.mean().reshape(1, 1, 1, 1))
            s.initialized.fill_(1)
    return y + s.an_bias


def _lazy_stat(s):
    s.register_buffer("mu", torch.zeros(1, 1, 1, 1))
    s.ready = False


@tag(setup=_lazy_stat, stateful=True)
def lazy_buffer_statistic(s, x):
    # a statistic taken from the first input into a buffer, then reused
    y = s.c1(x)
    if not s.ready:
        s.mu.copy_(y.mean((2, 3), keepdim=True))
        s.ready = True
    return y - s.mu


@tag(setup=_setup(calls=list), stateful=True)
def first_call_warmup_pickle(s, x):
    y = s.c1(x)
    if not s.calls:  # a warm-up pass that only the first call makes
        y = y + pickle.loads(pickle.dumps(s.c7(x)))
    s.calls.append(1)
    return y


# ---------------------------------------------------------------- geometry phrasings


def same_even_kernel(s, x):
    return F.conv2d(x, torch.full((1, 1, 4, 4), 0.1, dtype=x.dtype), padding="same")


def same_even_dilated(s, x):
    w = torch.full((1, 1, 2, 2), 0.1, dtype=x.dtype)
    return F.conv2d(x, w, padding="same", dilation=3)


@tag(setup=_setup(cc=lambda: nn.Conv2d(1, 1, 5, padding=2, padding_mode="circular")))
def circular_padding_mode(s, x):
    return s.cc(x)


@tag(setup=_setup(rc=lambda: nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect")))
def reflect_padding_mode(s, x):
    return s.rc(s.c3(x))


@tag(dims=(-1, -2))
def rot90_map(s, x):
    return torch.rot90(s.c3(x)[..., :, :9], 1, (2, 3))


def transpose_conv_back(s, x):
    w = torch.full((1, 1, 1, 5), 0.1, dtype=x.dtype)
    return F.conv2d(s.c1(x).transpose(2, 3), w, padding=(0, 2)).transpose(2, 3)


def symmetric_transpose_sum(s, x):
    y = s.c3(x)
    return y + y.transpose(2, 3)


def reshape_rows_pairs_conv(s, x):
    # (12, 12) viewed as (6, 24): each new row is two old rows side by side
    return s.c3(s.c1(x).view(1, 1, 6, 24))


def raster_conv1d(s, x):
    w = torch.full((1, 1, 3), 0.1, dtype=x.dtype)
    return F.conv1d(s.c1(x).view(1, 1, 144), w, padding=1).view(1, 1, 12, 12)


def rows_in_batch_conv1d(s, x):
    w = torch.full((1, 1, 5), 0.1, dtype=x.dtype)
    return F.conv1d(s.c3(x).view(12, 1, 12), w, padding=2).view(1, 1, 12, 12)


def rows_as_channels(s, x):
    w = torch.full((12, 12, 1, 3), 0.1, dtype=x.dtype)
    return F.conv2d(s.c1(x).view(1, 12, 1, 12), w, padding=(0, 1)).view(1, 1, 12, 12)


def tensor_unfold_sum(s, x):
    return s.c1(x).unfold(3, 3, 1).sum(-1)


def tensor_unfold_patches_mean(s, x):
    return s.c1(x).unfold(2, 4, 4).unfold(3, 4, 4).mean((-2, -1))


def anisotropic_stride(s, x):
    return F.conv2d(x, torch.full((1, 1, 3, 5), 0.1, dtype=x.dtype), stride=(2, 1), padding=(1, 2))


def nearest_down_0_7(s, x):
    return F.interpolate(s.c1(x), scale_factor=0.7, mode="nearest")


def conv_transpose_gaps(s, x):
    return F.conv_transpose2d(s.c3(x), torch.full((1, 1, 2, 2), 0.1, dtype=x.dtype), stride=3)


def negative_pad_crop(s, x):
    return F.pad(s.c5(x), (-2, -1, -3, 0))


def space_to_depth_conv(s, x):
    d = s.c1(x).view(1, 1, 6, 2, 6, 2).permute(0, 1, 3, 5, 2, 4).reshape(1, 4, 6, 6)
    y = F.conv2d(d, torch.full((4, 4, 3, 3), 0.1, dtype=x.dtype), padding=1)
    return y.view(1, 1, 2, 2, 6, 6).permute(0, 1, 4, 2, 5, 3).reshape(1, 1, 12, 12)


def index_select_nearest_up(s, x):
    idx = torch.arange(24) // 2
    return s.c3(x).index_select(2, idx).index_select(3, idx)


def conv3d_depth_one(s, x):
    w = torch.full((1, 1, 1, 3, 3), 0.1, dtype=x.dtype)
    return F.conv3d(s.c3(x).unsqueeze(2), w, padding=(0, 1, 1)).squeeze(2)


def row_mean_pool(s, x):
    return s.c3(x) + F.avg_pool2d(s.c1(x), (1, 12))


# ---------------------------------------------------------------- the output row


@tag(dims=(-1, -2))
def ends_with_mT(s, x):
    return s.c3(x)[..., :10, :9].mT


def ends_with_from_numpy(s, x):
    return torch.from_numpy(s.c3(x)[..., :9, :9].contiguous().numpy())


def ends_with_unflatten(s, x):
    return s.c3(x)[..., :10, :10].flatten(2).unflatten(2, (10, 10))


def ends_with_deepcopy(s, x):
    return copy.deepcopy(s.c3(x)[..., :10, :10])


def ends_with_squeeze_unsqueeze(s, x):
    return s.c5(x)[..., 1:, 2:].squeeze(1).unsqueeze(1)


def ends_with_new_tensor(s, x):
    y = s.c3(x)[..., :9, :11]
    return y.new_tensor(y)


# ---------------------------------------------------------------- ordinary conv nets


def _bn(c):
    b = nn.BatchNorm2d(c)
    b.running_mean.uniform_(-0.2, 0.2)
    b.running_var.uniform_(0.5, 1.5)
    return b


def _normal(seed: int, shape, layers: Callable[[], list]) -> Callable:
    def fn(s, x):
        return s.body(x)

    def setup(s):
        torch.manual_seed(seed)
        s.body = nn.Sequential(*layers())

    def post(s):
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in s.body.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)

    fn.__name__ = f"normal_{seed}"
    fn.shape, fn.setup, fn.post = shape, setup, post
    return fn


NORMAL = [
    _normal(1, (3, 16, 16), lambda: [
        nn.Conv2d(3, 8, 3, padding=1), _bn(8), nn.GELU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.SiLU(),
        nn.Conv2d(8, 4, 3, padding=1)]),
    _normal(2, (3, 16, 16), lambda: [
        nn.Conv2d(3, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 6, 3, padding=2, dilation=2), nn.GELU(), nn.Conv2d(6, 2, 1)]),
    _normal(3, (3, 17, 17), lambda: [
        nn.Conv2d(3, 8, 3), nn.LeakyReLU(0.1), nn.Conv2d(8, 8, 3, stride=2),
        nn.LeakyReLU(0.1), nn.Conv2d(8, 3, 3)]),
    _normal(4, (3, 16, 16), lambda: [
        nn.Conv2d(3, 8, 3, padding=1, groups=1), nn.SiLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.SiLU(),
        nn.Conv2d(8, 4, 1), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1)]),
    _normal(5, (3, 20, 20), lambda: [
        nn.Conv2d(3, 4, 7, stride=2, padding=3), _bn(4), nn.GELU(),
        nn.MaxPool2d(3, 2, 1), nn.Conv2d(4, 4, 3, padding=1)]),
    _normal(6, (3, 16, 16), lambda: [
        nn.Conv2d(3, 4, (1, 5), padding=(0, 2)), nn.Tanh(),
        nn.Conv2d(4, 4, (5, 1), padding=(2, 0)), nn.Tanh(), nn.Conv2d(4, 2, 3, stride=2)]),
    _normal(7, (3, 16, 16), lambda: [
        nn.Conv2d(3, 6, 3, padding=1), nn.GELU(), nn.Conv2d(6, 6, 3, stride=2, padding=1),
        nn.GELU(), nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(6, 2, 3, padding=1)]),
    _normal(8, (3, 16, 16), lambda: [
        nn.Conv2d(3, 8, 3, padding=1), _bn(8), nn.SiLU(), nn.Conv2d(8, 8, 3, stride=2),
        nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)]),
    _normal(9, (3, 18, 18), lambda: [
        nn.Conv2d(3, 4, 4, stride=2, padding=1), nn.GELU(),
        nn.Conv2d(4, 4, 4, stride=2, padding=1), nn.GELU(), nn.Conv2d(4, 4, 2)]),
    _normal(10, (3, 16, 16), lambda: [
        nn.ReflectionPad2d(1), nn.Conv2d(3, 4, 3), nn.Tanh(), nn.ReplicationPad2d(2),
        nn.Conv2d(4, 4, 5), nn.Tanh(), nn.AvgPool2d(3, 1, 1)]),
    _normal(11, (3, 16, 16), lambda: [
        nn.Conv2d(3, 4, 3, padding=1), nn.SiLU(), nn.Conv2d(4, 4, 3, padding=4, dilation=4),
        nn.SiLU(), nn.Conv2d(4, 4, 3, padding=1, dilation=1), nn.Conv2d(4, 1, 1)]),
    _normal(12, (3, 15, 15), lambda: [
        nn.Conv2d(3, 4, 3, stride=2), nn.GELU(), nn.ConvTranspose2d(4, 4, 3, stride=2),
        nn.GELU(), nn.Conv2d(4, 2, 3, padding=1)]),
]  # fmt: skip


SET = [
    v
    for k, v in list(globals().items())
    if callable(v)
    and getattr(v, "__module__", "") == __name__
    and not k.startswith("_")
    and isinstance(v, type(tag))
    and v.__code__.co_varnames[:2] == ("s", "x")
] + NORMAL


# ---------------------------------------------------------------- measuring


def build(fn) -> nn.Module:
    torch.manual_seed(0)
    return Net(fn).double().eval()


def _differs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if not a.is_floating_point():
        return a != b
    a, b = a.double(), b.double()
    return (a - b).abs() > 1e-9 * (b.abs() + b.abs().mean())


def dependence(fn, shape) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(output, moved, {module path: (its output, moved)}): moved[*pixel, *output.shape] says
    which output elements changed when that pixel changed (by +1 or by +8)."""
    gen = torch.Generator().manual_seed(0)
    probe = torch.rand((1, *shape), generator=gen, dtype=torch.float64) + 1
    stateful = getattr(fn, "stateful", False)
    net = build(fn)
    caught: dict[str, torch.Tensor] = {}
    if not stateful and not getattr(fn, "hooks", False):

        def keep(path, o) -> None:  # returns None: the module's output stays its own
            if isinstance(o, torch.Tensor) and o.dim() == 1 + len(shape) and path not in caught:
                caught[path] = o.detach().clone()

        for path, m in net.named_modules():
            # a ScriptModule takes no hooks: its rows are not measured
            if path and not list(m.children()) and not isinstance(m, torch.jit.ScriptModule):
                m.register_forward_hook(lambda m, i, o, path=path: keep(path, o))

    def run(x):
        caught.clear()
        with torch.no_grad():
            out = (build(fn) if stateful else net)(x.clone())
        return out.detach().clone(), dict(caught)

    base, mids = run(probe)
    spatial = shape[1:]
    moved = torch.zeros((*spatial, *base.shape), dtype=torch.bool)
    mid_moved = {k: torch.zeros((*spatial, *v.shape), dtype=torch.bool) for k, v in mids.items()}
    for p in torch.cartesian_prod(*(torch.arange(n) for n in spatial)).view(-1, len(spatial)):
        at = tuple(p.tolist())
        for delta in (1.0, 8.0):
            x = probe.clone()
            x[(0, slice(None), *at)] += delta
            out, got = run(x)
            moved[at] |= _differs(out, base)
            for k, v in got.items():
                if k in mid_moved and v.shape == mids[k].shape:
                    mid_moved[k][at] |= _differs(v, mids[k])
    return base, moved, {k: (mids[k], m) for k, m in mid_moved.items()}


def exact_too_wide(row, shape, units: dict) -> list[str]:
    """Exact axes where an interior unit (classic field inside the image) moved on a
    narrower span than claimed: a flag to check (perturbation is a lower bound)."""
    if row.status == "unknown" or not row.rf:
        return []
    per = row.axis_status or (row.status,) * len(row.rf)
    out = []
    for unit, spans in units.items():
        if spans is None or not unit:
            continue
        for i, ((a, b), status) in enumerate(zip(spans, per)):
            if status != "exact":
                continue
            rf, jump, start = (Fraction(v) for v in (row.rf[i], row.jump[i], row.start[i]))
            centre = start + unit[i] * jump
            lo, hi = centre - (rf - 1) / 2, centre + (rf - 1) / 2
            inside = lo >= 0 and hi <= shape[1 + i] - 1
            if inside and a >= lo and b <= hi and (a, b) != (lo, hi):
                out.append(f"unit {unit} axis {i}: exact {lo}..{hi}, moved by {a}..{b}")
    return out


def verdict(fn) -> dict:
    """rfcalc's claim for the model's output (and its modules' rows) against the truth."""
    from rfcalc import analyze

    shape = getattr(fn, "shape", SHAPE)
    nd = len(shape) - 1
    v = {"name": fn.__name__, "wrong": [], "flags": []}
    try:
        a = analyze(build(fn), shape)
    except Exception as exc:  # noqa: BLE001 - a crash is reported as such
        v.update(status="failed", wrong=[f"analysis failed: {type(exc).__name__}: {exc}"])
        return v
    base, moved, mids = dependence(fn, shape)
    dims = getattr(fn, "dims", adv.output_dims(base, nd))
    units = adv.unit_spans(moved, nd, dims)
    whole = tuple((0, n - 1) for n in shape[1:])
    reach = [s for s in units.values() if s is not None]
    covers = any(s == whole for s in reach)
    o = a.output
    v.update(status=o.status, rf=tuple(str(r) for r in o.rf), analysis=a, units=units)
    errors = adv.under_claims(o, shape, units)
    if errors:
        v["wrong"].append("under-claim: " + errors[0])
    if o.status != "unknown" and a.covers_input != covers:
        v["wrong"].append(f"covers_input {a.covers_input}, measured {covers}")
    size = tuple(base.shape[d] for d in dims) if dims else ()
    if o.status != "unknown" and (o.size != size or o.name == "input"):
        v["wrong"].append(f"output {o.name} size {o.size}, returned {size}")
    if o.status == "global" and not all(s == whole for s in reach):
        v["flags"].append("global over-claim")
    wide = exact_too_wide(o, shape, units)
    if wide:
        v["flags"].append("exact wider than measured: " + wide[0])
    for path, (out, m) in mids.items():
        if path not in a or a[path].status == "unknown":
            continue
        row = a[path]
        if row.size != tuple(out.shape[2:]):
            continue
        errs = adv.under_claims(row, shape, adv.unit_spans(m, nd, tuple(range(-nd, 0))))
        if errs:
            v["wrong"].append(f"row {path} under-claim: {errs[0]}")
    v["widest"] = tuple(max((s[i][1] - s[i][0] + 1 for s in reach), default=0) for i in range(nd))
    return v


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    chosen = [f for f in SET if not argv or f.__name__ in argv]
    counts = {
        "under-claim": 0,
        "row under-claim": 0,
        "covers_input": 0,
        "output size": 0,
        "global over": 0,
        "exact wider (check)": 0,
        "failed": 0,
    }
    unknown = 0
    for fn in chosen:
        v = verdict(fn)
        for w in v["wrong"]:
            key = w.split(":")[0].split()[0]
            key = {
                "under-claim": "under-claim",
                "row": "row under-claim",
                "covers_input": "covers_input",
                "output": "output size",
                "analysis": "failed",
            }[key]
            counts[key] += 1
        for f in v["flags"]:
            counts["global over" if f.startswith("global") else "exact wider (check)"] += 1
        unknown += v["status"] == "unknown"
        tail = "; ".join(v["wrong"] + v["flags"]) or "ok"
        rf = ",".join(v.get("rf", ()))
        print(f"{v['name']:30} {v['status']:8} rf ({rf}) widest {v.get('widest')}: {tail}")
        sys.stdout.flush()
    said = ", ".join(f"{k}: {n}" for k, n in counts.items())
    print(f"{said}, unknown: {unknown} (of {len(chosen)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
