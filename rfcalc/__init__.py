"""rfcalc: exact receptive fields of any PyTorch model, walked by execution.

from rfcalc import analyze, verify
analysis = analyze(model, (3, 32, 32))   # rows in execution order, analysis.output
checks = verify(model, (3, 32, 32))      # the same fields measured with gradients
grad = gradient_map(model, (3, 32, 32), row="t4.conv")  # the pixels its centre unit sees
field = erf(model, images, layer="t4.conv")  # the pixels it really uses (Luo et al.)
"""

from .analysis import APPROX, EXACT, GLOBAL, UNKNOWN, Analysis, Row, analyze
from .erf import ERF, erf
from .geometry import RFError, Window
from .rules import register_rule, supported_ops
from .verify import RowCheck, Verification, gradient_map, verify

__all__ = [
    "analyze",
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
