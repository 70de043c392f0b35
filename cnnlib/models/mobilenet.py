"""MobileNetV2, from Sandler, Howard, Zhu, Zhmoginov & Chen, "MobileNetV2: inverted
residuals and linear bottlenecks", CVPR 2018, Sec. 3-4 and Table 2.

A 3×3 convolution of stride 2 with 32 channels, seven rows of inverted-residual
bottlenecks (:class:`~cnnlib.models.blocks.InvertedResidual`: 1×1 expansion by t,
3×3 depthwise, linear 1×1 projection, ReLU6 after the first two; Table 1), a 1×1
convolution to 1280 channels, global average pooling and the classifier. Each row of
Table 2 gives t (expansion), c (output channels), n (repeats) and s (stride of the
row's first unit; the others have stride 1). Units with stride 1 and equal channels add
their input back (Sec. 3.3, Fig. 4d).

Options:

* ``width_mult`` (the width multiplier of Sec. 6.1, after MobileNetV1, Howard et al.
  2017, Sec. 3.3; default 1.0) scales every layer's channels, rounded to a multiple of 8
  as in the authors' code (:func:`~cnnlib.models.blocks.make_divisible`); the last 1×1
  convolution keeps 1280 channels when ``width_mult < 1`` (Sec. 6.1).
* ``linear_bottleneck`` (default True, the paper's): False puts ReLU6 after each unit's 1×1
  projection as well, the ablation of Sec. 6.4 and Fig. 6a (non-linearity in the bottleneck
  destroys information in the low-dimensional space, Sec. 3.2).
* ``dropout`` (default 0.2) before the classifier, as in the authors' TF-Slim code and
  torchvision; Table 2 draws the classifier as a 1×1 convolution, a linear layer here.
* ``init="paper"``: the paper names no initialisation; this uses torchvision's
  reproduction (He et al. 2015 normal with the fan-out for convolutions, N(0, 0.01) for
  the classifier, zero biases, batch-norm scale 1 and shift 0). Also ``"pytorch"``,
  ``"kaiming"`` and ``"xavier"``.

SMALL-INPUT FORM (side ≤ 64, or ``small_input=True``): stride 1 in the stem convolution
and in the first unit of row 2 (t=6, c=24, n=2, s=2), the common CIFAR practice of
kuangliu/pytorch-cifar. The network then divides the side by 8 instead of 32
(32×32 → 4×4, 28×28 → 4×4). ``stem_stride=2`` keeps the stem's own stride of 2 (side divided
by 16, 32×32 → 2×2): a quarter of the work of the first rows, whose wide expanded maps are most of
a CPU's time, so a time budget holds about three times the passes (the chapter's cpu preset uses it;
results/recipes/08_mobilenet/).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from cnnlib.models import register
from cnnlib.models.blocks import (
    ConvBNAct,
    FeaturesPoolClassifier,
    InvertedResidual,
    check_choice,
    check_probability,
    check_stem_stride,
    check_width_mult,
    make_divisible,
)
from cnnlib.models.init import kaiming_init

# Table 2: t, c, n, s of the bottleneck rows.
INVERTED_RESIDUAL_ROWS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280
SMALL_INPUT_STRIDE_ONE_ROW = 1  # index of the row (t=6, c=24) whose stride 2 becomes 1


class MobileNetV2(FeaturesPoolClassifier):
    """MobileNetV2 (Sandler et al. 2018, Table 2)."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        width_mult: float = 1.0,
        dropout: float = 0.2,
        small_input: bool = False,
        linear_bottleneck: bool = True,
        stem_stride: int = 1,
    ):
        channels = make_divisible(STEM_CHANNELS * width_mult)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["stem"] = ConvBNAct(
            in_channels, channels, 3, stride=stem_stride if small_input else 2, activation=nn.ReLU6
        )
        for row, (expansion, out_channels, repeats, stride) in enumerate(INVERTED_RESIDUAL_ROWS):
            if small_input and row == SMALL_INPUT_STRIDE_ONE_ROW:
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
                        linear_bottleneck=linear_bottleneck,
                    )
                )
                channels = out_channels
            layers[f"bottleneck{row + 1}"] = nn.Sequential(*units)
        last_channels = make_divisible(LAST_CHANNELS * max(1.0, width_mult))
        layers["conv_last"] = ConvBNAct(channels, last_channels, 1, activation=nn.ReLU6)
        super().__init__(
            nn.Sequential(layers),
            nn.AdaptiveAvgPool2d(1),
            nn.Sequential(nn.Dropout(dropout), nn.Linear(last_channels, num_classes)),
        )


def paper_init(model: nn.Module) -> None:
    """torchvision's reproduction: He et al. 2015 (fan-out) in the convolutions, N(0, 0.01²)
    in the classifier, zero biases."""
    kaiming_init(model, conv_fan="fan_out", linear_layers=False)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            nn.init.zeros_(module.bias)


@register(
    "mobilenet_v2",
    paper_input=(3, 224, 224),
    paper_init=paper_init,
    title="MobileNetV2",
    summary="MobileNetV2 (Sandler et al. 2018): inverted residuals, linear bottlenecks; width_mult",
)
def mobilenet_v2(
    *,
    num_classes: int,
    in_channels: int,
    small_input: bool,
    width_mult: float = 1.0,
    dropout: float = 0.2,
    linear_bottleneck: bool = True,
    stem_stride: int = 1,
) -> MobileNetV2:
    """MobileNetV2 (Table 2); see the module docstring for the options."""
    check_stem_stride(stem_stride, small_input)
    check_width_mult(width_mult, "mobilenet_v2")  # make_divisible leaves every layer at least 8 channels
    check_probability("dropout", dropout)
    check_choice("linear_bottleneck", linear_bottleneck, (True, False))
    return MobileNetV2(
        num_classes, in_channels, width_mult, dropout, small_input, linear_bottleneck, stem_stride
    )
