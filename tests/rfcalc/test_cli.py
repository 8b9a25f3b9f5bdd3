"""The rfcalc CLI: in-process through main([...]) (fast), plus two real console-script runs."""

import errno
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rfcalc.cli import main

REPO = Path(__file__).resolve().parents[2]
NET = str(REPO / "examples" / "s9_net.py")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(capsys, *argv, match):
    code, out, err = run(capsys, *argv)
    assert code == 2, (out, err)
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("rfcalc"), err
    assert match in err, err
    return err


def test_table_of_the_assignments_net(capsys):
    code, out, err = run(capsys, "table", NET)
    assert code == 0 and err == ""
    assert "Output receptive field: 48\n" in out
    assert "Parameters: 190,509" in out
    assert "Covers the whole 32×32 input: yes" in out


def test_json_agrees(capsys):
    code, out, _ = run(capsys, "table", NET, "--format", "json")
    doc = json.loads(out)
    assert code == 0
    assert doc["input"] == [3, 32, 32]
    assert doc["output"]["rf"] == [48, 48]
    assert doc["params"] == 190509
    assert doc["covers_input"] is True
    # 32 → 30 → 26 → 18 → 2 through the transitions (dilations 1, 2, 4, 8, no padding):
    # 32-2·1 = 30, 30-2·2 = 26, 26-2·4 = 18, 18-2·8 = 2
    sizes = {layer["name"]: layer["size"] for layer in doc["layers"]}
    assert [sizes[f"t{i}.conv"] for i in (1, 2, 3, 4)] == [[30, 30], [26, 26], [18, 18], [2, 2]]
    # the data flow: ConvLayer.forward returns x + dropout(relu(norm(conv(x))))
    inputs = {layer["name"]: layer["inputs"] for layer in doc["layers"]}
    assert inputs["c1.0.conv"] == ["input"]
    assert inputs["c2.0.add"] == ["t1.drop", "c2.0.drop"]


@pytest.mark.parametrize(
    "fmt, fragment",
    [
        ("markdown", "| name | op | kernel |"),
        (
            "csv",
            "name,op,kernel,stride,padding,dilation,channels,size,jump,rf,start,params,macs,"
            "status,note\n",
        ),
        ("html", "<!DOCTYPE html>"),
        ("latex", "\\begin{tabular}"),
    ],
)
def test_other_formats(capsys, fmt, fragment):
    code, out, _ = run(capsys, "table", NET, "--format", fmt)
    assert code == 0 and fragment in out


def test_torchvision_resnet18_as_a_target(capsys):
    code, out, _ = run(
        capsys, "table", "torchvision.models:resnet18", "--input", "3,224,224", "--format", "json"
    )
    doc = json.loads(out)
    assert code == 0
    layers = {layer["name"]: layer for layer in doc["layers"]}
    # By hand: conv1 7 (jump 2); maxpool 3/2: 7+2·2 = 11 (jump 4); layer1, four 3×3:
    # 11+4·2·4 = 43; layer2: 43+2·4 = 51 (jump 8), +3·2·8 = 99; layer3: 99+2·8 = 115
    # (jump 16), +3·2·16 = 211; layer4: 211+2·16 = 243 (jump 32), +3·2·32 = 435.
    assert layers["layer4.1.conv2"]["rf"] == [435, 435]
    assert layers["layer4.1.conv2"]["jump"] == [32, 32]
    assert layers["layer4.1.conv2"]["size"] == [7, 7]
    # 11,689,512: torchvision's documented parameter count for resnet18
    assert doc["params"] == 11689512
    # the adaptive average pool over the 7×7 map is a 7×7 window of jump 32:
    # 435 + (7-1)·32 = 627, which the flatten and fc keep
    assert layers["avgpool"]["kernel"] == [7, 7]
    assert doc["output"]["rf"] == [627, 627]
    assert doc["covers_input"] is True


def write(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_bad_targets(capsys, tmp_path):
    assert_usage_error(capsys, "table", str(tmp_path / "none.py"), match="none.py: no such file")
    bad = write(tmp_path, "bad.py", "import torch\nclass Net(:\n")
    assert_usage_error(capsys, "table", bad, match=f"{bad}:2: syntax error")
    empty = write(tmp_path, "empty.py", "import torch.nn as nn\nx = nn.Conv2d\n")
    assert_usage_error(capsys, "table", empty, match="defines no nn.Module subclass")
    two = write(
        tmp_path,
        "two.py",
        """
        import torch.nn as nn
        class A(nn.Module):
            pass
        class B(nn.Module):
            pass
    """,
    )
    assert_usage_error(capsys, "table", two, match="several nn.Module classes (A, B)")
    args = write(
        tmp_path,
        "args.py",
        """
        import torch.nn as nn
        class A(nn.Module):
            def __init__(self, width):
                super().__init__()
    """,
    )
    assert_usage_error(capsys, "table", f"{args}:A", match="A needs arguments (width)")
    imp = write(tmp_path, "imp.py", "import torch\nfrom no_such_module_rf import x\n")
    assert_usage_error(capsys, "verify", imp, match=f"{imp}:2: import failed")
    assert_usage_error(
        capsys,
        "graph",
        "no_such_pkg_rf:Net",
        "-o",
        str(tmp_path / "g.dot"),
        match="cannot import module 'no_such_pkg_rf'",
    )


def test_bad_options(capsys):
    assert_usage_error(capsys, "table", NET, "--input", "32", match="--input '32': expected C,H,W")
    # 3,32 is a valid 1-D shape, but Conv2d cannot take it: the forward's error, one line
    assert_usage_error(capsys, "table", NET, "--input", "3,32", match="at input 3,32: c1.0.conv")
    assert_usage_error(capsys, "table", NET, "--input", "3,x,32", match="--input '3,x,32'")
    assert_usage_error(capsys, "table", NET, "--format", "yaml", match="invalid choice: 'yaml'")
    assert_usage_error(capsys, "verify", NET, "--format", "yaml", match="invalid choice: 'yaml'")
    assert_usage_error(capsys, "nonsense", match="unknown command 'nonsense'")


def test_input_too_small_for_the_net(capsys):
    # 8 → 8 (c1, padded) → 6 (t1) → 2 (t2, dilation 2): t3's dilated 3×3 spans 9 pixels
    assert_usage_error(capsys, "table", NET, "--input", "3,8,8", match="t3")


def test_graph_dot_and_svg(capsys, tmp_path):
    dot = tmp_path / "net.dot"
    code, out, err = run(capsys, "graph", NET, "-o", str(dot))
    assert code == 0, err
    source = dot.read_text()
    assert source.startswith("digraph rfcalc {")
    assert "t4.conv\\nConv2d 3×3 d8\\n2×2 · j 1 · rf 47" in source
    # refuse to clobber, then overwrite with --force
    dot.write_text("mine")
    assert_usage_error(capsys, "graph", NET, "-o", str(dot), match="exists; pass --force")
    assert dot.read_text() == "mine"
    assert run(capsys, "graph", NET, "-o", str(dot), "--force")[0] == 0
    assert dot.read_text() == source
    svg = tmp_path / "net.svg"
    assert run(capsys, "graph", NET, "-o", str(svg))[0] == 0
    assert "<svg" in svg.read_text()
    # The Net's compact diagram fits a page: a few columns, not a 200 x 7,800 px ribbon.
    assert run(capsys, "graph", NET, "-o", str(svg), "--compact", "--force")[0] == 0
    width, height = (
        float(v)
        for v in re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg.read_text()).groups()
    )
    assert width <= 600 and height <= 900, (width, height)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.dot", "net.svg"]  # no temp left


def test_compact_graph_keeps_what_changes_the_field(capsys, tmp_path):
    import re

    dot = tmp_path / "net.dot"
    assert run(capsys, "graph", NET, "-o", str(dot), "--compact")[0] == 0
    source = dot.read_text()
    # kept: the conv of each plain layer (c1.0, t1..t4: 5), depthwise, pointwise and add of
    # each of the 7 skip layers (21), gap, head and flatten (3); BatchNorm, ReLU, dropout and
    # log_softmax (same size and field as their one input) drop out: 29 nodes and the input
    assert len(re.findall(r"^\s*n\d+ \[", source, re.M)) == 29
    ids = dict(re.findall(r"^\s*(n\d+) \[label=\"([\w.]+)", source, re.M))
    node = {name: n for n, name in ids.items()}
    assert "c1.0.norm" not in node and "log_softmax" not in node
    # the first skip adds the stem's output (through its BN/ReLU/dropout) to the pointwise conv
    for src in ("c1.0.conv", "c1.1.conv.1"):
        assert f"{node[src]} -> {node['c1.1.add']}" in source


def test_graph_errors(capsys, tmp_path, monkeypatch):
    assert_usage_error(
        capsys, "graph", NET, "-o", str(tmp_path / "net.jpeg"), match="unknown graph format '.jpeg'"
    )
    assert_usage_error(
        capsys, "graph", NET, "-o", str(tmp_path / "no" / "net.svg"), match="does not exist"
    )
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` binary to be found
    assert_usage_error(
        capsys, "graph", NET, "-o", str(tmp_path / "net.png"), match="`dot` program was not found"
    )
    assert not (tmp_path / "net.png").exists()
    assert run(capsys, "graph", NET, "-o", str(tmp_path / "net.dot"))[0] == 0


def _console_script():
    script = Path(sys.executable).with_name("rfcalc")
    return [str(script)] if script.exists() else [sys.executable, "-m", "rfcalc"]


def _checkout_env() -> dict:
    """The environment with this checkout first on the path: the installed console script then
    imports the code under test, not whatever `pip install -e` pointed it at."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, PYTHONDONTWRITEBYTECODE="1")


def test_console_script_runs(tmp_path):
    script = _console_script()
    if len(script) == 1:  # the console script's own interpreter finds the checkout's rfcalc
        python = Path(script[0]).read_text().splitlines()[0].removeprefix("#!").strip()
        where = subprocess.run(
            [python, "-c", "import rfcalc.cli; print(rfcalc.cli.__file__)"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=_checkout_env(),
            timeout=120,
        )
        assert Path(where.stdout.strip()) == REPO / "rfcalc" / "cli.py", where
    done = subprocess.run(
        [*script, "table", NET],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_checkout_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Output receptive field: 48\n" in done.stdout
    missing = subprocess.run(
        [*script, "table", "missing.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_checkout_env(),
        timeout=120,
    )
    assert missing.returncode == 2
    assert missing.stderr == "rfcalc: error: missing.py: no such file\n"
    assert missing.stdout == ""


TINY = """
    import torch.nn as nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(1, 2, 3, padding=1)
            self.b = nn.Conv2d(2, 2, 5, padding=2)
            self.c = nn.Conv2d(2, 2, 3, padding=1)

        def forward(self, x):
            return self.c(self.b(self.a(x)))
"""


def test_verify_a_tiny_net(capsys, tmp_path):
    # 1×8×8 input, centre unit (8-1)//2 = 3 on both axes:
    #   a: rf 3, field 3-1..3+1 = 2..4
    #   b: rf 3+4 = 7, field 3-3..3+3 = 0..6
    #   c: rf 7+2 = 9, field 3-4..3+4 = -1..7, clipped by the border to 0..7 (8 inside)
    target = write(tmp_path, "tiny.py", TINY)
    code, out, err = run(capsys, "verify", target, "--input", "1,8,8")
    assert code == 0, err
    lines = [line.split() for line in out.splitlines()]
    assert ["a", "Conv2d", "exact", "3", "3", "2..4", "2..4", "ok"] in lines
    assert ["b", "Conv2d", "exact", "3", "7", "0..6", "0..6", "ok"] in lines
    assert ["c", "Conv2d", "exact", "3", "9", "0..7", "0..7", "ok"] in lines
    assert "clipped by the border: rf 9, 8 inside the image" in out
    assert "3 rows: 3 agree, 0 differ, 0 not measured" in out
    code, out, _ = run(capsys, "verify", target, "--input", "1,8,8", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["agree"] is True and doc["disagreements"] == []
    assert doc["rows"][2]["theory_span"] == [[0, 7], [0, 7]]
    assert doc["rows"][2]["clipped"] is True and doc["rows"][1]["clipped"] is False


def test_verify_fast_reuses_the_measurement_of_an_unchanged_field(capsys, tmp_path):
    target = write(
        tmp_path,
        "relu.py",
        """
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(1, 2, 3, padding=1)
                self.act = nn.ReLU()

            def forward(self, x):
                return self.act(self.conv(x))
    """,
    )
    # centre (7-1)//2 = 3, rf 3: field 2..4, passed on unchanged by the ReLU
    code, out, err = run(capsys, "verify", target, "--input", "1,7,7", "--fast")
    assert code == 0, err
    lines = [line.split() for line in out.splitlines()]
    assert ["conv", "Conv2d", "exact", "3", "3", "2..4", "2..4", "ok"] in lines
    assert ["act", "ReLU", "exact", "3", "3", "2..4", "2..4", "ok"] in lines
    assert "same field as conv: measured there" in out


def test_verify_exits_1_on_a_disagreement(capsys, tmp_path, monkeypatch):
    import importlib
    from fractions import Fraction

    # the module, not the function that rfcalc/__init__ re-exports under the same name
    module = importlib.import_module("rfcalc.verify")
    real = module.verify

    def off_by_one(model, shape, analysis=None, **options):
        result = real(model, shape, analysis, **options)
        wrong = module.RowCheck(
            "b",
            "Conv2d",
            "exact",
            (8, 8),
            (3, 3),
            (Fraction(7), Fraction(7)),
            ((0, 6), (0, 6)),
            ((0, 5), (0, 6)),
            False,
        )
        return module.Verification(result.input_shape, (result.checks[0], wrong))

    monkeypatch.setattr(module, "verify", off_by_one)
    code, out, _ = run(capsys, "verify", write(tmp_path, "tiny.py", TINY), "--input", "1,8,8")
    assert code == 1
    assert ["b", "Conv2d", "exact", "3", "7", "0..6", "0..5×0..6", "DIFFERS"] in [
        line.split() for line in out.splitlines()
    ]
    assert "DISAGREEMENT: b" in out


def test_graph_write_problems_are_one_line(capsys, tmp_path, monkeypatch):
    folder = tmp_path / "net.svg"
    folder.mkdir()
    assert_usage_error(capsys, "graph", NET, "-o", str(folder), "--force", match="is a folder")

    # a file system that refuses the write (read-only, no hard links): one line, no temp left
    def refuse(src, dst):
        raise PermissionError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "link", refuse)
    out = tmp_path / "out"
    out.mkdir()
    assert_usage_error(
        capsys,
        "graph",
        NET,
        "-o",
        str(out / "net.dot"),
        match="cannot write " + str(out / "net.dot") + ": Read-only file system",
    )
    assert list(out.iterdir()) == []


def test_prints_in_the_model_file_do_not_spoil_json(capsys, tmp_path):
    target = write(
        tmp_path,
        "chatty.py",
        TINY.replace(
            "import torch.nn as nn", "import torch.nn as nn\n    print('loading')"
        ).replace("return self.c(", "print('forward')\n            return self.c("),
    )
    code, out, err = run(capsys, "table", target, "--input", "1,8,8", "--format", "json")
    assert code == 0
    assert json.loads(out)["output"]["rf"] == [9, 9]  # 3 + 4 + 2, as in the verify test
    assert err == "loading\nforward\n"


def test_a_file_that_exits_is_reported(capsys, tmp_path):
    target = write(tmp_path, "exits.py", "import sys\nsys.exit(3)\n")
    assert_usage_error(capsys, "table", target, match=f"{target}:2: SystemExit: 3")


def test_version_comes_from_the_package_metadata(capsys):
    from importlib.metadata import version

    code, out, err = run(capsys, "--version")
    assert code == 0 and out == f"rfcalc {version('rfkit')}\n"
    done = subprocess.run(
        [sys.executable, "-m", "rfcalc", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 0 and done.stdout == out


def test_a_bare_command_prints_the_help_and_exits_2(capsys):
    # argparse's convention for a missing required argument: usage on stderr, status 2
    code, out, err = run(capsys)
    assert code == 2 and out == ""
    assert err.startswith("usage: rfcalc ")
    purposes = {
        "table": "Print every layer's kernel, stride, jump and receptive field.",
        "verify": "Compare the computed fields with a gradient measurement.",
        "graph": "Draw the architecture with each layer's size and field.",
    }
    for name, purpose in purposes.items():
        assert [name, *purpose.split()] in [line.split() for line in err.splitlines()]


def test_help_shows_every_default(capsys):
    code, out, _ = run(capsys, "table", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "(default: 3,32,32)" in text and "(default: text)" in text


def _model_file(tmp_path, body: str) -> str:
    path = tmp_path / "model.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_table_builds_the_model_once_as_the_user_sees_it(tmp_path, capsys, recwarn):
    """The model is built without weights first; where it is small (analysed on real values)
    it is built again with them, quietly: its print and warning show once."""
    target = _model_file(
        tmp_path,
        """
        import warnings
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                print("building Net")
                warnings.warn("Net: a warning from the constructor")
                self.conv = nn.Conv2d(3, 4, 5)

            def forward(self, x):
                return self.conv(x)
        """,
    )
    code, out, err = run(capsys, "table", target, "--input", "3,16,16")
    assert code == 0 and "Output receptive field: 5\n" in out
    assert err.count("building Net") == 1
    assert [str(w.message) for w in recwarn] == ["Net: a warning from the constructor"]


def test_table_of_a_constructor_that_reads_values(tmp_path, capsys):
    # `.item()` has no answer on the meta device: the model is built with weights instead
    target = _model_file(
        tmp_path,
        """
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                k = int(torch.tensor([7]).item())
                self.conv = nn.Conv2d(3, 4, k, dilation=2)

            def forward(self, x):
                return self.conv(x)
        """,
    )
    code, out, err = run(capsys, "table", target, "--input", "3,32,32")
    # 2*(7-1)+1 = 13, through 7 taps of the 13 per axis: 49 of 169 (dilation's holes)
    line = "Output receptive field: 13, of which a unit reads 49 of 169 pixels (holes)\n"
    assert code == 0 and err == "" and line in out


def test_table_of_a_big_model_whose_forward_needs_values(tmp_path, capsys):
    """Data-free first (big: 100,112 parameters x 512² pixels), then real values, built with
    weights once, quietly; the note names the line."""
    target = _model_file(
        tmp_path,
        """
        import torch
        import torch.nn as nn

        class Gated(nn.Module):
            def __init__(self):
                super().__init__()
                print("building Gated")
                self.conv = nn.Conv2d(3, 4, 3)
                self.unused = nn.Parameter(torch.zeros(100_000))

            def forward(self, x):
                y = self.conv(x)
                if y.abs().mean() >= 0:
                    y = nn.functional.max_pool2d(y, 5, 1)
                return y
        """,
    )
    code, out, err = run(capsys, "table", target, "--input", "3,512,512")
    assert code == 0, err
    assert "Output receptive field: 7\n" in out  # 3x3 then a 5x5 pool
    assert "ran on real values: `if y.abs().mean() >= 0:` (model.py:" in " ".join(out.split())
    assert err.count("building Gated") == 1


def test_import_rfcalc_alone_does_not_import_torch():
    """The console script holds the garbage collector off before torch loads (rfcalc.console);
    that needs a package import without torch. The lazily loaded names still work."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, importlib, rfcalc; assert 'torch' not in sys.modules, 'torch'\n"
            "importlib.import_module('rfcalc.verify')\n"
            "from rfcalc import verify, erf, analyze, RFError\n"
            "assert callable(verify) and callable(erf) and callable(analyze), (verify, erf)\n"
            "assert issubclass(RFError, ValueError)",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=_checkout_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "argv, collector_back",
    [(["table", NET], False), (["graph", NET, "-o", "x.dot"], False), (["verify", NET], True)],
)
def test_the_console_holds_the_collector_off_for_shape_commands_only(
    monkeypatch, argv, collector_back
):
    import gc

    import rfcalc.cli
    import rfkit_base.commandline
    from rfcalc import console

    calls = []
    monkeypatch.setattr(gc, "disable", lambda: calls.append("disable"))
    monkeypatch.setattr(gc, "enable", lambda: calls.append("enable"))
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(rfcalc.cli, "main", lambda: calls.append("main") or 0)
    monkeypatch.setattr(
        rfkit_base.commandline, "exit_with", lambda code: calls.append(("exit", code))
    )
    monkeypatch.setattr(sys, "argv", ["rfcalc", *argv])
    console.main()
    back = ["freeze", "enable"] if collector_back else []
    assert calls == ["disable", *back, "main", ("exit", 0)]
