"""Draw the figures of the chapter "Convolution arithmetic" (book/conv_arithmetic.md).

Run from anywhere: ``python book/figures/make_figures.py [--out DIR]``; the SVG files are
written beside this script unless ``--out`` says otherwise, and are committed. The layout
follows the figures of Dumoulin & Visin, "A guide to convolution arithmetic for deep
learning" (2016): blue for the input, dashed cells for the padding, a shaded window.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.patches import ConnectionPatch, Rectangle  # noqa: E402

INPUT_COLOUR = "#9ecae1"
OUTPUT_COLOUR = "#a1d99b"
WINDOW_COLOUR = "#08519c"
HIGHLIGHT_COLOUR = "#31a354"

# The example of the sliding-window figure: a 3×3 kernel, stride 2, padding 1, on 5×5.
SIDE, KERNEL, STRIDE, PADDING = 5, 3, 2, 1
OUT_SIDE = (SIDE - KERNEL + 2 * PADDING) // STRIDE + 1


def _grid(ax: Axes, origin: tuple[float, float], side: int, colour: str, padding: int = 0) -> None:
    """A ``side``×``side`` grid of unit cells with its lower-left corner at ``origin``,
    surrounded by ``padding`` rings of dashed (zero) cells."""
    x0, y0 = origin
    for row in range(-padding, side + padding):
        for col in range(-padding, side + padding):
            inside = 0 <= row < side and 0 <= col < side
            ax.add_patch(
                Rectangle(
                    (x0 + col, y0 + side - 1 - row),
                    1,
                    1,
                    facecolor=colour if inside else "white",
                    edgecolor="0.3" if inside else "0.6",
                    linestyle="-" if inside else "--",
                    linewidth=0.8,
                )
            )


def _sliding_window_panel(ax: Axes, out_row: int, out_col: int) -> None:
    """One position of the window on the padded input, and the output cell it computes."""
    _grid(ax, (0, 0), SIDE, INPUT_COLOUR, PADDING)
    top, left = out_row * STRIDE - PADDING, out_col * STRIDE - PADDING
    window = Rectangle(
        (left, SIDE - top - KERNEL),
        KERNEL,
        KERNEL,
        facecolor=WINDOW_COLOUR,
        alpha=0.35,
        edgecolor=WINDOW_COLOUR,
        linewidth=2.2,
    )
    ax.add_patch(window)

    out_x0 = SIDE + PADDING + 1.5
    out_y0 = (SIDE - OUT_SIDE) / 2
    _grid(ax, (out_x0, out_y0), OUT_SIDE, OUTPUT_COLOUR)
    cell_x, cell_y = out_x0 + out_col, out_y0 + OUT_SIDE - 1 - out_row
    ax.add_patch(
        Rectangle((cell_x, cell_y), 1, 1, facecolor=HIGHLIGHT_COLOUR, edgecolor="black", linewidth=2.2)
    )
    ax.add_artist(
        ConnectionPatch(
            (left + KERNEL, SIDE - top - KERNEL / 2),
            (cell_x, cell_y + 0.5),
            "data",
            "data",
            arrowstyle="->",
            color="0.2",
            linewidth=1.0,
        )
    )
    ax.set_title(f"output ({out_row}, {out_col})", fontsize=11)
    ax.set_xlim(-PADDING - 0.2, out_x0 + OUT_SIDE + 0.2)
    ax.set_ylim(-PADDING - 0.2, SIDE + PADDING + 0.2)
    ax.set_aspect("equal")
    ax.axis("off")


def sliding_window_figure(path: Path) -> None:
    """A 3×3 kernel at stride 2 over a 5×5 input padded by 1 gives a 3×3 output."""
    positions = [(0, 0), (0, 1), (0, 2), (2, 2)]
    fig, axes = plt.subplots(2, 2, figsize=(6.8, 5.8))
    for ax, (row, col) in zip(axes.flat, positions):
        _sliding_window_panel(ax, row, col)
    fig.tight_layout()
    _save(fig, path)


def _unit_row(ax: Axes, y: float, count: int, colour: str, label: str) -> list[tuple[float, float]]:
    """A row of ``count`` unit cells centred on x = 0 at height ``y``; returns the cells' centres."""
    centres = []
    for index in range(count):
        x = index - count / 2
        ax.add_patch(Rectangle((x, y), 1, 1, facecolor=colour, edgecolor="0.3", linewidth=0.8))
        centres.append((x + 0.5, y + 0.5))
    ax.text(-3.2, y + 0.5, label, ha="right", va="center", fontsize=11)
    return centres


def receptive_field_figure(path: Path) -> None:
    """Two stacked 3×3 convolutions (stride 1), seen along one axis: the top unit depends
    on 3 units of the middle layer, and they on 5 input units, as one 5×5 kernel would."""
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    inputs = _unit_row(ax, 0, 5, INPUT_COLOUR, "input")
    middle = _unit_row(ax, 2, 3, OUTPUT_COLOUR, "conv 1 (3×3)")
    top = _unit_row(ax, 4, 1, HIGHLIGHT_COLOUR, "conv 2 (3×3)")
    for upper, lower_row in ((top, middle), (middle, inputs)):
        for index, (x, y) in enumerate(upper):
            for lx, ly in lower_row[index : index + KERNEL]:
                ax.plot([x, lx], [y - 0.5, ly + 0.5], color="0.35", linewidth=0.9)
    ax.annotate(
        "",
        xy=(-2.5, -0.35),
        xytext=(2.5, -0.35),
        arrowprops={"arrowstyle": "<->", "color": WINDOW_COLOUR, "linewidth": 1.5},
    )
    ax.text(
        0,
        -0.9,
        "receptive field 5 = 1 + 2·(3 − 1)",
        ha="center",
        va="center",
        fontsize=11,
        color=WINDOW_COLOUR,
    )
    ax.set_xlim(-6.5, 3)
    ax.set_ylim(-1.3, 5.2)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.tight_layout()
    _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> None:
    # No date and a fixed id salt: the same drawing gives the same file.
    with plt.rc_context({"svg.hashsalt": "cnnlib"}):
        fig.savefig(path, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)


FIGURES = {
    "conv_stride2_padding1.svg": sliding_window_figure,
    "receptive_field_two_3x3.svg": receptive_field_figure,
}


def main(argv: list[str] | None = None) -> list[Path]:
    """Draw every figure into ``--out`` (default: this folder); returns the paths written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    out = parser.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in FIGURES.items():
        draw(out / name)
        written.append(out / name)
    return written


if __name__ == "__main__":
    for written_path in main():
        print(written_path)
