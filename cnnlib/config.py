"""A run's settings: the typed TrainConfig, the recipe's defaults filled in, every value checked."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from cnnlib.errors import UserError
from cnnlib.recipes import BASE, recipe_for, recipe_values

OPTIMIZERS = ("sgd", "adam", "adamw", "nadam", "adagrad", "rmsprop")
SCHEDULES = ("none", "step", "cosine", "onecycle")
AUGMENTATIONS = ("auto", "none", "crop", "flip", "crop+flip")
LOSSES = ("cross_entropy", "mse", "hinge")

# Fields that may change between an interrupted run and its resumption.
RESUMABLE = {"epochs", "out", "device", "resume", "stop_after", "progress", "compile", "data_root",
             "eval_batch_size", "download"}



@dataclass
class TrainConfig:
    """One training run. Knobs left at ``None`` take the value of the recipe
    (:mod:`cnnlib.recipes`), named by ``recipe`` or chosen for the model and data set."""

    model: str = "lenet5"
    dataset: str = "digits"
    data_root: str | None = None
    download: bool = False
    subset: int | None = None
    seed: int = 0
    device: str = "auto"
    out: str | None = None
    recipe: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    loss: str = "cross_entropy"
    # Recipe knobs.
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    momentum: float | None = None
    nesterov: bool | None = None
    weight_decay: float | None = None
    schedule: str | None = None
    warmup: float | None = None
    label_smoothing: float | None = None
    augment: str | None = None
    grad_clip: float | None = None
    ema: float | None = None
    tta: bool | None = None
    # Engineering.
    decay_norms_and_biases: bool = False
    amp: bool | None = None  # bf16 autocast where the device computes bf16 natively (cnnlib.device)
    channels_last: bool | None = None
    compile: bool = False
    eval_batch_size: int | None = None  # None: default_eval_batch_size(device)
    resume: bool = False
    stop_after: int | None = None
    progress: bool = True


def resolve(config: TrainConfig, channels: int) -> TrainConfig:
    """Fill the knobs left unset from the recipe, and check every value."""
    recipe = config.recipe or recipe_for(config.model, config.dataset, channels)
    values = recipe_values(recipe)
    filled = {key: values[key] if getattr(config, key) is None else getattr(config, key) for key in BASE}
    resolved = dataclasses.replace(config, recipe=recipe, **filled)
    _validate(resolved)
    return resolved


def _validate(config: TrainConfig) -> None:
    choices = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "augment": AUGMENTATIONS, "loss": LOSSES}
    for key, allowed in choices.items():
        if getattr(config, key) not in allowed:
            raise UserError(f"Unknown {key} {getattr(config, key)!r}: choose one of {', '.join(allowed)}.")
    kinds = {"epochs": int, "batch_size": int, "seed": int, "eval_batch_size": int, "lr": float, "momentum": float,
             "weight_decay": float, "warmup": float, "label_smoothing": float, "grad_clip": float, "ema": float}
    for key, kind in kinds.items():
        value = getattr(config, key)
        if key == "eval_batch_size" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
            raise UserError(f"{key} must be {'a number' if kind is float else 'an integer'}, not {value!r}.")
    positive = {"epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr}
    if config.eval_batch_size is not None:
        positive["eval_batch_size"] = config.eval_batch_size
    for key, value in positive.items():
        if not value > 0:
            raise UserError(f"{key} must be positive, not {value}.")
    ranges = {"warmup": (config.warmup, 0, 1), "label_smoothing": (config.label_smoothing, 0, 1),
              "ema": (config.ema, 0, 1), "momentum": (config.momentum, 0, 1)}
    for key, (value, low, high) in ranges.items():
        if not low <= value < high:
            raise UserError(f"{key} must lie in [{low}, {high}), not {value}.")
    if config.weight_decay < 0 or config.grad_clip < 0:
        raise UserError("weight_decay and grad_clip must be zero or positive.")
    if config.loss == "hinge" and config.label_smoothing:
        raise UserError("Label smoothing has no meaning for the hinge loss: set --label-smoothing 0.")
    if not isinstance(config.amp, bool):
        raise UserError(f"amp must be True or False, not {config.amp!r}.")
    if config.stop_after is not None and config.stop_after < 1:
        raise UserError(f"stop_after must be at least 1, not {config.stop_after}.")
