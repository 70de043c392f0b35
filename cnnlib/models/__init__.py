"""The model registry: every architecture of the course, created by name.

Each architecture module registers a builder with :func:`register`; :func:`create` builds
it for a number of classes, input channels and input size, and checks that the input is
large enough for every layer (see :func:`cnnlib.arithmetic.check_input_size`).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Callable

from torch import nn

from cnnlib.errors import UserError

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows of one architecture.

    ``paper_input`` is the (C, H, W) the paper trains on. A ``fixed_size`` model is always
    fed images of that height and width (LeNet-5's 32×32); the others take the data set's
    own size, brought up to at least ``min_size``.
    """

    name: str
    builder: Builder
    paper_input: tuple[int, int, int]
    fixed_size: bool = False
    min_size: int = 32
    summary: str = ""

    def input_size_for(self, data_hw: int) -> int:
        """The height (= width) at which this model is fed images of side ``data_hw``."""
        if self.fixed_size:
            return self.paper_input[1]
        return max(data_hw, self.min_size)


_REGISTRY: dict[str, ModelSpec] = {}

# Architecture modules, imported on first use so that `import cnnlib` stays fast.
_MODULES = (
    "lenet",
    "alexnet",
    "nin",
    "vgg",
    "googlenet",
    "resnet",
    "densenet",
    "mobilenet",
    "efficientnet",
)


def register(
    name: str,
    *,
    paper_input: tuple[int, int, int],
    fixed_size: bool = False,
    min_size: int = 32,
    summary: str = "",
) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder(num_classes=, in_channels=, input_size=, **options)``."""

    def decorate(builder: Builder) -> Builder:
        _REGISTRY[name] = ModelSpec(name, builder, paper_input, fixed_size, min_size, summary)
        return builder

    return decorate


def _load_all() -> None:
    for module in _MODULES:
        try:
            importlib.import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{module}":
                raise


def names() -> list[str]:
    """Every registered model name, in the course's order (that of ``_MODULES``)."""
    _load_all()
    chapter = {f"{__name__}.{module}": index for index, module in enumerate(_MODULES)}
    return sorted(_REGISTRY, key=lambda name: chapter[_REGISTRY[name].builder.__module__])


def spec(name: str) -> ModelSpec:
    """The registry entry for ``name``; an unknown name lists the choices."""
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(
            f"Unknown model {name!r}: choose one of {', '.join(names())} (`cnnlib models` lists them)."
        ) from None


def check_options(name: str, options: dict) -> None:
    """Reject an option that model ``name``'s builder does not take, listing the ones it does.
    A builder that forwards ``**options`` is checked when it is called (see :func:`create`)."""
    parameters = inspect.signature(spec(name).builder).parameters
    if any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters.values()):
        return
    accepted = [key for key in parameters if key not in ("num_classes", "in_channels", "input_size")]
    unknown = [key for key in options if key not in accepted]
    if unknown:
        raise UserError(f"Model {name!r} has no option {unknown[0]!r}: its options are {', '.join(accepted) or 'none'}.")


def create(
    name: str,
    num_classes: int = 10,
    in_channels: int | None = None,
    input_size: int | tuple[int, int] | None = None,
    **options,
) -> nn.Module:
    """Build model ``name`` for ``num_classes`` classes and (C, H, W) input.

    ``in_channels`` and ``input_size`` default to the paper's input. The input size is
    checked against every layer with the output-size formula, so an input too small for
    the network fails here with the layer and the formula named.
    """
    from cnnlib.arithmetic import check_input_size

    entry = spec(name)
    channels = entry.paper_input[0] if in_channels is None else in_channels
    if input_size is None:
        input_size = entry.paper_input[1:]
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    check_options(name, options)
    try:
        model = entry.builder(num_classes=num_classes, in_channels=channels, input_size=size, **options)
    except TypeError as error:  # a builder that forwards its options met one it does not know
        if "unexpected keyword argument" not in str(error):
            raise
        raise UserError(f"Model {name!r} has no option {str(error).split('argument ')[-1]}: "
                        f"see its options with help(cnnlib.models.spec({name!r}).builder).") from None
    check_input_size(model, (channels, *size))
    return model
