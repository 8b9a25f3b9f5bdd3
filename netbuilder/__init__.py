"""netbuilder: state a net's structure, let a parameter budget fix its widths, compare variants.

spec.py     the design space (units, stages, widths) and its checks
build.py    spec -> nn.Module (the module tree of examples/s9_net.py)
budget.py   parameters and MACs as sympy polynomials; the width solver
variants.py the family the course compares, measured by rfcalc
table.py    text / markdown / json / csv tables
export.py   a standalone model file
presets.py  the assignment's Net (`s9`)
cli.py      `netbuilder variants | export | show`
"""
