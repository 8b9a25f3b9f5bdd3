"""Check an analysis's claims by perturbing input pixels: a net under the recorder.

The recorder follows tensors as Python objects: a value that reaches a row another way (a
write through `.data` or numpy, a Python scalar from `.item()`, a fresh tensor filled by slice
assignment, work in another thread) is invisible to it, and the row would keep an exact field
that is too small. Gradients cannot catch that either (`.data`, `.item()`, numpy and inference
mode cut them). Values can: where the analysis ran on real values, `crosscheck` runs the model
once more on a batch of perturbed copies of the same probe and asks every claimed unit of
every row whether it moved although no pixel of its claimed field changed.

The patterns (one batch element each, after two copies of the probe): single pixels (the
centre and the corners of the input), and for three units of the model's output (its centre
and two seeded random ones; of the last row with a map where the output is a flat vector)
everything outside their claimed field. Every pattern tests every unit of every row whose
claimed field holds none of its pixels, not just the unit it was made for: a single pixel
tests, in every row, the units it lies just outside of (their ring) and all units further
away; an outside tests what an unseen global path (`x.mean().item()`) would move, with the
strongest signal. Last come SPARSE_SETS seeded random pixel sets for local unseen paths (a
patch pasted elsewhere after a pickle round trip), set i perturbing each pixel with chance
p = 2^-(1 + i mod K), K = floor(log2(pixels)) so that each set expects at least one pixel:
1/2, 1/4, ..., 1/128, 1/2 at 12x12; 1/2 ... 1/256 from 16x16 up. A set detects an unseen
path from pixel q to a unit whose claimed field holds F pixels (q outside it) when it holds q
and none of the F: chance p(1-p)^F, largest at p ~ 1/(F+1), which one of the densities is
near. Over the eight sets (at 32x32): one such pair is found with chance 0.52 for F = 1,
0.13 for F = 9, 0.02 for F = 49; a path moving m units from m other pixels (disjoint pairs)
with 1 - (1 - that)^m: 4 pairs 0.95 / 0.43 / 0.10, 36 pairs 1.00 / 0.99 / 0.60. The sets are
seeded, so a given model gets the same verdict every run.
So every compared row (its tensor holds the batch in dim 0) is checked, not only the output:
a row where an unseen path enters is named itself, and every row that depends on it stops
claiming. Token rows (a map flattened into one dim, maybe behind a class token) are checked
element by element: token t against the field of the position it holds
(`analysis.token_index`'s layout), a token in front of the map against nothing, or against
everything once attention has mixed all tokens. Rows inside window attention (the map's
positions in windows, the batch folded into dim 0 with them: rules.positions) are checked
with one image per forward, each pattern on its own, element by element against the field of
the position it holds.

Why it is sound to compare batch elements: the model runs in eval mode (BatchNorm uses its
running statistics, dropout is off) and an element is compared with element 0 of the same
call. A model that still mixes batch elements (a `.item()` of a mean over the whole batch)
affects every element alike and would cancel out of that difference, so element 0 is also
compared with the analysis's own single-image run: where they differ, or where the two copies
of the probe differ (a random op), or where the batch does not run at all (a buffer of batch
size 1), each pattern runs as a forward pass of its own.

The threshold. An unaffected unit computes the same function of the same inputs in element 0
and element k, so in exact arithmetic its difference is 0; batched kernels may sum in another
order, which moves float results by a few ulps of the magnitudes summed. A unit counts as
moved when |y_k - y_0| > TOLERANCE_ULPS · eps(dtype) · (|y_0| + mean |y_0| over the row): the
row's mean magnitude stands in for the size of the terms where a unit is a small difference of
large ones. 2^12 ulps (5e-4 in float32) is far above the noise measured (0 ulps between
elements of one batch on the test zoo, ResNet-18 and MobileNetV3; up to 22 ulps between a
batch and a single image, where the same threshold tells batch mixing apart) and below the
change a pixel moved by 4 standard deviations makes through a path of ordinary weight. A
weaker dependence is missed: this is a sample, not a proof. Integer and boolean outputs must
match exactly.

The state. Every check forward starts from the model's state before the analysis's own
forward (rfcalc.analysis passes `capture`'s snapshot, taken right before it: parameters,
buffers, module attributes and the contents of plain lists, dicts and sets among them), so
paths only a first call takes (ActNorm's initialisation from the first batch, a warm-up)
are the ones checked; it is restored before each forward. Afterwards the model is left as
the analysis's own forward left it (one call's worth of state changes, as without the check).

A value read from one batch element (`float(x[0].mean())`, common where a model expects a
batch of one) is the probe's in every element and would move nothing: so the pattern that
changes the most pixels also runs on its own, and where its output differs from its batch
element's, every pattern runs on its own (as for a batch that mixes).

The cost is one recorded forward pass on a batch of 18 images for a 2-D input (two copies,
five pixels, three outsides, eight sparse sets; 22 in 3-D) and one on a single image, split
into several where the input is large (BATCH_ELEMENTS), and where a model has rows inside
window attention one more forward per single pixel and outside (not the sparse sets), and
one for the probe; the data-free path (large inputs) has no values to perturb, and its rows
are unchecked (analysis notes say so). In float16/bfloat16 the tolerance exceeds the values:
not checked (HALF_NOTE).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import math
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn as nn

from .geometry import GLOBAL, UNKNOWN, Field
from .record import Record, Recording, Step, _tensors

AMPLITUDE = 4.0  # perturbation, in standard deviations of the probe (seeded normal noise)
TOLERANCE_ULPS = 2**12
# 2^12 ulps of float16/bfloat16 is more than the values themselves: nothing could count as
# moved, so a half-precision run is not checked (and says so)
HALF = (torch.float16, torch.bfloat16)
HALF_NOTE = (
    "unchecked: in float16/bfloat16 the perturbation check's tolerance exceeds the values "
    "themselves, so no row was checked (analyse the model in float32 to check it)"
)
RANDOM_UNITS = 2  # output units beyond the centre whose outside is perturbed
# sparse random pixel sets: set i perturbs a seeded random 2^-(1 + i mod K) of the pixels,
# K the densities that leave at least one pixel expected (see the module docstring)
SPARSE_SETS = 8
OUTPUT = "output"  # the pseudo-row of the tensor the model returns
# input elements per batched forward (the probe's copies included): the check's memory is
# then at most that many images' worth of activations, small images all in one pass
BATCH_ELEMENTS = 1 << 22


@dataclass
class Claim:
    """What a row claims: per spatial axis, the first and last pixel each unit sees.

    A map's units lie on a grid, one tensor dim per axis: `lo[a]` and `hi[a]` are indexed by
    the unit's place along axis a. Tokens (a map flattened into one dim, maybe behind a class
    token) lie along one dim: `flat` is then set, `dims` and `size` name that one dim, and
    every `lo[a]`/`hi[a]` is indexed by the element along it, so element t's field is the
    box of its own position (a token in front of the map claims none: an empty span);
    `grid` is the positions' own claim, from which the outside patterns are drawn."""

    dims: tuple[int, ...]
    lo: tuple[torch.Tensor, ...]  # per axis, one entry per unit (empty span: lo 0, hi -1)
    hi: tuple[torch.Tensor, ...]
    size: tuple[int, ...]
    flat: bool = False
    grid: Optional["Claim"] = None
    where: Optional[torch.Tensor] = None  # flat: (elements, axes) position of each, -1: none
    # a map taken apart into windows (windows·B in dim 0, rules.positions): per element of
    # the row's tensor (as the analysis's one-image run laid it out), the position of the
    # map it holds (row-major over `grid`'s axes); `grid` claims each position's field
    layout: Optional[torch.Tensor] = None


@dataclass
class Pattern:
    """One perturbed batch element: the pixels it changes, and how a note names them."""

    mask: torch.Tensor  # bool, the input's spatial shape
    says: str  # "pixel (3, 8) changes", "the pixels outside rows 2..9, columns 3..8 change"
    sparse: bool = False  # a sparse random set (not run for window rows: see `_laid_only`)


def claim_of(f: Optional[Field]) -> Optional[Claim]:
    """The per-unit claim of a field, or None where it claims nothing spatial to check."""
    from .analysis import _placed, tokens

    if f is not None and tokens(f) is not None:
        return _token_claim(f, tokens(f))
    if f is not None and _placed(f) is not None:
        return _window_claim(f, _placed(f))
    if f is None or f.status == UNKNOWN or f.dims is None or not f.axes:
        return None
    lo, hi = [], []
    for a in f.axes:
        spans = [s if s is not None else (0, -1) for s in a.seen]
        lo.append(torch.tensor([s[0] for s in spans], dtype=torch.long))
        hi.append(torch.tensor([s[1] for s in spans], dtype=torch.long))
    return Claim(tuple(f.dims), tuple(lo), tuple(hi), tuple(a.size for a in f.axes))


def _token_claim(f: Field, per: Field) -> Optional[Claim]:
    """The claim of a token field: element t of the token dim claims its position's field.
    The layout is the one `analysis.token_index` reads: the flattened dims `tail` (channels
    in front of the map where they were flattened too) row-major, after `offset` tokens in
    front that claim nothing."""
    grid = claim_of(per)
    if grid is None:
        return None
    _, tail, flat_dim, _, *offset = f.packed
    front = offset[0] if offset else 0
    n = len(grid.size)
    if len(tail) < n or tuple(tail[-n:]) != tuple(_sorted_sizes(per)):
        return None  # not the layout token_index assumes: claim nothing rather than guess
    count = math.prod(tail)
    coords = torch.stack(torch.unravel_index(torch.arange(count), tuple(tail)), -1)[:, -n:]
    # tail's last dims are the map's dims in tensor order; the claim's axes in field order
    order = sorted(range(n), key=lambda i: per.dims[i])
    where = torch.full((front + count, n), -1, dtype=torch.long)
    for rank, i in enumerate(order):
        where[front:, i] = coords[:, rank]
    inside = where[:, 0] >= 0
    lo, hi = [], []
    whole = per.status == GLOBAL  # after attention over all tokens, a class token read all
    for i in range(n):
        at = where[:, i].clamp(min=0)
        front_lo, front_hi = (grid.lo[i].min(), grid.hi[i].max()) if whole else (0, -1)
        lo.append(torch.where(inside, grid.lo[i][at], front_lo))
        hi.append(torch.where(inside, grid.hi[i][at], front_hi))
    return Claim((flat_dim,), tuple(lo), tuple(hi), (front + count,), True, grid, where)


def _window_claim(f: Field, per: Field) -> Optional[Claim]:
    """The claim of a row whose elements are the map's positions in windows: each element
    claims its position's field. Its batch elements are folded into dim 0 with the windows,
    so it is compared one image per forward (`_one_by_one`), element by element."""
    from .rules import positions

    grid = claim_of(per)
    if grid is None:
        return None
    idx = positions.of(f).idx
    if idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= math.prod(grid.size):
        return None
    return Claim(grid.dims, grid.lo, grid.hi, grid.size, grid=grid, layout=idx)


def _moved_laid(out: torch.Tensor, reference: torch.Tensor, claim: Claim) -> Optional[torch.Tensor]:
    """(1, *positions) bool: the positions of the map some element of `out` holding them
    moved against `reference` (one image each, laid out as `claim.layout`); None where the
    tensors are not laid out so."""
    layout = claim.layout
    if out.shape != reference.shape or tuple(out.shape) != tuple(layout.shape):
        return None
    if out.is_floating_point() or out.is_complex():
        size = reference.abs()
        tol = TOLERANCE_ULPS * torch.finfo(size.dtype).eps
        moved = (out - reference).abs() > tol * (size + size.mean())
    else:
        moved = out != reference
    count = torch.zeros(math.prod(claim.size), dtype=torch.long)
    count.index_add_(0, layout.reshape(-1), moved.reshape(-1).long().cpu())
    return (count > 0).view(1, *claim.size)


def _sorted_sizes(f: Field) -> tuple[int, ...]:
    """The map's sizes in the order of its tensor dims (as a flatten lays them out)."""
    order = sorted(range(len(f.axes)), key=lambda i: f.dims[i])
    return tuple(f.axes[i].size for i in order)


def _box_mask(spatial: tuple[int, ...], box: tuple[tuple[int, int], ...]) -> torch.Tensor:
    inside = torch.zeros(spatial, dtype=torch.bool)
    inside[tuple(slice(a, b + 1) for a, b in box)] = True
    return inside


def _names(n: int) -> tuple[str, ...]:
    return {1: ("positions",), 2: ("rows", "columns"), 3: ("slices", "rows", "columns")}.get(
        n, tuple(f"axis {i}" for i in range(n))
    )


def patterns(spatial: tuple[int, ...], output: Optional[Claim]) -> list[Pattern]:
    """Single pixels (centre, corners), then the outside of a few units' fields of `output`
    (the model's output, or its last row with a map where the output is flat)."""
    found: list[Pattern] = []
    seen: set[bytes] = set()

    def add(mask: torch.Tensor, says: str, sparse: bool = False) -> None:
        key = mask.numpy().tobytes()
        if mask.any() and key not in seen:
            seen.add(key)
            found.append(Pattern(mask, says, sparse))

    pixels = [tuple((n - 1) // 2 for n in spatial)]
    pixels += list(itertools.product(*((0, n - 1) for n in spatial)))
    for p in pixels:
        mask = torch.zeros(spatial, dtype=torch.bool)
        mask[p] = True
        add(mask, f"pixel {p} changes")
    if output is not None:
        gen = torch.Generator().manual_seed(0)
        units = [tuple((n - 1) // 2 for n in output.size)]
        for _ in range(RANDOM_UNITS):
            units.append(tuple(int(torch.randint(n, (1,), generator=gen)) for n in output.size))
        for u in units:
            box = tuple((int(lo[o]), int(hi[o])) for lo, hi, o in zip(output.lo, output.hi, u))
            if any(a > b for a, b in box):
                mask = torch.ones(spatial, dtype=torch.bool)
                add(mask, "any pixel changes")
                continue
            where = ", ".join(f"{n} {a}..{b}" for n, (a, b) in zip(_names(len(spatial)), box))
            add(~_box_mask(spatial, box), f"the pixels outside {where} change")
    gen = torch.Generator().manual_seed(2)
    levels = max(1, int(math.log2(math.prod(spatial))))
    for i in range(SPARSE_SETS):
        rate = 2.0 ** -(1 + i % levels)
        mask = torch.rand(spatial, generator=gen) < rate
        first = tuple(int(c) for c in torch.nonzero(mask)[0]) if mask.any() else ()
        add(
            mask,
            f"a random 1 in {round(1 / rate)} of the pixels change (pixel {first} ...)",
            sparse=True,
        )
    return found


def _untouched(claim: Claim, integral: torch.Tensor) -> torch.Tensor:
    """(patterns, *units) bool: whether no perturbed pixel of a pattern lies in a unit's
    claimed field. `integral` holds per pattern the perturbed pixels summed from the origin
    along every axis (one leading zero each); differencing it at each unit's two ends, one
    axis after the other, counts the pixels inside every unit's box at once."""
    if claim.flat:
        # units along one dim, each with its own box: inclusion-exclusion at its corners
        count = torch.zeros((integral.shape[0], claim.size[0]), dtype=integral.dtype)
        for corner in itertools.product((0, 1), repeat=len(claim.lo)):
            at = tuple(hi + 1 if c else lo for c, lo, hi in zip(corner, claim.lo, claim.hi))
            sign = -1 if (len(corner) - sum(corner)) % 2 else 1
            count += sign * integral[(slice(None), *at)]
        return count == 0
    count = integral
    for a, (lo, hi) in enumerate(zip(claim.lo, claim.hi)):
        # an empty span (lo 0, hi -1) takes the same entry twice: it counts nothing
        count = count.index_select(a + 1, hi + 1) - count.index_select(a + 1, lo)
    return count == 0


def _moved(out: torch.Tensor, reference: torch.Tensor, claim: Claim) -> Optional[torch.Tensor]:
    """(k, *units) bool: the units of `out` (k elements) that differ from `reference` (one
    element) beyond float noise (see the module docstring); None where the tensors do not
    have the claimed layout."""
    ndim = out.dim()
    if (
        ndim < len(claim.dims) + 1
        or reference.dim() != ndim
        or reference.shape[0] != 1
        or tuple(out.shape[1:]) != tuple(reference.shape[1:])
        or any(-d >= ndim for d in claim.dims)
        or (
            tuple(out.shape[d] for d in claim.dims) != claim.size
            # tokens behind the claimed ones claim nothing (see `_longer`)
            and not (claim.flat and out.shape[claim.dims[0]] > claim.size[0])
        )
    ):
        return None
    spatial = [d % ndim for d in claim.dims]
    rest = [d for d in range(1, ndim) if d not in spatial]

    def most(t: torch.Tensor) -> torch.Tensor:  # over every dim but the batch and the map
        return t.amax(dim=rest) if rest else t

    if out.is_floating_point() or out.is_complex():
        size = reference.abs()
        tol = TOLERANCE_ULPS * torch.finfo(size.dtype).eps
        moved = most((out - reference).abs()) > tol * (most(size) + size.mean())
    else:
        moved = most(out != reference)
    # the map's dims in the claim's order (a transposed map lists them out of order)
    ranked = sorted(spatial)
    return moved.permute(0, *(1 + ranked.index(d) for d in spatial))


class _Watch(Recording):
    """A recorder that compares each claimed row with its reference as the row is made."""

    def __init__(
        self,
        model: nn.Module,
        claims: dict[str, Claim],
        steps: dict[str, Step],
        reference: Optional[dict[str, torch.Tensor]] = None,
        keep: bool = False,
    ):
        super().__init__(model)
        self.claims, self.expected = claims, steps
        self.reference, self.keep = reference, keep
        self.moved: dict[str, torch.Tensor] = {}
        self.kept: dict[str, torch.Tensor] = {}
        self.batch = 1  # the batch size of the run (set by _run)

    def _emit(self, step: Step, outs: list[torch.Tensor]) -> None:
        super()._emit(step, outs)
        claim = self.claims.get(step.name)
        first = self.expected.get(step.name)
        if claim is None or not outs or first is None:
            return
        if first.op != step.op or first.size != step.size:
            return  # another path than the analysis's run: not this row
        out = outs[0]
        if self.reference is None and not self.keep and not self._batch_first(out, first):
            return  # the batch is not dim 0 here (q, k, v stacked in front): not compared
        with torch._C.DisableTorchFunction():
            if self.keep:
                self.kept[step.name] = out.detach().clone()
                return
            moved = self.compare(step.name, out, claim)
        if moved is not None:
            self.moved[step.name] = moved

    def _batch_first(self, out: torch.Tensor, first: Step) -> bool:
        """Whether `out` holds one element per batch element in dim 0, laid out as the
        analysis's own run laid out its one (batch elements are compared along dim 0)."""
        if out.dim() == 0 or out.shape[0] != self.batch:
            return False
        return not first.shape or tuple(out.shape[1:]) == tuple(first.shape)

    def compare(self, name: str, out: torch.Tensor, claim: Claim) -> Optional[torch.Tensor]:
        if self.reference is None:
            return None if claim.layout is not None else _moved(out[1:], out[:1], claim)
        ref = self.reference.get(name)
        if ref is None:
            return None
        return _moved_laid(out, ref, claim) if claim.layout is not None else _moved(out, ref, claim)


# nn.Module's own bookkeeping in a module's __dict__ (hooks, submodules): not user state
_INTERNAL = frozenset(nn.Module().__dict__)
# containers in a module's __dict__ whose contents are saved up to this many items
_CONTENTS_UP_TO = 10_000


@dataclass
class State:
    """A model's state at one moment: every parameter and buffer (the tensor, what its .data
    was, a copy of its values), every module's attribute, parameter and buffer slots, and
    the contents of plain lists, dicts and sets among its attributes (a call counter)."""

    tensors: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    slots: dict[nn.Module, dict[str, dict]]
    contents: list[tuple[Any, Any]]


def capture(model: nn.Module) -> Optional[State]:
    """The model's state now (rfcalc.analysis takes it before its own forward pass, so the
    check's forwards take the paths a first call takes: ActNorm's initialisation, a warm-up).
    None for a model with lazy modules still to initialise: their first forward changes
    their class, which no snapshot puts back (the check then starts from the state after)."""
    lazy = nn.parameter.UninitializedTensorMixin
    if any(isinstance(t, lazy) for t in itertools.chain(model.parameters(), model.buffers())):
        return None
    return _state(model)


def _state(model: nn.Module) -> State:
    seen, tensors = set(), []
    lazy = nn.parameter.UninitializedTensorMixin
    for t in itertools.chain(model.parameters(), model.buffers()):
        if id(t) not in seen and not isinstance(t, lazy):  # a lazy module never called
            seen.add(id(t))
            tensors.append((t, t.data, t.detach().clone()))
    slots, contents = {}, []
    for m in model.modules():
        # a ScriptModule keeps its parameters and buffers in torch's own containers
        slots[m] = {
            where: dict(getattr(m, where))
            for where in ("__dict__", "_buffers", "_parameters")
            if isinstance(getattr(m, where), dict)
        }
        for key, v in m.__dict__.items():
            if key not in _INTERNAL and type(v) in (list, dict, set) and len(v) <= _CONTENTS_UP_TO:
                contents.append((v, type(v)(v)))
    return State(tensors, slots, contents)


def _restore(state: State) -> None:
    """Put the model back into `state`, in place (the objects the model holds stay)."""
    for t, data, copy in state.tensors:
        if t.data.data_ptr() != data.data_ptr() or t.data.shape != data.shape:
            t.data = data  # `param.data = ...` in the forward
        with torch.no_grad():
            t.data.copy_(copy)
    for m, before in state.slots.items():
        for where, old in before.items():
            now = m.__dict__ if where == "__dict__" else getattr(m, where)
            for key in list(now):
                if key not in old:
                    del now[key]
                elif now[key] is not old[key]:
                    now[key] = old[key]
            for key in old.keys() - now.keys():
                now[key] = old[key]
    for container, copy in state.contents:
        if isinstance(container, list):
            container[:] = copy
        else:
            container.clear()
            container.update(copy)


def _run(
    model: nn.Module, probe: torch.Tensor, claims, steps, reference=None, keep=False, state=None
) -> tuple[_Watch, Any]:
    from .record import input_field

    if state is not None:  # every check forward starts where the analysis's own run started
        _restore(state)
    watch = _Watch(model, claims, steps, reference, keep)
    watch.batch = probe.shape[0]
    watch.set_field(probe, input_field(tuple(probe.shape[2:])), None)
    with watch:
        result = model(probe)
    return watch, result


class _Unchecked(Exception):
    """The check cannot say anything (a random op, a forward that fails)."""


def crosscheck(model: nn.Module, rec: Record) -> tuple[dict[str, str], str]:
    """Contradicted rows and why ({row name or OUTPUT: note}), and a note on the check
    itself where it could not run as planned ("" when it did). Each forward starts from
    `rec.before` where the record has it (the state before the analysis's run). Leaves the
    model's parameters, buffers, module attributes and the global random state as they
    were when called."""
    probe = rec.probe
    if probe.dtype in HALF:
        return {}, HALF_NOTE
    spatial = tuple(probe.shape[2:])
    steps = {s.name: s for s in rec.steps}
    claims = {n: c for n, c in ((s.name, claim_of(s.field)) for s in rec.steps) if c is not None}
    out_claim = claim_of(rec.output_field)
    if out_claim is not None:
        claims[OUTPUT] = out_claim
    last = next((claims[s.name] for s in reversed(rec.steps) if s.name in claims), None)
    drawn = out_claim or last
    found = patterns(spatial, drawn.grid if drawn is not None and drawn.flat else drawn)
    if not claims or not found:
        return {}, ""
    masks = torch.stack([p.mask for p in found])  # (P, *spatial)
    gen = torch.Generator().manual_seed(1)
    signs = torch.randint(0, 2, (len(found), probe.shape[1], *spatial), generator=gen) * 2 - 1
    delta = AMPLITUDE * signs * masks.unsqueeze(1)
    perturbed = probe + delta.to(device=probe.device, dtype=probe.dtype)  # (P, C, *spatial)
    saved = _state(model)  # as the analysis's run left it: how the model is left
    start = getattr(rec, "before", None) or saved
    devices = [probe.device] if probe.device.type == "cuda" else []
    how = ""
    quiet = io.StringIO()  # the model's own prints were shown by the analysis's run
    try:
        with (
            torch.random.fork_rng(devices=devices),
            torch.no_grad(),
            contextlib.redirect_stdout(quiet),
            contextlib.redirect_stderr(quiet),
        ):
            moved = _batched(model, probe, perturbed, claims, steps, rec, start)
            if moved is None:
                how = (
                    "perturbation check: each pattern ran on its own (batch elements interact "
                    "or the model does not run on a batch)"
                )
                moved = _one_by_one(model, probe, perturbed, claims, steps, start)
            laid = {n: c for n, c in claims.items() if c.layout is not None and n not in moved}
            if laid:  # windows·B in dim 0: one image per forward, these rows only
                moved.update(_laid_only(model, probe, perturbed, found, laid, steps, start))
    except _Unchecked as exc:
        return {}, f"unchecked: {exc}"
    except Exception as exc:  # noqa: BLE001 - the check must never break an analysis
        return {}, f"unchecked: the perturbation check's forward raised {type(exc).__name__}"
    finally:
        _restore(saved)
    integral = masks.to(torch.long)
    for a in range(len(spatial)):
        integral = torch.nn.functional.pad(integral.cumsum(a + 1), _pad(a, len(spatial)))
    bad: dict[str, str] = {}
    for name, m in moved.items():
        claims[name] = _longer(claims[name], m.shape[1])
        hit = m.cpu() & _untouched(claims[name], integral)
        if bool(hit.any()):
            k, *unit = (int(i) for i in torch.nonzero(hit)[0])
            bad[name] = (
                f"{_unit_name(claims[name], unit)} changes when {found[k].says}: "
                "a path rfcalc did not see (perturbation check)"
            )
    return bad, how


def _longer(claim: Claim, n: int) -> Claim:
    """A token claim over `n` elements: those behind the claimed ones claim nothing (a
    layout that lost track of a token put in front counts the map's tokens only)."""
    extra = n - claim.size[0] if claim.flat else 0
    if extra <= 0:
        return claim
    lo = tuple(torch.cat([t, torch.zeros(extra, dtype=t.dtype)]) for t in claim.lo)
    hi = tuple(torch.cat([t, torch.full((extra,), -1, dtype=t.dtype)]) for t in claim.hi)
    where = torch.cat([claim.where, torch.full((extra, claim.where.shape[1]), -1)])
    return Claim(claim.dims, lo, hi, (n,), True, claim.grid, where)


def _unit_name(claim: Claim, unit: list[int]) -> str:
    """ "unit (0, 11)" for a map; "token 5 (unit (1, 2))" for tokens ("token 0 (no position of
    the map)" for a class token)."""
    if not claim.flat:
        return f"unit {tuple(unit)}"
    place = tuple(int(i) for i in claim.where[unit[0]])
    return f"token {unit[0]} " + ("(no position of the map)" if place[0] < 0 else f"(unit {place})")


def _pad(axis: int, n: int) -> tuple[int, ...]:
    """F.pad widths that put one zero before spatial `axis` of a (P, *spatial) tensor."""
    widths = [0] * (2 * n)
    widths[2 * (n - 1 - axis)] = 1
    return tuple(widths)


def _batched(
    model, probe, perturbed, claims, steps, rec, state=None
) -> Optional[dict[str, torch.Tensor]]:
    """The patterns in as few batches as BATCH_ELEMENTS allows, each after two copies of the
    probe: moved units per row, or None where batch elements are not independent (or the
    model runs on one image only)."""
    per = max(1, BATCH_ELEMENTS // probe.numel() - 2)
    parts: dict[str, list[torch.Tensor]] = {}
    chunks = [perturbed[i : i + per] for i in range(0, perturbed.shape[0], per)]
    # the pattern that changes most also runs on its own, once (see `_one_batch`)
    densest = int((perturbed - probe).abs().flatten(1).sum(1).argmax())
    for c, chunk in enumerate(chunks):
        alone = densest - c * per if c == densest // per else None
        moved = _one_batch(model, probe, chunk, claims, steps, rec, state, alone)
        if moved is None:
            return None
        for name, m in moved.items():
            parts.setdefault(name, []).append(m)
    return {n: torch.cat(ms) for n, ms in parts.items() if len(ms) == len(chunks)}


def _one_batch(
    model, probe, perturbed, claims, steps, rec, state=None, alone: Optional[int] = None
) -> Optional[dict[str, torch.Tensor]]:
    batch = torch.cat([probe, probe, perturbed])
    try:
        watch, result = _run(model, batch, claims, steps, state=state)
    except Exception:  # noqa: BLE001 - a model that only runs on one image
        return None
    outs, first = list(_tensors(result)), list(_tensors(rec.result))
    if not outs or not first or outs[0].shape[0] != batch.shape[0]:
        return None
    if OUTPUT in claims:
        m = _moved(outs[0][1:], outs[0][:1], claims[OUTPUT])
        if m is not None:
            watch.moved[OUTPUT] = m
    if any(bool(m[0].any()) for m in watch.moved.values()) or not _same(outs[0][1:2], outs[0][:1]):
        # the two copies of the probe differ: a random op
        raise _Unchecked("the forward is not deterministic (one input, two outputs)")
    # element 0 against the single-image run: a model mixing the batch differs here
    if not _same(outs[0][:1], first[0]):
        return None
    # a value read from one element (`float(x[0].mean())`, the batch-of-one idiom) is the
    # probe's in every element, so nothing would move: the pattern that changes most
    # (`alone`, in this chunk), run on its own, must give what its element of the batch gave
    if alone is None:
        return {name: m[1:] for name, m in watch.moved.items()}
    try:
        _, ran = _run(model, perturbed[alone : alone + 1], {}, steps, state=state)
    except Exception:  # noqa: BLE001 - ran on a batch, not on one image: not comparable
        return None
    single = next(iter(_tensors(ran)), None)
    if single is None or not _same(outs[0][2 + alone : 3 + alone], single):
        return None
    return {name: m[1:] for name, m in watch.moved.items()}


def _laid_only(model, probe, perturbed, found, claims, steps, start) -> dict[str, torch.Tensor]:
    """Rows inside window attention, one image per forward: the single pixels and the
    outsides only. Each such forward costs a whole model's pass (Swin-T at 224²: seconds
    each), so the sparse sets, aimed at local paths the batched check sees cheaply, are left
    out here; their entries say "not moved" (untested), never "moved"."""
    keep = [k for k, p in enumerate(found) if not p.sparse]
    part = _one_by_one(model, probe, perturbed[keep], claims, steps, start)
    moved = {}
    for name, m in part.items():
        full = torch.zeros((len(found), *m.shape[1:]), dtype=torch.bool, device=m.device)
        full[keep] = m
        moved[name] = full
    return moved


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if not a.is_floating_point():
        return bool(torch.equal(a, b))
    tol = TOLERANCE_ULPS * torch.finfo(a.dtype).eps
    a, b = a.double(), b.double()
    return bool(((a - b).abs() <= tol * (b.abs() + b.abs().mean())).all())


def _one_by_one(model, probe, perturbed, claims, steps, state=None) -> dict[str, torch.Tensor]:
    """Each pattern in a forward pass of its own, against the probe's own pass."""
    ref_watch, ref_result = _run(model, probe, claims, steps, keep=True, state=state)
    reference = ref_watch.kept
    ref_out = next(iter(_tensors(ref_result)), None)
    ref_out = None if ref_out is None else ref_out.detach().clone()
    moved: dict[str, list[torch.Tensor]] = {}
    for k in range(perturbed.shape[0]):
        watch, result = _run(model, perturbed[k : k + 1], claims, steps, reference, state=state)
        out = next(iter(_tensors(result)), None)
        if OUTPUT in claims and out is not None and ref_out is not None:
            m = _moved(out, ref_out, claims[OUTPUT])
            if m is not None:
                watch.moved[OUTPUT] = m
        for name, m in watch.moved.items():
            moved.setdefault(name, []).append(m)
    return {n: torch.cat(ms) for n, ms in moved.items() if len(ms) == perturbed.shape[0]}


__all__ = ["crosscheck", "capture", "claim_of", "patterns", "AMPLITUDE", "TOLERANCE_ULPS"]
