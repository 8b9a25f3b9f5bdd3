"""Rows inside Swin's window attention (after the window partition, before the reverse view)
hold the map's positions in another layout, (windows·B, tokens, C). As for tokens, such a row
has the map's grid as its size and each position's field: its own pixel before attention,
its window after it.

Expected sizes and layouts are derived by hand from the partition; every field is measured
by perturbation (each input pixel changed on its own, one batch element each), reading each
element of the row's tensor, never from rfcalc's output.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from measure import check, positive
from test_token_ops import WindowAttention, _partition, _reverse

from rfcalc import APPROX, EXACT, analyze
from rfcalc.analysis import _placed
from rfcalc.record import record

SHAPE = (1, 8, 12)  # 8 x 12 map, 4 x 4 windows: 2 x 3 = 6 windows of 16 tokens
WS, NW = 4, 6
# rows inside the windows and the tensor dim holding the tokens (dim 0: windows·B)
BEFORE = {"qkv": 1}  # (6B, 16, 12): per token, before attention
AFTER = {"scaled_dot_product_attention": 2, "proj": 1}  # (6B, 2, 16, 2), (6B, 16, 4)


def model(shift: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return WindowAttention(shift=shift).double().eval()


def grid(w: int, t: int) -> tuple[int, int]:
    """The place of token t of window w in the map that was partitioned: windows row-major
    over it, tokens row-major in the window."""
    (wr, wc), (tr, tc) = divmod(w, 12 // WS), divmod(t, WS)
    return wr * WS + tr, wc * WS + tc


def place(w: int, t: int, shift: int) -> tuple[int, int]:
    """The input pixel under it: rolling by -shift moved pixel p + shift to place p."""
    r, c = grid(w, t)
    return (r + shift) % 8, (c + shift) % 12


def measured(m, rows: dict[str, int]) -> dict[str, dict]:
    """{row: {(window, token): spans per axis}}: the pixels whose change moves any element
    of that token (perturbation, every pixel on its own)."""
    gen = torch.Generator().manual_seed(0)
    base = torch.randn((1, *SHAPE), generator=gen, dtype=torch.float64)
    pixels = list(itertools.product(range(8), range(12)))
    batch = base.repeat(len(pixels) + 1, 1, 1, 1)
    for i, (r, c) in enumerate(pixels):
        batch[i + 1, :, r, c] += 1.0
    with torch.no_grad():
        rec = record(m, batch, keep_tensors=set(rows))
    out = {}
    for step in rec.steps:
        if step.name not in rows:
            continue
        t = step.tensor.reshape(len(pixels) + 1, NW, *step.tensor.shape[1:])  # B outermost
        t = t.movedim(rows[step.name] + 1, 2)  # (1 + P, windows, tokens, ...)
        moved = ((t[1:] - t[:1]).abs() > 1e-9).flatten(3).any(3)  # P x windows x tokens
        spans = {}
        for w, k in itertools.product(range(NW), range(WS * WS)):
            hit = [p for i, p in enumerate(pixels) if bool(moved[i, w, k])]
            spans[(w, k)] = tuple((min(p[a] for p in hit), max(p[a] for p in hit)) for a in (0, 1))
        out[step.name] = spans
    return out


@pytest.mark.parametrize("shift", [0, 2])
def test_rows_inside_window_attention_have_the_maps_size_and_fields(shift):
    m = model(shift)
    a = analyze(m, SHAPE)
    probe = torch.zeros((1, *SHAPE), dtype=torch.float64)
    fields = {s.name: s.field for s in record(m, probe).steps}
    spans = measured(m, {**BEFORE, **AFTER})
    for name in (*BEFORE, *AFTER):
        row = a[name]
        # the 96 = 6 windows x 16 tokens elements are the 8 x 12 map's positions
        assert row.size == (8, 12), row
        field = _placed(fields[name])
        for (w, k), got in spans[name].items():
            r, c = place(w, k, shift)
            if name in BEFORE:
                # measured: a token before attention reads its own pixel (1x1 embedding)
                assert got == ((r, r), (c, c))
            else:
                # measured: it reads its window (rolled back: rows 6, 7, 0, 1 span 0..7)
                rows_ = {place(w, j, shift)[0] for j in range(WS * WS)}
                cols = {place(w, j, shift)[1] for j in range(WS * WS)}
                assert got == ((min(rows_), max(rows_)), (min(cols), max(cols)))
        # the row's field per axis (units: places of the partitioned map, rolled where
        # shifted, as the roll row's own units): unit o sees the hull of its places' spans
        for axis, n in enumerate((8, 12)):
            for o in range(n):
                at = [s[axis] for (w, k), s in spans[name].items() if grid(w, k)[axis] == o]
                hull = (min(s[0] for s in at), max(s[1] for s in at))
                assert field.axes[axis].sees(o) == hull, (name, axis, o)
        widest = tuple(max(s[i][1] - s[i][0] + 1 for s in spans[name].values()) for i in (0, 1))
        if name in BEFORE:
            # a token is its place: the map's row (the roll's where shifted: approx, since
            # its units see other pixels than their classic field)
            assert row.rf == (1, 1) and row.status == (APPROX if shift else EXACT)
        else:
            assert row.status == APPROX and all(rf >= w for rf, w in zip(row.rf, widest))
            assert "window" in row.note
    if not shift:
        assert a["proj"].rf == (4, 4)  # each unit's window, no wider
    assert a.output.size == (8, 12)
    assert not any("perturbation check" in r.note for r in a.rows)


class Windows(WindowAttention):
    """The block cut after the projection: it returns the windows, (6B, 16, C)."""

    def forward(self, x):
        x = self.embed(x).permute(0, 2, 3, 1)
        win = _partition(x, self.ws)
        qkv = self.qkv(win).reshape(win.shape[0], win.shape[1], 3, 2, 2)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)
        return self.proj(o.reshape(win.shape[0], win.shape[1], 4))


def test_windows_returned_as_the_output_cover_their_windows_only():
    torch.manual_seed(0)
    m = Windows().double().eval()
    a = analyze(m, SHAPE)
    spans = measured(m, {"proj": 1})["proj"]
    # measured: every element reads its own 4 x 4 window, none the whole 8 x 12 input
    assert set(spans.values()) == {
        ((4 * wr, 4 * wr + 3), (4 * wc, 4 * wc + 3)) for wr in range(2) for wc in range(3)
    }
    assert a.output.size == (8, 12) and a.output.rf == (4, 4) and a.output.status == APPROX
    assert not a.covers_input


class ByHand(WindowAttention):
    """timm's Swin attention written out: (q * scale) @ kᵀ + a learned relative-position
    bias (a constant), softmax, @ v, in each 4 x 4 window."""

    def __init__(self):
        super().__init__()
        self.rel = nn.Parameter(torch.randn(2, WS * WS, WS * WS))

    def forward(self, x):
        x = self.embed(x).permute(0, 2, 3, 1)
        win = _partition(x, self.ws)
        b_, n, c = win.shape
        q, k, v = self.qkv(win).reshape(b_, n, 3, 2, c // 2).permute(2, 0, 3, 1, 4).unbind(0)
        attn = ((q * 0.5) @ k.transpose(-2, -1) + self.rel.unsqueeze(0)).softmax(-1)
        o = self.proj((attn @ v).transpose(1, 2).reshape(b_, n, c))
        return (x + _reverse(o, self.ws, 8, 12)).permute(0, 3, 1, 2)


def test_attention_written_out_within_windows_reads_its_window():
    torch.manual_seed(0)
    m = ByHand().double().eval()
    a = analyze(m, SHAPE)
    spans = measured(m, {"matmul_1": 2, "proj": 1})  # (6B, 2, 16, 2), (6B, 16, 4)
    for name in ("matmul_1", "proj"):
        # measured: each token reads its own window
        for (w, _), got in spans[name].items():
            wr, wc = divmod(w, 3)
            assert got == ((4 * wr, 4 * wr + 3), (4 * wc, 4 * wc + 3))
        row = a[name]
        assert row.size == (8, 12) and row.status == APPROX and row.rf == (4, 4), row
    assert a.output.rf == (4, 4) and a.output.status == APPROX and not a.covers_input
    check(positive(ByHand()), SHAPE)  # every unit of every map row, by gradient
