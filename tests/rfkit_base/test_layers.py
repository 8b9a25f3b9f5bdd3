"""The packages import one way: rfcalc <- netbuilder <- training, and all three import the
neutral base rfkit_base, which imports none of them (so it can serve them all without a
circle). Read from the source, function-level imports included; the base loads no torch."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("rfkit_base", "rfcalc", "netbuilder", "training")
# what each package may import of the project's others
ALLOWED = {
    "rfkit_base": set(),
    "rfcalc": {"rfkit_base"},
    "netbuilder": {"rfkit_base", "rfcalc"},
    "training": {"rfkit_base", "rfcalc", "netbuilder"},
}
# services that moved to rfkit_base; rfcalc.files stays only for book/results' script
MOVED = {"rfcalc.files": "rfkit_base.files"}


def imported(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in it, relative imports made absolute."""
    here = path.relative_to(ROOT).parent.parts  # the package a relative import starts from
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names |= {f"{module}.{a.name}" for a in node.names}  # `from rfcalc import files`
    return names


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_the_rules_see_every_package():
    # the check below reads something: each package has modules and imports
    for package in PACKAGES:
        assert sources(package), package
    assert "rfkit_base.commandline" in imported(ROOT / "training" / "cli.py")
    assert "training.options" in imported(ROOT / "training" / "cli.py")


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_imports_only_the_layers_below_it(package):
    wrong = {}
    for path in sources(package):
        others = {m.split(".")[0] for m in imported(path)} & set(PACKAGES)
        bad = others - ALLOWED[package] - {package}
        if bad:
            wrong[str(path.relative_to(ROOT))] = sorted(bad)
    assert wrong == {}


@pytest.mark.parametrize("package", PACKAGES)
def test_moved_services_come_from_the_base(package):
    users = {
        str(path.relative_to(ROOT)): sorted(MOVED.keys() & imported(path))
        for path in sources(package)
        if path.relative_to(ROOT) != Path("rfcalc/files.py")
    }
    assert {k: v for k, v in users.items() if v} == {}


def test_the_base_loads_no_torch_and_none_of_the_packages():
    code = (
        "import json, sys\n"
        "import rfkit_base.commandline, rfkit_base.settings, rfkit_base.files, rfkit_base.lazy\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(out.splitlines()[-1]))
    assert "rfkit_base" in loaded
    assert loaded & {"torch", "numpy", "rfcalc", "netbuilder", "training"} == set()
