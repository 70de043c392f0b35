"""Explanations: where in an image the evidence for a class lies (Grad-CAM), and its overlay.

What a layer sees, its feature maps, is :func:`cnnlib.plots.feature_maps`.

Grad-CAM (Selvaraju et al. 2017, Sec. 3) weights each feature map ``A^k`` of a convolutional
layer by the spatial mean of the class score's gradient with respect to it (Eq. 1), sums the
weighted maps and keeps the positive part (Eq. 2): the regions that raise the score. The map
has the layer's resolution and is upsampled to the input's. It is computed here with captum's
``LayerGradCam``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from captum.attr import LayerAttribution, LayerGradCam
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from cnnlib.arithmetic import forward_hooks
from cnnlib.errors import UserError
from cnnlib.plots import show_image


def last_spatial_layer(model: nn.Module, input_shape: tuple[int, int, int]) -> str:
    """The name of the last module to finish whose output is still a feature map larger than
    1×1: the "last convolutional layer" Grad-CAM explains (Sec. 3), found by one forward pass."""
    finished: list[str] = []

    def note(name: str, module: nn.Module, inputs: tuple, output) -> None:
        if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[-2] * output.shape[-1] > 1:
            finished.append(name)

    named = [(name, module) for name, module in model.named_modules() if name]
    with forward_hooks(model, named, hook=note), torch.no_grad():
        model(torch.zeros(1, *input_shape, device=next(model.parameters()).device))
    if not finished:
        raise UserError(
            "The model has no layer with a feature map larger than 1×1 to explain: use a larger input."
        )
    return finished[-1]


def grad_cam(model: nn.Module, image: torch.Tensor, target: int, layer: str | None = None) -> torch.Tensor:
    """Grad-CAM of class ``target`` for one prepared float image (C, H, W): an (H, W) map
    scaled to [0, 1] (all zeros where nothing raises the score). ``layer`` is a module name as
    in the layer table; by default :func:`last_spatial_layer`."""
    modules = dict(model.named_modules())
    layer = layer or last_spatial_layer(model, tuple(image.shape))
    if layer not in modules:
        raise UserError(
            f"The model has no layer {layer!r}: pick a name from its layer table (cnnlib summary)."
        )
    was_training = model.training
    model.eval()
    try:
        attribution = LayerGradCam(model, modules[layer]).attribute(
            image.unsqueeze(0), target=target, relu_attributions=True
        )
    finally:
        model.train(was_training)
    if attribution.dim() != 4:
        raise UserError(f"Layer {layer!r} does not output feature maps: pick a convolution or pooling layer.")
    heatmap = LayerAttribution.interpolate(attribution, tuple(image.shape[-2:]), "bilinear")[0, 0].detach()
    heatmap = heatmap.clamp_min(0).float().cpu()
    return heatmap / heatmap.max() if heatmap.max() > 0 else heatmap


def plot_grad_cam(
    image: torch.Tensor, heatmap: torch.Tensor, title: str = "", axis: Axes | None = None
) -> Figure:
    """The uint8 image (C, H, W) with its Grad-CAM map laid over it (jet colours, half transparent)."""
    figure = axis.figure if axis is not None else plt.subplots(figsize=(3, 3), layout="constrained")[0]
    axis = axis if axis is not None else figure.axes[0]
    show_image(axis, image)
    axis.imshow(heatmap.cpu().numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1)
    axis.set_title(title or "Grad-CAM", fontsize=9)
    return figure
