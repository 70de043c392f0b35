"""The study figures draw what they say: the mean over seeds, the minimum–maximum band."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from cnnlib.plots import plot_spread  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    matplotlib.pyplot.close("all")


def test_plot_spread_draws_the_mean_per_group_and_shades_the_range():
    frame = pd.DataFrame(
        {
            "layers": [10, 10, 34, 34] * 2,
            "network": ["plain"] * 4 + ["ResNet"] * 4,
            "loss": [2.0, 2.2, 2.3, 2.3, 1.6, 1.8, 1.2, 1.4],
        }
    )
    figure = plot_spread(frame, "layers", {"loss": "training loss"}, by="network", categorical_x=True)
    axis = figure.axes[0]
    lines = {line.get_label(): line for line in axis.get_lines()}
    assert list(lines) == ["plain", "ResNet"]
    assert list(lines["plain"].get_xdata()) == [0, 1] and list(lines["plain"].get_ydata()) == pytest.approx(
        [2.1, 2.3]
    )
    assert list(lines["ResNet"].get_ydata()) == pytest.approx([1.7, 1.3])
    bands = [band.get_paths()[0].vertices[:, 1] for band in axis.collections]
    assert len(bands) == 2 and min(bands[1]) == 1.2 and max(bands[1]) == 1.8
    assert [tick.get_text() for tick in axis.get_xticklabels()] == ["10", "34"]
    assert axis.get_ylabel() == "training loss"
    assert list(
        plot_spread(frame, "layers", {"loss": ""}, by="network").axes[0].get_lines()[0].get_xdata()
    ) == [10, 34]


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

    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "train_loss": [2.0, 1.5, 1.2],
            "test_loss": [1.9, 1.6, 1.4],
            "train_accuracy": [0.3, 0.5, 0.6],
            "test_accuracy": [0.3, 0.45, 0.55],
        }
    )
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


@pytest.mark.parametrize(
    "loss, label", [("cross_entropy", "cross-entropy"), ("mse", "squared error"), ("hinge", "hinge")]
)
def test_history_plot_names_the_runs_own_loss(loss, label):
    from cnnlib.plots import plot_history

    history = pd.DataFrame(
        {
            "epoch": [1, 2],
            "train_loss": [0.5, 0.4],
            "test_loss": [1.9, 1.6],
            "train_accuracy": [0.3, 0.5],
            "test_accuracy": [0.3, 0.45],
        }
    )
    history.attrs["loss"] = loss
    loss_axis = plot_history(history).axes[0]
    assert label in loss_axis.get_ylabel()
    if loss != "cross_entropy":
        assert "cross-entropy" not in loss_axis.get_ylabel()


def _history(offset: float = 0.0, **attrs) -> pd.DataFrame:
    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "train_loss": [2.0 + offset, 1.5, 1.2],
            "test_loss": [1.9, 1.6, 1.4 + offset],
            "train_accuracy": [0.3, 0.5, 0.6],
            "test_accuracy": [0.3, 0.45, 0.55 - offset / 10],
            "lr": [0.1, 0.05, 0.000123456],
            "train_seconds": [61.4, 60.6, 59.5],
            "images_per_second": [814.9, 825.2, 840.3],
        }
    )
    history.attrs |= attrs
    return history


def test_history_plot_overlays_labelled_runs_one_colour_each():
    from cnnlib.plots import plot_history

    residual, plain = _history(), _history(offset=0.2)
    figure = plot_history({"ResNet-18": residual, "plain-18": plain})
    loss_axis, accuracy_axis = figure.axes
    lines = {line.get_label(): line for line in loss_axis.get_lines()}
    assert list(lines) == ["ResNet-18 train", "ResNet-18 test", "plain-18 train", "plain-18 test"]
    assert list(lines["plain-18 train"].get_ydata()) == [2.2, 1.5, 1.2]
    assert list(lines["plain-18 test"].get_ydata()) == pytest.approx([1.9, 1.6, 1.6])
    # A run is one colour; test is dashed, train solid.
    assert (
        lines["ResNet-18 train"].get_color()
        == lines["ResNet-18 test"].get_color()
        != lines["plain-18 train"].get_color()
    )
    assert lines["plain-18 test"].get_linestyle() == "--" and lines["plain-18 train"].get_linestyle() == "-"
    assert [line.get_label() for line in accuracy_axis.get_lines()][2:] == ["plain-18 train", "plain-18 test"]
    assert figure._suptitle.get_text() == "ResNet-18 against plain-18"


def test_history_plot_refuses_runs_trained_on_different_losses():
    from cnnlib.errors import UserError
    from cnnlib.plots import plot_history

    with pytest.raises(UserError, match="different losses .*cross_entropy, mse.*one at a time"):
        plot_history({"a": _history(loss="cross_entropy"), "b": _history(loss="mse")})
    with pytest.raises(UserError, match="at least one history"):
        plot_history({})


def test_history_plot_title_names_the_model_its_run_recorded():
    from cnnlib.plots import plot_history

    named = _history(model="resnet18", model_options={"width_mult": 0.25, "residual": False})
    assert plot_history(named)._suptitle.get_text() == "resnet18 (width_mult=0.25, residual=False)"
    assert plot_history(named, title="Chapter 6")._suptitle.get_text() == "Chapter 6"
    assert plot_history(_history())._suptitle is None


def test_history_table_rounds_each_column_and_keeps_short_headings():
    from cnnlib.plots import history_table

    table = history_table(_history())
    assert table.index.name == "epoch" and list(table.index) == [1, 2, 3]
    assert list(table.columns) == [
        "train loss",
        "train acc. %",
        "test loss",
        "test acc. %",
        "next lr",
        "seconds",
        "images/s",
    ]
    assert max(len(heading) for heading in table.columns) <= 12
    assert table["train acc. %"].tolist() == [30.0, 50.0, 60.0]
    assert table["next lr"].tolist() == [0.1, 0.05, 0.00012]
    assert table["seconds"].tolist() == [61, 61, 60] and table["images/s"].tolist() == [815, 825, 840]
    # A history tested every other epoch keeps its gaps; one without timings leaves their columns out.
    sparse = _history().drop(columns=["train_seconds", "images_per_second"])
    sparse.loc[1, ["test_loss", "test_accuracy"]] = float("nan")
    table = history_table(sparse)
    assert "seconds" not in table and table["test loss"].isna().tolist() == [False, True, False]


def test_history_table_fits_a_page_output_box():
    from bs4 import BeautifulSoup

    from cnnlib.plots import history_table

    # The HTML a notebook shows: every value of a history the trainer writes is at most seven characters wide
    # (an 8-column table of such cells and 12-character headings fits a 780 px output box; the browser test
    # of tests/test_book.py measures the pages).
    html = BeautifulSoup(history_table(_history())._repr_html_(), "html.parser")
    values = [cell.get_text(strip=True) for cell in html.select("tbody td")]
    assert len(values) == 3 * 7 and max(len(value) for value in values) <= 7, values


def test_model_figures_name_the_model_and_write_shapes_once():
    import torch

    from cnnlib import models
    from cnnlib.data import DataSplit
    from cnnlib.plots import (
        first_conv_name,
        plot_confusion,
        plot_feature_maps,
        plot_filters,
        plot_misclassified,
    )
    from cnnlib.record import Preprocess

    model = models.create("lenet5", 10, 1, 32)
    title = plot_filters(model)._suptitle.get_text()
    assert title == "First-layer filters of lenet5, 1×5×5 each"
    assert "((" not in title and "))" not in title
    assert plot_filters(model, title="LeNet-5's filters")._suptitle.get_text() == "LeNet-5's filters"
    wide = models.create("resnet18", 10, 3, 32, width_mult=0.25)
    assert (
        plot_filters(wide)._suptitle.get_text()
        == "First-layer filters of resnet18 (width_mult=0.25), 3×3×3 each"
    )
    assert "of" not in plot_filters(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)))._suptitle.get_text()

    images = torch.zeros(4, 1, 32, 32, dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 3])
    data = DataSplit(
        name="digits",
        train_x=images,
        train_y=labels,
        test_x=images,
        test_y=labels,
        source="test",
        preprocess=Preprocess(
            classes=[str(k) for k in range(10)], input_shape=(1, 32, 32), mean=(0.5,), std=(0.5,)
        ),
    )
    model.eval()
    maps = plot_feature_maps(model, data, first_conv_name(model))._suptitle.get_text()
    assert maps == f"Feature maps of {first_conv_name(model)} in lenet5, 28×28 each"
    predictions = torch.tensor([1, 1, 2, 0])
    assert plot_misclassified(data, predictions)._suptitle.get_text().startswith("2 misclassified")
    assert (
        plot_misclassified(data, predictions, title="LeNet-5's mistakes")._suptitle.get_text()
        == "LeNet-5's mistakes"
    )
    assert plot_confusion(labels, predictions, data.classes, title="LeNet-5").axes[0].get_title() == "LeNet-5"


def _summary(settings: list[str], means: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "setting": settings,
            "mean": means,
            "min": [m - 0.005 for m in means],
            "max": [m + 0.004 for m in means],
            "runs": [3] * len(means),
        }
    )


def _overlapping_tick_labels(figure) -> list[tuple[str, str]]:
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    labels = [
        (label.get_text(), label.get_window_extent(renderer)) for label in figure.axes[0].get_xticklabels()
    ]
    return [(a, b) for (a, box), (b, other) in zip(labels, labels[1:]) if box.overlaps(other)]


def test_sweep_plot_labels_long_settings_without_collisions():
    from cnnlib.plots import plot_sweep

    # The batch-size study's settings: five long labels that overprinted each other at 30° and flat.
    settings = [
        "16, lr 0.05",
        "16, lr 0.0125 (scaled)",
        "64, lr 0.05",
        "256, lr 0.05",
        "256, lr 0.2 (scaled)",
    ]
    figure = plot_sweep(_summary(settings, [0.97, 0.987, 0.984, 0.363, 0.347]), "setting")
    assert _overlapping_tick_labels(figure) == []
    assert figure.axes[0].get_xticklabels()[1].get_text() == "16, lr 0.0125\n(scaled)\n3 runs"
    # Values from 35 % to 99 %: the axis starts at 0 and does not say it is zoomed.
    assert figure.axes[0].get_ylim()[0] == 0 and "zoomed" not in figure.axes[0].get_ylabel()


def test_sweep_plot_zooms_on_close_values_and_says_so():
    from cnnlib.plots import plot_sweep

    optimisers = [
        "sgd lr=0.05",
        "sgd+nesterov lr=0.05",
        "adam lr=0.001",
        "adamw lr=0.001",
        "nadam lr=0.002",
        "adagrad lr=0.01",
        "rmsprop lr=0.001",
    ]
    means = [0.9814, 0.9842, 0.9777, 0.9768, 0.9842, 0.9786, 0.9861]
    figure = plot_sweep(_summary(optimisers, means), "setting")
    axis = figure.axes[0]
    low, high = axis.get_ylim()
    assert 0.95 < low < min(means) - 0.005 and max(means) + 0.004 < high < 1.0
    assert "zoomed" in axis.get_ylabel() and "not start at 0" in axis.get_ylabel()
    assert _overlapping_tick_labels(figure) == []
    [points] = [line for line in axis.get_lines() if line.get_marker() == "o"]
    assert list(points.get_ydata()) == means


def test_history_plot_draws_the_validation_curve_and_the_single_test_evaluation_as_a_star():
    from cnnlib.plots import history_table, plot_history

    nan = float("nan")
    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "train_loss": [2.0, 1.5, 1.2],
            "train_accuracy": [0.3, 0.5, 0.6],
            "val_loss": [1.9, 1.6, 1.4],
            "val_accuracy": [0.35, 0.45, 0.55],
            "test_loss": [nan, nan, 1.45],
            "test_accuracy": [nan, nan, 0.54],
            "lr": [0.1, 0.05, 0.0],
            "train_seconds": [10.0, 10.0, 10.0],
            "images_per_second": [100.0, 100.0, 100.0],
        }
    )
    lines = {line.get_label(): line for line in plot_history(history).axes[1].get_lines()}
    assert list(lines) == ["train", "validation", "test, once"]
    assert list(lines["validation"].get_ydata()) == [0.35, 0.45, 0.55]
    assert list(lines["test, once"].get_xdata()) == [3] and lines["test, once"].get_marker() == "*"
    table = history_table(history)
    assert list(table["val acc. %"]) == [35.0, 45.0, 55.0] and table["test acc. %"].isna().tolist() == [
        True,
        True,
        False,
    ]
