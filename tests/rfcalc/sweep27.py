"""A second held-out set for issue 27 (one pattern each, written after the fixes, not tuned
to them): every model's output measured by perturbation (adversarial.dependence: each input
pixel changed in a forward pass of its own) against rfcalc's claim for it.

    PYTHONPATH=$PWD python tests/rfcalc/sweep27.py    # one line per model, then the counts

Counts: under-claims (an exact field too small, or an approx/global rf narrower than what a
unit reaches), covers_input wrong, output size wrong, "global" where no unit sees the whole
input (an over-claim: safe, but counted), honest unknowns.
"""

from __future__ import annotations

import sys
import threading

import adversarial as adv
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SHAPE = adv.SHAPE  # (1, 12, 12)


class Net(adv.Fn):
    """adversarial.Fn (c1, c3, c7, a cache buffer) with a few more layers, weights 0.1."""

    def __init__(self, fn):
        super().__init__(fn)
        self.c5 = nn.Conv2d(1, 1, 5, padding=2)
        self.d3 = nn.Conv2d(1, 1, 3, padding=2, dilation=2)
        self.lin = nn.Linear(1, 1)
        self.bl = nn.Bilinear(1, 1, 1)
        self.w = nn.Parameter(torch.ones(1, 1))
        self.cls = nn.Parameter(torch.ones(1, 1, 1))
        with torch.no_grad():
            for p in self.parameters():
                p.fill_(0.1)


def canvas_offset(s, x):
    out = torch.zeros(1, 1, 12, 12, dtype=x.dtype)
    out[..., 3:12, 0:9] = s.c5(x)[..., 0:9, 3:12]  # a shifted write
    return s.c1(x) + out


def index_copy_canvas(s, x):
    out = torch.zeros(1, 1, 12, 12, dtype=x.dtype)
    out.index_copy_(3, torch.arange(12), s.c7(x))
    return out + s.c1(x)


def scatter_canvas(s, x):
    idx = torch.arange(12).expand(1, 1, 12, 12)
    return torch.zeros(1, 1, 12, 12, dtype=x.dtype).scatter(3, idx, s.c7(x)) + s.c1(x)


def narrow_copy(s, x):
    out = torch.zeros(1, 1, 12, 12, dtype=x.dtype)
    out.narrow(2, 2, 8).copy_(s.c7(x)[..., 2:10, :])
    return out + s.c1(x)


def buffer_add_inplace(s, x):
    s.cache.zero_()
    s.cache.add_(s.c7(x))
    return s.c1(x) * 1.0 + s.cache


def buffer_slice_write(s, x):
    s.cache[..., 1:11, 1:11] = s.c5(x)[..., 1:11, 1:11]
    return s.c1(x) + s.cache


def data_swap(s, x):
    y = s.c1(x)
    y.data = s.c7(x).data
    return y


def detach_mul(s, x):
    y = s.c1(x) + 1
    y.detach().mul_(s.c5(x))
    return y


def numpy_out(s, x):
    y = s.c1(x)
    np.add(y.numpy(), s.c7(x).numpy(), out=y.numpy())
    return y


def numpy_copy_back(s, x):
    return s.c1(x) + torch.from_numpy(s.c7(x).numpy().copy())


def tolist_rebuilt(s, x):
    return s.c1(x) + torch.tensor(s.c7(x).tolist(), dtype=x.dtype)


def dlpack_roundtrip(s, x):
    y = s.c1(x)
    torch.utils.dlpack.from_dlpack(torch.utils.dlpack.to_dlpack(y)).add_(s.c5(x))
    return y


def inference_mode_branch(s, x):
    with torch.inference_mode():
        far = s.c7(x)
    return s.c1(x) + far.clone()


def vmap_channels(s, x):
    far = torch.vmap(lambda t: F.conv2d(t[None], s.c5.weight, padding=2)[0])(x)
    return s.c1(x) + far


def thread_plain(s, x):
    box = {}
    t = threading.Thread(target=lambda: box.update(y=s.c7(x)))
    t.start()
    t.join()
    return s.c1(x) + box["y"]


def float_bias(s, x):
    return s.c1(x) + float(s.c7(x).amax())


def param_data_from_input(s, x):
    s.lin.weight.data = s.c7(x).mean().reshape(1, 1).clone()
    return s.lin(s.c1(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def crop_max_broadcast(s, x):
    return s.c1(x)[..., 2:6, 3:9].amax((2, 3), keepdim=True).expand_as(x) + 0


def ends_with_to(s, x):
    return s.c3(x)[..., 1:, 1:].to(torch.float32)


def ends_with_reshape(s, x):
    return s.c3(x)[..., :10, :10].reshape(1, 1, 10, 10)


def class_token_mlp(s, x):
    t = s.c3(x).flatten(2).transpose(1, 2)
    t = torch.cat([s.cls.expand(1, 1, 1), t], 1)
    t = s.lin(F.gelu(s.lin(t)))
    return t[:, 1:].transpose(1, 2).reshape(1, 1, 12, 12)


def einsum_1x1(s, x):
    return torch.einsum("bchw,oc->bohw", s.c5(x), s.w)


def bmm_1x1(s, x):
    return torch.bmm(s.w[None], s.c3(x).flatten(2)).view(1, 1, 12, 12)


def bilinear_per_position(s, x):
    a, b = s.c3(x).permute(0, 2, 3, 1), s.c5(x).permute(0, 2, 3, 1)
    return s.bl(a, b).permute(0, 3, 1, 2)


def where_branches(s, x):
    mask = torch.zeros(1, 1, 12, 12, dtype=torch.bool)
    mask[..., 6:] = True
    return torch.where(mask, s.c3(x), s.c7(x))


def dilated_holes(s, x):
    return s.d3(x)


def valid_stride_edge(s, x):
    # AlexNet-v2's edge: a VALID 3x3 stride 2 on 12 leaves the last pixel unread
    return F.conv2d(x, s.c3.weight, stride=2)


def causal_matmul(s, x):
    t = s.c3(x).flatten(2).transpose(1, 2)  # (1, 144, 1)
    scores = t @ t.transpose(1, 2)
    mask = torch.triu(torch.ones(144, 144, dtype=torch.bool), 1)
    attn = scores.masked_fill(mask, float("-inf")).softmax(-1)
    return (attn @ t).transpose(1, 2).reshape(1, 1, 12, 12)


def clone_slice_add(s, x):
    y = s.c1(x).clone()
    y[..., 2:10, 2:10] += s.c7(x)[..., 2:10, 2:10]
    return y


def manual_unfold_stack(s, x):
    p = F.pad(s.c1(x), (1, 1, 1, 1))
    return torch.stack([p[..., i : i + 12, 1:13] for i in range(3)], 0).sum(0)


def cumsum_rows(s, x):
    return s.c1(x).cumsum(2)


SET = [
    canvas_offset,
    index_copy_canvas,
    scatter_canvas,
    narrow_copy,
    buffer_add_inplace,
    buffer_slice_write,
    data_swap,
    detach_mul,
    numpy_out,
    numpy_copy_back,
    tolist_rebuilt,
    dlpack_roundtrip,
    inference_mode_branch,
    vmap_channels,
    thread_plain,
    float_bias,
    param_data_from_input,
    crop_max_broadcast,
    ends_with_to,
    ends_with_reshape,
    class_token_mlp,
    einsum_1x1,
    bmm_1x1,
    bilinear_per_position,
    where_branches,
    dilated_holes,
    valid_stride_edge,
    causal_matmul,
    clone_slice_add,
    manual_unfold_stack,
    cumsum_rows,
]


def model(fn) -> nn.Module:
    return Net(fn).double().eval()


def verdict(fn) -> dict:
    """rfcalc's claim for the model's output against the measurement."""
    from rfcalc import analyze

    out = {"name": fn.__name__, "wrong": []}
    try:
        a = analyze(model(fn), SHAPE)
    except Exception as exc:  # noqa: BLE001 - a crash is reported as such
        out.update(status="failed", wrong=[f"analysis failed: {exc}"])
        return out
    base, moved = adv.dependence(model(fn))
    dims = adv.output_dims(base, len(SHAPE) - 1)
    units = adv.unit_spans(moved, len(SHAPE) - 1, dims)
    whole = tuple((0, n - 1) for n in SHAPE[1:])
    reach = [s for s in units.values() if s is not None]
    covers = any(s == whole for s in reach)
    o = a.output
    out.update(status=o.status, rf=tuple(float(r) for r in o.rf), units=units)
    errors = adv.under_claims(o, SHAPE, units)
    if errors:
        out["wrong"].append("under-claim: " + errors[0])
    if o.status != "unknown" and a.covers_input != covers:
        out["wrong"].append(f"covers_input {a.covers_input}, measured {covers}")
    size = tuple(base.shape[d] for d in dims) if dims else ()
    if o.status != "unknown" and o.size != size:
        out["wrong"].append(f"output size {o.size}, returned {size}")
    out["over"] = o.status == "global" and not all(s == whole for s in reach)
    widest = max((b - a_ + 1 for s in reach for a_, b in s), default=0)
    out["widest"] = widest
    return out


def main() -> int:
    counts = {"under-claim": 0, "covers_input": 0, "output size": 0, "global over": 0}
    unknown = 0
    for fn in SET:
        v = verdict(fn)
        for w in v["wrong"]:
            key = "under-claim" if w.startswith("under") else w.split()[0]
            key = {"covers_input": "covers_input", "output": "output size"}.get(key, key)
            counts[key] = counts.get(key, 0) + 1
        counts["global over"] += bool(v.get("over"))
        unknown += v["status"] == "unknown"
        rf = v.get("rf", ())
        tail = "; ".join(v["wrong"]) or ("global over-claim" if v.get("over") else "ok")
        print(f"{v['name']:24} {v['status']:8} rf {rf} widest {v.get('widest')}: {tail}")
    said = ", ".join(f"{k}: {n}" for k, n in counts.items())
    print(f"{said}, unknown: {unknown} (of {len(SET)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
