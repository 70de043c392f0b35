"""Block diagrams of a module, with the tensor shapes its forward pass gives on the arrows.

:func:`block_diagram` traces the module with ``torch.fx`` (every module without children is one
node), runs the traced graph on a zero input of the given shape and records each node's output
shape, so a diagram cannot drift from the code: nothing on it is typed by hand. Batch norm,
activations, dropout and other parameter-free layers that keep the shape are folded into the box
of the layer before them, as the papers' figures draw a layer (LeNet-5 Fig. 2, ResNet Fig. 2);
parallel branches (Inception's Fig. 2b), shortcuts and concatenations keep their own arrows.

It returns a ``graphviz.Digraph``: graphviz lays out branching graphs by itself, which a
hand-placed matplotlib figure would have to do per block; Jupyter shows the digraph as SVG
(Debian's ``graphviz`` package provides the ``dot`` program that renders it).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

import graphviz
import torch
from torch import fx, nn

from cnnlib.arithmetic import TIMES, check_input_size
from cnnlib.errors import UserError

Shape = tuple[int, ...]  # a tensor's shape without its batch dimension
# The widest a diagram is drawn, in inches (graphviz scales a larger one down): the page's output column.
MAX_SIZE = "7,40"
# Element-wise functions drawn inside the box of the layer they follow, and how they are named there.
ELEMENTWISE_FUNCTIONS = {
    "relu": "ReLU",
    "relu_": "ReLU",
    "relu6": "ReLU6",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "silu": "SiLU",
    "gelu": "GELU",
    "hardswish": "hard swish",
    "hardsigmoid": "hard sigmoid",
    "dropout": "dropout",
}
# Functions that join tensors, drawn as a node of their own (a circle for + and ×, a box for concatenate).
JOINS = {"add": "+", "iadd": "+", "mul": TIMES, "imul": TIMES, "cat": "concatenate", "concat": "concatenate"}
COLOURS = {"conv": "#cfe2f3", "pool": "#f4cccc", "linear": "#fff2cc", "join": "#d9ead3", "other": "#eeeeee"}
POOLS = (
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
)


class _LeafTracer(fx.Tracer):
    """Every module without children is one node of the graph, a cnnlib layer (LeNet-5's
    subsampling, the response normalisation) as well as a torch.nn one."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return next(module.children(), None) is None


class _LayerFailed(Exception):
    """A node of the graph refused its input (the original error is the cause)."""

    def __init__(self, node: fx.Node):
        super().__init__(node.name)
        self.node = node


class _ShapeRecorder(fx.Interpreter):
    """Runs the traced graph and keeps each node's output shape (batch dimension left out)."""

    def __init__(self, graph_module: fx.GraphModule):
        super().__init__(graph_module)
        self.shapes: dict[fx.Node, Shape] = {}

    def run_node(self, node: fx.Node):
        try:
            result = super().run_node(node)
        except RuntimeError as error:
            raise _LayerFailed(node) from error
        if isinstance(result, torch.Tensor):
            self.shapes[node] = tuple(result.shape[1:])
        return result


@dataclass
class _Box:
    """One drawn node: a layer and the element-wise layers folded into it."""

    key: str  # the module's path in the block, or the function's node name
    lines: list[str]  # what the layer and the layers folded into it do
    path: str | None  # the module's path, printed under them
    kind: str  # a key of COLOURS, or "input"
    shape: Shape
    inputs: list[_Box] = field(default_factory=list)
    towers: int = 1  # > 1: a grouped convolution drawn as its groups side by side (AlexNet's Fig. 2)
    join: bool = False


def _shape_text(shape: Sequence[int]) -> str:
    return TIMES.join(map(str, shape))


def _function_name(node: fx.Node) -> str:
    target = node.target
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


def _pair(value) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, Sequence) else (value, value)


def _window(module: nn.Module) -> str:
    """ "3×3" or "3×3, stride 2": a layer's window, as the papers' tables write it."""
    stride = _pair(module.stride)
    text = _shape_text(_pair(module.kernel_size))
    if set(stride) == {1}:
        return text
    return f"{text}, stride {stride[0] if len(set(stride)) == 1 else _shape_text(stride)}"


def _describe(module: nn.Module, towers: int) -> tuple[str, str]:
    """The box's text for ``module`` (one of ``towers`` groups), and the box's colour."""
    if isinstance(module, nn.Conv2d):
        kind = "conv"
        if module.groups > 1 and module.groups == module.in_channels:
            return f"depthwise conv {_window(module)}, {module.out_channels}", kind
        grouped = f", {module.groups} groups" if module.groups > 1 and towers == 1 else ""
        return f"conv {_window(module)}, {module.out_channels // towers}{grouped}", kind
    if isinstance(module, nn.Linear):
        return f"FC {module.out_features}", "linear"
    if isinstance(module, (nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)):
        name = "avg-pool" if isinstance(module, nn.modules.pooling._AdaptiveAvgPoolNd) else "max-pool"
        size = _pair(module.output_size)
        return (f"global {name}" if set(size) == {1} else f"{name} to {_shape_text(size)}"), "pool"
    if isinstance(module, POOLS):
        name = "max-pool" if isinstance(module, nn.modules.pooling._MaxPoolNd) else "avg-pool"
        return f"{name} {_window(module)}", "pool"
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return "batch norm", "other"
    if isinstance(module, nn.LocalResponseNorm):
        return "response norm", "other"
    if isinstance(module, nn.modules.dropout._DropoutNd):
        return f"dropout {module.p:g}", "other"
    if isinstance(module, nn.Flatten):
        return "flatten", "other"
    # A layer of cnnlib's own (LeNet-5's subsampling and sparse C3, its RBF output, a shortcut).
    text = type(module).__name__
    if hasattr(module, "kernel_size"):
        text += f" {_window(module)}"
    if hasattr(module, "out_channels"):
        text += f", {module.out_channels}"
        return text, "conv"
    return text, "pool" if hasattr(module, "kernel_size") else "other"  # a window without kernels pools


def _foldable(
    node: fx.Node, modules: dict[str, nn.Module], shapes: dict[fx.Node, Shape], source: fx.Node
) -> str | None:
    """The line ``node`` adds to the box of ``source`` (its only tensor input) if it is an element-wise
    layer that keeps the shape, else None."""
    if shapes[node] != shapes[source]:
        return None
    if node.op == "call_module":
        module = modules[node.target]
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            return "batch norm"
        if next(module.parameters(), None) is None and not isinstance(module, POOLS + (nn.Flatten,)):
            return _describe(module, 1)[0]
        return None
    if node.op in ("call_function", "call_method"):
        return ELEMENTWISE_FUNCTIONS.get(_function_name(node))
    return None


def _describe_function(node: fx.Node) -> tuple[str, bool]:
    """The text for a function or method node, and whether it joins tensors."""
    name = _function_name(node)
    if name in JOINS:
        return JOINS[name], True
    if name in ("flatten", "view", "reshape"):
        return "flatten", False
    return ("slice" if name == "getitem" else name), False


def _check_shape(input_shape: object) -> tuple[int, ...]:
    if (
        not isinstance(input_shape, (tuple, list))
        or not input_shape
        or not all(isinstance(side, int) and not isinstance(side, bool) and side > 0 for side in input_shape)
    ):
        raise UserError(
            f"input_shape must be a tuple of positive whole numbers such as (3, 32, 32), not {input_shape!r}."
        )
    return tuple(input_shape)


def _failure(
    block: nn.Module, input_shape: tuple[int, ...], failed: _LayerFailed, inputs: list[Shape]
) -> UserError:
    """One sentence for an input the block cannot take: the input too small for a layer (said by
    :func:`cnnlib.arithmetic.check_input_size`), or the layer that refused it."""
    if len(input_shape) == 3:
        try:
            check_input_size(block, input_shape)
        except UserError as too_small:
            return too_small
        except RuntimeError:
            pass  # refused for another reason: named below
    node = failed.node
    if node.op != "call_module":
        return UserError(
            f"{type(block).__name__} cannot take an input of shape {_shape_text(input_shape)}: "
            f"the operation {_function_name(node)} fails on it; give input_shape as the "
            f"(channels, height, width) of one example the block accepts."
        )
    module = block.get_submodule(node.target)
    reason = f"fails on its {' and '.join(_shape_text(shape) for shape in inputs)} input"
    for attribute, axis, unit in (
        ("in_channels", 0, "channels"),
        ("num_features", 0, "channels"),
        ("in_features", -1, "features"),
    ):
        wanted = getattr(module, attribute, None)
        if isinstance(wanted, int) and inputs and inputs[0][axis] != wanted:
            reason = f"expects {wanted} input {unit} and gets {inputs[0][axis]}"
            break
    return UserError(
        f"{type(block).__name__} cannot take an input of shape {_shape_text(input_shape)}: "
        f"layer {node.target} ({type(module).__name__}) {reason}; give input_shape as the "
        f"(channels, height, width) of one example the block accepts."
    )


def _trace(block: nn.Module, input_shape: tuple[int, ...]) -> tuple[fx.GraphModule, dict[fx.Node, Shape]]:
    """The block's graph in eval mode (dropout and stochastic depth as at inference) and each node's output
    shape on a zero input; the block's training flags are left as they were."""
    training = {module: module.training for module in block.modules()}
    block.eval()
    try:
        graph_module = fx.GraphModule(block, _LeafTracer().trace(block))
        parameter = next(block.parameters(), None)
        x = torch.zeros(1, *input_shape, device=parameter.device if parameter is not None else "cpu")
        recorder = _ShapeRecorder(graph_module)
        with torch.no_grad():
            try:
                recorder.run(x)
            except _LayerFailed as failed:
                inputs = [
                    recorder.shapes[source]
                    for source in failed.node.all_input_nodes
                    if source in recorder.shapes
                ]
                raise _failure(block, input_shape, failed, inputs) from failed.__cause__
        return graph_module, recorder.shapes
    finally:
        for module, flag in training.items():
            module.train(flag)


def _boxes(
    graph_module: fx.GraphModule, shapes: dict[fx.Node, Shape], split_groups: bool
) -> tuple[list[_Box], list[_Box]]:
    """The boxes in the order of the graph, and the boxes whose tensors the block returns."""
    modules = dict(graph_module.named_modules())
    box_of: dict[fx.Node, _Box] = {}
    boxes: list[_Box] = []

    def resolve(node: fx.Node) -> fx.Node:
        # nn.Identity (a shortcut that keeps the shape, an AlexNet pool left out) draws no box of its own.
        while node.op == "call_module" and isinstance(modules[node.target], nn.Identity):
            node = node.all_input_nodes[0]
        return node

    tensor_users: dict[fx.Node, set[fx.Node]] = {}
    for node in graph_module.graph.nodes:
        if node in shapes and node.op not in ("placeholder", "output") and resolve(node) is node:
            for source in {resolve(source) for source in node.all_input_nodes if source in shapes}:
                tensor_users.setdefault(source, set()).add(node)

    for node in graph_module.graph.nodes:
        if node not in shapes or node.op == "output" or resolve(node) is not node:
            continue
        sources = list(dict.fromkeys(resolve(source) for source in node.all_input_nodes if source in shapes))
        if node.op == "placeholder":
            box = _Box("input", ["input"], None, "input", shapes[node])
        elif (
            len(sources) == 1
            and sources[0].op != "placeholder"
            and len(tensor_users[sources[0]]) == 1
            and not box_of[sources[0]].join
            and (line := _foldable(node, modules, shapes, sources[0]))
        ):
            box = box_of[sources[0]]
            box.lines.append(line)
            box.shape = shapes[node]
            box_of[node] = box
            continue
        elif node.op == "call_module":
            module = modules[node.target]
            towers = 1
            inputs = [box_of[source] for source in sources]
            if (
                isinstance(module, nn.Conv2d)
                and split_groups
                and 1 < module.groups < module.in_channels
                and len(inputs) == 1
            ):
                towers = module.groups
            elif isinstance(module, POOLS) and len(inputs) == 1:
                towers = inputs[0].towers  # a pool works per channel: it stays in its tower
            text, kind = _describe(module, towers)
            box = _Box(node.target, [text], node.target, kind, shapes[node], towers=towers)
        else:
            text, join = _describe_function(node)
            box = _Box(node.name, [text], None, "join" if join else "other", shapes[node], join=join)
        box.inputs = [box_of[source] for source in sources]
        box_of[node] = box
        boxes.append(box)
    output = next(node for node in graph_module.graph.nodes if node.op == "output")
    returned = [box_of[resolve(source)] for source in output.all_input_nodes if source in shapes]
    return boxes, returned


def _tower_ids(box: _Box) -> list[str]:
    return [box.key] if box.towers == 1 else [f"{box.key}/{tower}" for tower in range(1, box.towers + 1)]


def _tower_shape(shape: Shape, towers: int) -> Shape:
    return (shape[0] // towers, *shape[1:])


def block_diagram(
    block: nn.Module, input_shape: tuple[int, ...], title: str | None = None, *, split_groups: bool = False
) -> graphviz.Digraph:
    """A graphviz diagram of ``block`` on an input of ``input_shape`` (channels, height, width; no batch
    dimension): one box per layer, the layer's module path under its description, and on every arrow the
    shape of the tensor it carries, from a forward pass. ``split_groups=True`` draws a grouped
    convolution's groups as towers side by side, and keeps them apart through the pools after it, as
    AlexNet's Fig. 2 draws its two GPUs; otherwise the box says how many groups. A shape the block
    cannot take raises :class:`~cnnlib.errors.UserError`. Shown in Jupyter as SVG (needs ``dot``)."""
    input_shape = _check_shape(input_shape)
    graph_module, shapes = _trace(block, input_shape)
    boxes, returned = _boxes(graph_module, shapes, split_groups)
    diagram = graphviz.Digraph(
        graph_attr={
            "rankdir": "TB",
            "size": MAX_SIZE,
            "fontname": "Helvetica",
            "nodesep": "0.25",
            "ranksep": "0.3",
        },
        node_attr={
            "fontname": "Helvetica",
            "fontsize": "11",
            "shape": "box",
            "style": "rounded,filled",
            "margin": "0.12,0.04",
        },
        edge_attr={"fontname": "Helvetica", "fontsize": "9"},
    )
    if title:
        diagram.attr(label=title, labelloc="t", fontsize="13")
    for box in boxes:
        if box.kind == "input":
            diagram.node(box.key, "input", shape="plaintext", style="")
            continue
        shape = "circle" if box.join and box.lines[0] in ("+", TIMES) else "box"
        for index, node_id in enumerate(_tower_ids(box), start=1):
            notes = [box.path] if box.path else []
            if box.towers > 1:
                notes.append(f"tower {index} of {box.towers}")
            # An HTML-like label: the module path in small grey type under what the layer does.
            label = "<br/>".join(
                [
                    *map(html.escape, box.lines),
                    *(f'<font point-size="8" color="#555555">{html.escape(note)}</font>' for note in notes),
                ]
            )
            diagram.node(
                node_id,
                f"<{label}>",
                shape=shape,
                fillcolor=COLOURS[box.kind],
                **({"group": f"tower{index}"} if box.towers > 1 else {}),
            )
        for source in box.inputs:
            _connect(diagram, source, box)
    diagram.node("output", "output", shape="plaintext", style="")
    for source in returned:
        for node_id in _tower_ids(source):
            diagram.edge(node_id, "output", label=_shape_text(_tower_shape(source.shape, source.towers)))
    return diagram


def _connect(diagram: graphviz.Digraph, source: _Box, target: _Box) -> None:
    """Arrows from ``source`` to ``target``: tower to tower, or into (out of) each tower the slice of
    channels it sees (gives)."""
    sources, targets = _tower_ids(source), _tower_ids(target)
    if source.towers == target.towers > 1:
        pairs = list(zip(sources, targets))
    else:
        pairs = [(a, b) for a in sources for b in targets]
    shape = _tower_shape(source.shape, source.towers if source.towers > 1 else target.towers)
    for a, b in pairs:
        diagram.edge(a, b, label=_shape_text(shape))
