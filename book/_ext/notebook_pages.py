"""Keep what only the build of a notebook page needs off the page itself.

* The cell papermill inserts when a notebook is run with parameters (tag
  ``injected-parameters``) repeats the parameters cell above the chapter's explanation;
  the page leaves it out (the run's settings are printed by the chapter itself).
* myst-nb loads require.js and the ipywidgets manager from a CDN on every notebook page
  whose metadata holds widget state, even when no widget is shown (the classifier page
  removes its widget's output: widgets need a running kernel). The page loads them only
  when a widget output is on it, so a page opened offline requests nothing from another host.
* The DataFrames of the outputs are set in a smaller type (``static/notebook_pages.css``), so
  that a table of eight to ten columns fits the column of text.
* sphinx-thebe (which jupyter-book always loads, for its launch buttons) adds an inline script
  that declares ``const THEBE_JS_URL`` when the documents are read, and the built pages carried
  it twice: the second declaration is a SyntaxError, logged on every page as "Identifier
  'THEBE_JS_URL' has already been declared". Sphinx drops repeated script files, but its test
  of equality tells an inline script added with no file (``None``) from the same script with
  file ``''``, so each page here keeps one copy of every script, inline ones included.
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx

STATIC_DIR = Path(__file__).resolve().parent / "static"
INJECTED_TAG = "tag_injected-parameters"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# The keys under which myst-nb records the widget scripts of a page (myst_nb.core.render).
WIDGET_SCRIPT_PREFIX = "ipywidgets_"


def _is_injected_cell(node: nodes.Node) -> bool:
    return isinstance(node, nodes.container) and INJECTED_TAG in node.get("classes", [])


def _shows_a_widget(node: nodes.Node) -> bool:
    return isinstance(node, nodes.container) and node.get("mime_type") == WIDGET_VIEW


def _tidy_page(app: Sphinx, doctree: nodes.document) -> None:
    for cell in list(doctree.findall(_is_injected_cell)):
        cell.parent.remove(cell)
    if next(iter(doctree.findall(_shows_a_widget)), None) is not None:
        return
    scripts = getattr(app.env, "nb_metadata", {}).get(app.env.docname, {}).get("js_files", {})
    for key in [key for key in scripts if key.startswith(WIDGET_SCRIPT_PREFIX)]:
        del scripts[key]


def _script_key(script: object) -> tuple:
    """What makes two of a page's scripts the same: the file (``None`` and ``''`` alike), the attributes."""
    filename = script.filename if hasattr(script, "filename") else str(script)
    return filename or "", tuple(sorted(getattr(script, "attributes", {}).items()))


def _drop_repeated_scripts(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree: object
) -> None:
    unique: dict[tuple, object] = {}
    for script in context.get("script_files", []):
        unique.setdefault(_script_key(script), script)
    if "script_files" in context:
        context["script_files"] = list(unique.values())


def _add_static_dir(app: Sphinx) -> None:
    app.config.html_static_path = [*app.config.html_static_path, str(STATIC_DIR)]


def setup(app: Sphinx) -> dict:
    """Sphinx entry point."""
    app.connect("builder-inited", _add_static_dir)
    app.add_css_file("notebook_pages.css")
    app.connect("doctree-read", _tidy_page)
    app.connect("html-page-context", _drop_repeated_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
