"""A sized spec -> a standalone, readable model file (only torch imports, one Net class).

The file's units are `nn.Sequential`s with children named conv/norm/relu/drop, so its
state_dict has exactly the keys of netbuilder's built Net (and of `examples/s9_net.py` for
s9); skips are written out in `forward`, one line per unit, with the map size after it.
"""
from __future__ import annotations

from .budget import count
from .spec import DWS, ConvUnit, NetSpec, check, steps

_UNIT_HELPER = '''

def conv_unit(c_in: int, c_out: int, *, depthwise: bool = False, kernel: int = 3,
              dilation: int = 1, padding: int = 0, stride: int = 1, groups: int = 1,
              dropout: float = 0.05) -> nn.Sequential:
    """conv -> BatchNorm -> ReLU -> Dropout; depthwise=True: a per-channel conv then a 1x1 mix.

    Plain convs have no bias (BatchNorm follows); the depthwise and pointwise convs have one.
    """
    if depthwise:
        conv = nn.Sequential(
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=padding, dilation=dilation,
                      groups=c_in, bias=True),
            nn.Conv2d(c_in, c_out, 1, bias=True),
        )
    else:
        conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=False)
    unit = nn.Sequential()
    unit.add_module("conv", conv)
    unit.add_module("norm", nn.BatchNorm2d(c_out))
    unit.add_module("relu", nn.ReLU())
    unit.add_module("drop", nn.Dropout(dropout))
    return unit
'''


def _call(unit: ConvUnit, c_in: int, c_out: int, dropout_arg: str) -> str:
    args = [str(c_in), str(c_out)]
    if unit.kind == DWS:
        args.append("depthwise=True")
    defaults = ConvUnit()
    for what in ("kernel", "dilation", "padding", "stride", "groups"):
        if getattr(unit, what) != getattr(defaults, what):
            args.append(f"{what}={getattr(unit, what)}")
    args.append(f"dropout={dropout_arg or repr(unit.dropout)}")
    return f"conv_unit({', '.join(args)})"


def source(spec: NetSpec, input_shape: tuple[int, ...] = (3, 32, 32), command: str = "") -> str:
    """The model file's text for a spec at its widths."""
    sizes = check(spec, input_shape)
    all_steps = list(steps(spec))
    dropouts = {s.unit.dropout for s in all_steps}
    shared = dropouts.pop() if len(dropouts) == 1 else None  # one knob when all units agree
    drop_arg = "dropout" if shared is not None else ""
    params = count(spec)
    h, w = input_shape[1:]
    trail = " -> ".join([f"{h}x{w}"] + [f"{a}x{b}" for a, b in
                                        (sizes[i] for i, s in enumerate(all_steps)
                                         if s.path.startswith("t"))])
    doc = [f'"""{spec.name}: a netbuilder net, {params:,} parameters.', "",
           f"Widths {', '.join(map(str, spec.widths))}; map sizes {trail}, then a global "
           "average,", "a 1x1 head and log-softmax." + (f" Made by `{command}`." if command else ""),
           "", "    rfcalc table <this file>", '"""']
    lines = doc + ["import torch.nn as nn", "import torch.nn.functional as F", _UNIT_HELPER, "",
                   "class Net(nn.Module):",
                   f'    """{spec.name}: stages c1..c{len(spec.stages)}, each closed by a '
                   'transition t1.., then GAP and a 1x1 head."""', "",
                   f"    def __init__(self, dropout: float = {shared if shared is not None else 0.05!r}, "
                   f"num_classes: int = {spec.num_classes}):",
                   "        super().__init__()"]
    forward = ["    def forward(self, x):"]
    for i, stage in enumerate(spec.stages):
        block = [s for s in all_steps if s.stage == i and s.path.startswith("c")]
        lines.append(f"        self.c{i + 1} = nn.Sequential(")
        for s in block:
            lines.append(f"            {_call(s.unit, s.c_in, s.c_out, drop_arg)},")
        lines.append("        )")
        t = next(s for s in all_steps if s.path == f"t{i + 1}")
        lines.append(f"        self.t{i + 1} = {_call(t.unit, t.c_in, t.c_out, drop_arg)}")
    for s, (a, b) in zip(all_steps, sizes):
        mod = f"self.c{s.path[1:].replace('.', '[')}]" if s.path.startswith("c") else f"self.{s.path}"
        code = f"x = x + {mod}(x)" if s.unit.skip else f"x = {mod}(x)"
        note = f"{s.c_out}x{a}x{b}" + ("  (skip)" if s.unit.skip else "")
        forward.append(f"        {code:<32}# {note}")
    last = spec.widths[-1]
    lines += ["        self.gap = nn.AdaptiveAvgPool2d(1)",
              f"        self.head = nn.Conv2d({last}, num_classes, 1, bias=True)", ""]
    forward += ["        x = self.head(self.gap(x))", "        return F.log_softmax(x.flatten(1), dim=1)"]
    return "\n".join(lines + forward) + "\n"

