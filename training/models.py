"""The model to train: a TARGET resolved by rfcalc's loader, or a netbuilder preset by name."""
from __future__ import annotations

from typing import Optional

import torch.nn as nn

from .fsutil import UserError


def load_model(target: Optional[str] = None, preset: Optional[str] = None) -> nn.Module:
    """Build a fresh model from `model.py`, `model.py:Name`, `package.module:attr`, or a preset.

    One way to do each thing: targets go through `rfcalc.load` (as `rfcalc table` does) and
    presets through `netbuilder`; both are imported only when asked for.
    """
    if (target is None) == (preset is None):
        raise UserError("give exactly one of --model TARGET or --preset NAME")
    if target is not None:
        from rfcalc.load import TargetError, load_target
        try:
            return load_target(target)
        except TargetError as exc:
            raise UserError(str(exc)) from None
    from netbuilder.build import build
    from netbuilder.presets import preset as lookup
    from netbuilder.spec import SpecError
    try:
        return build(lookup(preset))
    except SpecError as exc:
        raise UserError(str(exc)) from None
