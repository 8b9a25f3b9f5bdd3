"""The book's pages as notebooks, and each exercise's edit as a plan to run, for the tests in
tests/book (test_chapters_nbclient.py runs them, test_exercises.py checks the table).

A page is read as the notebook JupyterLab opens (jupytext for the MyST `.md` pages, nbformat
for the `.ipynb` ones). An exercise's plan names the cells its edit changes: the run starts at
its first edited cell and ends at its last one (or at the page's last cell: `through_end`).
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import yaml
from exercise_edits import EXERCISES, Exercise
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
BOOK = REPO / "book"


@functools.lru_cache(maxsize=None)
def _parsed(path: Path) -> nbformat.NotebookNode:
    if path.suffix == ".ipynb":
        return nbformat.read(path, as_version=4)
    return jupytext.read(path)  # the MyST chapter as the notebook JupyterLab opens


def read(path: Path) -> nbformat.NotebookNode:
    """The page as a notebook (a copy of the one parse per run: callers may change it)."""
    return copy.deepcopy(_parsed(path))


@functools.lru_cache(maxsize=None)
def pages() -> dict[str, Path]:
    """Every page of `_toc.yml` that holds code, sections (4.1) included, by file stem, in
    reading order."""
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    entries = [toc["root"]]
    for chapter in toc["chapters"]:
        entries += [chapter["file"]] + [s["file"] for s in chapter.get("sections", [])]
    found = {}
    for entry in entries:
        path = next(p for p in (BOOK / f"{entry}.md", BOOK / f"{entry}.ipynb") if p.exists())
        if any(c.cell_type == "code" for c in read(path).cells):
            found[path.stem] = path
    return found


def synthetic_cifar(root: Path, train: int = 8, test: int = 4) -> Path:
    """train/<class>/*.png and test/<class>/*.png, 32x32 RGB noise, for the ten classes."""
    from training.data import CLASSES

    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("test", test)):
        for name in CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def code_cell(notebook: nbformat.NotebookNode, snippet: str, chapter: str) -> int:
    """The index of the one code cell whose source holds `snippet`."""
    found = [
        i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and snippet in c.source
    ]
    assert len(found) == 1, f"{chapter}: {len(found)} code cells hold {snippet!r}"
    return found[0]


def edited_cells(notebook: nbformat.NotebookNode, exercise: Exercise) -> dict[int, str]:
    """Cell index -> its source with the exercise's edits applied."""
    sources: dict[int, str] = {}
    for edit in exercise.edits:
        index = code_cell(notebook, edit.cell, exercise.chapter)
        source = sources.get(index, notebook.cells[index].source)
        assert edit.old in source, f"{exercise.chapter}: {edit.old!r} not in the cell"
        sources[index] = source.replace(edit.old, edit.new)
    return sources


@dataclass(frozen=True)
class Plan:
    """One exercise's run: cells `first`..`end` of the page, with `sources` edited."""

    first: int
    end: int
    number: int  # the exercise's place among its page's edited ones (its run folder)
    exercise: Exercise
    sources: dict[int, str]


def plans(chapter: str, notebook: nbformat.NotebookNode) -> list[Plan]:
    """The page's exercises that edit cells, in the order their first edited cell comes."""
    last = len(notebook.cells) - 1
    found = []
    for k, ex in enumerate(e for e in EXERCISES if e.chapter == chapter and e.edits):
        sources = edited_cells(notebook, ex)
        found.append(Plan(min(sources), last if ex.through_end else max(sources), k, ex, sources))
    return sorted(found, key=lambda p: (p.first, p.number))
