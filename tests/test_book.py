"""The course site: it builds with warnings as errors, every page of the table of contents
is there, and in a real (headless) browser its formulas, tables and figures render with
no network.

The site is built once per session (about 10 s). The browser checks need Debian's
``chromium`` and the offline MathJax copy of ``book/fetch_mathjax.sh``; without them they
are skipped locally and fail in CI (env ``CI`` set). Screenshots of the pages are kept in
``$CNNLIB_ARTIFACTS`` (default: a pytest temporary folder).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import yaml
from bs4 import BeautifulSoup
from pybtex.database import parse_file

REPO = Path(__file__).resolve().parents[1]
OFFLINE_MATHJAX = REPO / "book" / "_static" / "mathjax" / "tex-mml-chtml.js"
CDN_MATHJAX = "https://cdn.jsdelivr.net/npm/mathjax@3/"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--virtual-time-budget=15000", "--window-size=1280,2000",
)
# The keys the chapters cite: renaming one breaks their {cite} roles.
COURSE_KEYS = {
    "lecun1998gradient", "krizhevsky2012imagenet", "lin2013network", "simonyan2014very",
    "szegedy2015going", "he2016deep", "he2015delving", "ioffe2015batch", "huang2017densely",
    "sandler2018mobilenetv2", "tan2019efficientnet", "glorot2010understanding",
    "dumoulin2016guide", "smith2019super", "loshchilov2017sgdr", "loshchilov2019decoupled",
    "goyal2017accurate", "selvaraju2017grad", "krizhevsky2009learning",
}


def _jupyter_book() -> str:
    beside_python = Path(sys.executable).with_name("jupyter-book")
    return str(beside_python) if beside_python.exists() else shutil.which("jupyter-book") or "jupyter-book"


def _build(source: Path, output: Path) -> Path:
    """``jupyter-book build`` with warnings as errors; returns the HTML folder."""
    result = subprocess.run(
        [_jupyter_book(), "build", str(source), "-W", "-n", "--keep-going", "--path-output", str(output)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"jupyter-book build failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    return output / "_build" / "html"


def _docname(toc_file: str) -> str:
    path = Path(toc_file)
    return path.with_suffix("").as_posix() if path.suffix in (".md", ".ipynb") else toc_file


def _toc_files() -> list[str]:
    """Every ``file`` (and the root) of _toc.yml, without extension, in order."""
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [_docname(toc["root"])]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                files.append(_docname(entry["file"]))
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key, []))

    walk([toc])
    return files


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The course site, built once from the repository."""
    return _build(REPO, tmp_path_factory.mktemp("book"))


def test_toc_lists_the_course_pages() -> None:
    files = _toc_files()
    assert files[0] == "book/intro"
    assert {"book/conv_arithmetic", "notebooks/01_lenet5", "book/bibliography"} <= set(files)
    assert len(files) == len(set(files)), "a page is listed twice in _toc.yml"


def test_every_toc_page_is_built(site: Path) -> None:
    missing = [page for page in _toc_files() if not (site / f"{page}.html").is_file()]
    assert not missing, f"pages of _toc.yml missing from the built site: {missing}"
    assert (site / "index.html").is_file()


def test_site_is_ready_for_github_pages(site: Path) -> None:
    # Without .nojekyll, GitHub Pages drops the folders whose name starts with "_".
    assert (site / ".nojekyll").is_file()


def test_bibliography_has_every_course_paper(site: Path) -> None:
    entries = parse_file(str(REPO / "book" / "references.bib")).entries
    assert COURSE_KEYS <= set(entries)
    for key, entry in entries.items():
        assert entry.persons.get("author") and "title" in entry.fields and "year" in entry.fields, key
    lecun = entries["lecun1998gradient"].fields
    assert (lecun["journal"], lecun["volume"], lecun["number"], lecun["pages"]) == (
        "Proceedings of the IEEE", "86", "11", "2278--2324")
    assert "1603.07285" in entries["dumoulin2016guide"].fields["eprint"]
    assert "1409.1556" in entries["simonyan2014very"].fields["eprint"]
    page = BeautifulSoup((site / "book" / "bibliography.html").read_text(), "html.parser")
    assert len(page.select("div.citation")) == len(entries)


def test_figure_script_draws_every_figure_of_the_chapter(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(REPO / "book" / "figures" / "make_figures.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True, timeout=120)
    drawn = {path.name for path in tmp_path.iterdir()}
    chapter = (REPO / "book" / "conv_arithmetic.md").read_text()
    used = {line.split("figures/", 1)[1].strip() for line in chapter.splitlines() if line.startswith("```{figure}")}
    assert used and used == drawn
    for name in used:
        assert (REPO / "book" / "figures" / name).is_file(), f"{name} is drawn but not committed"


def test_site_without_offline_mathjax_builds_and_uses_the_cdn(tmp_path: Path) -> None:
    # A copy of the repository without book/_static/mathjax (nor anything git ignores): what a fresh clone has.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "_build", "mathjax", "runs", "sweeps", "__pycache__", ".ipynb_checkpoints", "*.egg-info"))
    html = _build(source, tmp_path / "out")
    page = BeautifulSoup((html / "book" / "conv_arithmetic.html").read_text(), "html.parser")
    sources = [script["src"] for script in page.find_all("script", src=True) if "mathjax" in script["src"]]
    assert len(sources) == 1 and sources[0].startswith(CDN_MATHJAX)


# --- In the browser --------------------------------------------------------------------

@dataclass
class RenderedPage:
    html_file: Path
    dom: BeautifulSoup
    screenshot: Path


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's headless Chromium, and the offline MathJax copy it needs to render math."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    missing = []
    if binary is None:
        missing.append("Chromium is not installed: install it with `apt-get install -y chromium`")
    if not OFFLINE_MATHJAX.is_file():
        missing.append("the offline MathJax copy is missing: run `sh book/fetch_mathjax.sh`")
    if missing:
        message = "; ".join(missing) + " (the browser checks of the site need it)."
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ["CNNLIB_ARTIFACTS"]) if os.environ.get("CNNLIB_ARTIFACTS") else \
        tmp_path_factory.mktemp("artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def render(chromium: str, site: Path, page: str, artifacts: Path, tmp_path: Path) -> RenderedPage:
    """Open ``page`` (a toc entry) in headless Chromium: its DOM once scripts have run,
    and a screenshot kept in ``artifacts``."""
    html_file = site / f"{page}.html"
    screenshot = artifacts / f"{page.replace('/', '__')}.png"
    result = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}",
         f"--screenshot={screenshot}", "--dump-dom", html_file.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, f"chromium failed on {page}:\n{result.stderr[-3000:]}"
    assert screenshot.is_file() and screenshot.stat().st_size > 0
    return RenderedPage(html_file, BeautifulSoup(result.stdout, "html.parser"), screenshot)


def assert_math_rendered(page: RenderedPage) -> None:
    """Every formula is typeset by MathJax, without errors, and no TeX source is left."""
    scripts = [script["src"] for script in page.dom.find_all("script", src=True) if "mathjax" in script["src"]]
    assert scripts and all(not urlparse(src).scheme for src in scripts), f"MathJax not served locally: {scripts}"
    formulas = page.dom.select(".math")
    assert formulas, f"no formula on {page.html_file.name}"
    untyped = [formula.get_text()[:80] for formula in formulas if formula.find("mjx-container") is None]
    assert not untyped, f"formulas MathJax did not typeset: {untyped}"
    assert not page.dom.find("mjx-merror"), "MathJax reported a TeX error"
    # The prose, without code (where a `$` is a shell's) and MathJax's own markup.
    prose = copy.copy(page.dom.find("main") or page.dom.body)
    for hidden in prose.find_all(["script", "style", "pre", "code", "mjx-container"]):
        hidden.decompose()
    text = prose.get_text()
    for raw in ("$", "\\lfloor", "\\frac", "\\(", "\\["):
        assert raw not in text, f"raw TeX {raw!r} left on {page.html_file.name}"


def assert_images_exist(html_file: Path, dom: BeautifulSoup, at_least: int) -> None:
    """The page has at least ``at_least`` images, each a file of the build."""
    images = dom.select("main img")
    assert len(images) >= at_least
    for image in images:
        src = image.get("src", "")
        assert src, "an <img> without src"
        target = (html_file.parent / unquote(urlparse(src).path)).resolve()
        assert target.is_file(), f"image {src} is not in the build"


def test_conv_arithmetic_page_renders(chromium: str, site: Path, artifacts: Path, tmp_path: Path) -> None:
    page = render(chromium, site, "book/conv_arithmetic", artifacts, tmp_path)
    assert_math_rendered(page)
    assert page.dom.select("main table")
    assert_images_exist(page.html_file, page.dom, at_least=2)
    captions = [caption.get_text(" ", strip=True) for caption in page.dom.select("main figcaption")]
    assert len(captions) >= 2 and all(captions)


def _part_files(caption: str) -> list[str]:
    """The pages of the _toc.yml part titled ``caption``, without extension, in order."""
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    return [_docname(entry["file"]) for part in toc["parts"] if part["caption"] == caption
            for entry in part["chapters"]]


@pytest.mark.parametrize("chapter", _part_files("Architectures"))
def test_architecture_chapter_renders(chapter: str, chromium: str, site: Path, artifacts: Path,
                                      tmp_path: Path) -> None:
    # What every chapter page has: formulas in its markdown, a layer table (a DataFrame
    # output of a code cell), and the figures of its run (curves, confusion matrix,
    # misclassified images, filters), each numbered figure with its caption.
    page = render(chromium, site, chapter, artifacts, tmp_path)
    assert_math_rendered(page)
    assert page.dom.select("main table.dataframe"), "no DataFrame table in the chapter's outputs"
    assert_images_exist(page.html_file, page.dom, at_least=4)
    captions = [figure.find("figcaption") for figure in page.dom.select("main figure")]
    assert all(caption is not None and caption.get_text(strip=True) for caption in captions), \
        f"a figure of {chapter} has no caption"


STUDIES = [page for page in _part_files("Training and results") if "_study_" in page]


@pytest.mark.parametrize("study", STUDIES)
def test_study_page_shows_plots_of_its_sweep_and_the_setting(study: str, site: Path) -> None:
    # Issue #6: each study page shows plots from a real sweep, with the setting that produced it.
    html_file = site / f"{study}.html"
    dom = BeautifulSoup(html_file.read_text(), "html.parser")
    assert_images_exist(html_file, dom, at_least=1)
    text = dom.select_one("main").get_text(" ")
    assert "Where the numbers on this page come from" in text
    assert re.search(r"\d+ of \d+ runs finished", text), f"{study} does not show the runs of its sweep"
