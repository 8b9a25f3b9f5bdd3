"""rfkit_base.files: the one atomic writer every package shares."""

import pytest

from rfkit_base.files import atomic_path, write_text


def test_never_clobbers_without_overwrite_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "net.dot"
    target.write_text("mine")
    with pytest.raises(FileExistsError):
        write_text(target, "new", overwrite=False)
    assert target.read_text() == "mine"
    write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["net.dot"]


def test_a_crash_midway_keeps_the_old_file(tmp_path):
    target = tmp_path / "last.pt"
    target.write_text("epoch 3")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half of epoch 4")
            raise RuntimeError("killed")
    assert target.read_text() == "epoch 3"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_parents_are_made_only_when_asked(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_text(tmp_path / "a" / "b.txt", "x")
    write_text(tmp_path / "a" / "b.txt", "x", make_parents=True)
    assert (tmp_path / "a" / "b.txt").read_text() == "x"
