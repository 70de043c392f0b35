"""The learning-rate range test (Smith 2017, "Cyclical learning rates for training neural networks",
Sec. 3.3): a short run whose learning rate grows each step, read for where the loss falls fastest.
It reuses the trainer's set-up and step, so it trains exactly what :func:`cnnlib.train.train` would."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import torch

from cnnlib.augment import augmentation_for, crop_padding, training_batch
from cnnlib.config import TrainConfig
from cnnlib.data import DataSplit
from cnnlib.device import leave_distributed
from cnnlib.errors import UserError
from cnnlib.optim import make_criterion, set_lr
from cnnlib.run_state import set_up
from cnnlib.train import step


def lr_range_test(
    config: TrainConfig,
    start: float = 1e-5,
    end: float = 10.0,
    steps: int = 100,
    data: DataSplit | None = None,
    smoothing: float = 0.9,
    stop_factor: float = 4.0,
) -> pd.DataFrame:
    """A learning-rate range test, in the common short variant of Smith 2017's ("Cyclical
    learning rates", Sec. 3.3, which raises the rate linearly over a few epochs and reads the
    accuracy): train a fresh model for ``steps`` mini-batches while the learning rate grows
    geometrically from ``start`` to ``end``, and record the loss at each. Stops once the
    smoothed loss exceeds ``stop_factor`` times its minimum. Returns the columns ``lr``,
    ``loss`` and ``smoothed_loss``; ``attrs["suggested_lr"]`` is a tenth of the learning
    rate of the lowest smoothed loss, a common reading of the curve."""
    if not 0 < start < end or steps < 2:
        raise UserError(
            f"The range test needs 0 < start < end and at least 2 steps, not {start}, {end}, {steps}."
        )
    run = set_up(dataclasses.replace(config, lr=start, schedule="none", compile=False), data)
    criterion, aux_weight = (
        make_criterion(run.config.loss, run.config.label_smoothing),
        getattr(run.model, "aux_weight", 0.0),
    )
    mode, padding = (
        augmentation_for(run.config.augment, run.data),
        crop_padding(run.data, run.config.crop_padding),
    )
    growth = (end / start) ** (1 / (steps - 1))
    rows, average, best = [], 0.0, math.inf
    for position in range(steps):
        lr = start * growth**position
        set_lr(run.optimizer, lr)
        index = torch.randint(0, len(run.data.train_y), (run.config.batch_size,), generator=run.generator)
        x, y = training_batch(
            run.data,
            index.to(run.device),
            mode,
            padding,
            run.generator,
            run.normalise,
            run.channels_last,
            padding_mode=run.config.padding_mode,
        )
        value = step(run, x, y, criterion, aux_weight)[0].item()
        average = smoothing * average + (1 - smoothing) * value
        smoothed = average / (1 - smoothing ** (position + 1))  # bias-corrected, as Adam's moments
        rows.append({"lr": lr, "loss": value, "smoothed_loss": smoothed})
        best = min(best, smoothed)
        if not math.isfinite(smoothed) or smoothed > stop_factor * best:
            break
    leave_distributed(run.world)
    frame = pd.DataFrame(rows)
    frame.attrs["suggested_lr"] = float(frame["lr"][frame["smoothed_loss"].idxmin()] / 10)
    return frame
