"""Every page runs as a notebook outside the book build, as a student runs it in JupyterLab,
and every hands-on exercise runs there with its intended edit applied.

Each page of `_toc.yml` that holds code (sections such as 4.1 included) is read as a notebook
and executed cell by cell by nbclient in one fresh kernel, in book/ as JupyterLab would: a
page that only works inside `jupyter-book build` fails here. Where an exercise of
exercise_edits.py edits cells, the run pauses before its first edited cell and does what a
reader would: runs the edited cells (and those between them), then the kernel's globals and
random-number states are put back as they were, and the page goes on unedited. So each page
runs once, with its exercises inside that run; an exercise's error is reported as its own
(unless its answer is that error: `raises`), the page's own error as the page's.

Chapters 6 and 7 need CIFAR-10; they get a tiny synthetic image-folder copy written here
(`CIFAR10_DIR`), and chapter 7 trains on it for one short epoch (`EPOCHS`, `SUBSET`) into a
temporary run folder (`RUN_DIR`; each exercise gets its own, so chapter 7's exercise does not
find the chapter's run). The notebooks are executed in memory: nothing in book/ is rewritten.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import nbformat
import pytest
from chapters import BOOK, REPO, pages, plans, read, synthetic_cifar
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

CELL_TIMEOUT = 600  # seconds; a chapter's slowest cell (variants, a training epoch) is far less

# Run in the kernel around each exercise: keep the globals and the random-number states
# (a later unseeded cell of the page must draw what it draws in a plain run), and give the
# exercise its own run folder (FOLDER: replaced by the path); then put them back.
SAVE = """\
def _rfkit_save(g=globals()):
    import random
    import sys

    rng = {"random": random.getstate()}
    if "numpy" in sys.modules:
        rng["numpy"] = sys.modules["numpy"].random.get_state()
    if "torch" in sys.modules:
        rng["torch"] = sys.modules["torch"].get_rng_state()
    g["__rfkit_saved"] = (dict(g), rng)


_rfkit_save()
__import__("os").environ["RUN_DIR"] = FOLDER
"""
RESTORE = """\
def _rfkit_restore(g=globals()):
    import random
    import sys

    saved, rng = g["__rfkit_saved"]
    for name in [k for k in g if k not in saved]:
        del g[name]
    g.update(saved)
    random.setstate(rng["random"])
    if "numpy" in rng:
        sys.modules["numpy"].random.set_state(rng["numpy"])
    if "torch" in rng:
        sys.modules["torch"].set_rng_state(rng["torch"])
    elif "torch" in sys.modules:  # imported by the exercise: as a fresh import leaves it
        torch = sys.modules["torch"]
        torch.manual_seed(torch.initial_seed())


_rfkit_restore()
__import__("os").environ["RUN_DIR"] = FOLDER
"""


def _environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the kernel inherits: the synthetic data, a one-epoch run, the explorer page's
    folder (4.1), and this checkout's packages ahead of any installed copy."""
    monkeypatch.setenv("CIFAR10_DIR", str(synthetic_cifar(tmp_path / "cifar10")))
    monkeypatch.setenv("EPOCHS", "1")
    monkeypatch.setenv("SUBSET", "40")
    monkeypatch.setenv("RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("RFKIT_BOOK_HTML", str(tmp_path / "html"))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    )


@pytest.mark.parametrize("page", list(pages()))
def test_page_runs_as_a_notebook_with_its_exercises(page, tmp_path, monkeypatch):
    _environment(tmp_path, monkeypatch)
    path = pages()[page]
    notebook = read(path)
    client = NotebookClient(
        copy.deepcopy(notebook),  # execute_cell stores each cell it runs in client.nb
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(BOOK)}},
    )
    scratch = nbformat.v4.new_code_cell("pass")

    def run(source: str, index: int) -> None:
        cell = copy.deepcopy(notebook.cells[index] if index >= 0 else scratch)
        cell.source = source
        client.execute_cell(cell, max(index, 0), store_history=False)

    def run_page(start: int, stop: int) -> None:
        for i in range(start, stop):
            if notebook.cells[i].cell_type == "code":
                try:
                    run(notebook.cells[i].source, i)
                except CellExecutionError as exc:  # the page's own error, not an exercise's
                    pytest.fail(f"{path.name}, cell {i}: {exc}", pytrace=False)

    failures, expected, passed_but_known = [], [], []
    with client.setup_kernel():
        done = 0  # the page's cells run so far
        for plan in plans(page, notebook):
            run_page(done, plan.first)
            done = max(done, plan.first)
            ex = plan.exercise
            run(SAVE.replace("FOLDER", repr(str(tmp_path / f"exercise-{plan.number}"))), -1)
            error = None
            for i in range(plan.first, plan.end + 1):
                if notebook.cells[i].cell_type != "code":
                    continue
                try:
                    run(plan.sources.get(i, notebook.cells[i].source), i)
                except CellExecutionError as exc:
                    error = f"{page}: exercise {ex.text!r}, cell {i}:\n{exc}"
                    break
            run(RESTORE.replace("FOLDER", repr(str(tmp_path / "run"))), -1)
            if ex.raises:
                plain = re.sub(r"\x1b\[[0-9;]*m", "", error or "")
                if ex.raises not in plain:
                    failures.append(f"{page}: {ex.text!r} should fail with {ex.raises!r}")
            elif error and not ex.known_failure:
                failures.append(error)
            elif error:
                expected.append(f"{ex.text!r}: {ex.known_failure}")
            elif ex.known_failure:
                passed_but_known.append(f"{ex.text!r} runs now: delete its known_failure")
        run_page(done, len(notebook.cells))
    assert not failures, "\n\n".join(failures)
    assert not passed_but_known, "\n".join(passed_but_known)
    if expected:
        pytest.xfail("; ".join(expected))
