"""ResNet, from He, Zhang, Ren & Sun, "Deep residual learning for image recognition",
CVPR 2016, Table 1 and Sec. 3-4: the ImageNet networks of Table 1 and the CIFAR-10 networks
of Sec. 4.2.

A stem (``conv1``), four stages ``conv2_x`` … ``conv5_x`` of 64, 128, 256 and 512 channels
(× 4 after a bottleneck) that halve the resolution from ``conv3_x`` on, a global average
pool and one fully-connected layer (Table 1). Two residual units (Fig. 5):

* ``"basic"``: two 3×3 convolutions (ResNet-18/34);
* ``"bottleneck"``: 1×1 (reduce), 3×3, 1×1 (expand ×4) (ResNet-50/101/152, Sec. 4.1
  "Deeper Bottleneck Architectures").

Batch norm follows every convolution and ReLU follows the addition (Sec. 3.4). Shortcuts
are identities, and 1×1 projections where the shape changes (option B, Sec. 3.3, also
in a bottleneck network's first unit, whose output is 4× wider).

Options of the Table 1 networks (:func:`resnet`):

* ``width_mult`` (default 1.0: Table 1's 64, 128, 256 and 512): the width multiplier of
  MobileNetV1 (Howard et al. 2017, Sec. 3.3) and MobileNetV2 (Sandler et al. 2018,
  Sec. 6.1) scales the stem and every stage, rounded to whole channels, so the stages
  keep Table 1's ratios (× 2, × 4, × 8) up to the rounding. The paper's CIFAR-10
  networks (Sec. 4.2) start at 16 channels: ``width_mult=0.25`` costs 1/16 of the
  multiply-adds, and the course's depth study uses it to train all nine depths on a CPU.
* ``residual=False`` drops every shortcut: the *plain* network of the same depth
  (Fig. 3 middle, Fig. 4 left, Table 2).
* ``stride_on``: where a bottleneck unit that halves the resolution puts its stride.
  ``"1x1"`` (the default) on the first 1×1 convolution, as in the paper's reference
  models; ``"3x3"`` on the 3×3 convolution, as in torchvision's "ResNet v1.5". Both have
  the same parameters; only ``"3x3"`` matches torchvision's MAC counts (ResNet-50:
  4.089 G against the paper's 3.8 × 10⁹ FLOPs, Table 1). Basic units are unaffected.
* ``init="paper"`` (applied by :func:`cnnlib.models.create`, for every network of this
  module): He et al. 2015 normal initialisation with the fan-out (Sec. 3.4: "We initialize
  the weights as in [13]"), batch-norm scale 1 and shift 0; the final fully-connected layer
  keeps PyTorch's default, as the paper names none. Also ``"pytorch"``, ``"kaiming"`` and
  ``"xavier"`` (:mod:`cnnlib.models.init`, which also covers the classifier).
* ``zero_init_residual=True`` builds each residual branch's last batch norm with scale 0, so
  that every unit starts as an identity (Goyal et al. 2017, Sec. 5.1).

Configurations (blocks per stage conv2_x..conv5_x; depth = 2 + 2·Σ for basic units,
2 + 3·Σ for bottlenecks, counting the stem convolution and the classifier):

===========  ==========  ==============  ======================================
name         unit        blocks          source
===========  ==========  ==============  ======================================
resnet10     basic       1, 1, 1, 1      timm's resnet10t stages (its deep stem aside)
resnet14     bottleneck  1, 1, 1, 1      timm's resnet14t stages (its deep stem aside)
resnet16     basic       2, 2, 2, 1      this course: resnet18 less one conv5_x unit
resnet18     basic       2, 2, 2, 2      Table 1
resnet26     bottleneck  2, 2, 2, 2      timm's resnet26
resnet34     basic       3, 4, 6, 3      Table 1
resnet50     bottleneck  3, 4, 6, 3      Table 1
resnet101    bottleneck  3, 4, 23, 3     Table 1
resnet152    bottleneck  3, 8, 36, 3     Table 1
plain18/34   basic       as resnet18/34  Table 2's plain networks (no shortcuts)
===========  ==========  ==============  ======================================

SMALL-INPUT FORM (inputs of side ≤ 64, or ``small_input=True``): the stem is one 3×3
convolution of stride 1 (with the stem's channels) and there is no max pool, so ``conv2_x`` works
at the full input resolution (32×32 on CIFAR-10, 28×28 on MNIST) and ``conv5_x`` at
1/8 of it (4×4). The paper's own CIFAR networks (Sec. 4.2) also replace the 7×7/2 stem
and max pool by 3×3 convolutions, but with 16/32/64 channels in three stages; for the
Table 1 families we keep their four stages and widths and use the common CIFAR
ResNet-18 stem of kuangliu/pytorch-cifar.

CIFAR-10 NETWORKS (Sec. 4.2, Table 6): ``resnet20``, ``resnet32``, ``resnet44``, ``resnet56`` and
``resnet110`` have 6n + 2 layers (n = 3, 5, 7, 9, 18): a 3×3 convolution with 16 filters, three
stages of 2n 3×3 convolutions (n basic units) with 16, 32 and 64 filters on 32×32, 16×16 and
8×8 maps (the first convolution of the second and third stages has stride 2), global average
pooling and a 10-way fully-connected layer. Their shortcuts are option A (Sec. 3.3 and 4.2):
the identity, and where the shape changes the input subsampled with stride 2 and zero-padded
to the new number of channels, so a shortcut has no parameters and a plain twin (``plain20``
… ``plain110``, Fig. 6 left) has exactly the parameters of its residual network. They are
built for 32×32 inputs and have no other form; ``width_mult`` scales the 16/32/64 filters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnnlib.errors import UserError
from cnnlib.models import register
from cnnlib.models.blocks import ConvBNAct, check_choice, check_width_mult, scale_channels
from cnnlib.models.init import kaiming_init

# Table 1: channels of conv1 and of conv2_x..conv5_x (before a bottleneck's ×4 expansion).
STEM_CHANNELS = 64
STAGE_CHANNELS = (64, 128, 256, 512)
EXPANSION = {"basic": 1, "bottleneck": 4}
STRIDE_PLACES = ("1x1", "3x3")
# Sec. 4.2: the CIFAR-10 networks' first convolution and three stages.
CIFAR_STEM_CHANNELS = 16
CIFAR_STAGE_CHANNELS = (16, 32, 64)

# (unit, blocks per stage conv2_x..conv5_x, residual); see the module docstring.
CONFIGS: dict[str, tuple[str, tuple[int, int, int, int], bool]] = {
    "resnet10": ("basic", (1, 1, 1, 1), True),
    "resnet14": ("bottleneck", (1, 1, 1, 1), True),
    "resnet16": ("basic", (2, 2, 2, 1), True),
    "resnet18": ("basic", (2, 2, 2, 2), True),
    "resnet26": ("bottleneck", (2, 2, 2, 2), True),
    "resnet34": ("basic", (3, 4, 6, 3), True),
    "resnet50": ("bottleneck", (3, 4, 6, 3), True),
    "resnet101": ("bottleneck", (3, 4, 23, 3), True),
    "resnet152": ("bottleneck", (3, 8, 36, 3), True),
    "plain18": ("basic", (2, 2, 2, 2), False),
    "plain34": ("basic", (3, 4, 6, 3), False),
}
# Sec. 4.2, Table 6: n basic units per stage of the 6n + 2-layer CIFAR-10 networks.
CIFAR_UNITS = {20: 3, 32: 5, 44: 7, 56: 9, 110: 18}


class ResidualUnit(nn.Module):
    """``relu(branch(x) + shortcut(x))`` (Eq. 1-2); without a shortcut, the plain
    network's ``relu(branch(x))``."""

    def __init__(self, branch: nn.Sequential, shortcut: nn.Module | None):
        super().__init__()
        self.branch = branch
        self.shortcut = shortcut
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.relu(out)


class ZeroPadShortcut(nn.Module):
    """Option A (Sec. 3.3, used on CIFAR-10 in Sec. 4.2): the input subsampled with ``stride`` and
    zero-padded from ``in_channels`` to ``out_channels``; no parameters."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.extra_channels, self.stride = out_channels - in_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, 0, self.extra_channels))


def _branch(
    block: str, in_channels: int, width: int, stride: int, stride_on: str, zero_init_residual: bool
) -> nn.Sequential:
    """The residual function F of one unit (Fig. 5); its last batch norm has no ReLU."""
    if block == "basic":
        units = [ConvBNAct(in_channels, width, 3, stride), ConvBNAct(width, width, 3, activation=None)]
    else:
        reduce_stride, middle_stride = (stride, 1) if stride_on == "1x1" else (1, stride)
        units = [
            ConvBNAct(in_channels, width, 1, reduce_stride),
            ConvBNAct(width, width, 3, middle_stride),
            ConvBNAct(width, width * EXPANSION["bottleneck"], 1, activation=None),
        ]
    if zero_init_residual:
        nn.init.zeros_(units[-1].bn.weight)
    return nn.Sequential(*units)


def _shortcut(in_channels: int, out_channels: int, stride: int, option: str) -> nn.Module:
    """Identity where the shape is kept; where it changes, a 1×1 projection with batch norm
    (option B, Sec. 3.3) or the parameter-free zero padding of option A."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if option == "A":
        return ZeroPadShortcut(in_channels, out_channels, stride)
    return ConvBNAct(in_channels, out_channels, 1, stride, activation=None)


class ResNet(nn.Module):
    """A stem ``conv1``, stages ``conv2_x``, ``conv3_x`` … of residual units, global average
    pooling and the classifier ``fc`` (He et al. 2016, Table 1 and Sec. 4.2)."""

    def __init__(self, stem: nn.Module, stages: Sequence[nn.Sequential], channels: int, num_classes: int):
        super().__init__()
        self.conv1 = stem
        for index, stage in enumerate(stages, start=2):
            self.add_module(f"conv{index}_x", stage)
        self.stages = len(stages)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for index in range(2, 2 + self.stages):
            x = self.get_submodule(f"conv{index}_x")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _stages(
    block: str,
    blocks: Sequence[int],
    widths: Sequence[int],
    channels: int,
    *,
    residual: bool,
    shortcut: str,
    stride_on: str = "1x1",
    zero_init_residual: bool = False,
    stem_pool: bool = False,
) -> tuple[list[nn.Sequential], int]:
    """The stages of ``blocks[i]`` units of width ``widths[i]``, each after the first halving the
    resolution in its first unit, and the channels they end with."""
    stages = []
    for stage, (width, count) in enumerate(zip(widths, blocks)):
        units: list[nn.Module] = []
        if stage == 0 and stem_pool:
            units.append(nn.MaxPool2d(3, stride=2, padding=1))  # Table 1: first layer of conv2_x
        for index in range(count):
            stride = 2 if stage > 0 and index == 0 else 1
            out_channels = width * EXPANSION[block]
            units.append(
                ResidualUnit(
                    _branch(block, channels, width, stride, stride_on, zero_init_residual),
                    _shortcut(channels, out_channels, stride, shortcut) if residual else None,
                )
            )
            channels = out_channels
        stages.append(nn.Sequential(*units))
    return stages, channels


def resnet(
    block: str,
    layers: Sequence[int],
    *,
    num_classes: int,
    in_channels: int,
    small_input: bool,
    residual: bool = True,
    stride_on: str = "1x1",
    width_mult: float = 1.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """A Table 1 ResNet of ``block`` units ("basic" or "bottleneck") with ``layers`` units in its
    four stages; ``residual=False`` gives the plain network. See the module docstring."""
    check_choice("ResNet block", block, tuple(EXPANSION))
    check_choice("stride_on", stride_on, STRIDE_PLACES)
    if (
        not isinstance(layers, Sequence)
        or len(layers) != len(STAGE_CHANNELS)
        or not all(isinstance(n, int) and n > 0 for n in layers)
    ):
        raise UserError(f"ResNet layers {layers!r} must be four positive block counts, e.g. [2, 2, 2, 2].")
    check_width_mult(
        width_mult,
        "ResNet",
        {
            "conv1": STEM_CHANNELS,
            **{f"conv{stage}_x": channels for stage, channels in enumerate(STAGE_CHANNELS, start=2)},
        },
    )
    channels = scale_channels(STEM_CHANNELS, width_mult)
    stem = (
        ConvBNAct(in_channels, channels, 3) if small_input else ConvBNAct(in_channels, channels, 7, stride=2)
    )
    stages, channels = _stages(
        block,
        layers,
        [scale_channels(width, width_mult) for width in STAGE_CHANNELS],
        channels,
        residual=residual,
        shortcut="B",
        stride_on=stride_on,
        zero_init_residual=zero_init_residual and residual,
        stem_pool=not small_input,
    )
    return ResNet(stem, stages, channels, num_classes)


def cifar_resnet(
    units: int, *, num_classes: int, in_channels: int, residual: bool = True, width_mult: float = 1.0
) -> ResNet:
    """The 6n + 2-layer CIFAR-10 network of Sec. 4.2 with n = ``units``, option A shortcuts;
    ``residual=False`` gives its plain twin. See the module docstring."""
    check_width_mult(
        width_mult,
        "the CIFAR ResNet",
        {
            "conv1": CIFAR_STEM_CHANNELS,
            **{f"conv{stage}_x": channels for stage, channels in enumerate(CIFAR_STAGE_CHANNELS, start=2)},
        },
    )
    channels = scale_channels(CIFAR_STEM_CHANNELS, width_mult)
    stem = ConvBNAct(in_channels, channels, 3)
    stages, channels = _stages(
        "basic",
        [units] * len(CIFAR_STAGE_CHANNELS),
        [scale_channels(width, width_mult) for width in CIFAR_STAGE_CHANNELS],
        channels,
        residual=residual,
        shortcut="A",
    )
    return ResNet(stem, stages, channels, num_classes)


def paper_init(model: nn.Module) -> None:
    """Sec. 3.4 and 4.2: "We initialize the weights as in [13]" (He et al. 2015), with the fan-out
    as in fb.resnet.torch and torchvision; the classifier keeps PyTorch's default."""
    kaiming_init(model, conv_fan="fan_out", linear_layers=False)


@register(
    "resnet10",
    paper_input=(3, 224, 224),
    paper_init=paper_init,
    title="ResNet",
    summary="10-layer ResNet (He et al. 2016), basic units [1, 1, 1, 1]",
)
def resnet10(
    *,
    num_classes: int,
    in_channels: int,
    small_input: bool,
    residual: bool = True,
    width_mult: float = 1.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-10, basic units [1, 1, 1, 1] in conv2_x..conv5_x
    (timm's resnet10t stages, its deep stem aside); see the module docstring."""
    return resnet(
        "basic",
        (1, 1, 1, 1),
        num_classes=num_classes,
        in_channels=in_channels,
        small_input=small_input,
        residual=residual,
        width_mult=width_mult,
        zero_init_residual=zero_init_residual,
    )


@register(
    "resnet14",
    paper_input=(3, 224, 224),
    paper_init=paper_init,
    title="ResNet",
    summary="14-layer ResNet (He et al. 2016), bottleneck units [1, 1, 1, 1]",
)
def resnet14(
    *,
    num_classes: int,
    in_channels: int,
    small_input: bool,
    residual: bool = True,
    stride_on: str = "1x1",
    width_mult: float = 1.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-14, bottleneck units [1, 1, 1, 1] in conv2_x..conv5_x
    (timm's resnet14t stages, its deep stem aside); see the module docstring."""
    return resnet(
        "bottleneck",
        (1, 1, 1, 1),
        num_classes=num_classes,
        in_channels=in_channels,
        small_input=small_input,
        residual=residual,
        stride_on=stride_on,
        width_mult=width_mult,
        zero_init_residual=zero_init_residual,
    )


@register(
    "resnet16",
    paper_input=(3, 224, 224),
    paper_init=paper_init,
    title="ResNet",
    summary="16-layer ResNet (He et al. 2016), basic units [2, 2, 2, 1]",
)
def resnet16(
    *,
    num_classes: int,
    in_channels: int,
    small_input: bool,
    residual: bool = True,
    width_mult: float = 1.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-16, basic units [2, 2, 2, 1] in conv2_x..conv5_x
    (this course: ResNet-18 less one conv5_x unit); see the module docstring."""
    return resnet(
        "basic",
        (2, 2, 2, 1),
        num_classes=num_classes,
        in_channels=in_channels,
        small_input=small_input,
        residual=residual,
        width_mult=width_mult,
        zero_init_residual=zero_init_residual,
    )


@register(
    "resnet18",
    paper_input=(3, 224, 224),
    paper_init=paper_init,
    title="ResNet",
    summary="18-layer ResNet (He et al. 2016), basic units [2, 2, 2, 2]",
)
def resnet18(
    *,
    num_classes: int,
    in_channels: int,
    small_input: bool,
    residual: bool = True,
    width_mult: float = 1.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-18, basic units [2, 2, 2, 2] in conv2_x..conv5_x (Table 1); see the module docstring."""
    return resnet(
        "basic",
        (2, 2, 2, 2),
        num_classes=num_classes,
        in_channels=in_channels,
        small_input=small_input,
        residual=residual,
        width_mult=width_mult,
        zero_init_residual=zero_init_residual,
    )


@register(
    "resnet26",
    paper_input=(3, 224, 224),
    paper_init=paper_init,
    title="ResNet",
    summary="26-layer ResNet (He et al. 2016), bottleneck units [2, 2, 2, 2]",
)
def resnet26(
    *,
    num_classes: int,
    in_channels: int,
    small_input: bool,
    residual: bool = True,
    stride_on: str = "1x1",
    width_mult: float = 1.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-26, bottleneck units [2, 2, 2, 2] in conv2_x..conv5_x (timm's resnet26); see the module
    docstring."""
    return resnet(
        "bottleneck",
        (2, 2, 2, 2),
        num_classes=num_classes,
        in_channels=in_channels,
        small_input=small_input,
        residual=residual,
        stride_on=stride_on,
        width_mult=width_mult,
        zero_init_residual=zero_init_residual,
    )


@register(
    "resnet34",
    paper_input=(3, 224, 224),
    paper_init=paper_init,
    title="ResNet",
    summary="34-layer ResNet (He et al. 2016), basic units [3, 4, 6, 3]",
)
def resnet34(
    *,
    num_classes: int,
    in_channels: int,
    small_input: bool,
    residual: bool = True,
    width_mult: float = 1.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-34, basic units [3, 4, 6, 3] in conv2_x..conv5_x (Table 1); see the module docstring."""
    return resnet(
        "basic",
        (3, 4, 6, 3),
        num_classes=num_classes,
        in_channels=in_channels,
        small_input=small_input,
        residual=residual,
        width_mult=width_mult,
        zero_init_residual=zero_init_residual,
    )


@register(
    "resnet50",
    paper_input=(3, 224, 224),
    paper_init=paper_init,
    title="ResNet",
    summary="50-layer ResNet (He et al. 2016), bottleneck units [3, 4, 6, 3]",
)
def resnet50(
    *,
    num_classes: int,
    in_channels: int,
    small_input: bool,
    residual: bool = True,
    stride_on: str = "1x1",
    width_mult: float = 1.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-50, bottleneck units [3, 4, 6, 3] in conv2_x..conv5_x (Table 1); see the module docstring."""
    return resnet(
        "bottleneck",
        (3, 4, 6, 3),
        num_classes=num_classes,
        in_channels=in_channels,
        small_input=small_input,
        residual=residual,
        stride_on=stride_on,
        width_mult=width_mult,
        zero_init_residual=zero_init_residual,
    )


@register(
    "resnet101",
    paper_input=(3, 224, 224),
    paper_init=paper_init,
    title="ResNet",
    summary="101-layer ResNet (He et al. 2016), bottleneck units [3, 4, 23, 3]",
)
def resnet101(
    *,
    num_classes: int,
    in_channels: int,
    small_input: bool,
    residual: bool = True,
    stride_on: str = "1x1",
    width_mult: float = 1.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-101, bottleneck units [3, 4, 23, 3] in conv2_x..conv5_x (Table 1); see the module docstring."""
    return resnet(
        "bottleneck",
        (3, 4, 23, 3),
        num_classes=num_classes,
        in_channels=in_channels,
        small_input=small_input,
        residual=residual,
        stride_on=stride_on,
        width_mult=width_mult,
        zero_init_residual=zero_init_residual,
    )


@register(
    "resnet152",
    paper_input=(3, 224, 224),
    paper_init=paper_init,
    title="ResNet",
    summary="152-layer ResNet (He et al. 2016), bottleneck units [3, 8, 36, 3]",
)
def resnet152(
    *,
    num_classes: int,
    in_channels: int,
    small_input: bool,
    residual: bool = True,
    stride_on: str = "1x1",
    width_mult: float = 1.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-152, bottleneck units [3, 8, 36, 3] in conv2_x..conv5_x (Table 1); see the module docstring."""
    return resnet(
        "bottleneck",
        (3, 8, 36, 3),
        num_classes=num_classes,
        in_channels=in_channels,
        small_input=small_input,
        residual=residual,
        stride_on=stride_on,
        width_mult=width_mult,
        zero_init_residual=zero_init_residual,
    )


@register(
    "plain18",
    paper_input=(3, 224, 224),
    paper_init=paper_init,
    title="a plain network",
    summary="18-layer plain network (He et al. 2016), basic units [2, 2, 2, 2]",
)
def plain18(*, num_classes: int, in_channels: int, small_input: bool, width_mult: float = 1.0) -> ResNet:
    """The 18-layer plain network of Table 2: ResNet-18 without its shortcuts; see the module docstring."""
    return resnet(
        "basic",
        (2, 2, 2, 2),
        num_classes=num_classes,
        in_channels=in_channels,
        small_input=small_input,
        residual=False,
        width_mult=width_mult,
    )


@register(
    "plain34",
    paper_input=(3, 224, 224),
    paper_init=paper_init,
    title="a plain network",
    summary="34-layer plain network (He et al. 2016), basic units [3, 4, 6, 3]",
)
def plain34(*, num_classes: int, in_channels: int, small_input: bool, width_mult: float = 1.0) -> ResNet:
    """The 34-layer plain network of Table 2: ResNet-34 without its shortcuts; see the module docstring."""
    return resnet(
        "basic",
        (3, 4, 6, 3),
        num_classes=num_classes,
        in_channels=in_channels,
        small_input=small_input,
        residual=False,
        width_mult=width_mult,
    )


@register(
    "resnet20",
    paper_input=(3, 32, 32),
    paper_init=paper_init,
    title="ResNet",
    summary="20-layer CIFAR-10 ResNet (He et al. 2016, Sec. 4.2), n=3, option A shortcuts",
)
def resnet20(*, num_classes: int, in_channels: int, width_mult: float = 1.0) -> ResNet:
    """ResNet-20 for CIFAR-10 (Sec. 4.2, Table 6): 6n + 2 layers with n = 3, 16/32/64 filters, option A
    shortcuts."""
    return cifar_resnet(
        3, num_classes=num_classes, in_channels=in_channels, residual=True, width_mult=width_mult
    )


@register(
    "resnet32",
    paper_input=(3, 32, 32),
    paper_init=paper_init,
    title="ResNet",
    summary="32-layer CIFAR-10 ResNet (He et al. 2016, Sec. 4.2), n=5, option A shortcuts",
)
def resnet32(*, num_classes: int, in_channels: int, width_mult: float = 1.0) -> ResNet:
    """ResNet-32 for CIFAR-10 (Sec. 4.2, Table 6): 6n + 2 layers with n = 5, 16/32/64 filters, option A
    shortcuts."""
    return cifar_resnet(
        5, num_classes=num_classes, in_channels=in_channels, residual=True, width_mult=width_mult
    )


@register(
    "resnet44",
    paper_input=(3, 32, 32),
    paper_init=paper_init,
    title="ResNet",
    summary="44-layer CIFAR-10 ResNet (He et al. 2016, Sec. 4.2), n=7, option A shortcuts",
)
def resnet44(*, num_classes: int, in_channels: int, width_mult: float = 1.0) -> ResNet:
    """ResNet-44 for CIFAR-10 (Sec. 4.2, Table 6): 6n + 2 layers with n = 7, 16/32/64 filters, option A
    shortcuts."""
    return cifar_resnet(
        7, num_classes=num_classes, in_channels=in_channels, residual=True, width_mult=width_mult
    )


@register(
    "resnet56",
    paper_input=(3, 32, 32),
    paper_init=paper_init,
    title="ResNet",
    summary="56-layer CIFAR-10 ResNet (He et al. 2016, Sec. 4.2), n=9, option A shortcuts",
)
def resnet56(*, num_classes: int, in_channels: int, width_mult: float = 1.0) -> ResNet:
    """ResNet-56 for CIFAR-10 (Sec. 4.2, Table 6): 6n + 2 layers with n = 9, 16/32/64 filters, option A
    shortcuts."""
    return cifar_resnet(
        9, num_classes=num_classes, in_channels=in_channels, residual=True, width_mult=width_mult
    )


@register(
    "resnet110",
    paper_input=(3, 32, 32),
    paper_init=paper_init,
    title="ResNet",
    summary="110-layer CIFAR-10 ResNet (He et al. 2016, Sec. 4.2), n=18, option A shortcuts",
)
def resnet110(*, num_classes: int, in_channels: int, width_mult: float = 1.0) -> ResNet:
    """ResNet-110 for CIFAR-10 (Sec. 4.2, Table 6): 6n + 2 layers with n = 18, 16/32/64 filters, option A
    shortcuts."""
    return cifar_resnet(
        18, num_classes=num_classes, in_channels=in_channels, residual=True, width_mult=width_mult
    )


@register(
    "plain20",
    paper_input=(3, 32, 32),
    paper_init=paper_init,
    title="a plain network",
    summary="20-layer CIFAR-10 plain network (He et al. 2016, Sec. 4.2), n=3",
)
def plain20(*, num_classes: int, in_channels: int, width_mult: float = 1.0) -> ResNet:
    """The 20-layer plain network of Sec. 4.2 (Fig. 6 left): ResNet-20 without its shortcuts."""
    return cifar_resnet(
        3, num_classes=num_classes, in_channels=in_channels, residual=False, width_mult=width_mult
    )


@register(
    "plain32",
    paper_input=(3, 32, 32),
    paper_init=paper_init,
    title="a plain network",
    summary="32-layer CIFAR-10 plain network (He et al. 2016, Sec. 4.2), n=5",
)
def plain32(*, num_classes: int, in_channels: int, width_mult: float = 1.0) -> ResNet:
    """The 32-layer plain network of Sec. 4.2 (Fig. 6 left): ResNet-32 without its shortcuts."""
    return cifar_resnet(
        5, num_classes=num_classes, in_channels=in_channels, residual=False, width_mult=width_mult
    )


@register(
    "plain44",
    paper_input=(3, 32, 32),
    paper_init=paper_init,
    title="a plain network",
    summary="44-layer CIFAR-10 plain network (He et al. 2016, Sec. 4.2), n=7",
)
def plain44(*, num_classes: int, in_channels: int, width_mult: float = 1.0) -> ResNet:
    """The 44-layer plain network of Sec. 4.2 (Fig. 6 left): ResNet-44 without its shortcuts."""
    return cifar_resnet(
        7, num_classes=num_classes, in_channels=in_channels, residual=False, width_mult=width_mult
    )


@register(
    "plain56",
    paper_input=(3, 32, 32),
    paper_init=paper_init,
    title="a plain network",
    summary="56-layer CIFAR-10 plain network (He et al. 2016, Sec. 4.2), n=9",
)
def plain56(*, num_classes: int, in_channels: int, width_mult: float = 1.0) -> ResNet:
    """The 56-layer plain network of Sec. 4.2 (Fig. 6 left): ResNet-56 without its shortcuts."""
    return cifar_resnet(
        9, num_classes=num_classes, in_channels=in_channels, residual=False, width_mult=width_mult
    )


@register(
    "plain110",
    paper_input=(3, 32, 32),
    paper_init=paper_init,
    title="a plain network",
    summary="110-layer CIFAR-10 plain network (He et al. 2016, Sec. 4.2), n=18",
)
def plain110(*, num_classes: int, in_channels: int, width_mult: float = 1.0) -> ResNet:
    """The 110-layer plain network of Sec. 4.2 (Fig. 6 left): ResNet-110 without its shortcuts."""
    return cifar_resnet(
        18, num_classes=num_classes, in_channels=in_channels, residual=False, width_mult=width_mult
    )
