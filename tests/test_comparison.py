"""The generated page "Comparing the architectures" (book/comparison.md) is up to date with
cnnlib's models and with every run copied to results/cpu/, and its generator's table
writer produces valid pipe tables."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from cnnlib import models
from cnnlib.arithmetic import layer_table

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "comparison.md"
RESULTS = sorted((ROOT / "results" / "cpu").glob("*.json"))


def load_generator():
    spec = importlib.util.spec_from_file_location(
        "make_comparison", ROOT / "book" / "figures" / "make_comparison.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def page_rows(first_cell: str) -> list[list[str]]:
    """The cells of every table row of the page whose first cell is ``first_cell``."""
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in PAGE.read_text().splitlines()
        if line.startswith("|")
    ]
    return [row for row in rows if row[0] == first_cell]


def test_markdown_table_has_a_header_separator_and_one_line_per_row():
    table = load_generator().markdown_table(["model", "params"], [["a", 1234], ["b", 5]])
    assert table.splitlines() == ["| model | params |", "| --- | ---: |", "| a | 1,234 |", "| b | 5 |"]


@pytest.mark.parametrize("path", RESULTS, ids=[path.stem for path in RESULTS])
def test_every_run_in_results_is_on_the_page(path):
    metrics = json.loads(path.read_text())
    # Accuracy first, then the network by name (issue 37), not the file's.
    rows = page_rows(f"{metrics['test_accuracy']:.2%}")
    assert len(rows) == 1, f"{path.name} is not on the page: rerun python book/figures/make_comparison.py"
    assert f"{round(metrics['train_seconds']):,}" in rows[0]
    network = rows[0][1]
    assert path.stem not in network
    assert network.split()[0].replace("-", "").lower() in metrics["model"].replace("_", "")


@pytest.mark.parametrize("name", ["lenet5", "resnet18"])
def test_cost_rows_match_cnnlib(name):
    spec = models.spec(name)
    classes = 10 if spec.paper_input[1] <= 64 else 1000
    table = layer_table(
        models.create(name, num_classes=classes, input_size=spec.paper_input[1:]), spec.paper_input
    )
    [row] = page_rows(name)
    assert row[2] == f"{table.attrs['total_params']:,}"
    assert float(row[3]) == round(table.attrs["total_macs"] / 1e6, 1)


def test_every_registered_model_is_on_the_page():
    assert [name for name in models.names() if not page_rows(name)] == []
