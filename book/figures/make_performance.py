"""Draw the figure of the page "Performance" (book/performance.md) from a committed benchmark.

``python book/figures/make_performance.py [--results FILE] [--out DIR]`` reads the samples that
``benchmarks/eval_batch.py`` wrote (default: results/benchmark-cpu-eval-batch.json) and writes
``performance_eval_batch.svg`` beside this script unless ``--out`` says otherwise; the SVG is committed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIGURE = "performance_eval_batch.svg"


def plot_eval_batch(benchmark: dict, path: Path) -> None:
    """Images per second of inference against the batch size, one line per network, both axes logarithmic."""
    figure, axis = plt.subplots(figsize=(6.4, 3.4), layout="constrained")
    names = dict.fromkeys(row["model"] for row in benchmark["results"])
    for name in names:
        rows = sorted(
            (row for row in benchmark["results"] if row["model"] == name), key=lambda row: row["batch"]
        )
        axis.plot(
            [row["batch"] for row in rows], [row["images_per_second"] for row in rows], marker="o", label=name
        )
    axis.set(
        xscale="log",
        yscale="log",
        xlabel="evaluation batch size",
        ylabel="images per second",
        title=f"Inference on 32×32 images, {benchmark['device']}",
    )
    axis.set_xticks(sorted({row["batch"] for row in benchmark["results"]}))
    axis.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axis.legend(fontsize=8)
    figure.savefig(path, metadata={"Date": None})
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "benchmark-cpu-eval-batch.json")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    plot_eval_batch(json.loads(args.results.read_text()), args.out / FIGURE)
    print(f"wrote {args.out / FIGURE}")


if __name__ == "__main__":
    main()
