"""A LaTeX tabular (booktabs rules) with every cell escaped; caption, summary and notes as a
list below it."""

from __future__ import annotations

from rfcalc.render.cells import TIMES
from rfcalc.render.table import Table, cell_text

__all__ = ["write", "escape"]

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    TIMES: r"$\times$",
}


def escape(text: str) -> str:
    """Escape LaTeX's special characters (one pass, so replacements aren't re-escaped)."""
    return "".join(_SPECIAL.get(ch, ch) for ch in text)


def write(table: Table) -> str:
    """`\\begin{tabular}...\\end{tabular}` (needs \\usepackage{booktabs}), then an itemize."""
    cols = table.shown
    spec = "".join("r" if c.numeric else "l" for c in cols)
    out = [
        f"\\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(escape(c.name) for c in cols) + r" \\",
        r"\midrule",
    ]
    out += [
        " & ".join(escape(cell_text(r.cells[c.name])) for c in cols) + r" \\" for r in table.rows
    ]
    out += [r"\bottomrule", r"\end{tabular}"]
    items = [*table.caption, *table.summary, *table.notes]
    if items:
        out += [
            "",
            r"\begin{itemize}",
            *(f"\\item {escape(line)}" for line in items),
            r"\end{itemize}",
        ]
    return "\n".join(out) + "\n"
