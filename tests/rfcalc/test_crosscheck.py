"""The perturbation check (rfcalc.crosscheck) and issue 27's silent errors, pinned by values.

Every expected field here comes from a measurement by perturbation (adversarial.dependence:
each input pixel changed on its own, in a forward pass of its own), never from rfcalc's own
output: gradients cannot see `.data`, `.item()`, numpy or inference mode.
"""

from __future__ import annotations

import io
import pickle

import adversarial as adv  # tests/rfcalc is on sys.path, as for zoo
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import zoo

from rfcalc import EXACT, UNKNOWN, analyze, rules
from rfcalc.analysis import UNCHECKED
from rfcalc.rules import Outcome

ND = len(adv.SHAPE) - 1


def measured(fn):
    base, moved = adv.dependence(adv.model(fn))
    dims = getattr(fn, "dims", adv.output_dims(base, ND))
    return base, dims, adv.unit_spans(moved, ND, dims)


@pytest.mark.parametrize("fn", adv.UNDER, ids=lambda f: f.__name__)
def test_no_under_claim_on_the_adversarial_set(fn):
    # each of these reaches its output by a path the recorder cannot follow; before the
    # check every one but two read exact with a field too small
    a = analyze(adv.model(fn), adv.SHAPE)
    _, _, units = measured(fn)
    assert adv.under_claims(a.output, adv.SHAPE, units) == []


def test_the_note_names_a_unit_and_a_pixel_that_moved_it():
    a = analyze(adv.model(adv.set_storage), adv.SHAPE)
    # c1 is rf 1; y.set_(c7(x)) (no torch function sees it) gives every unit c7's 7x7
    assert a.output.status == UNKNOWN
    note = a.output.note
    assert "perturbation check" in note and "a path rfcalc did not see" in note
    # the centre pixel (5, 5) moves unit (2, 2): |5 - 2| = 3, inside the 7x7
    assert note.startswith("unit (2, 2) changes when pixel (5, 5) changes")
    _, _, units = measured(adv.set_storage)
    assert units[(2, 2)] == ((0, 5), (0, 5))


def test_a_scalar_from_the_map_is_caught_by_the_outside_pattern():
    # sum(...tolist()) over the batch mixes batch elements alike: the check notices that
    # element 0 differs from the analysis's own run and runs each pattern on its own
    a = analyze(adv.model(adv.tolist_scalar), adv.SHAPE)
    assert a.output.status == UNKNOWN
    assert any("each pattern ran on its own" in n for n in a.notes)
    _, _, units = measured(adv.tolist_scalar)
    assert all(s == ((0, 11), (0, 11)) for s in units.values())


@pytest.mark.parametrize("fn", adv.COVERS, ids=lambda f: f.__name__)
def test_covers_input_reads_the_fields(fn):
    a = analyze(adv.model(fn), adv.SHAPE)
    _, _, units = measured(fn)
    full = tuple((0, n - 1) for n in adv.SHAPE[1:])
    assert not any(s == full for s in units.values())  # measured: no unit sees everything
    assert a.covers_input is False


@pytest.mark.parametrize("fn", adv.OUTPUT_ROW, ids=lambda f: f.__name__)
def test_the_output_row_after_a_copy_is_the_copied_row(fn):
    a = analyze(adv.model(fn), adv.SHAPE)
    base, dims, units = measured(fn)
    assert a.output.name != "input"
    assert a.output.size == tuple(base.shape[d] for d in dims)
    assert adv.under_claims(a.output, adv.SHAPE, units) == []
    # c3 then a crop: every kept unit sees its 3x3, clipped at the image's edge
    assert a.output.status == EXACT and a.output.rf == (3, 3)


def test_covers_input_still_true_where_a_unit_sees_everything():
    # two 3x3 convs on 5x5: the centre unit sees 0..4 on both axes (gradients agree)
    m = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1))
    assert analyze(m, (1, 5, 5)).covers_input and not analyze(m, (1, 6, 6)).covers_input


# ---------------------------------------------------------------- the check itself


def test_a_wrong_rule_is_caught_without_gradients(monkeypatch):
    # a conv rule that forgets the kernel claims rf 1 for a 3x3 conv: the check finds a unit
    # that moves with a pixel next to it, and every row after it stops claiming
    real = rules.RULES["conv2d"]
    monkeypatch.setitem(rules.RULES, "conv2d", lambda call: Outcome(call.first, real(call).window))
    a = analyze(zoo.VGGStack(), (3, 32, 32))
    first = a.rows[0]
    assert first.status == UNKNOWN and "perturbation check" in first.note
    assert all(r.status == UNKNOWN for r in a.rows)
    # a pool over the whole map claims every pixel, which no perturbation contradicts; its
    # field was built on the wrong one, so it stops claiming too
    a = analyze(nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.AdaptiveAvgPool2d(1)), (1, 8, 8))
    assert a.rows[0].status == UNKNOWN and "perturbation check" in a.rows[0].note
    assert a.rows[1].status == UNKNOWN and a.rows[1].note.startswith("depends on 0")


def test_the_assignment_net_passes_the_check_unchanged():
    a = analyze(zoo.s9_net(), (3, 32, 32))
    b = analyze(zoo.s9_net(), (3, 32, 32), check=False)
    assert a.rows == b.rows and a.output.rf == (48, 48) and a.params == 190_509
    assert not any("perturbation" in n or "unchecked" in n for n in a.notes)


def test_the_data_free_path_says_unchecked():
    a = analyze(zoo.VGGStack(), (3, 32, 32), real=False)
    assert a.notes[-1] == UNCHECKED and "unchecked" in UNCHECKED


class Stateful(nn.Module):
    """BatchNorm and dropout in train mode, a buffer it updates, a cache it sets, a random op."""

    def __init__(self, noisy: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.register_buffer("calls", torch.zeros(()))
        self.noisy = noisy

    def forward(self, x):
        self.calls += 1
        self.cache = self.conv(x)
        y = self.drop(self.bn(self.cache))
        return y + torch.randn(y.shape) if self.noisy else y


def test_the_check_leaves_the_model_and_the_random_state_as_they_were():
    m = Stateful().train()
    with torch.no_grad():
        m.bn.running_mean.fill_(0.5)
    analyze(m, (2, 8, 8), check=False)  # the analysis's own forward, without the check
    state = {k: v.clone() for k, v in m.state_dict().items()}
    cache = m.cache
    rng = torch.get_rng_state()
    analyze(m, (2, 8, 8))
    # the analysis's own forward counts one call; the check's forward is undone
    assert m.calls == state["calls"] + 1
    state["calls"] += 1
    assert all(torch.equal(state[k], v) for k, v in m.state_dict().items())
    assert m.training and m.bn.training and m.drop.training
    assert m.cache is not cache  # the analysis set it; the check put that back
    assert torch.equal(torch.get_rng_state(), rng)


def test_a_random_op_is_unchecked_not_contradicted():
    a = analyze(Stateful(noisy=True), (2, 8, 8))
    assert any(n.startswith("unchecked: the forward is not deterministic") for n in a.notes)
    assert a.output.status == EXACT and a.output.rf == (3, 3)


class OneImage(nn.Module):
    """A model that only runs on one image (a buffer of batch size 1 it writes into)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.register_buffer("keep", torch.zeros(1, 1, 8, 8))

    def forward(self, x):
        self.keep.copy_(x)
        return self.conv(x) + 0 * self.keep.sum()


def test_a_model_that_runs_on_one_image_is_checked_one_pattern_at_a_time():
    a = analyze(OneImage(), (1, 8, 8))
    assert any("each pattern ran on its own" in n for n in a.notes)
    assert a.output.status != EXACT or a.output.rf == (3, 3)


def test_the_check_costs_one_batched_forward():
    calls = []

    class Count(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            calls.append(x.shape[0])
            return self.conv(x)

    analyze(Count(), (3, 16, 16))
    # the analysis's own run, then one run of 2 copies + 5 pixels + 3 outside patterns + 8
    # sparse random pixel sets, then the densest pattern on its own (a value read from one
    # batch element)
    assert calls == [1, 18, 1]


# ---------------------------------------------------------------- closed at the source


def exact_spans(row, shape, unit):
    """The classic field of `unit` of an exact row, clipped to the image (per axis)."""
    out = []
    for i, o in enumerate(unit):
        centre = row.start[i] + o * row.jump[i]
        lo, hi = centre - (row.rf[i] - 1) / 2, centre + (row.rf[i] - 1) / 2
        out.append((int(max(lo, 0)), int(min(hi, shape[1 + i] - 1))))
    return tuple(out)


@pytest.mark.parametrize("fn", [adv.data_add, adv.detach_add, adv.buffer_cache])
def test_writes_through_an_alias_or_into_a_buffer_are_followed(fn):
    # y = c1(x) widened in place by c7(x) through .data / .detach(), or c7(x) copied into a
    # registered buffer and added: every unit sees the 7x7 around it, clipped (measured by
    # perturbing each pixel; gradients do not pass .data)
    a = analyze(adv.model(fn), adv.SHAPE)
    assert a.output.status == EXACT and a.output.rf == (7, 7)
    _, _, units = measured(fn)
    assert units[(5, 5)] == ((2, 8), (2, 8))
    for unit, spans in units.items():
        assert spans == exact_spans(a.output, adv.SHAPE, unit), unit


@pytest.mark.parametrize("fn", [adv.canvas, adv.canvas_new_zeros, adv.copy_into_view])
def test_a_map_written_into_a_zeros_canvas_keeps_its_field(fn):
    # the decoder map (c7, cropped) written into a canvas of the skip's size reads like
    # F.pad of it: what each unit of the written canvas sees is measured with gradients (the
    # write is differentiable), the output by perturbation
    from measure import check, positive

    a = analyze(adv.model(fn), adv.SHAPE)
    written = [r for r in a.rows if r.op in ("setitem", "copy")]
    assert len(written) == 1 and written[0].size == (12, 12) and written[0].rf == (7, 7)
    check(positive(adv.Fn(fn)), adv.SHAPE, rows=[written[0].name])
    assert a.output.status != UNKNOWN and a.output.rf == (7, 7)
    _, _, units = measured(fn)
    assert adv.under_claims(a.output, adv.SHAPE, units) == []
    assert max(b - a_ + 1 for s in units.values() for a_, b in s) == 7


def test_a_python_number_from_the_map_widens_what_it_multiplies():
    # c1(x) * c7(x).mean().item(): every unit reads the mean of the whole map (measured)
    a = analyze(adv.model(adv.item_scalar), adv.SHAPE)
    assert a.output.status == "global" and a.output.axis_status == ("global", "global")
    assert "Python number" in a.output.note
    _, _, units = measured(adv.item_scalar)
    assert set(units.values()) == {((0, 11), (0, 11))}


@pytest.mark.parametrize(
    "fn, says",
    [
        (adv.inference_mode, "inference_mode"),
        (adv.vmapped, "vmap"),
        (adv.other_thread, "another thread"),
        (adv.dlpack_alias, "written through an alias rfcalc did not see"),
        (adv.numpy_write, "written through numpy"),
    ],
)
def test_work_the_recorder_cannot_follow_makes_the_rows_after_it_unknown(fn, says):
    a = analyze(adv.model(fn), adv.SHAPE, check=False)  # the source alone, without the check
    assert a.output.status == UNKNOWN and says in a.output.note


# ---------------------------------------------------------------- values that leave torch (#27)


def pickle_patch(s, x):
    # a patch of pixels 8..9 pasted at 2..3 after a pickle round trip (no recorded producer)
    patch = pickle.loads(pickle.dumps(x[..., 8:10, 8:10]))
    return s.c1(x) + F.pad(patch, (2, 8, 2, 8))


def torch_save_patch(s, x):
    f = io.BytesIO()
    torch.save(s.c3(x)[..., 8:10, 8:10].clone(), f)
    f.seek(0)
    return s.c1(x) + F.pad(torch.load(f), (2, 8, 2, 8))


@pytest.mark.parametrize("fn", [pickle_patch, torch_save_patch], ids=lambda f: f.__name__)
def test_a_tensor_rebuilt_from_memory_that_left_torch_is_no_constant(fn):
    _, _, units = measured(fn)
    assert units[(2, 2)][0][1] >= 8  # unit (2, 2) moves with a pixel in rows 8..9 (measured)
    a = analyze(adv.model(fn), adv.SHAPE, check=False)  # the source alone
    assert a.output.status == UNKNOWN and "no recorded producer" in a.output.note
    assert adv.under_claims(analyze(adv.model(fn), adv.SHAPE).output, adv.SHAPE, units) == []


def frombuffer_patch(s, x):
    b = bytearray(x[..., 8:10, 8:10].contiguous().numpy().tobytes())
    return s.c1(x) + F.pad(torch.frombuffer(b, dtype=x.dtype).view(1, 1, 2, 2), (2, 8, 2, 8))


def memoryview_patch(s, x):
    m = memoryview(x[..., 8:10, 8:10].contiguous().numpy())
    return s.c1(x) + F.pad(torch.tensor(np.asarray(m).copy()), (2, 8, 2, 8))


def set_onto_storage(s, x):
    y = s.c7(x)
    z = torch.empty(0, dtype=x.dtype).set_(y.untyped_storage(), 0, y.shape, y.stride())
    return s.c1(x) + z


def set_onto_map(s, x):
    z = torch.empty(0, dtype=x.dtype)
    z.set_(s.c7(x))  # no torch function sees set_: z is a blank no recorded op wrote
    return s.c1(x) + z


@pytest.mark.parametrize(
    "fn",
    [frombuffer_patch, memoryview_patch, set_onto_storage, set_onto_map],
    ids=lambda f: f.__name__,
)
def test_tensors_rebuilt_from_memory_rfcalc_did_not_follow_claim_nothing(fn):
    _, _, units = measured(fn)
    assert max(b - a_ + 1 for s in units.values() for a_, b in s) > 1  # wider than c1's
    a = analyze(adv.model(fn), adv.SHAPE, check=False)  # the source alone
    assert a.output.status == UNKNOWN and "it may come from the input" in a.output.note


def test_constants_stay_constants_after_data_left_torch():
    # after a .tolist() a factory constant made in the forward is still a constant: the
    # field stays c3's 3x3 (measured), not unknown
    def fn(s, x):
        s.c1(x).tolist()
        blank = torch.empty(1, 1, 12, 12, dtype=x.dtype).fill_(3)  # filled by a recorded op
        out = torch.empty_like(blank)
        torch.add(s.c3(x), 1, out=out)  # written through out=
        return out + torch.ones(1, 1, 12, 12, dtype=x.dtype).mul_(2) + blank

    a = analyze(adv.model(fn), adv.SHAPE, check=False)
    _, _, units = measured(fn)
    assert a.output.status == EXACT and a.output.rf == (3, 3)
    assert units[(5, 5)] == ((4, 6), (4, 6))


def test_a_local_path_the_source_misses_is_caught_by_the_sparse_pixel_sets(monkeypatch):
    # without the storage escapes and the blanks rule the source calls the pickled patch a
    # constant (exact rf 1); no centre, corner or outside pattern reaches it: the sparse
    # random sets must
    monkeypatch.setattr("rfcalc.record._ESCAPES", frozenset({"numpy", "tolist", "array", "dlpack"}))
    monkeypatch.setattr("rfcalc.record._BLANK", frozenset())
    assert analyze(adv.model(pickle_patch), adv.SHAPE, check=False).output.rf == (1, 1)
    a = analyze(adv.model(pickle_patch), adv.SHAPE)
    _, _, units = measured(pickle_patch)
    assert a.output.status == UNKNOWN and "random 1 in" in a.output.note
    assert adv.under_claims(a.output, adv.SHAPE, units) == []


def _actnorm(s, x):
    # Glow's ActNorm: the first call's statistics set the parameters, through .data
    y = s.c1(x)
    if not bool(s.initialized):
        with torch.no_grad():
            s.an_bias.data.copy_(-y.mean().reshape(1, 1, 1, 1))
            s.initialized.fill_(1)
    return y + s.an_bias


def actnorm_model() -> nn.Module:
    m = adv.model(_actnorm)
    m.register_buffer("initialized", torch.zeros((), dtype=torch.float64))
    m.an_bias = nn.Parameter(torch.zeros(1, 1, 1, 1, dtype=torch.float64))
    return m


def fresh_dependence(build) -> dict:
    """Per output unit, the pixels that move it, each forward on a freshly built model (the
    field of a first call)."""
    gen = torch.Generator().manual_seed(0)
    probe = torch.rand((1, *adv.SHAPE), generator=gen, dtype=torch.float64) + 1
    with torch.no_grad():
        base = build()(probe.clone())
        moved = torch.zeros((*adv.SHAPE[1:], *base.shape), dtype=torch.bool)
        for i in range(adv.SHAPE[1]):
            for j in range(adv.SHAPE[2]):
                x = probe.clone()
                x[..., i, j] += 1.0
                moved[i, j] = build()(x) != base
    return adv.unit_spans(moved, ND, (-2, -1))


def test_a_write_through_param_data_is_seen_when_the_parameter_is_read():
    units = fresh_dependence(actnorm_model)
    assert set(units.values()) == {((0, 11), (0, 11))}  # the mean of the whole first input
    a = analyze(actnorm_model(), adv.SHAPE, check=False)  # the source alone
    assert a.output.status == "global" and a.output.rf == (12, 12)


def _warm_up(s, x):
    y = s.c1(x)
    if not s.calls:  # a path only the first call takes
        y = y + s.c7(x)
    s.calls.append(1)
    return y


def test_the_check_runs_from_the_state_before_the_analysis(monkeypatch):
    # a conv rule that forgets the kernel: on the first call c7 reaches the output, so the
    # check must run first-call forwards to see it (a list attribute keeps the state)
    def build():
        m = adv.model(_warm_up)
        m.calls = []
        return m

    units = fresh_dependence(build)
    assert units[(5, 5)] == ((2, 8), (2, 8))
    real = rules.RULES["conv2d"]
    monkeypatch.setitem(rules.RULES, "conv2d", lambda call: Outcome(call.first, real(call).window))
    m = build()
    a = analyze(m, adv.SHAPE)
    assert a.output.status == UNKNOWN and "perturbation check" in a.output.note
    assert m.calls == [1]  # left as the analysis's own forward left it


def test_a_torchscript_submodule_is_unknown_and_the_check_does_not_break():
    def fn(s, x):
        return s.js(x) + s.c1(x)

    m = adv.model(fn)
    conv = nn.Sequential(nn.Conv2d(1, 1, 7, padding=3), nn.ReLU()).double()
    with torch.no_grad():
        conv[0].weight.fill_(0.1)
    m.js = torch.jit.script(conv)
    _, moved = adv.dependence(m)
    units = adv.unit_spans(moved, ND, (-2, -1))
    assert units[(5, 5)] == ((2, 8), (2, 8))  # the scripted 7x7 reaches the output
    a = analyze(m, adv.SHAPE)
    assert a.output.status == UNKNOWN and "js" in a.output.note
    traced = adv.model(lambda s, x: s.tp(s.c1(x)))
    traced.tp = torch.jit.trace(nn.AvgPool2d(5, 1, 2), torch.rand(1, 1, 12, 12).double())
    assert analyze(traced, adv.SHAPE).output.status == UNKNOWN


def test_a_blank_filled_by_recorded_ops_keeps_its_field():
    # torch.empty_like filled by copy_, torch.empty filled through two views: recorded
    # writes, so the field is c7's 7x7 and c3's 3x3 (measured), not unknown
    def copied(s, x):
        out = torch.empty_like(x)
        out.copy_(s.c7(x))
        return s.c1(x) * out

    def halves(s, x):
        b = torch.empty(1, 1, 12, 12, dtype=x.dtype)
        b[..., :6].fill_(1)
        b[..., 6:].fill_(2)
        return s.c3(x) * b

    for fn, rf, span in ((copied, 7, (2, 8)), (halves, 3, (4, 6))):
        _, _, units = measured(fn)
        assert units[(5, 5)] == (span, span)
        o = analyze(adv.model(fn), adv.SHAPE, check=False).output
        assert o.status == EXACT and o.rf == (rf, rf)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_unchecked_and_says_so(dtype, monkeypatch):
    # 2^12 ulps of a half is more than the value: a planted wrong rule (a 3x3 conv claimed
    # as rf 1) caught in float32 would pass unseen, so the analysis must not claim a check
    real = rules.RULES["conv2d"]
    monkeypatch.setitem(rules.RULES, "conv2d", lambda call: Outcome(call.first, real(call).window))
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1))
    caught = analyze(model, (1, 8, 8))
    assert caught.rows[0].status == UNKNOWN and "perturbation check" in caught.rows[0].note
    a = analyze(model.to(dtype), (1, 8, 8))
    assert any(n.startswith("unchecked: in float16/bfloat16") for n in a.notes), a.notes
    assert not any("perturbation check" in r.note for r in a.rows)


def test_a_number_read_from_the_first_image_is_not_missed():
    # `float(x[0]...)`: in the check's batch element 0 is the unchanged probe, so every
    # copy would read the probe's number and nothing would move. Measured by perturbation:
    # every unit moves when the far corner pixel changes (the number divides every unit)
    class FirstImage(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x):
            return self.conv(x) / (1 + float(x[0].abs().mean()))

    torch.manual_seed(0)
    model = FirstImage().eval()
    probe = torch.randn(1, 1, 8, 8)
    moved = probe.clone()
    moved[0, 0, 7, 7] += 4.0
    with torch.no_grad():
        assert bool(((model(moved) - model(probe)).abs()[0, 0, 0, 0] > 1e-6))  # unit (0, 0)
    a = analyze(model, (1, 8, 8))
    assert a.output.status != EXACT or a.output.rf == (8, 8), (a.output, a.notes)
    assert a.rows[-1].status == UNKNOWN and "perturbation check" in a.rows[-1].note
