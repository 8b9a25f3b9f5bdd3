"""`rfcalc.summary(model, input_size=(1, 3, 32, 32))`: the analysis in torchinfo's terms.

torchinfo users type the input with its batch (`input_size=(1, 3, H, W)` or
`input_data=tensor`); rfcalc's own `analyze` takes it without (`(3, H, W)`). Both are taken
here: a batch dimension is recognised by counting the spatial axes of the model's first
convolution, and said once, on the table's input line. Fields and MACs do not depend on the
batch and are given per image. The result is the Analysis itself, shown as its table
(`repr`, `print`, a notebook), with the depth, columns and compactness asked for.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Optional, Sequence

from .analysis import Analysis, analyze
from .geometry import RFError

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

__all__ = ["summary", "split_batch"]

_AXES = {1: "L", 2: "H, W", 3: "D, H, W"}


def _conv_axes(model: "nn.Module") -> Optional[int]:
    """Spatial axes of the model's first convolution (None: it has none)."""
    import torch.nn as nn

    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            return len(m.kernel_size)
    return None


def split_batch(model: "nn.Module", size: Sequence[int]) -> tuple[Optional[int], tuple[int, ...]]:
    """(batch or None, (C, *spatial)) from a torchinfo-style input size.

    With a convolution, its spatial axes say how long (C, *spatial) is, so one more dimension
    is the batch. Without one, 4 or 5 dimensions are read as batched (N, C, H, W) and
    (N, C, D, H, W), fewer as unbatched. RFError for anything that is not a shape."""
    try:
        dims = tuple(int(n) for n in size)
    except (TypeError, ValueError):
        raise RFError(
            f"input_size {size!r} must be a tuple of integers such as (1, 3, 32, 32); "
            "for several inputs, analyse the model on its first"
        ) from None
    axes = _conv_axes(model)
    batched = len(dims) == axes + 2 if axes is not None else len(dims) >= 4
    if axes is not None and len(dims) not in (axes + 1, axes + 2):
        raise RFError(
            f"input_size {dims} does not fit the model's first convolution "
            f"({axes}-d): give (C, {_AXES.get(axes, '...')}), or with the batch first"
        )
    return (dims[0], dims[1:]) if batched else (None, dims)


def summary(
    model: "nn.Module",
    input_size: Optional[Sequence[int]] = None,
    *,
    input_data: Optional["torch.Tensor"] = None,
    depth: Optional[int] = None,
    columns: Optional[Sequence[str]] = None,
    compact: bool = False,
    **analyze_options: Any,
) -> Analysis:
    """The receptive-field table of `model`, called as torchinfo.summary is.

    `input_size` (N, C, H, W) or (C, H, W) (C, L and C, D, H, W alike), or `input_data` a
    batch whose shape is used (rfcalc probes one image of its own: fields are shape facts);
    `depth` folds rows nested deeper into their modules (None: fitted to 120 columns in
    text, 0: every row); `columns` a subset of rfcalc.render.layers.TABLE_COLUMNS;
    `compact` leaves out rows that change neither size nor field. Other keywords go to
    `analyze` (`real=`). Returns the Analysis; its repr is the table.
    """
    from .render.layers import check_columns

    if (input_size is None) == (input_data is None):
        raise RFError("give one of input_size=(1, 3, H, W) or input_data=a batch tensor")
    if input_data is not None:
        if not hasattr(input_data, "shape"):
            raise RFError(
                f"input_data must be a tensor, not a {type(input_data).__name__}; "
                "for several inputs, analyse the model on its first"
            )
        batch, shape = split_batch(model, tuple(input_data.shape))
    else:
        batch, shape = split_batch(model, input_size)
    if columns is not None:
        check_columns(columns)  # a typo is reported now, not at the first print
    if depth is not None and depth < 0:
        raise RFError(f"depth must be 0 (every row) or more, not {depth}")
    try:
        analysis = analyze(model, shape, **analyze_options)
    except RFError as exc:
        from .hints import hint

        extra = hint(str(exc), shape, "input_size" if input_data is None else "input_data", batch)
        if not extra:
            raise
        raise RFError(f"{exc}; {extra}") from exc
    display = {"depth": depth, "columns": columns, "compact": compact}
    return replace(analysis, batch=batch, display=display, as_table=True)
