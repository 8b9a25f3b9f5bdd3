"""The design space `rfsearch` samples: netbuilder's axes, a budget, a receptive-field floor.

A space is the product of its axes (conv kind, transition, skip, units per block, the width
ratios, the dilation schedule, the budget, and any training settings given as lists). Every
point is one structure; netbuilder solves its widths to the budget and rfcalc measures its
field. `sample` shuffles the points with one seeded generator and keeps the first `samples`
that can be built within the budget and see at least `min_rf` pixels: the same space and seed
give the same candidates, in the same order, on any machine.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from dataclasses import dataclass, field, fields, replace
from typing import Any, Optional

from netbuilder.presets import S9_WIDTHS
from netbuilder.spec import KINDS, NetSpec, SpecError, Stage
from netbuilder.variants import DEPTHS, TRANSITIONS, structure, variant_name
from rfkit_base.commandline import UserError

# The design axes, each with the values a space takes when it leaves the axis out.
DESIGN_AXES: dict[str, tuple] = {
    "conv": KINDS,
    "transition": TRANSITIONS,
    "skip": (True, False),
    "depth": DEPTHS,
    "widths": (S9_WIDTHS,),
    "dilations": (None,),  # None: netbuilder's schedule, 2**i at transition i
    "budget": (200_000,),
}
SPACE_KEYS = (
    "name",
    "seed",
    "samples",
    "min_rf",
    "input",
    "space",
    "train",
    "train_space",
    "asha",
    "data",
    "resources",
    "out",
    "result",
)


@dataclass(frozen=True)
class Candidate:
    """One sampled point: its design, its training settings, and netbuilder's measures."""

    key: str  # a folder-safe name, unique in the space
    design: dict  # the axes' values (widths and dilations as lists)
    train: dict  # the training settings of this point (the space's train_space values)
    spec: NetSpec  # solved to the budget
    params: int
    macs: int
    rf: int  # the smaller of the output field's axes

    def record(self) -> dict:
        """JSON-ready: design, training settings, widths and the measures."""
        return {
            "key": self.key,
            **self.design,
            "train": self.train,
            "solved_widths": list(self.spec.widths),
            "params": self.params,
            "macs": self.macs,
            "rf": self.rf,
        }


@dataclass(frozen=True)
class Space:
    """A parsed SPACE.json; `points()` lists its designs in a fixed order."""

    name: str = "search"
    seed: int = 0
    samples: int = 8
    min_rf: float = 0
    input: tuple[int, ...] = (3, 32, 32)
    space: dict = field(default_factory=dict)  # axis -> list of values
    train: dict = field(default_factory=dict)  # TrainConfig fields shared by every trial
    train_space: dict = field(default_factory=dict)  # TrainConfig field -> list of values
    asha: dict = field(default_factory=dict)  # grace_period, reduction_factor
    data: dict = field(default_factory=dict)  # data_dir, data_cache, limit_train, validation
    resources: dict = field(default_factory=dict)  # cpus_per_trial, gpus_per_trial, concurrent
    out: str = "runs/search"
    result: Optional[str] = None

    def axis(self, name: str) -> tuple:
        return tuple(self.space.get(name, DESIGN_AXES[name]))

    def points(self) -> list[tuple[dict, dict]]:
        """Every (design, training settings) of the product, duplicates removed: the dilation
        schedule is an axis of dilated transitions only."""
        design_names = list(DESIGN_AXES)
        train_names = sorted(self.train_space)
        seen, out = set(), []
        for values in itertools.product(
            *(self.axis(n) for n in design_names), *(self.train_space[n] for n in train_names)
        ):
            design = dict(zip(design_names, values[: len(design_names)]))
            design["widths"] = list(design["widths"])
            if design["transition"] == "dilated":
                d = design["dilations"]
                n = len(design["widths"])
                design["dilations"] = list(d) if d is not None else [2**i for i in range(n)]
            else:
                design["dilations"] = None
            train = dict(zip(train_names, values[len(design_names) :]))
            ident = json.dumps([design, train], sort_keys=True)
            if ident not in seen:
                seen.add(ident)
                out.append((design, train))
        return out

    def digest(self) -> str:
        """What makes two runs of the space the same search (the folders and the result file
        may move)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for k in ("out", "result", "resources"):
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _bad(what: str, why: str) -> UserError:
    return UserError(f"space: {what}: {why}")


def _values(name: str, values: Any) -> list:
    if not isinstance(values, list) or not values:
        raise _bad(f"space.{name}", "expected a non-empty list of values")
    return values


def _check_axis(name: str, values: list) -> None:
    if name in ("conv", "transition"):
        allowed = KINDS if name == "conv" else TRANSITIONS
        for v in values:
            if v not in allowed:
                raise _bad(f"space.{name}", f"{v!r} is not one of {', '.join(allowed)}")
    elif name == "skip":
        if any(not isinstance(v, bool) for v in values):
            raise _bad("space.skip", "expected true and/or false")
    elif name in ("depth", "budget"):
        if any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
            raise _bad(f"space.{name}", "expected positive integers")
    else:  # widths, dilations: lists of positive integers, one per stage
        for v in values:
            if (
                not isinstance(v, list)
                or not v
                or any(not isinstance(x, int) or isinstance(x, bool) or x < 1 for x in v)
            ):
                raise _bad(f"space.{name}", f"{v!r} is not a list of positive integers")


def parse_space(data: Any) -> Space:
    """A Space from SPACE.json's content; UserError naming the first thing wrong."""
    from .config import TrainConfig

    if not isinstance(data, dict):
        raise UserError("space: expected a JSON object")
    unknown = sorted(set(data) - set(SPACE_KEYS))
    if unknown:
        raise _bad(", ".join(unknown), f"unknown key (known: {', '.join(SPACE_KEYS)})")
    space = data.get("space", {})
    if not isinstance(space, dict):
        raise _bad("space", "expected an object of axis -> list of values")
    for name, values in space.items():
        if name not in DESIGN_AXES:
            raise _bad(f"space.{name}", f"unknown axis (known: {', '.join(DESIGN_AXES)})")
        _check_axis(name, _values(name, values))
    stages = {len(w) for w in space.get("widths", [S9_WIDTHS])}
    for d in space.get("dilations", []):
        if stages != {len(d)}:
            raise _bad(
                "space.dilations", f"{d!r}: each schedule needs one dilation per stage (widths)"
            )
    train_fields = {f.name for f in fields(TrainConfig)} - {"aug", "seed"}
    for what in ("train", "train_space"):
        block = data.get(what, {})
        if not isinstance(block, dict):
            raise _bad(what, "expected an object of TrainConfig settings")
        for k, v in block.items():
            if what == "train" and k in ("seed", "aug"):
                continue
            if k not in train_fields:
                raise _bad(f"{what}.{k}", "not a training setting (rftrain's flags, underscored)")
            if what == "train_space":
                _values(f"train_space.{k}", v)
    train_config(data.get("train", {}), {})  # every setting checked before any trial starts
    for what in ("asha", "data", "resources"):
        if not isinstance(data.get(what, {}), dict):
            raise _bad(what, "expected an object")
    for what, low in (("samples", 1), ("seed", 0)):
        v = data.get(what, getattr(Space, what))
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise _bad(what, f"expected an integer >= {low}, not {v!r}")
    min_rf = data.get("min_rf", 0)
    if not isinstance(min_rf, (int, float)) or isinstance(min_rf, bool) or min_rf < 0:
        raise _bad("min_rf", f"expected a number >= 0, not {min_rf!r}")
    shape = data.get("input", [3, 32, 32])
    if not isinstance(shape, list) or len(shape) != 3 or any(not isinstance(x, int) for x in shape):
        raise _bad("input", "expected [C, H, W]")
    return Space(
        name=str(data.get("name", "search")),
        seed=data.get("seed", 0),
        samples=data.get("samples", Space.samples),
        min_rf=min_rf,
        input=tuple(shape),
        space=space,
        train=data.get("train", {}),
        train_space=data.get("train_space", {}),
        asha=data.get("asha", {}),
        data=data.get("data", {}),
        resources=data.get("resources", {}),
        out=str(data.get("out", Space.out)),
        result=data.get("result"),
    )


def train_config(common: dict, own: dict):
    """The TrainConfig of a trial: the space's `train` (its `aug` an AugConfig's fields),
    then the trial's own settings; UserError if it cannot run."""
    from .augment import AugConfig
    from .config import TrainConfig

    settings = {**common, **own}
    try:
        aug = AugConfig(**settings.pop("aug", {}))
        cfg = TrainConfig(**settings, aug=aug)
        cfg.check()
    except TypeError as exc:
        raise _bad("train", str(exc)) from None
    except ValueError as exc:
        raise _bad("train", str(exc)) from None
    return cfg


def design_spec(design: dict) -> NetSpec:
    """The structure of a design at its width ratios (netbuilder's variant, with the space's
    widths and dilation schedule)."""
    from netbuilder.presets import s9

    widths = tuple(design["widths"])
    stem_stage = s9().stages[0]
    base = NetSpec("base", (stem_stage,) * len(widths), widths)
    conv, trans, skip, depth = (design[k] for k in ("conv", "transition", "skip", "depth"))
    spec = structure(base, conv, trans, skip, depth)
    if design["dilations"] is not None:
        stages = tuple(
            Stage(st.units, replace(st.transition, dilation=d, padding=0))
            for st, d in zip(spec.stages, design["dilations"])
        )
        spec = NetSpec(spec.name, stages, spec.widths, spec.in_channels, spec.num_classes)
    return spec


def design_key(design: dict, train: dict) -> str:
    """A short, folder-safe name: the variant's name, then what sets it apart."""
    name = variant_name(design["conv"], design["transition"], design["skip"], design["depth"])
    parts = [name, "w" + "-".join(map(str, design["widths"]))]
    if design["dilations"] is not None:
        parts.append("d" + "-".join(map(str, design["dilations"])))
    parts.append(f"b{design['budget']}")
    parts += [f"{k}{v}" for k, v in sorted(train.items())]
    return "_".join(str(p).replace("/", "-").replace(" ", "") for p in parts)


def measure_point(design: dict, train: dict, input_shape: tuple[int, ...]) -> Candidate:
    """Solve the design's widths to its budget and measure it; SpecError if it cannot be
    built (BudgetError: no width fits)."""
    from netbuilder.budget import evaluate, macs_poly, solve
    from netbuilder.build import Net
    from netbuilder.spec import check
    from netbuilder.variants import receptive_field

    spec = design_spec(design)
    check(spec, input_shape)
    sized = solve(spec, design["budget"]).spec
    model = Net(sized).eval()
    rf, _ = receptive_field(model, input_shape)
    return Candidate(
        key=design_key(design, train),
        design=design,
        train=train,
        spec=sized,
        params=sum(p.numel() for p in model.parameters()),
        macs=evaluate(macs_poly(sized, input_shape), sized.widths),
        rf=int(min(rf)) if rf is not None else 0,
    )


@dataclass
class Sample:
    """The sampled candidates, in trial order, and what the sampler passed over."""

    candidates: list[Candidate]
    points: int  # the size of the space
    rejected: dict[str, int]  # reason -> count, among the points looked at

    def record(self) -> dict:
        return {
            "points_in_space": self.points,
            "looked_at": len(self.candidates) + sum(self.rejected.values()),
            "rejected": self.rejected,
            "candidates": [c.record() for c in self.candidates],
        }


def sample(space: Space) -> Sample:
    """The first `space.samples` buildable points of one seeded shuffle that reach
    `space.min_rf`; UserError if none does."""
    import torch

    from netbuilder.budget import BudgetError

    points = space.points()
    order = list(range(len(points)))
    random.Random(space.seed).shuffle(order)
    out: list[Candidate] = []
    rejected = {"over budget": 0, "cannot be built": 0, "field below min_rf": 0}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one-image probes: threads cost more than they save
    try:
        for i in order:
            if len(out) == space.samples:
                break
            design, train = points[i]
            try:
                c = measure_point(design, train, space.input)
            except BudgetError:
                rejected["over budget"] += 1
                continue
            except SpecError:
                rejected["cannot be built"] += 1
                continue
            if c.rf < space.min_rf:
                rejected["field below min_rf"] += 1
                continue
            train_config(space.train, train)  # a training setting that cannot run: say so now
            out.append(c)
    finally:
        torch.set_num_threads(threads)
    if not out:
        why = ", ".join(f"{k}: {v}" for k, v in rejected.items())
        raise UserError(
            f"space: none of its {len(points)} points can be built within its budget with a "
            f"field of at least {space.min_rf:g} ({why})"
        )
    return Sample(out, len(points), rejected)
