"""DenseNet-BC, from Huang, Liu, van der Maaten & Weinberger, "Densely connected
convolutional networks", CVPR 2017, Sec. 3 and Table 1.

Inside a dense block every layer receives the concatenation of all earlier feature maps
and adds ``k`` (the growth rate) of its own (Eq. 2). Each layer is the bottleneck
composite function BN-ReLU-Conv(1×1, 4k)-BN-ReLU-Conv(3×3, k) ("DenseNet-B", Sec. 3).
Between blocks a transition layer BN-ReLU-Conv(1×1)-AvgPool(2×2) keeps ⌊θm⌋ of the m
maps, with compression θ = 0.5 ("DenseNet-BC"). The ImageNet stem is a 7×7 convolution
of stride 2 with 2k channels and a 3×3 max pool of stride 2 (Sec. 3, "Implementation
Details"); a final BN-ReLU precedes the global average pool and the classifier, as in
the authors' code and torchvision. DenseNet-121 has k = 32 and 6, 12, 24, 16 layers in
its four blocks (Table 1).

``width_mult`` (default 1.0: Table 1's k = 32): the width multiplier of MobileNetV1 (Howard
et al. 2017, Sec. 3.3) and MobileNetV2 (Sandler et al. 2018, Sec. 6.1) scales the growth
rate, rounded to whole channels; the stem's 2k, the bottlenecks' 4k and the transitions'
⌊θm⌋ follow from it, so every layer is ``width_mult`` times as wide.

``init="paper"``: "the weight initialization introduced by [He et al. 2015]" (Sec. 4.2),
fan-in, with batch-norm scale 1, shift 0 and a zero classifier bias (torchvision's
choices where the paper is silent). Also ``"pytorch"``, ``"kaiming"`` and ``"xavier"``.

SMALL-INPUT FORM (side ≤ 64, or ``small_input=True``): the stem is a 3×3 convolution of
stride 1 with 2k channels and there is no max pool, as in the paper's own CIFAR
DenseNets (Sec. 3: "a convolution with 16 (or twice the growth rate for DenseNet-BC)
output channels"). The four blocks then run at 1, 1/2, 1/4 and 1/8 of the input side
(32, 16, 8, 4 on CIFAR-10). ``stem_stride=2`` gives that stem convolution a stride of 2, so
that the blocks run at 16, 8, 4 and 2: a quarter of the work, with the same layers and
parameters (the chapter's CPU run uses it; the paper's CIFAR networks start at 32).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from cnnlib.models import register
from cnnlib.models.blocks import (
    ConvBNAct,
    FeaturesPoolClassifier,
    check_stem_stride,
    check_width_mult,
    scale_channels,
)
from cnnlib.models.init import kaiming_init

# Table 1: layers in dense blocks 1-4.
CONFIGS: dict[str, tuple[int, int, int, int]] = {
    "densenet121": (6, 12, 24, 16),
}
GROWTH_RATE = 32  # k, Table 1
BOTTLENECK_WIDTH = 4  # the 1×1 convolution makes 4k maps (Sec. 3, "Bottleneck layers")
COMPRESSION = 0.5  # θ (Sec. 3, "Compression")


class PreActConv(nn.Sequential):
    """BN-ReLU-Conv, the composite function H of Sec. 3 (after He et al. 2016b)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__(
            OrderedDict(
                bn=nn.BatchNorm2d(in_channels),
                act=nn.ReLU(inplace=True),
                conv=nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
            )
        )


class DenseBlock(nn.Sequential):
    """``layers`` bottleneck layers, each fed the concatenation of all earlier maps (Eq. 2)."""

    def __init__(self, layers: int, in_channels: int, growth_rate: int):
        super().__init__(
            *(
                nn.Sequential(
                    PreActConv(in_channels + index * growth_rate, BOTTLENECK_WIDTH * growth_rate, 1),
                    PreActConv(BOTTLENECK_WIDTH * growth_rate, growth_rate, 3),
                )
                for index in range(layers)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = torch.cat([x, layer(x)], 1)
        return x


class Transition(nn.Sequential):
    """BN-ReLU-Conv(1×1) to ``out_channels``, then 2×2 average pooling of stride 2 (Sec. 3)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            OrderedDict(
                reduce=PreActConv(in_channels, out_channels, 1),
                pool=nn.AvgPool2d(2, stride=2),
            )
        )


class DenseNet(FeaturesPoolClassifier):
    """DenseNet-BC (Huang et al. 2017) with ``blocks`` layers per dense block."""

    def __init__(
        self,
        blocks: Sequence[int],
        num_classes: int = 1000,
        in_channels: int = 3,
        growth_rate: int = GROWTH_RATE,
        small_input: bool = False,
        stem_stride: int = 1,
    ):
        channels = 2 * growth_rate
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if small_input:
            layers["conv0"] = ConvBNAct(in_channels, channels, 3, stride=stem_stride)
        else:
            layers["conv0"] = ConvBNAct(in_channels, channels, 7, stride=2)
            layers["pool0"] = nn.MaxPool2d(3, stride=2, padding=1)
        for index, block_layers in enumerate(blocks, start=1):
            layers[f"denseblock{index}"] = DenseBlock(block_layers, channels, growth_rate)
            channels += block_layers * growth_rate
            if index < len(blocks):
                layers[f"transition{index}"] = Transition(channels, int(channels * COMPRESSION))
                channels = int(channels * COMPRESSION)
        layers["norm5"] = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        super().__init__(nn.Sequential(layers), nn.AdaptiveAvgPool2d(1), nn.Linear(channels, num_classes))


def paper_init(model: nn.Module) -> None:
    """Sec. 4.2: He et al. 2015 initialisation (fan-in) of the convolutions; the classifier keeps
    PyTorch's weights and a zero bias (torchvision's choice where the paper is silent)."""
    kaiming_init(model, conv_fan="fan_in", linear_layers=False)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)


@register(
    "densenet121",
    paper_input=(3, 224, 224),
    paper_init=paper_init,
    title="DenseNet-121",
    summary="DenseNet-121 (Huang et al. 2017): DenseNet-BC, k=32, blocks 6/12/24/16",
)
def densenet121(
    *, num_classes: int, in_channels: int, small_input: bool, stem_stride: int = 1, width_mult: float = 1.0
) -> DenseNet:
    """DenseNet-121 (Table 1); see the module docstring for the options."""
    check_width_mult(width_mult, "densenet121", {"the growth rate k": GROWTH_RATE})
    check_stem_stride(stem_stride, small_input)
    return DenseNet(
        CONFIGS["densenet121"],
        num_classes,
        in_channels,
        scale_channels(GROWTH_RATE, width_mult),
        small_input,
        stem_stride,
    )
