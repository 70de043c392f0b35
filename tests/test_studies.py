"""The committed studies (results/studies/<name>/, written by `make studies`): every finished run of
a study saw the same images. A seed changes the initial weights and the order of the batches, never
the data, so a study's spread over seeds is not a spread over subsets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

STUDIES = Path(__file__).resolve().parents[1] / "results" / "studies"


@pytest.mark.parametrize("study", sorted(path.name for path in STUDIES.iterdir()))
def test_every_run_of_a_study_saw_the_same_images(study):
    results = pd.read_csv(STUDIES / study / "results.csv")
    finished = results[results["status"] == "ok"]
    assert len(finished) >= 2 and finished["seed"].nunique() >= 2
    assert finished["dataset_source"].nunique() == 1, finished["dataset_source"].unique()
