"""The imports inside rfcalc go one way: the recorder (execute) and the renderers never import
the analysis back, so neither needs a function-level import to dodge a cycle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_LOADED = """
import importlib, json, sys
importlib.import_module({module!r})
print(json.dumps(sorted(m for m in sys.modules if m.startswith("rfcalc"))))
"""


def loaded_with(module: str) -> set[str]:
    """The rfcalc modules a fresh interpreter holds after importing `module` alone."""
    out = subprocess.run(
        [sys.executable, "-c", _LOADED.format(module=module)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


@pytest.mark.parametrize(
    "module",
    [
        "rfcalc.execute",
        "rfcalc.probe",
        "rfcalc.render",
        "rfcalc.render.layers",
        "rfcalc.render.cells",
        "rfcalc.render.html",
        "rfcalc.render.text",
    ],
)
def test_no_arrow_back_to_the_analysis(module):
    assert "rfcalc.analysis" not in loaded_with(module)


def test_probe_for_has_one_home_still_reachable_from_the_analysis():
    import importlib

    from rfcalc.probe import probe_for

    for name in ("rfcalc.analysis", "rfcalc.execute", "rfcalc.verify"):
        # importlib: the package's attribute `verify` is the function, not the module
        assert importlib.import_module(name).probe_for is probe_for, name
