"""The study figures draw what they say: the mean over seeds, the minimum–maximum band."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from cnnlib.plots import plot_spread  # noqa: E402


def test_plot_spread_draws_the_mean_per_group_and_shades_the_range():
    frame = pd.DataFrame({"layers": [10, 10, 34, 34] * 2, "network": ["plain"] * 4 + ["ResNet"] * 4,
                          "loss": [2.0, 2.2, 2.3, 2.3, 1.6, 1.8, 1.2, 1.4]})
    figure = plot_spread(frame, "layers", {"loss": "training loss"}, by="network", categorical_x=True)
    axis = figure.axes[0]
    lines = {line.get_label(): line for line in axis.get_lines()}
    assert list(lines) == ["plain", "ResNet"]
    assert list(lines["plain"].get_xdata()) == [0, 1] and list(lines["plain"].get_ydata()) == pytest.approx([2.1, 2.3])
    assert list(lines["ResNet"].get_ydata()) == pytest.approx([1.7, 1.3])
    bands = [band.get_paths()[0].vertices[:, 1] for band in axis.collections]
    assert len(bands) == 2 and min(bands[1]) == 1.2 and max(bands[1]) == 1.8
    assert [tick.get_text() for tick in axis.get_xticklabels()] == ["10", "34"]
    assert axis.get_ylabel() == "training loss"
    assert list(plot_spread(frame, "layers", {"loss": ""}, by="network").axes[0].get_lines()[0].get_xdata()) == [10, 34]
