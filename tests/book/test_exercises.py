"""Every exercise of every page has exactly one entry in exercise_edits.py, and each entry
names cells that exist: a hands-on exercise (one that asks for a cell edit) gives its edit,
any other says why there is nothing to run.

The edits themselves run inside each page's notebook run (test_chapters_nbclient.py): one
kernel per page, each exercise's edited cells run where a reader would make the change.
"""

from __future__ import annotations

import re

from chapters import edited_cells, pages, read
from exercise_edits import EXERCISES

HANDS_ON = re.compile(r"Hands-on|Predict, then run|\bIn the [^.]*\bcell\b|\bin the [^.]*\bcell\b")


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


def test_every_exercise_has_exactly_one_entry():
    files = pages()
    problems = []
    used: set[int] = set()
    for stem, path in files.items():
        notebook = read(path)
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
                    edited_cells(notebook, entry)
                except AssertionError as exc:
                    problems.append(str(exc))
    stale = [f"{ex.chapter}: {ex.text!r}" for k, ex in enumerate(EXERCISES) if k not in used]
    assert not problems, "\n".join(problems)
    assert not stale, "entries that match no exercise:\n" + "\n".join(stale)


def test_every_chapter_with_code_has_exercises_found():
    """The parser sees each chapter's list (a heading renamed would hide them all)."""
    empty = [stem for stem, path in pages().items() if stem != "intro"]
    empty = [stem for stem in empty if not exercise_items(read(pages()[stem]))]
    assert not empty, f"no exercises found in {empty}"
