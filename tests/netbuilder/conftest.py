"""Shared fixtures for the netbuilder tests: the example Net, file loading, rfcalc's analyzer."""
from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "s9_net.py"
_ids = itertools.count()


def load_class(path: Path, name: str = "Net"):
    """A class from a Python file, imported under a fresh module name."""
    spec = importlib.util.spec_from_file_location(f"_nb_test_{next(_ids)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


@pytest.fixture
def example_net():
    """The assignment's Net class from examples/s9_net.py."""
    return load_class(EXAMPLE)


@pytest.fixture
def analyze():
    """rfcalc's analyze (the receptive-field tests wait for it to exist)."""
    try:
        from rfcalc import analyze
    except ImportError:
        try:
            from rfcalc.analysis import analyze
        except ImportError:
            pytest.skip("rfcalc.analyze has not landed yet")
    return analyze


@pytest.fixture(autouse=True)
def _one_thread():
    """These tests run tiny batches: one thread avoids hand-off stalls on a shared 2-core box."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
