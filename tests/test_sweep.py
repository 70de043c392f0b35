"""The sweep runner: a grid gives one row per run, a stopped sweep resumes without redoing
finished runs, a failing run does not stop the others, bad grids (a name, or a value its
setting's declaration refuses) are rejected before anything runs, a grid's values may be any
sequence, and a table that cannot be written is one sentence naming it."""

from __future__ import annotations

import errno
import json
import os
import shlex
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from cnnlib.cli import build_parser, key_values, main
from cnnlib.config import TrainConfig
from cnnlib.errors import UserError
from cnnlib.sweep import plan, read_sweep, sweep, sweep_settings
from cnnlib.train import train

ROOT = Path(__file__).resolve().parents[1]
LENET = ROOT / "notebooks" / "01_lenet5.ipynb"
# Two epochs of LeNet-5 on scikit-learn's digits: about a second per run.
QUICK = ["--param", "dataset=digits", "--param", "subset=300", "--param", "epochs=2", "--param", "device=cpu"]


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.slow
def test_two_by_two_grid_in_two_processes_gives_four_rows(capsys, tmp_path):
    status, out, _ = cli(
        capsys,
        "sweep",
        "train",
        "--grid",
        "lr=0.05,0.01",
        "--grid",
        "optimizer=sgd,adam",
        *QUICK,
        "--jobs",
        "2",
        "--out",
        str(tmp_path),
    )
    results = pd.read_csv(tmp_path / "results.csv")
    assert status == 0 and "4 of 4 runs finished" in out
    assert len(results) == 4 and (results["status"] == "ok").all()
    assert sorted(zip(results["lr"], results["optimizer"])) == [
        (0.01, "adam"),
        (0.01, "sgd"),
        (0.05, "adam"),
        (0.05, "sgd"),
    ]
    for row in results.itertuples():
        metrics = json.loads((tmp_path / "runs" / row.run / "metrics.json").read_text())
        assert metrics["config"]["lr"] == row.lr and metrics["config"]["optimizer"] == row.optimizer
        assert row.test_accuracy == metrics["test_accuracy"] and row.epochs_run == 2 and row.seed == 0
        assert row.final_train_loss > 0 and row.train_seconds > 0 and 0 <= row.final_train_accuracy <= 1
    histories = pd.read_csv(tmp_path / "histories.csv")  # the training curves: one row per run and epoch
    assert sorted(histories.groupby("run")["epoch"].apply(list).tolist()) == [[1, 2]] * 4
    last = histories[histories["epoch"] == 2].set_index("run")["train_loss"]
    assert last.sort_index().tolist() == results.set_index("run")["final_train_loss"].sort_index().tolist()
    # The swept values, to group curves by.
    assert set(histories.columns[:4]) == {"run", "seed", "lr", "optimizer"}
    swept = histories.drop_duplicates("run").set_index("run")[["lr", "optimizer"]].sort_index()
    assert swept.equals(results.set_index("run")[["lr", "optimizer"]].sort_index())


def test_a_stopped_sweep_resumes_without_redoing_finished_runs(tmp_path):
    grid, fixed = {"lr": [0.05, 0.02]}, {"dataset": "digits", "subset": 300, "epochs": 2, "device": "cpu"}
    first, second = (tmp_path / "runs" / name for name in ("lr=0.05", "lr=0.02"))
    sweep("train", {"lr": [0.05]}, fixed, out=tmp_path)  # the first run finished ...
    # ... and the second was stopped after its first epoch, leaving a checkpoint and no status.
    train(TrainConfig(**fixed, lr=0.02, out=str(second), stop_after=1, progress=False))
    (second / "metrics.json").unlink()
    finished = (first / "metrics.json").stat().st_mtime_ns

    results = sweep("train", grid, fixed, out=tmp_path)

    assert (first / "metrics.json").stat().st_mtime_ns == finished
    assert list(results["status"]) == ["ok", "ok"] and list(results["lr"]) == [0.05, 0.02]
    history = pd.read_csv(second / "history.csv")
    assert list(history["epoch"]) == [1, 2]  # continued from the checkpoint, not restarted


def test_a_failing_run_is_recorded_and_the_others_go_on(capsys, tmp_path):
    status, out, err = cli(
        capsys, "sweep", "train", "--grid", "option.variant=tiny,modern", *QUICK, "--out", str(tmp_path)
    )
    results = pd.read_csv(tmp_path / "results.csv")
    assert status == 2 and "1 of 2 runs finished" in out and "1 run(s) failed" in err
    assert list(results["status"]) == ["failed", "ok"] and list(results["variant"]) == ["tiny", "modern"]
    assert "Unknown LeNet-5 variant 'tiny'" in results["error"][0] and 0 < results["test_accuracy"][1] <= 1
    # Rerunning reruns only the failed run.
    status, out, _ = cli(
        capsys, "sweep", "train", "--grid", "option.variant=tiny,modern", *QUICK, "--out", str(tmp_path)
    )
    assert "2 runs, 1 already finished, 1 to run" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--grid", "lr"], "--grid 'lr' is not KEY=VALUE1,VALUE2"),
        (["--grid", "lr="], "--grid 'lr=' is not KEY=VALUE1,VALUE2"),
        (["--grid", "lr=0.1,,0.01"], "--grid 'lr=0.1,,0.01' is not KEY=VALUE1,VALUE2"),
        (["--param", "epochs"], "--param 'epochs' is not KEY=VALUE"),
        (["--grid", "lr=0.1", "--grid", "lr=0.2"], "--grid lr is given twice"),
        (["--grid", "lr=0.1,0.2", "--param", "lr=0.3"], "'lr' is given both as --grid and --param"),
        (
            ["--grid", "learning_rate=0.1,0.2"],
            "Unknown parameter 'learning_rate' for train: the valid parameters are model, dataset, data_root",
        ),
        (["--grid", "seed=1,2", "--repeats", "3"], "--repeats sets the seeds 0..N-1 itself"),
        (["--grid", "option.width=2,3"], "Model 'lenet5' has no option 'width': its options are"),
        (["--grid", "lr=0.1,abc"], "lr must be a number, not 'abc'."),
        (["--grid", "epochs=2,0"], "epochs must be positive, not 0."),
        (["--param", "optimizer=sgdd"], "Unknown optimizer 'sgdd': choose one of sgd, adam"),
        (["--grid", "momentum=0.9,1.5"], "momentum must lie in [0, 1), not 1.5."),
        (["--grid", "lr=0.1", "--address", "head:6379"], "--address is for --executor ray"),
        (["--grid", "lr=0.1", "--executor", "ray", "--jobs", "2"], "--jobs is for --executor local"),
    ],
)
def test_bad_grids_are_rejected_before_anything_runs(capsys, tmp_path, argv, message):
    status, _, err = cli(capsys, "sweep", "train", *argv, "--out", str(tmp_path / "sweep"))
    assert status == 2 and message in err and not (tmp_path / "sweep").exists()


def test_notebook_parameters_are_checked_against_its_parameters_cell(capsys, tmp_path):
    status, _, err = cli(
        capsys, "sweep", str(LENET), "--grid", "learning_rate=0.1,0.2", "--out", str(tmp_path / "s")
    )
    assert status == 2 and "Unknown parameter 'learning_rate'" in err and "variant, dataset, data_root" in err
    with pytest.raises(UserError, match="neither 'train' nor a notebook"):
        plan("no/such.ipynb", {"lr": [0.1]}, {})


@pytest.mark.parametrize("reserved", ["out", "resume", "stop_after", "progress", "model_options"])
def test_settings_a_sweep_sets_itself_are_refused(reserved):
    with pytest.raises(UserError, match=f"^Unknown parameter '{reserved}' for train: the valid parameters "):
        plan("train", {reserved: [1, 2]}, {})


def test_a_grid_takes_any_sequence_and_checks_each_value_against_its_setting():
    runs = plan(
        "train", {"lr": np.logspace(-3, -1, 3), "epochs": range(1, 3), "optimizer": ("sgd", "adam")}, {}
    )
    assert [run.name for run in runs[:3]] == [
        "lr=0.001_epochs=1_optimizer=sgd",
        "lr=0.001_epochs=1_optimizer=adam",
        "lr=0.001_epochs=2_optimizer=sgd",
    ]
    lrs = [run.parameters["lr"] for run in runs[::4]]
    assert len(runs) == 12 and lrs == pytest.approx([0.001, 0.01, 0.1])
    with pytest.raises(UserError, match=r"^lr must be positive, not -0\.1\.$"):
        plan("train", {"lr": np.array([0.1, -0.1])}, {})
    with pytest.raises(UserError, match=r"^The grid of optimizer is 'sgd', not a sequence of values"):
        plan("train", {"optimizer": "sgd"}, {})
    with pytest.raises(UserError, match=r"^--grid lr has no values"):
        plan("train", {"lr": np.array([])}, {})


def test_a_newly_declared_setting_is_sweepable():
    runs = plan("train", {"eval_every": [1, 2]}, {"epochs": 2})
    assert [run.parameters for run in runs] == [
        {"epochs": 2, "eval_every": 1},
        {"epochs": 2, "eval_every": 2},
    ]


def test_repeats_give_seeds_and_folder_names_from_the_grid():
    runs = plan("train", {"lr": [0.1, 0.01], "batch_size": [64]}, {"epochs": 1}, repeats=3)
    assert [run.name for run in runs[:2]] == ["lr=0.1_batch_size=64_seed=0", "lr=0.1_batch_size=64_seed=1"]
    assert [run.parameters["seed"] for run in runs] == [0, 1, 2] * 2
    assert all(run.parameters["batch_size"] == 64 and run.parameters["epochs"] == 1 for run in runs)


@pytest.mark.slow
def test_named_settings_keep_their_parameters_together_and_resume(capsys, tmp_path):
    settings = {
        "sgd lr=0.05": {"optimizer": "sgd", "lr": 0.05},
        "adam lr=0.001": {"optimizer": "adam", "lr": 0.001},
    }
    fixed = {"dataset": "digits", "subset": 300, "epochs": 1, "device": "cpu"}
    results = sweep_settings("train", settings, fixed, out=tmp_path, repeats=2, jobs=2)
    assert list(results.columns[:2]) == ["setting", "run"] and (results["status"] == "ok").all()
    assert list(zip(results["setting"], results["optimizer"], results["lr"], results["seed"])) == [
        ("sgd lr=0.05", "sgd", 0.05, 0),
        ("sgd lr=0.05", "sgd", 0.05, 1),
        ("adam lr=0.001", "adam", 0.001, 0),
        ("adam lr=0.001", "adam", 0.001, 1),
    ]
    for row in results.itertuples():
        folder = tmp_path / f"setting={row.setting.replace(' ', '-')}" / "runs" / row.run
        config = json.loads((folder / "metrics.json").read_text())["config"]
        assert (config["optimizer"], config["lr"], config["seed"]) == (row.optimizer, row.lr, row.seed)
    written = pd.read_csv(tmp_path / "results.csv")
    assert written["test_accuracy"].tolist() == results["test_accuracy"].tolist()
    histories = pd.read_csv(tmp_path / "histories.csv")
    assert list(zip(histories["setting"], histories["seed"], histories["epoch"])) == [
        ("sgd lr=0.05", 0, 1),
        ("sgd lr=0.05", 1, 1),
        ("adam lr=0.001", 0, 1),
        ("adam lr=0.001", 1, 1),
    ]
    capsys.readouterr()
    sweep_settings("train", settings, fixed, out=tmp_path, repeats=2)
    assert "4 runs, 4 already finished, 0 to run" in capsys.readouterr().out
    with pytest.raises(UserError, match="at least one setting"):
        sweep_settings("train", {}, fixed, out=tmp_path)
    # An arm whose values changed (a recipe's preset did) is not paired with the run of its former values.
    with pytest.raises(
        UserError,
        match=r"setting=sgd-lr=0\.05/runs/\S+ holds a finished run of epochs=1, but its arm now asks for 2",
    ):
        sweep_settings("train", settings, fixed | {"epochs": 2}, out=tmp_path, repeats=2)


@pytest.mark.slow
def test_a_table_that_cannot_be_written_is_one_sentence_and_the_previous_one_stays(
    capsys, tmp_path, monkeypatch
):
    argv = ["sweep", "train", "--grid", "lr=0.05", *QUICK, "--out", str(tmp_path)]
    assert cli(capsys, *argv)[0] == 0
    tables = {name: (tmp_path / name).read_bytes() for name in ("results.csv", "histories.csv")}

    def full(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)  # every write of the rerun, which only writes the tables, fails
    status, _, err = cli(capsys, *argv)

    error = err.strip().splitlines()[-1]  # after the progress bar
    assert (
        status == 2
        and error.startswith(
            f"cnnlib: error: Could not write {tmp_path / 'histories.csv'}: No space left on device;"
        )
        and "Traceback" not in err
    )
    assert {name: (tmp_path / name).read_bytes() for name in tables} == tables
    assert not [path.name for path in tmp_path.iterdir() if path.name.endswith(".tmp")]


@pytest.mark.slow
def test_notebook_sweep_keeps_each_executed_notebook(tmp_path, data_root):
    smoke = nbformat.read(LENET, as_version=4).metadata["cnnlib"]["smoke_parameters"]
    results = sweep(str(LENET), {"optimizer": ["sgd"]}, {**smoke, "data_root": str(data_root)}, out=tmp_path)
    folder = tmp_path / "runs" / "optimizer=sgd"
    assert list(results["status"]) == ["ok"], results["error"][0]
    assert (folder / LENET.name).exists() and (folder / "metrics.json").exists()
    assert 0.1 < results["test_accuracy"][0] <= 1 and results["epochs_run"][0] == smoke["epochs"]


def test_read_sweep_finds_committed_results_from_the_notebooks_folder_and_names_a_missing_one(
    monkeypatch, tmp_path
):
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root / "notebooks")  # where a page runs
    results, histories = read_sweep("results/ablations/06_resnet")
    assert len(results) >= 6 and set(histories["run"]) == set(results["run"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="No results.csv in nowhere/at/all: run the sweep"):
        read_sweep("nowhere/at/all")


def _documented_sweeps() -> list[str]:
    """Every `cnnlib sweep` command written in the README and the book, its continuation lines joined."""
    commands = []
    for page in [ROOT / "README.md", *sorted((ROOT / "book").glob("*.md"))]:
        text = page.read_text().replace("\\\n", " ")
        commands += [
            line[line.index("cnnlib sweep ") :].strip().strip('"')
            for line in text.splitlines()
            if "cnnlib sweep " in line and " --" in line and "..." not in line
        ]
    return commands


@pytest.mark.parametrize("command", _documented_sweeps())
def test_documented_sweeps_name_parameters_their_target_has(command):
    # A command copied from the docs must get past the CLI's parser and plan(): flags that exist, a notebook's
    # parameters, --repeats beside a seed.
    args = build_parser().parse_args(shlex.split(command)[1:])
    target = str(ROOT / args.target) if args.target.endswith(".ipynb") else args.target
    assert plan(
        target, key_values(args.grid, "--grid", many=True), key_values(args.param, "--param"), args.repeats
    )


def test_the_docs_show_sweeps():
    assert len(_documented_sweeps()) >= 6


def test_arm_table_reads_the_split_a_sweep_was_scored_on():
    from cnnlib.sweep import arm_table

    results = pd.DataFrame(
        {
            "status": ["ok"] * 4 + ["failed"],
            "arm": ["a", "a", "b", "b", "b"],
            "test_accuracy": [None] * 5,
            "val_accuracy": [0.80, 0.82, 0.70, 0.74, 0.99],
            "final_train_accuracy": [0.9, 0.9, 0.8, 0.8, 0.8],
            "params": [10] * 5,
            "train_seconds": [100.0] * 5,
        }
    )
    table = arm_table(results, "arm", split="val")
    assert table.loc["a", "validation accuracy % (mean)"] == 81.0
    assert (table.loc["b", "min"], table.loc["b", "max"], table.loc["b", "runs"]) == (70.0, 74.0, 2)
    with pytest.raises(UserError, match="split must be 'test' or 'val'"):
        arm_table(results, "arm", split="train")


def test_time_to_accuracy_is_the_training_seconds_until_a_mark_is_first_reached():
    from cnnlib.sweep import time_to_accuracy

    histories = pd.DataFrame(
        {
            "setting": ["a"] * 3 + ["b"] * 2,
            "epoch": [1, 2, 3, 1, 2],
            "train_seconds": [10.0, 12.0, 11.0, 5.0, 5.0],
            "val_accuracy": [0.85, 0.91, 0.93, 0.50, 0.60],
        }
    )
    table = time_to_accuracy(histories, marks=(0.90, 0.93))
    assert table.loc["a"].to_dict() == {"epochs": 3, "best %": 93.0, "s to 90 %": 22, "s to 93 %": 33}
    assert table.loc["b", "s to 90 %"] == "not reached"
