"""The live classifier on the site: the chapters' shipped networks run in the reader's browser (issue 39).

A page includes the panel with the ``live-classifier`` directive (in a notebook's markdown cell too)::

    ```{live-classifier}
    :network: 06_resnet
    ```

``:network:`` (optional) is the network chosen when the page opens: a shipped checkpoint's name. The
panel (``book/_static/live/live.js`` and ``live.css``) lets the reader choose any shipped network,
upload an image, pick a CIFAR-10 test image (``samples/``: the first test image of each class of the
JPEG copy) or draw a digit for a grey network, and shows the top-5 classes and the time taken.

When the build starts, this extension fills the git-ignored parts of ``book/_static/live/``:

* ``ort/``: onnxruntime-web's WebAssembly build (three files of ``node_modules/onnxruntime-web/dist``;
  ``npm ci`` installs it, as ``make book`` does), so that the page requests nothing from another host;
* ``models/``: each checkpoint that ``results/checkpoints/manifest.json`` lists, copied for download,
  and its ONNX export (:func:`cnnlib.export.export_for_site`; kept while the checkpoint's SHA-256 is
  unchanged), with ``models.js``, the list the panel reads.

Without onnxruntime-web or shipped checkpoints the build still passes, and the panel says in one sentence
what the site lacks. ``book/_static`` is served as the site's ``_static/``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
STATIC_DIR = ROOT / "book" / "_static"
LIVE_DIR = STATIC_DIR / "live"
MANIFEST = ROOT / "results" / "checkpoints" / "manifest.json"
ORT_DIST = ROOT / "node_modules" / "onnxruntime-web" / "dist"
# The WebAssembly build alone: its loader, the glue module it imports and the binary (SIMD, threads optional).
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")


def assemble(live: Path = LIVE_DIR, manifest: Path = MANIFEST, ort_dist: Path = ORT_DIST) -> list[dict]:
    """Fill ``live/ort`` from ``ort_dist`` and ``live/models`` from ``manifest`` (where they exist) and
    write ``live/models/models.js``; returns the networks listed there."""
    if all((ort_dist / name).is_file() for name in ORT_FILES):
        (live / "ort").mkdir(parents=True, exist_ok=True)
        for name in ORT_FILES:
            target = live / "ort" / name
            if not target.is_file() or target.read_bytes() != (ort_dist / name).read_bytes():
                shutil.copyfile(ort_dist / name, target)
    else:
        logger.info("live classifier: no onnxruntime-web in %s (run `npm ci`); the panel says so.", ort_dist)
    models: list[dict] = []
    if manifest.is_file():
        from cnnlib.export import export_for_site

        models = export_for_site(manifest, live / "models")
    else:
        logger.info(
            "live classifier: no %s (benchmarks/ship_checkpoints.py writes it); the panel says so.", manifest
        )
    (live / "models").mkdir(parents=True, exist_ok=True)
    (live / "models" / "models.js").write_text(f"window.cnnlibLiveModels = {json.dumps(models)};\n")
    return models


def panel_html(network: str | None = None) -> str:
    """The panel's placeholder, which ``live.js`` fills."""
    chosen = f' data-network="{network}"' if network else ""
    return (
        f'<div class="cnnlib-live"{chosen}><p class="cnnlib-live-message">The live classifier needs '
        f"JavaScript.</p></div>"
    )


def script_files(ort_present: bool) -> list[str]:
    """The scripts a page with the panel loads, relative to ``_static``, in order."""
    return [*(["live/ort/ort.wasm.min.js"] if ort_present else []), "live/models/models.js", "live/live.js"]


class live_panel(nodes.General, nodes.Element):
    """Where a page shows the live classifier."""


class LiveClassifier(SphinxDirective):
    """``{live-classifier}``: the live classifier's panel, the network named by ``:network:`` chosen."""

    option_spec = {"network": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        return [live_panel(network=self.options.get("network"))]


def _visit(translator, node: live_panel) -> None:
    translator.body.append(panel_html(node["network"]))
    raise nodes.SkipNode


def _serve_static(app: Sphinx, config: Config) -> None:
    if str(STATIC_DIR) not in config.html_static_path:
        config.html_static_path = [*config.html_static_path, str(STATIC_DIR)]


def _fill(app: Sphinx) -> None:
    assemble()


def _add_scripts(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree: nodes.Node | None
) -> None:
    if doctree is None or next(iter(doctree.findall(live_panel)), None) is None:
        return
    for script in script_files((LIVE_DIR / "ort" / ORT_FILES[0]).is_file()):
        app.add_js_file(script)
    app.add_css_file("live/live.css")


def setup(app: Sphinx) -> dict:
    """Sphinx entry point."""
    app.add_node(live_panel, html=(_visit, None))
    app.add_directive("live-classifier", LiveClassifier)
    app.connect("config-inited", _serve_static)
    app.connect("builder-inited", _fill)
    # Before the themes' handlers, which copy the page's list of scripts.
    app.connect("html-page-context", _add_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
