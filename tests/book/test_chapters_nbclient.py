"""Every chapter runs as a notebook outside the book build, as a student runs it in JupyterLab.

Each chapter of `_toc.yml` is read as a notebook (jupytext for the MyST `.md` chapters,
nbformat for the `.ipynb` ones) and executed top to bottom by nbclient in a fresh kernel, in
book/ as JupyterLab would: a chapter that only works inside `jupyter-book build` fails here.

Chapters 6 and 7 need CIFAR-10; they get a tiny synthetic image-folder copy written here
(`CIFAR10_DIR`), and chapter 7 trains on it for one short epoch (`EPOCHS`, `SUBSET`) into a
temporary run folder (`RUN_DIR`). The notebooks are executed in memory: nothing in book/ is
rewritten.
"""

from __future__ import annotations

import os
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pytest
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
BOOK = REPO / "book"
CELL_TIMEOUT = 600  # seconds; a chapter's slowest cell (variants, a training epoch) is far less


def _chapters() -> list[Path]:
    """The chapter files of `_toc.yml`, in reading order, that hold code."""
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    found = []
    for entry in [toc["root"]] + [c["file"] for c in toc["chapters"]]:
        path = next(p for p in (BOOK / f"{entry}.md", BOOK / f"{entry}.ipynb") if p.exists())
        if any(c.cell_type == "code" for c in _read(path).cells):
            found.append(path)
    return found


def _read(path: Path) -> nbformat.NotebookNode:
    if path.suffix == ".ipynb":
        return nbformat.read(path, as_version=4)
    return jupytext.read(path)  # the MyST chapter as the notebook JupyterLab opens


def _synthetic_cifar(root: Path, train: int = 8, test: int = 4) -> Path:
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


def _pending_rewrite(path: Path) -> bool:
    """Chapter 7 before its rewrite reads a finished run and cannot train on EPOCHS/SUBSET."""
    return path.name == "07_training.ipynb" and "EPOCHS" not in path.read_text()


@pytest.mark.parametrize("chapter", _chapters(), ids=lambda p: p.stem)
def test_chapter_runs_as_a_notebook(chapter, tmp_path, monkeypatch, request):
    if _pending_rewrite(chapter):
        request.applymarker(
            pytest.mark.xfail(
                reason="chapter 7 does not honour EPOCHS/SUBSET/RUN_DIR yet (being rewritten)",
                strict=True,
            )
        )
    # the kernel inherits this environment: the synthetic data, a one-epoch run, and this
    # checkout's packages ahead of any installed copy
    monkeypatch.setenv("CIFAR10_DIR", str(_synthetic_cifar(tmp_path / "cifar10")))
    monkeypatch.setenv("EPOCHS", "1")
    monkeypatch.setenv("SUBSET", "40")
    monkeypatch.setenv("RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    )
    notebook = _read(chapter)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(BOOK)}},
    )
    try:
        client.execute()
    except CellExecutionError as exc:  # the failing cell and its traceback, not nbclient's
        pytest.fail(f"{chapter.name}: {exc}", pytrace=False)
