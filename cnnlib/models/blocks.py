"""Building blocks and options shared by the modern networks (ResNet, DenseNet,
MobileNetV2, EfficientNet), and the options every network but LeNet-5 shares.

* :class:`ConvBNAct`: convolution, batch normalisation (Ioffe & Szegedy 2015) and an
  optional activation: the unit every one of these papers is built from.
* :class:`InvertedResidual`: MobileNetV2's inverted residual with a linear bottleneck
  (Sandler et al. 2018, Sec. 3.3 and Table 1), which is also EfficientNet's MBConv
  (Tan & Le 2019, Sec. 4, taken from MnasNet) once squeeze-and-excitation and stochastic
  depth are switched on.
* :class:`SqueezeExcitation` (Hu, Shen & Sun 2018, Fig. 1) and :class:`StochasticDepth`
  (Huang, Sun, Liu, Sedra & Weinberger 2016).
* :class:`ResponseNorm`: AlexNet's local response normalisation (Krizhevsky et al. 2012, §3.3),
  also in GoogLeNet's stem, computed as a fixed 1×1 convolution.
* :class:`FeaturesPoolClassifier`: features, a pool and a classifier, the network shape of AlexNet and of
  the modern networks (the head of global average pooling and a linear layer).
* :func:`use_small_input`, which :func:`cnnlib.models.create` applies to the ``small_input``
  option; :func:`check_choice` and :func:`check_probability` give the error messages of
  option values.
* ``width_mult``, the width multiplier of MobileNetV1 (Howard et al. 2017, Sec. 3.3) and
  MobileNetV2 (Sandler et al. 2018, Sec. 6.1): every layer's channels times ``width_mult``
  (1.0 is the paper's network), depth, kernels and strides unchanged. :func:`scale_channels`
  rounds to whole channels (AlexNet, NiN, VGG, GoogLeNet, ResNet, DenseNet),
  :func:`make_divisible` to multiples of 8 (MobileNetV2, EfficientNet), and
  :func:`check_width_mult` gives the error messages of both.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from cnnlib.errors import UserError

# Inputs up to this side use a model's small-input (CIFAR/MNIST) form unless told otherwise.
SMALL_INPUT_MAX_SIDE = 64

Activation = Callable[..., nn.Module]


def check_choice(option: str, value: object, choices: Sequence[object]) -> None:
    """Raise :class:`UserError` naming the valid values if ``value`` is not one of ``choices``."""
    if value not in choices:
        valid = ", ".join(repr(choice) for choice in choices)
        raise UserError(f"Unknown {option} {value!r}: choose one of {valid}.")


def check_probability(option: str, value: object) -> None:
    """Raise :class:`UserError` unless ``value`` is a probability in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise UserError(f"{option} {value!r} must be a probability in [0, 1), e.g. 0.2.")


def check_stem_stride(stem_stride: object, small_input: bool) -> None:
    """Raise :class:`UserError` unless ``stem_stride`` is 1 or 2, and 1 outside the small-input form
    (whose stem it sets: the ImageNet form's stem has its paper's stride)."""
    check_choice("stem_stride", stem_stride, (1, 2))
    if stem_stride != 1 and not small_input:
        raise UserError("stem_stride sets the small-input form's stem: leave it at 1 for the ImageNet form.")


def scale_channels(channels: int, width_mult: float, divisor: int = 1) -> int:
    """``channels`` × ``width_mult`` rounded half up to a whole multiple of ``divisor``: whole
    channels, or whole channels per group (AlexNet's two towers)."""
    return divisor * math.floor(channels / divisor * width_mult + 0.5)


def make_divisible(channels: float, divisor: int = 8) -> int:
    """``channels`` rounded to the nearest multiple of ``divisor``, never below ``divisor``
    nor by more than 10 % (the rule of MobileNetV2's and EfficientNet's code for the width
    multiplier, torchvision's ``_make_divisible``)."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


def check_width_mult(
    width_mult: object, model: str, layers: Mapping[str, int] | None = None, divisor: int = 1
) -> None:
    """Raise :class:`UserError` unless ``width_mult`` is a positive number that leaves each of
    ``model``'s ``layers`` (name → the paper's channels) at least one channel (``divisor``: one
    per group) under :func:`scale_channels`. ``layers=None``: no layer can vanish
    (:func:`make_divisible` never goes below 8)."""
    if (
        isinstance(width_mult, bool)
        or not isinstance(width_mult, (int, float))
        or not 0 < width_mult < math.inf
    ):
        raise UserError(f"width_mult must be a positive number such as 1.0 or 0.5, not {width_mult!r}.")
    if not layers:
        return
    layer, channels = min(layers.items(), key=lambda named: named[1])
    if scale_channels(channels, width_mult, divisor) < divisor:
        exact = (
            divisor / 2 / channels
        )  # the width at which the narrowest layer rounds up to one channel (per group)
        step = 10.0 ** (math.floor(math.log10(exact)) - 1)
        minimum = round(math.ceil(exact / step) * step, 12)  # two significant digits, rounded up
        raise UserError(
            f"width_mult {width_mult!r} leaves {layer} of {model} with no channels: use at least {minimum:g}."
        )


def use_small_input(input_size: tuple[int, int], small_input: bool | None) -> bool:
    """Whether to build the small-input form: as forced by ``small_input``, or (``None``)
    when the input's shorter side is at most :data:`SMALL_INPUT_MAX_SIDE` pixels."""
    check_choice("small_input", small_input, (None, True, False))
    if small_input is None:
        return min(input_size) <= SMALL_INPUT_MAX_SIDE
    return small_input


class ResponseNorm(nn.LocalResponseNorm):
    """Local response normalisation (AlexNet §3.3, GoogLeNet's stem): the arguments, and the
    result, of :class:`torch.nn.LocalResponseNorm`. The sum of squares over ``size`` adjacent
    channels is a 1×1 convolution with a fixed band of ones, one matrix product per pixel, where
    PyTorch's version runs a 5-D average pool that is slow on a CPU, in bf16 above all."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        offset = torch.arange(channels, device=x.device)
        offset = offset[None, :] - offset[:, None]  # input channel − output channel
        band = ((offset >= -(self.size // 2)) & (offset <= (self.size - 1) // 2)).to(x.dtype)
        squares = nn.functional.conv2d(x * x, band[:, :, None, None])
        return x / (self.k + self.alpha / self.size * squares).pow(self.beta)


class ConvBNAct(nn.Sequential):
    """A ``kernel_size`` convolution with "same" padding and no bias (batch norm supplies
    the shift), batch norm, then ``activation`` (``None``: linear)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        activation: Activation | None = nn.ReLU,
    ):
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["conv"] = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding=(kernel_size - 1) // 2,
            groups=groups,
            bias=False,
        )
        layers["bn"] = nn.BatchNorm2d(out_channels)
        if activation is not None:
            layers["act"] = activation(inplace=True)
        super().__init__(layers)


class SqueezeExcitation(nn.Module):
    """Squeeze (global average pool) and excitation (two 1×1 convolutions, the second
    gated by a sigmoid) that rescale each channel (Hu et al. 2018, Fig. 1 and Eq. 3)."""

    def __init__(self, channels: int, squeeze_channels: int, activation: Activation):
        super().__init__()
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze_channels, 1)
        self.act = activation(inplace=True)
        self.expand = nn.Conv2d(squeeze_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.expand(self.act(self.reduce(self.squeeze(x))))
        return x * torch.sigmoid(scale)


class StochasticDepth(nn.Module):
    """Drop a residual branch for whole samples with probability ``p`` while training
    (Huang et al. 2016, Sec. 3). The survivors are scaled by 1/(1−p) here, so evaluation
    uses the branch as it is; the paper scales at test time instead, to the same effect."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(survival)
        return x * keep / survival


class InvertedResidual(nn.Module):
    """1×1 expansion by ``expansion`` (left out when it is 1), ``kernel_size`` depthwise
    convolution with the stride, optional squeeze-and-excitation, then a *linear* 1×1
    projection (Sandler et al. 2018, Table 1: no activation after it, Sec. 3.2;
    ``linear_bottleneck=False`` puts ``activation`` after it too, the ablation of Sec. 6.4 and
    Fig. 6a). The input is added back when the stride is 1 and the channels agree (Sec. 3.3),
    through stochastic depth with probability ``drop_path``.

    MobileNetV2 uses ReLU6 and no squeeze-and-excitation. EfficientNet's MBConv (Tan & Le
    2019, Table 1) uses SiLU ("swish"), ``se_ratio=0.25`` of the block's input channels
    and stochastic depth.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        expansion: int,
        stride: int,
        kernel_size: int = 3,
        activation: Activation = nn.ReLU6,
        se_ratio: float = 0.0,
        drop_path: float = 0.0,
        linear_bottleneck: bool = True,
    ):
        super().__init__()
        hidden = in_channels * expansion
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if expansion != 1:
            layers["expand"] = ConvBNAct(in_channels, hidden, 1, activation=activation)
        layers["depthwise"] = ConvBNAct(
            hidden, hidden, kernel_size, stride, groups=hidden, activation=activation
        )
        if se_ratio > 0:
            layers["se"] = SqueezeExcitation(hidden, max(1, int(in_channels * se_ratio)), activation)
        layers["project"] = ConvBNAct(
            hidden, out_channels, 1, activation=None if linear_bottleneck else activation
        )
        self.branch = nn.Sequential(layers)
        self.has_shortcut = stride == 1 and in_channels == out_channels
        self.drop_path = StochasticDepth(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        return x + self.drop_path(out) if self.has_shortcut else out


class FeaturesPoolClassifier(nn.Module):
    """A whole network of three parts, ``classifier(flatten(avgpool(features(x))))``: the shape AlexNet
    (Krizhevsky et al. 2012, Fig. 2, with its pool left out), DenseNet (Huang et al. 2017, Table 1),
    MobileNetV2 (Sandler et al. 2018, Table 2) and EfficientNet (Tan & Le 2019, Table 1) share; the
    modern ones pool globally (``nn.AdaptiveAvgPool2d(1)``) before a linear classifier."""

    def __init__(self, features: nn.Module, avgpool: nn.Module, classifier: nn.Module):
        super().__init__()
        self.features = features
        self.avgpool = avgpool
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
