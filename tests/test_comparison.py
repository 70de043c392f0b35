"""The generated page "Comparing the architectures" (book/comparison.md) is up to date with
cnnlib's models and with every run copied to results/cpu/, and its generator's table
writer produces valid pipe tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from repo_scripts import repo_script

from cnnlib import models
from cnnlib.arithmetic import layer_table
from cnnlib.record import final_runs, seed_spread

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "comparison.md"
RESULTS = sorted((ROOT / "results" / "cpu").glob("*.json"))


def load_generator():
    return repo_script("book/figures/make_comparison.py")


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
def test_every_chapter_network_is_on_the_page_with_the_mean_and_range_of_its_seeds(path):
    metrics = json.loads(path.read_text())
    spread = seed_spread(final_runs(path.parent, path.stem))
    # The network by name (issue 37), not the file's.
    network = load_generator().network_name(metrics)
    assert path.stem not in network and network.split()[0].replace("-", "").lower() in metrics[
        "model"
    ].replace("_", "")
    rows = [row for row in page_rows(f"{spread.mean:.2%}") if row[1] == network]  # accuracy first (issue 37)
    assert len(rows) == 1, f"{path.name} is not on the page: rerun python book/figures/make_comparison.py"
    assert rows[0][2:4] == [
        f"{spread.low:.2%}–{spread.high:.2%}" if len(spread.seeds) > 1 else "",
        str(len(spread.seeds)),
    ]
    assert rows[0][-1] == f"{round(metrics['train_seconds']):,}"


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
