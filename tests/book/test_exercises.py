"""Every exercise of every chapter has an entry in exercise_edits.py, and every hands-on
exercise runs with its intended edit applied.

Per chapter one kernel (nbclient, in book/ as JupyterLab would run it, with the synthetic
CIFAR-10 copy of test_chapters_nbclient.py): the chapter's cells run in order up to an
exercise's first edited cell; then the exercise's cells run with its edits applied (as a
reader who ran the chapter down to there and then changed the cell); then the kernel's
globals are put back as they were, so the next exercise sees the chapter, not the previous
exercise. Only the cells up to the chapter's last edited cell run.

Cost (7 Dec 2026, the shared 2-core machine at load average 15): 10 min wall, 2.6 min of
CPU for the whole file; 4.1, chapter 5 and chapter 7 take most of it, since their exercises
sit at the end (chapter 7's first one runs the notebook a second time).
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import pytest
import yaml
from exercise_edits import EXERCISES, Exercise
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from test_chapters_nbclient import BOOK, CELL_TIMEOUT, REPO, _read, _synthetic_cifar

HANDS_ON = re.compile(r"Hands-on|Predict, then run|\bIn the [^.]*\bcell\b|\bin the [^.]*\bcell\b")

# Run in the kernel around each exercise: keep the globals (and give it its own run folder,
# so chapter 7's exercise does not find the chapter's run), then put them back.
SAVE = "__rfkit_saved = dict(globals())\n__import__('os').environ['RUN_DIR'] = {run_dir!r}\n"
RESTORE = """\
def _rfkit_restore(g=globals()):
    saved = g["__rfkit_saved"]
    for name in [k for k in g if k not in saved]:
        del g[name]
    g.update(saved)


_rfkit_restore()
__import__("os").environ["RUN_DIR"] = {run_dir!r}
"""


def exercise_items(notebook) -> list[str]:
    """The numbered items under each "## Exercises" heading, whitespace collapsed."""
    items: list[str] = []
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.splitlines()
        for i, line in enumerate(lines):
            if re.fullmatch(r"#+\s+Exercises\s*", line):
                items += _list_after(lines[i + 1 :])
    return items


def _list_after(lines: list[str]) -> list[str]:
    items: list[str] = []
    for line in lines:
        if re.match(r"\d+\.\s", line):
            items.append(line.split(".", 1)[1])
        elif items and (line.startswith("   ") or not line.strip()):
            items[-1] += " " + line
        elif items or line.strip():
            break
    return [" ".join(item.split()) for item in items]


def _norm(text: str) -> str:
    return " ".join(text.split())


def _chapter_files() -> dict[str, Path]:
    """Every page of `_toc.yml` with code, sections (4.1) included, by file stem."""
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    entries = [toc["root"]]
    for chapter in toc["chapters"]:
        entries += [chapter["file"]] + [s["file"] for s in chapter.get("sections", [])]
    found = {}
    for entry in entries:
        path = next(p for p in (BOOK / f"{entry}.md", BOOK / f"{entry}.ipynb") if p.exists())
        if any(c.cell_type == "code" for c in _read(path).cells):
            found[path.stem] = path
    return found


def _code_cell(notebook, snippet: str, chapter: str) -> int:
    found = [
        i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and snippet in c.source
    ]
    assert len(found) == 1, f"{chapter}: {len(found)} code cells hold {snippet!r}"
    return found[0]


def _edited_cells(notebook, exercise: Exercise) -> dict[int, str]:
    """Cell index -> its source with the exercise's edits applied."""
    sources: dict[int, str] = {}
    for edit in exercise.edits:
        index = _code_cell(notebook, edit.cell, exercise.chapter)
        source = sources.get(index, notebook.cells[index].source)
        assert edit.old in source, f"{exercise.chapter}: {edit.old!r} not in the cell"
        sources[index] = source.replace(edit.old, edit.new)
    return sources


def test_every_exercise_has_exactly_one_entry():
    files = _chapter_files()
    problems = []
    used: set[int] = set()
    for stem, path in files.items():
        notebook = _read(path)
        for item in exercise_items(notebook):
            hits = [
                k for k, ex in enumerate(EXERCISES) if ex.chapter == stem and _norm(ex.text) in item
            ]
            if len(hits) != 1:
                problems.append(f"{stem}: {len(hits)} entries for {item[:70]!r}")
                continue
            used.update(hits)
            entry = EXERCISES[hits[0]]
            if not entry.edits and not entry.none:
                problems.append(f"{stem}: {entry.text!r} has neither edits nor a reason")
            if HANDS_ON.search(item) and not entry.edits:
                problems.append(f"{stem}: {entry.text!r} asks for a cell edit; give it")
            if entry.edits:
                try:
                    _edited_cells(notebook, entry)
                except AssertionError as exc:
                    problems.append(str(exc))
    stale = [f"{ex.chapter}: {ex.text!r}" for k, ex in enumerate(EXERCISES) if k not in used]
    assert not problems, "\n".join(problems)
    assert not stale, "entries that match no exercise:\n" + "\n".join(stale)


def test_every_chapter_with_code_has_exercises_found():
    """The parser sees each chapter's list (a heading renamed would hide them all)."""
    empty = [stem for stem, path in _chapter_files().items() if stem != "intro"]
    empty = [stem for stem in empty if not exercise_items(_read(_chapter_files()[stem]))]
    assert not empty, f"no exercises found in {empty}"


def _with_edits() -> list[str]:
    stems = _chapter_files()
    return [s for s in stems if any(ex.chapter == s and ex.edits for ex in EXERCISES)]


@pytest.mark.parametrize("chapter", _with_edits())
def test_exercise_edits_run(chapter, tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR10_DIR", str(_synthetic_cifar(tmp_path / "cifar10")))
    monkeypatch.setenv("EPOCHS", "1")
    monkeypatch.setenv("SUBSET", "40")
    monkeypatch.setenv("RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("RFKIT_BOOK_HTML", str(tmp_path / "html"))  # 4.1's explorer page
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    )
    notebook = _read(_chapter_files()[chapter])
    last = len(notebook.cells) - 1
    plans = []
    for k, ex in enumerate(e for e in EXERCISES if e.chapter == chapter and e.edits):
        sources = _edited_cells(notebook, ex)
        first, end = min(sources), last if ex.through_end else max(sources)
        plans.append((first, end, k, ex, sources))
    plans.sort(key=lambda p: (p[0], p[2]))
    failures, expected, passed_but_known = [], [], []
    client = NotebookClient(
        copy.deepcopy(notebook),  # execute_cell stores each cell it runs in client.nb
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(BOOK)}},
    )
    scratch = nb_cell("pass")

    def run(source: str, index: int) -> None:
        cell = copy.deepcopy(notebook.cells[index]) if index >= 0 else copy.deepcopy(scratch)
        cell.source = source
        client.execute_cell(cell, max(index, 0), store_history=False)

    with client.setup_kernel():
        done = 0  # the chapter's cells run so far
        for first, end, k, ex, sources in plans:
            for i in range(done, first):
                if notebook.cells[i].cell_type == "code":
                    try:
                        run(notebook.cells[i].source, i)
                    except CellExecutionError as exc:  # the chapter itself fails
                        pytest.fail(f"{chapter}, cell {i} (unedited): {exc}", pytrace=False)
            done = max(done, first)
            run_dir = str(tmp_path / f"exercise-{k}")
            run(SAVE.format(run_dir=run_dir), -1)
            error = None
            for i in range(first, end + 1):
                if notebook.cells[i].cell_type != "code":
                    continue
                try:
                    run(sources.get(i, notebook.cells[i].source), i)
                except CellExecutionError as exc:
                    error = f"{chapter}: exercise {ex.text!r}, cell {i}:\n{exc}"
                    break
            run(RESTORE.format(run_dir=str(tmp_path / "run")), -1)
            if ex.raises:
                plain = re.sub(r"\x1b\[[0-9;]*m", "", error or "")
                if ex.raises not in plain:
                    failures.append(f"{chapter}: {ex.text!r} should fail with {ex.raises!r}")
            elif error and not ex.known_failure:
                failures.append(error)
            elif error:
                expected.append(f"{ex.text!r}: {ex.known_failure}")
            elif ex.known_failure:
                passed_but_known.append(f"{ex.text!r} runs now: delete its known_failure")
    assert not failures, "\n\n".join(failures)
    assert not passed_but_known, "\n".join(passed_but_known)
    if expected:
        pytest.xfail("; ".join(expected))


def nb_cell(source: str):
    import nbformat

    return nbformat.v4.new_code_cell(source)
