"""Resolving TARGETs into modules, and every way a target or --input can be wrong."""

import sys
import textwrap

import pytest
import torch.nn as nn

from rfcalc.load import TargetError, load_target, parse_input, split_target

REPO = __file__.rsplit("/tests/", 1)[0]


def write(folder, name, body):
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


ONE_NET = """
    import torch.nn as nn

    class Tiny(nn.Module):
        def __init__(self, width=4):
            super().__init__()
            self.conv = nn.Conv2d(3, width, 3)

        def forward(self, x):
            return self.conv(x)
"""


def test_parse_input():
    assert parse_input("3,32,32") == (3, 32, 32)
    assert parse_input("1, 100") == (1, 100)
    assert parse_input("2,4,8,8") == (2, 4, 8, 8)
    for bad in ("3", "3,x,32", "3,32,32,32,32", "3,0,32", "", "3,-1,4", "3,32.5,32"):
        with pytest.raises(TargetError, match="--input"):
            parse_input(bad)


def test_split_target():
    assert split_target("model.py") == ("model.py", None, True)
    assert split_target("model.py:Net") == ("model.py", "Net", True)
    assert split_target("torchvision.models:resnet18") == ("torchvision.models", "resnet18", False)
    with pytest.raises(TargetError, match="not a Python name"):
        split_target("model.py:1abc")


def test_single_class_file_needs_no_name(tmp_path):
    model = load_target(str(write(tmp_path, "m.py", ONE_NET)))
    assert type(model).__name__ == "Tiny" and model.conv.out_channels == 4


def test_the_assignments_net_is_the_only_class_buildable_without_arguments():
    # ConvLayer needs (in_channels, out_channels); Net builds with its defaults
    model = load_target(f"{REPO}/examples/s9_net.py")
    assert type(model).__name__ == "Net"
    assert sum(p.numel() for p in model.parameters()) == 190509


def test_named_class_factory_and_instance(tmp_path):
    path = write(
        tmp_path,
        "m.py",
        ONE_NET
        + """
    class Other(Tiny):
        def __init__(self):
            super().__init__(width=6)

    def make():
        return Tiny(width=8)

    instance = Tiny(width=2)
    not_a_model = 3

    def make_int():
        return 3
    """,
    )
    assert load_target(f"{path}:Other").conv.out_channels == 6
    assert load_target(f"{path}:make").conv.out_channels == 8
    assert load_target(f"{path}:instance").conv.out_channels == 2
    with pytest.raises(TargetError, match="several nn.Module classes \\(Other, Tiny\\)"):
        load_target(str(path))
    with pytest.raises(TargetError, match=r"m.py:not_a_model is a int, not an nn.Module"):
        load_target(f"{path}:not_a_model")
    with pytest.raises(TargetError, match=r"make_int\(\) returned a int"):
        load_target(f"{path}:make_int")
    with pytest.raises(
        TargetError,
        match=r"has no attribute 'Nope' \(nn.Module classes there: "
        r"Other, Tiny\)",
    ):
        load_target(f"{path}:Nope")


def test_class_that_needs_arguments(tmp_path):
    path = write(
        tmp_path,
        "m.py",
        """
    import torch.nn as nn

    class Wide(nn.Module):
        def __init__(self, width, *, depth):
            super().__init__()
    """,
    )
    with pytest.raises(TargetError, match=r"m.py:Wide needs arguments \(width, depth\)"):
        load_target(f"{path}:Wide")
    with pytest.raises(
        TargetError,
        match=r"every nn.Module class in .*m.py needs arguments "
        r"\(Wide\)",
    ):
        load_target(str(path))


def test_missing_file_and_no_module(tmp_path):
    with pytest.raises(TargetError, match=r"nothere.py: no such file"):
        load_target(str(tmp_path / "nothere.py"))
    with pytest.raises(TargetError, match=r": not a file"):
        load_target(str(tmp_path))
    path = write(tmp_path, "m.py", "from torch.nn import Conv2d\nx = 1\n")
    with pytest.raises(TargetError, match=r"m.py defines no nn.Module subclass"):
        load_target(str(path))


def test_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "m.py", "import torch\n\ndef f(:\n    pass\n")
    with pytest.raises(TargetError, match=rf"^{path}:3: syntax error: "):
        load_target(str(path))


def test_import_error_and_other_errors_inside_the_file(tmp_path):
    path = write(tmp_path, "m.py", "import torch\nimport no_such_package_rfcalc_test\n")
    with pytest.raises(
        TargetError,
        match=rf"^{path}:2: import failed: No module named "
        "'no_such_package_rfcalc_test'$",
    ):
        load_target(str(path))
    path = write(tmp_path, "n.py", "x = 1\ny = 1 / 0\n")
    with pytest.raises(TargetError, match=rf"^{path}:2: ZeroDivisionError: division by zero$"):
        load_target(str(path))
    path = write(
        tmp_path,
        "c.py",
        ONE_NET
        + """
    def broken():
        raise RuntimeError('no')
    """,
    )
    with pytest.raises(TargetError, match=r"c.py:broken\(\): RuntimeError: no$"):
        load_target(f"{path}:broken")


def test_sibling_imports_work_and_leave_sys_modules_clean(tmp_path):
    # two folders, each with a sibling module of the same name defining a different width
    for width, sub in ((5, "a"), (7, "b")):
        folder = tmp_path / sub
        folder.mkdir()
        write(
            folder,
            "blocks.py",
            f"""
        import torch.nn as nn
        WIDTH = {width}
        """,
        )
        write(
            folder,
            "model.py",
            """
        import torch.nn as nn
        from blocks import WIDTH

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, WIDTH, 3)
        """,
        )
    before = set(sys.modules)
    path_before = list(sys.path)
    assert load_target(str(tmp_path / "a" / "model.py")).conv.out_channels == 5
    assert load_target(str(tmp_path / "b" / "model.py")).conv.out_channels == 7
    assert "blocks" not in sys.modules
    assert not [m for m in set(sys.modules) - before if m.startswith("_rfcalc_target")]
    assert sys.path == path_before
    assert not (tmp_path / "a" / "__pycache__").exists()


def test_importable_module_targets():
    model = load_target("torchvision.models:resnet18")
    assert type(model).__name__ == "ResNet"
    assert isinstance(model, nn.Module)
    with pytest.raises(TargetError, match=r"cannot import module 'no_such_pkg_rf': No module"):
        load_target("no_such_pkg_rf:Net")
    with pytest.raises(TargetError, match=r"torchvision.models has no attribute 'resnet_999'"):
        load_target("torchvision.models:resnet_999")


def test_errors_name_the_file_as_typed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "m.py", "import torch\n\nclass A(:\n")
    with pytest.raises(TargetError, match=r"^m.py:3: syntax error: "):
        load_target("m.py")
    write(tmp_path, "n.py", "import torch\nraise RuntimeError('boom')\n")
    with pytest.raises(TargetError, match=r"^n.py:2: RuntimeError: boom$"):
        load_target("n.py")


def test_a_module_that_raises_on_import(tmp_path, monkeypatch):
    write(tmp_path, "rf_raising_module.py", "raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TargetError, match=r"^importing rf_raising_module: RuntimeError: boom$"):
        load_target("rf_raising_module:Net")
    assert "rf_raising_module" not in sys.modules
