"""A run's settings (cnnlib.config): each declared once, and from that one declaration the
command-line flags with their help, the checks, the settings a resumed run may change and
the ones a sweep may set; eval_every, the setting added through one declaration."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cnnlib import UserError
from cnnlib.cli import build_parser
from cnnlib.config import RESUMABLE, SETTINGS, TrainConfig, resolve, sweepable
from cnnlib.train import train


def test_every_setting_has_a_flag_with_help_and_bools_can_be_switched_off(run_cli):
    status, out, _ = run_cli("train", "--help")
    text = " ".join(out.split())  # argparse wraps the help lines
    assert status == 0
    for flag, help_text in [("--epochs EPOCHS", "passes over the training set (default: the recipe's)"),
                            ("--momentum MOMENTUM", "momentum of SGD and RMSprop (default: the recipe's)"),
                            ("--eval-every EVAL_EVERY", "evaluate the test set every N epochs (and after the last) "
                                                        "(default: 1)"),
                            ("--subset SUBSET", "train on N images")]:
        assert f"{flag} {help_text}" in text
    for name in ("tta", "amp", "nesterov", "compile", "download", "progress", "decay-norms-and-biases"):
        assert f"--{name}, --no-{name}" in text
    assert "--model-option KEY=VALUE" in text and "--model-options" not in text
    assert "--batch_size" not in text  # the field's own spelling works (below) but stays out of the help


def test_flags_reach_the_config_and_the_ones_not_given_keep_its_defaults():
    args = build_parser().parse_args(["train", "--no-tta", "--batch_size", "32", "--eval-every", "2",
                                      "--no-progress", "--decay-norms-and-biases"])
    settings = {key: value for key, value in vars(args).items() if key not in ("command", "model_option")}
    assert settings == {"tta": False, "batch_size": 32, "eval_every": 2, "progress": False,
                        "decay_norms_and_biases": True}
    config = TrainConfig(**settings)
    assert config.model == "lenet5" and config.download is False and config.epochs is None


def test_the_resumable_and_sweepable_sets_come_from_the_declarations():
    assert RESUMABLE == {"epochs", "out", "device", "resume", "stop_after", "progress", "compile", "data_root",
                         "eval_batch_size", "download", "eval_every"}
    reserved = set(SETTINGS) - set(sweepable())
    assert reserved == {"out", "resume", "stop_after", "progress", "model_options"}
    assert sweepable()[:3] == ["model", "dataset", "data_root"]  # in declaration order


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("epochs", 0, "epochs must be positive, not 0."),
    ("batch_size", 2.5, "batch_size must be an integer, not 2.5."),
    ("lr", "fast", "lr must be a number, not 'fast'."),
    ("momentum", 1.0, r"momentum must lie in \[0, 1\), not 1.0."),
    ("weight_decay", -1e-4, "weight_decay must be at least 0, not -0.0001."),
    ("optimizer", "lbfgs", "Unknown optimizer 'lbfgs': choose one of sgd, adam"),
    ("tta", "yes", "tta must be True or False, not 'yes'."),
    ("eval_every", 0, "eval_every must be positive, not 0."),
    ("crop_padding", 0, "crop_padding must be positive, not 0."),
    ("seed", True, "seed must be an integer, not True."),
])
def test_a_value_outside_its_declaration_is_one_sentence(setting, value, message):
    with pytest.raises(UserError, match=f"^{message}"):
        resolve(TrainConfig(**{setting: value}), channels=1)


def test_cross_setting_rules_stay_explicit():
    with pytest.raises(UserError, match="hinge loss: set --label-smoothing 0"):
        resolve(TrainConfig(loss="hinge", label_smoothing=0.1), channels=1)


def test_numpy_numbers_are_taken_as_plain_numbers_and_their_run_resumes(tmp_path):
    # A sweep's grid from np.logspace or a DataFrame gives NumPy numbers and strings, the model options' too; a
    # checkpoint holding one would be refused by torch's safe loader, so the run could never resume.
    config = resolve(TrainConfig(lr=np.float64(0.05), batch_size=np.int64(32), time_budget=np.float32(60),
                                 optimizer=np.str_("sgd"), model_options={"dropout": np.float64(0.1)}), channels=1)
    assert (type(config.lr), type(config.batch_size), type(config.time_budget)) == (float, int, float)
    assert type(config.optimizer) is str and type(config.model_options["dropout"]) is float
    settings = dict(dataset="digits", subset=300, epochs=2, lr=np.float64(0.05), batch_size=np.int64(32),
                    optimizer=np.str_("sgd"), model_options={"dropout": np.float64(0.1)},
                    device="cpu", progress=False, out=str(tmp_path))
    train(TrainConfig(**settings, stop_after=1))
    assert list(train(TrainConfig(**settings, resume=True)).history["epoch"]) == [1, 2]


def test_recipe_knobs_left_unset_take_the_recipes_values_and_set_ones_win():
    config = resolve(TrainConfig(dataset="digits", lr=0.01), channels=1)
    assert config.recipe == "small-digits" and config.lr == 0.01 and config.epochs == 30 and config.batch_size == 64


def test_eval_every_evaluates_every_nth_epoch_and_the_last(tmp_path):
    result = train(TrainConfig(dataset="digits", subset=300, epochs=5, eval_every=2, device="cpu", progress=False,
                               out=str(tmp_path)))
    tested = [not math.isnan(value) for value in result.history["test_accuracy"]]
    assert tested == [False, True, False, True, True]
    history = pd.read_csv(tmp_path / "history.csv")
    assert history["test_accuracy"].isna().tolist() == [True, False, True, False, False]
    assert result.metrics["test_accuracy"] == history["test_accuracy"].iloc[-1] > 0.2
