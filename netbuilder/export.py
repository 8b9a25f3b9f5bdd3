"""A sized spec -> a standalone, readable model file (only torch imports).

The file holds `ConvLayer`, netbuilder's block (its source, as in `netbuilder.build` and
`examples/s9_net.py`), and one `Net` built from it, so its module tree and state_dict keys are
the built Net's (and the example's for s9), and `rfcalc table` names its rows the same way.
`forward` is one line per block, with the map size after it.
"""

from __future__ import annotations

import inspect

from .budget import count
from .build import ConvLayer, layer_options
from .spec import ConvUnit, NetSpec, check, steps

_DEFAULTS = {
    name: p.default
    for name, p in inspect.signature(ConvLayer).parameters.items()
    if p.default is not inspect.Parameter.empty
}


def _call(unit: ConvUnit, c_in: int, c_out: int, dropout_arg: str) -> str:
    """`ConvLayer(c_in, c_out, ...)` with the options that differ from its defaults."""
    args = [str(c_in), str(c_out)]
    for name, value in layer_options(unit).items():
        if name == "dropout":
            args.append(f"dropout={dropout_arg or repr(value)}")
        elif value != _DEFAULTS[name]:
            args.append(f"{name}={value!r}")
    return f"ConvLayer({', '.join(args)})"


def source(spec: NetSpec, input_shape: tuple[int, ...] = (3, 32, 32), command: str = "") -> str:
    """The model file's text for a spec at its widths."""
    sizes = check(spec, input_shape)
    all_steps = list(steps(spec))
    dropouts = {s.unit.dropout for s in all_steps}
    shared = dropouts.pop() if len(dropouts) == 1 else None  # one knob when all units agree
    drop_arg = "dropout" if shared is not None else ""
    h, w = input_shape[1:]
    after = {s.path: (s.c_out, *hw) for s, hw in zip(all_steps, sizes)}
    blocks = []  # (attribute, the map after it)
    for i in range(len(spec.stages)):
        last_unit = [s.path for s in all_steps if s.path.startswith(f"c{i + 1}.")][-1]
        blocks += [(f"c{i + 1}", after[last_unit]), (f"t{i + 1}", after[f"t{i + 1}"])]
    trail = " -> ".join(
        [f"{h}x{w}"] + [f"{a}x{b}" for name, (_, a, b) in blocks if name.startswith("t")]
    )
    made = f" Made by `{command}`." if command else ""
    doc = [
        f'"""{spec.name}: a netbuilder net, {count(spec):,} parameters.',
        "",
        f"Widths {', '.join(map(str, spec.widths))}; map sizes {trail},",
        f"then a global average, a 1x1 head and log-softmax.{made}",
        "",
        "    rfcalc table <this file>",
        '"""',
    ]
    default_dropout = shared if shared is not None else _DEFAULTS["dropout"]
    lines = [
        *doc,
        "import torch.nn as nn",
        "import torch.nn.functional as F",
        "",
        "",
        inspect.getsource(ConvLayer).rstrip(),
        "",
        "",
        "class Net(nn.Module):",
        f'    """{spec.name}: blocks c1..c{len(spec.stages)}, each closed by a transition '
        't1.., then GAP and a 1x1 head."""',
        "",
        f"    def __init__(self, dropout: float = {default_dropout!r}, "
        f"num_classes: int = {spec.num_classes}):",
        "        super().__init__()",
    ]
    for i in range(len(spec.stages)):
        lines.append(f"        self.c{i + 1} = nn.Sequential(")
        lines += [
            f"            {_call(s.unit, s.c_in, s.c_out, drop_arg)},"
            for s in all_steps
            if s.path.startswith(f"c{i + 1}.")
        ]
        lines.append("        )")
        t = next(s for s in all_steps if s.path == f"t{i + 1}")
        lines.append(f"        self.t{i + 1} = {_call(t.unit, t.c_in, t.c_out, drop_arg)}")
    lines += [
        "        self.gap = nn.AdaptiveAvgPool2d(1)",
        f"        self.head = nn.Conv2d({spec.widths[-1]}, num_classes, 1, bias=True)",
        "",
        "    def forward(self, x):",
    ]
    lines += [f"        {f'x = self.{name}(x)':<32}# {c}x{a}x{b}" for name, (c, a, b) in blocks]
    lines += [
        "        x = self.head(self.gap(x))",
        "        return F.log_softmax(x.flatten(1), dim=1)",
    ]
    return "\n".join(lines) + "\n"
