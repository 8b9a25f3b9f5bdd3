"""The commands answer `--help`, `--version` and a bad command line before torch loads.

Times are not asserted (benchmarks/cli_startup.py measures them); what makes them short is:
no torch, sympy or matplotlib in sys.modules after the parser is built and used.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "sympy", "matplotlib", "torchvision")

_PROBE = """
import contextlib, io, json, sys
import {module} as cli
for argv in {argvs!r}:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        cli.main(argv)
print(json.dumps([m for m in {heavy!r} if m in sys.modules]))
"""


def _loaded(module: str, argvs: list[list[str]]) -> list[str]:
    code = _PROBE.format(module=module, argvs=argvs, heavy=HEAVY)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.splitlines()[-1])


def test_importing_the_console_script_loads_no_torch():
    code = "import sys, rfcalc.console, rfcalc.cli; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "module, argvs",
    [
        (
            "rfcalc.cli",
            [[], ["--help"], ["--version"], ["table", "--help"], ["tabel"], ["erf", "--help"]],
        ),
        ("netbuilder.cli", [[], ["--help"], ["--version"], ["variants", "--help"]]),
    ],
)
def test_help_version_and_bad_commands_answer_before_torch_loads(module, argvs):
    assert _loaded(module, argvs) == []


def test_the_probe_does_see_torch_when_a_command_needs_it(tmp_path):
    """The check above can fail: a command that loads a model does import torch."""
    assert "torch" in _loaded("rfcalc.cli", [["table", "examples/s9_net.py"]])
