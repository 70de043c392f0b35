"""Fixtures shared by the test modules."""

import contextlib
import gzip
import io
import os
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPOSITORY = Path(__file__).resolve().parents[1]

# Under `make test`'s two pytest-xdist workers, one thread each (and in the processes they start), so that
# the two do not fight over two cores with four threads.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def _data() -> Path:
    return Path(os.environ.get("CNNLIB_DATA", REPOSITORY.parent / "shared" / "data"))


@pytest.fixture()
def run_cli(capsys: pytest.CaptureFixture):
    """Run ``cnnlib ARGV...`` in this process; returns (exit status, stdout, stderr)."""
    from cnnlib.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            status = main(list(argv))
        except SystemExit as exit:  # argparse's own errors
            status = exit.code
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The read-only data sets: ``$CNNLIB_DATA`` (CI sets it), else ``<repository>/../shared/data``."""
    return _data()


@pytest.fixture(scope="session")
def cifar_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """The first test image of each CIFAR-10 class, scaled to [0, 1] and standardised."""
    archive = _data() / "cifar10-jpg.tar.gz"
    if not archive.exists():
        pytest.skip(f"{archive} is missing")
    images: dict[str, np.ndarray] = {}
    with tarfile.open(archive, "r|gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if len(parts) == 4 and parts[1] == "test" and parts[2] not in images:
                image = Image.open(io.BytesIO(tar.extractfile(member).read()))
                images[parts[2]] = np.asarray(image.convert("RGB"))
                if len(images) == 10:
                    break
    x = torch.tensor(np.stack(list(images.values())), dtype=torch.float32).permute(0, 3, 1, 2) / 255
    return (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), keepdim=True), torch.arange(10)


@pytest.fixture(scope="session")
def mnist_batch() -> torch.Tensor:
    """The first four MNIST test digits, 1×28×28 in [0, 1], read from the IDX file."""
    path = _data() / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    with gzip.open(path) as idx:
        header = np.frombuffer(idx.read(16), dtype=">u4")
        assert header[0] == 2051 and tuple(header[2:]) == (28, 28)
        pixels = np.frombuffer(idx.read(4 * 28 * 28), dtype=np.uint8)
    return torch.tensor(pixels.reshape(4, 1, 28, 28), dtype=torch.float32) / 255


@pytest.fixture(scope="session")
def half_width_conv_macs_ratio():
    """``ratio(name, keep)``: the convolution MACs of model ``name`` (10 classes, its paper input)
    at ``width_mult=0.5`` over those at 1.0, summed over the Conv2d rows of
    :func:`cnnlib.arithmetic.layer_table` whose module ``keep(module, index)`` accepts
    (``index``: the convolution's position, 0 for the first)."""
    from cnnlib.arithmetic import layer_table
    from cnnlib.models import create, spec

    def conv_macs(name: str, width_mult: float, keep) -> float:
        shape = spec(name).paper_input
        model = create(name, 10, shape[0], shape[1:], width_mult=width_mult)
        table = layer_table(model, shape)
        convs = table[table["type"] == "Conv2d"]
        return sum(
            macs
            for index, (layer, macs) in enumerate(zip(convs["name"], convs["macs"]))
            if keep(model.get_submodule(layer), index)
        )

    def ratio(name: str, keep=lambda module, index: True) -> float:
        return conv_macs(name, 0.5, keep) / conv_macs(name, 1.0, keep)

    return ratio


@pytest.fixture(scope="session")
def user_error():
    """``with user_error(*words) as caught:`` expects :class:`cnnlib.errors.UserError` with one sentence
    (one line ending in a full stop) that holds each of ``words``: what a test pins is the essentials (the
    setting's name, the bad value, the fix), not the wording around them."""
    from cnnlib.errors import UserError

    @contextlib.contextmanager
    def expect(*words: str):
        with pytest.raises(UserError) as caught:
            yield caught
        message = str(caught.value)
        assert "\n" not in message and message.endswith("."), f"not one sentence: {message!r}"
        missing = [word for word in words if word not in message]
        assert not missing, f"{message!r} does not say {missing}"

    return expect


@pytest.fixture(scope="session")
def assert_width_mult_errors(user_error):
    """``check(name, tiny, layer)``: ``width_mult`` ≤ 0, not a number, or ``tiny`` (which leaves
    ``layer`` of model ``name`` with no channels) is a one-sentence UserError that says what to use."""
    from cnnlib.models import create

    def check(name: str, tiny: float, layer: str) -> None:
        for bad in (0, -1, "wide"):
            with user_error("width_mult", repr(bad), "positive number"):
                create(name, 10, 3, 32, width_mult=bad)
        with user_error(f"width_mult {tiny}", layer, "no channels", "use at least") as error:
            create(name, 10, 3, 32, width_mult=tiny)
        minimum = float(re.search(r"use at least (\d+\.\d+)", str(error.value)).group(1))
        create(name, 10, 3, 32, width_mult=minimum)  # the advice holds: the narrowest layer keeps one channel

    return check


# `make test-fast` runs `pytest -m "not slow"`; `make test` runs every test. A test is slow when it takes over
# ~10 s on 2 CPU cores, or needs the built site, a browser, Ray or several processes: mark it where it is
# written, with `@pytest.mark.slow` on the test or `pytestmark = pytest.mark.slow` for a whole module, so that
# the mark moves with the test when it is renamed (a misspelt mark fails under --strict-markers).


# `make test` runs the tests in two pytest-xdist workers (--dist loadgroup). A module's tests stay on one
# worker, so that its module- and session-scoped fixtures (the built site, the Ray head, models) are made
# once; the notebooks, which share none, are spread over both.
SPREAD_MODULES = {"test_notebooks.py"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group each module's tests for pytest-xdist (where it is loaded: ``-p no:xdist`` runs without it)."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        if item.path.name not in SPREAD_MODULES:
            item.add_marker(pytest.mark.xdist_group(item.path.name))
