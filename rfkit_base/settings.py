"""Config fields with their command-line help, and the flags derived from them: a dataclass
of `setting(...)` fields is one list of settings for both the code and its command
(`rftrain`'s options are `TrainConfig`'s and `AugConfig`'s fields)."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, Field, field, fields
from typing import Any

from rfkit_base.commandline import flag

__all__ = ["setting", "add_dataclass_options", "dataclass_values"]


def setting(default: Any, help: str, **meta: Any) -> Any:
    """A config field with its command-line help (and `choices`, `metavar` if given):
    `add_dataclass_options` derives the flag from it."""
    return field(default=default, metadata={"help": help, **meta})


def _kind(f: Field) -> str:
    """The field's annotation as a plain name: int, float, str, bool, or bool/int if Optional."""
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    return t.replace("Optional[", "").replace("]", "").replace(" | None", "")


def add_dataclass_options(
    group: argparse._ActionsContainer,
    cls: type,
    *,
    skip: tuple[str, ...] = (),
    defaults: Any = None,
) -> None:
    """One option per field of `cls`: the field's default (or `defaults`' value of it, an
    instance of `cls`: a named recipe), type, help and choices (metadata)."""
    for f in fields(cls):
        if f.name in skip or f.default is MISSING:
            continue
        meta = f.metadata
        kind = _kind(f)
        default = f.default if defaults is None else getattr(defaults, f.name)
        kw: dict[str, Any] = {"default": default, "help": meta["help"]}
        if kind == "bool":
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = {"int": int, "float": float, "str": str}[kind]
            if "choices" in meta:
                kw["choices"] = meta["choices"]
            if "metavar" in meta:
                kw["metavar"] = meta["metavar"]
        group.add_argument(flag(f.name), dest=f.name, **kw)


def dataclass_values(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The parsed values of the options add_dataclass_options made for `cls`."""
    return {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
