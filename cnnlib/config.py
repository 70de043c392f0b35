"""A run's settings: each declared once (type, range or choices, help, resumable, sweepable); recipes fill
the rest.

The declarations are the one source of the ``cnnlib train`` flags and their help
(:mod:`cnnlib.cli`), of the checks of :func:`resolve`, of the settings a resumed run may
change (:func:`resumable`) and of those a sweep may vary (:func:`sweepable`). Adding a
setting is one line in :class:`TrainConfig` plus the code that uses it.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnlib.device import DEVICES
from cnnlib.errors import UserError
from cnnlib.recipes import RECIPES, recipe_for

OPTIMIZERS = ("sgd", "adam", "adamw", "nadam", "adagrad", "rmsprop")
SCHEDULES = ("none", "step", "cosine", "onecycle")
AUGMENTATIONS = ("auto", "none", "crop", "flip", "crop+flip", "altflip", "crop+altflip")
TTA_MODES = ("none", "flip", "multicrop")
PADDING_MODES = ("zeros", "reflect")
LOSSES = ("cross_entropy", "mse", "hinge")


@dataclass(frozen=True)
class Setting:
    """How one training setting is given and checked. ``kind`` is ``int``, ``float``, ``bool``
    or ``str`` (``dict`` for the model options, given as ``--model-option KEY=VALUE``); at most
    one range: ``positive`` (> 0), ``at_least`` (≥ the bound) or ``within``
    (the half-open interval [low, high)). ``resumable``: a resumed run may change it;
    ``sweepable``: a sweep may set it (the sweep sets the others itself); ``flag``: ``cnnlib
    train`` has a flag for it; ``base``: a recipe knob's value where no recipe sets it (the
    setting's own default is then ``None``, "the recipe's")."""

    kind: type
    help: str
    choices: tuple[str, ...] | None = None
    positive: bool = False
    at_least: float | None = None
    within: tuple[float, float] | None = None
    resumable: bool = False
    sweepable: bool = True
    flag: bool = True
    base: Any = None


def setting(default: Any, kind: type, help: str, **declaration: Any) -> Any:
    """A :class:`TrainConfig` field with its :class:`Setting`."""
    return field(default=default, metadata={"setting": Setting(kind, help, **declaration)})


def knob(base: Any, kind: type, help: str, **declaration: Any) -> Any:
    """A recipe knob: left at ``None`` it takes the recipe's value, ``base`` where the recipe sets none."""
    return setting(None, kind, help, base=base, **declaration)


@dataclass
class TrainConfig:
    """One training run. Knobs left at ``None`` take the value of the recipe
    (:mod:`cnnlib.recipes`), named by ``recipe`` or chosen for the model and data set."""

    model: str = setting("lenet5", str, "the network (`cnnlib models` lists them)")
    dataset: str = setting("digits", str, "digits, mnist, cifar10, or a folder / .tar.gz of images")
    data_root: str | None = setting(
        None,
        str,
        "folder of the data sets (default: $CNNLIB_DATA, else ~/.cache/cnnlib/data)",
        resumable=True,
    )
    download: bool = setting(False, bool, "download MNIST / CIFAR-10 if they are missing", resumable=True)
    subset: int | None = setting(None, int, "train on N images (and test on at most N)", positive=True)
    seed: int = setting(0, int, "seed of the initial weights, the batch order and the augmentation")
    device: str = setting("auto", str, "where to train", choices=DEVICES, resumable=True)
    out: str | None = setting(
        None, str, "output folder (default: runs/MODEL-DATASET)", resumable=True, sweepable=False
    )
    recipe: str | None = setting(
        None,
        str,
        "the recipe that fills the knobs left unset (default: the one for the model and data set)",
        choices=tuple(RECIPES),
    )
    model_options: dict[str, Any] = field(
        default_factory=dict,
        metadata={"setting": Setting(dict, "options of the model's builder", sweepable=False, flag=False)},
    )
    loss: str = setting("cross_entropy", str, "the training loss", choices=LOSSES)
    time_budget: float | None = setting(
        None,
        float,
        "stop training after this many seconds, evaluation aside; "
        "the schedule then ends there (default: none)",
        positive=True,
    )
    # Recipe knobs.
    epochs: int | None = knob(10, int, "passes over the training set", positive=True, resumable=True)
    batch_size: int | None = knob(128, int, "images per training step", positive=True)
    optimizer: str | None = knob("sgd", str, "the optimiser", choices=OPTIMIZERS)
    lr: float | None = knob(0.05, float, "the peak learning rate", positive=True)
    momentum: float | None = knob(0.9, float, "momentum of SGD and RMSprop", within=(0, 1))
    nesterov: bool | None = knob(True, bool, "Nesterov momentum (SGD)")
    weight_decay: float | None = knob(5e-4, float, "L2 penalty (decoupled for adamw)", at_least=0)
    schedule: str | None = knob("onecycle", str, "the learning-rate schedule", choices=SCHEDULES)
    warmup: float | None = knob(0.2, float, "fraction of the steps spent warming up", within=(0, 1))
    warmup_from: float | None = knob(
        0.0,
        float,
        "the warm-up's first learning rate, a fraction of the peak (airbench94: 0.2)",
        within=(0, 1),
    )
    anneal_to: float | None = knob(
        0.0,
        float,
        "the cosine or one-cycle schedule's last learning rate, a fraction of the peak (airbench94: 0.07)",
        within=(0, 1),
    )
    label_smoothing: float | None = knob(0.0, float, "label smoothing of the cross-entropy", within=(0, 1))
    augment: str | None = knob(
        "auto",
        str,
        "training augmentation (auto: crop+flip for colour, crop for grey, "
        "none for digits; altflip: each image mirrored in every other epoch, Jordan 2024 "
        "§3.6)",
        choices=AUGMENTATIONS,
    )
    crop_padding: int | None = setting(
        None,
        int,
        "pixels of padding around an image before its random crop "
        "(default: 4 at 32×32 for colour, 2 for grey)",
        positive=True,
    )
    padding_mode: str | None = knob(
        "zeros",
        str,
        "what fills the padding before a random crop: zeros (black), or the image reflected at its edges "
        "(reflect, airbench's: Jordan 2024)",
        choices=PADDING_MODES,
    )
    grad_clip: float | None = knob(0.0, float, "clip the gradient norm (0: off)", at_least=0)
    ema: float | None = knob(
        0.0, float, "decay of an exponential moving average of the weights (0: off)", within=(0, 1)
    )
    lookahead: bool | None = knob(
        False,
        bool,
        "Lookahead: a slow copy of the weights, every 5 steps moved towards the trained ones, which "
        "restart from it; the run ends on it (Zhang et al. 2019; Jordan 2024 §3.7)",
    )
    tta: str | None = knob(
        "none",
        str,
        "test-time augmentation: the mean output over the image and its "
        "mirror (flip), and their 1-pixel shifts too (multicrop, Jordan 2024 §3.5)",
        choices=TTA_MODES,
    )
    # The fast chapter's trick that is a setting (Jordan 2024, arXiv 2404.00498, §3); the others are options
    # of fastnet (cnnlib.models.fastnet), augment's altflip and tta's multicrop.
    norm_bias_lr_factor: float | None = knob(
        1.0,
        float,
        "the batch-norm biases' learning rate over the others' (Jordan 2024 §3.4: 64)",
        positive=True,
    )
    # bf16 where the device computes it natively (cnnlib.device); which networks gain on a CPU:
    # results/benchmark-cpu-precision.json.
    amp: bool | None = knob(True, bool, "bf16 autocast on CUDA and on CPUs with native bf16")
    # Engineering.
    decay_norms_and_biases: bool = setting(False, bool, "weight decay on the norm layers and biases too")
    channels_last: bool | None = setting(None, bool, "channels-last memory format (default: on CUDA and CPU)")
    compile: bool = setting(False, bool, "torch.compile the model", resumable=True)
    eval_batch_size: int | None = setting(
        None, int, "images per evaluation batch (default: sized to the device)", positive=True, resumable=True
    )
    validation: int = setting(
        0,
        int,
        "hold out N training images, stratified by class and the same N for every "
        "seed, as a validation split evaluated during training",
        at_least=0,
    )
    eval_every: int = setting(
        1,
        int,
        "evaluate the validation split every N epochs (and after the last)",
        positive=True,
        resumable=True,
    )
    final_test: bool = setting(
        True,
        bool,
        "evaluate the test set once, after the last epoch (--no-final-test for "
        "a recipe search, which reads the validation split only)",
        resumable=True,
    )
    resume: bool = setting(
        False, bool, "continue the run in --out from its last checkpoint", resumable=True, sweepable=False
    )
    stop_after: int | None = setting(
        None,
        int,
        "stop after N epochs of this invocation (resume later)",
        positive=True,
        resumable=True,
        sweepable=False,
    )
    progress: bool = setting(True, bool, "progress bars", resumable=True, sweepable=False)


SETTINGS: dict[str, Setting] = {
    entry.name: entry.metadata["setting"] for entry in dataclasses.fields(TrainConfig)
}


def knob_bases() -> dict[str, Any]:
    """Every recipe knob's value where the recipe sets none, from the knobs' declarations."""
    return {name: declared.base for name, declared in SETTINGS.items() if declared.base is not None}


def recipe_values(name: str) -> dict[str, Any]:
    """Every knob's value under recipe ``name`` (:mod:`cnnlib.recipes`)."""
    if name not in RECIPES:
        raise UserError(f"Unknown recipe {name!r}: choose one of {', '.join(RECIPES)}.")
    return knob_bases() | RECIPES[name]


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """The :class:`TrainConfig` a record stored as a dict (``dataclasses.asdict``). A setting the record
    predates keeps its default, a recipe knob it predates its base (what the trainer did before the knob
    existed: a record of a resolved run has no knob left unset), and a ``tta`` stored when it was a bool
    is the mode it meant."""
    predates = {name: base for name, base in knob_bases().items() if name not in values}
    stored = {name: values[name] for name in SETTINGS if name in values}
    return _tta_as_mode(TrainConfig(**stored | (predates if values.get("recipe") else {})))


def _tta_as_mode(config: TrainConfig) -> TrainConfig:
    """``tta`` given as the bool it was before it named a mode (a record, a notebook or a sweep of then):
    ``True`` is ``flip``, ``False`` ``none``."""
    if isinstance(config.tta, (bool, np.bool_)):
        return dataclasses.replace(config, tta="flip" if config.tta else "none")
    return config


def resumable() -> frozenset[str]:
    """The settings an interrupted run may change when it resumes."""
    return frozenset(name for name, declared in SETTINGS.items() if declared.resumable)


def sweepable() -> list[str]:
    """The settings a sweep of ``train`` may set, in declaration order."""
    return [name for name, declared in SETTINGS.items() if declared.sweepable]


def check_setting(name: str, value: Any) -> None:
    """Raise a one-sentence :class:`UserError` unless ``value`` has the type, choice and range
    declared for setting ``name`` (``None`` passes where the default is ``None``)."""
    declared = SETTINGS[name]
    if value is None and TrainConfig.__dataclass_fields__[name].default is None:
        return
    if declared.choices is not None:
        if value not in declared.choices:
            raise UserError(f"Unknown {name} {value!r}: choose one of {', '.join(declared.choices)}.")
        return
    if declared.kind is bool and not isinstance(value, (bool, np.bool_)):
        raise UserError(f"{name} must be True or False, not {value!r}.")
    if declared.kind in (int, float):
        number = numbers.Real if declared.kind is float else numbers.Integral  # NumPy's numbers too
        if isinstance(value, bool) or not isinstance(value, number):
            raise UserError(
                f"{name} must be {'a number' if declared.kind is float else 'an integer'}, not {value!r}."
            )
        if declared.positive and not value > 0:
            raise UserError(f"{name} must be positive, not {value}.")
        if declared.at_least is not None and not value >= declared.at_least:
            raise UserError(f"{name} must be at least {declared.at_least}, not {value}.")
        if declared.within is not None and not declared.within[0] <= value < declared.within[1]:
            low, high = declared.within
            raise UserError(f"{name} must lie in [{low}, {high}), not {value}.")


def resolve(config: TrainConfig, channels: int) -> TrainConfig:
    """Fill the knobs left unset from the recipe, check every value, and make each value a plain
    Python one (:func:`_plain`)."""
    config = _tta_as_mode(config)
    recipe = config.recipe or recipe_for(config.model, config.dataset, channels)
    values = recipe_values(recipe)
    filled = {
        key: values[key] if getattr(config, key) is None else getattr(config, key) for key in knob_bases()
    }
    resolved = dataclasses.replace(config, recipe=recipe, **filled)
    _validate(resolved)
    return dataclasses.replace(
        resolved,
        **{name: _plain(getattr(resolved, name), declared.kind) for name, declared in SETTINGS.items()},
    )


def _plain(value: Any, kind: type | None = None) -> Any:
    """``value`` as a plain Python value: a NumPy number or string (a sweep's grid from ``np.logspace``
    or a DataFrame) as the int, float or str it holds, a float where ``kind`` is ``float``, and a
    dict's values alike. A checkpoint holding a NumPy object is one torch's safe loader refuses."""
    if isinstance(value, dict):
        return {key: _plain(option) for key, option in value.items()}
    if value is None or isinstance(value, (bool, np.bool_)):
        return None if value is None else bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, numbers.Integral) and kind is not float:
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


def _validate(config: TrainConfig) -> None:
    for name in SETTINGS:
        if SETTINGS[name].kind is not dict:
            check_setting(name, getattr(config, name))
    if config.ema and config.lookahead:
        raise UserError(
            "ema and lookahead both average the weights, and a run keeps one average: "
            "set --ema 0 or --no-lookahead."
        )
    if config.anneal_to and config.schedule not in ("cosine", "onecycle"):
        raise UserError(
            f"anneal_to is where a cosine or one-cycle schedule ends, and the {config.schedule!r} schedule "
            "has no such end: set --anneal-to 0 or --schedule onecycle."
        )
    if config.loss == "hinge" and config.label_smoothing:
        raise UserError("Label smoothing has no meaning for the hinge loss: set --label-smoothing 0.")
