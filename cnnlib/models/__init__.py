"""The model registry: every architecture of the course, created by name.

Each architecture module registers a builder with :func:`register`, which records the
paper's input and initialisation. A builder only constructs its network, from keyword
arguments it names in its signature (``num_classes``, ``in_channels``, ``input_size`` where it
needs them, ``small_input`` where it has a small-input form, and its own options).
:func:`create` does the shared work: it rejects an unknown option, decides the small-input
form, applies the initialisation scheme (:mod:`cnnlib.models.init`) and checks that the input
is large enough for every layer (:func:`cnnlib.arithmetic.check_input_size`).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from cnnlib.errors import UserError
from cnnlib.models.blocks import use_small_input
from cnnlib.models.init import Initialiser, initialiser

Builder = Callable[..., nn.Module]

# Arguments create() supplies from its own parameters, not from a user's options.
_SUPPLIED = ("num_classes", "in_channels", "input_size")


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows of one architecture.

    ``paper_input`` is the (C, H, W) the paper trains on. A ``fixed_size`` model is always
    fed images of that height and width (LeNet-5's 32×32); the others take the data set's
    own size, brought up to at least ``min_size``. ``paper_init`` is the paper's initialisation
    (``init="paper"``); ``default_init`` the scheme used when none is asked for, or a function
    of the builder's arguments giving it; ``extra_inits`` the schemes this model adds;
    ``title`` names the model in messages.
    """

    name: str
    builder: Builder
    paper_input: tuple[int, int, int]
    paper_init: Initialiser
    title: str
    default_init: str | Callable[[dict[str, Any]], str] = "paper"
    extra_inits: dict[str, Initialiser] = field(default_factory=dict)
    fixed_size: bool = False
    min_size: int = 32
    summary: str = ""

    def input_size_for(self, data_hw: int) -> int:
        """The height (= width) at which this model is fed images of side ``data_hw``."""
        if self.fixed_size:
            return self.paper_input[1]
        return max(data_hw, self.min_size)

    @property
    def signature(self) -> inspect.Signature:
        """The builder's signature."""
        return inspect.signature(self.builder)

    @property
    def options(self) -> list[str]:
        """The options a user may pass to :func:`create` for this model."""
        return [key for key in self.signature.parameters if key not in _SUPPLIED] + ["init"]


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
    "fastnet",
)


def register(
    name: str,
    *,
    paper_input: tuple[int, int, int],
    paper_init: Initialiser,
    title: str,
    default_init: str | Callable[[dict[str, Any]], str] = "paper",
    extra_inits: dict[str, Initialiser] | None = None,
    fixed_size: bool = False,
    min_size: int = 32,
    summary: str = "",
) -> Callable[[Builder], Builder]:
    """Decorator: register a builder under ``name`` with its paper's input and initialisation
    (see :class:`ModelSpec`). The builder takes keyword arguments only."""

    def decorate(builder: Builder) -> Builder:
        _REGISTRY[name] = ModelSpec(
            name,
            builder,
            paper_input,
            paper_init,
            title,
            default_init,
            dict(extra_inits or {}),
            fixed_size,
            min_size,
            summary,
        )
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
    """Reject an option that model ``name`` does not take, listing the ones it does."""
    accepted = spec(name).options
    unknown = [key for key in options if key not in accepted]
    if unknown:
        raise UserError(
            f"Model {name!r} has no option {unknown[0]!r}: its options are {', '.join(accepted)}."
        )


def create(
    name: str,
    num_classes: int = 10,
    in_channels: int | None = None,
    input_size: int | tuple[int, int] | None = None,
    **options,
) -> nn.Module:
    """Build model ``name`` for ``num_classes`` classes and (C, H, W) input.

    ``in_channels`` and ``input_size`` default to the paper's input. ``small_input`` (where the
    model has a small-input form) defaults to the inputs of side at most 64; ``init`` to the
    scheme recorded at registration (the paper's, but for LeNet-5's modern form). The input size is
    checked against every layer with the output-size formula, so an input too small for the network
    fails here with the layer and the formula named.
    """
    from cnnlib.arithmetic import check_input_size

    entry = spec(name)
    check_options(name, options)
    channels = entry.paper_input[0] if in_channels is None else in_channels
    if input_size is None:
        input_size = entry.paper_input[1:]
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    init = options.pop("init", None)
    supplied = {"num_classes": num_classes, "in_channels": channels, "input_size": size}
    if "small_input" in entry.signature.parameters:
        options["small_input"] = use_small_input(size, options.get("small_input"))
    arguments = entry.signature.bind(
        **{key: value for key, value in supplied.items() if key in entry.signature.parameters}, **options
    )
    arguments.apply_defaults()
    if init is None:
        init = (
            entry.default_init
            if isinstance(entry.default_init, str)
            else entry.default_init(arguments.arguments)
        )
    initialise = initialiser(init, paper=entry.paper_init, model_name=entry.title, extra=entry.extra_inits)
    model = entry.builder(*arguments.args, **arguments.kwargs)
    # What plots.model_label names the model by in its figures' titles (small_input follows from the size).
    model.cnnlib_name, model.cnnlib_options = name, {k: v for k, v in options.items() if k != "small_input"}
    initialise(model)
    check_input_size(model, (channels, *size))
    return model
