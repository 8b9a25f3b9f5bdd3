"""scripts/mutation_recheck.py on a tiny project: a hand-written mutants/ folder in mutmut's
layout (a module whose function switches on MUTANT_UNDER_TEST, mutmut's record of verdicts,
its stats of which tests call which function)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "mutation_recheck.py"

CALC = """import os


def double(x):
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    if mutant == "calc.x_double__mutmut_1":
        return x + 2  # equals 2x at x = 2: the test cannot tell
    if mutant == "calc.x_double__mutmut_2":
        return x * 3
    return x * 2
"""


def _project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text('[tool.mutmut]\npytest_add_cli_args = ["-q"]\n')
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_calc.py").write_text(
        "from calc import double\n\n\ndef test_double():\n    assert double(2) == 4\n"
    )
    mutants = tmp_path / "mutants"
    mutants.mkdir()
    (mutants / "calc.py").write_text(CALC)
    verdicts = {
        "calc.x_double__mutmut_1": None,  # not checked
        "calc.x_double__mutmut_2": 0,  # survived an older run: the test now kills it
        "calc.x_double__mutmut_3": 1,  # killed: never run again
        "calc.x_other__mutmut_1": None,  # a function no test calls
    }
    (mutants / "calc.py.meta").write_text(json.dumps({"exit_code_by_key": verdicts}))
    stats = {
        "tests_by_mangled_function_name": {"calc.x_double": ["tests/test_calc.py::test_double"]},
        "duration_by_test": {"tests/test_calc.py::test_double": 0.01},
    }
    (mutants / "mutmut-stats.json").write_text(json.dumps(stats))
    return tmp_path


def test_runs_the_unsettled_mutants_and_records_mutmuts_verdicts(tmp_path):
    root = _project(tmp_path)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "calc.*", "--root", str(root), "--jobs", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "3 mutants to run" in done.stdout
    verdicts = json.loads((root / "mutants" / "calc.py.meta").read_text())["exit_code_by_key"]
    # mutmut's codes: 0 survived, 1 killed, 33 no tests
    assert verdicts == {
        "calc.x_double__mutmut_1": 0,
        "calc.x_double__mutmut_2": 1,
        "calc.x_double__mutmut_3": 1,
        "calc.x_other__mutmut_1": 33,
    }
    # the tests were copied into mutants/ (the way mutmut runs them)
    assert (root / "mutants" / "tests" / "test_calc.py").exists()


def test_refuses_when_the_tests_fail_without_a_mutant(tmp_path):
    root = _project(tmp_path)
    (root / "tests" / "test_calc.py").write_text(
        "from calc import double\n\n\ndef test_double():\n    assert double(2) == 5\n"
    )
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "calc.*", "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("the tests fail without a mutant")
    before = json.loads((root / "mutants" / "calc.py.meta").read_text())["exit_code_by_key"]
    assert before["calc.x_double__mutmut_1"] is None  # nothing recorded


def test_only_given_records_kills_only(tmp_path):
    # with only the given tests, a mutant that survives them keeps its verdict (here: not
    # checked), while one they kill is recorded killed
    root = _project(tmp_path)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "calc.x_double*", "--root", str(root), "--only-given"]
        + ["--tests", "tests/test_calc.py"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    verdicts = json.loads((root / "mutants" / "calc.py.meta").read_text())["exit_code_by_key"]
    assert verdicts["calc.x_double__mutmut_1"] is None
    assert verdicts["calc.x_double__mutmut_2"] == 1
