"""The chapters' exercises with solutions (book/exercises/NN_name.md, issue 15): each chapter has 3–5
exercises on its own parameters and one that builds its block, every solution is hidden behind a toggle,
every Python block of the solutions runs (model construction and layer tables only, no training), and each
chapter notebook's last cell includes its file."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ROOT / "book" / "exercises"
CHAPTERS = ("02_alexnet", "03_nin", "04_vgg", "05_googlenet", "06_resnet", "07_densenet",
            "08_mobilenet_efficientnet")

EXERCISE = re.compile(r"^\*\*Exercise \d+ \(", re.MULTILINE)
BUILD = re.compile(r"^\*\*Build it yourself: ", re.MULTILINE)
# A sphinx-design dropdown, fenced by four backticks so that it can hold ```python blocks.
SOLUTION = re.compile(r"^````\{dropdown\} Solution\n(.*?)^````$", re.MULTILINE | re.DOTALL)
PYTHON = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def exercise_text(chapter: str) -> str:
    return (EXERCISES / f"{chapter}.md").read_text(encoding="utf-8")


def include_line(chapter: str) -> str:
    """How a chapter notebook (in notebooks/) includes its exercises."""
    return f"```{{include}} ../book/exercises/{chapter}.md\n```"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_exercise_has_a_hidden_solution(chapter):
    text = exercise_text(chapter)
    exercises, builds = len(EXERCISE.findall(text)), len(BUILD.findall(text))
    assert 3 <= exercises <= 5, f"{chapter}: {exercises} exercises on the chapter's parameters, 3–5 wanted"
    assert builds == 1, f"{chapter}: one exercise that builds the chapter's block, found {builds}"
    solutions = SOLUTION.findall(text)
    assert len(solutions) == exercises + builds, f"{chapter}: every exercise needs one hidden solution"
    assert all(solution.count("```python") == len(PYTHON.findall(solution)) for solution in solutions), \
        f"{chapter}: an unclosed ```python block"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_build_solution_checks_the_block_with_layer_table(chapter):
    text = exercise_text(chapter)
    build_solution = SOLUTION.findall(text[BUILD.search(text).start():])[0]
    code = "\n".join(PYTHON.findall(build_solution))
    assert "layer_table(" in code and "assert " in code, f"{chapter}: the solution must check the block"
    assert "models.create(" in code, f"{chapter}: the solution compares with the library's block"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_solution_code_runs(chapter):
    blocks = [code for solution in SOLUTION.findall(exercise_text(chapter)) for code in PYTHON.findall(solution)]
    assert blocks, f"{chapter}: no Python in the solutions"
    for index, code in enumerate(blocks):
        source = f"book/exercises/{chapter}.md, python block {index + 1}"
        exec(compile(code, source, "exec"), {"__name__": "__main__"})


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_notebook_ends_with_its_exercises(chapter):
    last = nbformat.read(ROOT / "notebooks" / f"{chapter}.ipynb", as_version=4).cells[-1]
    assert last.cell_type == "markdown"
    assert include_line(chapter) in last.source
    assert (ROOT / "notebooks" / f"../book/exercises/{chapter}.md").resolve().is_file()


def test_exercise_files_are_not_pages_of_their_own():
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert any(pattern.rstrip("/*") == "book/exercises" for pattern in config["exclude_patterns"])
    assert sorted(path.stem for path in EXERCISES.glob("*.md")) == sorted(CHAPTERS)
