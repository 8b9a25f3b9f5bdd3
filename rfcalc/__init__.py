"""rfcalc: exact receptive fields of any PyTorch model, walked by execution.

from rfcalc import analyze, summary, verify
analysis = analyze(model, (3, 32, 32))   # rows in execution order, analysis.output
summary(model, input_size=(1, 3, 32, 32))  # the same, called as torchinfo.summary is
checks = verify(model, (3, 32, 32))      # the same fields measured with gradients
grad = gradient_map(model, (3, 32, 32), row="t4.conv")  # the pixels its centre unit sees
field = erf(model, images, layer="t4.conv")  # the pixels it really uses (Luo et al.)

The names below are imported on first use (PEP 562), so `import rfcalc` alone does not import
torch: the `rfcalc` command starts its imports with the garbage collector held off
(rfcalc.console), and a bad command line is answered before torch is loaded.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from rfkit_base.lazy import lazy_face

# public name -> the module that defines it
_HOME = {
    "analyze": "analysis",
    "summary": "summary",
    "Analysis": "analysis",
    "Row": "analysis",
    "EXACT": "analysis",
    "APPROX": "analysis",
    "GLOBAL": "analysis",
    "UNKNOWN": "analysis",
    "verify": "verify",
    "gradient_map": "verify",
    "RowCheck": "verify",
    "Verification": "verify",
    "erf": "erf",
    "ERF": "erf",
    "RFError": "geometry",
    "Window": "geometry",
    "register_rule": "rules",
    "supported_ops": "rules",
}

__all__ = [
    "analyze",
    "summary",
    "verify",
    "gradient_map",
    "erf",
    "ERF",
    "Analysis",
    "Row",
    "RFError",
    "RowCheck",
    "Verification",
    "EXACT",
    "APPROX",
    "GLOBAL",
    "UNKNOWN",
    "Window",
    "register_rule",
    "supported_ops",
]

if TYPE_CHECKING:
    from .analysis import APPROX, EXACT, GLOBAL, UNKNOWN, Analysis, Row, analyze
    from .erf import ERF, erf
    from .geometry import RFError, Window
    from .rules import register_rule, supported_ops
    from .summary import summary
    from .verify import RowCheck, Verification, gradient_map, verify


__getattr__, __dir__ = lazy_face(__name__, _HOME)


class _Package(types.ModuleType):
    """`rfcalc.verify` and `rfcalc.erf` are functions named like the modules that define them.
    Importing such a module binds the module on the package; an eager `from .verify import
    verify` would rebind the function right after, so this does the same whenever it happens."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _HOME.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
