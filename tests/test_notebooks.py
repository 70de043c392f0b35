"""Every chapter notebook runs top to bottom with its smoke parameters (injected by papermill,
executed by nbval), its committed deterministic outputs still match the code (nbval), and it
builds its model from cnnlib rather than defining one."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import papermill
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
pytestmark = pytest.mark.slow


def smoke_parameters(path: Path, tmp_path: Path) -> dict:
    notebook = nbformat.read(path, as_version=4)
    return {**notebook.metadata["cnnlib"]["smoke_parameters"], "out": str(tmp_path / "run")}


def parameter_names(path: Path) -> set[str]:
    notebook = nbformat.read(path, as_version=4)
    cells = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    return {
        target.id
        for node in ast.parse(cells[0].source).body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def is_study(path: Path) -> bool:
    """A hyperparameter-study page (notebooks/1N_study_NAME.ipynb) rather than a chapter."""
    return "_study_" in path.stem


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_structure(path):
    names = parameter_names(path)
    assert set(smoke_parameters(path, Path("/tmp"))) <= names
    # A study page reads its committed results.csv unless `rerun` is set; a chapter trains.
    assert (
        {"rerun", "results", "device", "out"} if is_study(path) else {"epochs", "seed", "device", "out"}
    ) <= names
    source = "\n".join(
        cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"
    )
    assert "nn.Module)" not in source, "a chapter builds its model from cnnlib, never a private copy"
    outputs = [
        cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code" and cell.outputs
    ]
    assert outputs, "notebooks are committed with the outputs of their last real run"
    errors = [output for cell in outputs for output in cell.outputs if output.output_type == "error"]
    assert not errors, f"{path.name} was committed with an error output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_runs_with_smoke_parameters_and_matches_committed_outputs(path, tmp_path):
    # papermill injects the smoke parameters without executing, keeping the committed outputs; nbval then runs
    # the notebook top to bottom (an error in any cell fails it) and compares the cells tagged
    # nbval-check-output (layer tables, parameter counts). One execution per notebook serves both checks.
    prepared = tmp_path / path.name
    papermill.execute_notebook(
        str(path),
        str(prepared),
        parameters=smoke_parameters(path, tmp_path),
        prepare_only=True,
        kernel_name="python3",
        progress_bar=False,
    )
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "-p",
            "no:cacheprovider",
            "-q",
            "--current-env",
            str(prepared),
        ],
        cwd=ROOT / "notebooks",
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert finished.returncode == 0, finished.stdout[-4000:]
    assert " passed" in finished.stdout and " skipped" not in finished.stdout, finished.stdout[-1000:]
    if is_study(path):  # with smoke parameters a study only reads its committed results
        assert not (tmp_path / "run").exists()
    else:
        assert (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_checked_cells_are_tagged_not_commented(path):
    # nbval's markers as cell tags, so that no "# NBVAL_..." comment shows on the course site.
    cells = [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
    assert not [cell.source[:60] for cell in cells if "NBVAL_" in cell.source], (
        f"{path.name} has an NBVAL_ comment"
    )
    checked = [cell for cell in cells if "nbval-check-output" in cell.metadata.get("tags", [])]
    assert checked or path.stem == "classifier", f"{path.name} has no cell tagged nbval-check-output"


def test_bad_parameter_is_one_sentence(tmp_path):
    path = ROOT / "notebooks" / "01_lenet5.ipynb"
    parameters = {**smoke_parameters(path, tmp_path), "epochs": "eight"}
    with pytest.raises(papermill.PapermillExecutionError) as failure:
        papermill.execute_notebook(
            str(path),
            str(tmp_path / "bad.ipynb"),
            parameters=parameters,
            cwd=str(ROOT),
            kernel_name="python3",
            progress_bar=False,
        )
    assert failure.value.ename == "UserError"
    assert failure.value.evalue == "epochs must be an integer, not 'eight'."


@pytest.mark.parametrize(
    "stem, parameters, runs",
    [
        ("12_study_loss", {"repeats": 1, "overrides": {"subset": 100, "epochs": 1}}, 4),
        ("18_study_depth", {"depths": [10], "subset": 64, "epochs": 1, "repeats": 2}, 4),
    ],
)
def test_a_study_reruns_its_sweep_with_changed_settings(stem, parameters, runs, tmp_path):
    # The path a reader takes with `rerun = True`, and the one the GPU's full setting takes, at toy size.
    path = ROOT / "notebooks" / f"{stem}.ipynb"
    out = tmp_path / "run"
    papermill.execute_notebook(
        str(path),
        str(tmp_path / path.name),
        parameters={"rerun": True, "out": str(out), **parameters},
        cwd=str(ROOT),
        kernel_name="python3",
        progress_bar=False,
    )
    results = pd.read_csv(out / "results.csv")
    assert len(results) == runs and (results["status"] == "ok").all()
    assert (results["epochs_run"] == parameters.get("epochs", 1)).all()
    assert (results["dataset_source"].str.contains(f"subset of {parameters.get('subset', 100)} train")).all()
    assert len(pd.read_csv(out / "histories.csv")) == runs
