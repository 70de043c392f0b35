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


def test_misclassified_images_come_from_every_class_in_turn():
    import torch

    from cnnlib.plots import misclassified_per_class

    # A class-sorted test set: the first class alone has more mistakes than the count.
    labels = torch.tensor([0] * 10 + [1] * 3 + [2] * 3)
    predictions = torch.tensor([1] * 10 + [0, 1, 0] + [2, 0, 0])
    assert misclassified_per_class(labels, predictions, 5).tolist() == [0, 10, 14, 1, 12]
    assert misclassified_per_class(labels, labels, 5).tolist() == []


def test_history_plot_ticks_whole_epochs():
    from cnnlib.plots import plot_history

    history = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [2.0, 1.5, 1.2], "test_loss": [1.9, 1.6, 1.4],
                            "train_accuracy": [0.3, 0.5, 0.6], "test_accuracy": [0.3, 0.45, 0.55]})
    figure = plot_history(history)
    figure.canvas.draw()
    for axis in figure.axes:
        ticks = [tick for tick in axis.get_xticks() if 1 <= tick <= 3]
        assert ticks and all(float(tick).is_integer() for tick in ticks)


def test_speed_against_macs_puts_each_network_at_its_measured_point():
    from cnnlib.plots import plot_speed_against_macs

    frame = pd.DataFrame({"model": ["a", "b"], "macs": [28e6, 35e6], "images_per_second": [360.0, 2055.0]})
    axis = plot_speed_against_macs(frame).axes[0]
    assert axis.collections[0].get_offsets().tolist() == [[28.0, 360.0], [35.0, 2055.0]]
    assert [text.get_text() for text in axis.texts] == ["a", "b"]
    assert axis.get_xscale() == axis.get_yscale() == "log"
    line = plot_speed_against_macs(frame, reference="b").axes[0].get_lines()[0]
    # Through b's point with slope -1: images/s × MACs constant.
    assert (line.get_xdata() * line.get_ydata()).tolist() == pytest.approx([35.0 * 2055.0] * 2)


@pytest.mark.parametrize("loss, label", [("cross_entropy", "cross-entropy"), ("mse", "squared error"),
                                         ("hinge", "hinge")])
def test_history_plot_names_the_runs_own_loss(loss, label):
    from cnnlib.plots import plot_history

    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [0.5, 0.4], "test_loss": [1.9, 1.6],
                            "train_accuracy": [0.3, 0.5], "test_accuracy": [0.3, 0.45]})
    history.attrs["loss"] = loss
    loss_axis = plot_history(history).axes[0]
    assert label in loss_axis.get_ylabel()
    if loss != "cross_entropy":
        assert "cross-entropy" not in loss_axis.get_ylabel()
