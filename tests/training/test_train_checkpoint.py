"""training.checkpoint.load: what a resume can meet, each with its one-line error.

Found by mutation testing (`make mutation MUTATE='training.checkpoint*'`): every message and
the device mapping could change without a test noticing.
"""

from __future__ import annotations

import pytest
import torch

from rfkit_base.commandline import UserError
from training import checkpoint


class Opaque:
    """Not a tensor, number or string: a weights-only load refuses it."""


def test_a_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(UserError) as err:
        checkpoint.load(tmp_path / "run" / "last.pt")
    assert str(err.value) == (
        f"no checkpoint to resume from: {tmp_path / 'run' / 'last.pt'} does not exist"
    )


def test_a_checkpoint_saved_on_another_device_loads_on_the_cpu(tmp_path):
    # a storage tagged with a device this machine lacks (as a GPU run's would be on a
    # CPU-only machine): loading it where it was saved fails, loading it on the CPU works
    tagging = {"on": False}

    def tagger(storage):
        return "elsewhere" if tagging["on"] else None

    def restore(storage, location):
        if location == "elsewhere":
            raise RuntimeError("device 'elsewhere' is not available here")

    torch.serialization.register_package(5, tagger, restore)
    tagging["on"] = True
    try:
        checkpoint.save(tmp_path / "last.pt", {"w": torch.tensor([1.0, 2.0])})
    finally:
        tagging["on"] = False
    with pytest.raises(RuntimeError, match="elsewhere"):
        torch.load(tmp_path / "last.pt", weights_only=True)  # the check is not vacuous
    state = checkpoint.load(tmp_path / "last.pt")
    assert state["w"].device.type == "cpu" and state["w"].tolist() == [1.0, 2.0]


def test_a_checkpoint_with_code_in_it_is_refused(tmp_path):
    torch.save({"model": {"w": torch.ones(1)}, "extra": Opaque()}, tmp_path / "last.pt")
    with pytest.raises(UserError) as err:
        checkpoint.load(tmp_path / "last.pt")
    assert str(err.value) == (
        f"{tmp_path / 'last.pt'} holds more than tensors and numbers (an older rftrain's "
        "checkpoint, or not ours) and is not loaded: start over with --force"
    )


@pytest.mark.parametrize(
    "content, expected",
    [
        (
            b"not a torch file at all\n" * 10,
            "is not a readable checkpoint (damaged, or not a torch file)",
        ),
        (b"", "is not a readable checkpoint (EOFError: )"),
    ],
)
def test_a_damaged_checkpoint_is_one_line(tmp_path, content, expected):
    (tmp_path / "last.pt").write_bytes(content)
    with pytest.raises(UserError) as err:
        checkpoint.load(tmp_path / "last.pt")
    assert str(err.value) == f"{tmp_path / 'last.pt'} {expected}"


def test_a_truncated_checkpoint_names_the_error_on_one_line(tmp_path):
    checkpoint.save(tmp_path / "full.pt", {"w": torch.ones(1000)})
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "last.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError) as err:
        checkpoint.load(tmp_path / "last.pt")
    message = str(err.value)
    assert message.startswith(
        f"{tmp_path / 'last.pt'} is not a readable checkpoint (RuntimeError: "
    )
    assert "central directory" in message and "\n" not in message
