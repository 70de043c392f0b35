"""GoogLeNet, from Szegedy et al., "Going deeper with convolutions", CVPR 2015, Sections 4–5,
Table 1 and Fig. 3.

``variant="paper"`` (the default), layer by layer as Table 1 and Fig. 3:

* stem: conv 7×7/2 (64), max-pool 3×3/2, local response normalisation, conv 1×1 (64), conv 3×3
  (192), local response normalisation, max-pool 3×3/2. Every convolution has a bias and a ReLU
  (§5); there is no batch norm (it came later). The normalisation's constants are not in the
  paper; we use those of the BVLC Caffe reproduction (5 maps, α = 10⁻⁴ averaged, β = 0.75, k = 1).
* nine Inception modules (§4, Fig. 2b) with Table 1's widths: a 1×1 branch, a 1×1 → 3×3 branch,
  a 1×1 → 5×5 branch (a real 5×5, padding 2) and a 3×3/1 max-pool → 1×1 projection branch,
  concatenated; max-pools 3×3/2 after 3b and 4e.
* average pool over the final 7×7 map, dropout 0.4 (``dropout`` sets another rate), a linear layer (§5,
  Table 1).
* two auxiliary classifiers on the outputs of 4a and 4d (§5): average pool 5×5/3 (4×4 maps at
  224), 1×1 conv with 128 filters and ReLU, a 1024-unit fully connected layer with ReLU,
  dropout 0.7, a linear layer. They run only in training mode, where the network returns
  ``(logits, aux1_logits, aux2_logits)``; their losses are added with weight ``aux_weight``
  = 0.3 (§5). In eval mode the network returns the logits only.

All max and average pools round up (``ceil_mode=True``) as Caffe, in which the network was
specified, does: 112 → 56 → 28 → 14 → 7, the sizes of Table 1.

``variant="paper_bn"`` is the same network with batch norm, as Ioffe & Szegedy ("Batch
normalization", ICML 2015, §4.2) put it into Inception: every convolution is conv (no bias) + batch
norm + ReLU, and the two local response normalisations are removed (their §4.2.1: with batch norm
"it is not necessary"). Everything else (the 5×5 branches, the pools, dropout 0.4, the auxiliary
heads) is the paper's. The CPU chapter trains it (without the dropout, ``dropout=0.0``: see
:mod:`cnnlib.presets`), because without batch norm the 22 layers learn too slowly for a ten-minute budget.

``variant="torchvision"`` is torchvision's ``googlenet``: each convolution is conv (no bias) +
batch norm (ε = 0.001) + ReLU, the "5×5" branch uses a 3×3 kernel (torchvision issue #906), no
response normalisation, a 2×2/2 max-pool after 4e, auxiliary heads with an adaptive 4×4 average
pool and dropout 0.2 before the last linear layer. Module names equal torchvision's, so its
weights load. torchvision's model card (6,624,904 parameters, 1.498 GMACs) counts the network
without its auxiliary heads, as its pretrained model is delivered (``aux_logits=False``); the
heads add 6,379,984 parameters and no eval-mode MACs.

SMALL-INPUT FORM (shorter side ≤ 64, or ``small_input=True``): the common CIFAR practice of a
3×3 stride-1 stem convolution without the first max-pool (kuangliu/pytorch-cifar's ResNet stem);
the rest is unchanged, so 32 → 16 → 8 → 4 for the Inception stages 3, 4 and 5 and the
auxiliary pools see 8×8 maps (2×2 after pooling). kuangliu's GoogLeNet drops the whole stem
and runs stage 3 at 32×32, four times the computation of this form.

WIDTH (``width_mult``, default 1.0: Table 1's network): the width multiplier of MobileNetV1
(Howard et al. 2017, Sec. 3.3) and MobileNetV2 (Sandler et al. 2018, Sec. 6.1) scales the channels
of the stem's three convolutions, every branch of every Inception module (Table 1's six columns),
and the auxiliary heads' 128-channel convolution and 1024-unit layer (§5), each rounded to whole
channels; kernels, strides and the modules' structure stay the paper's.

Initialisation (``init``): the paper does not state one; ``"paper"`` (and ``"xavier"``) is the
Glorot-uniform initialisation of the time (and of the BVLC Caffe reproduction), zero biases.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import partial

import torch
from torch import nn

from cnnlib.arithmetic import conv_output_size
from cnnlib.errors import UserError
from cnnlib.models import register
from cnnlib.models.blocks import ResponseNorm, check_probability, check_width_mult, scale_channels
from cnnlib.models.init import xavier_init


@dataclass(frozen=True)
class InceptionWidths:
    """One row of Table 1: the filters of each branch of an Inception module."""

    ch1x1: int
    ch3x3_reduce: int
    ch3x3: int
    ch5x5_reduce: int
    ch5x5: int
    pool_proj: int

    @property
    def out_channels(self) -> int:
        """The channels of the four branches concatenated (Fig. 2(b))."""
        return self.ch1x1 + self.ch3x3 + self.ch5x5 + self.pool_proj

    def scaled(self, width_mult: float) -> InceptionWidths:
        """Every branch ``width_mult`` times as wide, in whole channels."""
        return InceptionWidths(
            **{column: scale_channels(width, width_mult) for column, width in asdict(self).items()}
        )


# Table 1: #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj.
INCEPTION = {
    "3a": InceptionWidths(64, 96, 128, 16, 32, 32),
    "3b": InceptionWidths(128, 128, 192, 32, 96, 64),
    "4a": InceptionWidths(192, 96, 208, 16, 48, 64),
    "4b": InceptionWidths(160, 112, 224, 24, 64, 64),
    "4c": InceptionWidths(128, 128, 256, 24, 64, 64),
    "4d": InceptionWidths(112, 144, 288, 32, 64, 64),
    "4e": InceptionWidths(256, 160, 320, 32, 128, 128),
    "5a": InceptionWidths(256, 160, 320, 32, 128, 128),
    "5b": InceptionWidths(384, 192, 384, 48, 128, 128),
}

STEM_CHANNELS = {"conv1": 64, "conv2": 64, "conv3": 192}  # Table 1: 7×7/2, 1×1 reduce, 3×3
AUX_WEIGHT = 0.3  # §5
AUX_CHANNELS, AUX_UNITS, AUX_DROPOUT = 128, 1024, 0.7  # §5
AUX_POOL, AUX_POOL_STRIDE = 5, 3  # §5: 5×5 average pool, stride 3


@dataclass(frozen=True)
class Variant:
    """What distinguishes the paper's network from torchvision's."""

    batch_norm: bool
    branch3_kernel: int  # the "5×5" branch
    response_norm: bool
    maxpool4_kernel: int
    dropout: float
    aux_adaptive_side: int | None  # None: the paper's 5×5/3 average pool


VARIANTS = {
    "paper": Variant(
        batch_norm=False,
        branch3_kernel=5,
        response_norm=True,
        maxpool4_kernel=3,
        dropout=0.4,
        aux_adaptive_side=None,
    ),
    # Table 1's network as Ioffe & Szegedy (2015) trained Inception with batch norm: before every ReLU, and
    # local response normalisation removed (their §4.2.1).
    "paper_bn": Variant(
        batch_norm=True,
        branch3_kernel=5,
        response_norm=False,
        maxpool4_kernel=3,
        dropout=0.4,
        aux_adaptive_side=None,
    ),
    "torchvision": Variant(
        batch_norm=True,
        branch3_kernel=3,
        response_norm=False,
        maxpool4_kernel=2,
        dropout=0.2,
        aux_adaptive_side=4,
    ),
}


def _pooled(side: int, kernel: int = 3, stride: int = 2) -> int:
    return conv_output_size(side, kernel, stride, ceil_mode=True)


def _side_at_4a(side: int, small: bool) -> int:
    if not small:
        side = _pooled(conv_output_size(side, 7, 2, 3))  # conv1 7×7/2 padding 3, maxpool1
    return _pooled(_pooled(side))  # maxpool2, maxpool3


class ConvBlock(nn.Module):
    """Convolution and ReLU (paper), or convolution, batch norm and ReLU (torchvision's BasicConv2d)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        batch_norm: bool = False,
    ):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=not batch_norm)
        self.bn = (
            nn.BatchNorm2d(out_channels, eps=0.001) if batch_norm else nn.Identity()
        )  # torchvision's name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """§4, Fig. 2(b): four parallel branches concatenated along the channels."""

    def __init__(self, in_channels: int, widths: InceptionWidths, variant: Variant):
        super().__init__()
        block = partial(ConvBlock, batch_norm=variant.batch_norm)
        k = variant.branch3_kernel
        self.branch1 = block(in_channels, widths.ch1x1, 1)
        self.branch2 = nn.Sequential(
            block(in_channels, widths.ch3x3_reduce, 1), block(widths.ch3x3_reduce, widths.ch3x3, 3, padding=1)
        )
        self.branch3 = nn.Sequential(
            block(in_channels, widths.ch5x5_reduce, 1),
            block(widths.ch5x5_reduce, widths.ch5x5, k, padding=k // 2),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), block(in_channels, widths.pool_proj, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class AuxiliaryClassifier(nn.Module):
    """§5: average pool, 1×1 conv (128) + ReLU, FC 1024 + ReLU, dropout 0.7, linear."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        variant: Variant,
        input_side: tuple[int, int],
        width_mult: float = 1.0,
    ):
        super().__init__()
        if variant.aux_adaptive_side is None:
            self.pool: nn.Module = nn.AvgPool2d(AUX_POOL, AUX_POOL_STRIDE, ceil_mode=True)
            # Sized for the input; an input too small still builds, and create() names the layer.
            area = max(_pooled(input_side[0], AUX_POOL, AUX_POOL_STRIDE), 1) * max(
                _pooled(input_side[1], AUX_POOL, AUX_POOL_STRIDE), 1
            )
        else:
            self.pool = nn.AdaptiveAvgPool2d(variant.aux_adaptive_side)
            area = variant.aux_adaptive_side**2
        channels, units = scale_channels(AUX_CHANNELS, width_mult), scale_channels(AUX_UNITS, width_mult)
        self.conv = ConvBlock(in_channels, channels, 1, batch_norm=variant.batch_norm)
        self.fc1 = nn.Linear(channels * area, units)
        self.dropout = nn.Dropout(AUX_DROPOUT)
        self.fc2 = nn.Linear(units, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(self.pool(x)), 1)
        return self.fc2(self.dropout(torch.relu(self.fc1(x))))


class GoogLeNet(nn.Module):
    """Table 1's network; in training mode it also returns the two auxiliary classifiers' logits."""

    aux_weight = AUX_WEIGHT

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        input_size: tuple[int, int],
        variant: Variant,
        small: bool,
        aux_logits: bool,
        width_mult: float = 1.0,
    ):
        super().__init__()
        block = partial(ConvBlock, batch_norm=variant.batch_norm)
        norm = (
            partial(ResponseNorm, 5, alpha=1e-4, beta=0.75, k=1.0) if variant.response_norm else nn.Identity
        )
        pool = partial(nn.MaxPool2d, stride=2, ceil_mode=True)
        stem = {name: scale_channels(channels, width_mult) for name, channels in STEM_CHANNELS.items()}
        inception = {name: widths.scaled(width_mult) for name, widths in INCEPTION.items()}
        self.conv1 = (
            block(in_channels, stem["conv1"], 3, padding=1)
            if small
            else block(in_channels, stem["conv1"], 7, stride=2, padding=3)
        )
        self.maxpool1 = nn.Identity() if small else pool(3)
        self.norm1 = norm()
        self.conv2 = block(stem["conv1"], stem["conv2"], 1)
        self.conv3 = block(stem["conv2"], stem["conv3"], 3, padding=1)
        self.norm2 = norm()
        self.maxpool2 = pool(3)
        in_channels = stem["conv3"]
        for name, widths in inception.items():
            setattr(self, f"inception{name}", Inception(in_channels, widths, variant))
            in_channels = widths.out_channels
        self.maxpool3 = pool(3)
        self.maxpool4 = pool(variant.maxpool4_kernel)
        self.aux1: AuxiliaryClassifier | None = None
        self.aux2: AuxiliaryClassifier | None = None
        if aux_logits:
            side_4a = (_side_at_4a(input_size[0], small), _side_at_4a(input_size[1], small))
            self.aux1 = AuxiliaryClassifier(
                inception["4a"].out_channels, num_classes, variant, side_4a, width_mult
            )
            self.aux2 = AuxiliaryClassifier(
                inception["4d"].out_channels, num_classes, variant, side_4a, width_mult
            )
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # Table 1's 7×7/1 average pool at 224
        self.dropout = nn.Dropout(variant.dropout)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.norm1(self.maxpool1(self.conv1(x)))
        x = self.maxpool2(self.norm2(self.conv3(self.conv2(x))))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        with_aux = self.training and self.aux1 is not None
        aux1 = self.aux1(x) if with_aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if with_aux else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        logits = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
        return (logits, aux1, aux2) if with_aux else logits


@register(
    "googlenet",
    paper_input=(3, 224, 224),
    paper_init=xavier_init,
    title="GoogLeNet",
    summary=(
        "GoogLeNet (Szegedy et al. 2015) with auxiliary heads; variant='paper', 'paper_bn' or 'torchvision'"
    ),
)
def googlenet(
    *,
    num_classes: int,
    in_channels: int,
    input_size: tuple[int, int],
    small_input: bool,
    variant: str = "paper",
    aux_logits: bool = True,
    width_mult: float = 1.0,
    dropout: float | None = None,
) -> GoogLeNet:
    """GoogLeNet for ``num_classes`` classes; see the module docstring for the variants, forms and width.
    ``dropout``: the rate before the last linear layer (None: the variant's, 0.4 in the paper's)."""
    if variant not in VARIANTS:
        raise UserError(
            f"Unknown GoogLeNet variant {variant!r}: choose one of {', '.join(map(repr, VARIANTS))}."
        )
    chosen = VARIANTS[variant]
    if dropout is not None:
        check_probability("dropout", dropout)
        chosen = replace(chosen, dropout=dropout)
    check_width_mult(
        width_mult,
        "googlenet",
        {
            **STEM_CHANNELS,
            "the auxiliary heads' 1×1 conv": AUX_CHANNELS,
            **{
                f"{column} of inception{name}": width
                for name, widths in INCEPTION.items()
                for column, width in asdict(widths).items()
            },
        },
    )
    return GoogLeNet(num_classes, in_channels, input_size, chosen, small_input, aux_logits, width_mult)
