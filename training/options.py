"""What the command-line front ends share: `UserError`, the device choice, and the options of
`rftrain` derived from the `TrainConfig` and `AugConfig` dataclasses (one list of settings).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import MISSING, Field, field, fields
from typing import Any, NoReturn

import torch


class UserError(Exception):
    """Bad input from the user (data folder, output folder, options): a one-line message."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (`prog: error: ...`), exit status 2,
    instead of the whole usage; `--help` shows the usage and every default."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class CheckingParser(OneLineParser):
    """A OneLineParser that raises UserError instead of exiting: options checked ahead of
    time (rfsweep checks every run's before the first one starts)."""

    def error(self, message: str) -> NoReturn:
        raise UserError(message)


def setting(default: Any, help: str, **meta: Any) -> Any:
    """A config field with its command-line help: the flags of `TrainConfig` and `AugConfig`
    are derived from these fields (`add_dataclass_options` reads the help and the choices)."""
    return field(default=default, metadata={"help": help, **meta})


def flag(name: str) -> str:
    """The command-line flag of a setting: `eval_batch_size` (or `--eval_batch_size`) ->
    `--eval-batch-size`."""
    return "--" + name.lstrip("-").replace("_", "-")


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


def resolve_device(name: str) -> torch.device:
    """'auto' picks cuda when present; asking for an absent GPU is a user error. Under torchrun
    a GPU without an index is the process's LOCAL_RANK."""
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"--device {name!r}: {exc}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: no CUDA GPU is available here (try --device cpu)")
        if device.index is None:
            device = torch.device("cuda", local)
    return device


def fail(prog: str, message: str) -> int:
    """Print the one-line error and return the exit status for bad input."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rfkit")
    except PackageNotFoundError:
        return "unknown (not installed)"
