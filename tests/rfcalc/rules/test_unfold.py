"""F.unfold, F.fold and Tensor.unfold (rfcalc/rules/conv.py): the windows an unfold lays out,
what F.fold gives back to each pixel, and the work between them that keeps or loses the
windows' layout.
Expected fields are worked out by hand and measured by gradients (see rulenets.py)."""

from __future__ import annotations

from fractions import Fraction as Fr

import pytest
import torch
import torch.nn.functional as F
from measure import check, positive  # rules/conftest.py puts tests/rfcalc on sys.path
from rulenets import SAME, W9, D, Line, model, out, refolded

from rfcalc import EXACT, GLOBAL, UNKNOWN, analyze
from rfcalc.geometry import Window


def test_fold_gives_nothing_back_to_pixels_no_window_covered():
    # F.unfold with k3, dilation 2, padding 1, stride 2 on 6x7 reads the conv's units
    # 2o - 1 + {0, 2, 4}: 1, 3, 5 along both axes (2 windows along H, 3 along W). F.fold puts
    # those back and leaves 0 elsewhere: those pixels see nothing (before the fix every pixel
    # was claimed to see its own field, exactly)
    m = model(SAME["F.unfold and F.fold by keyword"][0][0])
    a = analyze(m, (1, 6, 7))
    units = check(m, (1, 6, 7))[a.rows[-1].name][1]
    seen = sorted(u for u, m_ in units.items() if m_ is not None)
    assert seen == [(i, j) for i in (1, 3, 5) for j in (1, 3, 5)]
    assert a.output.status != EXACT
    assert a.output.note == "fold: pixels no window of the unfold covered get nothing back"
    # the pixels that get something back get their own field: the conv3's (jump 1, rf 3,
    # unit 0 centred on pixel 0), and the row shows the fold's window
    assert (a.output.jump, a.output.rf, a.output.start) == ((1, 1), (3, 3), (0, 0))
    assert a.rows[-1].window == Window((3, 3), (2, 2), (1, 1), (2, 2))
    # added to the conv's own map, every pixel has its own field again: rf 3 (a merge that
    # ranks the statuses of both)
    fold = SAME["F.unfold and F.fold by keyword"][0][0]
    o = out(lambda s, x: fold(s, x) + s.c3(x))
    assert o.rf == (3, 3) and o.size == (6, 7)


def test_fold_after_mixing_the_columns_reads_every_window_holding_a_pixel():
    # F.unfold k3 padding 1 on the conv3's 6x7 map: window o sees conv units o-1..o+1, that
    # is pixels o-2..o+2. The weight mixes each column's 9 entries, so F.fold's pixel i reads
    # windows i-1..i+1: pixels i-3..i+3, rf 7, a k3 transposed window over the windows
    m = model(lambda s, x: F.fold(W9 @ F.unfold(s.c3(x), 3, padding=1), (6, 7), 3, padding=1))
    a = analyze(m, (1, 6, 7))
    assert a.output.rf == (7, 7) and a.output.status == EXACT and a.output.size == (6, 7)
    assert a.rows[-1].window == Window((3, 3), (1, 1), (1, 1), (1, 1))
    check(m, (1, 6, 7))
    # added to the conv's own map: the union, still 7 (a field a merge can rank)
    o = out(
        lambda s, x: F.fold(W9 @ F.unfold(s.c3(x), 3, padding=1), (6, 7), 3, padding=1) + s.c3(x)
    )
    assert o.status == EXACT and o.rf == (7, 7)


def test_fold_to_a_map_larger_than_the_windows_reach():
    # unfold k3 stride 2 on 7: 3 windows (units 0-2, 2-4, 4-6). Folded back into 8 units,
    # the last one no window reaches: it sees nothing (an output_padding of 1)
    m = model(lambda s, x: F.fold(W9 @ F.unfold(s.c3(x), 3, stride=2), (7, 8), 3, stride=2))
    a = analyze(m, (1, 7, 7))
    assert a.output.size == (7, 8)
    units = check(m, (1, 7, 7))[a.rows[-1].name][1]
    assert units[(3, 7)] is None and units[(3, 6)] is not None


def test_unfold_row_shows_its_window_and_why_the_map_ends():
    a = analyze(model(lambda s, x: F.unfold(s.c3(x), 3, 2, 1, 2)), (1, 6, 7))
    row = a.rows[-1]
    assert row.window == Window((3, 3), (2, 2), (1, 1), (2, 2))
    assert row.note == "unfold: the windows are flattened into one dim"
    # the flattened windows are shown as one whole: every window's field together. Window o
    # reads conv units 2o - 1 + {0, 2, 4}, each seeing pixels u - 1..u + 1 (padding counted,
    # as in a textbook field): along H (2 windows) pixels -2..4 and 0..6, together -2..6,
    # rf 9 centred on 2; along W (3 windows) -2..8, rf 11 centred on 3
    assert (row.rf, row.start, row.status) == ((9, 11), (2, 3), GLOBAL)
    # one unit as wide as all the windows: 2 windows along H, 3 along W, 2 pixels apart,
    # so its jump is 2 * 2 = 4 and 3 * 2 = 6
    assert row.jump == (4, 6)


def test_tensor_unfold_row_shows_its_window_along_the_dim_it_slides():
    # x.unfold(-1, 3, 2) slides along W only: kernel 1 x 3, stride 1 x 2 (H first)
    row = analyze(model(SAME["Tensor.unfold by keyword"][0][0]), (1, 6, 9)).rows[-2]
    assert row.op == "unfold" and row.window == Window((1, 3), (1, 2), (0, 0), (1, 1))


def test_tensor_unfold_of_channels_keeps_the_field():
    # windows of 2 channels (dim 1): the map is untouched, one dim is added at the end
    m = model(lambda s, x: s.c4(x).unfold(1, 2, 2).sum(-1))
    o = analyze(m, (1, 6, 7)).output
    assert o.status == EXACT and o.rf == (3, 3) and o.size == (6, 7) and o.note == ""
    check(m, (1, 6, 7))
    # the field merges afterwards (a status the merge can rank)
    o = out(lambda s, x: s.c4(x).unfold(1, 2, 2).sum(-1) + s.c3(x))
    assert o.status == EXACT and o.rf == (3, 3)
    # and keeps its note (a softmax along W made it global along W)
    o = out(lambda s, x: F.softmax(s.c4(x), -1).unfold(1, 2, 2).sum(-1))
    assert o.note.startswith("softmax: computed along a spatial dim")


def test_tensor_unfold_of_a_flattened_map_shows_it_as_a_whole():
    # the conv3's 6x7 map flattened: rf 8 x 9 centred on (2.5, 3), as for cumsum and glu
    o = out(lambda s, x: s.c3(x).flatten(2).unfold(-1, 3, 1).sum(-1))
    assert o.status == GLOBAL and o.rf == (8, 9) and o.start == (Fr(5, 2), 3)


def test_fold_of_what_is_not_an_unfold_is_unknown():
    o = out(lambda s, x: F.fold(s.c3(x).reshape(1, 9, 4), (4, 4), 3), (1, 6, 6))
    assert o.status == UNKNOWN and o.note == (
        "fold: F.fold of a tensor that is not (a layout-keeping function of) the output of F.unfold"
    )


@pytest.mark.parametrize(
    "fn, shape",
    [
        # another window with the same number of windows: k3 padding 1 and k3 dilation 2
        # padding 2 both slide 6 x 7 windows over a 6x7 map
        (
            lambda s, x: F.fold(F.unfold(s.c3(x), 3, padding=1), (6, 7), 3, dilation=2, padding=2),
            (1, 6, 7),
        ),
        # the same window folded into a larger map: k3 stride 2 slides 3 windows over 7 and 8
        (lambda s, x: F.fold(F.unfold(s.c3(x), 3, stride=2), (7, 8), 3, stride=2), (1, 7, 7)),
    ],
)
def test_fold_with_another_window_or_size_than_its_unfold_is_unknown(fn, shape):
    o = out(fn, shape)
    assert o.status == UNKNOWN and o.note == "fold: F.fold with another window than its F.unfold"


@pytest.mark.parametrize("mix", [False, True])
def test_fold_of_a_map_without_a_batch_dim(mix):
    # (C, H, W) in, (C*9, L) columns, (C, H, W) out: the map's dims are the output's last two.
    # Folded back unmixed, each pixel gets its own field (rf 3); mixed, it reads the windows
    # i-1..i+1 of pixels i-3..i+3 (rf 7)
    def fn(s, x):
        cols = F.unfold(s.c3(x)[0], 3, padding=1)
        return F.fold(W9 @ cols if mix else cols, (6, 7), 3, padding=1)

    m = model(fn)
    o = analyze(m, (1, 6, 7)).output
    assert o.status == EXACT and o.size == (6, 7) and o.rf == ((7, 7) if mix else (3, 3))
    check(m, (1, 6, 7))


def test_fold_after_mixed_columns_carries_the_fields_note_and_status():
    # a softmax along W before the unfold: global along W, exact along H, and its note stays
    o = out(
        lambda s, x: F.fold(
            W9 @ F.unfold(F.softmax(s.c3(x), -1), 3, padding=1), (6, 7), 3, padding=1
        )
    )
    assert o.axis_status == (EXACT, GLOBAL) and o.rf == (7, 9)
    assert o.note.startswith("softmax: computed along a spatial dim")
    # softmax along both: global everywhere
    o = out(
        lambda s, x: F.fold(
            W9 @ F.unfold(F.softmax(F.softmax(s.c3(x), -1), -2), 3, padding=1), (6, 7), 3, padding=1
        )
    )
    assert o.status == GLOBAL and o.note == "softmax: computed along a spatial dim"


def test_unfold_of_a_map_that_is_not_2d_is_unknown():
    o = analyze(positive(Line(lambda y: F.unfold(y, (1, 3)))), (1, 9)).output
    assert o.status == UNKNOWN and o.note == "unfold: F.unfold of a map that is not 2-D"


def test_a_product_with_the_unfolded_columns_by_keyword_is_a_convolution():
    # W9.matmul(other=cols) is W9 @ cols: F.fold then reads every window holding a pixel
    m = model(
        lambda s, x: F.fold(W9.matmul(other=F.unfold(s.c3(x), 3, padding=1)), (6, 7), 3, padding=1)
    )
    o = analyze(m, (1, 6, 7)).output
    assert o.status == EXACT and o.rf == (7, 7)
    check(m, (1, 6, 7))


def test_mixed_columns_are_shown_as_the_unfolded_windows():
    # the columns W9 @ cols: still the flattened windows of the unfold row (rf 9 x 11 for
    # k3 dilation 2 padding 1 stride 2 on 6x7, see the unfold row test), global, its note
    row = analyze(model(lambda s, x: W9 @ F.unfold(s.c3(x), 3, 2, 1, 2)), (1, 6, 7)).rows[-1]
    assert (row.rf, row.start, row.status) == ((9, 11), (2, 3), GLOBAL)
    assert row.note == "unfold: the windows are flattened into one dim"


@pytest.mark.parametrize(
    "fn",
    [
        lambda u: u * 2,
        lambda u: torch.relu(u) * u,
    ],
    ids=["one window tensor", "two of the same windows"],
)
def test_element_wise_ops_between_unfold_and_fold_keep_the_windows(fn):
    # F.fold with the unfold's own window gives each pixel back its entries: rf 3, start 0
    m = model(refolded(fn))
    o = analyze(m, (1, 6, 7)).output
    assert (o.status, o.size, o.rf, o.start) == (EXACT, (6, 7), (3, 3), (0, 0))
    check(m, (1, 6, 7))


def test_fold_of_a_vector_that_mixed_everything_stays_global():
    # a Linear over the flattened map (every entry read every pixel), viewed as F.fold's
    # columns: F.fold cannot place entries that are no unfold's windows, but every output
    # unit still reads the whole map: global (not exact), with the Linear's note
    w = torch.full((378, 42), 1 / 42, dtype=D)
    o = out(
        lambda s, x: F.fold(F.linear(s.c3(x).flatten(1), w).view(1, 9, 42), (6, 7), 3, padding=1)
    )
    assert (o.status, o.rf, o.note) == (GLOBAL, (8, 9), "linear: mixes every position of the map")


R9M, R9V = torch.zeros(9, dtype=D), torch.full((9,), 4.0, dtype=D)  # 1 channel x 3x3 window


@pytest.mark.parametrize(
    "norm",
    [
        lambda c: F.batch_norm(c, R9M, R9V),
        lambda c: torch.batch_norm(c, None, None, R9M, R9V, False, 0.1, 1e-5, False),
        lambda c: F.instance_norm(c, R9M, R9V, use_input_stats=False),
        lambda c: torch.instance_norm(c, None, None, R9M, R9V, False, 0.1, 1e-5, False),
    ],
    ids=["F.batch_norm", "torch.batch_norm", "F.instance_norm", "torch.instance_norm"],
)
def test_a_norm_with_running_statistics_keeps_the_unfolded_layout(norm):
    # running statistics scale and shift each entry on its own: F.fold still finds the
    # windows of the unfold (before: unknown, the layout was dropped)
    m = model(refolded(norm))
    o = analyze(m, (1, 6, 7)).output
    assert o.status == EXACT and o.size == (6, 7) and o.rf == (3, 3) and o.start == (0, 0)
    check(m, (1, 6, 7))


def test_a_norm_with_batch_statistics_loses_the_unfolded_layout():
    # batch statistics mix every entry of a channel (all windows): F.fold cannot undo that
    m = model(refolded(lambda c: F.batch_norm(c, None, None, training=True)))
    assert analyze(m, (1, 6, 7)).output.status != EXACT


def test_a_reduction_over_the_windows_keeps_the_unfold_note():
    # a reduction over the flattened windows (L) mixes every window: global, and the row
    # keeps the unfold's reason
    a = analyze(model(lambda s, x: F.unfold(s.c3(x), 2).mean(-1)), (1, 6, 7))
    assert a.output.status == GLOBAL and a.output.size == ()
    assert a.output.note == "unfold: the windows are flattened into one dim"


@pytest.mark.parametrize(
    "fn",
    [
        lambda c: c.sum(1),
        lambda c: c.mean(1, keepdim=True),
        lambda c: c.amax(-2),
        lambda c: (c.softmax(1) * c).sum(1),
        lambda c: (c * c.mean(1, keepdim=True)).sum(1),
        lambda c: c.transpose(1, 2).mean(-1),
    ],
    ids=["sum", "mean-keepdim", "amax", "softmax-sum", "product", "transposed-mean"],
)
def test_a_reduction_over_each_windows_entries_is_a_box_filter(fn):
    # F.unfold k2 on the conv3's 6x7 map: window o holds conv units o, o+1, pixels o-1..o+2
    # (rf 4, centre o + 1/2, 5x6 windows). Reduced over its entries (dim 1) each window is
    # a token of the 5x6 grid (before: global, size ()); viewed back, the map of windows.
    # Measured by gradients on the view back to the map
    m = model(lambda s, x: fn(F.unfold(s.c3(x), 2)).view(1, 1, 5, 6))
    a = analyze(m, (1, 6, 7))
    row = a.rows[-2]  # the reduction, shown as tokens: the grid of windows
    assert row.size == (5, 6) and row.status == EXACT and not a.covers_input
    o = a.output
    assert o.status == EXACT and o.size == (5, 6) and o.rf == (4, 4)
    assert o.start == (Fr(1, 2), Fr(1, 2))
    units = check(m, (1, 6, 7))[a.rows[-1].name][1]
    assert units[(0, 0)] == ((0, 2), (0, 2)) and units[(2, 3)] == ((1, 4), (2, 5))


def test_fold_of_a_product_with_a_flattened_map_that_no_unfold_made_is_unknown():
    # W @ x.flatten(2) has the (N, C*k*k, L) shape F.fold wants, but its columns are not
    # windows of an unfold: rfcalc does not describe it (it says so rather than guess)
    w = torch.full((9, 1), 1 / 9, dtype=D)
    m = model(lambda s, x: F.fold(w @ s.c3(x).flatten(2), (6, 7), 3, padding=1))
    o = analyze(m, (1, 6, 7)).output
    assert o.status == UNKNOWN
    assert o.note == (
        "fold: F.fold of a tensor that is not (a layout-keeping function of) the output of F.unfold"
    )


def test_patchify_by_unfold_and_a_per_patch_linear_sees_its_patch():
    # F.unfold k2 s2 of the conv3's 6x6 map: patch o holds conv units 2o, 2o+1, pixels
    # 2o-1..2o+2 (rf 4, jump 2, 3x3 patches). Transposed to (B, L, C·k·k) and mixed by a
    # Linear per patch (ViT's patch embedding), then put back as the map: each unit still
    # sees its patch (before: global, size ()). Measured by gradients
    lin = torch.full((3, 4), 0.1, dtype=D)
    m = model(
        lambda s, x: (
            F.linear(F.unfold(s.c3(x), 2, stride=2).transpose(1, 2), lin)
            .transpose(1, 2)
            .reshape(1, 3, 3, 3)
        )
    )
    a = analyze(m, (1, 6, 6))
    o = a.output
    assert (o.status, o.size, o.rf, o.jump) == (EXACT, (3, 3), (4, 4), (2, 2))
    assert not a.covers_input
    units = check(m, (1, 6, 6))[a.rows[-1].name][1]
    assert units[(1, 1)] == ((1, 4), (1, 4)) and units[(0, 2)] == ((0, 2), (3, 5))


def test_a_dynamic_local_filter_reads_the_window_and_its_kernel():
    # CARAFE-style: a 3x3 kernel per position from the conv3 (softmax over its 9 entries,
    # flattened to (B, 9, L)) times F.unfold k3 padding 1 of the conv3's map, summed over
    # the entries: unit o reads conv units o-1..o+1 of the unfold (pixels o-2..o+2, rf 5)
    # and its own kernel (pixels o-1..o+1): rf 5 (before: global, size ())
    def fn(s, x):
        k = s.c4(x).repeat(1, 3, 1, 1)[:, :9].softmax(1).flatten(2)
        return (F.unfold(s.c3(x), 3, padding=1) * k).sum(1).view(1, 1, 6, 7)

    m = model(fn)
    a = analyze(m, (1, 6, 7))
    o = a.output
    assert (o.status, o.size, o.rf) == (EXACT, (6, 7), (5, 5)) and not a.covers_input
    units = check(m, (1, 6, 7))[a.rows[-1].name][1]
    assert units[(3, 3)] == ((1, 5), (1, 5)) and units[(0, 6)] == ((0, 2), (4, 6))
