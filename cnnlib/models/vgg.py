"""VGG, from Simonyan & Zisserman, "Very deep convolutional networks for large-scale image
recognition", ICLR 2015, Section 2 and Tables 1–2.

Configurations A, B, D and E of Table 1 are ``vgg11``, ``vgg13``, ``vgg16`` and ``vgg19``:
stacks of 3×3 stride-1 convolutions padded by 1 (§2.1), each followed by ReLU, five 2×2
stride-2 max-pools, then FC-4096, FC-4096 and FC-``num_classes`` with dropout 0.5 after the
first two (§3.1). The ``_bn`` names put a batch-norm layer between each convolution and its
ReLU, as torchvision's ``vgg*_bn`` (batch norm postdates the paper). At 224×224 the parameter
and multiply–accumulate counts equal torchvision's model cards, and torchvision's weights
load into these networks (the module names match). torchvision adds an adaptive 7×7 average
pool before the classifier, the identity at 224; here fc6 is sized for the input instead, as
the paper's single-scale network has no such pool.

SMALL-INPUT FORM (inputs whose shorter side is ≤ 64, or ``small_input=True``): the
convolution stack is unchanged. The five pools use ``ceil_mode=True`` so that a 28×28 MNIST digit still
reaches a 1×1 map (28 → 14 → 7 → 4 → 2 → 1; floor rounding would end at 0), and 32×32 gives 1×1×512 as
with floor rounding. The classifier is a single linear layer from those 512 features to the
classes, as in kuangliu/pytorch-cifar's VGG: three 4096-wide layers on a 1×1 map would hold
most of the parameters for no spatial information.

WIDTH (``width_mult``, default 1.0: Table 1's networks): the width multiplier of MobileNetV1
(Howard et al. 2017, Sec. 3.3) and MobileNetV2 (Sandler et al. 2018, Sec. 6.1) scales the channels
of every convolution and the 4096 units of the two hidden fully connected layers, rounded to whole
channels; depth, kernels and pools stay Table 1's.

Initialisation (``init``): ``"paper"`` is §3.1, weights from a zero-mean normal and zero
biases. The paper writes "10⁻² variance"; we follow the common reading of standard deviation
10⁻² (Caffe's Gaussian filler takes a standard deviation, torchvision's classifier uses 0.01).
§3.1 adds that Glorot & Bengio's initialisation works without the authors' pre-training of
the deeper nets from net A: that is ``init="xavier"``. See :mod:`cnnlib.models.init`.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlib.arithmetic import conv_output_size
from cnnlib.models import register
from cnnlib.models.blocks import check_width_mult, scale_channels
from cnnlib.models.init import normal_init

# Table 1: output channels of each 3×3 convolution; "M" is a 2×2 stride-2 max-pool.
CONFIGURATIONS: dict[str, tuple[int | str, ...]] = {
    "A": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "B": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "D": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "E": (
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ),
}

HIDDEN_UNITS = 4096  # FC-4096 (Table 1)
DROPOUT = 0.5  # §3.1
POOLS = 5  # 2×2 stride-2 max-pools (Table 1)


class VGG(nn.Module):
    """A Table 1 convolution stack followed by a classifier."""

    def __init__(self, features: nn.Sequential, classifier: nn.Sequential):
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def conv_stack(
    configuration: tuple[int | str, ...], in_channels: int, batch_norm: bool, ceil_mode: bool
) -> nn.Sequential:
    """The convolutional part of a Table 1 column (torchvision's ``make_layers`` layout)."""
    layers: list[nn.Module] = []
    for entry in configuration:
        if entry == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=ceil_mode))
            continue
        layers.append(nn.Conv2d(in_channels, entry, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(entry))
        layers.append(nn.ReLU(inplace=True))
        in_channels = entry
    return nn.Sequential(*layers)


def last_conv_channels(configuration: tuple[int | str, ...]) -> int:
    """Channels of the last convolution of a Table 1 column (512 in all four at full width)."""
    return [entry for entry in configuration if entry != "M"][-1]


def paper_classifier(in_features: int, num_classes: int, hidden_units: int = HIDDEN_UNITS) -> nn.Sequential:
    """FC-4096, FC-4096 (``hidden_units``), FC-classes with ReLU and dropout 0.5 after the hidden layers
    (§3.1)."""
    return nn.Sequential(
        nn.Linear(in_features, hidden_units),
        nn.ReLU(inplace=True),
        nn.Dropout(DROPOUT),
        nn.Linear(hidden_units, hidden_units),
        nn.ReLU(inplace=True),
        nn.Dropout(DROPOUT),
        nn.Linear(hidden_units, num_classes),
    )


def paper_init(model: nn.Module) -> None:
    """§3.1: weights N(0, 0.01²), biases 0."""
    normal_init(model, std=0.01)


def vgg(
    configuration: str,
    batch_norm: bool,
    *,
    num_classes: int,
    in_channels: int,
    input_size: tuple[int, int],
    small_input: bool,
    width_mult: float = 1.0,
) -> VGG:
    """VGG of Table 1 ``configuration`` ("A", "B", "D" or "E"); see the module docstring."""
    convs = [entry for entry in CONFIGURATIONS[configuration] if entry != "M"]
    check_width_mult(
        width_mult,
        f"VGG configuration {configuration}",
        {f"conv{index}": channels for index, channels in enumerate(convs, start=1)},
    )
    columns = tuple(
        entry if entry == "M" else scale_channels(entry, width_mult)
        for entry in CONFIGURATIONS[configuration]
    )
    features = conv_stack(columns, in_channels, batch_norm, ceil_mode=small_input)
    # Sized for the input; an input too small still builds, and create() names the layer.
    height, width = (max(_side_after_pools(side, small_input), 1) for side in input_size)
    flat = last_conv_channels(columns) * height * width
    classifier = (
        nn.Sequential(nn.Linear(flat, num_classes))
        if small_input
        else paper_classifier(flat, num_classes, scale_channels(HIDDEN_UNITS, width_mult))
    )
    return VGG(features, classifier)


def _side_after_pools(side: int, ceil_mode: bool) -> int:
    for _ in range(POOLS):
        side = conv_output_size(side, 2, 2, ceil_mode=ceil_mode)
    return side


@register(
    "vgg11",
    paper_input=(3, 224, 224),
    paper_init=paper_init,
    title="VGG configuration A",
    summary="VGG configuration A (Simonyan & Zisserman 2015)",
)
def vgg11(
    *,
    num_classes: int,
    in_channels: int,
    input_size: tuple[int, int],
    small_input: bool,
    width_mult: float = 1.0,
) -> VGG:
    """VGG-11, configuration A of Table 1; see the module docstring."""
    return vgg(
        "A",
        False,
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=input_size,
        small_input=small_input,
        width_mult=width_mult,
    )


@register(
    "vgg13",
    paper_input=(3, 224, 224),
    paper_init=paper_init,
    title="VGG configuration B",
    summary="VGG configuration B (Simonyan & Zisserman 2015)",
)
def vgg13(
    *,
    num_classes: int,
    in_channels: int,
    input_size: tuple[int, int],
    small_input: bool,
    width_mult: float = 1.0,
) -> VGG:
    """VGG-13, configuration B of Table 1; see the module docstring."""
    return vgg(
        "B",
        False,
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=input_size,
        small_input=small_input,
        width_mult=width_mult,
    )


@register(
    "vgg16",
    paper_input=(3, 224, 224),
    paper_init=paper_init,
    title="VGG configuration D",
    summary="VGG configuration D (Simonyan & Zisserman 2015)",
)
def vgg16(
    *,
    num_classes: int,
    in_channels: int,
    input_size: tuple[int, int],
    small_input: bool,
    width_mult: float = 1.0,
) -> VGG:
    """VGG-16, configuration D of Table 1; see the module docstring."""
    return vgg(
        "D",
        False,
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=input_size,
        small_input=small_input,
        width_mult=width_mult,
    )


@register(
    "vgg19",
    paper_input=(3, 224, 224),
    paper_init=paper_init,
    title="VGG configuration E",
    summary="VGG configuration E (Simonyan & Zisserman 2015)",
)
def vgg19(
    *,
    num_classes: int,
    in_channels: int,
    input_size: tuple[int, int],
    small_input: bool,
    width_mult: float = 1.0,
) -> VGG:
    """VGG-19, configuration E of Table 1; see the module docstring."""
    return vgg(
        "E",
        False,
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=input_size,
        small_input=small_input,
        width_mult=width_mult,
    )


@register(
    "vgg11_bn",
    paper_input=(3, 224, 224),
    paper_init=paper_init,
    title="VGG configuration A",
    summary="VGG configuration A (Simonyan & Zisserman 2015), batch norm as torchvision",
)
def vgg11_bn(
    *,
    num_classes: int,
    in_channels: int,
    input_size: tuple[int, int],
    small_input: bool,
    width_mult: float = 1.0,
) -> VGG:
    """VGG-11, configuration A of Table 1, with batch norm after every convolution; see the module
    docstring."""
    return vgg(
        "A",
        True,
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=input_size,
        small_input=small_input,
        width_mult=width_mult,
    )


@register(
    "vgg13_bn",
    paper_input=(3, 224, 224),
    paper_init=paper_init,
    title="VGG configuration B",
    summary="VGG configuration B (Simonyan & Zisserman 2015), batch norm as torchvision",
)
def vgg13_bn(
    *,
    num_classes: int,
    in_channels: int,
    input_size: tuple[int, int],
    small_input: bool,
    width_mult: float = 1.0,
) -> VGG:
    """VGG-13, configuration B of Table 1, with batch norm after every convolution; see the module
    docstring."""
    return vgg(
        "B",
        True,
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=input_size,
        small_input=small_input,
        width_mult=width_mult,
    )


@register(
    "vgg16_bn",
    paper_input=(3, 224, 224),
    paper_init=paper_init,
    title="VGG configuration D",
    summary="VGG configuration D (Simonyan & Zisserman 2015), batch norm as torchvision",
)
def vgg16_bn(
    *,
    num_classes: int,
    in_channels: int,
    input_size: tuple[int, int],
    small_input: bool,
    width_mult: float = 1.0,
) -> VGG:
    """VGG-16, configuration D of Table 1, with batch norm after every convolution; see the module
    docstring."""
    return vgg(
        "D",
        True,
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=input_size,
        small_input=small_input,
        width_mult=width_mult,
    )


@register(
    "vgg19_bn",
    paper_input=(3, 224, 224),
    paper_init=paper_init,
    title="VGG configuration E",
    summary="VGG configuration E (Simonyan & Zisserman 2015), batch norm as torchvision",
)
def vgg19_bn(
    *,
    num_classes: int,
    in_channels: int,
    input_size: tuple[int, int],
    small_input: bool,
    width_mult: float = 1.0,
) -> VGG:
    """VGG-19, configuration E of Table 1, with batch norm after every convolution; see the module
    docstring."""
    return vgg(
        "E",
        True,
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=input_size,
        small_input=small_input,
        width_mult=width_mult,
    )
