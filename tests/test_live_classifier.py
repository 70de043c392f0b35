"""The live classifier in Chromium: the panel of book/_static/live/ with onnxruntime-web and two networks
exported from checkpoints trained here (LeNet-5 on digits; a narrow ResNet-18 on random colour images),
assembled by the site's own extension (book/_ext/live_classifier.py) into a folder served by
``python -m http.server`` on 127.0.0.1; then every network the book ships (results/checkpoints/), served
the same way, each on a fixed image. The built site carries the same panel (tests/test_book.py checks
its pages request nothing from another host).

The page's probabilities are checked against cnnlib.predict's, in fp32, on images at the networks' input
size (no resizing, whose filter is the browser's): at most 1e-4 apart, the same top-1. The in-browser time
per image the page reports is printed (``-s`` shows it). Needs Debian's ``chromium``, the ``playwright``
package and ``npm ci`` (onnxruntime-web); without them the tests are skipped locally and fail in CI."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image
from repo_scripts import repo_script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import live_classifier  # noqa: E402  (the site's extension)

BOUND = 1e-4
SHIPPED_MANIFEST = ROOT / "results" / "checkpoints" / "manifest.json"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None or importlib.util.find_spec("playwright") is None:
        _missing(
            "Chromium or the playwright package is missing: `apt-get install -y chromium` and "
            "`pip install -e '.[test]'`."
        )
    if not all((live_classifier.ORT_DIST / name).is_file() for name in live_classifier.ORT_FILES):
        _missing("onnxruntime-web is missing: run `npm ci` in the repository (make test does).")
    return binary


def _ship(tmp: Path) -> Path:
    """Two networks trained now, shipped as benchmarks/ship_checkpoints.py ships them; returns the
    manifest."""
    from cnnlib.config import TrainConfig
    from cnnlib.train import train

    folder = tmp / "random_images"
    generator = np.random.default_rng(0)
    for label in ("a", "b", "c"):
        (folder / label).mkdir(parents=True)
        for index in range(30):
            Image.fromarray(generator.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                folder / label / f"{index}.png"
            )
    runs = tmp / "runs"
    train(
        TrainConfig(
            model="lenet5",
            dataset="digits",
            epochs=3,
            device="cpu",
            out=str(runs / "01_lenet5"),
            progress=False,
        )
    )
    train(
        TrainConfig(
            model="resnet18",
            dataset=str(folder),
            epochs=1,
            batch_size=32,
            device="cpu",
            out=str(runs / "06_resnet"),
            model_options={"width_mult": 0.25},
            progress=False,
        )
    )
    ship = repo_script("benchmarks/ship_checkpoints.py")
    (tmp / "results").mkdir()
    ship.ship_all(["01_lenet5", "06_resnet"], runs, tmp / "results", tmp / "checkpoints")
    return tmp / "checkpoints" / "manifest.json"


PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>live</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="_static/live/live.css">{scripts}</head>
<body>{panel}</body></html>"""


@contextlib.contextmanager
def _served(tmp: Path, manifest: Path, network: str) -> Iterator[tuple[str, list[str]]]:
    """The panel (``network`` chosen) and the networks ``manifest`` lists, assembled by the site's
    extension into a folder served on 127.0.0.1: yields the base URL and the networks the panel lists."""
    served = tmp / "site"
    shutil.copytree(
        ROOT / "book" / "_static" / "live",
        served / "_static" / "live",
        ignore=shutil.ignore_patterns("ort", "models", ".gitignore"),
    )
    models = live_classifier.assemble(served / "_static" / "live", manifest)
    scripts = "".join(
        f'<script src="_static/{script}"></script>' for script in live_classifier.script_files(True)
    )
    (served / "index.html").write_text(
        PAGE.format(scripts=scripts, panel=live_classifier.panel_html(network))
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(served)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base, timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("python -m http.server did not start")
                time.sleep(0.2)
        yield base, [entry["name"] for entry in models]
    finally:
        server.terminate()
        server.wait(timeout=20)


@contextlib.contextmanager
def _opened(base: str, chromium: str) -> Iterator:
    """The panel's page in Chromium, with every request and console error recorded and checked at the end."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        tab = browser.new_page(viewport={"width": 1200, "height": 1000})
        requests, errors = [], []
        tab.on("request", lambda request: requests.append(request.url))
        tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.goto(base)
        tab.locator(".cnnlib-live select").wait_for()
        yield tab
        elsewhere = [url for url in requests if urlparse(url).hostname != "127.0.0.1"]
        assert not elsewhere, f"requests to another host: {elsewhere}"
        assert not errors, f"console errors: {errors}"
        browser.close()


@pytest.fixture(scope="module")
def site(chromium, tmp_path_factory):
    """Two networks trained now, served: yields (base URL, manifest)."""
    tmp = tmp_path_factory.mktemp("live")
    manifest = _ship(tmp)
    with _served(tmp, manifest, "06_resnet") as (base, listed):
        assert listed == ["01_lenet5", "06_resnet"]
        yield base, manifest


@pytest.fixture()
def page(site, chromium):
    with _opened(site[0], chromium) as tab:
        yield tab


@pytest.fixture(scope="module")
def shipped_site(chromium, tmp_path_factory):
    """The chapters' networks the book ships (results/checkpoints/), served as the built site serves them."""
    if not SHIPPED_MANIFEST.is_file():
        pytest.fail(f"{SHIPPED_MANIFEST} is missing: benchmarks/ship_checkpoints.py writes it.")
    with _served(tmp_path_factory.mktemp("shipped"), SHIPPED_MANIFEST, "06_resnet") as (base, _):
        yield base


def _page_result(tab) -> tuple[list[tuple[str, float]], float]:
    rows = tab.locator(".cnnlib-live-top tr[data-class]")
    rows.first.wait_for(timeout=60_000)
    top = [
        (row.get_attribute("data-class"), float(row.get_attribute("data-probability"))) for row in rows.all()
    ]
    return top, float(tab.locator(".cnnlib-live-time").get_attribute("data-ms"))


def _predicted(checkpoint: Path, image: Path) -> list[tuple[str, float]]:
    from cnnlib.predict import load_classifier

    return load_classifier(checkpoint).predict(image, top_k=5).top


@pytest.mark.parametrize("network", ["06_resnet", "01_lenet5"])
def test_uploaded_image_gets_the_probabilities_of_cnnlib_predict(network, site, page, tmp_path, monkeypatch):
    # cnnlib.predict in fp32 (it runs bf16 autocast where the CPU has native bf16; the page computes in fp32).
    monkeypatch.setattr("cnnlib.device.cpu_has_native_bf16", lambda: False)
    _, manifest = site
    if network == "06_resnet":
        images = [ROOT / "book" / "_static" / "live" / "samples" / "cat.png"]
    else:  # a digit at the input size, white on black and black on white (the page inverts the second)
        from cnnlib.data import load_dataset

        digit = load_dataset("digits").fitted(32, 1).test_x[0, 0].numpy()
        images = [tmp_path / "digit.png", tmp_path / "paper.png"]
        Image.fromarray(digit).save(images[0])
        Image.fromarray(255 - digit).save(images[1])
    page.select_option(".cnnlib-live select", network)
    for image in images:
        page.set_input_files(".cnnlib-live-file", str(image))
        page.locator(".cnnlib-live-message").filter(has_text=f"reads “{image.name}”").wait_for(timeout=60_000)
        top, milliseconds = _page_result(page)
        expected = _predicted(manifest.parent / f"{network}.pt", image)
        assert top[0][0] == expected[0][0]
        assert max(abs(ours - dict(expected)[label]) for label, ours in top) <= BOUND, (top, expected)
        print(f"{network} on {image.name}: {milliseconds:.1f} ms in Chromium")


def _shipped_networks() -> list[str]:
    if not SHIPPED_MANIFEST.is_file():
        return ["(no shipped networks)"]
    return [entry["name"] for entry in json.loads(SHIPPED_MANIFEST.read_text())["checkpoints"]]


def _fixed_image(network: str, tmp_path: Path) -> Path:
    """A CIFAR-10 test image from the site's samples; for a grey network, a digit at its input size."""
    if network != "01_lenet5":
        return ROOT / "book" / "_static" / "live" / "samples" / "cat.png"
    from cnnlib.data import load_dataset

    digit = tmp_path / "digit.png"
    Image.fromarray(load_dataset("digits").fitted(32, 1).test_x[0, 0].numpy()).save(digit)
    return digit


@pytest.mark.parametrize("network", _shipped_networks())
def test_each_shipped_network_gives_the_probabilities_of_cnnlib_predict(
    network, shipped_site, chromium, tmp_path, monkeypatch
):
    monkeypatch.setattr("cnnlib.device.cpu_has_native_bf16", lambda: False)  # as above: fp32 both sides
    image = _fixed_image(network, tmp_path)
    with _opened(shipped_site, chromium) as tab:
        tab.select_option(".cnnlib-live select", network)
        tab.set_input_files(".cnnlib-live-file", str(image))
        tab.locator(".cnnlib-live-message").filter(has_text=f"reads “{image.name}”").wait_for(timeout=60_000)
        top, milliseconds = _page_result(tab)  # the inference alone: the page loads the network first
    expected = _predicted(SHIPPED_MANIFEST.parent / f"{network}.pt", image)
    assert top[0][0] == expected[0][0]
    assert max(abs(ours - dict(expected)[label]) for label, ours in top) <= BOUND, (top, expected)
    print(f"shipped {network} on {image.name}: {milliseconds:.1f} ms in Chromium")


def test_a_drawn_digit_gets_a_class_and_samples_run(page):
    page.select_option(".cnnlib-live select", "01_lenet5")
    canvas = page.locator(".cnnlib-live-canvas")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.15)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * (0.15 + 0.07 * step))
    page.mouse.up()
    page.get_by_role("button", name="Classify drawing").click()
    message = page.locator(".cnnlib-live-message")
    message.filter(has_text="reads your drawing as").wait_for(timeout=60_000)
    assert message.inner_text().rstrip(".").split()[-1] in [str(digit) for digit in range(10)]
    page.select_option(".cnnlib-live select", "06_resnet")
    page.get_by_role("button", name="Classify the ship").click()
    message.filter(has_text="reads the CIFAR-10 ship as").wait_for(timeout=60_000)
    assert len(page.locator(".cnnlib-live-top tr[data-class]").all()) == 3  # top-5 of three classes


def test_a_file_that_is_not_an_image_gets_one_sentence(page, tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("these are my notes, not a picture\n")
    page.set_input_files(".cnnlib-live-file", str(fake))
    message = page.locator(".cnnlib-live-message")
    message.filter(has_text="is not an image").wait_for(timeout=30_000)
    assert (
        message.inner_text()
        == "“notes.png” is not an image your browser can read: choose a PNG or JPEG file."
    )
    assert not page.locator(".cnnlib-live-top tr").all()


def test_downloads_are_the_shipped_files(site, page):
    _, manifest = site
    link = page.locator(".cnnlib-live-download a").first
    assert link.inner_text() == "06_resnet.pt"
    shipped = {entry["file"]: entry for entry in json.loads(manifest.read_text())["checkpoints"]}
    with urllib.request.urlopen(link.get_attribute("href")) as response:
        assert len(response.read()) == shipped["06_resnet.pt"]["bytes"]
