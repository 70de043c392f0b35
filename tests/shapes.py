"""Helpers the model tests share: building through the registry, counting parameters and
multiply-accumulates, and the shapes of named modules in one forward."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlib.models import create


def build(name: str, side: int, *, num_classes: int = 10, in_channels: int = 3, **options) -> nn.Module:
    """The model as the library builds it, for side×side inputs (create() checks the size)."""
    return create(name, num_classes, in_channels, side, **options)


def on_meta(name: str, side: int = 224, **options) -> nn.Module:
    """An ImageNet-size model (1000 classes) on the meta device (shapes only), in eval mode."""
    with torch.device("meta"):
        return build(name, side, num_classes=1000, **options).eval()


def conv_shapes(model: nn.Module) -> dict[str, tuple]:
    """Every convolution of ``model`` by name, in order: channels in and out, kernel, stride, padding,
    groups."""
    return {
        name: (m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.groups)
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d)
    }


def count_params(model: nn.Module, skip: tuple[str, ...] = ()) -> int:
    """Parameters of ``model``, leaving out those whose names start with one of ``skip``."""
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith(skip))


def count_macs(model: nn.Module, side: int = 224) -> tuple[float, dict[str, float]]:
    """Total multiply-accumulates of a batch-1 forward of side×side images, and per module (FLOPs / 2)."""
    device = next(model.parameters()).device
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(1, 3, side, side, device=device))
    per_module = {
        key.partition(".")[2]: sum(ops.values()) / 2 for key, ops in counter.get_flop_counts().items()
    }
    return counter.get_total_flops() / 2, per_module


def giga_macs(model: nn.Module, side: int = 224) -> float:
    """Multiply-accumulates of a batch-1 forward of side×side images, in G."""
    return count_macs(model, side)[0] / 1e9


def io_shapes(model: nn.Module, x: torch.Tensor, modules: list[str]) -> dict[str, tuple[tuple, tuple]]:
    """(C, H, W) of each named module's input and output in one forward."""
    shapes: dict[str, tuple[tuple, tuple]] = {}

    def record(name: str):
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            shapes.setdefault(name, (tuple(args[0].shape[1:]), tuple(out.shape[1:])))

        return hook

    handles = [model.get_submodule(name).register_forward_hook(record(name)) for name in modules]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return shapes
