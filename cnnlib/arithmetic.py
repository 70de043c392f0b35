"""Convolution arithmetic: the output-size formula, receptive fields and a per-layer table.

The output side of a convolution or pooling window over an input side ``W`` (kernel ``F``,
stride ``S``, padding ``P``, dilation ``D``) is ``O = ⌊(W − D·(F − 1) − 1 + 2P)/S⌋ + 1``, which
is ``⌊(W − F + 2P)/S⌋ + 1`` for ``D = 1`` (Dumoulin & Visin, "A guide to convolution
arithmetic for deep learning", 2016, Relationship 6 and Sec. 5.1). Pooling layers with
``ceil_mode`` round up instead, as PyTorch defines it: the last window must still start
inside the input or its left padding, otherwise it is dropped.

:func:`layer_table` runs a model once and gives one row per call of a leaf module (a module
without children). What counts as what:

* **conv-like**: an ``nn.modules.conv._ConvNd``, or any module with ``kernel_size``,
  ``stride`` and ``padding`` attributes and a parameter named ``weight`` (LeNet-5's sparse
  C3). MACs = ``weight.numel() × H_out × W_out``, which covers groups and sparse kernels
  whose ``weight`` holds only the real connections. Biases are not counted.
* **pool-like**: a module with ``kernel_size``, ``stride`` and ``padding`` and no ``weight``
  parameter (max/average pooling, LeNet-5's trainable subsampling), or an adaptive pool.
  MACs 0: the papers and torchvision's model cards count only the multiply–accumulates of
  convolutions and fully connected layers. An adaptive pool is shown as the fixed pool it
  amounts to on this input: kernel = its widest bin, stride = ``n // o`` (at least 1),
  exact whenever the output side ``o`` divides the input side ``n``; it has no formula.
* **nn.Linear**: MACs = ``in_features × out_features × rows``, rows being the product of
  the input's leading dimensions after the batch.
* **everything else** (normalisation, activations, dropout, LRN, flatten...): MACs 0.

With these rules the total equals ``torch.utils.flop_counter.FlopCounterMode``'s FLOPs / 2
for models made of convolutions and linear layers. Transposed convolutions are not covered.

Receptive field (side, in input pixels, along the height axis) and jump (the distance in
input pixels between neighbouring outputs) follow every tensor of the forward pass: a
conv/pool window of effective kernel ``k_eff = D·(F − 1) + 1`` and stride ``S`` gives
``rf_out = rf_in + (k_eff − 1)·jump_in`` and ``jump_out = jump_in·S`` (Araujo, Norris & Sim,
"Computing receptive fields of convolutional neural networks", Distill, 2019). A tensor
made from several others (addition, concatenation, product...) takes the largest receptive
field of its inputs and the smallest jump (a broadcast 1×1 tensor, such as a squeeze-and-
excitation scale, does not coarsen the grid). Ops that merge every position (a linear
layer on a flat input, global pooling, a mean over the spatial axes) act as a window as
wide as the feature map: the receptive field is then the whole input region reached, the
theoretical value, not capped: it exceeds the input side when the layers pad (ResNet-18
at 224×224: 435 after its last convolution, 435 + 6·32 = 627 after global pooling).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import chain
from typing import NamedTuple

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from cnnlib.errors import UserError

MINUS, TIMES, DOT = "\u2212", "\u00d7", "\u00b7"

# The largest square side tried when looking for the smallest input a network accepts.
_LARGEST_SIDE = 8192

TABLE_COLUMNS = (
    "name",
    "type",
    "kernel",
    "stride",
    "padding",
    "input_shape",
    "output_shape",
    "formula",
    "params",
    "macs",
    "receptive_field",
    "jump",
)
# The columns a page shows of a layer table, so that it fits a column of text: what each layer gives
# (SUMMARY_COLUMNS), and the window and output-size formula of each layer that has one (WINDOW_COLUMNS,
# the rows whose formula is not empty), e.g. ``table[SUMMARY_COLUMNS]``.
SUMMARY_COLUMNS = ["name", "output_shape", "params", "macs", "receptive_field"]
WINDOW_COLUMNS = ["name", "kernel", "stride", "padding", "formula"]


def conv_output_size(
    size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1, ceil_mode: bool = False
) -> int:
    """Output side of a convolution or pooling window; may be ≤ 0 when the input is too small."""
    span = size + 2 * padding - dilation * (kernel_size - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    output = -(-span // stride) + 1
    # PyTorch's pooling_output_shape: the last window must start inside the input or the left padding.
    return output - 1 if (output - 1) * stride >= size + padding else output


def formula_text(
    size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1, ceil_mode: bool = False
) -> str:
    """The output-size formula evaluated as text, e.g. ``(32 − 5 + 2·0)/1 + 1 = 28``.

    The division is wrapped in floor brackets ``⌊…⌋`` (ceil brackets ``⌈…⌉`` in ceil mode)
    only when it is not exact: ``⌊(224 − 11 + 2·0)/4⌋ + 1 = 54``. A dilated kernel is shown
    as its effective size ``D·(F − 1) + 1`` in place of ``F``:
    ``(32 − (2·(3 − 1) + 1) + 2·2)/1 + 1 = 32``. When ceil mode drops a last window that would
    start in the right padding, the text ends in ``+ 1 − 1``: ``⌈(5 − 2 + 2·1)/2⌉ + 1 − 1 = 3``.
    """
    kernel = str(kernel_size) if dilation == 1 else f"({dilation}{DOT}({kernel_size} {MINUS} 1) + 1)"
    quotient = f"({size} {MINUS} {kernel} + 2{DOT}{padding})/{stride}"
    span = size + 2 * padding - dilation * (kernel_size - 1) - 1
    if span % stride:
        quotient = f"\u2308{quotient}\u2309" if ceil_mode else f"\u230a{quotient}\u230b"
    output = conv_output_size(size, kernel_size, stride, padding, dilation, ceil_mode)
    dropped = ceil_mode and output == -(-span // stride)
    return f"{quotient} + 1{f' {MINUS} 1' if dropped else ''} = {output}"


# --- Windows: the kernel, stride, padding and dilation of a conv/pool layer, per spatial axis.


@dataclass(frozen=True)
class _Window:
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...] | str  # "same": the output keeps the input's size
    dilation: tuple[int, ...]
    ceil_mode: bool = False
    adaptive: bool = False

    @classmethod
    def of(cls, ndim: int, kernel, stride, padding=0, dilation=1, ceil_mode=False) -> _Window:
        def per_axis(value) -> tuple[int, ...]:
            return tuple(value) if isinstance(value, (tuple, list)) else (value,) * ndim

        if padding == "valid":
            padding = 0
        return cls(
            per_axis(kernel),
            per_axis(stride or kernel),
            padding if padding == "same" else per_axis(padding),
            per_axis(dilation),
            bool(ceil_mode),
        )

    @classmethod
    def adaptive_pool(cls, in_sizes: tuple[int, ...], out_sizes: tuple[int, ...]) -> _Window:
        """The fixed pool an adaptive pool amounts to: its widest bin, stride ``n // o``."""
        kernel = tuple(
            max(-(-(i + 1) * n // o) - i * n // o for i in range(o)) for n, o in zip(in_sizes, out_sizes)
        )
        stride = tuple(max(1, n // o) for n, o in zip(in_sizes, out_sizes))
        ones = (1,) * len(in_sizes)
        return cls(kernel, stride, (0,) * len(in_sizes), ones, adaptive=True)

    def output_size(self, axis: int, size: int) -> int:
        """Output side along ``axis`` for an input side ``size`` (``"same"`` keeps it)."""
        if self.padding == "same":
            return size
        return conv_output_size(
            size,
            self.kernel[axis],
            self.stride[axis],
            self.padding[axis],
            self.dilation[axis],
            self.ceil_mode,
        )

    def formula(self, axis: int, size: int) -> str:
        """:func:`formula_text` along ``axis``; "" for adaptive pools and ``"same"`` padding."""
        if self.adaptive or self.padding == "same":
            return ""
        return formula_text(
            size,
            self.kernel[axis],
            self.stride[axis],
            self.padding[axis],
            self.dilation[axis],
            self.ceil_mode,
        )


def _has_window(module: nn.Module) -> bool:
    return all(hasattr(module, attribute) for attribute in ("kernel_size", "stride", "padding"))


def _is_conv_like(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.conv._ConvNd) or (
        _has_window(module) and isinstance(getattr(module, "weight", None), nn.Parameter)
    )


def _is_adaptive_pool(module: nn.Module) -> bool:
    return isinstance(module, (nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd))


def _fixed_window(module: nn.Module, ndim: int) -> _Window:
    return _Window.of(
        ndim,
        module.kernel_size,
        module.stride,
        module.padding,
        getattr(module, "dilation", 1),
        getattr(module, "ceil_mode", False),
    )


def _module_window(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> _Window | None:
    """The window of a conv- or pool-like module called on ``x`` giving ``y``; None for others."""
    if _is_adaptive_pool(module):
        return _Window.adaptive_pool(tuple(x.shape[2:]), tuple(y.shape[2:]))
    if _has_window(module):
        return _fixed_window(module, x.dim() - 2)
    return None


def _arg(args: tuple, kwargs: dict, index: int, name: str, default=None):
    return args[index] if len(args) > index else kwargs.get(name, default)


_CONVS = {F.conv1d, F.conv2d, F.conv3d}
_MAX_POOLS = {F.max_pool1d, F.max_pool2d, F.max_pool3d}
_POOLS = _MAX_POOLS | {F.avg_pool1d, F.avg_pool2d, F.avg_pool3d}
_ADAPTIVE_POOLS = {
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d,
    F.adaptive_max_pool1d,
    F.adaptive_max_pool2d,
    F.adaptive_max_pool3d,
}
_REDUCTIONS = {torch.mean, torch.Tensor.mean, torch.sum, torch.Tensor.sum, torch.amax, torch.Tensor.amax}


def _functional_window(
    func: Callable, args: tuple, kwargs: dict, x: torch.Tensor, y: torch.Tensor
) -> _Window | None:
    """The window of a functional conv/pool call (``F.conv2d``, ``F.max_pool2d``...); None for other ops."""
    ndim = x.dim() - 2
    if func in _CONVS:
        return _Window.of(
            ndim,
            tuple(args[1].shape[2:]),
            _arg(args, kwargs, 3, "stride", 1),
            _arg(args, kwargs, 4, "padding", 0),
            _arg(args, kwargs, 5, "dilation", 1),
        )
    if func in _POOLS:
        dilation = _arg(args, kwargs, 4, "dilation", 1) if func in _MAX_POOLS else 1
        return _Window.of(
            ndim,
            _arg(args, kwargs, 1, "kernel_size"),
            _arg(args, kwargs, 2, "stride"),
            _arg(args, kwargs, 3, "padding", 0),
            dilation,
        )
    if func in _ADAPTIVE_POOLS:
        return _Window.adaptive_pool(tuple(x.shape[2:]), tuple(y.shape[2:]))
    return None


def _merges_every_position(func: Callable, args: tuple, kwargs: dict, x: torch.Tensor) -> bool:
    """A linear layer on a flat input, or a reduction over the height axis."""
    if func is F.linear:
        return x.dim() == 2
    if func in _REDUCTIONS and x.dim() >= 3:
        dims = _arg(args, kwargs, 1, "dim")
        dims = range(x.dim()) if dims is None else (dims,) if isinstance(dims, int) else dims
        return 2 in {dim % x.dim() for dim in dims}
    return False


# --- Receptive-field tracking.


class _Field(NamedTuple):
    """Receptive field and jump of a tensor along the height axis; ``extent`` is the height of
    the feature map it comes from (kept through flattening)."""

    rf: int
    jump: int
    extent: int

    def through(self, kernel: int, stride: int, dilation: int, extent: int) -> _Field:
        return _Field(self.rf + dilation * (kernel - 1) * self.jump, self.jump * stride, extent)

    def merged_over_positions(self) -> _Field:
        return self.through(self.extent, self.extent, 1, 1)


def _tensors(tree) -> list[torch.Tensor]:
    return [leaf for leaf in tree_leaves(tree) if isinstance(leaf, torch.Tensor)]


class _ReceptiveFieldTracker(TorchFunctionMode):
    """Gives every tensor made during a forward pass a :class:`_Field`, from its inputs'."""

    def __init__(self, source: torch.Tensor):
        super().__init__()
        # Keyed by id(); the tensor is kept alive so that its id is not reused.
        self._fields: dict[int, tuple[torch.Tensor, _Field]] = {}
        self.set(source, _Field(1, 1, source.shape[2]))

    def get(self, tensor: torch.Tensor) -> _Field | None:
        entry = self._fields.get(id(tensor))
        return entry[1] if entry else None

    def set(self, tensor: torch.Tensor, field: _Field) -> None:
        self._fields[id(tensor)] = (tensor, field)

    def through_window(self, x: torch.Tensor, y: torch.Tensor, window: _Window) -> None:
        """Give ``y`` the field of ``x`` seen through ``window`` (height axis)."""
        field = self.get(x)
        if field is not None:
            self.set(y, field.through(window.kernel[0], window.stride[0], window.dilation[0], y.shape[2]))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        inputs = [(t, field) for t in _tensors((args, kwargs)) if (field := self.get(t)) is not None]
        outputs = _tensors(result)
        if not inputs or not outputs:
            return result
        x, field = inputs[0]
        window = _functional_window(func, args, kwargs, x, outputs[0])
        for y in outputs:
            if window is not None:
                self.through_window(x, y, window)
            elif _merges_every_position(func, args, kwargs, x):
                self.set(y, field.merged_over_positions())
            else:
                fields = [f for _, f in inputs]
                extent = y.shape[2] if y.dim() >= 3 else max(f.extent for f in fields)
                self.set(y, _Field(max(f.rf for f in fields), min(f.jump for f in fields), extent))
        return result


# --- Running a model with hooks.


def _device_of(model: nn.Module) -> torch.device:
    tensor = next(chain(model.parameters(), model.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


@contextmanager
def forward_hooks(
    model: nn.Module,
    modules: list[tuple[str, nn.Module]],
    *,
    pre_hook: Callable | None = None,
    hook: Callable | None = None,
) -> Iterator[None]:
    """The model in eval mode with ``pre_hook(name, module, args)`` / ``hook(name, module, args, output)``
    on ``modules`` (``(name, module)`` pairs); hooks removed and every training flag restored on exit,
    even after an exception. The layer table, Grad-CAM's layer search and the feature maps use it."""
    training = {module: module.training for module in model.modules()}
    handles = []
    try:
        for name, module in modules:
            if pre_hook is not None:
                handles.append(module.register_forward_pre_hook(partial(pre_hook, name)))
            if hook is not None:
                handles.append(module.register_forward_hook(partial(hook, name)))
        model.eval()
        yield
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in training.items():
            module.training = flag


def _shape(tensor: torch.Tensor) -> tuple[int, ...]:
    return tuple(tensor.shape[1:])


def _compact(values: tuple[int, ...] | str) -> str:
    if isinstance(values, str):
        return values
    return str(values[0]) if len(set(values)) == 1 else TIMES.join(map(str, values))


def _macs(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    if _is_conv_like(module):
        return module.weight.numel() * math.prod(y.shape[2:])
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features * math.prod(x.shape[1:-1])
    return 0


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, module) for name, module in model.named_modules() if next(module.children(), None) is None]


def count_macs(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Multiply–accumulates of one image's forward pass, counted as :func:`layer_table` counts
    them, without building the table."""
    total = 0

    def add(name: str, module: nn.Module, args: tuple, output) -> None:
        nonlocal total
        total += _macs(module, _tensors(args)[0], _tensors(output)[0])

    with forward_hooks(model, _leaves(model), hook=add), torch.no_grad():
        model(torch.zeros(1, *input_shape, device=_device_of(model)))
    return total


def layer_table(model: nn.Module, input_shape: tuple[int, int, int]) -> pd.DataFrame:
    """One row per call of a leaf module on a (C, H, W) input: shapes, formula, params, MACs,
    receptive field and jump (see the module docstring for the rules)."""
    rows: list[dict] = []
    counted: set[nn.Module] = set()
    x = torch.zeros(1, *input_shape, device=_device_of(model))
    tracker = _ReceptiveFieldTracker(x)

    def add_row(name: str, module: nn.Module, args: tuple, output) -> None:
        inputs, outputs = _tensors(args), _tensors(output)
        layer_in, layer_out = inputs[0], outputs[0]
        window = _module_window(module, layer_in, layer_out)
        if window is not None:
            tracker.through_window(layer_in, layer_out, window)
        field = tracker.get(layer_out)
        params = 0 if module in counted else sum(p.numel() for p in module.parameters(recurse=False))
        counted.add(module)
        rows.append(
            {
                "name": name,
                "type": type(module).__name__,
                "kernel": TIMES.join(map(str, window.kernel)) if window else "",
                "stride": _compact(window.stride) if window else "",
                "padding": _compact(window.padding) if window else "",
                "input_shape": _shape(layer_in),
                "output_shape": _shape(layer_out),
                "formula": window.formula(0, layer_in.shape[2]) if window else "",
                "params": params,
                "macs": _macs(module, layer_in, layer_out),
                "receptive_field": field.rf if field else None,
                "jump": field.jump if field else None,
            }
        )

    with forward_hooks(model, _leaves(model), hook=add_row), torch.no_grad(), tracker:
        model(x)
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    table.attrs["total_params"] = sum(p.numel() for p in model.parameters())
    table.attrs["total_macs"] = int(table["macs"].sum())
    table.attrs["input_shape"] = tuple(input_shape)
    return table


# --- Input-size check.


class _EmptyOutput(Exception):
    """Raised from a pre-hook to stop the forward pass at the first layer with an empty output."""

    def __init__(self, name: str, module: nn.Module, axis: int, formula: str):
        super().__init__(name)
        self.name, self.module, self.axis, self.formula = name, module, axis, formula


def _forward_without_compute(model: nn.Module, input_shape: tuple[int, int, int]) -> None:
    """Run the model on shapes only (meta tensors); if that fails, on a real batch of one."""
    state = {
        name: torch.empty_like(t, device="meta")
        for name, t in chain(model.named_parameters(), model.named_buffers())
    }
    with torch.no_grad():
        try:
            functional_call(model, state, (torch.empty(1, *input_shape, device="meta"),))
        except _EmptyOutput:
            raise
        except Exception:
            # An op without a meta kernel, a value read with .item()...: a real forward pass
            # does the check instead, and raises again any error that is not about meta tensors.
            model(torch.zeros(1, *input_shape, device=_device_of(model)))


def _first_empty_layer(model: nn.Module, input_shape: tuple[int, int, int]) -> _EmptyOutput | None:
    """The first conv/pool layer whose output would be empty on this input, or None."""

    def check(name: str, module: nn.Module, args: tuple) -> None:
        x = _tensors(args)[0]
        window = _fixed_window(module, x.dim() - 2)
        for axis, size in enumerate(x.shape[2:]):
            if window.output_size(axis, size) < 1:
                raise _EmptyOutput(name, module, axis, window.formula(axis, size))

    windowed = [(name, module) for name, module in model.named_modules() if _has_window(module)]
    with forward_hooks(model, windowed, pre_hook=check):
        try:
            _forward_without_compute(model, input_shape)
        except _EmptyOutput as empty:
            return empty
    return None


def _fits(model: nn.Module, channels: int, side: int) -> bool:
    try:
        return _first_empty_layer(model, (channels, side, side)) is None
    except RuntimeError:
        # A layer sized for another input (a fixed linear layer) refused it after every
        # conv/pool layer before it had a non-empty output: the size fits those layers.
        return True


def _smallest_square_side(model: nn.Module, channels: int, too_small: int) -> int | None:
    """The smallest square side accepted by every conv/pool layer, above a side that is not;
    None beyond ``_LARGEST_SIDE``. Assumes that a larger input never gives a smaller output."""
    low, high = too_small, max(2 * too_small, 1)
    while not _fits(model, channels, high):
        if high >= _LARGEST_SIDE:
            return None
        low, high = high, min(2 * high, _LARGEST_SIDE)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if _fits(model, channels, middle) else (middle, high)
    return high


def check_input_size(model: nn.Module, input_shape: tuple[int, int, int]) -> None:
    """Raise :class:`UserError` if a (C, H, W) input is too small for a conv/pool layer of the model.

    The sizes are checked before each layer runs, on meta tensors (no real compute), naming
    the first layer whose output would be empty and the smallest square input that fits.
    Other errors (a linear layer sized for another input) are bugs and propagate. The model
    is left as it was: parameters, hooks and training flags.
    """
    empty = _first_empty_layer(model, input_shape)
    if empty is None:
        return
    channels, height, width = input_shape
    side = _smallest_square_side(model, channels, min(height, width))
    advice = (
        f"give the network an input of at least {side}{TIMES}{side}"
        if side is not None
        else f"no square input up to {_LARGEST_SIDE}{TIMES}{_LARGEST_SIDE} fits this network"
    )
    raise UserError(
        f"Input {channels}{TIMES}{height}{TIMES}{width} is too small for {type(model).__name__}: "
        f"layer {empty.name} ({type(empty.module).__name__}) would give {empty.formula} "
        f"{'rows' if empty.axis == 0 else 'columns'}; {advice}."
    )
