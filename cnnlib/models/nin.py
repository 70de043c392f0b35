"""Network In Network, from Lin, Chen & Yan, "Network In Network", ICLR 2014 (arXiv:1312.4400).

Two ideas of the paper, both here:

* the mlpconv layer (§3.1, Fig. 2): a convolution followed by a small multilayer perceptron
  applied at every position, i.e. two 1×1 convolutions ("cascaded cross channel parametric
  pooling"), ReLU after each of the three;
* global average pooling instead of fully connected layers (§3.2): the last mlpconv layer has
  one map per class and the logits are the spatial means of those maps. There is no linear layer.

Dropout is applied between mlpconv layers (§3.2, §4.1), at the rate ``dropout`` (default 0.5, the
released models'; 0 leaves the dropout layers out). The paper gives the layer widths in
its supplementary material only; the widths below are those of the authors' released models.

IMAGENET FORM (both sides > 64): the authors' released ImageNet model (Caffe Model Zoo, M. Lin's
``nin_imagenet`` prototxt), four mlpconv layers: 96 11×11/4 → 96 → 96, max-pool; 256 5×5 → 256
→ 256, max-pool; 384 3×3 → 384 → 384, max-pool, dropout 0.5; 1024 3×3 → 1024 → classes, then
the global average (a 6×6 average pool at 224). d2l.ai's NiN keeps the first three layers and
makes the whole fourth one ``num_classes`` wide; we keep the released 1024 channels.

SMALL-INPUT FORM (shorter side ≤ 64, or ``small_input=True``): the paper's CIFAR-10 network
(§4.2), as released by the authors (Caffe Model Zoo ``cifar10_nin``, cuda-convnet ``NIN`` layer file):
three mlpconv layers, 192 5×5 → 160 → 96, 3×3/2 max-pool, dropout 0.5; 192 5×5 → 192 → 192,
3×3/2 average pool, dropout 0.5; 192 3×3 → 192 → classes, then the global average.

``variant="paper_bn"`` is the same network with batch norm, as Ioffe & Szegedy ("Batch
normalization", ICML 2015, §3.2) add it to a convolutional network: every convolution, the class maps'
included, is conv (no bias) + batch norm + ReLU. Everything else (widths, pools, dropout, the global
average) is the paper's. It is the network the CPU chapter trains: with the paper's initialisation
the network does not learn at all, and with He's it learns too slowly for a ten-minute budget.

HEAD (``head``, default ``"gap"``: the paper's): ``"fc"`` replaces the global average by a fully
connected layer on the flattened class maps, with dropout 0.5 before it, the other parts of the
network unchanged: the "mlpconv + fully connected + dropout" row of §4.6 and Table 5, which the
paper compares with global average pooling on CIFAR-10 (10.88 % against 10.41 % test error).

All pools round up (``ceil_mode=True``) as Caffe does, giving 224 → 54 → 27 → 13 → 6 and
32 → 16 → 8 (28 → 14 → 7).

WIDTH (``width_mult``, default 1.0: the released models): the width multiplier of MobileNetV1
(Howard et al. 2017, Sec. 3.3) and MobileNetV2 (Sandler et al. 2018, Sec. 6.1) scales the channels
of every convolution of every mlpconv layer, rounded to whole channels, except the last one's
output: one map per class (§3.2).

Initialisation (``init``): the paper adopts Krizhevsky et al.'s procedure of hand-set
Gaussian initialisations (§4.1) and states no values. The released ImageNet model draws nine of
its twelve convolutions from N(0, 0.05²) and the other three (conv1, conv3, the class maps) from
N(0, 0.01²), all biases 0; ``"paper"`` uses 0.05 for every layer. (AlexNet's 0.01 throughout
leaves the CIFAR network's first-layer gradient near 10⁻⁸: it does not train.) See
:mod:`cnnlib.models.init`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from cnnlib.arithmetic import conv_output_size
from cnnlib.models import register
from cnnlib.models.blocks import check_choice, check_probability, check_width_mult, scale_channels
from cnnlib.models.init import normal_init

CLASSES = -1  # stands for num_classes in a configuration table


@dataclass(frozen=True)
class MlpConv:
    """One mlpconv layer: a k×k convolution and two 1×1 convolutions, then an optional pool."""

    channels: int
    kernel_size: int
    stride: int
    padding: int
    mlp_channels: tuple[int, int]
    pool: str | None = None  # "max" or "avg": 3×3 stride 2
    dropout: bool = False

    def scaled(self, width_mult: float) -> MlpConv:
        """This layer with ``width_mult`` times the channels, the class maps (§3.2) left as they are."""
        return replace(
            self,
            channels=scale_channels(self.channels, width_mult),
            mlp_channels=tuple(
                width if width == CLASSES else scale_channels(width, width_mult)
                for width in self.mlp_channels
            ),
        )


# The released ImageNet model (nin_imagenet).
IMAGENET_LAYERS = (
    MlpConv(96, 11, 4, 0, (96, 96), pool="max"),
    MlpConv(256, 5, 1, 2, (256, 256), pool="max"),
    MlpConv(384, 3, 1, 1, (384, 384), pool="max", dropout=True),
    MlpConv(1024, 3, 1, 1, (1024, CLASSES)),
)

# §4.2, the released CIFAR-10 model (cifar10_nin).
CIFAR_LAYERS = (
    MlpConv(192, 5, 1, 2, (160, 96), pool="max", dropout=True),
    MlpConv(192, 5, 1, 2, (192, 192), pool="avg", dropout=True),
    MlpConv(192, 3, 1, 1, (192, CLASSES)),
)

DROPOUT = 0.5  # the released models' rate
PAPER_STD = 0.05  # the released models' usual Gaussian (see the module docstring)
POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}
HEADS = ("gap", "fc")  # §3.2's global average pooling; §4.6's fully connected comparison
VARIANTS = ("paper", "paper_bn")  # paper_bn: batch norm before every ReLU (see the module docstring)


def mlpconv(in_channels: int, layer: MlpConv, num_classes: int, batch_norm: bool = False) -> nn.Sequential:
    """§3.1: conv k×k, ReLU, conv 1×1, ReLU, conv 1×1, ReLU; with ``batch_norm``, a batch norm
    before each ReLU (and no bias in the convolution before it)."""
    widths = [layer.channels, *(num_classes if width == CLASSES else width for width in layer.mlp_channels)]
    shapes = [
        (in_channels, widths[0], layer.kernel_size, layer.stride, layer.padding),
        *((narrow, wide, 1, 1, 0) for narrow, wide in zip(widths, widths[1:])),
    ]
    modules: list[nn.Module] = []
    for inputs, outputs, kernel_size, stride, padding in shapes:
        modules.append(nn.Conv2d(inputs, outputs, kernel_size, stride, padding, bias=not batch_norm))
        if batch_norm:
            modules.append(nn.BatchNorm2d(outputs))
        modules.append(nn.ReLU(inplace=True))
    return nn.Sequential(*modules)


class NiN(nn.Module):
    """Stacked mlpconv layers and a global average pool (§3.2): the class maps are averaged.
    ``head="fc"``: a fully connected layer on the flattened class maps instead (§4.6)."""

    def __init__(
        self,
        layers: tuple[MlpConv, ...],
        num_classes: int,
        in_channels: int,
        input_size: tuple[int, int],
        head: str = "gap",
        batch_norm: bool = False,
        dropout: float = DROPOUT,
    ):
        super().__init__()
        self.features = nn.Sequential()
        height, width = input_size
        for index, layer in enumerate(layers, start=1):
            self.features.add_module(f"mlpconv{index}", mlpconv(in_channels, layer, num_classes, batch_norm))
            height, width = (
                conv_output_size(side, layer.kernel_size, layer.stride, layer.padding)
                for side in (height, width)
            )
            if layer.pool:
                self.features.add_module(
                    f"pool{index}", POOLS[layer.pool](kernel_size=3, stride=2, ceil_mode=True)
                )
                height, width = (conv_output_size(side, 3, 2, ceil_mode=True) for side in (height, width))
            if layer.dropout and dropout:
                self.features.add_module(f"dropout{index}", nn.Dropout(dropout))
            in_channels = layer.mlp_channels[-1]
        self.global_average = head == "gap"
        if self.global_average:
            self.global_pool = nn.AdaptiveAvgPool2d(1)
        else:  # sized for the input; an input too small still builds, and create() names the layer
            self.classifier = nn.Sequential(
                *([nn.Dropout(dropout)] if dropout else []),
                nn.Linear(num_classes * max(height, 1) * max(width, 1), num_classes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.features(x)
        if self.global_average:
            return torch.flatten(self.global_pool(maps), 1)
        return self.classifier(torch.flatten(maps, 1))


def paper_init(model: nn.Module) -> None:
    """The released models' Gaussian, N(0, 0.05²), in every layer; biases 0 (see the module docstring)."""
    normal_init(model, std=PAPER_STD)


@register(
    "nin",
    paper_input=(3, 224, 224),
    paper_init=paper_init,
    title="NiN",
    summary="Network In Network (Lin et al. 2014): mlpconv layers and global average pooling; "
    "variant='paper' or 'paper_bn'",
)
def nin(
    *,
    num_classes: int,
    in_channels: int,
    input_size: tuple[int, int],
    small_input: bool,
    width_mult: float = 1.0,
    head: str = "gap",
    variant: str = "paper",
    dropout: float = DROPOUT,
) -> NiN:
    """NiN for ``num_classes`` classes: the released ImageNet model, or §4.2's CIFAR-10 network for small
    inputs, ``width_mult`` times as wide, with the global average or (``head="fc"``) a fully connected head,
    (``variant="paper_bn"``) batch norm before every ReLU, and dropout at the rate ``dropout`` (0: none)."""
    check_choice("head", head, HEADS)
    check_choice("NiN variant", variant, VARIANTS)
    check_probability("dropout", dropout)
    layers = CIFAR_LAYERS if small_input else IMAGENET_LAYERS
    check_width_mult(
        width_mult,
        "nin",
        {
            f"mlpconv{index} conv{position}": width
            for index, layer in enumerate(layers, start=1)
            for position, width in enumerate((layer.channels, *layer.mlp_channels), start=1)
            if width != CLASSES
        },
    )
    return NiN(
        tuple(layer.scaled(width_mult) for layer in layers),
        num_classes,
        in_channels,
        input_size,
        head,
        batch_norm=variant == "paper_bn",
        dropout=dropout,
    )
