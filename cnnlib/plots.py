"""Figures for the chapters: curves, confusion matrix, misclassified images, filters.

Each function returns a matplotlib ``Figure`` and draws nothing else, so a notebook shows
it and a script can save it.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from cnnlib.data import DataSplit


def plot_history(history: pd.DataFrame, title: str = "") -> Figure:
    """Loss and accuracy per epoch, training beside test."""
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    for split, style in (("train", "-o"), ("test", "-s")):
        loss_axis.plot(history["epoch"], history[f"{split}_loss"], style, label=split, markersize=4)
        accuracy_axis.plot(history["epoch"], history[f"{split}_accuracy"], style, label=split, markersize=4)
    loss_axis.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    accuracy_axis.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for axis in (loss_axis, accuracy_axis):
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


def _show_image(axis, image: torch.Tensor) -> None:
    image = image.cpu()
    if image.shape[0] == 1:
        axis.imshow(image[0], cmap="gray", vmin=0, vmax=255)
    else:
        axis.imshow(image.permute(1, 2, 0))
    axis.axis("off")


def plot_misclassified(data: DataSplit, predictions: torch.Tensor, count: int = 24) -> Figure:
    """The first ``count`` test images the model got wrong, with true and predicted class."""
    wrong = (predictions.cpu() != data.test_y.cpu()).nonzero().flatten()[:count]
    columns = 8
    rows = max(1, math.ceil(len(wrong) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.3, rows * 1.6), layout="constrained", squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, index in zip(axes.flat, wrong.tolist()):
        _show_image(axis, data.test_x[index])
        axis.set_title(f"{data.classes[data.test_y[index]]}→{data.classes[predictions[index]]}", fontsize=8)
    figure.suptitle(f"{len(wrong)} misclassified test images (true→predicted)"
                    if len(wrong) else "No misclassified test images")
    return figure


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The model's first convolution layer."""
    return next(module for module in model.modules() if isinstance(module, nn.Conv2d))


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
        _show_image(axis, kernel if kernel.shape[0] in (1, 3) else kernel[:1])
    figure.suptitle(f"First-layer filters ({tuple(weight.shape[1:])} each)")
    return figure
