"""netbuilder: state a net's structure, let a parameter budget fix its widths, compare variants.

    import netbuilder
    model = netbuilder.create("dws-dilated-skip-x2", budget=150_000)  # or "s9", "net.json"

spec.py     the design space (units, stages, widths) and its checks
build.py    spec -> nn.Module (the module tree of examples/s9_net.py)
budget.py   parameters and MACs as sympy polynomials; the width solver
variants.py the family the course compares, measured by rfcalc
factory.py  `create(name, budget)`: a preset, variant or spec file as a module
table.py    text / markdown / json / csv tables
export.py   a standalone model file
presets.py  the assignment's Net (`s9`)
cli.py      `netbuilder variants | export | show`

The names below load their module on first use, so `import netbuilder` (and the command's
`--help`) stays quick: torch and sympy load only with what needs them.
"""

from __future__ import annotations

from rfkit_base.lazy import lazy_face

# public name -> the module that defines it (`build` is left to its module: the package
# attribute `build` is the submodule once anything imports netbuilder.build)
_FACE = {
    "create": "factory",
    "spec_for": "factory",
    "DEFAULT_BUDGET": "factory",
    "MAX_BUDGET": "factory",
    "NetSpec": "spec",
    "Stage": "spec",
    "ConvUnit": "spec",
    "SpecError": "spec",
    "PRESETS": "presets",
    "preset": "presets",
    "s9": "presets",
    "Variant": "variants",
    "family": "variants",
    "generate": "variants",
    "measure": "variants",
    "sort_variants": "variants",
    "Net": "build",
    "count_params": "build",
    "BudgetError": "budget",
    "Sizing": "budget",
    "solve": "budget",
    "source": "export",
}

__all__ = sorted(_FACE)


__getattr__, __dir__ = lazy_face(__name__, _FACE)
