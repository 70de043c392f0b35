"""The chapters' training runs: named settings (``cpu``, the full CIFAR-10 run a laptop repeats; ``gpu``,
the paper's width) and their report.

Each architecture chapter trains its network on the whole of CIFAR-10 (50,000 training and
10,000 test images, 32×32) under one of two presets, selected by one papermill parameter
(``-p preset gpu``):

* ``cpu``: the paper's depth and blocks at a reduced ``width_mult`` (every layer's channels
  scaled, see each model's docstring), bf16 autocast where the CPU has it, and **at most 600 s
  of training** (1,200 s for MobileNetV2 and EfficientNet-B0, chapters 08 and 09): ``time_budget`` stops
  the run there on a slow machine, with its schedule run down to the end (:mod:`cnnlib.train`), and a fast one
  trains the preset's ``epochs`` in less. The figures the book prints come from these runs on
  2 CPU cores (``results/cpu/``).
* ``gpu``: the paper's width (``width_mult=1``) and the epochs a converged run needs, for
  one modern GPU (``benchmarks/reference_gpu.py`` runs them all).

Knobs a preset leaves out come from the recipe (:mod:`cnnlib.recipes`): Nesterov SGD with a
one-cycle schedule, label smoothing 0.1, random crops and flips, flip test-time augmentation. Most
cpu runs flip their images without cropping them, and several leave out their paper's dropout: short
runs underfit. How each was chosen: ``results/recipes/<chapter>/``.
"""

from __future__ import annotations

from typing import Any

from cnnlib import models
from cnnlib.config import SETTINGS, TrainConfig
from cnnlib.errors import UserError
from cnnlib.record import RunMetrics, RunRecord

# Per model: {preset: settings}. How each cpu preset was chosen, on a validation split of 5,000 of the
# training images, is in results/recipes/<chapter>/ (its results.csv, and TRIALS.md for the earlier trials
# that were scored on the test set and are kept only as history).
# The fast chapter's recipe, airbench94's (Jordan 2024) hyperparameters for the mean loss of a batch; its two
# presets set the batch, the peak learning rate and the weight average's decay per step that go with it.
AIRBENCH94: dict[str, Any] = {
    "width_mult": 1.0,
    "epochs": 10,
    "momentum": 0.85,
    "weight_decay": 1.33e-3,
    "norm_bias_lr_factor": 64.0,
    "whiten_bias_epochs": 3,
    "label_smoothing": 0.2,
    "warmup": 0.23,
    "augment": "crop+altflip",
    "crop_padding": 2,
    "padding_mode": "reflect",
    "tta": "multicrop",
}

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # Chapter 02: half width, batch norm before every ReLU and no LRN (variant paper_bn), He initialisation
    # (the paper's N(0, 0.01²) of §5 leaves the network at chance for several epochs at this budget), flips
    # without crops, 12 epochs (results/recipes/02_alexnet).
    "alexnet": {
        "cpu": {
            "width_mult": 0.5,
            "variant": "paper_bn",
            "init": "kaiming",
            "epochs": 12,
            "batch_size": 128,
            "lr": 0.1,
            "augment": "flip",
            "time_budget": 600,
        },
        "gpu": {"width_mult": 1.0, "init": "kaiming", "epochs": 40, "batch_size": 512, "lr": 0.05},
    },
    # Chapter 03: half width, batch norm before every ReLU (paper_bn), He initialisation, no dropout (a run
    # this short underfits), flips without crops, 12 epochs (results/recipes/03_nin).
    "nin": {
        "cpu": {
            "width_mult": 0.5,
            "variant": "paper_bn",
            "init": "kaiming",
            "dropout": 0.0,
            "epochs": 12,
            "batch_size": 128,
            "lr": 0.1,
            "augment": "flip",
            "time_budget": 600,
        },
        "gpu": {"width_mult": 1.0, "init": "kaiming", "epochs": 60, "batch_size": 256, "lr": 0.05},
    },
    # Chapter 04: configuration D with batch norm at half width, flips without crops, 12 epochs
    # (results/recipes/04_vgg).
    "vgg16_bn": {
        "cpu": {
            "width_mult": 0.5,
            "epochs": 12,
            "batch_size": 128,
            "lr": 0.05,
            "augment": "flip",
            "time_budget": 600,
        },
        "gpu": {"width_mult": 1.0, "epochs": 40, "batch_size": 512, "lr": 0.1},
    },
    # Chapter 05: GoogLeNet with its two auxiliary classifiers (weight 0.3, §5), at a quarter width, with
    # batch norm and no LRN (paper_bn, as Ioffe & Szegedy 2015 trained it), no dropout, flips without crops,
    # at most 12 epochs in the budget (results/recipes/05_googlenet).
    "googlenet": {
        "cpu": {
            "width_mult": 0.25,
            "variant": "paper_bn",
            "dropout": 0.0,
            "epochs": 12,
            "batch_size": 128,
            "lr": 0.1,
            "augment": "flip",
            "time_budget": 600,
        },
        "gpu": {"width_mult": 1.0, "variant": "paper", "epochs": 40, "batch_size": 512, "lr": 0.1},
    },
    # Chapter 06: ResNet-18 at a quarter width (and, with residual=False, its plain twin), batch 64, crops
    # after 2 pixels of padding.
    "resnet18": {
        "cpu": {
            "width_mult": 0.25,
            "epochs": 18,
            "batch_size": 64,
            "lr": 0.1,
            "crop_padding": 2,
            "time_budget": 600,
        },
        "gpu": {"width_mult": 1.0, "epochs": 30, "batch_size": 512, "lr": 0.2},
    },
    # Chapter 07: DenseNet-121 at the paper's CIFAR growth rate 12 (32 × width_mult), the small-input stem at
    # stride 2 so that the dense blocks start at 16×16, flips without crops.
    "densenet121": {
        "cpu": {
            "width_mult": 0.375,
            "stem_stride": 2,
            "epochs": 9,
            "batch_size": 128,
            "lr": 0.1,
            "augment": "flip",
            "time_budget": 600,
        },
        "gpu": {"width_mult": 1.0, "epochs": 40, "batch_size": 256, "lr": 0.1},
    },
    # Chapter 08: MobileNetV2 at half width, the stem at stride 2, no dropout, fp32 (bf16 was no faster for
    # it on a CPU: results/benchmark-cpu-precision.json), 24 epochs of crops and flips
    # (results/recipes/08_mobilenet).
    "mobilenet_v2": {
        "cpu": {
            "width_mult": 0.5,
            "stem_stride": 2,
            "dropout": 0.0,
            "amp": False,
            "epochs": 24,
            "batch_size": 128,
            "lr": 0.1,
            "augment": "crop+flip",
            "time_budget": 1200,
        },
        "gpu": {"width_mult": 1.0, "epochs": 40, "batch_size": 256, "lr": 0.1},
    },
    # Chapter 09: EfficientNet-B0 at half width, the stem at stride 2, no dropout or stochastic depth, fp32,
    # flips without crops, 20 epochs (results/recipes/09_efficientnet).
    "efficientnet_b0": {
        "cpu": {
            "width_mult": 0.5,
            "stem_stride": 2,
            "dropout": 0.0,
            "stochastic_depth": 0.0,
            "amp": False,
            "epochs": 20,
            "batch_size": 128,
            "lr": 0.1,
            "augment": "flip",
            "time_budget": 1200,
        },
        "gpu": {"width_mult": 1.0, "epochs": 40, "batch_size": 256, "lr": 0.1},
    },
    # Chapter 10, training fast: the fast network at full width with airbench94's recipe (Jordan 2024, its
    # code's hyperparameters rescaled to batch 512 and the mean loss of a batch), its tricks on, and the
    # whitening bias frozen after 3 epochs as its code does (round 3 of results/recipes/10_fast_training
    # chose it; its schedule's ends and batch-norm eps lost there).
    "fastnet": {
        "cpu": AIRBENCH94 | {"batch_size": 512, "lr": 0.75, "ema": 0.975, "time_budget": 600},
        "gpu": AIRBENCH94 | {"batch_size": 1024, "lr": 1.5, "ema": 0.95},
    },
}

PRESET_NAMES = ("cpu", "gpu")


def preset_values(model: str, preset: str = "cpu") -> dict[str, Any]:
    """The settings of ``model``'s chapter run under ``preset`` (``cpu`` or ``gpu``)."""
    if model not in PRESETS:
        raise UserError(f"No chapter preset for model {model!r}: the presets are for {', '.join(PRESETS)}.")
    if preset not in PRESET_NAMES:
        raise UserError(f"Unknown preset {preset!r}: choose one of {', '.join(PRESET_NAMES)}.")
    return dict(PRESETS[model][preset])


def preset_config(
    network: str, preset: str = "cpu", *, model_options: dict[str, Any] | None = None, **settings: Any
) -> TrainConfig:
    """The :class:`~cnnlib.config.TrainConfig` of the chapter run of ``network`` under
    ``preset``, on CIFAR-10 unless ``dataset`` is given. Every keyword that is not ``None``
    (a ``TrainConfig`` field, such as ``model`` for another network of the same chapter, or
    a model option such as ``width_mult``) replaces the preset's value; ``model_options``
    adds options of the builder (``residual=False``)."""
    values = preset_values(network, preset) | {
        key: value for key, value in settings.items() if value is not None
    }
    model = values.get("model", network)
    options = {key: values.pop(key) for key in models.spec(model).options if key in values} | (
        model_options or {}
    )
    unknown = sorted(set(values) - set(SETTINGS))
    if unknown:
        raise UserError(
            f"{unknown[0]!r} is neither a training setting nor a model option of the presets: "
            f"see `cnnlib train --help` for the settings."
        )
    return TrainConfig(**{"model": network, "dataset": "cifar10", **values}, model_options=options)


def run_summary(record: RunRecord) -> str:
    """The lines a chapter prints under its run: network, data, hardware, precision, budget, accuracy."""
    config, metrics = record.config, record.metrics
    lines = [
        f"model: {record.model} {record.model_options}, {metrics.params:,} parameters, "
        f"{metrics.macs:,} MACs per image",
        f"data: {record.dataset_source}",
        f"{metrics.train_images:,} training, {metrics.validation_images:,} validation and "
        f"{metrics.test_images:,} test images, input {list(record.preprocess.input_shape)}",
        f"hardware: {metrics.device} ({metrics.device_name}), torch {record.versions.get('torch')}, "
        f"precision {metrics.precision}",
        f"{_epochs_trained(config, metrics)}, batch {config.batch_size}, peak lr {config.lr}, "
        f"recipe {config.recipe}: {metrics.train_seconds:.0f} s of training "
        f"({metrics.train_images_per_second:,.0f} images/s)",
    ]
    if metrics.val_accuracy is not None:
        lines.append(
            f"validation accuracy: {metrics.val_accuracy:.2%} on {metrics.validation_images:,} images"
        )
    if metrics.test_accuracy is not None:
        lines.append(f"test accuracy: {metrics.test_accuracy:.2%} on {metrics.test_images:,} test images")
    return "\n".join(lines)


def _epochs_trained(config: TrainConfig, metrics: RunMetrics) -> str:
    if config.time_budget and metrics.epochs_trained < config.epochs:
        return (
            f"{metrics.epochs_trained:.2f} of {config.epochs} epochs (the {config.time_budget:g} s "
            "budget ended the run)"
        )
    return f"{metrics.epochs} epochs"
