"""`netbuilder.create(name, budget=...)` and the package's face: one way to a net by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import netbuilder
from netbuilder.cli import main

ROOT = Path(__file__).resolve().parents[2]


def params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_a_preset_is_the_example_net(example_net):
    model, reference = netbuilder.create("s9"), example_net()
    assert params(model) == params(reference)  # examples/s9_net.py, written by hand
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    assert model.eval()(x).shape == reference.eval()(x).shape == (2, 10)


def test_a_variant_is_widened_to_the_budget_as_the_export_is(tmp_path, capsys):
    model = netbuilder.create("dws-dilated-skip-x2", budget=150_000)
    assert 100_000 < params(model) <= 150_000
    # the command line's file for the same name and budget has the same parameters
    target = tmp_path / "v.py"
    assert main(["export", "dws-dilated-skip-x2", "--budget", "150000", "-o", str(target)]) == 0
    from rfcalc.load import load_target

    assert params(load_target(str(target))) == params(model)
    # without a budget a variant gets the command line's default, a preset keeps its widths
    assert params(netbuilder.create("dws-dilated-skip-x2")) <= netbuilder.DEFAULT_BUDGET
    assert params(netbuilder.create("dws-dilated-skip-x2")) > params(model)


def test_a_preset_with_a_budget_and_a_spec_are_accepted(tmp_path):
    small = netbuilder.create("s9", budget=100_000)
    assert 50_000 < params(small) <= 100_000
    spec = netbuilder.spec_for("s9", 100_000)
    assert params(netbuilder.create(spec)) == params(small)
    path = tmp_path / "net.json"
    path.write_text(json.dumps(netbuilder.s9().to_dict()))
    assert params(netbuilder.create(path)) == params(netbuilder.create("s9"))


@pytest.mark.parametrize(
    "name, budget, expected",
    [
        ("s10", None, "unknown variant 's10'"),
        ("dws-dilated-skip-x2", 0, "must be between 1 and 20,000,000 parameters, not 0"),
        ("missing.json", None, "missing.json: cannot read"),
    ],
)
def test_bad_names_and_budgets_are_spec_errors(name, budget, expected):
    with pytest.raises(netbuilder.SpecError, match=expected):
        netbuilder.create(name, budget=budget)


def test_every_public_name_resolves():
    for name in netbuilder.__all__:
        assert getattr(netbuilder, name) is not None, name
    with pytest.raises(AttributeError):
        netbuilder.no_such_name  # noqa: B018
    import training

    for name in training.__all__:
        assert getattr(training, name) is not None, name


def test_importing_netbuilder_loads_neither_torch_nor_sympy():
    code = "import sys, netbuilder; print('torch' in sys.modules, 'sympy' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        timeout=120,
        check=True,
    ).stdout
    assert out.split() == ["False", "False"]
