"""Shapes of named modules in one forward: a helper the model tests share."""

from __future__ import annotations

import torch
from torch import nn


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
