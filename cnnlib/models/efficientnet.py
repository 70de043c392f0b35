"""EfficientNet-B0, from Tan & Le, "EfficientNet: rethinking model scaling for
convolutional neural networks", ICML 2019, Sec. 4-5 and Table 1.

Table 1 lists nine stages: a 3×3 convolution with 32 channels (stage 1), seven stages of
MBConv units (stages 2-8) and a 1×1 convolution to 1280 channels with pooling and the
fully-connected classifier (stage 9). MBConvN (from MnasNet) is MobileNetV2's inverted
residual (:class:`~cnnlib.models.blocks.InvertedResidual`) with expansion N, a k×k
depthwise convolution and squeeze-and-excitation (Sec. 4: "We also add
squeeze-and-excitation optimization"), here of 1/4 of the unit's input channels as in
the authors' code. The activation is SiLU ("swish", Sec. 5.2). Table 1 gives each
stage's *input* resolution; a stage that halves it has stride 2 in its first unit.

Regularisation (Sec. 5.2): dropout 0.2 before the classifier (``dropout``) and
stochastic depth with survival probability 0.8 (``stochastic_depth=0.2``), whose drop
probability grows linearly from 0 for the first MBConv unit to 0.2·(n−1)/n for the
last of the n units, as in the authors' code and torchvision.

``width_mult`` (default 1.0: B0): the width multiplier of MobileNetV1 (Howard et al. 2017,
Sec. 3.3) and MobileNetV2 (Sandler et al. 2018, Sec. 6.1), EfficientNet's own width
coefficient w of compound scaling (Sec. 3.3, Eq. 3): the stem, every stage's channels and
the 1280 of the head, each rounded to a multiple of 8
(:func:`~cnnlib.models.blocks.make_divisible`, the authors' ``round_filters`` and
torchvision's ``adjust_channels``); the units' expansion and squeeze-and-excitation widths
follow from them. Depth and resolution stay B0's.

``init="paper"``: the authors' code (the paper names none): He et al. 2015 normal with
the fan-out for convolutions, U(±1/√out_features) for the classifier, zero biases,
batch-norm scale 1 and shift 0. Also ``"pytorch"``, ``"kaiming"`` and ``"xavier"``.

SMALL-INPUT FORM (side ≤ 64, or ``small_input=True``), as for MobileNetV2: stride 1 in
the stem convolution (stage 1) and in the first unit of stage 3 (MBConv6, 3×3, 24
channels), the first stage with stride 2. The network then divides the side by 8
instead of 32 (32×32 → 4×4). ``stem_stride=2`` keeps the stem's own stride of 2 (side
divided by 16, 32×32 → 2×2): a quarter of the work of the first stages, which on a CPU are
most of the time (the chapter's CPU run uses it).
"""

from __future__ import annotations

import math
from collections import OrderedDict

from torch import nn

from cnnlib.models import register
from cnnlib.models.blocks import (
    ConvBNAct,
    FeaturesPoolClassifier,
    InvertedResidual,
    check_probability,
    check_stem_stride,
    check_width_mult,
    make_divisible,
)
from cnnlib.models.init import kaiming_init

# Table 1, stages 2-8: MBConv expansion, kernel, stride of the first unit, channels, layers.
MBCONV_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
STEM_CHANNELS = 32  # stage 1
HEAD_CHANNELS = 1280  # stage 9
SE_RATIO = 0.25
SMALL_INPUT_STRIDE_ONE_STAGE = 1  # index in MBCONV_STAGES of stage 3, whose stride 2 becomes 1


class EfficientNet(FeaturesPoolClassifier):
    """EfficientNet-B0 (Tan & Le 2019, Table 1)."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        dropout: float = 0.2,
        stochastic_depth: float = 0.2,
        small_input: bool = False,
        width_mult: float = 1.0,
        stem_stride: int = 1,
        se_ratio: float = SE_RATIO,
    ):
        channels = make_divisible(STEM_CHANNELS * width_mult)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["stage1"] = ConvBNAct(
            in_channels, channels, 3, stride=stem_stride if small_input else 2, activation=nn.SiLU
        )
        total_units = sum(stage[-1] for stage in MBCONV_STAGES)
        unit_index = 0
        for stage, (expansion, kernel, stride, out_channels, repeats) in enumerate(MBCONV_STAGES):
            if small_input and stage == SMALL_INPUT_STRIDE_ONE_STAGE:
                stride = 1
            out_channels = make_divisible(out_channels * width_mult)
            units = []
            for index in range(repeats):
                units.append(
                    InvertedResidual(
                        channels,
                        out_channels,
                        expansion=expansion,
                        stride=stride if index == 0 else 1,
                        kernel_size=kernel,
                        activation=nn.SiLU,
                        se_ratio=se_ratio,
                        drop_path=stochastic_depth * unit_index / total_units,
                    )
                )
                channels = out_channels
                unit_index += 1
            layers[f"stage{stage + 2}"] = nn.Sequential(*units)
        head_channels = make_divisible(HEAD_CHANNELS * width_mult)
        layers["stage9"] = ConvBNAct(channels, head_channels, 1, activation=nn.SiLU)
        super().__init__(
            nn.Sequential(layers),
            nn.AdaptiveAvgPool2d(1),
            nn.Sequential(nn.Dropout(dropout), nn.Linear(head_channels, num_classes)),
        )


def paper_init(model: nn.Module) -> None:
    """The authors' code: He et al. 2015 (fan-out) in the convolutions, U(±1/√out_features) in
    the classifier, zero biases."""
    kaiming_init(model, conv_fan="fan_out", linear_layers=False)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            bound = 1.0 / math.sqrt(module.out_features)
            nn.init.uniform_(module.weight, -bound, bound)
            nn.init.zeros_(module.bias)


@register(
    "efficientnet_b0",
    paper_input=(3, 224, 224),
    paper_init=paper_init,
    title="EfficientNet-B0",
    summary="EfficientNet-B0 (Tan & Le 2019): MBConv with squeeze-excitation, SiLU, stochastic depth",
)
def efficientnet_b0(
    *,
    num_classes: int,
    in_channels: int,
    small_input: bool,
    dropout: float = 0.2,
    stochastic_depth: float = 0.2,
    stem_stride: int = 1,
    width_mult: float = 1.0,
    se_ratio: float = SE_RATIO,
) -> EfficientNet:
    """EfficientNet-B0 (Table 1); see the module docstring for the options. ``se_ratio`` sizes each
    unit's squeeze-and-excitation (Hu et al. 2018) as a fraction of its input channels; 0 leaves the
    gates out, the chapter's experiment."""
    check_stem_stride(stem_stride, small_input)
    check_width_mult(width_mult, "efficientnet_b0")  # make_divisible leaves every layer at least 8 channels
    check_probability("dropout", dropout)
    check_probability("stochastic_depth", stochastic_depth)
    check_probability("se_ratio", se_ratio)
    return EfficientNet(
        num_classes, in_channels, dropout, stochastic_depth, small_input, width_mult, stem_stride, se_ratio
    )
