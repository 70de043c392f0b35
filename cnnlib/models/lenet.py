"""LeNet-5, from LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to
document recognition", Proc. IEEE 86(11), 1998, Section II-B and Fig. 2.

Two forms of the same seven layers (C1, S2, C3, S4, C5, F6, output) on a 32×32 input:

* ``variant="paper"``: the scaled tanh ``f(a) = 1.7159 tanh(2a/3)`` (Appendix A),
  trainable subsampling in S2 and S4 (sum of a 2×2 field times a coefficient plus a
  bias), the sparse C3 connection table (Table I) and Euclidean RBF output units with
  fixed ±1 codes. Per-layer parameters equal the paper's: C1 156, S2 12, C3 1,516,
  S4 32, C5 48,120, F6 10,164.
* ``variant="modern"`` (the default): ReLU, 2×2 max pooling, C3 connected to all six S2
  maps and a linear output layer trained with softmax cross-entropy.

The paper's output codes are hand-drawn 7×12 bitmaps of the ASCII characters (Sec. II-B);
they are not published as data, so the ``paper`` variant draws fixed random ±1 codes, the
alternative the same section names (codes drawn at random, -1 and +1 equally likely) before
choosing the drawings.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from cnnlib.arithmetic import conv_output_size
from cnnlib.errors import UserError
from cnnlib.models import register
from cnnlib.models.blocks import check_choice, check_probability
from cnnlib.models.init import normal_init, weighted_layers

# Table I: which S2 maps (rows) feed each of the 16 C3 maps (columns).
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2),
    (1, 2, 3),
    (2, 3, 4),
    (3, 4, 5),
    (4, 5, 0),
    (5, 0, 1),
    (0, 1, 2, 3),
    (1, 2, 3, 4),
    (2, 3, 4, 5),
    (3, 4, 5, 0),
    (4, 5, 0, 1),
    (5, 0, 1, 2),
    (0, 1, 3, 4),
    (1, 2, 4, 5),
    (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


class ScaledTanh(nn.Module):
    """The squashing function of Appendix A: ``A tanh(S a)`` with A = 1.7159, S = 2/3."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


class Subsampling(nn.Module):
    """S2/S4: the four inputs of each 2×2 field are added, multiplied by a trainable
    coefficient and offset by a trainable bias, one pair per map (Sec. II-B)."""

    def __init__(self, channels: int):
        super().__init__()
        self.kernel_size, self.stride, self.padding = 2, 2, 0
        self.coefficient = nn.Parameter(torch.full((channels,), 0.25))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        field_sum = F.avg_pool2d(x, 2) * 4
        return field_sum * self.coefficient.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class SparseConv2d(nn.Module):
    """C3: a 5×5 convolution in which output map j sees only the input maps of
    ``table[j]``. Only the connected kernels are parameters (1,500 weights + 16 biases);
    the dense kernel is assembled from them on each call. Its ``fans`` are the mean fan-in and
    fan-out of its units, which the Glorot and He schemes of :mod:`cnnlib.models.init` use."""

    def __init__(self, table: tuple[tuple[int, ...], ...], in_channels: int, kernel_size: int):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, len(table)
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, 1, 0, 1
        mask = torch.zeros(self.out_channels, in_channels, dtype=torch.bool)
        for out_map, in_maps in enumerate(table):
            mask[out_map, list(in_maps)] = True
        self.register_buffer("connections", mask, persistent=False)
        weights = int(mask.sum()) * kernel_size**2
        self.fans = (weights / self.out_channels, weights / in_channels)
        self.weight = nn.Parameter(torch.empty(int(mask.sum()), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(self.out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Appendix C: weights uniform in ±2.4/F_i, F_i the largest fan-in of a C3 unit; biases 0."""
        bound = 2.4 / (self.connections.sum(1).max().item() * self.kernel_size**2)
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        dense = self.weight.new_zeros(self.out_channels, self.in_channels, k, k)
        dense[self.connections] = self.weight
        return F.conv2d(x, dense, self.bias)


class EuclideanRBF(nn.Module):
    """The output layer: unit i computes ``y_i = Σ_j (x_j − w_ij)²`` against a fixed code
    (Sec. II-B, Eq. 7). The logits are ``−y``, so the most likely class has the nearest
    code; cross-entropy on them is the paper's discriminative criterion (Eq. 9)."""

    def __init__(self, in_features: int, num_classes: int, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        codes = torch.randint(0, 2, (num_classes, in_features), generator=generator).float() * 2 - 1
        self.register_buffer("codes", codes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -torch.cdist(x, self.codes).pow(2)


def _side_after_c5(side: int) -> int:
    # C1 (5×5) → S2 (2×2/2) → C3 (5×5) → S4 (2×2/2) → C5 (5×5), no padding (Fig. 2).
    for kernel_size, stride in ((5, 1), (2, 2), (5, 1), (2, 2), (5, 1)):
        side = conv_output_size(side, kernel_size, stride)
    return side


# Activations of the ``modern`` form's ``activation`` option (the activation study).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,  # Nair & Hinton 2010; Krizhevsky et al. 2012, Sec. 3.1
    "tanh": nn.Tanh,
    "scaled_tanh": ScaledTanh,  # the paper's own, Appendix A
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,  # Hendrycks & Gimpel 2016
    "silu": nn.SiLU,  # Ramachandran, Zoph & Le 2017 (Swish); EfficientNet's activation
    "leaky_relu": nn.LeakyReLU,  # Maas, Hannun & Ng 2013
}
# A normal too narrow for a five-layer network: the signal shrinks at every layer.
SMALL_NORMAL_STD = 1e-2


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998, Fig. 2) in its ``paper`` or ``modern`` form.

    The ``modern`` form takes the options of the training studies: ``activation`` (a key of
    :data:`ACTIVATIONS`), ``dropout`` before F6 and the output layer (Srivastava et al. 2014,
    placed as in Krizhevsky et al. 2012, Sec. 4.2) and ``batch_norm`` after C1, C3, C5 and F6,
    before the activation (Ioffe & Szegedy 2015, Sec. 3.2, which also makes the biases
    redundant). The ``paper`` form is the paper's, with none of them.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: tuple[int, int] = (32, 32),
        variant: str = "modern",
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ):
        super().__init__()
        if variant not in ("paper", "modern"):
            raise UserError(f"Unknown LeNet-5 variant {variant!r}: choose 'paper' or 'modern'.")
        check_choice("activation", activation, tuple(ACTIVATIONS))
        check_probability("dropout", dropout)
        check_choice("batch_norm", batch_norm, (False, True))
        paper = variant == "paper"
        if paper and (activation, dropout, batch_norm) != ("relu", 0.0, False):
            raise UserError(
                "activation, dropout and batch_norm change the modern form only: "
                "leave them out with variant='paper'."
            )
        act = ScaledTanh if paper else ACTIVATIONS[activation]
        pool = Subsampling if paper else (lambda channels: nn.MaxPool2d(2))
        c5_area = max(_side_after_c5(input_size[0]), 1) * max(_side_after_c5(input_size[1]), 1)

        def add_unit(block: nn.Sequential, name: str, layer: nn.Module, norm: type[nn.Module]) -> None:
            block.add_module(name, layer)
            if batch_norm:
                block.add_module(
                    f"{name}_bn", norm(layer.out_channels if norm is nn.BatchNorm2d else layer.out_features)
                )
            block.add_module(f"{name}_act", act())

        bias = not batch_norm
        self.features = nn.Sequential()
        add_unit(self.features, "C1", nn.Conv2d(in_channels, 6, 5, bias=bias), nn.BatchNorm2d)
        self.features.add_module("S2", pool(6))
        if paper:
            self.features.add_module("S2_act", act())
        c3 = SparseConv2d(C3_TABLE, 6, 5) if paper else nn.Conv2d(6, 16, 5, bias=bias)
        add_unit(self.features, "C3", c3, nn.BatchNorm2d)
        self.features.add_module("S4", pool(16))
        if paper:
            self.features.add_module("S4_act", act())
        add_unit(self.features, "C5", nn.Conv2d(16, 120, 5, bias=bias), nn.BatchNorm2d)
        self.classifier = nn.Sequential()
        if dropout:
            self.classifier.add_module("F6_dropout", nn.Dropout(dropout))
        add_unit(self.classifier, "F6", nn.Linear(120 * c5_area, 84, bias=bias), nn.BatchNorm1d)
        if dropout:
            self.classifier.add_module("output_dropout", nn.Dropout(dropout))
        self.classifier.add_module(
            "output", EuclideanRBF(84, num_classes) if paper else nn.Linear(84, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def init_paper(model: nn.Module) -> None:
    """Appendix C: weights uniform in ±2.4/F_i, F_i the fan-in of the unit; biases 0. The sparse
    C3 draws its own at construction (:meth:`SparseConv2d.reset_parameters`)."""
    for layer in weighted_layers(model):
        if isinstance(layer, SparseConv2d):
            continue
        fan_in = layer.weight[0].numel()
        nn.init.uniform_(layer.weight, -2.4 / fan_in, 2.4 / fan_in)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


@register(
    "lenet5",
    paper_input=(1, 32, 32),
    fixed_size=True,
    paper_init=init_paper,
    title="LeNet-5",
    default_init=lambda options: "paper" if options["variant"] == "paper" else "pytorch",
    extra_inits={"small_normal": partial(normal_init, std=SMALL_NORMAL_STD)},
    summary="LeNet-5 (LeCun et al. 1998); variant='modern' or 'paper'",
)
def lenet5(
    *,
    num_classes: int,
    in_channels: int,
    input_size: tuple[int, int],
    variant: str = "modern",
    activation: str = "relu",
    dropout: float = 0.0,
    batch_norm: bool = False,
) -> LeNet5:
    """LeNet-5 for ``num_classes`` classes; see the module docstring for the variants and
    :class:`LeNet5` for the options. ``init`` defaults to ``"paper"`` for the paper's form
    and to ``"pytorch"`` for the modern one; ``"small_normal"`` draws every weight from
    N(0, 0.01²), too narrow a start (the initialisation study)."""
    return LeNet5(num_classes, in_channels, input_size, variant, activation, dropout, batch_norm)
