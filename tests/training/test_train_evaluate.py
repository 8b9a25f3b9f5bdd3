"""The test pass in batches of one shape: the last partial batch padded, the padding's
outputs left out, every test image counted once, the numbers those of the whole set."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from train_synth import make_images

from training.config import TrainConfig
from training.engine import Trainer
from training.loaders import TensorBatches
from training.models import load_model

CPU = torch.device("cpu")
MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


@pytest.mark.parametrize("n, batch", [(10, 4), (12, 4), (3, 4), (7, 1)])
def test_padded_test_batches_give_the_numbers_of_the_whole_set(tiny_model, n, batch):
    x, y = make_images(n + 8, seed=2)
    train = TensorBatches(x[:8], y[:8], 4, None, MEAN, STD, seed=1, device=CPU)
    test = TensorBatches(x[8:], y[8:], batch, None, MEAN, STD, seed=1, device=CPU, shuffle=False)
    torch.manual_seed(0)
    model = load_model(str(tiny_model))
    cfg = TrainConfig(epochs=1, batch_size=4)
    trainer = Trainer(model, train, test, cfg, CPU, loss="nll", progress=False)
    trainer.train_epoch(0)  # BatchNorm statistics of its own, not the initial ones
    shapes = []
    model.register_forward_pre_hook(lambda m, args: shapes.append(tuple(args[0].shape)))

    loss, acc, pred = trainer.evaluate()

    # every batch the model saw had the first batch's shape (3 of 4 when n = 3: one batch)
    first = min(batch, n)
    assert shapes == [(first, 3, 32, 32)] * -(-n // first)
    # the whole set at once, normalized by hand, in eval mode (per image: padding-free)
    images = (x[8:].astype(np.float64) / 255 - MEAN) / STD
    inputs = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        logp = model.eval()(inputs)
    labels = torch.from_numpy(y[8:])
    assert len(pred) == n
    assert pred.tolist() == logp.argmax(1).tolist()
    assert loss == pytest.approx(F.nll_loss(logp, labels).item(), rel=1e-5)
    assert acc == (logp.argmax(1) == labels).sum().item() / n
