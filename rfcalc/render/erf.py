"""ERF results as text, JSON and a picture (a heatmap with the theoretical box drawn on it)."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from rfcalc.render.cells import axes, rf_cell

if TYPE_CHECKING:  # rfcalc.erf imports torch; the CLI reads FORMATS here before it needs it
    from rfcalc.erf import ERF

__all__ = ["FORMATS", "render", "to_json", "figure_bytes", "PICTURE_FORMATS"]

FORMATS = ("text", "json")
PICTURE_FORMATS = ("png", "svg", "pdf")
SCALES = ("linear", "log")


def _spans(spans) -> str:
    return " × ".join(f"{lo}..{hi}" for lo, hi in spans) if spans else "-"


def _floats(values: Sequence[float], digits: int = 2) -> str:
    if not values:
        return "-"
    if all(abs(v - values[0]) < 10**-digits / 2 for v in values):
        return f"{values[0]:.{digits}f}"
    return "×".join(f"{v:.{digits}f}" for v in values)


def _label(e: ERF) -> str:
    return e.weights or "as initialised"


def _lines(e: ERF) -> list[tuple[str, str]]:
    row = e.row
    rows = [
        ("weights", _label(e)),
        ("theoretical rf", rf_cell(row)),
        (
            "jump, start",
            f"{axes(row.jump) if row.jump else '?'}, {axes(row.start) if row.start else '?'}",
        ),
        ("theoretical box", _spans(e.box)),
        ("box in the image", _spans(e.clipped_box)),
        ("ERF extent", _spans(e.extent)),
        ("share inside box", "-" if e.inside is None else f"{100 * e.inside:.1f} %"),
    ]
    for sq in e.squares:
        of_rf = f"{_floats(sq.of_rf)} of rf, " if sq.of_rf else ""
        rows.append(
            (
                f"{sq.threshold} % square",
                f"{sq.side} px ({of_rf}"
                f"{_floats(sq.of_input)} of input, area ratio {sq.area_ratio:.3f})",
            )
        )
    rows.append(("Gaussian σ", f"{_floats(e.sigma)} px"))
    return rows


def render(results: Sequence[ERF], fmt: str = "text") -> str:
    """One ERF, or several side by side (--compare), as a text table or JSON."""
    if fmt == "json":
        return to_json(results)
    first = results[0]
    unit = ",".join(map(str, first.unit))
    size = "×".join(map(str, first.row.size))
    head = [
        f"ERF of {first.row.name} ({first.row.op}), unit {unit} of its {size} map "
        "(the centre), |∂ unit / ∂ input| summed over channels, normalised to sum 1",
        f"Inputs: {first.inputs}",
    ]
    if first.note:
        head.append(f"Note: {first.note}")
    table = [_lines(e) for e in results]
    keys = [k for k, _ in table[0]]
    widths = [max(len(k) for k in keys)] + [max(len(v) for _, v in t) for t in table]
    out = list(head) + [""]
    for i, key in enumerate(keys):
        cells = [key.ljust(widths[0])] + [t[i][1].ljust(w) for t, w in zip(table, widths[1:])]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out) + "\n"


def _number(v):
    from fractions import Fraction

    f = Fraction(v)
    return int(f) if f.denominator == 1 else float(f)


def as_dict(e: ERF, with_map: bool = True) -> dict:
    row = e.row
    d = {
        "row": row.name,
        "op": row.op,
        "status": row.status,
        "unit": list(e.unit),
        "size": list(row.size),
        "inputs": e.inputs,
        "n": e.n,
        "weights": e.weights or None,
        "note": e.note or None,
        "rf": [_number(v) for v in row.rf] or None,
        "jump": [_number(v) for v in row.jump] or None,
        "start": [_number(v) for v in row.start] or None,
        "centre": list(e.centre),
        "box": [list(s) for s in e.box] if e.box else None,
        "box_clipped": [list(s) for s in e.clipped_box] if e.box else None,
        "extent": [list(s) for s in e.extent] if e.extent else None,
        "inside": e.inside,
        "squares": {
            str(sq.threshold): {
                "side": sq.side,
                "of_rf": list(sq.of_rf) or None,
                "of_input": list(sq.of_input),
                "area_ratio": sq.area_ratio,
            }
            for sq in e.squares
        },
        "sigma": list(e.sigma),
    }
    if with_map:
        d["map"] = np.round(e.map, 10).tolist()
    return d


def to_json(results: Sequence[ERF]) -> str:
    """`{"erf": {...}}` for one result, `{"compare": [{...}, {...}]}` for several; each with
    its numbers and the normalised map (list of rows)."""
    items = [as_dict(e) for e in results]
    body = {"erf": items[0]} if len(items) == 1 else {"compare": items}
    return json.dumps(body, indent=1) + "\n"


def figure_bytes(
    results: Sequence[ERF],
    fmt: str = "png",
    scale: str = "linear",
    titles: Optional[Sequence[str]] = None,
) -> bytes:
    """The heatmap(s) with the theoretical box (dashed where it lies in the padding), one
    shared colour scale and a colour bar; as png/svg/pdf bytes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.patches import Rectangle

    maps = [e.map for e in results]
    if any(m.ndim != 2 for m in maps):
        raise ValueError("a picture needs a 2-D input; use --format text|json for this one")
    vmax = max(float(m.max()) for m in maps)
    if scale == "log":
        positive = [float(m[m > 0].min()) for m in maps if (m > 0).any()]
        vmin = max(min(positive), vmax * 1e-6)
        norm = LogNorm(vmin=vmin, vmax=vmax)
    else:
        norm = Normalize(vmin=0, vmax=vmax)
    n = len(results)
    fig, axs = plt.subplots(1, n, figsize=(4.2 * n + 0.8, 4.2), squeeze=False, layout="constrained")
    image = None
    for i, (e, ax) in enumerate(zip(results, axs[0])):
        h, w = e.map.shape
        shown = np.where(e.map > 0, e.map, np.nan) if scale == "log" else e.map
        image = ax.imshow(
            shown,
            cmap="magma",
            norm=norm,
            interpolation="nearest",
            extent=(-0.5, w - 0.5, h - 0.5, -0.5),
        )
        lo, hi = [-0.5, -0.5], [w - 0.5, h - 0.5]
        if e.box is not None:
            (y0, y1), (x0, x1) = e.box
            ax.add_patch(
                Rectangle(
                    (x0 - 0.5, y0 - 0.5),
                    x1 - x0 + 1,
                    y1 - y0 + 1,
                    fill=False,
                    edgecolor="#3ad",
                    linewidth=1.2,
                    linestyle="--",
                    label="theoretical field",
                )
            )
            (cy0, cy1), (cx0, cx1) = e.clipped_box
            ax.add_patch(
                Rectangle(
                    (cx0 - 0.5, cy0 - 0.5),
                    cx1 - cx0 + 1,
                    cy1 - cy0 + 1,
                    fill=False,
                    edgecolor="#3ad",
                    linewidth=2,
                )
            )
            lo = [min(lo[0], x0 - 1.5), min(lo[1], y0 - 1.5)]
            hi = [max(hi[0], x1 + 1.5), max(hi[1], y1 + 1.5)]
        ax.set_facecolor("#d8d8d8")  # outside the image: padding
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(hi[1], lo[1])
        title = titles[i] if titles else _label(e)
        inside = "" if e.inside is None else f", {100 * e.inside:.0f} % inside the box"
        ax.set_title(f"{title}\n{e.row.name}: rf {rf_cell(e.row)}{inside}", fontsize=9)
        ax.tick_params(labelsize=7)
    fig.colorbar(
        image, ax=list(axs[0]), shrink=0.85, label=f"share of the contribution ({scale} scale)"
    )
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=110)
    plt.close(fig)
    return buf.getvalue()
