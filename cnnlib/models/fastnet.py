"""The fast network of the last chapter: a small VGG-like network of the kind that Keller Jordan's
airbench trains to 94 % on CIFAR-10 in seconds on a GPU (Jordan 2024, "94% on CIFAR-10 in 3.29
seconds on a single GPU", arXiv 2404.00498, §3.1), itself grown from David Page's ResNet-9 ("How to
train your ResNet", Myrtle.ai 2018–19) and tysam-code's hlb-CIFAR10.

Layers at 32×32 (``width_mult=1``):

* **stem**: a 2×2 convolution without padding (32 → 31) to 8·C channels (24 for colour: the C·2·2 = 12
  whitening filters of §3.2 and their negatives, so that the GELU after it keeps both signs of each
  whitened component), then GELU. Its width is the patch's dimension, not a width ``width_mult`` scales.
* **three conv groups** of 64, 256 and 256 channels: a 3×3 convolution ("same" padding, no bias), a 2×2
  max pool (31 → 15 → 7 → 3), batch norm, GELU, a second 3×3 convolution, batch norm, GELU.
* **head**: a global max pool (airbench's 3×3 pool, the whole 3×3 map at 32×32), a linear layer
  without bias, and its output times 1/9 (airbench's ``scaling_factor``, which sets the logits' scale
  the learning rate and label smoothing were tuned for).

The batch-norm layers keep their scale fixed at 1 and learn only their shift, and their running
statistics follow each batch with momentum 0.4, both as airbench's network has them (its code's
``BatchNorm``: ``weight=False``, ``batchnorm_momentum=0.6`` of the running value).

The tricks that are the model's own:

* **frozen patch whitening** (``whiten``, default on; Jordan 2024 §3.2, after Page's "How to train your
  ResNet 8: bag of tricks", and Coates, Lee & Ng 2011 on whitened patches): :meth:`FastNet.init_from_data`
  sets the stem's filters from the eigenvectors of the covariance of the 2×2 patches of the *training*
  images, each scaled by one over the square root of its eigenvalue, so that the stem's output on those
  patches has (nearly) the identity covariance, and freezes them; its bias is set so the output has zero
  mean and keeps learning. ``whiten=False`` (the ablation) leaves the stem a learned convolution.
* **identity initialisation** (``init="paper"``, the default; Jordan 2024 §3.3): every 3×3 convolution with
  M inputs starts with its first min(M, N) of N filters passing the first input channels through unchanged
  (a Dirac delta at the kernel's centre), the rest at PyTorch's default initialisation, so that a fresh
  network starts close to a shallow one. ``init="pytorch"`` leaves them all at the default (the ablation).

Two details of airbench94's code are options, off by default: ``whiten_bias_epochs`` (airbench: 3) freezes
the whitening stem's bias after that many epochs (:meth:`FastNet.start_epoch`), and ``norm_eps`` (default
PyTorch's 1e-5; airbench: 1e-12) is what its batch norms add to the variance.

``width_mult`` (default 1.0) scales the three groups' widths, rounded to whole channels, as for every
network of the course but LeNet-5 (MobileNetV1, Howard et al. 2017, Sec. 3.3).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from cnnlib.errors import UserError
from cnnlib.models import register
from cnnlib.models.blocks import check_width_mult, scale_channels

WIDTHS = {"group1": 64, "group2": 256, "group3": 256}
STEM_KERNEL = 2
LOGIT_SCALE = 1 / 9
# PyTorch's momentum is the weight of the new batch: airbench keeps 0.6 of the running value.
NORM_MOMENTUM = 0.4


def _norm(channels: int, eps: float) -> nn.BatchNorm2d:
    norm = nn.BatchNorm2d(channels, eps=eps, momentum=NORM_MOMENTUM)
    norm.weight.requires_grad_(False)
    return norm


def conv_group(in_channels: int, out_channels: int, norm_eps: float) -> nn.Sequential:
    """Conv 3×3, max pool 2×2, batch norm, GELU, conv 3×3, batch norm, GELU (Jordan 2024 §3.1); the
    batch norms add ``norm_eps`` to the variance."""
    return nn.Sequential(
        OrderedDict(
            [
                ("conv1", nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)),
                ("pool", nn.MaxPool2d(2)),
                ("bn1", _norm(out_channels, norm_eps)),
                ("act1", nn.GELU()),
                ("conv2", nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)),
                ("bn2", _norm(out_channels, norm_eps)),
                ("act2", nn.GELU()),
            ]
        )
    )


class FastNet(nn.Module):
    """The stem, three conv groups and the scaled linear head; see the module docstring."""

    def __init__(
        self,
        stem: nn.Conv2d,
        groups: nn.Sequential,
        classifier: nn.Linear,
        whiten: bool,
        whiten_bias_epochs: int | None = None,
    ):
        super().__init__()
        self.stem = nn.Sequential(OrderedDict([("conv", stem), ("act", nn.GELU())]))
        self.groups = groups
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.classifier = classifier
        self.whiten = whiten
        self.whiten_bias_epochs = whiten_bias_epochs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.pool(self.groups(self.stem(x)))
        return self.classifier(torch.flatten(features, 1)) * LOGIT_SCALE

    def start_epoch(self, epoch: int) -> None:
        """Called by the trainer before epoch ``epoch`` (0 first): with ``whiten_bias_epochs`` set, the
        whitening stem's bias learns in the first that many epochs and is frozen after them (airbench94's
        ``whiten_bias_epochs = 3``; its ablations' ``main4_freeze``: no accuracy lost, a little time
        saved)."""
        if self.whiten and self.whiten_bias_epochs is not None:
            self.stem.conv.bias.requires_grad_(epoch < self.whiten_bias_epochs)

    @torch.no_grad()
    def init_from_data(
        self,
        train_images: torch.Tensor,
        normalise: Callable[[torch.Tensor], torch.Tensor],
        max_images: int = 5000,
        eps: float = 5e-4,
    ) -> None:
        """Set and freeze the stem's whitening filters from the first ``max_images`` of ``train_images``
        (uint8, N×C×H×W: the *training* split only, never validation or test images), made model input
        by ``normalise`` (the data's own, e.g. ``DataSplit.normalise``). Jordan 2024 §3.2: the filters
        are the eigenvectors of the 2×2 patches' covariance over sqrt(eigenvalue + ``eps``) (airbench's
        5e-4 keeps the faintest components from being amplified without bound), largest first, then the
        same negated; the bias makes the output's mean zero on these patches. Does nothing when the
        model was built with ``whiten=False``."""
        if not self.whiten:
            return
        if len(train_images) == 0:
            raise UserError("The whitening layer needs training images: give at least one.")
        conv = self.stem.conv
        dims = conv.in_channels * STEM_KERNEL**2
        # The sums are kept in float64 on the CPU (MPS has no float64), the patches stay on their device.
        total = torch.zeros(dims, dtype=torch.float64)
        products = torch.zeros(dims, dims, dtype=torch.float64)
        count = 0
        for chunk in train_images[:max_images].split(500):
            # Every 2×2 patch at stride 1, flattened as the convolution's weight is: (channel, row, column).
            patches = F.unfold(normalise(chunk), STEM_KERNEL).transpose(1, 2).reshape(-1, dims)
            total += patches.sum(0).cpu().double()
            products += (patches.T @ patches).cpu().double()
            count += len(patches)
        mean = total / count
        covariance = (products - count * torch.outer(mean, mean)) / (count - 1)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = (eigenvectors / (eigenvalues + eps).sqrt()).T.flip(0)
        weight = torch.cat([filters, -filters])
        conv.weight.copy_(weight.view_as(conv.weight))
        conv.bias.copy_(-(weight @ mean))
        conv.weight.requires_grad_(False)


def identity_init(model: nn.Module) -> None:
    """Jordan 2024 §3.3: in every 3×3 convolution, the first min(M, N) filters (M inputs, N outputs)
    pass the first input channels through (``nn.init.dirac_``); the other filters and the stem keep
    PyTorch's default initialisation."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3):
                nn.init.dirac_(module.weight[: min(module.in_channels, module.out_channels)])


@register(
    "fastnet",
    paper_input=(3, 32, 32),
    paper_init=identity_init,
    title="the fast network",
    summary="the fast network of airbench's kind: whitened 2×2 stem, three conv groups (Jordan 2024)",
)
def fastnet(
    *,
    num_classes: int,
    in_channels: int,
    width_mult: float = 1.0,
    whiten: bool = True,
    whiten_bias_epochs: int | None = None,
    norm_eps: float = 1e-5,
) -> FastNet:
    """The fast network for ``num_classes`` classes; see the module docstring."""
    check_width_mult(width_mult, "the fast network", WIDTHS)
    if not isinstance(whiten, bool):
        raise UserError(f"whiten must be True or False, not {whiten!r}.")
    if whiten_bias_epochs is not None and (
        isinstance(whiten_bias_epochs, bool)
        or not isinstance(whiten_bias_epochs, int)
        or whiten_bias_epochs < 0
    ):
        raise UserError(
            f"whiten_bias_epochs must be a whole number of epochs, 0 or more, not {whiten_bias_epochs!r}."
        )
    if not isinstance(norm_eps, (int, float)) or not 0 < norm_eps < 1:
        raise UserError(f"norm_eps must be a small positive number such as 1e-5, not {norm_eps!r}.")
    widths = [scale_channels(channels, width_mult) for channels in WIDTHS.values()]
    stem = nn.Conv2d(in_channels, 2 * in_channels * STEM_KERNEL**2, STEM_KERNEL)
    groups, channels = OrderedDict(), stem.out_channels
    for name, width in zip(WIDTHS, widths):
        groups[name], channels = conv_group(channels, width, norm_eps), width
    classifier = nn.Linear(channels, num_classes, bias=False)
    return FastNet(stem, nn.Sequential(groups), classifier, whiten, whiten_bias_epochs)
