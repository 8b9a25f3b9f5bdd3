"""What `rfsearch` makes of its trials: the Pareto fronts, a table and a figure.

A trial's row (`rows` of the result JSON) holds its cost (params, macs), its receptive field
`rf`, its accuracy `acc` and whether it `completed` every epoch. The front is computed among
the completed trials only: a trial ASHA stopped was measured after fewer epochs, and its
accuracy is not comparable with one trained to the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

COSTS = ("params", "macs")  # smaller is better
GAIN = "acc"  # larger is better


def dominates(a: dict, b: dict, costs: Sequence[str], gain: str = GAIN) -> bool:
    """Whether `a` is at least as good as `b` on every objective and better on one."""
    no_worse = a[gain] >= b[gain] and all(a[c] <= b[c] for c in costs)
    better = a[gain] > b[gain] or any(a[c] < b[c] for c in costs)
    return no_worse and better


def pareto_front(rows: Sequence[dict], costs: Sequence[str], gain: str = GAIN) -> list[int]:
    """Indices (in order) of the completed rows no other completed row dominates."""
    done = [i for i, r in enumerate(rows) if r.get("completed")]
    return [
        i for i in done if not any(dominates(rows[j], rows[i], costs, gain) for j in done if j != i)
    ]


def fronts(rows: Sequence[dict]) -> dict[str, list[int]]:
    """The front against each cost alone and against both: {"params": [...], "macs": [...],
    "params+macs": [...]} (row indices)."""
    out = {c: pareto_front(rows, (c,)) for c in COSTS}
    out["+".join(COSTS)] = pareto_front(rows, COSTS)
    return out


def _short(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"


def table(rows: Sequence[dict], front: dict[str, list[int]]) -> str:
    """A Markdown table, best accuracy first: the trial, its cost, field, epochs, accuracy,
    and on which fronts it lies (P: params, M: MACs)."""
    lines = [
        "| # | design | params | MACs | rf | ep. | acc. (%) | front |",
        "|--:|---|--:|--:|--:|--:|--:|:-:|",
    ]
    order = sorted(range(len(rows)), key=lambda i: (-rows[i]["acc"], i))
    for i in order:
        r = rows[i]
        mark = "".join(tag for tag, c in (("P", "params"), ("M", "macs")) if i in front[c])
        stopped = "" if r["completed"] else " (stopped)"
        lines.append(
            f"| {i + 1} | {r['label']} | {_short(r['params'])} | {_short(r['macs'])} | "
            f"{r['rf']} | {r['epochs']}{stopped} | {100 * r['acc']:.1f} | {mark} |"
        )
    return "\n".join(lines)


def plot(rows: Sequence[dict], front: dict[str, list[int]], title: str = ""):
    """Accuracy against params, MACs and receptive field; completed trials as dots, stopped
    ones as crosses, each cost's front joined by a line (the rf panel rings the trials on the
    joint front). Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2), sharey=True)
    joint = set(front["+".join(COSTS)])
    for ax, key, label in zip(
        axes, ("params", "macs", "rf"), ("parameters", "MACs per image", "receptive field")
    ):
        for done, marker in ((True, "o"), (False, "x")):
            pts = [r for r in rows if bool(r["completed"]) == done]
            ax.plot(
                [r[key] for r in pts],
                [100 * r["acc"] for r in pts],
                marker,
                color="C0" if done else "grey",
                alpha=0.8,
                label="trained to the end" if done else "stopped by ASHA",
            )
        if key in front:
            f = sorted(front[key], key=lambda i: rows[i][key])
            ax.step(
                [rows[i][key] for i in f],
                [100 * rows[i]["acc"] for i in f],
                "-",
                where="post",
                color="C3",
                label="Pareto front",
            )
        ring = [rows[i] for i in sorted(joint)]
        ax.plot(
            [r[key] for r in ring],
            [100 * r["acc"] for r in ring],
            "o",
            mfc="none",
            mec="C3",
            ms=10,
            label="on the joint front" if key == "rf" else None,
        )
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
        if key == "macs":
            ax.ticklabel_format(axis="x", style="sci", scilimits=(6, 6))
    axes[0].set_ylabel("accuracy (%)")
    handles = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=4, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def save_plot(
    rows: Sequence[dict], front: dict[str, list[int]], out: Path, title: str = ""
) -> list[Path]:
    """The figure as PNG and SVG in `out` (search.png, search.svg)."""
    import matplotlib.pyplot as plt

    fig = plot(rows, front, title)
    paths = [out / "search.png", out / "search.svg"]
    for p in paths:
        fig.savefig(p, dpi=120)
    plt.close(fig)
    return paths
