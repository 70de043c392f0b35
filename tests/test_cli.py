"""The command line: every command, and a user's mistakes as one sentence with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def test_models_lists_one_name_per_line(run_cli):
    status, out, _ = run_cli("models")
    lines = out.splitlines()
    assert status == 0 and "lenet5" in [line.split()[0] for line in lines]
    assert "LeNet-5 (LeCun et al. 1998)" in lines[0]  # each name with its paper


def test_console_script_and_module_agree():
    for command in (
        [str(Path(sys.executable).parent / "cnnlib"), "models"],
        [sys.executable, "-m", "cnnlib", "models"],
    ):
        finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert finished.returncode == 0 and "lenet5" in finished.stdout.split()


def test_summary_json_has_totals_and_layers(run_cli):
    status, out, _ = run_cli(
        "summary", "--model", "lenet5", "--format", "json", "--model-option", "variant=paper"
    )
    summary = json.loads(out)
    assert status == 0 and summary["total_params"] == 60_000 and summary["input_shape"] == [1, 32, 32]
    c1 = next(layer for layer in summary["layers"] if layer["name"].endswith("C1"))
    assert c1["params"] == 156 and c1["output_shape"] == [6, 28, 28] and c1["macs"] == 117_600
    for key in ("name", "type", "output_shape", "params", "macs"):
        assert all(key in layer for layer in summary["layers"])


def test_summary_table_and_csv(run_cli):
    status, out, _ = run_cli("summary", "--model", "lenet5")
    assert status == 0 and "(32 − 5 + 2·0)/1 + 1 = 28" in out and "61,706 parameters" in out
    status, out, _ = run_cli("summary", "--model", "lenet5", "--format", "csv")
    assert status == 0 and out.splitlines()[0].startswith("name,type,")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["summary", "--model", "lenet6"], "Unknown model 'lenet6': choose one of lenet5"),
        (
            ["summary", "--model", "lenet5", "--input-size", "1", "28", "28"],
            "too small for LeNet5: layer features.C5",
        ),
        (
            ["summary", "--model", "lenet5", "--model-option", "variant=tiny"],
            "Unknown LeNet-5 variant 'tiny'",
        ),
        (["train", "--dataset", "imagenet"], "imagenet"),
        (["evaluate", "--checkpoint", "no/such/checkpoint.pt"], "does not exist: train a model first"),
    ],
)
def test_user_mistakes_are_one_sentence(run_cli, argv, message):
    status, out, err = run_cli(*argv)
    assert status == 2
    assert message in err and "Traceback" not in err
    assert err.startswith("cnnlib: error: ") and err.count("\n") == 1


def test_missing_data_folder(run_cli, tmp_path):
    status, _, err = run_cli("train", "--dataset", "mnist", "--data-root", str(tmp_path), "--device", "cpu")
    assert status == 2 and "MNIST not found" in err and str(tmp_path) in err and "--download" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--epochs", "0"], "epochs must be positive"),
        (["train", "--epochs", "2.5"], "epochs must be an integer"),
        (["train", "--optimizer", "lbfgs"], "Unknown optimizer 'lbfgs': choose one of sgd"),
        (["train", "--lr", "-1"], "lr must be positive"),
        (["train", "--warmup", "1"], "warmup must lie in [0, 1)"),
        (["train", "--grad-clip", "-1"], "grad_clip must be at least 0"),
    ],
)
def test_bad_option_values_exit_2(run_cli, argv, message):
    status, _, err = run_cli(*argv)
    assert status == 2 and message in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model-option", "variant"], "--model-option 'variant' is not KEY=VALUE: write e.g."),
        (["--model-option", "=paper"], "--model-option '=paper' is not KEY=VALUE"),
        (["--model-option", "variant="], "--model-option 'variant=' is not KEY=VALUE"),
        (["--model-option", "variant=paper", "--model-option", "variant=modern"], "variant is given twice"),
    ],
)
def test_bad_key_values_are_one_sentence(run_cli, argv, message):
    for command in ("summary", "train"):
        status, out, err = run_cli(command, "--model", "lenet5", *argv)
        assert status == 2 and message in err and out == ""
        assert err.startswith("cnnlib: error: ") and err.count("\n") == 1


def test_key_values_are_typed_and_dashes_in_keys_are_underscores():
    from cnnlib.cli import key_values

    assert key_values(
        ["width-mult=0.5", "aux_logits=false", "depth=3", "variant=paper"], "--model-option"
    ) == {"width_mult": 0.5, "aux_logits": False, "depth": 3, "variant": "paper"}
    assert key_values(["lr=0.1,1e-2", "nesterov=true,False"], "--grid", many=True) == {
        "lr": [0.1, 0.01],
        "nesterov": [True, False],
    }


def test_train_then_evaluate(run_cli, tmp_path):
    status, out, _ = run_cli(
        "train",
        "--model",
        "lenet5",
        "--dataset",
        "digits",
        "--epochs",
        "3",
        "--batch_size",
        "32",
        "--optimizer",
        "adam",
        "--lr",
        "0.002",
        "--device",
        "cpu",
        "--no-progress",
        "--out",
        str(tmp_path),
    )
    assert status == 0 and "test accuracy" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["config"]["batch_size"] == 32 and metrics["config"]["optimizer"] == "adam"
    assert metrics["test_accuracy"] > 0.5
    status, out, _ = run_cli("evaluate", "--checkpoint", str(tmp_path / "checkpoint.pt"), "--device", "cpu")
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert status == 0 and report["test_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)


# Networks that are the same as torchvision's, with the option that makes them so, and torchvision's
# model card.
SAME_AS_TORCHVISION = [
    ("alexnet", ["variant=torchvision"], "AlexNet_Weights"),
    ("vgg11", [], "VGG11_Weights"),
    ("vgg13", [], "VGG13_Weights"),
    ("vgg16", [], "VGG16_Weights"),
    ("vgg19", [], "VGG19_Weights"),
    ("vgg11_bn", [], "VGG11_BN_Weights"),
    ("vgg16_bn", [], "VGG16_BN_Weights"),
    ("vgg19_bn", [], "VGG19_BN_Weights"),
    ("googlenet", ["variant=torchvision", "aux_logits=false"], "GoogLeNet_Weights"),
    ("resnet18", [], "ResNet18_Weights"),
    ("resnet34", [], "ResNet34_Weights"),
    ("resnet50", ["stride_on=3x3"], "ResNet50_Weights"),
    ("resnet101", ["stride_on=3x3"], "ResNet101_Weights"),
    ("resnet152", ["stride_on=3x3"], "ResNet152_Weights"),
    ("densenet121", [], "DenseNet121_Weights"),
    ("mobilenet_v2", [], "MobileNet_V2_Weights"),
    ("efficientnet_b0", [], "EfficientNet_B0_Weights"),
]


@pytest.mark.parametrize(
    ("name", "options", "card"), SAME_AS_TORCHVISION, ids=[row[0] for row in SAME_AS_TORCHVISION]
)
@pytest.mark.slow
def test_summary_json_agrees_with_torchvision_model_card(run_cli, name, options, card):
    import torchvision

    meta = getattr(torchvision.models, card).IMAGENET1K_V1.meta
    side = 227 if name == "alexnet" and not options else 224
    argv = ["summary", "--model", name, "--input-size", "3", str(side), str(side), "--format", "json"]
    for option in options:
        argv += ["--model-option", option]
    status, out, err = run_cli(*argv)
    assert status == 0, err
    summary = json.loads(out)
    assert summary["num_classes"] == 1000
    assert summary["total_params"] == meta["num_params"]
    assert round(summary["total_macs"] / 1e9, 3) == pytest.approx(meta["_ops"], abs=1e-9)


def test_every_model_is_listed(run_cli):
    _, out, _ = run_cli("models")
    expected = {
        "lenet5",
        "alexnet",
        "nin",
        "googlenet",
        "densenet121",
        "mobilenet_v2",
        "efficientnet_b0",
        *(f"vgg{depth}{suffix}" for depth in (11, 13, 16, 19) for suffix in ("", "_bn")),
        *(f"resnet{depth}" for depth in (10, 14, 16, 18, 26, 34, 50, 101, 152)),
    }
    assert expected <= set(out.split())
