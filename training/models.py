"""The model to train: a TARGET resolved by rfcalc's loader, or a netbuilder preset by name."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from rfkit_base.commandline import UserError


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


def _groups(channels: int, most: int) -> int:
    return max(g for g in range(1, min(most, channels) + 1) if channels % g == 0)


def convert_norm(model: nn.Module, norm: str, groups: int = 4) -> nn.Module:
    """Replace every BatchNorm2d by GroupNorm ('group': per layer the largest group count up
    to `groups` dividing its channels) or GroupNorm(1, C) ('layer': LayerNorm over C, H, W);
    'model' keeps the model as it is. Affine and eps carry over; the model is changed in place."""
    if norm == "model":
        return model
    for name, child in model.named_children():
        if isinstance(child, nn.BatchNorm2d):
            c = child.num_features
            setattr(
                model,
                name,
                nn.GroupNorm(
                    1 if norm == "layer" else _groups(c, groups),
                    c,
                    eps=child.eps,
                    affine=child.affine,
                ),
            )
        else:
            convert_norm(child, norm, groups)
    return model


def check_outputs(model: nn.Module, probe: torch.Tensor, classes: int) -> None:
    """UserError unless the model maps a probe batch to (N, classes) scores."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(probe)
    except Exception as exc:  # the user's model: any failure is theirs to read, in one line
        raise UserError(
            f"the model fails on a {tuple(probe.shape[1:])} image batch: "
            f"{type(exc).__name__}: {exc}".splitlines()[0]
        ) from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.shape != (len(probe), classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(
            f"the model outputs {shape} for a batch of {len(probe)} images; "
            f"expected ({len(probe)}, {classes}): one score per class"
        )
