"""ResNet, from He, Zhang, Ren & Sun, "Deep residual learning for image recognition",
CVPR 2016, Table 1 and Sec. 3-4.

A stem (``conv1``), four stages ``conv2_x`` … ``conv5_x`` of 64, 128, 256 and 512 channels
(× 4 after a bottleneck) that halve the resolution from ``conv3_x`` on, a global average
pool and one fully-connected layer (Table 1). Two residual units (Fig. 5):

* ``"basic"``: two 3×3 convolutions (ResNet-18/34);
* ``"bottleneck"``: 1×1 (reduce), 3×3, 1×1 (expand ×4) (ResNet-50/101/152, Sec. 4.1
  "Deeper Bottleneck Architectures").

Batch norm follows every convolution and ReLU follows the addition (Sec. 3.4). Shortcuts
are identities, and 1×1 projections where the shape changes (option B, Sec. 3.3, also
in a bottleneck network's first unit, whose output is 4× wider).

Options of :func:`resnet`:

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
* ``init="paper"``: He et al. 2015 normal initialisation with the fan-out (Sec. 3.4:
  "We initialize the weights as in [13]"), batch-norm scale 1 and shift 0; the final
  fully-connected layer keeps PyTorch's default, as the paper names none. Also
  ``"pytorch"``, ``"kaiming"`` and ``"xavier"`` (:mod:`cnnlib.models.init`, which
  also covers the classifier). ``zero_init_residual=True``
  then zeroes the scale of each residual branch's last batch norm, so that every unit
  starts as an identity (Goyal et al. 2017, Sec. 5.1).

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
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnlib.errors import UserError
from cnnlib.models import register
from cnnlib.models.blocks import (ConvBNAct, check_choice, check_width_mult, he_normal_convs, scale_channels,
                                  use_small_input)
from cnnlib.models.init import initialiser

# Table 1: channels of conv1 and of conv2_x..conv5_x (before a bottleneck's ×4 expansion).
STEM_CHANNELS = 64
STAGE_CHANNELS = (64, 128, 256, 512)
EXPANSION = {"basic": 1, "bottleneck": 4}
STRIDE_PLACES = ("1x1", "3x3")

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


def _branch(block: str, in_channels: int, width: int, stride: int, stride_on: str) -> nn.Sequential:
    """The residual function F of one unit (Fig. 5); its last batch norm has no ReLU."""
    if block == "basic":
        return nn.Sequential(
            ConvBNAct(in_channels, width, 3, stride),
            ConvBNAct(width, width, 3, activation=None),
        )
    reduce_stride, middle_stride = (stride, 1) if stride_on == "1x1" else (1, stride)
    return nn.Sequential(
        ConvBNAct(in_channels, width, 1, reduce_stride),
        ConvBNAct(width, width, 3, middle_stride),
        ConvBNAct(width, width * EXPANSION["bottleneck"], 1, activation=None),
    )


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Identity, or a 1×1 projection with batch norm where the shape changes (option B, Sec. 3.3)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return ConvBNAct(in_channels, out_channels, 1, stride, activation=None)


class ResNet(nn.Module):
    """ResNet (He et al. 2016, Table 1); ``layers`` gives the units in conv2_x..conv5_x."""

    def __init__(self, block: str, layers: Sequence[int], num_classes: int = 1000, in_channels: int = 3,
                 residual: bool = True, stride_on: str = "1x1", small_input: bool = False, width_mult: float = 1.0):
        super().__init__()
        check_choice("ResNet block", block, tuple(EXPANSION))
        check_choice("stride_on", stride_on, STRIDE_PLACES)
        if (not isinstance(layers, Sequence) or len(layers) != len(STAGE_CHANNELS)
                or not all(isinstance(n, int) and n > 0 for n in layers)):
            raise UserError(f"ResNet layers {layers!r} must be four positive block counts, e.g. [2, 2, 2, 2].")
        check_width_mult(width_mult, "ResNet", {"conv1": STEM_CHANNELS, **{
            f"conv{stage}_x": channels for stage, channels in enumerate(STAGE_CHANNELS, start=2)}})
        channels = scale_channels(STEM_CHANNELS, width_mult)
        self.conv1 = (ConvBNAct(in_channels, channels, 3) if small_input
                      else ConvBNAct(in_channels, channels, 7, stride=2))
        stages = []
        for stage, (paper_width, blocks) in enumerate(zip(STAGE_CHANNELS, layers)):
            stage_width = scale_channels(paper_width, width_mult)
            units: list[nn.Module] = []
            if stage == 0 and not small_input:
                units.append(nn.MaxPool2d(3, stride=2, padding=1))  # Table 1: first layer of conv2_x
            for index in range(blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                out_channels = stage_width * EXPANSION[block]
                shortcut = _shortcut(channels, out_channels, stride) if residual else None
                units.append(ResidualUnit(_branch(block, channels, stage_width, stride, stride_on), shortcut))
                channels = out_channels
            stages.append(nn.Sequential(*units))
        self.conv2_x, self.conv3_x, self.conv4_x, self.conv5_x = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv5_x(self.conv4_x(self.conv3_x(self.conv2_x(self.conv1(x)))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _init_paper(model: nn.Module) -> None:
    # Sec. 3.4: "We initialize the weights as in [13]" (He et al. 2015), with the fan-out
    # as in fb.resnet.torch and torchvision.
    he_normal_convs(model, mode="fan_out")


def resnet(block: str, layers: Sequence[int], *, num_classes: int, in_channels: int, input_size: tuple[int, int],
           residual: bool = True, stride_on: str = "1x1", small_input: bool | None = None, width_mult: float = 1.0,
           init: str = "paper", zero_init_residual: bool = False) -> ResNet:
    """A ResNet of ``block`` units ("basic" or "bottleneck") with ``layers`` units in its
    four stages; ``residual=False`` gives the plain network. See the module docstring."""
    initialise = initialiser(init, paper=_init_paper, model_name="ResNet" if residual else "a plain network")
    model = ResNet(block, layers, num_classes, in_channels, residual, stride_on,
                   use_small_input(input_size, small_input), width_mult)
    initialise(model)
    if zero_init_residual:
        for unit in model.modules():
            if isinstance(unit, ResidualUnit) and unit.shortcut is not None:
                nn.init.zeros_(unit.branch[-1].bn.weight)
    return model


def _register(name: str, block: str, layers: tuple[int, int, int, int], residual: bool) -> None:
    kind = "ResNet" if residual else "plain network"
    depth = 2 + (2 if block == "basic" else 3) * sum(layers)

    @register(name, paper_input=(3, 224, 224),
              summary=f"{depth}-layer {kind} (He et al. 2016), {block} units {list(layers)}")
    def build(*, num_classes: int, in_channels: int, input_size: tuple[int, int], **options) -> ResNet:
        options.setdefault("residual", residual)
        return resnet(block, layers, num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                      **options)

    build.__doc__ = f"{name}: {block} units {list(layers)}; options as :func:`resnet`."


for _name, (_block, _layers, _residual) in CONFIGS.items():
    _register(_name, _block, _layers, _residual)
