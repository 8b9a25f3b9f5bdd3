"""The s9 preset is the assignment's Net: same counts, same tree, interchangeable weights."""

from __future__ import annotations

import torch
import torch.nn as nn
import torchinfo

from netbuilder.build import ConvLayer, build, count_params
from netbuilder.presets import s9


def test_s9_has_190509_parameters():
    assert count_params(build(s9(), (3, 32, 32))) == 190_509


def test_s9_per_layer_counts():
    model = build(s9())
    convs = [
        sum(p.numel() for p in m.conv.parameters())
        for m in model.modules()
        if isinstance(m, ConvLayer)
    ]
    norms = [
        sum(p.numel() for p in m.norm.parameters())
        for m in model.modules()
        if isinstance(m, ConvLayer)
    ]
    # plain 3x3 no bias: 9*c_in*c_out; dws(c): (9c + c) + (c*c + c)
    assert convs == [
        621,  # 9*3*23
        782,  # 9*23+23 + 23*23+23 = 230 + 552
        6_624,  # 9*23*32
        1_376,
        1_376,  # 9*32+32 + 32*32+32 = 320 + 1056
        18_144,  # 9*32*63
        4_662,
        4_662,  # 630 + 63*63+63 = 630 + 4032
        52_731,  # 9*63*93
        9_672,
        9_672,  # 930 + 93*93+93 = 930 + 8742
        77_841,  # 9*93*93
    ]
    assert norms == [2 * c for c in (23, 23, 32, 32, 32, 63, 63, 63, 93, 93, 93, 93)]
    assert sum(p.numel() for p in model.head.parameters()) == 940  # 93*10 + 10


def test_same_torchinfo_summary_as_example(example_net):
    def rows(model: nn.Module):
        info = torchinfo.summary(model, input_size=(1, 3, 32, 32), verbose=0)
        return info.total_params, [
            (r.class_name, r.depth, r.var_name, tuple(r.output_size), r.num_params)
            for r in info.summary_list
        ]

    ours, theirs = rows(build(s9())), rows(example_net())
    assert ours == theirs
    assert ours[0] == 190_509
    sizes = [r[3][-1] for r in ours[1] if r[2].startswith("t")]
    assert sizes == [30, 26, 18, 2]  # 32-2, 30-4, 26-8, 18-16


def test_same_module_tree_and_state_dict_keys(example_net):
    ours, theirs = build(s9()), example_net()
    assert [(n, type(m).__name__) for n, m in ours.named_modules()] == [
        (n, type(m).__name__) for n, m in theirs.named_modules()
    ]
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }


def test_state_dicts_are_interchangeable(example_net):
    torch.manual_seed(0)
    theirs = example_net()
    theirs.train()
    with torch.no_grad():  # move BatchNorm's running statistics away from their defaults
        theirs(torch.randn(8, 3, 32, 32))
    ours = build(s9())
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(4, 3, 32, 32)
    ours.eval(), theirs.eval()
    assert torch.equal(ours(x), theirs(x))
    back = example_net()
    back.load_state_dict(ours.state_dict(), strict=True)
    back.eval()
    assert torch.equal(back(x), theirs(x))


def test_s9_receptive_field_is_48(analyze):
    # 8 size-keeping 3x3 units add 2 each (16), the transitions 2*(1+2+4+8) = 30: 1+16+30 = 47
    # after t4; the global average over the 2x2 map adds (2-1)*1: 48.
    out = analyze(build(s9()).eval(), (3, 32, 32)).output
    assert tuple(out.rf) == (48, 48)


def _class_source(path, name):
    import ast

    tree = ast.parse(path.read_text())
    return next(ast.dump(n) for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)


def test_example_preset_and_export_are_one_code_shape(tmp_path, example_net, analyze):
    """examples/s9_net.py, the s9 preset and `netbuilder export s9` give rfcalc the same rows."""
    from pathlib import Path

    from netbuilder.cli import main
    from rfcalc.load import load_target

    exported = tmp_path / "s9_export.py"
    assert main(["export", "s9", "-o", str(exported)]) == 0
    nets = {"example": example_net(), "preset": build(s9()), "export": load_target(str(exported))}
    rows = {k: analyze(m.eval(), (3, 32, 32)) for k, m in nets.items()}
    names = {k: [(r.name, r.op) for r in a.rows] for k, a in rows.items()}
    assert names["preset"] == names["example"] and names["export"] == names["example"]
    # the skip of the first dws block is its ConvLayer's own add, named under its module
    assert ("c1.1.add", "add") in names["example"]
    # 5 plain ConvLayers (stem, t1..t4): conv, norm, relu, drop; 7 dws ones: conv.0, conv.1,
    # norm, relu, drop, add; then gap, head, flatten, log_softmax: 20 + 42 + 4 = 66 rows
    assert len(names["example"]) == 5 * 4 + 7 * 6 + 4
    for analysis in rows.values():
        assert analysis.params == 190_509 and tuple(analysis.output.rf) == (48, 48)
    # and the block itself is one text: the example's ConvLayer is the one export writes
    example = Path(__file__).resolve().parents[2] / "examples" / "s9_net.py"
    assert _class_source(example, "ConvLayer") == _class_source(exported, "ConvLayer")
