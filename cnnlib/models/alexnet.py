"""AlexNet, from Krizhevsky, Sutskever & Hinton, "ImageNet classification with deep
convolutional neural networks", NIPS 2012, Section 3 and Fig. 2.

``variant="paper"`` (the default) is the network of the paper on 227×227 inputs (Fig. 2 prints
224, but (224 − 11)/4 + 1 = 54.25 is not a whole number; 227 gives the 55×55 maps of §3.5):

* conv1 96 kernels 11×11×3 stride 4 — conv2 256 5×5×48 — conv3 384 3×3×256 — conv4 384
  3×3×192 — conv5 256 3×3×192 (§3.5), ReLU after every layer (§3.1);
* the two-GPU split (§3.2, Fig. 2) as grouped convolutions: conv2, conv4 and conv5 have
  ``groups=2`` (each kernel sees the maps of its own GPU), conv3 and the fully connected
  layers see both towers;
* local response normalisation after the ReLU of conv1 and conv2 (§3.3: k = 2, n = 5,
  α = 10⁻⁴, β = 0.75), overlapping 3×3 stride-2 max-pooling after both normalisations and
  after conv5 (§3.4);
* fc6 and fc7 of 4096 units, each followed by dropout 0.5 (§4.2), and fc8.
  60,965,224 parameters for 1000 classes.

``variant="paper_bn"`` is the same network with batch norm, as Ioffe & Szegedy ("Batch
normalization", ICML 2015) add it to a convolutional network: every convolution is conv (no bias) +
batch norm + ReLU (their §3.2), and the two response normalisations are removed (with batch norm "it is
not necessary", their §4.2.1). The towers, pools, fully connected layers and dropout are the paper's. It
is the network the CPU chapter trains: without batch norm, the eight layers learn too slowly for a
ten-minute budget.

``variant="torchvision"`` is torchvision's ``alexnet`` (the single-tower "One weird trick"
network, Krizhevsky 2014): 64/192/384/256/256 kernels, conv1 padded by 2 for 224×224 inputs,
no normalisation, an adaptive 6×6 average pool, dropout before fc6 and fc7. Its parameters and
module names equal torchvision's, so torchvision's weights load into it.

SMALL-INPUT FORM (inputs whose shorter side is ≤ 64, or ``small_input=True``): the paper's
conv1 (11×11 stride 4) leaves 6×6 maps of a 32×32 image, which the second pool reduces to
nothing (6 → 2 → 0). As in the common CIFAR practice (kuangliu/pytorch-cifar's 3×3 stride-1 stems),
conv1 becomes 3×3 stride 1 padding 1 with the same number of kernels; everything else,
including the three overlapping pools, is unchanged, so 32 → 15 → 7 → 3 and 28 → 13 → 6 → 2
before fc6.

WIDTH (``width_mult``, default 1.0: the paper's network): the width multiplier of MobileNetV1
(Howard et al. 2017, Sec. 3.3) and MobileNetV2 (Sandler et al. 2018, Sec. 6.1) scales the kernels
of every convolution and the 4096 units of fc6 and fc7, rounded to whole channels; in the paper's
variant every layer is split over the two GPUs (§3.2), so it is rounded to whole channels per tower.

ACTIVATION (``activation``, default ``"relu"``: the paper's): ``"tanh"`` puts the saturating
non-linearity of the paper's Fig. 1 comparison (§3.1) after every convolution and hidden fully
connected layer instead, to repeat that experiment on this network.

Initialisation (``init``): ``"paper"`` is §5: weights N(0, 0.01²), biases 1 in conv2, conv4,
conv5 and the hidden fully connected layers (to give the ReLUs positive inputs early), 0 in
the others. See :mod:`cnnlib.models.init` for the other schemes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from torch import nn

from cnnlib.arithmetic import conv_output_size
from cnnlib.models import register
from cnnlib.models.blocks import (
    FeaturesPoolClassifier,
    ResponseNorm,
    check_choice,
    check_width_mult,
    scale_channels,
)
from cnnlib.models.init import normal_init, weighted_layers


@dataclass(frozen=True)
class ConvLayer:
    """One convolution of the feature extractor and what follows its ReLU."""

    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    normalise: bool = False  # §3.3 response normalisation after the ReLU (left out with batch norm)
    pool: bool = False  # §3.4 overlapping max-pool
    paper_bias: float = 0.0  # §5: the bias this layer starts from


# §3.5 and Fig. 2.
PAPER_LAYERS = (
    ConvLayer(96, 11, stride=4, normalise=True, pool=True),
    ConvLayer(256, 5, padding=2, groups=2, normalise=True, pool=True, paper_bias=1.0),
    ConvLayer(384, 3, padding=1),
    ConvLayer(384, 3, padding=1, groups=2, paper_bias=1.0),
    ConvLayer(256, 3, padding=1, groups=2, pool=True, paper_bias=1.0),
)

# torchvision.models.AlexNet; init="paper" sets its biases by the same positions (§5).
TORCHVISION_LAYERS = (
    ConvLayer(64, 11, stride=4, padding=2, pool=True),
    ConvLayer(192, 5, padding=2, pool=True, paper_bias=1.0),
    ConvLayer(384, 3, padding=1),
    ConvLayer(256, 3, padding=1, paper_bias=1.0),
    ConvLayer(256, 3, padding=1, pool=True, paper_bias=1.0),
)

# The small form's conv1: 3×3 stride 1, "same" padding.
SMALL_STEM = {"kernel_size": 3, "stride": 1, "padding": 1}

HIDDEN_UNITS = 4096  # fc6, fc7 (§3.5)
DROPOUT = 0.5  # §4.2
TORCHVISION_POOLED_SIDE = 6
TOWERS = {"paper": 2, "paper_bn": 2, "torchvision": 1}  # §3.2: each layer's kernels are split over two GPUs
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": partial(nn.ReLU, inplace=True),
    "tanh": nn.Tanh,
}  # §3.1


def response_norm() -> ResponseNorm:
    """§3.3: b = a / (k + α Σ a²)^β over n = 5 adjacent maps, k = 2, α = 10⁻⁴, β = 0.75.

    PyTorch divides α by n (it averages the squares), so the paper's α is passed as n·α.
    """
    size, alpha, beta, k = 5, 1e-4, 0.75, 2.0
    return ResponseNorm(size, alpha=size * alpha, beta=beta, k=k)


def _side_after_features(side: int, layers: tuple[ConvLayer, ...]) -> int:
    for layer in layers:
        side = conv_output_size(side, layer.kernel_size, layer.stride, layer.padding)
        if layer.pool:
            side = conv_output_size(side, 3, 2)  # 3×3 stride-2 overlapping pool (§3.4)
    return side


def _features(
    layers: tuple[ConvLayer, ...], in_channels: int, activation: str, batch_norm: bool
) -> nn.Sequential:
    modules: list[nn.Module] = []
    for layer in layers:
        modules.append(
            nn.Conv2d(
                in_channels,
                layer.out_channels,
                layer.kernel_size,
                layer.stride,
                layer.padding,
                groups=layer.groups,
                bias=not batch_norm,
            )
        )
        if batch_norm:
            modules.append(nn.BatchNorm2d(layer.out_channels))
        modules.append(ACTIVATIONS[activation]())
        if layer.normalise and not batch_norm:
            modules.append(response_norm())
        if layer.pool:
            modules.append(nn.MaxPool2d(kernel_size=3, stride=2))
        in_channels = layer.out_channels
    return nn.Sequential(*modules)


def _classifier(
    in_features: int, hidden_units: int, num_classes: int, dropout_first: bool, activation: str
) -> nn.Sequential:
    """fc6, fc7 (``hidden_units``, 4096 in §3.5, ReLU, dropout 0.5) and fc8. The paper drops the
    outputs of fc6 and fc7 (§4.2); torchvision drops the inputs of fc6 and fc7 instead."""
    modules: list[nn.Module] = []
    for width in (hidden_units, hidden_units):
        hidden = [nn.Linear(in_features, width), ACTIVATIONS[activation]()]
        dropout = nn.Dropout(DROPOUT)
        modules += [dropout, *hidden] if dropout_first else [*hidden, dropout]
        in_features = width
    modules.append(nn.Linear(in_features, num_classes))
    return nn.Sequential(*modules)


def paper_init(model: nn.Module) -> None:
    """§5: weights N(0, 0.01²); biases 1 in conv2, conv4, conv5, fc6 and fc7, 0 elsewhere
    (torchvision's layers take the same places)."""
    normal_init(model, std=0.01)
    linears = [layer for layer in weighted_layers(model) if isinstance(layer, nn.Linear)]
    convs = [layer for layer in weighted_layers(model) if isinstance(layer, nn.Conv2d)]
    for conv, layer in zip(convs, PAPER_LAYERS):
        if conv.bias is not None:  # with batch norm, its shift starts at 0 instead
            nn.init.constant_(conv.bias, layer.paper_bias)
    for hidden in linears[:-1]:
        nn.init.ones_(hidden.bias)


@register(
    "alexnet",
    paper_input=(3, 227, 227),
    paper_init=paper_init,
    title="AlexNet",
    summary="AlexNet (Krizhevsky et al. 2012), two towers as groups=2; variant='paper', 'paper_bn' or "
    "'torchvision'",
)
def alexnet(
    *,
    num_classes: int,
    in_channels: int,
    input_size: tuple[int, int],
    small_input: bool,
    variant: str = "paper",
    width_mult: float = 1.0,
    activation: str = "relu",
) -> FeaturesPoolClassifier:
    """AlexNet for ``num_classes`` classes; see the module docstring for the variants, forms and width."""
    check_choice("AlexNet variant", variant, tuple(TOWERS))
    check_choice("activation", activation, tuple(ACTIVATIONS))
    layers = TORCHVISION_LAYERS if variant == "torchvision" else PAPER_LAYERS
    towers = TOWERS[variant]
    check_width_mult(
        width_mult,
        "alexnet",
        {f"conv{index}": layer.out_channels for index, layer in enumerate(layers, start=1)},
        divisor=towers,
    )
    layers = tuple(
        replace(layer, out_channels=scale_channels(layer.out_channels, width_mult, towers))
        for layer in layers
    )
    if small_input:
        layers = (replace(layers[0], **SMALL_STEM), *layers[1:])
    if variant == "torchvision":
        avgpool: nn.Module = nn.AdaptiveAvgPool2d(TORCHVISION_POOLED_SIDE)
        height = width = TORCHVISION_POOLED_SIDE
    else:
        avgpool = nn.Identity()  # the paper feeds conv5's pooled maps straight to fc6
        # Sized for the input; an input too small still builds, and create() names the layer.
        height, width = (max(_side_after_features(side, layers), 1) for side in input_size)
    return FeaturesPoolClassifier(
        _features(layers, in_channels, activation, batch_norm=variant == "paper_bn"),
        avgpool,
        _classifier(
            layers[-1].out_channels * height * width,
            scale_channels(HIDDEN_UNITS, width_mult, towers),
            num_classes,
            dropout_first=variant == "torchvision",
            activation=activation,
        ),
    )
