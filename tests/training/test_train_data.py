"""CIFAR-10 loading: both folder layouts, the cache, the subsets and the one-line errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image
from train_synth import CLASSES, make_images, write_folders, write_pickles

from rfkit_base.commandline import UserError
from training import data as data_mod
from training.data import Cifar, load_cifar10


def test_pickles_decode_planes_row_major(tmp_path):
    root = write_pickles(tmp_path)  # 60 train (12 per batch), 20 test
    folder = root / "cifar-10-batches-py"
    # Overwrite batch 1 with one hand-made row: R plane, G plane, B plane, each 32x32 row-major.
    row = np.zeros((12, 3072), np.uint8)
    row[0, 1] = 200  # R at (row 0, col 1)
    row[0, 1024 + 32] = 77  # G at (row 1, col 0)
    row[0, 2048 + 1023] = 9  # B at (row 31, col 31)
    with open(folder / "data_batch_1", "wb") as fh:
        pickle.dump({b"data": row, b"labels": [3] * 12}, fh)
    d = load_cifar10(root)
    assert d.train_x.shape == (60, 32, 32, 3) and d.train_x.dtype == np.uint8
    assert d.test_x.shape == (20, 32, 32, 3) and d.test_y.dtype == np.int64
    img = d.train_x[0]
    assert img[0, 1, 0] == 200 and img[1, 0, 1] == 77 and img[31, 31, 2] == 9
    assert int(img.sum()) == 200 + 77 + 9
    assert d.train_y[:12].tolist() == [3] * 12
    assert d.classes == CLASSES
    # The test batch holds images 60..79 of make_images, in order.
    ref_x, ref_y = make_images(80, 0)
    assert np.array_equal(d.test_x, ref_x[60:]) and np.array_equal(d.test_y, ref_y[60:])


def test_pickle_dir_may_be_given_directly(pickles):
    d = load_cifar10(pickles / "cifar-10-batches-py")
    assert len(d.train_y) == 60


def test_png_folders_exact_pixels_and_sorted_classes(tmp_path):
    root = write_folders(tmp_path / "f", per_class=2, suffix=".png")
    d = load_cifar10(root)
    assert d.train_x.shape == (20, 32, 32, 3) and d.test_x.shape == (20, 32, 32, 3)
    assert d.classes == CLASSES  # alphabetical = CIFAR-10's own order
    # write_folders puts 20 * class index in the red channel (PNG is lossless).
    assert np.array_equal(d.train_x[:, 0, 0, 0], d.train_y * 20)
    assert d.train_y.tolist() == [k for k in range(10) for _ in range(2)]
    first = np.asarray(Image.open(root / "train" / "airplane" / "0000.png"))
    assert np.array_equal(d.train_x[0], first)


def test_jpeg_folders(tmp_path):
    root = write_folders(tmp_path / "j", per_class=1, suffix=".jpg")
    d = load_cifar10(root)
    assert d.train_x.shape == (10, 32, 32, 3) and d.train_x.dtype == np.uint8
    assert d.test_y.tolist() == list(range(10))
    # JPEG is lossy: the pixels are a decoder's (PIL's here; another conforming decoder may
    # differ by a level or two), in RGB order, image k of each split from class k's folder.
    for split, x in (("train", d.train_x), ("test", d.test_x)):
        for k, name in enumerate(CLASSES):
            decoded = np.asarray(Image.open(root / split / name / "0000.jpg").convert("RGB"))
            assert np.abs(x[k].astype(int) - decoded).max() <= 2, (split, name)


def test_cache_is_used_then_rebuilt_when_folder_changes(tmp_path, monkeypatch):
    root = write_folders(tmp_path / "f", per_class=1)
    cache = tmp_path / "cache.npz"
    first = load_cifar10(root, cache=cache)
    assert cache.is_file()

    def no_decode(path):
        raise AssertionError("decoded although the cache is valid")

    monkeypatch.setattr(data_mod, "_decode", no_decode)
    again = load_cifar10(root, cache=cache)
    assert np.array_equal(again.train_x, first.train_x) and again.classes == first.classes
    monkeypatch.undo()

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "train" / "cat" / "9999.png")
    changed = load_cifar10(root, cache=cache)
    assert len(changed.train_y) == 11


def test_mean_std_by_hand():
    # Red: half the images 0, half 255 -> mean 127.5/255 = 0.5, std 0.5.
    # Green: all 51 -> mean 0.2, std 0.  Blue: all 255 -> mean 1, std 0.
    x = np.zeros((4, 32, 32, 3), np.uint8)
    x[2:, :, :, 0] = 255
    x[..., 1] = 51
    x[..., 2] = 255
    d = Cifar(x, np.zeros(4, np.int64), x, np.zeros(4, np.int64), CLASSES, "test")
    mean, std = d.mean_std()
    assert mean == pytest.approx((0.5, 0.2, 1.0)) and std == pytest.approx((0.5, 0, 0), abs=1e-6)


def test_limited_is_a_fixed_subset(pickles):
    d = load_cifar10(pickles)
    a, b = d.limited(16, 5), d.limited(16, 5)
    assert len(a.train_y) == 16 and len(a.test_y) == 5
    assert np.array_equal(a.train_x, b.train_x)
    assert d.limited(None, None).train_x is d.train_x


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda p: p / "missing", "does not exist"),
        (lambda p: p, "no CIFAR-10 in"),
    ],
)
def test_missing_or_empty_folder(tmp_path, make, expected):
    with pytest.raises(UserError, match=expected) as info:
        load_cifar10(make(tmp_path))
    assert "cifar-10-batches-py/" in str(info.value) and "\n" not in str(info.value)


def test_malformed_pickle_names_the_file(pickles):
    (pickles / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="data_batch_3 is not a CIFAR-10 batch"):
        load_cifar10(pickles)


def test_missing_batch_names_the_file(pickles):
    (pickles / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(UserError, match="test_batch is missing"):
        load_cifar10(pickles)


def test_wrong_shape_batch(pickles):
    with open(pickles / "cifar-10-batches-py" / "data_batch_2", "wb") as fh:
        pickle.dump({b"data": np.zeros((3, 100), np.uint8), b"labels": [0, 1, 2]}, fh)
    with pytest.raises(
        UserError, match=r"data_batch_2 is not a CIFAR-10 batch: data uint8 \(3, 100\)"
    ):
        load_cifar10(pickles)


def test_folder_errors(tmp_path):
    root = write_folders(tmp_path / "f", per_class=1)
    (root / "test" / "dog" / "0000.png").unlink()
    with pytest.raises(UserError, match=r"test/dog holds no images"):
        load_cifar10(root)
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(root / "test" / "dog" / "a.png")
    with pytest.raises(UserError, match=r"a.png: image is 28x28, expected 32x32"):
        load_cifar10(root)
    (root / "test" / "dog" / "a.png").write_bytes(b"garbage")
    with pytest.raises(UserError, match=r"a.png: cannot read image"):
        load_cifar10(root)


def test_missing_test_split_and_class_mismatch(tmp_path):
    root = write_folders(tmp_path / "f", per_class=1)
    (root / "test" / "frog" / "0000.png").rename(root / "test" / "frog.png")
    (root / "test" / "frog").rmdir()
    with pytest.raises(UserError, match="different class folders"):
        load_cifar10(root)
    for p in (root / "test").rglob("*.png"):
        p.unlink()
    for d in sorted((root / "test").iterdir(), reverse=True):
        d.rmdir() if d.is_dir() else None
    (root / "test").rmdir()
    with pytest.raises(UserError, match=r"test is missing"):
        load_cifar10(root)


def test_the_original_batches_md5_are_torchvisions(pickles):
    from torchvision.datasets import CIFAR10

    from training.data import ORIGINAL_MD5, not_original

    assert ORIGINAL_MD5 == dict(CIFAR10.train_list + CIFAR10.test_list)
    folder = pickles / "cifar-10-batches-py"
    assert not_original(folder) == list(ORIGINAL_MD5)  # a made-up set matches none
    assert load_cifar10(pickles).source.endswith("(not the original batches: no md5 matches)")


def test_a_copy_with_one_batch_changed_is_named(pickles, monkeypatch):
    import hashlib

    from training import data

    folder = pickles / "cifar-10-batches-py"
    # pretend the made-up files are the original, then change one byte of one of them
    real = {n: hashlib.md5((folder / n).read_bytes()).hexdigest() for n in data.ORIGINAL_MD5}
    monkeypatch.setattr(data, "ORIGINAL_MD5", real)
    assert data.not_original(folder) == []
    assert load_cifar10(pickles).source.endswith("(the original batches, md5 checked)")
    with open(folder / "data_batch_4", "rb") as fh:
        batch = pickle.load(fh, encoding="bytes")
    batch[b"data"][0, 0] ^= 1  # one pixel's red value off by one
    with open(folder / "data_batch_4", "wb") as fh:
        pickle.dump(batch, fh)
    assert data.not_original(folder) == ["data_batch_4"]
    assert "md5 of data_batch_4 differs" in load_cifar10(pickles).source
