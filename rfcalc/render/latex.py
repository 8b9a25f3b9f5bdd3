"""A LaTeX tabular (booktabs rules) with every cell escaped; the summary as a list below."""
from __future__ import annotations

from rfcalc.analysis import Analysis
from rfcalc.render.cells import COLUMNS, NUMERIC, TIMES, row_cells, row_notes, summary_lines

__all__ = ["render", "escape"]

_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}", TIMES: r"$\times$",
}


def escape(text: str) -> str:
    """Escape LaTeX's special characters (one pass, so replacements aren't re-escaped)."""
    return "".join(_SPECIAL.get(ch, ch) for ch in text)


def render(analysis: Analysis) -> str:
    """`\\begin{tabular}...\\end{tabular}` (needs \\usepackage{booktabs}), then an itemize."""
    spec = "".join("r" if c in NUMERIC else "l" for c in COLUMNS)
    out = [f"\\begin{{tabular}}{{{spec}}}", r"\toprule",
           " & ".join(escape(c) for c in COLUMNS) + r" \\", r"\midrule"]
    for row in analysis.rows:
        cells = row_cells(row)
        out.append(" & ".join(escape(cells[c]) for c in COLUMNS) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", "", r"\begin{itemize}"]
    out += [f"\\item {escape(line)}" for line in (*summary_lines(analysis), *row_notes(analysis))]
    out.append(r"\end{itemize}")
    return "\n".join(out) + "\n"
