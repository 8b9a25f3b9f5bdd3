"""Shared fixtures for the netbuilder tests: the example Net and rfcalc's analyzer."""

from __future__ import annotations

from pathlib import Path

import pytest

from rfcalc.load import load_target

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "s9_net.py"


@pytest.fixture
def example_net():
    """A maker of the assignment's Net from examples/s9_net.py, loaded as rfcalc loads it."""
    return lambda: load_target(str(EXAMPLE))


@pytest.fixture
def analyze():
    """rfcalc's analyze."""
    from rfcalc import analyze

    return analyze


@pytest.fixture(autouse=True)
def _one_thread():
    """These tests run tiny batches: one thread avoids hand-off stalls on a shared 2-core box."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
