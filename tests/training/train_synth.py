"""Tiny CIFAR-shaped data sets in both layouts, and tiny model files, made in tmp dirs."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

TINY_MODEL = '''
import torch.nn as nn
import torch.nn.functional as F


class Tiny(nn.Module):
    """Two convolutions and a linear head: small enough to train in a test."""

    def __init__(self, log_softmax: bool = True):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 16, 3, padding=1, stride=2)
        self.drop = nn.Dropout(0.05)
        self.fc = nn.Linear(16, 10)
        self.log_softmax = log_softmax

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.c1(x))), 2)
        x = self.drop(F.relu(self.c2(x))).mean((2, 3))
        x = self.fc(x)
        return F.log_softmax(x, 1) if self.log_softmax else x


def logits():
    return Tiny(log_softmax=False)
'''


def make_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n images whose class shows in their colour (learnable), plus noise; labels cycle 0..9."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    palette = np.random.default_rng(99).integers(30, 226, (10, 3))
    noise = rng.integers(-30, 31, (n, 32, 32, 3))
    images = np.clip(palette[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


def write_pickles(root: Path, n_train: int = 60, n_test: int = 20, seed: int = 0) -> Path:
    """A fake cifar-10-batches-py in the real format: N x 3072 uint8, R, G, B planes."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    images, labels = make_images(n_train + n_test, seed)
    per = n_train // 5
    chunks = [(images[i * per : (i + 1) * per], labels[i * per : (i + 1) * per]) for i in range(5)]
    chunks.append((images[n_train:], labels[n_train:]))
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name, (x, y) in zip(names, chunks):
        flat = x.transpose(0, 3, 1, 2).reshape(len(x), 3072)
        with open(folder / name, "wb") as fh:
            pickle.dump(
                {
                    b"batch_label": name.encode(),
                    b"labels": y.tolist(),
                    b"data": flat,
                    b"filenames": [b"x.png"] * len(y),
                },
                fh,
            )
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [c.encode() for c in CLASSES], b"num_vis": 3072}, fh)
    return root


def write_folders(root: Path, per_class: int = 2, suffix: str = ".png", seed: int = 0) -> Path:
    """train/<class>/*.png|jpg and test/<class>/* with `per_class` images each."""
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        for k, name in enumerate(CLASSES):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(per_class):
                img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                img[:, :, 0] = k * 20  # the class in the red channel, for label checks
                Image.fromarray(img).save(d / f"{i:04d}{suffix}")
    return root
