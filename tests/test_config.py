"""A run's settings (cnnlib.config): each declared once, and from that one declaration the
command-line flags with their help, the checks, the settings a resumed run may change and
the ones a sweep may set, and a recipe knob's base value; a setting added in a test reaches them all."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from cnnlib import UserError
from cnnlib import config as config_module
from cnnlib.cli import build_parser
from cnnlib.config import TrainConfig, knob, resolve, setting, sweepable
from cnnlib.train import train


def test_every_setting_has_a_flag_with_help_and_bools_can_be_switched_off(run_cli):
    status, out, _ = run_cli("train", "--help")
    text = " ".join(out.split())  # argparse wraps the help lines
    assert status == 0
    for flag, help_text in [
        ("--epochs EPOCHS", "passes over the training set (default: the recipe's)"),
        ("--momentum MOMENTUM", "momentum of SGD and RMSprop (default: the recipe's)"),
        ("--validation VALIDATION", "hold out N training images"),
        ("--subset SUBSET", "train on N images"),
    ]:
        assert f"{flag} {help_text}" in text
    for name in (
        "amp",
        "nesterov",
        "compile",
        "download",
        "progress",
        "decay-norms-and-biases",
        "final-test",
    ):
        assert f"--{name}, --no-{name}" in text
    assert "--tta {none,flip,multicrop}" in text
    assert "--model-option KEY=VALUE" in text and "--model-options" not in text
    assert "--batch_size" not in text  # the field's own spelling works (below) but stays out of the help


def test_flags_reach_the_config_and_the_ones_not_given_keep_its_defaults():
    args = build_parser().parse_args(
        [
            "train",
            "--tta",
            "flip",
            "--batch_size",
            "32",
            "--eval-every",
            "2",
            "--no-progress",
            "--decay-norms-and-biases",
            "--validation",
            "5000",
            "--no-final-test",
        ]
    )
    settings = {key: value for key, value in vars(args).items() if key not in ("command", "model_option")}
    assert settings == {
        "tta": "flip",
        "batch_size": 32,
        "eval_every": 2,
        "progress": False,
        "decay_norms_and_biases": True,
        "validation": 5000,
        "final_test": False,
    }
    config = TrainConfig(**settings)
    assert config.model == "lenet5" and config.download is False and config.epochs is None


def test_a_setting_declared_once_reaches_the_parser_the_resumable_set_the_sweep_and_the_recipes(monkeypatch):
    # Declare two new settings as TrainConfig's fields declare theirs: each must appear everywhere its
    # declaration says, with nothing else written.
    @dataclasses.dataclass
    class Extended(TrainConfig):
        patience: int = setting(
            5, int, "epochs without progress before stopping", positive=True, resumable=True
        )
        secret: float | None = knob(0.5, float, "a knob with a base value", sweepable=False)

    declared = {entry.name: entry.metadata["setting"] for entry in dataclasses.fields(Extended)}
    monkeypatch.setattr(config_module, "TrainConfig", Extended)
    monkeypatch.setattr(config_module, "SETTINGS", declared)
    assert "patience" in config_module.resumable() and "secret" not in config_module.resumable()
    assert "patience" in sweepable() and "secret" not in sweepable()
    assert "out" not in sweepable() and "resume" not in sweepable() and "epochs" in config_module.resumable()
    args = build_parser().parse_args(["train", "--patience", "3", "--secret", "0.25"])
    assert (args.patience, args.secret) == (3, 0.25)
    with pytest.raises(SystemExit):
        build_parser().parse_args(
            ["train", "--patience", "0"]
        )  # the declaration's range, checked by the parser
    # A recipe knob's base value is in its declaration: BASE and every recipe's values derive from it.
    assert config_module.knob_bases()["secret"] == 0.5 and "patience" not in config_module.knob_bases()
    assert all(config_module.recipe_values(name)["secret"] == 0.5 for name in config_module.RECIPES)


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("epochs", 0, ("epochs", "positive", "0")),
        ("batch_size", 2.5, ("batch_size", "integer", "2.5")),
        ("lr", "fast", ("lr", "number", "'fast'")),
        ("momentum", 1.0, ("momentum", "[0, 1)", "1.0")),
        ("weight_decay", -1e-4, ("weight_decay", "at least 0", "-0.0001")),
        ("optimizer", "lbfgs", ("optimizer", "'lbfgs'", "sgd, adam")),
        ("tta", "yes", ("tta", "'yes'", "none, flip, multicrop")),
        ("eval_every", 0, ("eval_every", "positive", "0")),
        ("crop_padding", 0, ("crop_padding", "positive", "0")),
        ("validation", -5, ("validation", "at least 0", "-5")),
        ("seed", True, ("seed", "integer", "True")),
    ],
)
def test_a_value_outside_its_declaration_is_one_sentence(setting, value, words):
    with pytest.raises(UserError) as caught:
        resolve(TrainConfig(**{setting: value}), channels=1)
    message = str(caught.value)
    assert all(word in message for word in words) and message.count(". ") == 0 and message.endswith(".")


def test_tta_given_as_the_bool_it_once_was_is_the_mode_it_meant():
    assert resolve(TrainConfig(tta=True), channels=1).tta == "flip"
    assert resolve(TrainConfig(tta=False), channels=1).tta == "none"


def test_a_record_that_predates_a_knob_reads_as_the_knobs_base_and_its_seeds_pair_with_newer_ones():
    # Chapter 06's seed 0 was recorded before padding_mode, lookahead and norm_bias_lr_factor existed; it
    # trained as their bases do, so it is one preset's run with its seeds 1 and 2, recorded after them.
    newer = dataclasses.asdict(resolve(TrainConfig(model="resnet18", dataset="cifar10"), channels=3))
    older = {
        key: value
        for key, value in newer.items()
        if key not in ("padding_mode", "lookahead", "norm_bias_lr_factor")
    }
    config = config_module.config_from_dict(older)
    assert (config.padding_mode, config.lookahead, config.norm_bias_lr_factor) == ("zeros", False, 1.0)
    assert config == config_module.config_from_dict(newer)


def test_cross_setting_rules_stay_explicit():
    with pytest.raises(UserError, match="hinge loss: set --label-smoothing 0"):
        resolve(TrainConfig(loss="hinge", label_smoothing=0.1), channels=1)


def test_numpy_numbers_are_taken_as_plain_numbers_and_their_run_resumes(tmp_path):
    # A sweep's grid from np.logspace or a DataFrame gives NumPy numbers and strings, the model options'
    # too; a checkpoint holding one would be refused by torch's safe loader, so the run could never resume.
    config = resolve(
        TrainConfig(
            lr=np.float64(0.05),
            batch_size=np.int64(32),
            time_budget=np.float32(60),
            optimizer=np.str_("sgd"),
            model_options={"dropout": np.float64(0.1)},
        ),
        channels=1,
    )
    assert (type(config.lr), type(config.batch_size), type(config.time_budget)) == (float, int, float)
    assert type(config.optimizer) is str and type(config.model_options["dropout"]) is float
    settings = dict(
        dataset="digits",
        subset=300,
        epochs=2,
        lr=np.float64(0.05),
        batch_size=np.int64(32),
        optimizer=np.str_("sgd"),
        model_options={"dropout": np.float64(0.1)},
        device="cpu",
        progress=False,
        out=str(tmp_path),
    )
    train(TrainConfig(**settings, stop_after=1))
    assert list(train(TrainConfig(**settings, resume=True)).history["epoch"]) == [1, 2]


def test_recipe_knobs_left_unset_take_the_recipes_values_and_set_ones_win():
    config = resolve(TrainConfig(dataset="digits", lr=0.01), channels=1)
    assert (
        config.recipe == "small-digits"
        and config.lr == 0.01
        and config.epochs == 30
        and config.batch_size == 64
    )


def test_eval_every_evaluates_the_validation_split_every_nth_epoch_and_the_test_set_once(tmp_path):
    result = train(
        TrainConfig(
            dataset="digits",
            subset=300,
            validation=60,
            epochs=5,
            eval_every=2,
            device="cpu",
            progress=False,
            out=str(tmp_path),
        )
    )
    validated = [not math.isnan(value) for value in result.history["val_accuracy"]]
    assert validated == [False, True, False, True, True]
    history = pd.read_csv(tmp_path / "history.csv")
    assert history["val_accuracy"].isna().tolist() == [True, False, True, False, False]
    assert history["test_accuracy"].isna().tolist() == [True, True, True, True, False]
    assert result.metrics.test_accuracy == history["test_accuracy"].iloc[-1] > 0.2
    assert (
        result.metrics.val_accuracy == history["val_accuracy"].iloc[-1]
        and result.metrics.validation_images == 60
    )
