"""What the rule tests share: tests/rfcalc on sys.path (for `measure`, as the tests there
import it), and a fixture that puts the rule table back after a test registers a rule."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# pytest puts this folder on sys.path (rootdir import mode, no __init__.py); `measure` lives
# one folder up
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rfcalc.rules import RULES, dispatch  # noqa: E402


@pytest.fixture
def restore_registry():
    """The rule table, the unknown-inputs set and the layout-keeping set as they were."""
    saved = dict(RULES), set(dispatch._SEES_UNKNOWN), set(dispatch._KEEPS_LAYOUT)
    yield
    RULES.clear()
    RULES.update(saved[0])
    dispatch._SEES_UNKNOWN.clear()
    dispatch._SEES_UNKNOWN.update(saved[1])
    dispatch._KEEPS_LAYOUT.clear()
    dispatch._KEEPS_LAYOUT.update(saved[2])
