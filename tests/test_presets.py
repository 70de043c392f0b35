"""The chapters' presets: every architecture chapter has a cpu and a gpu setting, and a notebook's
parameters replace the preset's values one by one."""

from __future__ import annotations

import dataclasses

import pytest

from cnnlib import UserError, models
from cnnlib.config import TrainConfig, resolve
from cnnlib.presets import PRESET_NAMES, PRESETS, preset_config, run_summary
from cnnlib.record import Preprocess, RunMetrics, RunRecord

CHAPTER_MODELS = [
    "alexnet",
    "nin",
    "vgg16_bn",
    "googlenet",
    "resnet18",
    "densenet121",
    "mobilenet_v2",
    "efficientnet_b0",
    "fastnet",
]
# The classic networks train at a reduced width on the CPU; the fast chapter's network is small by design.
REDUCED_ON_CPU = CHAPTER_MODELS[:-1]


def test_every_chapter_network_has_both_presets():
    assert sorted(PRESETS) == sorted(CHAPTER_MODELS)
    for name in CHAPTER_MODELS:
        assert set(PRESETS[name]) == set(PRESET_NAMES)
        assert PRESETS[name]["gpu"]["width_mult"] == 1.0, "the gpu preset trains the paper's width"
        assert 0 < PRESETS[name]["cpu"]["width_mult"] < 1 or name not in REDUCED_ON_CPU


@pytest.mark.parametrize("name", REDUCED_ON_CPU)
def test_a_preset_builds_its_network(name):
    config = preset_config(name, "cpu")
    model = models.create(name, num_classes=10, input_size=32, **config.model_options)
    full = models.create(name, num_classes=10, input_size=32)
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in full.parameters())


def test_parameters_that_are_set_replace_the_presets_values():
    config = preset_config(
        "resnet18", "cpu", epochs=3, width_mult=0.125, lr=None, seed=4, model_options={"residual": False}
    )
    assert config.epochs == 3 and config.seed == 4 and config.dataset == "cifar10"
    assert config.lr == PRESETS["resnet18"]["cpu"]["lr"]
    assert config.model_options == {"width_mult": 0.125, "residual": False}
    assert preset_config("resnet18", "gpu").model_options == {"width_mult": 1.0}
    # Another network of the same chapter (the exercises' "set model = vgg11") trains under the chapter's
    # preset.
    other = preset_config("vgg16_bn", "cpu", model="vgg11")
    assert other.model == "vgg11" and other.epochs == PRESETS["vgg16_bn"]["cpu"]["epochs"]


def test_a_wrong_preset_or_setting_is_one_sentence():
    with pytest.raises(UserError, match="Unknown preset 'tpu'.*cpu, gpu"):
        preset_config("resnet18", "tpu")
    with pytest.raises(UserError, match="No chapter preset for model 'lenet5'"):
        preset_config("lenet5")
    with pytest.raises(UserError, match="'epoch' is neither a training setting nor a model option"):
        preset_config("resnet18", epoch=3)


def test_the_run_summary_names_precision_data_and_accuracy():
    metrics = RunMetrics(
        epochs=12,
        epochs_trained=12,
        train_seconds=512.3,
        train_images_per_second=1171.4,
        final_train_loss=0.6,
        final_train_accuracy=0.8,
        params=246186,
        macs=59_300_000,
        train_images=45000,
        test_images=10000,
        device="cpu",
        device_name="Xeon, 2 threads",
        precision="bf16",
        cpu_threads=2,
        world_size=1,
        checkpoint="runs/03_nin/checkpoint.pt",
        test_accuracy=0.7812,
        test_loss=0.9,
        validation_images=5000,
        val_accuracy=0.7764,
    )
    config = resolve(
        TrainConfig(
            model="nin",
            dataset="cifar10",
            batch_size=128,
            lr=0.05,
            epochs=12,
            model_options={"width_mult": 0.5},
        ),
        channels=3,
    )
    record = RunRecord(
        config,
        Preprocess(["a"] * 10, (3, 32, 32), (0.5,) * 3, (0.25,) * 3),
        "cifar10",
        "CIFAR-10, JPEG copy",
        metrics=metrics,
        versions={"torch": "2.14.1"},
    )
    text = run_summary(record)
    assert "precision bf16" in text and "78.12% on 10,000 test images" in text and "512 s of training" in text
    assert "12 epochs, batch 128" in text and "validation accuracy: 77.64% on 5,000 images" in text
    assert "45,000 training, 5,000 validation and 10,000 test images" in text
    # A run its time budget ended says how far it got; one that never looked at the test set says nothing
    # of it.
    record.config = dataclasses.replace(config, epochs=20, time_budget=600)
    record.metrics = dataclasses.replace(
        metrics, epochs_trained=11.62, train_seconds=599.4, test_accuracy=None
    )
    text = run_summary(record)
    assert (
        "11.62 of 20 epochs (the 600 s budget ended the run), batch 128" in text
        and "test accuracy" not in text
    )


def test_every_cpu_run_has_a_time_budget_and_no_gpu_run_has_one():
    for name in CHAPTER_MODELS:
        expected = 1200 if name in ("mobilenet_v2", "efficientnet_b0") else 600  # chapter 08: two networks
        assert preset_config(name, "cpu").time_budget == expected, name
        assert preset_config(name, "gpu").time_budget is None, name
