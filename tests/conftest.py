"""Fixtures shared by the test modules."""

import os
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The read-only data sets: ``$CNNLIB_DATA`` (CI sets it), else ``<repository>/../shared/data``."""
    return Path(os.environ.get("CNNLIB_DATA", REPOSITORY.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the whole session, so that a slow decode (CIFAR-10's JPEGs) happens once."""
    return tmp_path_factory.mktemp("cnnlib-cache")
