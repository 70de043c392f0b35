"""Named training recipes: the defaults a notebook or ``cnnlib train`` starts from.

A recipe fills every training knob the user left unset (``None`` in :class:`TrainConfig`);
anything the user sets wins, and a knob no recipe sets takes the base value of its declaration
(:func:`cnnlib.config.knob`). :func:`recipe_for` picks the recipe for a model and data set,
so that ``cnnlib train --model lenet5 --dataset mnist`` and the LeNet-5 chapter agree.
"""

from __future__ import annotations

from typing import Any

RECIPES: dict[str, dict[str, Any]] = {
    # LeNet-5 on (padded) MNIST: Nesterov SGD with a one-cycle schedule (Smith & Topin 2019)
    # and ±2-pixel random shifts, a light form of the paper's distortions (Sec. III-C).
    "lenet5-mnist": {"epochs": 8, "batch_size": 128, "lr": 0.05, "augment": "crop", "amp": False},
    # Small data sets that need no files (scikit-learn's digits): few images, so more epochs.
    # LeNet-sized networks gain nothing from bf16 on a CPU (benchmarks/precision.py): fp32. Why the warm-up
    # is 30 % of the steps: results/recipe-stability-digits.csv (benchmarks/recipe_stability.py).
    "small-digits": {
        "epochs": 30,
        "batch_size": 64,
        "lr": 0.05,
        "warmup": 0.3,
        "augment": "none",
        "amp": False,
    },
    # Colour images (CIFAR-10 and folders): crops and flips, label smoothing, flip TTA.
    "cnn-colour": {
        "epochs": 30,
        "batch_size": 256,
        "lr": 0.1,
        "label_smoothing": 0.1,
        "augment": "crop+flip",
        "tta": "flip",
    },
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
