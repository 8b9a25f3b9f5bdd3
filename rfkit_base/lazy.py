"""Package faces whose public names load their module on first use (PEP 562): importing
rfcalc, netbuilder or training costs nothing until a name is used, so the commands answer
`--help` before torch loads."""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Mapping


def lazy_face(
    package: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, whose public `name` is defined in the module
    `homes[name]` (relative to the package)."""

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{homes[name]}", package), name)
        vars(sys.modules[package])[name] = value  # the next lookup is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(homes))

    return __getattr__, __dir__
