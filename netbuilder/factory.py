"""`netbuilder.create(name, budget=...)`: one face for every net netbuilder can name (a preset,
a variant of the family, a spec file), in the spirit of timm's `create_model`. The command
line resolves its NAME here too, so a name means the same net in Python and in `netbuilder`.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Optional, Union

from .presets import PRESETS, preset
from .spec import NetSpec, SpecError, from_dict
from .variants import lookup

if TYPE_CHECKING:
    from .build import Net

__all__ = ["DEFAULT_BUDGET", "MAX_BUDGET", "check_budget", "create", "resolve", "spec_for"]

DEFAULT_BUDGET = 200_000  # a variant's budget when none is given
MAX_BUDGET = 20_000_000  # every variant is built and run once on the CPU: keep that sane


def resolve(name: str, budget: Optional[int]) -> tuple[NetSpec, Optional[int]]:
    """The spec a NAME means, and the budget it is widened to (None: as written). A preset
    and a spec file keep their widths unless a budget is given; a variant gets
    DEFAULT_BUDGET."""
    if name.endswith(".json"):
        try:
            with open(name, encoding="utf-8") as fh:
                spec = from_dict(json.load(fh))
        except OSError as exc:
            raise SpecError(f"{name}: cannot read: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise SpecError(f"{name}: not JSON: {exc}") from None
    elif name in PRESETS:
        spec = preset(name)
    else:
        spec = lookup(name)
        budget = DEFAULT_BUDGET if budget is None else budget
    return spec, budget


def check_budget(budget: Optional[int]) -> Optional[int]:
    """`budget` if it is None or 1..MAX_BUDGET parameters; SpecError otherwise."""
    if budget is not None and not 1 <= budget <= MAX_BUDGET:
        raise SpecError(f"--budget must be between 1 and {MAX_BUDGET:,} parameters, not {budget:,}")
    return budget


def spec_for(name: Union[str, os.PathLike, NetSpec], budget: Optional[int] = None) -> NetSpec:
    """The structure `create` builds: `name` resolved and, with a budget, widened to it."""
    if isinstance(name, NetSpec):
        spec, budget = name, budget
    else:
        spec, budget = resolve(os.fspath(name), check_budget(budget))
    if budget is None:
        return spec
    from .budget import solve  # sympy: only when a budget is solved

    return solve(spec, check_budget(budget)).spec


def create(
    name: Union[str, os.PathLike, NetSpec],
    budget: Optional[int] = None,
    input_shape: Optional[tuple[int, ...]] = None,
) -> Net:
    """A fresh nn.Module for a preset (`"s9"`), a variant (`"dws-dilated-skip-x2"`, widened
    to `budget`, default DEFAULT_BUDGET parameters), a spec file (`"net.json"`) or a NetSpec.

    With `budget` the widths are the widest at most that many parameters; without one a preset
    or spec keeps its own. `input_shape` (C, H, W) checks the geometry too. SpecError (a
    ValueError) says what is wrong with a name, a budget or a spec.
    """
    from .build import build  # torch: only when a net is built

    return build(spec_for(name, budget), input_shape)
