"""Resolve a TARGET (`model.py`, `model.py:Name`, `package.module:attr`) into an nn.Module.

Every way a target can be wrong raises `TargetError` with a one-line message that names the
problem, so the CLI can print it and exit 2 instead of showing a traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import itertools
import os
import sys
import traceback
import warnings
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Callable, Iterator, Optional

if TYPE_CHECKING:  # torch is imported where a model is loaded, so `--help` does not wait for it
    import torch.nn as nn

__all__ = [
    "ConstructorError",
    "TargetError",
    "load_target",
    "load_without_weights",
    "parse_input",
    "split_target",
]

MAX_SPATIAL_AXES = 3  # Conv1d/2d/3d
_counter = itertools.count()


class TargetError(ValueError):
    """A target or an --input that cannot be used; the message is one line for the user."""


class ConstructorError(TargetError):
    """The target's class or factory raised while it was called."""


def parse_input(text: str) -> tuple[int, ...]:
    """Parse `C,H,W` (or `C,L`, `C,D,H,W`) into a tuple of positive ints."""
    parts = [p.strip() for p in text.split(",")]
    expected = "C,H,W (or C,L / C,D,H,W) as positive integers, e.g. 3,32,32"
    if not 2 <= len(parts) <= 1 + MAX_SPATIAL_AXES:
        raise TargetError(f"--input {text!r}: expected {expected}")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise TargetError(f"--input {text!r}: expected {expected}") from None
    if any(d <= 0 for d in dims):
        raise TargetError(f"--input {text!r}: every size must be positive")
    return dims


def split_target(target: str) -> tuple[str, Optional[str], bool]:
    """Split a target into (file-or-module, attribute name or None, is_file)."""
    if not target.strip():
        raise TargetError("empty target: give model.py, model.py:Name or package.module:attr")
    if target.endswith(".py") or os.path.exists(target):
        return target, None, True
    where, sep, name = target.rpartition(":")
    if sep:
        if not name.isidentifier():
            raise TargetError(f"{target}: {name!r} after ':' is not a Python name")
        is_file = where.endswith(".py") or os.path.exists(where)
        return where, name, is_file
    return target, None, False


def load_target(target: str, *, device: Optional[str] = None) -> nn.Module:
    """Return the nn.Module a target names, instantiating a class or calling a factory.

    Without a name, the file or module must define (not import) exactly one nn.Module
    subclass that can be built with no arguments. Classes and factories are called with none,
    under `torch.device(device)` where one is given (an instance is returned as it is).
    """
    where, name, is_file = split_target(target)
    if is_file:
        path = Path(where)
        if not path.exists():
            raise TargetError(f"{where}: no such file")
        if not path.is_file():
            raise TargetError(f"{where}: not a file")
        with _isolated_import(path, where) as module:
            return _pick(module, name, label=where, device=device)
    try:
        module = importlib.import_module(where)
    except ImportError as exc:
        raise TargetError(f"cannot import module {where!r}: {exc}") from None
    except SyntaxError as exc:
        raise _syntax_error(exc) from None
    except (Exception, SystemExit) as exc:  # the module raised while being imported
        raise TargetError(f"importing {where}: {type(exc).__name__}: {exc}") from None
    return _pick(module, name, label=where, device=device)


def load_without_weights(target: str) -> tuple[nn.Module, Callable[[], nn.Module]]:
    """The target's model built on the meta device, and a function that builds it with weights.

    Shapes are all an analysis needs, and initialising the weights of a big model costs more
    than analysing it (Inception-v3: 2.8 s against 0.2 s on the meta device). The meta device
    fails loudly on any read of a value, so a constructor that depends on values raises there;
    such a target, like an instance built at import, is simply built with weights. The second
    build (only where the analysis needs real values) is quiet: its prints and warnings were
    shown by the first.
    """
    try:
        model = load_target(target, device="meta")
    except ConstructorError:
        model = load_target(target)

    def with_weights() -> nn.Module:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return load_target(target)

    return model, with_weights


@contextlib.contextmanager
def _isolated_import(path: Path, label: str) -> Iterator[ModuleType]:
    """Import a file under a unique module name, with its folder on sys.path for siblings.

    The file's own module and any sibling modules it imported are dropped from sys.modules
    afterwards (after the caller has instantiated the model, since a factory may import
    lazily), so two loads of files with the same names never see each other's modules.
    Errors name the file as the user wrote it (`label`).
    """
    path = path.resolve()
    folder = str(path.parent)
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    unique = f"_rfcalc_target_{next(_counter)}_{stem}"
    before = set(sys.modules)
    saved_path = list(sys.path)
    saved_bytecode = sys.dont_write_bytecode
    sys.path.insert(0, folder)
    sys.dont_write_bytecode = True  # leave no __pycache__ in the user's folder
    try:
        spec = importlib.util.spec_from_file_location(unique, path)
        if spec is None or spec.loader is None:
            raise TargetError(f"{path}: cannot be loaded as a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique] = module  # dataclasses and typing look their module up here
        try:
            spec.loader.exec_module(module)
        except SyntaxError as exc:
            raise _syntax_error(exc, path, label) from None
        except ImportError as exc:
            raise TargetError(f"{_where_in(exc, path, label)}: import failed: {exc}") from None
        except (Exception, SystemExit) as exc:  # the file raised or exited while running
            raise TargetError(
                f"{_where_in(exc, path, label)}: {type(exc).__name__}: {exc}"
            ) from None
        yield module
    finally:
        sys.path[:] = saved_path
        sys.dont_write_bytecode = saved_bytecode
        for key in set(sys.modules) - before:
            mod_file = getattr(sys.modules[key], "__file__", None) or ""
            if key == unique or mod_file.startswith(folder + os.sep):
                del sys.modules[key]


def _syntax_error(exc: SyntaxError, path: Optional[Path] = None, label: str = "") -> TargetError:
    """`file:line: syntax error: ...`, naming the target as typed when the error is in it."""
    name = str(exc.filename)
    if path is not None and exc.filename and Path(exc.filename).resolve() == path:
        name = label
    where = f"{name}:{exc.lineno}" if exc.lineno else name
    return TargetError(f"{where}: syntax error: {exc.msg}")


def _where_in(exc: BaseException, path: Path, label: str) -> str:
    """`label:line` of the deepest traceback frame inside the target file, else the label."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename and Path(frame.filename).resolve() == path:
            line = frame.lineno
    return f"{label}:{line}" if line else label


def _nn():
    """torch.nn, imported on first use."""
    import torch.nn as nn

    return nn


def _module_classes(module: ModuleType) -> list[str]:
    """Names of the nn.Module subclasses defined in (not imported into) a module."""
    return sorted(
        attr
        for attr, obj in vars(module).items()
        if inspect.isclass(obj)
        and issubclass(obj, _nn().Module)
        and obj.__module__ == module.__name__
        and not attr.startswith("_")
    )


def _needs_arguments(obj: object) -> list[str]:
    """The parameters a call with no arguments would be missing ([] if none or unknowable)."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return []  # builtins without a signature: just try the call
    try:
        signature.bind()
    except TypeError:
        return [
            p.name
            for p in signature.parameters.values()
            if p.default is p.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
    return []


def _pick(
    module: ModuleType, name: Optional[str], label: str, device: Optional[str] = None
) -> nn.Module:
    """The named attribute, or the one nn.Module class defined here that needs no arguments.

    Helper blocks (a ConvLayer taking channel counts) need arguments and the CLI could not
    build them anyway, so they don't compete with the net itself for the unnamed pick.
    """
    candidates = _module_classes(module)
    if name is None:
        if not candidates:
            raise TargetError(f"{label} defines no nn.Module subclass; name one with {label}:Name")
        buildable = [c for c in candidates if not _needs_arguments(getattr(module, c))]
        if not buildable:
            raise TargetError(
                f"every nn.Module class in {label} needs arguments "
                f"({', '.join(candidates)}); name a factory with {label}:Name"
            )
        if len(buildable) > 1:
            raise TargetError(
                f"{label} defines several nn.Module classes ({', '.join(buildable)});"
                f" pick one with {label}:Name"
            )
        name = buildable[0]
    if not hasattr(module, name):
        hint = f" (nn.Module classes there: {', '.join(candidates)})" if candidates else ""
        raise TargetError(f"{label} has no attribute {name!r}{hint}")
    return _instantiate(getattr(module, name), f"{label}:{name}", device)


def _instantiate(obj: object, label: str, device: Optional[str] = None) -> nn.Module:
    """A module instance as is; a class or a factory called with no arguments."""
    nn = _nn()
    if isinstance(obj, nn.Module):
        return obj
    if not callable(obj):
        raise TargetError(
            f"{label} is a {type(obj).__name__}, not an nn.Module class, "
            "factory function or instance"
        )
    if inspect.isclass(obj) and not issubclass(obj, nn.Module):
        raise TargetError(f"{label} is a class but not an nn.Module subclass")
    needed = _needs_arguments(obj)
    if needed:
        raise TargetError(
            f"{label} needs arguments ({', '.join(needed)}); give a class or "
            "factory that works with none, or a module instance"
        )
    try:
        import torch

        with torch.device(device) if device else contextlib.nullcontext():
            model = obj()
    except (Exception, SystemExit) as exc:  # the user's constructor failed: one line
        raise ConstructorError(f"{label}(): {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise TargetError(f"{label}() returned a {type(model).__name__}, not an nn.Module")
    return model
