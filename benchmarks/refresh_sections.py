"""Re-execute only the cells of a page that carry a tag, and keep their new outputs in the page.

The chapters' paper-experiment sections (tag ``ablation``) read committed results
(``results/ablations/<chapter>/``) and need nothing else from their page, so after a sweep they are
refreshed without rerunning the page's ten-minute training run:

    python benchmarks/refresh_sections.py --tag ablation notebooks/06_resnet.ipynb ...

The tagged cells run in order in one fresh kernel, in ``notebooks/`` as the page itself does; a cell
that fails stops the refresh and leaves the page as it was.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def refresh(path: Path, tag: str, timeout: int = 600) -> int:
    """Execute the cells of ``path`` tagged ``tag`` in a fresh kernel; write their outputs back.
    Returns how many ran."""
    page = nbformat.read(path, as_version=4)
    tagged = [cell for cell in page.cells if tag in cell.metadata.get("tags", [])]
    section = nbformat.v4.new_notebook(
        cells=[cell for cell in tagged if cell.cell_type == "code"], metadata=page.metadata
    )
    NotebookClient(
        section, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    nbformat.write(page, path)  # the cells were executed in place: the page holds their outputs now
    return len(section.cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", required=True, help="run the cells with this tag, e.g. ablation")
    parser.add_argument("notebooks", nargs="+", type=Path)
    arguments = parser.parse_args()
    for path in arguments.notebooks:
        print(f"{path}: {refresh(path, arguments.tag)} cells tagged {arguments.tag!r} re-executed")


if __name__ == "__main__":
    main()
