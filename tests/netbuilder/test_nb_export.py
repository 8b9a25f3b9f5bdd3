"""Exported model files: standalone, loadable by rfcalc and training, same weights layout."""

from __future__ import annotations

import ast

import torch
import torch.nn.functional as F

from netbuilder.budget import solve
from netbuilder.build import build, count_params
from netbuilder.export import source
from netbuilder.presets import s9
from netbuilder.variants import lookup
from rfcalc.load import load_target

VARIANT = "plain-strided-noskip-x3"


def _export(tmp_path, spec, name="model.py"):
    path = tmp_path / name
    path.write_text(source(spec))
    return path


def test_file_imports_only_torch_and_defines_the_block_and_the_net(tmp_path):
    tree = ast.parse(_export(tmp_path, s9()).read_text())
    imported = {
        a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported == {"torch"}
    assert [n.name for n in tree.body if isinstance(n, ast.ClassDef)] == ["ConvLayer", "Net"]


def test_exported_s9_matches_the_example(tmp_path, example_net):
    torch.manual_seed(1)
    theirs = example_net()
    with torch.no_grad():
        theirs.train()(torch.randn(8, 3, 32, 32))  # non-default BatchNorm statistics
    ours = load_target(str(_export(tmp_path, s9())))
    assert count_params(ours) == 190_509
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(ours.eval()(x), theirs.eval()(x))


def test_exported_variant_matches_the_built_one(tmp_path):
    spec = solve(lookup(VARIANT), 100_000).spec
    built = build(spec).eval()
    exported = load_target(str(_export(tmp_path, spec))).eval()
    exported.load_state_dict(built.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(exported(x), built(x))


def test_exported_variant_loads_and_trains_one_step(tmp_path):
    # load_target is what `rfcalc table` and training use
    path = _export(tmp_path, solve(lookup("dws-dilated-skip-x3"), 200_000).spec)
    model = load_target(str(path))
    assert count_params(model) <= 200_000
    torch.manual_seed(0)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.head.weight.detach().clone()
    model.train()
    loss = F.nll_loss(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert not torch.equal(before, model.head.weight)


def test_exported_variant_through_rfcalc(tmp_path, analyze):
    path = _export(tmp_path, solve(lookup("dws-dilated-skip-x3"), 200_000).spec)
    # 12 size-keeping 3x3 units (3 per stage) add 24, the transitions 2*(1+2+4+8) = 30:
    # 1 + 24 + 30 = 55 on a 2x2 map; the global average adds 1: 56.
    assert tuple(analyze(load_target(str(path)), (3, 32, 32)).output.rf) == (56, 56)
    from rfcalc.cli import main

    assert main(["table", str(path)]) == 0
