"""Figures for the chapters: curves, confusion matrix, misclassified images, filters, feature maps.

Each function returns a matplotlib ``Figure`` and draws nothing else, so a notebook shows
it and a script can save it.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Mapping

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
LOSS_LABELS = {
    "cross_entropy": "cross-entropy loss",
    "mse": "squared error of the probabilities (Brier)",
    "hinge": "multi-class hinge loss",
}


def model_label(name: str, options: Mapping[str, object] | None = None) -> str:
    """A model as a reader names it: its registry name and the options it was built with,
    ``resnet18 (width_mult=0.25, residual=False)``."""
    settings = ", ".join(f"{key}={value}" for key, value in (options or {}).items())
    return f"{name} ({settings})" if settings else name


def _module_label(model: nn.Module) -> str | None:
    """The label of a model made by :func:`cnnlib.models.create`, which records its name and options."""
    name = getattr(model, "cnnlib_name", None)
    return model_label(name, getattr(model, "cnnlib_options", None)) if name else None


def _history_label(history: pd.DataFrame) -> str | None:
    """The label of a history made by :func:`cnnlib.train.train`, which records the model in its ``attrs``."""
    name = history.attrs.get("model")
    return model_label(name, history.attrs.get("model_options")) if name else None


def plot_history(
    history: pd.DataFrame | Mapping[str, pd.DataFrame], title: str | None = None, loss: str | None = None
) -> Figure:
    """Loss and accuracy per epoch: training, the validation split where the run held one out, and the
    test set, which a run of :func:`cnnlib.train.train` evaluates once, after its last epoch (a star).

    ``history`` is one run's history, or several labelled ones (``{"ResNet-18": residual.history,
    "plain-18": plain.history}``) drawn on the same axes, one colour per run, training solid and test
    dashed. ``title`` defaults to the model a history of :func:`cnnlib.train.train` names, or to the labels.
    ``loss`` names the training loss (a ``TrainConfig.loss``); by default the one :func:`cnnlib.train.train`
    stores in ``history.attrs["loss"]``, else cross-entropy; several histories must share it."""
    runs = {"": history} if isinstance(history, pd.DataFrame) else dict(history)
    if not runs:
        raise UserError("plot_history needs at least one history: pass a DataFrame or a dict of them.")
    losses = {loss or frame.attrs.get("loss", "cross_entropy") for frame in runs.values()}
    if len(losses) > 1:
        raise UserError(
            f"These histories were trained on different losses ({', '.join(sorted(losses))}): "
            "plot them one at a time."
        )
    [loss] = losses
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    other_loss = "" if loss == "cross_entropy" else " (cross-entropy)"  # held-out losses are cross-entropy
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (name, frame) in enumerate(runs.items()):
        # One run keeps matplotlib's colours for its splits; several runs get a colour each.
        colour = {} if len(runs) == 1 else {"color": colours[index % len(colours)]}
        prefix = f"{name} " if name else ""
        for split, style in (("train", "-o"), ("val", "--s"), ("test", "--^")):
            if f"{split}_loss" not in frame:
                continue
            shown = frame[["epoch", f"{split}_loss", f"{split}_accuracy"]].dropna()
            once = split == "test" and len(shown) == 1
            label = (
                prefix
                + {"train": "train", "val": "validation", "test": "test, once" if once else "test"}[split]
            )
            # The single test evaluation is a star; a curve keeps the split's line style.
            marker = {"marker": "*", "markersize": 12, "linestyle": "none"} if once else {"markersize": 4}
            fmt = () if once else (style,)
            loss_axis.plot(
                shown["epoch"],
                shown[f"{split}_loss"],
                *fmt,
                label=label + ("" if split == "train" else other_loss),
                **marker,
                **colour,
            )
            accuracy_axis.plot(
                shown["epoch"], shown[f"{split}_accuracy"], *fmt, label=label, **marker, **colour
            )
    loss_axis.set(xlabel="epoch", ylabel=LOSS_LABELS.get(loss, f"{loss} loss"), title="Loss")
    accuracy_axis.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for axis in (loss_axis, accuracy_axis):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    if title is None:
        named = [_history_label(frame) for frame in runs.values()] if len(runs) == 1 else list(runs)
        title = " against ".join(name for name in named if name)
    if title:
        figure.suptitle(title)
    return figure


# The columns of history_table: a history's column, its heading, and how it is shown (accuracy in per cent).
HISTORY_COLUMNS = (
    ("train_loss", "train loss", 3),
    ("train_accuracy", "train acc. %", 1),
    ("val_loss", "val loss", 3),
    ("val_accuracy", "val acc. %", 1),
    ("test_loss", "test loss", 3),
    ("test_accuracy", "test acc. %", 1),
    ("lr", "next lr", None),
    ("train_seconds", "seconds", 0),
    ("images_per_second", "images/s", 0),
)


def history_table(history: pd.DataFrame) -> pd.DataFrame:
    """A run's history as a table a page can show: one row per epoch (the index), short headings, losses to
    three decimals, accuracies in per cent to one, the learning rate to two significant digits, time and
    speed whole; a column the history lacks is left out. Seven columns of at most seven characters each fit
    a notebook page's output box (about 780 px)."""
    table = pd.DataFrame(index=pd.Index(history["epoch"], name="epoch"))
    for column, heading, digits in HISTORY_COLUMNS:
        if column not in history:
            continue
        values = history[column].to_numpy()
        if column.endswith("accuracy"):
            values = values * 100
        table[heading] = (
            [float(f"{value:.2g}") for value in values]
            if digits is None
            else pd.Series(values, index=table.index).round(digits)
        )
        if digits == 0:
            table[heading] = table[heading].astype("Int64")
    return table


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts, rows the true class and columns the predicted one."""
    index = labels.cpu().long() * num_classes + predictions.cpu().long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def plot_confusion(
    labels: torch.Tensor,
    predictions: torch.Tensor,
    classes: list[str],
    title: str = "Confusion matrix (test set)",
) -> Figure:
    """The confusion matrix with its counts written in each cell; ``title`` names what it is of (the model,
    which the predictions do not know)."""
    matrix = confusion_matrix(labels, predictions, len(classes))
    size = max(4.0, 0.5 * len(classes) + 2)
    figure, axis = plt.subplots(figsize=(size, size), layout="constrained")
    axis.imshow(matrix, cmap="Blues")
    threshold = matrix.max().item() / 2
    for (row, column), count in zip(
        torch.cartesian_prod(torch.arange(len(classes)), torch.arange(len(classes))).tolist(),
        matrix.flatten().tolist(),
    ):
        axis.text(
            column,
            row,
            str(count),
            ha="center",
            va="center",
            fontsize=8,
            color="white" if count > threshold else "black",
        )
    axis.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axis.set_yticks(range(len(classes)), classes)
    axis.set(xlabel="predicted class", ylabel="true class", title=title)
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


def plot_misclassified(
    data: DataSplit, predictions: torch.Tensor, count: int = 24, title: str | None = None
) -> Figure:
    """Up to ``count`` test images the model got wrong, from every class in turn, with true and predicted
    class. ``title`` defaults to how many there are; pass one that names the model (the predictions do not
    know it)."""
    wrong = misclassified_per_class(data.test_y, predictions, count)
    columns = 8
    rows = max(1, math.ceil(len(wrong) / columns))
    figure, axes = plt.subplots(
        rows, columns, figsize=(columns * 1.3, rows * 1.6), layout="constrained", squeeze=False
    )
    for axis in axes.flat:
        axis.axis("off")
    for axis, index in zip(axes.flat, wrong.tolist()):
        show_image(axis, data.test_x[index])
        axis.set_title(f"{data.classes[data.test_y[index]]}→{data.classes[predictions[index]]}", fontsize=8)
    if title is None:
        title = (
            f"{len(wrong)} misclassified test images (true→predicted)"
            if len(wrong)
            else "No misclassified test images"
        )
    figure.suptitle(title)
    return figure


def first_conv_name(model: nn.Module) -> str:
    """The qualified name of the model's first convolution layer."""
    return next(name for name, module in model.named_modules() if isinstance(module, nn.Conv2d))


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The model's first convolution layer."""
    return model.get_submodule(first_conv_name(model))


def shape_text(shape: tuple[int, ...]) -> str:
    """A tensor's shape as the pages write it: ``3×5×5``."""
    return "×".join(map(str, shape))


def plot_filters(model: nn.Module, limit: int = 64, title: str | None = None) -> Figure:
    """The first convolution layer's kernels, each scaled to its own range; colour where
    the layer sees three channels, grey otherwise. ``title`` defaults to the model's name
    (a model of :func:`cnnlib.models.create`) and the kernels' shape."""
    weight = first_conv(model).weight.detach().float().cpu()[:limit]
    low = weight.amin(dim=(1, 2, 3), keepdim=True)
    high = weight.amax(dim=(1, 2, 3), keepdim=True)
    scaled = ((weight - low) / (high - low).clamp_min(1e-8) * 255).to(torch.uint8)
    columns = min(8, len(scaled))
    rows = math.ceil(len(scaled) / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(columns * 0.9, rows * 0.9), layout="constrained", squeeze=False
    )
    for axis in axes.flat:
        axis.axis("off")
    for axis, kernel in zip(axes.flat, scaled):
        show_image(axis, kernel if kernel.shape[0] in (1, 3) else kernel[:1])
    if title is None:
        name = _module_label(model)
        title = f"First-layer filters{f' of {name}' if name else ''}, {shape_text(weight.shape[1:])} each"
    figure.suptitle(title)
    return figure


def feature_maps(model: nn.Module, image: torch.Tensor, layer: str) -> torch.Tensor:
    """The output of module ``layer`` (a qualified name, as in the layer table) for one
    prepared float image (C, H, W), without the batch dimension."""
    modules = dict(model.named_modules())
    if layer not in modules:
        raise UserError(
            f"The model has no layer {layer!r}: pick a name from its layer table (cnnlib summary)."
        )
    captured: list[torch.Tensor] = []

    def keep(name: str, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        captured.append(output.detach())

    with forward_hooks(model, [(layer, modules[layer])], hook=keep), torch.no_grad():
        model(image.unsqueeze(0))
    return captured[0][0].float().cpu()


def plot_feature_maps(
    model: nn.Module, data: DataSplit, layer: str, index: int = 0, limit: int = 16, title: str | None = None
) -> Figure:
    """The test image ``index`` and the first ``limit`` feature maps of ``layer`` for it; ``title`` as in
    :func:`plot_image_feature_maps`."""
    return plot_image_feature_maps(
        model, data.test_x[index], data.preprocess, layer, data.classes[data.test_y[index]], limit, title
    )


def plot_image_feature_maps(
    model: nn.Module,
    image: torch.Tensor,
    preprocess: Preprocess,
    layer: str,
    label: str = "",
    limit: int = 16,
    title: str | None = None,
) -> Figure:
    """A uint8 image (C, H, W), captioned ``label``, and the first ``limit`` feature maps of ``layer`` for it.
    ``title`` defaults to the layer, the model's name (a model of :func:`cnnlib.models.create`) and the maps'
    shape."""
    image = image.to(next(model.parameters()).device)
    maps = feature_maps(model, preprocess.normalise(image.unsqueeze(0))[0], layer)[:limit]
    columns = min(8, len(maps) + 1)
    rows = math.ceil((len(maps) + 1) / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(columns * 1.2, rows * 1.3), layout="constrained", squeeze=False
    )
    for axis in axes.flat:
        axis.axis("off")
    show_image(axes.flat[0], image)
    axes.flat[0].set_title(label, fontsize=8)
    for axis, feature_map in zip(list(axes.flat)[1:], maps):
        axis.imshow(feature_map.numpy(), cmap="viridis")
    if title is None:
        name = _module_label(model)
        title = f"Feature maps of {layer}{f' in {name}' if name else ''}, {shape_text(maps.shape[1:])} each"
    figure.suptitle(title)
    return figure


def plot_stage_costs(
    table: pd.DataFrame, stage_of: Callable[[str], str] = lambda name: name.split(".")[0], title: str = ""
) -> Figure:
    """Parameters and MACs summed per stage of a layer table (by default the first part of
    each layer's name), side by side: where a network keeps its weights and spends its work."""
    stages = (
        table.assign(stage=table["name"].map(stage_of)).groupby("stage", sort=False)[["params", "macs"]].sum()
    )
    figure, (params_axis, macs_axis) = plt.subplots(
        1, 2, figsize=(11, 0.35 * len(stages) + 1.5), layout="constrained"
    )
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
    """A sweep's summary (:func:`cnnlib.sweep.summarise`): the mean of each value of ``x`` as a point, its
    minimum–maximum over the seeds as an error bar, every run's count below. Points, not bars, so that the
    axis can zoom to the values (seven optimisers within a point of 98 % show no difference on a 0–1 axis);
    a zoomed axis says so in its label. Long values are wrapped, not rotated, so that labels never collide."""
    labels = [textwrap.fill(str(label), 14) for label in summary[x]]
    width = max(4.0, 1.05 * len(summary) + 1.5)
    figure, axis = plt.subplots(figsize=(width, 3.4), layout="constrained")
    spread = [summary["mean"] - summary["min"], summary["max"] - summary["mean"]]
    positions = range(len(labels))
    axis.errorbar(positions, summary["mean"], yerr=spread, fmt="o", capsize=5, color="tab:blue", markersize=6)
    low, high = float(summary["min"].min()), float(summary["max"].max())
    margin = max(0.1 * (high - low), 0.002)
    zoomed = low - margin > 0 and (high - low) < 0.5 * high
    ylabel = f"{metric} (mean, min–max)"
    if zoomed:
        axis.set_ylim(low - margin, high + margin)
        ylabel += "\naxis zoomed: it does not start at 0"
    else:
        axis.set_ylim(bottom=min(0.0, low - margin))
    axis.set(xlabel=x, ylabel=ylabel, title=title)
    axis.set_xticks(
        positions, [f"{label}\n{runs} runs" for label, runs in zip(labels, summary["runs"])], fontsize="small"
    )
    axis.set_xlim(-0.6, len(labels) - 0.4)
    axis.grid(axis="y", alpha=0.3)
    return figure


def plot_spread(
    frame: pd.DataFrame, x: str, panels: dict[str, str], by: str, categorical_x: bool = False, title: str = ""
) -> Figure:
    """One panel per column of ``panels`` (column → axis label): for each value of ``by``
    a line through the mean over the rows sharing an ``x`` (the seeds of a study), with
    their minimum–maximum shaded. ``categorical_x`` spaces the values of ``x`` evenly, in
    order (a family of depths such as 10, 14, 16, ..., 152)."""
    figure, axes = plt.subplots(
        1, len(panels), figsize=(4.6 * len(panels), 3.4), layout="constrained", squeeze=False
    )
    ticks = sorted(frame[x].unique())
    position = (
        {value: index for index, value in enumerate(ticks)}
        if categorical_x
        else {value: value for value in ticks}
    )
    for axis, (column, label) in zip(axes[0], panels.items()):
        for name, group in frame.groupby(by, sort=False):
            stats = group.groupby(x)[column].agg(["mean", "min", "max"])
            where = [position[value] for value in stats.index]
            (line,) = axis.plot(where, stats["mean"], "-o", markersize=4, label=str(name))
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
        axis.annotate(
            row.model,
            (row.macs / 1e6, row.images_per_second),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=8,
        )
    if reference is not None:
        [anchor] = frame[frame["model"] == reference].itertuples()
        span = torch.linspace(float(macs.min()) / 1.5, float(macs.max()) * 1.5, 2)
        axis.plot(
            span,
            anchor.images_per_second * (anchor.macs / 1e6) / span,
            "--",
            color="grey",
            label=f"same MACs per second as {reference}",
        )
        axis.legend(fontsize=8)
    axis.set(
        xscale="log",
        yscale="log",
        xlabel="MACs per image (millions)",
        ylabel="training images per second",
        title=title,
    )
    axis.grid(alpha=0.3, which="both")
    return figure
