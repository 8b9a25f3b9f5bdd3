"""Run mutmut's mutants again, one by one, against the tests as they are now.

mutmut judges a mutant once, with the tests that existed when it started. After tests are
added for its survivors, or where mutmut's own runner is too slow to finish (on the 2-core
machine it took one to two minutes per mutant of rfcalc/geometry.py, where the same tests
run in ten seconds), this script runs the chosen mutants of an existing `mutants/` folder
exactly the way mutmut switches them on (`MUTANT_UNDER_TEST=NAME`, pytest with `-x` in
`mutants/`) and writes each verdict back into mutmut's own records, so that `mutmut
results`, `mutmut show` and scripts/mutation_summary.py read them as usual.

    python scripts/mutation_recheck.py 'rfcalc.geometry*' --tests tests/rfcalc

Which mutants: by default the ones mutmut has not checked and the ones that survived (a kill
is never undone). Which tests: the files given with `--tests` (tests written since mutmut's
stats run), then, as mutmut, the tests that run saw calling the mutated function (fastest
first), with the options of `[tool.mutmut] pytest_add_cli_args`. tests/ is copied into `mutants/`
first. A mutant whose tests run longer than `--timeout` seconds counts as a timeout.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path.cwd()  # the project: pyproject.toml, tests/ and mutmut's mutants/ (as for mutmut)
MUTANTS = ROOT / "mutants"
# mutmut's exit codes (mutmut.stats.status_by_exit_code)
KILLED, SURVIVED, TIMEOUT, NO_TESTS = 1, 0, 36, 33
STATUS = {1: "killed", 0: "survived", 36: "timeout", None: "not checked", 5: "no tests"}
STATUS[NO_TESTS] = "no tests"


def records(patterns: list[str]) -> dict[Path, dict]:
    """mutmut's record (`*.py.meta`) of every mutated file that has mutants matching."""
    found = {}
    for meta in sorted(MUTANTS.rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        keys = data.get("exit_code_by_key", {})
        if any(fnmatch.fnmatch(k, p) for k in keys for p in patterns):
            found[meta] = data
    return found


def tests_of(name: str, stats: dict, extra: list[str]) -> list[str]:
    """`extra` (tests written for survivors: they kill fastest), then the tests mutmut would
    run for mutant `name`, fastest first."""
    function = name.rsplit("__mutmut_", 1)[0]
    mapped = stats.get("tests_by_mangled_function_name", {}).get(function, [])
    duration = stats.get("duration_by_test", {})
    return extra + sorted(mapped, key=lambda t: duration.get(t, 0.0))


def pytest_args(tests: list[str]) -> list[str]:
    try:
        import tomllib as toml  # Python 3.11
    except ModuleNotFoundError:  # 3.10: the parser mutmut itself uses there
        import toml  # type: ignore[no-redef]
    cfg = toml.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    return ["-x", "-p", "no:randomly"] + list(cfg.get("pytest_add_cli_args", [])) + tests


def warm_up(files: list[str]) -> None:
    """Import torch, the mutated packages and the test modules once, in this process: each
    mutant then runs in a fork of it (as mutmut's own runner does), without the seconds a
    fresh interpreter spends importing them."""
    os.chdir(MUTANTS)
    sys.path.insert(0, str(MUTANTS))
    os.environ["MUTANT_UNDER_TEST"] = ""
    import pytest

    with open(os.devnull, "w") as quiet:
        saved = os.dup(1), os.dup(2)
        os.dup2(quiet.fileno(), 1)
        os.dup2(quiet.fileno(), 2)
        try:
            pytest.main(["--collect-only", "-q", *pytest_args(files)])
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)


def start_one(name: str, tests: list[str]) -> int:
    """Fork a child that runs `tests` with mutant `name` switched on; its pid."""
    pid = os.fork()
    if pid:
        return pid
    try:  # the child: never returns
        import pytest

        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.environ["MUTANT_UNDER_TEST"] = name
        code = int(pytest.main(pytest_args(tests)))
    except BaseException:
        code = 3
    os._exit(code)


def verdict(code: int) -> int:
    """pytest's exit code as mutmut's verdict: failed tests or an error inside pytest is a
    kill; 5 (nothing collected) means no tests."""
    if code in (1, 2, 3):
        return KILLED
    return NO_TESTS if code == 5 else code


def main(argv: list[str] | None = None) -> int:
    global ROOT, MUTANTS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("patterns", nargs="+", help="mutant-name globs, e.g. 'rfcalc.geometry*'")
    ap.add_argument("--tests", nargs="*", default=[], help="test files to run as well")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant")
    ap.add_argument(
        "--status",
        default="not checked,survived",
        help="which verdicts to run again (comma-separated; default: %(default)s)",
    )
    ap.add_argument(
        "--only-given",
        action="store_true",
        help="run only the --tests files: a quick second look at survivors, which records "
        "kills only (surviving a part of the tests says nothing about the rest)",
    )
    ap.add_argument("--root", type=Path, default=Path.cwd(), help="the project (default: here)")
    opts = ap.parse_args(argv)
    ROOT, MUTANTS = opts.root.resolve(), opts.root.resolve() / "mutants"
    if not MUTANTS.is_dir():
        print("no mutants/ folder: run `make mutation` (or mutmut run) first", file=sys.stderr)
        return 2
    shutil.copytree(ROOT / "tests", MUTANTS / "tests", dirs_exist_ok=True)
    stats_file = MUTANTS / "mutmut-stats.json"
    use_stats = stats_file.exists() and not opts.only_given
    stats = json.loads(stats_file.read_text()) if use_stats else {}
    clean = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *pytest_args(opts.tests or ["tests"])],
        cwd=MUTANTS,
        env=dict(os.environ, MUTANT_UNDER_TEST=""),
        capture_output=True,
        text=True,
    )
    if clean.returncode != 0:
        tail = clean.stdout.strip().splitlines()[-1:] or ["?"]
        print(f"the tests fail without a mutant: {tail[0]}", file=sys.stderr)
        return 1
    wanted = {s.strip() for s in opts.status.split(",")}
    found = records(opts.patterns)
    todo = [
        (meta, key)
        for meta, data in found.items()
        for key, code in data["exit_code_by_key"].items()
        if any(fnmatch.fnmatch(key, p) for p in opts.patterns)
        and STATUS.get(code, f"exit {code}") in wanted
    ]
    print(f"{len(todo)} mutants to run, {opts.jobs} at a time", flush=True)
    warm_up(sorted({t.split("::")[0] for _, k in todo for t in tests_of(k, stats, opts.tests)}))
    counts: dict[str, int] = {}
    queue = list(todo)
    running: dict[int, tuple[Path, str, float]] = {}
    done = 0

    def record(meta: Path, name: str, code: int, seconds: float) -> None:
        nonlocal done
        done += 1
        if code == KILLED or not opts.only_given:  # a part of the tests proves only kills
            found[meta]["exit_code_by_key"][name] = code
            meta.write_text(json.dumps(found[meta], indent=4))  # after each: a stop loses one
        status = STATUS.get(code, f"exit {code}")
        counts[status] = counts.get(status, 0) + 1
        print(f"[{done}/{len(todo)}] {name}: {status} ({seconds:.0f} s)", flush=True)

    while queue or running:
        while queue and len(running) < opts.jobs:
            meta, name = queue.pop(0)
            tests = tests_of(name, stats, opts.tests)
            if not tests:
                record(meta, name, NO_TESTS, 0.0)
                continue
            running[start_one(name, tests)] = (meta, name, time.monotonic())
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            time.sleep(0.05)
            for child, (meta, name, t0) in list(running.items()):
                if time.monotonic() - t0 > opts.timeout:
                    os.kill(child, 9)
                    os.waitpid(child, 0)
                    del running[child]
                    record(meta, name, TIMEOUT, time.monotonic() - t0)
            continue
        if pid in running:
            meta, name, t0 = running.pop(pid)
            record(meta, name, verdict(os.waitstatus_to_exitcode(status)), time.monotonic() - t0)
    print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
