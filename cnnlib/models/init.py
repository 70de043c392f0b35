"""Weight initialisation schemes of the model zoo, applied by :func:`cnnlib.models.create`.

Every model takes ``init="paper"`` (what its paper prescribes, written in the model's own
module and recorded at registration), ``"xavier"``, ``"kaiming"`` and ``"pytorch"`` (PyTorch's
layer defaults, left as they are); a model may add schemes of its own (LeNet-5's
``"small_normal"``). :func:`initialiser` turns the name into a function and rejects unknown
names before the model is built. The schemes touch the weighted layers only (convolutions,
linear layers and any layer that states its ``fans``, such as LeNet-5's sparse C3); batch-norm
layers keep PyTorch's defaults (weight 1, bias 0), which is what every paper of the course uses.

* :func:`normal_init`: zero-mean Gaussian weights of a fixed standard deviation and constant
  biases, the hand-set initialisation of Krizhevsky et al. 2012 §5 and its successors.
* :func:`xavier_init`: Glorot & Bengio 2010, uniform in ±√(6 / (fan_in + fan_out)).
* :func:`kaiming_init`: He et al. 2015 ("Delving deep into rectifiers"), normal with
  std √(2 / fan): the fan-out in convolutions, as in ResNet's reference code, the fan-in in
  linear layers; the papers' own schemes call it with other fans or leave the linear layers out.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from cnnlib.errors import UserError

Initialiser = Callable[[nn.Module], None]


def weighted_layers(model: nn.Module) -> list[nn.Module]:
    """The convolutions, linear layers and layers stating their ``fans`` of ``model``, in registration
    order."""
    return [
        module
        for module in model.modules()
        if isinstance(module, (nn.Conv2d, nn.Linear)) or hasattr(module, "fans")
    ]


def fans(layer: nn.Module) -> tuple[float, float]:
    """(fan-in, fan-out) of a weighted layer: its own ``fans`` where it states them, else PyTorch's."""
    if hasattr(layer, "fans"):
        return layer.fans
    return nn.init._calculate_fan_in_and_fan_out(layer.weight)


def _zero_bias(layer: nn.Module) -> None:
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def normal_init(model: nn.Module, std: float = 0.01, bias: float = 0.0) -> None:
    """Weights drawn from N(0, std²), biases set to ``bias``, in every weighted layer."""
    for layer in weighted_layers(model):
        nn.init.normal_(layer.weight, 0.0, std)
        if layer.bias is not None:
            nn.init.constant_(layer.bias, bias)


def xavier_init(model: nn.Module) -> None:
    """Glorot-uniform weights and zero biases in every weighted layer."""
    for layer in weighted_layers(model):
        fan_in, fan_out = fans(layer)
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        with torch.no_grad():
            layer.weight.uniform_(-bound, bound)
        _zero_bias(layer)


def kaiming_init(model: nn.Module, conv_fan: str = "fan_out", linear_layers: bool = True) -> None:
    """He-normal weights for ReLU networks and zero biases (He et al. 2015, Sec. 2.2): std
    √(2/n) with n the convolutions' ``conv_fan`` (the fan-out by default, as ResNet's reference
    code draws them) and the linear layers' fan-in (the forward-pass form, Eq. 10), where the
    fan-out of a 10-way classifier would give std √(2/10) and logits large enough to stall
    training (the init study). ``linear_layers=False`` leaves the linear layers as they are."""
    for layer in weighted_layers(model):
        if isinstance(layer, nn.Linear) and not linear_layers:
            continue
        fan = fans(layer)[0 if isinstance(layer, nn.Linear) or conv_fan == "fan_in" else 1]
        with torch.no_grad():
            layer.weight.normal_(0.0, math.sqrt(2.0 / fan))
        _zero_bias(layer)


def keep_pytorch_defaults(model: nn.Module) -> None:
    """The ``"pytorch"`` scheme: leave every layer as PyTorch initialised it."""


def initialiser(
    init: str, *, paper: Initialiser, model_name: str, extra: dict[str, Initialiser] | None = None
) -> Initialiser:
    """The function applying scheme ``init``; ``paper`` is the model's own paper scheme and
    ``extra`` names schemes one model adds (LeNet-5's too-small normal for the studies)."""
    schemes: dict[str, Initialiser] = {
        "paper": paper,
        "xavier": xavier_init,
        "kaiming": kaiming_init,
        "pytorch": keep_pytorch_defaults,
        **(extra or {}),
    }
    if init not in schemes:
        raise UserError(
            f"Unknown init {init!r} for {model_name}: choose one of {', '.join(map(repr, schemes))}."
        )
    return schemes[init]
