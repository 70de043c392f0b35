"""Weight initialisation schemes of the model zoo, selected by each builder's ``init`` option.

Every builder accepts ``init="paper"`` (what its paper prescribes, written in the model's own
module), ``"xavier"``, ``"kaiming"`` and ``"pytorch"`` (PyTorch's layer defaults, left as they
are). :func:`initialiser` turns the option into a function and rejects unknown names before
the model is built. The schemes here touch convolutions and linear layers only; batch-norm
layers keep PyTorch's defaults (weight 1, bias 0), which is what every paper of the course
uses.

* :func:`normal_init`: zero-mean Gaussian weights of a fixed standard deviation and constant
  biases, the hand-set initialisation of Krizhevsky et al. 2012 §5 and its successors.
* :func:`xavier_init`: Glorot & Bengio 2010, uniform in ±√(6 / (fan_in + fan_out)).
* :func:`kaiming_init`: He et al. 2015 ("Delving deep into rectifiers"), normal with
  std √(2 / fan): the fan-out in convolutions, as in ResNet's reference code, the fan-in in
  linear layers.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from cnnlib.errors import UserError

Initialiser = Callable[[nn.Module], None]

INIT_SCHEMES: tuple[str, ...] = ("paper", "xavier", "kaiming", "pytorch")

WEIGHTED_LAYERS = (nn.Conv2d, nn.Linear)


def weighted_layers(model: nn.Module) -> list[nn.Conv2d | nn.Linear]:
    """The convolutions and linear layers of ``model``, in registration order."""
    return [module for module in model.modules() if isinstance(module, WEIGHTED_LAYERS)]


def normal_init(model: nn.Module, std: float = 0.01, bias: float = 0.0) -> None:
    """Weights drawn from N(0, std²), biases set to ``bias``, in every conv and linear layer."""
    for layer in weighted_layers(model):
        nn.init.normal_(layer.weight, 0.0, std)
        if layer.bias is not None:
            nn.init.constant_(layer.bias, bias)


def xavier_init(model: nn.Module) -> None:
    """Glorot-uniform weights and zero biases in every conv and linear layer."""
    for layer in weighted_layers(model):
        nn.init.xavier_uniform_(layer.weight)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


def kaiming_init(model: nn.Module) -> None:
    """He-normal weights for ReLU networks and zero biases (He et al. 2015, Sec. 2.2): std
    √(2/fan_out) in convolutions, as ResNet's reference code draws them, and √(2/fan_in) in
    linear layers (the forward-pass form, Eq. 10), where the fan-out of a 10-way classifier
    would give std √(2/10) and logits large enough to stall training (the init study)."""
    for layer in weighted_layers(model):
        mode = "fan_out" if isinstance(layer, nn.Conv2d) else "fan_in"
        nn.init.kaiming_normal_(layer.weight, mode=mode, nonlinearity="relu")
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


def keep_pytorch_defaults(model: nn.Module) -> None:
    """The ``"pytorch"`` scheme: leave every layer as PyTorch initialised it."""


def initialiser(init: str, *, paper: Initialiser, model_name: str,
                extra: dict[str, Initialiser] | None = None) -> Initialiser:
    """The function applying scheme ``init``; ``paper`` is the model's own paper scheme and
    ``extra`` names schemes one model adds (LeNet-5's too-small normal for the studies).

    Call it before building the network, so that a wrong name fails at once.
    """
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
