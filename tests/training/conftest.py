"""Fixtures for the training tests; the data and model makers live in train_synth.py."""

from __future__ import annotations

import os
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


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory):
    """One local Ray for every test that runs Tune (rfsweep's and rfsearch's; a start costs
    10-40 s on this machine): 2 CPUs, no dashboard. Its workers import this checkout
    (PYTHONPATH) and find test_sweep_ray's trap folder (RFSWEEP_TEST_TRAP), both inherited
    from here; the fixture's value is that folder."""
    ray = pytest.importorskip("ray")
    from training.tune_sweep import RayUnavailable, start_ray

    trap = tmp_path_factory.mktemp("trap")
    env = {"PYTHONPATH": str(ROOT), "RFSWEEP_TEST_TRAP": str(trap)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the workers start with this environment
    try:
        try:  # local, dashboard off, tried again if a loaded machine is slow
            start_ray(num_cpus=2, tries=3)
        except RayUnavailable as exc:  # the machine, not the code: said in the skip reason
            pytest.skip(str(exc))
        yield trap
        ray.shutdown()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
