"""Figures for the chapters: curves, confusion matrix, misclassified images, filters, feature maps.

Each function returns a matplotlib ``Figure`` and draws nothing else, so a notebook shows
it and a script can save it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import matplotlib.pyplot as plt
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import nn

from cnnlib.arithmetic import forward_hooks
from cnnlib.data import DataSplit
from cnnlib.errors import UserError
from cnnlib.record import Preprocess

# The y-axis of a run's loss curves, by TrainConfig.loss; the test loss is always cross-entropy
# (cnnlib.evaluate), so a run trained on another loss says so in its legend.
LOSS_LABELS = {"cross_entropy": "cross-entropy loss", "mse": "squared error of the probabilities (Brier)",
               "hinge": "multi-class hinge loss"}


def plot_history(history: pd.DataFrame, title: str = "", loss: str | None = None) -> Figure:
    """Loss and accuracy per epoch, training beside test. ``loss`` names the training loss
    (a ``TrainConfig.loss``); by default the one :func:`cnnlib.train.train` stores in
    ``history.attrs["loss"]``, else cross-entropy."""
    loss = loss or history.attrs.get("loss", "cross_entropy")
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    test_label = "test" if loss == "cross_entropy" else "test (cross-entropy)"
    for split, style, label in (("train", "-o", "train"), ("test", "-s", test_label)):
        loss_axis.plot(history["epoch"], history[f"{split}_loss"], style, label=label, markersize=4)
        accuracy_axis.plot(history["epoch"], history[f"{split}_accuracy"], style, label=split, markersize=4)
    loss_axis.set(xlabel="epoch", ylabel=LOSS_LABELS.get(loss, f"{loss} loss"), title="Loss")
    accuracy_axis.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for axis in (loss_axis, accuracy_axis):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend()
    if title:
        figure.suptitle(title)
    return figure


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts, rows the true class and columns the predicted one."""
    index = labels.cpu().long() * num_classes + predictions.cpu().long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def plot_confusion(labels: torch.Tensor, predictions: torch.Tensor, classes: list[str]) -> Figure:
    """The confusion matrix with its counts written in each cell."""
    matrix = confusion_matrix(labels, predictions, len(classes))
    size = max(4.0, 0.5 * len(classes) + 2)
    figure, axis = plt.subplots(figsize=(size, size), layout="constrained")
    axis.imshow(matrix, cmap="Blues")
    threshold = matrix.max().item() / 2
    for (row, column), count in zip(torch.cartesian_prod(torch.arange(len(classes)), torch.arange(len(classes))).tolist(),
                                    matrix.flatten().tolist()):
        axis.text(column, row, str(count), ha="center", va="center", fontsize=8,
                  color="white" if count > threshold else "black")
    axis.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axis.set_yticks(range(len(classes)), classes)
    axis.set(xlabel="predicted class", ylabel="true class", title="Confusion matrix (test set)")
    return figure


def show_image(axis: Axes, image: torch.Tensor) -> None:
    """Draw a uint8 image (C, H, W) on ``axis``: grey on a 0–255 scale for one channel, colour for three."""
    image = image.cpu().numpy()
    if image.shape[0] == 1:
        axis.imshow(image[0], cmap="gray", vmin=0, vmax=255)
    else:
        axis.imshow(image.transpose(1, 2, 0))
    axis.axis("off")


def misclassified_per_class(labels: torch.Tensor, predictions: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of up to ``count`` misclassified examples taken from every true class in
    turn (the first wrong one of each class, then the second, ...), so that a test set
    sorted by class is not shown as its first class only."""
    labels, predictions = labels.cpu(), predictions.cpu()
    wrong = (predictions != labels).nonzero().flatten()
    per_class = [wrong[labels[wrong] == label] for label in labels[wrong].unique().tolist()]
    rounds = max((len(indices) for indices in per_class), default=0)
    order = [indices[rank] for rank in range(rounds) for indices in per_class if rank < len(indices)]
    return torch.stack(order[:count]) if order and count > 0 else torch.zeros(0, dtype=torch.long)


def plot_misclassified(data: DataSplit, predictions: torch.Tensor, count: int = 24) -> Figure:
    """Up to ``count`` test images the model got wrong, from every class in turn, with true and predicted class."""
    wrong = misclassified_per_class(data.test_y, predictions, count)
    columns = 8
    rows = max(1, math.ceil(len(wrong) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.3, rows * 1.6), layout="constrained", squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, index in zip(axes.flat, wrong.tolist()):
        show_image(axis, data.test_x[index])
        axis.set_title(f"{data.classes[data.test_y[index]]}→{data.classes[predictions[index]]}", fontsize=8)
    figure.suptitle(f"{len(wrong)} misclassified test images (true→predicted)"
                    if len(wrong) else "No misclassified test images")
    return figure


def first_conv_name(model: nn.Module) -> str:
    """The qualified name of the model's first convolution layer."""
    return next(name for name, module in model.named_modules() if isinstance(module, nn.Conv2d))


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The model's first convolution layer."""
    return model.get_submodule(first_conv_name(model))


def plot_filters(model: nn.Module, limit: int = 64) -> Figure:
    """The first convolution layer's kernels, each scaled to its own range; colour where
    the layer sees three channels, grey otherwise."""
    weight = first_conv(model).weight.detach().float().cpu()[:limit]
    low = weight.amin(dim=(1, 2, 3), keepdim=True)
    high = weight.amax(dim=(1, 2, 3), keepdim=True)
    scaled = ((weight - low) / (high - low).clamp_min(1e-8) * 255).to(torch.uint8)
    columns = min(8, len(scaled))
    rows = math.ceil(len(scaled) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 0.9, rows * 0.9), layout="constrained", squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, kernel in zip(axes.flat, scaled):
        show_image(axis, kernel if kernel.shape[0] in (1, 3) else kernel[:1])
    figure.suptitle(f"First-layer filters ({tuple(weight.shape[1:])} each)")
    return figure


def feature_maps(model: nn.Module, image: torch.Tensor, layer: str) -> torch.Tensor:
    """The output of module ``layer`` (a qualified name, as in the layer table) for one
    prepared float image (C, H, W), without the batch dimension."""
    modules = dict(model.named_modules())
    if layer not in modules:
        raise UserError(f"The model has no layer {layer!r}: pick a name from its layer table (cnnlib summary).")
    captured: list[torch.Tensor] = []

    def keep(name: str, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        captured.append(output.detach())

    with forward_hooks(model, [(layer, modules[layer])], hook=keep), torch.no_grad():
        model(image.unsqueeze(0))
    return captured[0][0].float().cpu()


def plot_feature_maps(model: nn.Module, data: DataSplit, layer: str, index: int = 0, limit: int = 16) -> Figure:
    """The test image ``index`` and the first ``limit`` feature maps of ``layer`` for it."""
    return plot_image_feature_maps(model, data.test_x[index], data.preprocess, layer,
                                   data.classes[data.test_y[index]], limit)


def plot_image_feature_maps(model: nn.Module, image: torch.Tensor, preprocess: Preprocess, layer: str,
                            title: str = "", limit: int = 16) -> Figure:
    """A uint8 image (C, H, W) and the first ``limit`` feature maps of ``layer`` for it."""
    image = image.to(next(model.parameters()).device)
    maps = feature_maps(model, preprocess.normalise(image.unsqueeze(0))[0], layer)[:limit]
    columns = min(8, len(maps) + 1)
    rows = math.ceil((len(maps) + 1) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.2, rows * 1.3), layout="constrained", squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    show_image(axes.flat[0], image)
    axes.flat[0].set_title(title, fontsize=8)
    for axis, feature_map in zip(list(axes.flat)[1:], maps):
        axis.imshow(feature_map.numpy(), cmap="viridis")
    figure.suptitle(f"Feature maps of {layer} ({tuple(maps.shape[1:])} each)")
    return figure


def plot_stage_costs(table: pd.DataFrame, stage_of: Callable[[str], str] = lambda name: name.split(".")[0],
                     title: str = "") -> Figure:
    """Parameters and MACs summed per stage of a layer table (by default the first part of
    each layer's name), side by side: where a network keeps its weights and spends its work."""
    stages = table.assign(stage=table["name"].map(stage_of)).groupby("stage", sort=False)[["params", "macs"]].sum()
    figure, (params_axis, macs_axis) = plt.subplots(1, 2, figsize=(11, 0.35 * len(stages) + 1.5), layout="constrained")
    params_axis.barh(stages.index, stages["params"] / 1e6, color="tab:blue")
    macs_axis.barh(stages.index, stages["macs"] / 1e6, color="tab:orange")
    params_axis.set(xlabel="parameters (millions)", title="Parameters per stage")
    macs_axis.set(xlabel="multiply–accumulates (millions)", title="MACs per stage")
    for axis in (params_axis, macs_axis):
        axis.invert_yaxis()
        axis.grid(axis="x", alpha=0.3)
    macs_axis.set_yticklabels([])
    if title:
        figure.suptitle(title)
    return figure


def plot_sweep(summary: pd.DataFrame, x: str, metric: str = "test accuracy", title: str = "") -> Figure:
    """A sweep's summary (:func:`cnnlib.sweep.summarise`): the mean of each value of ``x``
    as a bar, its minimum–maximum over the seeds as an error bar, every run's count below."""
    figure, axis = plt.subplots(figsize=(max(4.0, 0.9 * len(summary) + 1.5), 3.2), layout="constrained")
    labels = summary[x].astype(str)
    spread = [summary["mean"] - summary["min"], summary["max"] - summary["mean"]]
    axis.bar(labels, summary["mean"], yerr=spread, capsize=4, color="tab:blue", alpha=0.8)
    axis.set(xlabel=x, ylabel=f"{metric} (mean, min–max)", title=title)
    axis.set_xticks(range(len(labels)), [f"{label}\n{runs} runs" for label, runs in zip(labels, summary["runs"])])
    axis.grid(axis="y", alpha=0.3)
    return figure


def plot_spread(frame: pd.DataFrame, x: str, panels: dict[str, str], by: str, categorical_x: bool = False,
                title: str = "") -> Figure:
    """One panel per column of ``panels`` (column → axis label): for each value of ``by``
    a line through the mean over the rows sharing an ``x`` (the seeds of a study), with
    their minimum–maximum shaded. ``categorical_x`` spaces the values of ``x`` evenly, in
    order (a family of depths such as 10, 14, 16, ..., 152)."""
    figure, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.4), layout="constrained", squeeze=False)
    ticks = sorted(frame[x].unique())
    position = {value: index for index, value in enumerate(ticks)} if categorical_x else {value: value for value in ticks}
    for axis, (column, label) in zip(axes[0], panels.items()):
        for name, group in frame.groupby(by, sort=False):
            stats = group.groupby(x)[column].agg(["mean", "min", "max"])
            where = [position[value] for value in stats.index]
            line, = axis.plot(where, stats["mean"], "-o", markersize=4, label=str(name))
            axis.fill_between(where, stats["min"], stats["max"], color=line.get_color(), alpha=0.2)
        axis.set(xlabel=x, ylabel=label)
        if len(ticks) <= 12:
            axis.set_xticks([position[value] for value in ticks], [str(value) for value in ticks])
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    if title:
        figure.suptitle(title)
    return figure


def plot_speed_against_macs(frame: pd.DataFrame, reference: str | None = None, title: str = "") -> Figure:
    """Training images per second against MACs per image, one labelled point per network
    (columns ``model``, ``macs``, ``images_per_second``), both axes logarithmic: MACs are not
    time. ``reference`` names a network through which a dashed line of slope −1 is drawn:
    where every network would lie if it turned MACs into time at that network's rate."""
    figure, axis = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    macs = frame["macs"] / 1e6
    axis.scatter(macs, frame["images_per_second"])
    for row in frame.itertuples():
        axis.annotate(row.model, (row.macs / 1e6, row.images_per_second), textcoords="offset points", xytext=(4, 4),
                      fontsize=8)
    if reference is not None:
        [anchor] = frame[frame["model"] == reference].itertuples()
        span = torch.linspace(float(macs.min()) / 1.5, float(macs.max()) * 1.5, 2)
        axis.plot(span, anchor.images_per_second * (anchor.macs / 1e6) / span, "--", color="grey",
                  label=f"same MACs per second as {reference}")
        axis.legend(fontsize=8)
    axis.set(xscale="log", yscale="log", xlabel="MACs per image (millions)", ylabel="training images per second",
             title=title)
    axis.grid(alpha=0.3, which="both")
    return figure
