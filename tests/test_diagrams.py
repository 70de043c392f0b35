"""Block diagrams (cnnlib.diagrams): the shapes on the arrows are those of a forward pass, every branch
of a branching block is drawn, and a shape the block cannot take is one sentence."""

from __future__ import annotations

import re
import shutil

import pytest
import torch
import torch.nn.functional as F

from cnnlib.diagrams import block_diagram
from cnnlib.errors import UserError
from cnnlib.models import create
from cnnlib.models.googlenet import INCEPTION, VARIANTS, Inception

EDGE = re.compile(r'^\t("[^"]+"|\S+) -> ("[^"]+"|\S+) \[label=("[^"]+"|\S+)\]$')


def edges(diagram) -> list[tuple[str, str, str]]:
    """(source id, target id, label) of every arrow of the diagram's DOT source."""
    return [
        tuple(part.strip('"') for part in match.groups())
        for match in map(EDGE.match, diagram.source.splitlines())
        if match
    ]


def node_ids(diagram) -> set[str]:
    return {source for source, _, _ in edges(diagram)} | {target for _, target, _ in edges(diagram)}


def text(shape: torch.Size | tuple[int, ...]) -> str:
    return "×".join(map(str, shape))


def output_shapes(model: torch.nn.Module, names: list[str], x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Each named module's output shape on ``x`` (batch dimension left out), from forward hooks."""
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name: str):
        return lambda module, args, output: shapes.__setitem__(name, tuple(output.shape[1:]))

    handles = [model.get_submodule(name).register_forward_hook(record(name)) for name in names]
    with torch.no_grad():
        model.eval()(x)
    for handle in handles:
        handle.remove()
    return shapes


def test_lenet5_arrows_carry_the_shapes_of_a_forward_pass_and_of_fig_2():
    model = create("lenet5", 10, 1, (32, 32))
    diagram = block_diagram(model, (1, 32, 32), "LeNet-5")
    layers = [
        "features.C1",
        "features.S2",
        "features.C3",
        "features.S4",
        "features.C5",
        "classifier.F6",
        "classifier.output",
    ]
    expected = output_shapes(model, layers, torch.zeros(2, 1, 32, 32))
    out_of = {source: label for source, _, label in edges(diagram)}
    assert {layer: out_of[layer] for layer in layers} == {layer: text(expected[layer]) for layer in layers}
    # Fig. 2 of the paper: C1 6@28×28, S2 6@14×14, C3 16@10×10, S4 16@5×5, C5 120, F6 84.
    fig_2 = ["6×28×28", "6×14×14", "16×10×10", "16×5×5", "120×1×1", "84"]
    assert [out_of[layer] for layer in layers[:6]] == fig_2
    assert ("input", "features.C1", "1×32×32") in edges(diagram)
    assert 'label="LeNet-5"' in diagram.source


def test_alexnet_grouped_convolutions_are_drawn_as_two_towers():
    model = create("alexnet", 10, 3, (227, 227))
    diagram = block_diagram(model, (3, 227, 227), split_groups=True)
    shapes = output_shapes(model, ["features.3", "features.4", "features.8"], torch.zeros(1, 3, 227, 227))
    channels, *side = shapes["features.3"]
    into_towers = [(target, label) for source, target, label in edges(diagram) if source == "features.3"]
    # §3.2: each GPU's conv2 kernels see only the 48 maps of their own GPU.
    half = text((channels // 2, *side))
    assert into_towers == [("features.4/1", half), ("features.4/2", half)]
    conv2 = model.features[4]
    x, kernels = torch.randn(1, *shapes["features.3"]), conv2.out_channels // 2
    with torch.no_grad():
        tower = F.conv2d(x[:, : channels // 2], conv2.weight[:kernels], conv2.bias[:kernels], padding=2)
        torch.testing.assert_close(tower, conv2(x)[:, :kernels])
    out_of_tower = {label for source, _, label in edges(diagram) if source == "features.4/1"}
    assert out_of_tower == {text(tower.shape[1:])}
    # conv3 sees both towers (Fig. 2): one arrow from each tower's pool, one box.
    assert sorted(source for source, target, _ in edges(diagram) if target == "features.8") == [
        "features.7/1",
        "features.7/2",
    ]
    assert "features.8/1" not in node_ids(diagram)
    grouped = block_diagram(model, (3, 227, 227))
    assert "features.4/1" not in node_ids(grouped) and "conv 5×5, 256, 2 groups" in grouped.source


def test_inception_module_draws_every_branch_and_the_concatenation():
    widths = INCEPTION["3a"]
    module = Inception(192, widths, VARIANTS["paper"])
    diagram = block_diagram(module, (192, 28, 28), "Inception 3a")
    branches = [
        "branch1.conv",
        "branch2.0.conv",
        "branch2.1.conv",
        "branch3.0.conv",
        "branch3.1.conv",
        "branch4.0",
        "branch4.1.conv",
    ]
    assert set(branches) <= node_ids(diagram)
    shapes = output_shapes(module, branches, torch.zeros(1, 192, 28, 28))
    into_cat = sorted((source, label) for source, target, label in edges(diagram) if target == "cat")
    assert into_cat == sorted(
        (name, text(shapes[name]))
        for name in ("branch1.conv", "branch2.1.conv", "branch3.1.conv", "branch4.1.conv")
    )
    # Table 1, row 3(a): #1×1 64, #3×3 128, #5×5 32, pool proj 32, concatenated into 256 maps.
    assert sorted(int(label.split("×")[0]) for _, label in into_cat) == [32, 32, 64, 128]
    with torch.no_grad():
        assert ("cat", "output", text(module(torch.zeros(1, 192, 28, 28)).shape[1:])) in edges(diagram)
    assert [target for source, target, _ in edges(diagram) if source == "input"] == [
        "branch1.conv",
        "branch2.0.conv",
        "branch3.0.conv",
        "branch4.0",
    ]


def test_residual_unit_shortcut_and_folded_layers():
    model = create("resnet18", 10, 3, (32, 32))
    unit = model.conv2_x[0]  # identity shortcut: nn.Identity draws no box, the arrow goes straight to the sum
    diagram = block_diagram(unit, (64, 32, 32))
    assert ("input", "add", "64×32×32") in edges(diagram)
    into_sum = sorted(source for source, target, _ in edges(diagram) if target == "add")
    assert into_sum == ["branch.1.conv", "input"]
    assert "conv 3×3, 64<br/>batch norm<br/>ReLU" in diagram.source  # one box for conv, batch norm and ReLU
    projection = block_diagram(model.conv3_x[0], (64, 32, 32))
    assert ("shortcut.conv", "add", "128×16×16") in edges(projection)


def test_drawing_leaves_the_training_flags_as_they_were():
    model = create("resnet18", 10, 3, (32, 32)).train()
    model.fc.eval()
    block_diagram(model, (3, 32, 32))
    assert model.training and model.conv1.training and not model.fc.training


@pytest.mark.parametrize(
    "shape, message",
    [
        (
            (1, 32, 32),
            r"^FeaturesPoolClassifier cannot take an input of shape 1×32×32: layer features\.0 \(Conv2d\) "
            r"expects 3 input channels and gets 1; give input_shape as .*\.$",
        ),
        (
            (3, 8, 8),
            r"^Input 3×8×8 is too small for FeaturesPoolClassifier: .*; give the network an input of "
            r"at least 15×15\.$",
        ),
        (
            (3, 0, 32),
            r"^input_shape must be a tuple of positive whole numbers such as \(3, 32, 32\), "
            r"not \(3, 0, 32\)\.$",
        ),
        ("3x32x32", r"^input_shape must be .*, not '3x32x32'\.$"),
    ],
)
def test_a_bad_input_shape_is_one_sentence(shape, message):
    model = create("alexnet", 10, 3, (32, 32), variant="paper_bn")
    with pytest.raises(UserError, match=message) as error:
        block_diagram(model, shape)
    assert "\n" not in str(error.value) and not re.search(r"\. [A-Z]", str(error.value))


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed (make dot)")
def test_renders_as_svg_with_the_shapes():
    svg = block_diagram(create("lenet5", 10, 1, (32, 32)), (1, 32, 32)).pipe(format="svg", encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") and "16×5×5" in svg
