"""rfcalc.summary and the Analysis it returns: torchinfo's call, channels and MACs per row,
depth / columns / compact, grouped notes, several outputs, the Analysis as a sequence.

MACs are worked out by hand (output elements × the products each needs) or taken from
torchinfo, which counts the same weight products plus each bias once per output position.
"""

import json
import sys
import types
from math import prod

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import rfcalc
from rfcalc import RFError, analyze, summary
from rfcalc.load import load_target
from rfcalc.render import render


class Mixed(nn.Module):
    """Every counted kind of op on a 3×10×10 input, with its MACs by hand."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)  # 8·10·10 outputs × 3·3·3 = 21,600
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=4)  # 800 × (8/4)·9 = 14,400
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)  # 800 inputs × 4·2·2 = 12,800
        self.fc = nn.Linear(4 * 20 * 20, 5)  # 5 × 1,600 = 8,000

    def forward(self, x):
        x = self.grouped(self.conv(x))
        # attention over the 100 positions, 2 heads of 4: q·kᵀ 2·100·4 × 100 = 80,000,
        # then the weights times v, 80,000 again
        t = x.flatten(2).reshape(1, 2, 4, 100).transpose(-1, -2)
        a = F.scaled_dot_product_attention(t, t, t)
        x = a.transpose(-1, -2).reshape(1, 8, 10, 10) + x
        return self.fc(self.up(x).flatten(1))


def test_macs_of_each_op_by_hand():
    a = analyze(Mixed(), (3, 10, 10))
    assert a["conv"].macs == 8 * 100 * 27
    assert a["grouped"].macs == 800 * 18
    assert a["up"].macs == 800 * 16
    assert a["fc"].macs == 5 * 1600
    attention = [r for r in a if r.op == "scaled_dot_product_attention"]
    assert [r.macs for r in attention] == [160_000]
    assert a.macs == 21_600 + 14_400 + 12_800 + 8_000 + 160_000
    assert [a[n].channels for n in ("conv", "grouped", "up", "fc")] == [8, 8, 4, 5]
    assert a["relu"].macs == 0 if "relu" in a else True


def test_macs_match_torchinfo_on_the_assignments_net():
    torchinfo = pytest.importorskip("torchinfo")
    model = load_target("examples/s9_net.py")
    ours = analyze(model, (3, 32, 32))
    stats = torchinfo.summary(model, input_size=(1, 3, 32, 32), verbose=0)
    names = {m: n for n, m in model.named_modules()}
    convs = bias_adds = norm_params = 0
    for layer in stats.summary_list:
        module = layer.module
        if isinstance(module, nn.Conv2d):
            positions = prod(layer.output_size[2:])
            bias = module.bias.numel() * positions if module.bias is not None else 0
            # torchinfo: weight products plus one add per bias and output position
            assert layer.macs == ours[names[module]].macs + bias, names[module]
            convs += 1
            bias_adds += bias
        elif isinstance(module, nn.BatchNorm2d):
            norm_params += sum(p.numel() for p in module.parameters())
    # every conv of the Net was compared
    assert convs == sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 20
    assert stats.total_mult_adds == ours.macs + bias_adds + norm_params
    assert ours.macs == 51_654_850


def test_summary_takes_torchinfos_input_size_and_says_the_batch_once():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    batched = summary(model, input_size=(1, 3, 12, 12))
    assert batched.input_shape == (3, 12, 12) and batched.batch == 1
    text = str(batched)
    assert text.count("batch") == 1
    assert "Input: 1×3×12×12 (N×C×H×W), a batch of 1: fields and MACs are per image" in text
    plain = summary(model, (3, 12, 12))
    assert plain.batch is None and "Input: 3×12×12 (C×H×W)\n" in str(plain)
    data = summary(model, input_data=torch.zeros(4, 3, 12, 12))
    assert data.batch == 4 and data.input_shape == (3, 12, 12)
    assert data.macs == plain.macs == 4 * 100 * 27  # per image, whatever the batch
    one_d = nn.Sequential(nn.Conv1d(5, 2, 3))
    assert summary(one_d, (2, 5, 50)).batch == 2
    assert summary(one_d, (5, 50)).batch is None
    # no conv to count axes by: four dimensions are a batch, three are not
    assert summary(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), (2, 3, 2, 2)).batch == 2


def test_summary_refuses_what_it_cannot_read():
    model = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(RFError, match=r"\(C, H, W\), or with the batch first"):
        summary(model, (3, 12))
    with pytest.raises(RFError, match="give one of input_size"):
        summary(model)
    with pytest.raises(RFError, match="give one of input_size"):
        summary(model, (3, 8, 8), input_data=torch.zeros(1, 3, 8, 8))
    with pytest.raises(RFError, match="for several inputs"):
        summary(model, [(1, 3, 8, 8), (1, 3, 8, 8)])
    with pytest.raises(ValueError, match="unknown column 'size2'; choose from name, op"):
        summary(model, (3, 8, 8), columns=["rf", "size2"])


def test_summary_shows_itself_as_the_table_and_analyze_as_one_line():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    s = summary(model, (1, 3, 8, 8), columns=["rf", "macs"])
    assert repr(s) == str(s).rstrip("\n")
    assert repr(s).splitlines()[1].split() == ["name", "rf", "macs"]
    assert "<th>name</th><th>rf</th><th>macs</th>" in s._repr_html_()
    a = analyze(model, (3, 8, 8))
    assert repr(a) == (
        "<Analysis of a 3×8×8 input: 2 rows, output rf 3 (exact), 112 parameters, 3,888 MACs>"
    )


@pytest.fixture(scope="module")
def net():
    return analyze(load_target("examples/s9_net.py"), (3, 32, 32))


def test_depth_folds_rows_into_their_modules(net):
    text = render(net, "text", depth=1)
    names = [line.split()[0] for line in text.splitlines()[3:15]]
    assert names == ["c1", "t1", "c2", "t2", "c3", "t3", "c4", "t4"] + [
        "gap",
        "head",
        "flatten",
        "log_softmax",
    ]
    t1 = next(line.split() for line in text.splitlines() if line.startswith("t1 "))
    # t1 is one ConvLayer: its one conv's window, its output (the block's last row), and
    # its parameters: conv 23·32·9 = 6,624 and BatchNorm 2·32 = 64
    assert t1[:2] == ["t1", "ConvLayer"] and t1[2:6] == ["3", "1", "0", "1"]
    assert t1[-2:] == ["6,688", f"{32 * 30 * 30 * 23 * 9:,}"]
    assert "12 rows shown of 66 (depth 0 shows every row)" in text
    assert text.count("\n") < render(net, "text", depth=0).count("\n")


def test_columns_and_compact(net):
    text = render(net, "text", columns=["rf", "channels"], compact=True)
    lines = text.splitlines()
    assert lines[1].split() == ["name", "rf", "channels"]
    shown = [line.split()[0] for line in lines[3:] if line and not line.startswith("=")]
    ops = {r.name: r.op for r in net}
    kept = [n for n in shown if n in ops]
    assert not {ops[n] for n in kept} & {"BatchNorm2d", "relu", "Dropout"}
    assert {"c1.0.conv", "c1.1.add", "t4.conv", "gap", "head"} <= set(kept)
    assert "that change neither size nor field are left out" in text


def test_the_nets_text_table_fits_120_columns_with_every_row(net):
    text = str(net)
    width = len(text.splitlines()[0])
    assert width <= 120 and all(r.name in text for r in net)


def test_vit_fits_a_terminal_and_says_its_shared_note_once():
    torchvision = pytest.importorskip("torchvision")
    a = analyze(torchvision.models.vit_b_16(), (3, 224, 224))
    text = str(a)
    assert len(text.splitlines()[0]) <= 120
    note = "multi_head_attention_forward: attention reads every position"
    rows = [r for r in a if r.note == note]
    assert len(rows) > 100
    assert text.count(note) == 2  # the output line, and the notes once for all its rows
    assert f"{rows[0].name} … {rows[-1].name} (global, {len(rows)} rows): {note}" in text
    assert 17.5e9 < a.macs < 17.6e9  # ViT-B/16 is quoted at 17.6 GFLOPs (multiply-adds)


def test_an_analysis_is_a_sequence_of_rows(net):
    assert len(net) == len(net.rows) == 66
    assert net["t4.conv"] is next(r for r in net.rows if r.name == "t4.conv")
    assert net[0].name == "c1.0.conv" and [r.name for r in net] == [r.name for r in net.rows]
    assert "t4.conv" in net and "t9.conv" not in net
    assert [r.name for r in net[-2:]] == ["flatten", "log_softmax"]
    with pytest.raises(KeyError, match="did you mean 't4.conv'"):
        net["t4.cnv"]
    assert net.to_dict() == json.loads(net.render("json"))
    assert net.to_dict()["macs"] == 51_654_850


def test_to_pandas_says_what_to_install_and_builds_one_row_per_op(net, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        net.to_pandas()
    seen = {}

    class DataFrame:
        @staticmethod
        def from_records(records, index):
            seen.update(records=records, index=index)
            return "frame"

    monkeypatch.setitem(sys.modules, "pandas", types.SimpleNamespace(DataFrame=DataFrame))
    assert net.to_pandas() == "frame" and seen["index"] == "name"
    first = seen["records"][0]
    assert first["name"] == "c1.0.conv" and first["kernel"] == (3, 3) and first["macs"] == 635_904


class TwoHeads(nn.Module):
    def __init__(self, as_dict: bool):
        super().__init__()
        self.as_dict = as_dict
        self.a = nn.Conv2d(1, 2, 3)
        self.b = nn.Conv2d(2, 3, 3)

    def forward(self, x):
        aux = self.a(x)
        out = self.b(aux)
        return {"out": out, "aux": aux} if self.as_dict else (out, aux)


@pytest.mark.parametrize(
    "as_dict, labels", [(True, ["['out']", "['aux']"]), (False, ["[0]", "[1]"])]
)
def test_several_outputs_each_summarised(as_dict, labels):
    a = analyze(TwoHeads(as_dict), (1, 9, 9))
    assert [w for w, _ in a.outputs] == labels
    assert [r.name for _, r in a.outputs] == ["b", "a"] and a.output.name == "b"
    assert [tuple(r.rf) for _, r in a.outputs] == [(5, 5), (3, 3)]
    text = str(a)
    assert (
        f"the model returns 2 tensors ({', '.join(labels)}); "
        f"the lines below are of the first, {labels[0]} (row b)" in " ".join(text.split())
    )
    assert f"Output {labels[1]}: row a, rf 3, jump 1, size 7, channels 2" in text
    assert [o["name"] for o in a.to_dict()["outputs"]] == ["b", "a"]
    single = analyze(nn.Conv2d(1, 2, 3), (1, 9, 9))
    assert single.outputs == () and "Outputs:" not in str(single)


def test_rfcalc_table_depth_columns_compact(capsys):
    from rfcalc.cli import main

    assert main(["table", "examples/s9_net.py", "--depth", "1", "--columns", "rf,macs"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["name", "rf", "macs"] and out[3].split()[0] == "c1"
    assert main(["table", "examples/s9_net.py", "--compact", "--format", "csv"]) == 0
    assert "c1.0.norm" not in capsys.readouterr().out
    assert main(["table", "examples/s9_net.py", "--columns", "rf,nope"]) == 2
    assert "unknown column 'nope'; choose from" in capsys.readouterr().err
    assert main(["table", "examples/s9_net.py", "--depth", "-1"]) == 2
    assert "give 0 (every row) or more" in capsys.readouterr().err


def test_summary_is_rfcalcs_public_name():
    assert rfcalc.summary is summary and "summary" in rfcalc.__all__


def test_macs_agree_with_netbuilders_polynomial():
    """netbuilder counts the same weight products symbolically, from the spec alone."""
    from netbuilder.budget import evaluate, macs_poly
    from netbuilder.build import Net
    from netbuilder.presets import s9

    spec = s9()
    for shape in ((3, 32, 32), (3, 40, 36)):
        expected = evaluate(macs_poly(spec, shape), spec.widths)
        assert analyze(Net(spec), shape).macs == expected


def test_summary_hints_at_the_channels_in_torchinfos_terms():
    grey = nn.Sequential(nn.Conv2d(1, 4, 3))
    with pytest.raises(RFError, match=r"input_size is N,C,H,W: try input_size=\(8, 1, 16, 16\)$"):
        summary(grey, input_size=(8, 3, 16, 16))
    with pytest.raises(RFError, match=r"input_size is C,H,W: try input_size=\(1, 16, 16\)$"):
        summary(grey, input_size=(16, 16, 1))  # channels typed last
