"""The assignment's Net (`examples/s9_net.py`) as a spec, and the lookup of presets by name."""

from __future__ import annotations

from .spec import DWS, PLAIN, ConvUnit, NetSpec, SpecError, Stage

DROPOUT = 0.05
S9_WIDTHS = (23, 32, 63, 93)
S9_DILATIONS = (1, 2, 4, 8)


def dws(dropout: float = DROPOUT) -> ConvUnit:
    """The block unit of the assignment: depthwise-separable 3x3, padded, with a skip."""
    return ConvUnit(kind=DWS, padding=1, skip=True, dropout=dropout)


def s9() -> NetSpec:
    """The assignment's Net: 190,509 parameters, receptive field 48 on 3x32x32."""
    stem = ConvUnit(kind=PLAIN, padding=1, dropout=DROPOUT)  # 3 -> 23 channels, no skip
    first = (stem, dws())
    stages = tuple(
        Stage(
            units=first if i == 0 else (dws(), dws()),
            transition=ConvUnit(kind=PLAIN, dilation=d, padding=0, dropout=DROPOUT),
        )
        for i, d in enumerate(S9_DILATIONS)
    )
    return NetSpec(name="s9", stages=stages, widths=S9_WIDTHS)


PRESETS = {"s9": s9}


def preset(name: str) -> NetSpec:
    """The preset called `name`; SpecError listing the known ones otherwise."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise SpecError(f"unknown preset {name!r} (known: {', '.join(sorted(PRESETS))})") from None
