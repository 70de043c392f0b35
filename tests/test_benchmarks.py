"""The benchmark scripts run and write the report the performance page quotes."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from repo_scripts import repo_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_eval_batch_benchmark_reports_every_model_and_batch(tmp_path):
    report_file = tmp_path / "eval.json"
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "eval_batch.py"),
        "--batches",
        "4",
        "8",
        "--images",
        "8",
        "--repeats",
        "1",
        "--out",
        str(report_file),
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    report = json.loads(report_file.read_text())
    rows = [(row["model"], row["batch"]) for row in report["results"]]
    assert rows == [
        (model, batch) for model in ("lenet5", "resnet18", "resnet18 width_mult=0.25") for batch in (4, 8)
    ]
    assert all(row["images_per_second"] > 0 for row in report["results"])
    assert report["threads"] >= 1 and report["repeats"] == 1


@pytest.mark.slow
def test_precision_benchmark_reports_both_precisions(tmp_path):
    report_file = tmp_path / "precision.json"
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "precision.py"),
        "--models",
        "nin",
        "lenet5",
        "--steps",
        "1",
        "--repeats",
        "1",
        "--epoch-subset",
        "128",
        "--subset",
        "128",
        "--epochs",
        "1",
        "--seeds",
        "2",
        "--out",
        str(report_file),
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    report = json.loads(report_file.read_text())
    assert [row["model"] for row in report["steps"]] == ["nin", "lenet5"]
    assert report["steps"][0]["options"]["width_mult"] < 1  # the chapter's cpu preset, not the paper's width
    assert all(
        row["fp32_images_per_second"] > 0 and row["bf16_images_per_second"] > 0 for row in report["steps"]
    )
    expected = "bf16" if report["native_bf16"] else "fp32"
    assert report["epoch"]["fp32"]["precision"] == "fp32" and report["epoch"]["bf16"]["precision"] == expected
    assert [(row["seed"], row["precision"]) for row in report["accuracy"]] == [
        (0, "fp32"),
        (0, expected),
        (1, "fp32"),
        (1, expected),
    ]


@pytest.mark.slow
def test_reference_gpu_script_dry_run_on_the_cpu(tmp_path):
    # The script a GPU session runs in one call: its --smoke path on 256 CIFAR-10 images, one epoch per
    # network.
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "reference_gpu.py"),
        "--smoke",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "reference"),
        "--archive",
        str(tmp_path / "reference.tgz"),
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    with tarfile.open(tmp_path / "reference.tgz") as archive:  # what comes back from the device
        archive.extractall(tmp_path / "unpacked", filter="data")
    tmp_path = tmp_path / "unpacked"
    table = pd.read_csv(tmp_path / "reference_runs.csv")
    chapters = [
        "10_fast_training",
        "06_resnet",
        "04_vgg",
        "07_densenet",
        "05_googlenet",
        "02_alexnet",
        "03_nin",
        "08_mobilenet",
        "09_efficientnet",
    ]
    assert list(table["chapter"]) == chapters
    assert list(table.columns) == [
        "chapter",
        "model",
        "dataset",
        "test_accuracy",
        "train_seconds",
        "epochs",
        "device",
        "images_per_second",
        "anchor",
    ]
    assert (table["epochs"] == 1).all() and table["test_accuracy"].between(0, 1).all()
    assert (
        table.set_index("model")
        .loc["resnet18", "anchor"]
        .startswith("kuangliu/pytorch-cifar ResNet18 93.02 %")
    )
    for chapter in chapters:
        metrics = json.loads((tmp_path / "gpu" / f"{chapter}.json").read_text())
        assert metrics["config"]["model_options"]["width_mult"] == 0.125 and metrics["train_images"] == 256
        assert metrics["config"]["time_budget"] > 0  # the network's share of the deadline
    assert json.loads((tmp_path / "gpu" / "benchmark-throughput-resnet18.json").read_text())[
        "images_per_second"
    ]
    log = json.loads((tmp_path / "gpu" / "reference_log.json").read_text())
    assert log["throughput"] == 0 and [run["status"] for run in log["runs"]] == ["ok"] * 9


def test_reference_gpu_budgets_fit_the_docstrings_deadline():
    # The docstring's command gives the script 450 s. Suppose the data take 30 s to load and each network
    # its training budget plus the seconds allowed around it: the headline networks (the fast chapter's,
    # ResNet-18, VGG-16-BN, DenseNet-121) keep their whole budgets, no network is skipped or cut below half
    # its budget, and the throughput benchmark still has its minute.
    reference = repo_script("benchmarks/reference_gpu.py")
    budgets = [budget for _, _, budget in reference.NETWORKS]
    left, given = 450 - 30, []
    for index, budget in enumerate(budgets):
        given.append(reference.budget_now(budget, budgets[index + 1 :], left))
        left -= given[-1] + reference.SECONDS_AROUND_A_NETWORK
    assert given[:4] == budgets[:4] == [10, 60, 50, 80]
    assert all(share >= 0.5 * budget for share, budget in zip(given, budgets))
    assert left >= reference.THROUGHPUT_SECONDS


def test_reference_gpu_cuts_the_budgets_the_deadline_cannot_hold():
    reference = repo_script("benchmarks/reference_gpu.py")
    around, throughput = reference.SECONDS_AROUND_A_NETWORK, reference.THROUGHPUT_SECONDS
    assert reference.budget_now(60, [40, 40], 1000) == 60  # time for everything: the budget itself
    # 100 s spare after the throughput benchmark, three networks' seconds around them and half of the
    # later 80 s.
    assert reference.budget_now(60, [40, 40], 100 + throughput + 3 * around + 40) == 60
    assert reference.budget_now(60, [40, 40], 45 + throughput + 3 * around + 40) == 45
    assert reference.budget_now(60, [40, 40], 29 + throughput + 3 * around + 40) == 0  # under half: skipped
    assert reference.budget_now(60, [], 10) == 0


def test_each_recipe_search_arm_is_the_preset_with_one_named_change_on_the_validation_split():
    chapter_runs = repo_script("benchmarks/chapter_runs.py")
    CHAPTERS, sweep_parameters = chapter_runs.CHAPTERS, chapter_runs.sweep_parameters
    from cnnlib.presets import PRESETS
    from cnnlib.sweep import plan

    assert {network for network, _ in CHAPTERS.values()} == set(PRESETS)
    for network, alternatives in CHAPTERS.values():
        preset = sweep_parameters(network, validation=5000, final_test=False)
        assert (preset["validation"], preset["final_test"], preset["model"]) == (5000, False, network)
        for changes in alternatives.values():
            arm = sweep_parameters(network, validation=5000, final_test=False, **changes)
            changed = {key.removeprefix("option.") for key in arm if arm[key] != preset.get(key)}
            # Every change an arm makes is one it declares; a declared value the preset has taken since (the
            # preset became that arm when it won: CHAPTERS' comments say so) is no change any more.
            assert changed <= set(changes), (network, changes)
            plan("train", {}, arm)  # every value passes its setting's declaration before anything runs


def test_the_chapter_runs_default_to_every_chapter_and_refuse_an_unknown_one(capsys):
    chapter_runs = repo_script("benchmarks/chapter_runs.py")
    assert chapter_runs.parse_args(["tricks"]).chapters == list(chapter_runs.CHAPTERS)
    assert chapter_runs.parse_args(["finals", "10_fast_training"]).chapters == ["10_fast_training"]
    with pytest.raises(SystemExit):
        chapter_runs.parse_args(["finals", "11_vit"])
    assert "no chapter '11_vit': choose from 02_alexnet," in capsys.readouterr().err
