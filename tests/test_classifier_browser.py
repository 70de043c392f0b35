"""The classifier notebook in a real browser: JupyterLab on loopback (a free port, no token, its
own settings and runtime folders), driven by headless Chromium through Playwright. The notebook
is run with "Run All Cells", then its widgets are used as a person would: a test image is
classified with a button, a digit is drawn with the mouse on the canvas and classified. A
screenshot is kept in ``$CNNLIB_ARTIFACTS`` (default: a pytest temporary folder).

Needs Debian's ``chromium`` and the ``playwright`` package (no browser download: Playwright
drives /usr/bin/chromium); without them the test is skipped locally and fails in CI (env CI)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import papermill
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "classifier.ipynb"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture()
def chromium() -> str:
    """Debian's Chromium, checked before anything slow is set up."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None or importlib.util.find_spec("playwright") is None:
        message = (
            "Chromium or the playwright package is missing: install them with `apt-get install -y chromium` "
            "and `pip install -e '.[test]'` (the classifier's browser test needs both)."
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture()
def lab(tmp_path):
    """JupyterLab serving a copy of the notebook whose parameters point at a freshly trained
    checkpoint; yields the notebook's URL."""
    from cnnlib.config import TrainConfig
    from cnnlib.train import train

    run = tmp_path / "run"
    train(
        TrainConfig(
            model="lenet5", dataset="digits", subset=300, epochs=1, device="cpu", out=str(run), progress=False
        )
    )
    served = tmp_path / "lab"
    served.mkdir()
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(served / "classifier.ipynb"),
        prepare_only=True,
        parameters={
            "checkpoint": str(run / "checkpoint.pt"),
            "out": str(tmp_path / "unused"),
            "device": "cpu",
            "examples": [0],
        },
        kernel_name="python3",
        progress_bar=False,
    )
    # Start the notebook's kernel without asking, and no news pop-up over the widgets.
    for extension, name, values in (
        ("notebook-extension", "tracker", '{"autoStartDefaultKernel": true}'),
        ("apputils-extension", "notification", '{"fetchNews": "false"}'),
    ):
        folder = tmp_path / "settings" / "@jupyterlab" / extension
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.jupyterlab-settings").write_text(values)
    port = _free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        "CNNLIB_CACHE": str(tmp_path / "cache"),
    }
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            "--ServerApp.allow_root=True",
            "--LabApp.extension_manager=readonly",
            f"--ServerApp.root_dir={served}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{(tmp_path / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield f"{base}/lab/tree/classifier.ipynb"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture()
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = (
        Path(os.environ["CNNLIB_ARTIFACTS"])
        if os.environ.get("CNNLIB_ARTIFACTS")
        else tmp_path_factory.mktemp("artifacts")
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_notebook_widgets_work_in_jupyterlab(chromium, lab, artifacts):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(lab)
            page.locator(".jp-Notebook").wait_for(timeout=60_000)
            # The kernel is connected when the status bar reads "<kernel name> | Idle".
            expect(page.get_by_role("button", name=re.compile(r"\| Idle$"))).to_be_visible(timeout=60_000)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

            status = page.locator(".cnnlib-prediction")
            try:
                expect(status).to_have_text("Choose an image.", timeout=90_000)
            except AssertionError:
                errors = page.locator(".jp-OutputArea-output[data-mime-type*='stderr']").all_inner_texts()
                pytest.fail(f"the classifier's widgets did not appear; last error output: {errors[-1:]}")
            page.get_by_role("button", name="Classify test image").click()
            expect(status).to_contain_text("for test image 0 (true class", timeout=30_000)
            expect(page.locator(".widget-image img, img.widget-image").first).to_be_visible()

            canvas = page.locator(".jupyter-widgets canvas").last
            canvas.scroll_into_view_if_needed()
            box = canvas.bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.15)
            page.mouse.down()
            for step in range(1, 11):
                page.mouse.move(
                    box["x"] + box["width"] * 0.5, box["y"] + box["height"] * (0.15 + 0.07 * step)
                )
            page.mouse.up()
            page.get_by_role("button", name="Classify drawing").click()
            expect(status).to_contain_text("for your drawing", timeout=30_000)
            assert status.locator("b").inner_text() in [str(digit) for digit in range(10)]
        finally:
            page.screenshot(path=str(artifacts / "classifier_jupyterlab.png"), full_page=True)
            browser.close()
    assert (artifacts / "classifier_jupyterlab.png").stat().st_size > 0
