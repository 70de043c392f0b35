"""Serve MathJax from the book's own static folder when a copy is there.

The course site must render its formulas with no network (CI and the course machines
reach no CDN). ``book/fetch_mathjax.sh`` unpacks MathJax into ``book/_static/mathjax/``
(git-ignored). When that copy exists, this extension adds ``book/_static`` to the static
folders and points Sphinx's ``mathjax_path`` at the copy, so the built site carries
MathJax with it. Without the copy the build keeps Sphinx's default, the CDN, and says so
in the log (a note, not a warning: ``-W`` builds still pass).
"""

from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util import logging

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parents[1] / "_static"
# The bundle Sphinx loads from the CDN by default (TeX and MathML in, CommonHTML out),
# relative to the static folder.
OFFLINE_BUNDLE = "mathjax/tex-mml-chtml.js"


def _use_offline_copy(app: Sphinx, config: Config) -> None:
    if not (STATIC_DIR / OFFLINE_BUNDLE).is_file():
        logger.info(
            "MathJax: no offline copy in %s (run book/fetch_mathjax.sh); the pages load it from the CDN.",
            STATIC_DIR,
        )
        return
    if str(STATIC_DIR) not in config.html_static_path:
        config.html_static_path = [*config.html_static_path, str(STATIC_DIR)]
    config.mathjax_path = OFFLINE_BUNDLE


def setup(app: Sphinx) -> dict:
    """Sphinx entry point."""
    app.connect("config-inited", _use_offline_copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
