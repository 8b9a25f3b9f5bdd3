"""Fixtures for the training tests; the data and model makers live in train_synth.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_synth import TINY_MODEL, write_pickles


@pytest.fixture
def pickles(tmp_path: Path) -> Path:
    return write_pickles(tmp_path / "data")


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.py"
    path.write_text(TINY_MODEL)
    return path
