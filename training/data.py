"""CIFAR-10 in memory: uint8 N x 32 x 32 x 3 arrays, decoded once.

Three sources, found in this order under `--data-dir`:
  * the original pickled batches, `cifar-10-batches-py/` (what torchvision downloads), or the
    folder itself if it holds `data_batch_1`; each file's md5 is checked against the original's
    and the source says whether the copy is the original (lossless) one;
  * an image-folder copy, `train/<class>/*` and `test/<class>/*` (PNG or JPEG, 32x32);
  * with `download=True`, torchvision fetches the pickled batches first.
Decoding 60,000 JPEG files takes a while, so the arrays can be cached in one .npz file.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from rfkit_base.commandline import UserError

from .fsutil import atomic_path

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm"}
PICKLE_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
SIDE = 32
EXPECTED = (
    f"{PICKLE_DIR}/ (data_batch_1..5, test_batch) or train/<class>/*.png|jpg and test/<class>/*"
)
# The original python batches' md5, as torchvision checks them (torchvision/datasets/cifar.py):
# a copy whose every batch matches is the lossless original, not a truncated or re-made one.
ORIGINAL_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}


@dataclass(frozen=True)
class Cifar:
    """Train and test images (uint8, N x H x W x 3) with int64 labels."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: tuple[str, ...]
    source: str  # where it came from, for reports
    decode_seconds: float = 0.0

    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the training images, on a 0..1 scale."""
        x = self.train_x
        n = x.shape[0] * x.shape[1] * x.shape[2]
        # Sums in float64 over uint8 avoid a float copy of the whole set.
        s1 = x.sum(axis=(0, 1, 2), dtype=np.float64)
        s2 = np.einsum("nhwc,nhwc->c", x, x, dtype=np.float64)
        mean = s1 / n
        std = np.sqrt(s2 / n - mean**2)
        return tuple(float(m) / 255 for m in mean), tuple(float(s) / 255 for s in std)

    def limited(
        self, n_train: Optional[int], n_test: Optional[int], stratify: bool = True
    ) -> "Cifar":
        """A fixed subset per split (the same for every run), stratified: each class keeps its
        share of the split (largest remainders decide the rounding). `stratify=False` takes
        the first n of one fixed permutation instead (what runs before stratifying used)."""
        pick = _stratified if stratify else _first_of_permutation
        tx, ty = pick(self.train_x, self.train_y, n_train, "--limit-train")
        vx, vy = pick(self.test_x, self.test_y, n_test, "--limit-test")
        return replace(self, train_x=tx, train_y=ty, test_x=vx, test_y=vy)

    def digest(self) -> str:
        """A fingerprint of the images and labels (BLAKE2b), to tell data sets apart."""
        h = hashlib.blake2b(digest_size=16)
        for a in (self.train_x, self.train_y, self.test_x, self.test_y):
            h.update(str((a.dtype, a.shape)).encode())
            h.update(np.ascontiguousarray(a).data)
        return h.hexdigest()


def _first_of_permutation(x: np.ndarray, y: np.ndarray, n: Optional[int], what: str):
    if n is None or n >= len(y):
        return x, y
    if n <= 0:
        raise UserError(f"{what} must be positive, got {n}")
    idx = np.sort(np.random.default_rng(0).permutation(len(y))[:n])
    return x[idx], y[idx]


def _stratified(x: np.ndarray, y: np.ndarray, n: Optional[int], what: str):
    if n is None or n >= len(y):
        return x, y
    if n <= 0:
        raise UserError(f"{what} must be positive, got {n}")
    classes, counts = np.unique(y, return_counts=True)
    share = counts * n / len(y)
    take = np.floor(share).astype(int)
    rest = n - take.sum()
    take[np.argsort(-(share - take), kind="stable")[:rest]] += 1
    rng = np.random.default_rng(0)
    idx = np.concatenate(
        [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take)]
    )
    idx = np.sort(idx)
    return x[idx], y[idx]


def load_cifar10(
    data_dir: str | os.PathLike,
    *,
    download: bool = False,
    cache: Optional[str | os.PathLike] = None,
) -> Cifar:
    """Load CIFAR-10 from `data_dir` (see the module docstring); raise UserError if absent."""
    root = Path(data_dir)
    if download:
        _download(root)
    pickles = check_data_dir(root)
    if pickles is not None:
        t0 = time.perf_counter()
        data = _read_pickles(pickles)
        return replace(data, decode_seconds=time.perf_counter() - t0)
    return _read_folders_cached(root, cache)


def check_data_dir(data_dir: str | os.PathLike) -> Optional[Path]:
    """UserError unless `data_dir` holds CIFAR-10 in a layout load_cifar10 reads (nothing is
    read: a cheap check ahead of a long job); returns the pickles' folder, None for images."""
    root = Path(data_dir)
    if not root.is_dir():
        raise UserError(
            f"data folder {root} does not exist: expected {EXPECTED} (or pass --download)"
        )
    pickles = _pickle_dir(root)
    if pickles is not None:
        return pickles
    if (root / "train").is_dir() or (root / "test").is_dir():
        return None
    raise UserError(f"no CIFAR-10 in {root}: expected {EXPECTED} (or pass --download)")


def _download(root: Path) -> None:
    """Fetch the pickled batches with torchvision (needs a network)."""
    from torchvision.datasets import CIFAR10

    try:
        CIFAR10(str(root), train=True, download=True)
        CIFAR10(str(root), train=False, download=True)
    except Exception as exc:  # network or disk: one line for the user
        raise UserError(f"download into {root} failed: {type(exc).__name__}: {exc}") from None


def _pickle_dir(root: Path) -> Optional[Path]:
    for cand in (root / PICKLE_DIR, root):
        if (cand / "data_batch_1").exists() or (cand / "test_batch").exists():
            return cand
    if (root / PICKLE_DIR).is_dir():
        return root / PICKLE_DIR  # present but incomplete: let the reader name the gap
    return None


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise UserError(
            f"{path} is missing: expected {PICKLE_DIR}/ with {', '.join(TRAIN_BATCHES)}, test_batch"
        )
    try:
        with open(path, "rb") as fh:
            obj = pickle.load(fh, encoding="bytes")
    except Exception as exc:
        raise UserError(f"{path} is not a CIFAR-10 batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path} is not a CIFAR-10 batch (a {type(obj).__name__}, not a dict)")
    return obj


def _batch_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    obj = _unpickle(path)
    data, labels = obj.get(b"data"), obj.get(b"labels")
    if data is None or labels is None:
        raise UserError(f"{path} is not a CIFAR-10 batch: no b'data'/b'labels' entries")
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if (
        data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3 * SIDE * SIDE
        or len(labels) != len(data)
    ):
        raise UserError(
            f"{path} is not a CIFAR-10 batch: data {data.dtype} {data.shape}, "
            f"{len(labels)} labels; expected uint8 (N, 3072) and N labels"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise UserError(f"{path}: labels outside 0..{len(CLASSES) - 1}")
    # Stored as N x (R plane, G plane, B plane), each 32x32 row-major.
    images = data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def not_original(folder: Path) -> list[str]:
    """The batch files in `folder` whose md5 is not the original's (empty: the original)."""
    differ = []
    for name, md5 in ORIGINAL_MD5.items():
        with open(folder / name, "rb") as fh:
            if hashlib.file_digest(fh, "md5").hexdigest() != md5:
                differ.append(name)
    return differ


def _read_pickles(folder: Path) -> Cifar:
    parts = [_batch_arrays(folder / name) for name in TRAIN_BATCHES]
    test_x, test_y = _batch_arrays(folder / "test_batch")
    classes = CLASSES
    meta = folder / "batches.meta"
    if meta.is_file():
        names = _unpickle(meta).get(b"label_names")
        if names:
            classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    differ = not_original(folder)
    if not differ:
        checked = "the original batches, md5 checked"
    elif len(differ) == len(ORIGINAL_MD5):
        checked = "not the original batches: no md5 matches"
    else:
        checked = f"not the original batches: md5 of {', '.join(differ)} differs"
    return Cifar(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        test_x,
        test_y,
        classes,
        source=f"{folder} ({checked})",
    )


def _list_split(root: Path, split: str) -> tuple[list[str], list[list[Path]]]:
    folder = root / split
    if not folder.is_dir():
        raise UserError(
            f"{folder} is missing: expected {split}/<class>/*.png|jpg next to "
            f"{'test' if split == 'train' else 'train'}/"
        )
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise UserError(f"{folder} has no class folders: expected {split}/<class>/*.png|jpg")
    files = []
    for name in classes:
        found = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise UserError(f"{folder / name} holds no images (.png, .jpg, .jpeg, .bmp, .ppm)")
        files.append(found)
    return classes, files


def _decode(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read image ({exc})") from None
    if arr.shape != (SIDE, SIDE, 3):
        raise UserError(f"{path}: image is {arr.shape[1]}x{arr.shape[0]}, expected {SIDE}x{SIDE}")
    return arr


def _decode_all(files: Sequence[Path], workers: int) -> np.ndarray:
    out = np.empty((len(files), SIDE, SIDE, 3), dtype=np.uint8)
    # PIL releases the GIL while decoding, so threads help on several cores.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, arr in enumerate(pool.map(_decode, files, chunksize=256)):
            out[i] = arr
    return out


def _read_folders(root: Path) -> Cifar:
    classes, train_files = _list_split(root, "train")
    test_classes, test_files = _list_split(root, "test")
    if test_classes != classes:
        raise UserError(
            f"{root}: train/ and test/ have different class folders "
            f"({', '.join(classes)} vs {', '.join(test_classes)})"
        )
    workers = min(8, os.cpu_count() or 1)

    def split(files: list[list[Path]]) -> tuple[np.ndarray, np.ndarray]:
        flat = [f for group in files for f in group]
        labels = np.concatenate([np.full(len(g), k, dtype=np.int64) for k, g in enumerate(files)])
        return _decode_all(flat, workers), labels

    t0 = time.perf_counter()
    train_x, train_y = split(train_files)
    test_x, test_y = split(test_files)
    return Cifar(
        train_x,
        train_y,
        test_x,
        test_y,
        tuple(classes),
        source=str(root),
        decode_seconds=time.perf_counter() - t0,
    )


def _fingerprint(root: Path) -> str:
    """Folder path, file count and total size: changes when images are added or replaced."""
    count = size = 0
    for split in ("train", "test"):
        for dirpath, _, names in os.walk(root / split):
            for name in names:
                count += 1
                size += os.stat(os.path.join(dirpath, name)).st_size
    return f"{root.resolve()}|{count}|{size}"


def _read_folders_cached(root: Path, cache: Optional[str | os.PathLike]) -> Cifar:
    if cache is None:
        return _read_folders(root)
    cache = Path(cache)
    t0 = time.perf_counter()
    key = _fingerprint(root)
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                if str(z["fingerprint"]) == key:
                    return Cifar(
                        z["train_x"],
                        z["train_y"],
                        z["test_x"],
                        z["test_y"],
                        tuple(str(c) for c in z["classes"]),
                        source=f"{root} (cached in {cache})",
                        decode_seconds=time.perf_counter() - t0,
                    )
        except Exception:
            pass  # an unreadable or stale cache is simply rebuilt
    data = _read_folders(root)
    with atomic_path(cache) as tmp, open(tmp, "wb") as fh:  # a file object: no '.npz' appended
        np.savez(
            fh,
            train_x=data.train_x,
            train_y=data.train_y,
            test_x=data.test_x,
            test_y=data.test_y,
            classes=np.array(data.classes),
            fingerprint=np.array(key),
        )
    return data
