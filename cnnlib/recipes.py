"""Named training recipes: the defaults a notebook or ``cnnlib train`` starts from.

A recipe fills every training knob the user left unset (``None`` in :class:`TrainConfig`);
anything the user sets wins. :func:`recipe_for` picks the recipe for a model and data set,
so that ``cnnlib train --model lenet5 --dataset mnist`` and the LeNet-5 chapter agree.
"""

from __future__ import annotations

from typing import Any

from cnnlib.errors import UserError

# Knobs every recipe must give a value to.
BASE: dict[str, Any] = {
    "epochs": 10,
    "batch_size": 128,
    "optimizer": "sgd",
    "lr": 0.05,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,
    "schedule": "onecycle",
    "warmup": 0.2,
    "label_smoothing": 0.0,
    "augment": "auto",
    "grad_clip": 0.0,
    "ema": 0.0,
    "tta": False,
    # bf16 autocast where the device computes bf16 natively (cnnlib.device): training steps 1.3-1.9x
    # faster for AlexNet, NiN, VGG, ResNet and DenseNet on a CPU with AMX, but not for MobileNetV2,
    # EfficientNet-B0 or LeNet-5 (results/benchmark-cpu-precision.json); GoogLeNet's paper form is
    # 1.5x faster since its response normalisation is a 1x1 convolution (book/performance.md).
    "amp": True,
}

RECIPES: dict[str, dict[str, Any]] = {
    # LeNet-5 on (padded) MNIST: Nesterov SGD with a one-cycle schedule (Smith & Topin 2019)
    # and ±2-pixel random shifts, a light form of the paper's distortions (Sec. III-C).
    "lenet5-mnist": {"epochs": 8, "batch_size": 128, "lr": 0.05, "augment": "crop", "amp": False},
    # Small data sets that need no files (scikit-learn's digits): few images, so more epochs.
    # LeNet-sized networks gain nothing from bf16 on a CPU (benchmarks/precision.py): fp32.
    # The warm-up is 30 % of the steps, not 20 %: at 20 %, 3 runs in 15 of the 10-epoch studies lost
    # 7.5 to 29 points of training accuracy at the peak rate (benchmarks/recipe_stability.py).
    "small-digits": {"epochs": 30, "batch_size": 64, "lr": 0.05, "warmup": 0.3, "augment": "none", "amp": False},
    # Colour images (CIFAR-10 and folders): crops and flips, label smoothing, flip TTA.
    "cnn-colour": {"epochs": 30, "batch_size": 256, "lr": 0.1, "label_smoothing": 0.1, "augment": "crop+flip",
                   "tta": True},
    # Greyscale images for every other model.
    "cnn-grey": {"epochs": 10, "batch_size": 128, "lr": 0.05, "augment": "crop"},
}


def recipe_for(model: str, dataset: str, channels: int) -> str:
    """The name of the default recipe for ``model`` trained on ``dataset``."""
    if dataset == "digits":
        return "small-digits"
    if model == "lenet5" and dataset == "mnist":
        return "lenet5-mnist"
    return "cnn-colour" if channels == 3 else "cnn-grey"


def recipe_values(name: str) -> dict[str, Any]:
    """Every knob's value under recipe ``name``."""
    if name not in RECIPES:
        raise UserError(f"Unknown recipe {name!r}: choose one of {', '.join(RECIPES)}.")
    return {**BASE, **RECIPES[name]}
