"""The modern models (ResNet, DenseNet, MobileNetV2, EfficientNet) against their papers and torchvision.

Paper numbers (output sizes, table rows, FLOPs) are test data typed from the papers; torchvision's
model cards are read from torchvision's own code (no download). Parameter and MAC counts at
ImageNet size are taken on the meta device (shapes only); forwards that check real values run on
the CPU with batch size 1 at ImageNet size, or on real CIFAR-10 / MNIST images at 32×32 / 28×28.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pytest
import torch
import torchvision
from shapes import build, count_params, giga_macs, io_shapes, on_meta
from torch import nn

from cnnlib.arithmetic import layer_table
from cnnlib.models import create, names, spec
from cnnlib.models.resnet import ResidualUnit

RESNETS = [
    "resnet10",
    "resnet14",
    "resnet16",
    "resnet18",
    "resnet26",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "plain18",
    "plain34",
]
MODERN = RESNETS + ["densenet121", "mobilenet_v2", "efficientnet_b0"]
INITS = ("paper", "xavier", "kaiming", "pytorch")
DATA = Path(os.environ.get("CNNLIB_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

# torchvision's model card for each of our networks, and the option that makes ours identical.
TORCHVISION_CARDS = {
    "resnet18": ("ResNet18_Weights", {}),
    "resnet34": ("ResNet34_Weights", {}),
    "resnet50": ("ResNet50_Weights", {"stride_on": "3x3"}),
    "resnet101": ("ResNet101_Weights", {"stride_on": "3x3"}),
    "resnet152": ("ResNet152_Weights", {"stride_on": "3x3"}),
    "densenet121": ("DenseNet121_Weights", {}),
    "mobilenet_v2": ("MobileNet_V2_Weights", {}),
    "efficientnet_b0": ("EfficientNet_B0_Weights", {}),
}

# He et al. 2016, Table 1: FLOPs (multiply-adds) ×10⁹ at 224×224.
RESNET_TABLE1_GFLOPS = {
    "resnet18": 1.8,
    "resnet34": 3.6,
    "resnet50": 3.8,
    "resnet101": 7.6,
    "resnet152": 11.3,
}
# Table 1: output size of conv1 and conv2_x..conv5_x at 224×224.
RESNET_TABLE1_SIDES = {"conv1": 112, "conv2_x": 56, "conv3_x": 28, "conv4_x": 14, "conv5_x": 7}
# Units per stage and unit type: Table 1, timm (resnet10t, resnet14t, resnet26) and the course's resnet16.
RESNET_STAGES = {
    "resnet10": ("basic", [1, 1, 1, 1]),
    "resnet14": ("bottleneck", [1, 1, 1, 1]),
    "resnet16": ("basic", [2, 2, 2, 1]),
    "resnet18": ("basic", [2, 2, 2, 2]),
    "resnet26": ("bottleneck", [2, 2, 2, 2]),
    "resnet34": ("basic", [3, 4, 6, 3]),
    "resnet50": ("bottleneck", [3, 4, 6, 3]),
    "resnet101": ("bottleneck", [3, 4, 23, 3]),
    "resnet152": ("bottleneck", [3, 8, 36, 3]),
    "plain18": ("basic", [2, 2, 2, 2]),
    "plain34": ("basic", [3, 4, 6, 3]),
}
# Huang et al. 2017, Table 1 (DenseNet-121): output side of each layer at 224×224.
DENSENET_TABLE1_SIDES = {
    "features.conv0": 112,
    "features.pool0": 56,
    "features.denseblock1": 56,
    "features.transition1": 28,
    "features.denseblock2": 28,
    "features.transition2": 14,
    "features.denseblock3": 14,
    "features.transition3": 7,
    "features.denseblock4": 7,
    "avgpool": 1,
}
# Sandler et al. 2018, Table 2: input side, input channels, t, c, n, s of each bottleneck row.
MOBILENET_TABLE2 = [
    (112, 32, 1, 16, 1, 1),
    (112, 16, 6, 24, 2, 2),
    (56, 24, 6, 32, 3, 2),
    (28, 32, 6, 64, 4, 2),
    (14, 64, 6, 96, 3, 1),
    (14, 96, 6, 160, 3, 2),
    (7, 160, 6, 320, 1, 1),
]
# Tan & Le 2019, Table 1 (EfficientNet-B0): stage, operator, input resolution, output channels, layers.
EFFICIENTNET_TABLE1 = [
    (1, "Conv3x3", 224, 32, 1),
    (2, "MBConv1, k3x3", 112, 16, 1),
    (3, "MBConv6, k3x3", 112, 24, 2),
    (4, "MBConv6, k5x5", 56, 40, 2),
    (5, "MBConv6, k3x3", 28, 80, 3),
    (6, "MBConv6, k5x5", 14, 112, 3),
    (7, "MBConv6, k5x5", 14, 192, 4),
    (8, "MBConv6, k3x3", 7, 320, 1),
    (9, "Conv1x1 & Pooling & FC", 7, 1280, 1),
]


@pytest.fixture(scope="module")
def imagenet_models() -> dict[str, nn.Module]:
    """Every model at 224×224 with 1000 classes, on the CPU in eval mode, built once."""
    torch.manual_seed(0)
    return {name: build(name, 224, num_classes=1000).eval() for name in MODERN}


@pytest.fixture(scope="module")
def cifar_batch(cifar_batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Four of the shared CIFAR-10 test images (one per class), enough for these networks."""
    images, labels = cifar_batch
    return images[:4], labels[:4]


@pytest.fixture(scope="module")
def mnist_batch(mnist_batch: torch.Tensor) -> torch.Tensor:
    """Two of the shared MNIST test digits."""
    return mnist_batch[:2]


# --- every model: registry, shapes, one training step ------------------------------------------


def test_every_modern_model_is_registered():
    assert set(MODERN) <= set(names())
    assert all(spec(name).paper_input == (3, 224, 224) for name in MODERN)


@pytest.mark.parametrize("name", MODERN)
@pytest.mark.slow
def test_imagenet_size_output_shape(name, imagenet_models):
    with torch.no_grad():
        assert imagenet_models[name](torch.randn(1, 3, 224, 224)).shape == (1, 1000)


@pytest.mark.parametrize("name", MODERN)
def test_cifar_and_mnist_shapes_on_real_images(name, cifar_batch, mnist_batch):
    images, _ = cifar_batch
    with torch.no_grad():
        cifar_logits = build(name, 32).eval()(images[:2])
        mnist_logits = build(name, 28, num_classes=7, in_channels=1).eval()(mnist_batch)
    assert cifar_logits.shape == (2, 10) and torch.isfinite(cifar_logits).all()
    assert mnist_logits.shape == (2, 7) and torch.isfinite(mnist_logits).all()


@pytest.mark.parametrize("name", MODERN)
@pytest.mark.slow
def test_one_sgd_step_lowers_the_loss(name, cifar_batch):
    images, labels = cifar_batch
    torch.manual_seed(0)
    model = build(name, 32).train()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)

    def loss() -> torch.Tensor:
        torch.manual_seed(1)  # the same dropout and stochastic-depth masks in both forwards
        return nn.functional.cross_entropy(model(images), labels)

    before = loss()
    before.backward()
    optimiser.step()
    with torch.no_grad():
        after = loss()
    assert after < before


# --- ImageNet size against torchvision and the papers' tables ----------------------------------


@pytest.mark.parametrize("name", list(TORCHVISION_CARDS))
def test_params_and_macs_equal_torchvision_card(name):
    weights, options = TORCHVISION_CARDS[name]
    card = getattr(torchvision.models, weights).IMAGENET1K_V1.meta
    model = on_meta(name, **options)
    assert count_params(model) == card["num_params"]
    assert abs(round(giga_macs(model), 3) - card["_ops"]) < 0.0005


@pytest.mark.parametrize("name", list(RESNET_TABLE1_GFLOPS))
def test_resnet_flops_match_table1(name):
    # The paper gives one decimal, neither consistently rounded nor truncated (3.66 → 3.6,
    # 7.57 → 7.6): agree to within one unit of that decimal.
    paper_placement = on_meta(name)
    assert abs(giga_macs(paper_placement) - RESNET_TABLE1_GFLOPS[name]) < 0.1


@pytest.mark.parametrize("name", ["resnet50", "resnet101", "resnet152"])
def test_bottleneck_stride_placement_changes_macs_not_params(name):
    paper, v15 = on_meta(name, stride_on="1x1"), on_meta(name, stride_on="3x3")
    assert count_params(paper) == count_params(v15)
    # Three stages halve the resolution in their first unit; "3x3" runs that unit's first 1×1
    # convolution at the stage's input resolution, so it must cost more.
    assert giga_macs(v15) - giga_macs(paper) > 0.2
    assert abs(giga_macs(v15) - RESNET_TABLE1_GFLOPS[name]) > 0.2  # v1.5 is not the paper's network


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
@pytest.mark.slow
def test_resnet_output_sizes_match_table1(name, imagenet_models):
    shapes = io_shapes(imagenet_models[name], torch.randn(1, 3, 224, 224), list(RESNET_TABLE1_SIDES))
    assert {module: out[1:] for module, (_, out) in shapes.items()} == {
        module: (side, side) for module, side in RESNET_TABLE1_SIDES.items()
    }
    expansion = 4 if RESNET_STAGES[name][0] == "bottleneck" else 1
    assert [shapes[f"conv{i}_x"][1][0] for i in range(2, 6)] == [64 * expansion * 2**i for i in range(4)]


@pytest.mark.parametrize("name", RESNETS)
def test_resnet_depth_counts_weighted_layers(name):
    model = build(name, 32)
    depth = int(re.search(r"\d+$", name).group())
    # The paper's depth counts convolutions and the classifier, not the projection shortcuts.
    layers = [
        module
        for path, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear)) and ".shortcut" not in path
    ]
    assert len(layers) == depth
    unit, blocks = RESNET_STAGES[name]
    stages = [[m for m in getattr(model, f"conv{i}_x") if isinstance(m, ResidualUnit)] for i in range(2, 6)]
    assert [len(stage) for stage in stages] == blocks
    assert {len(u.branch) for stage in stages for u in stage} == {2 if unit == "basic" else 3}
    assert 2 + (2 if unit == "basic" else 3) * sum(blocks) == depth


def test_plain_networks_have_no_shortcuts():
    plain, residual = build("plain18", 224, num_classes=1000), build("resnet18", 224, num_classes=1000)
    assert all(unit.shortcut is None for unit in plain.modules() if isinstance(unit, ResidualUnit))
    # ResNet-18's three projections (1×1 conv + batch norm) at conv3_x, conv4_x, conv5_x.
    projections = sum(c_in * c_out + 2 * c_out for c_in, c_out in [(64, 128), (128, 256), (256, 512)])
    assert count_params(residual) - count_params(plain) == projections == 173_824


def test_densenet121_output_sizes_and_widths_match_table1(imagenet_models):
    shapes = io_shapes(
        imagenet_models["densenet121"], torch.randn(1, 3, 224, 224), list(DENSENET_TABLE1_SIDES)
    )
    assert {module: out[1:] for module, (_, out) in shapes.items()} == {
        module: (side, side) for module, side in DENSENET_TABLE1_SIDES.items()
    }
    k, channels = 32, 2 * 32  # growth rate; the stem has 2k maps (Sec. 3)
    for block, layers in enumerate([6, 12, 24, 16], start=1):
        channels += layers * k
        assert shapes[f"features.denseblock{block}"][1][0] == channels
        if block < 4:
            channels //= 2  # compression θ = 0.5
            assert shapes[f"features.transition{block}"][1][0] == channels


def test_mobilenet_v2_rows_match_table2(imagenet_models):
    model = imagenet_models["mobilenet_v2"]
    rows = [f"features.bottleneck{i}" for i in range(1, 8)]
    shapes = io_shapes(
        model, torch.randn(1, 3, 224, 224), ["features.stem", *rows, "features.conv_last", "classifier"]
    )
    assert shapes["features.stem"] == ((3, 224, 224), (32, 112, 112))
    shortcuts = 0
    for row, (side, c_in, t, c, n, s) in zip(rows, MOBILENET_TABLE2):
        units = model.get_submodule(row)
        assert shapes[row] == ((c_in, side, side), (c, side // s, side // s))
        assert len(units) == n
        assert units[0].branch.depthwise.conv.stride == (s, s)
        assert units[0].branch.depthwise.conv.out_channels == c_in * t
        shortcuts += sum(unit.has_shortcut for unit in units)
        assert all(
            isinstance(m, nn.ReLU6) for m in units.modules() if isinstance(m, (nn.ReLU, nn.ReLU6, nn.SiLU))
        )
        assert not hasattr(units[0].branch.project, "act")  # linear bottleneck (Sec. 3.2)
    # Sec. 3.3: a shortcut wherever the stride is 1 and the channels agree.
    assert shortcuts == sum(n - 1 + (s == 1 and c_in == c) for _, c_in, _, c, n, s in MOBILENET_TABLE2)
    assert shapes["features.conv_last"] == ((320, 7, 7), (1280, 7, 7))
    assert shapes["classifier"][0] == (1280,)


@pytest.mark.parametrize("width_mult", [0.5, 1.4])
def test_mobilenet_v2_width_multiplier_matches_torchvision(width_mult):
    ours = on_meta("mobilenet_v2", width_mult=width_mult)
    with torch.device("meta"):
        theirs = torchvision.models.mobilenet_v2(width_mult=width_mult)
    assert count_params(ours) == count_params(theirs)


def test_efficientnet_b0_stages_match_table1(imagenet_models):
    model = imagenet_models["efficientnet_b0"]
    stages = [f"features.stage{i}" for i in range(1, 10)]
    shapes = io_shapes(model, torch.randn(1, 3, 224, 224), stages)
    for stage, operator, resolution, channels, layers in EFFICIENTNET_TABLE1:
        (_, side_in, _), (c_out, _, _) = shapes[f"features.stage{stage}"]
        assert (side_in, c_out) == (resolution, channels)
        match = re.fullmatch(r"MBConv(\d), k(\d)x\2", operator)
        if match:
            units = model.get_submodule(f"features.stage{stage}")
            assert len(units) == layers
            expansion, kernel = int(match[1]), int(match[2])
            c_in = units[0].branch[0].conv.in_channels
            assert units[0].branch.depthwise.conv.out_channels == c_in * expansion
            assert units[0].branch.depthwise.conv.kernel_size == (kernel, kernel)
            assert units[0].branch.se.reduce.out_channels == max(1, c_in // 4)  # SE ratio 0.25
    units = [unit for i in range(2, 9) for unit in model.get_submodule(f"features.stage{i}")]
    # Stochastic depth 0.2 (survival 0.8, Sec. 5.2), rising linearly over the 16 MBConv units.
    assert [unit.drop_path.p for unit in units] == pytest.approx([0.2 * i / 16 for i in range(16)])
    assert model.classifier[0].p == 0.2


@pytest.mark.parametrize(
    "name, paper_params_m, paper_gmacs",
    [
        (
            "mobilenet_v2",
            None,
            0.300,
        ),  # Sandler et al. 2018, Table 4: 300M MAdds (params 3.4M; torchvision 3.5M)
        ("efficientnet_b0", 5.3, 0.39),  # Tan & Le 2019, Table 2: 5.3M params, 0.39B FLOPs
    ],
)
def test_mobile_networks_match_the_papers_cost(name, paper_params_m, paper_gmacs):
    model = on_meta(name)
    if paper_params_m is not None:
        assert round(count_params(model) / 1e6, 1) == paper_params_m
    assert abs(giga_macs(model) - paper_gmacs) < 0.005


# --- small-input forms ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, stem, feature_map",
    [
        ("resnet18", "conv1.conv", "conv5_x"),
        ("resnet50", "conv1.conv", "conv5_x"),
        ("densenet121", "features.conv0.conv", "features"),
        ("mobilenet_v2", "features.stem.conv", "features"),
        ("efficientnet_b0", "features.stage1.conv", "features"),
    ],
)
def test_small_input_form(name, stem, feature_map):
    def stem_and_final_side(side: int, **options) -> tuple[int, int, bool, int]:
        model = build(name, side, **options).eval()
        conv = model.get_submodule(stem)
        final = io_shapes(model, torch.randn(1, 3, side, side), [feature_map])[feature_map][1][1]
        has_max_pool = any(isinstance(m, nn.MaxPool2d) for m in model.modules())
        return conv.kernel_size[0], conv.stride[0], has_max_pool, final

    imagenet_stem = (
        3 if name.startswith(("mobilenet", "efficientnet")) else 7,
        2,
        name.startswith(("resnet", "densenet")),
    )
    assert stem_and_final_side(224) == imagenet_stem + (7,)
    assert stem_and_final_side(96) == imagenet_stem + (3,)  # above 64: the ImageNet form
    # Side ≤ 64: a 3×3 stride-1 stem, no max pool, one stride-2 stage less: the side shrinks 8×.
    assert stem_and_final_side(32) == (3, 1, False, 4)
    assert stem_and_final_side(64) == (3, 1, False, 8)
    assert stem_and_final_side(96, small_input=True) == (3, 1, False, 12)
    assert stem_and_final_side(32, small_input=False)[:3] == imagenet_stem


def test_mobile_small_form_moves_the_first_stride_two_row_to_stride_one():
    mobilenet, efficientnet = build("mobilenet_v2", 32), build("efficientnet_b0", 32)
    assert mobilenet.features.bottleneck2[0].branch.depthwise.conv.stride == (1, 1)  # Table 2: t=6, c=24, s=2
    assert efficientnet.features.stage3[0].branch.depthwise.conv.stride == (1, 1)  # Table 1: MBConv6, 24 ch
    assert mobilenet.features.bottleneck3[0].branch.depthwise.conv.stride == (2, 2)
    assert efficientnet.features.stage4[0].branch.depthwise.conv.stride == (2, 2)


# --- options: initialisation, errors --------------------------------------------------------


def _largest(model: nn.Module, kind: type[nn.Module]) -> nn.Module:
    return max((m for m in model.modules() if isinstance(m, kind)), key=lambda m: m.weight.numel())


def _fans(layer: nn.Module) -> tuple[int, int]:
    receptive = layer.weight[0, 0].numel()
    return layer.weight.shape[1] * receptive, layer.weight.shape[0] * receptive


# Expected std of the largest convolution's weights under each scheme, from its (fan_in, fan_out).
CONV_STD = {
    "xavier": lambda fan_in, fan_out: math.sqrt(2 / (fan_in + fan_out)),
    "kaiming": lambda fan_in, fan_out: math.sqrt(2 / fan_out),  # cnnlib.models.init: fan-out
    "pytorch": lambda fan_in, fan_out: 1 / math.sqrt(3 * fan_in),  # kaiming_uniform(a=√5)
}
PAPER_CONV_STD = {
    "resnet18": lambda fan_in, fan_out: math.sqrt(2 / fan_out),  # He et al. 2016 §3.4, fan-out
    "densenet121": lambda fan_in, fan_out: math.sqrt(2 / fan_in),  # Huang et al. 2017 §4.2
    "mobilenet_v2": lambda fan_in, fan_out: math.sqrt(2 / fan_out),
    "efficientnet_b0": lambda fan_in, fan_out: math.sqrt(2 / fan_out),
}


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("name", list(PAPER_CONV_STD))
def test_init_schemes_set_the_expected_spread(name, init, cifar_batch):
    torch.manual_seed(0)
    model = build(name, 32, init=init).eval()
    conv = _largest(model, nn.Conv2d)
    expected = (PAPER_CONV_STD[name] if init == "paper" else CONV_STD[init])(*_fans(conv))
    assert conv.weight.std().item() == pytest.approx(expected, rel=0.05)
    with torch.no_grad():
        assert torch.isfinite(model(cifar_batch[0])).all()


def test_paper_init_of_the_classifiers():
    torch.manual_seed(0)
    mobilenet = build("mobilenet_v2", 32, num_classes=1000)
    assert mobilenet.classifier[1].weight.std().item() == pytest.approx(0.01, rel=0.05)
    efficientnet = build("efficientnet_b0", 32, num_classes=1000)
    bound = 1 / math.sqrt(1000)  # U(±1/√out_features)
    assert efficientnet.classifier[1].weight.abs().max().item() == pytest.approx(bound, rel=0.01)
    assert efficientnet.classifier[1].weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)


def test_zero_init_residual_makes_every_unit_an_identity(cifar_batch):
    model = build("resnet18", 32, zero_init_residual=True).eval()
    units = [m for m in model.modules() if isinstance(m, ResidualUnit)]
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    handles = [unit.register_forward_hook(lambda m, args, out: seen.append((args[0], out))) for unit in units]
    with torch.no_grad():
        model(cifar_batch[0])
    for handle in handles:
        handle.remove()
    identity_units = [i for i, unit in enumerate(units) if isinstance(unit.shortcut, nn.Identity)]
    assert len(identity_units) == 5
    for i in identity_units:  # input after a ReLU is ≥ 0, so relu(0 + x) = x
        torch.testing.assert_close(seen[i][1], seen[i][0])
    assert not torch.equal(*seen[2])  # a projection unit (conv3_x) still changes its input


INIT_CHOICES = "'paper', 'xavier', 'kaiming', 'pytorch'"


@pytest.mark.parametrize(
    "name, options, words",
    [
        # The option's name, the value given and what to give instead.
        ("resnet18", {"init": "he"}, ("init", "'he'", "ResNet", INIT_CHOICES)),
        ("plain34", {"init": "he"}, ("init", "'he'", "plain", INIT_CHOICES)),
        ("densenet121", {"init": "he"}, ("init", "'he'", "DenseNet", INIT_CHOICES)),
        ("resnet50", {"stride_on": "1x3"}, ("stride_on", "'1x3'", "'1x1', '3x3'")),
        ("resnet18", {"small_input": "yes"}, ("small_input", "'yes'", "None, True, False")),
        ("mobilenet_v2", {"width_mult": 0}, ("width_mult", "not 0", "positive number")),
        ("mobilenet_v2", {"dropout": 1.0}, ("dropout", "1.0", "[0, 1)")),
        ("efficientnet_b0", {"stochastic_depth": -0.1}, ("stochastic_depth", "-0.1", "[0, 1)")),
    ],
)
def test_unknown_option_values_raise_user_error(name, options, words, user_error):
    with user_error(*words):
        build(name, 32, **options)


@pytest.mark.parametrize(
    "block, layers, words",
    [
        ("wide", [2, 2, 2, 2], ("block", "'wide'", "'basic', 'bottleneck'")),
        ("basic", [2, 2, 2], ("layers", "[2, 2, 2]", "four positive block counts")),
    ],
)
def test_general_resnet_constructor_checks_its_configuration(block, layers, words, user_error):
    from cnnlib.models.resnet import resnet

    with user_error(*words):
        resnet(block, layers, num_classes=10, in_channels=3, small_input=True)


def test_general_resnet_constructor_builds_other_depths(cifar_batch):
    from cnnlib.models.resnet import resnet

    model = resnet(
        "bottleneck",
        [1, 2, 1, 1],
        num_classes=4,
        in_channels=3,
        small_input=True,
        residual=False,
        stride_on="3x3",
    ).eval()
    assert sum(isinstance(m, ResidualUnit) and m.shortcut is None for m in model.modules()) == 5
    with torch.no_grad():
        assert model(cifar_batch[0]).shape == (4, 4)


@pytest.mark.parametrize(
    "name, stage_channels", [("resnet18", [16, 32, 64, 128]), ("resnet50", [64, 128, 256, 512])]
)
def test_resnet_quarter_width_scales_every_stage_and_a_sixteenth_of_the_macs(
    name, stage_channels, cifar_batch
):
    narrow, full = build(name, 32, width_mult=0.25).eval(), build(name, 32).eval()
    assert narrow.conv1.conv.out_channels == 16
    assert [
        stage[-1].branch[-1].conv.out_channels
        for stage in (narrow.conv2_x, narrow.conv3_x, narrow.conv4_x, narrow.conv5_x)
    ] == stage_channels
    narrow_macs = layer_table(narrow, (3, 32, 32)).attrs["total_macs"]
    full_macs = layer_table(full, (3, 32, 32)).attrs["total_macs"]
    # Every convolution but the stem has 4× fewer inputs and outputs (Sec. 4.2's CIFAR nets start at 16).
    assert 1 / 16 <= narrow_macs / full_macs < 1.05 / 16
    with torch.no_grad():
        assert narrow(cifar_batch[0]).shape == (len(cifar_batch[0]), 10)


# --- width_mult (MobileNetV1 Sec. 3.3, MobileNetV2 Sec. 6.1) --------------------------------

MOBILE = ("mobilenet_v2", "efficientnet_b0")


def _dense_after_the_stem(name: str):
    """Which convolutions should cost a quarter at half width. The first one is left out: its
    input is the image's 3 channels, so its MACs halve. So are depthwise convolutions (one input
    channel per output: MACs linear in the width) and MobileNetV2's last 1×1 convolution, which
    keeps its 1280 channels below width 1 (Sec. 6.1)."""

    def keep(conv: nn.Module, index: int) -> bool:
        head = name == "mobilenet_v2" and conv.out_channels == 1280
        return index > 0 and (conv.groups == 1 or conv.groups < conv.in_channels) and not head

    return keep


@pytest.mark.parametrize("name", MODERN)
def test_half_width_costs_a_quarter_of_the_convolution_macs(name, half_width_conv_macs_ratio):
    # make_divisible rounds the mobile networks' early widths up by a third at half width
    # (24 × 0.5 = 12 → 16, 40 × 0.5 = 20 → 24, both at high resolution): 12 % above ¼ there.
    tolerance = 0.15 if name in MOBILE else 0.10
    ratio = half_width_conv_macs_ratio(name, _dense_after_the_stem(name))
    assert ratio == pytest.approx(1 / 4, rel=tolerance)


def test_densenet_width_scales_the_growth_rate_and_what_follows_from_it():
    model = on_meta("densenet121", width_mult=0.5)
    assert model.features.conv0.conv.out_channels == 32  # 2k, k = 16
    first = model.features.denseblock1[0]
    assert (first[0].conv.out_channels, first[1].conv.out_channels) == (64, 16)  # 4k, k
    assert model.classifier.in_features == 512  # 1024 at full width


def test_efficientnet_width_multiplier_matches_torchvision():
    from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf

    settings, last_channel = _efficientnet_conf("efficientnet_b0", width_mult=0.5, depth_mult=1.0)
    with torch.device("meta"):
        theirs = EfficientNet(settings, dropout=0.2, last_channel=last_channel).eval()
    ours = on_meta("efficientnet_b0", width_mult=0.5)
    assert count_params(ours) == count_params(theirs)
    assert giga_macs(ours) == pytest.approx(giga_macs(theirs))


@pytest.mark.parametrize(
    "name, tiny, layer",
    [
        ("resnet18", 0.001, "conv1"),
        ("resnet50", 0.005, "conv1"),
        ("densenet121", 0.01, "the growth rate k"),
    ],
)
def test_width_mult_errors(name, tiny, layer, assert_width_mult_errors):
    assert_width_mult_errors(name, tiny, layer)


@pytest.mark.parametrize("name", MOBILE)
def test_mobile_networks_never_round_a_layer_below_eight_channels(name, user_error):
    with user_error("width_mult", "-1", "positive number"):
        build(name, 32, width_mult=-1)
    model = build(name, 32, width_mult=0.001)
    assert min(conv.out_channels for conv in model.modules() if isinstance(conv, nn.Conv2d)) >= 1
    assert (
        min(
            conv.out_channels
            for conv in model.modules()
            if isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.groups == 1
        )
        == 8
    )


@pytest.mark.parametrize("name", MODERN)
def test_cli_summary_at_a_quarter_width(name, run_cli):
    status, out, err = run_cli("summary", "--model", name, "--model-option", "width_mult=0.25")
    assert status == 0, err
    assert "Conv2d" in out


@pytest.mark.parametrize(
    "name, final_side", [("densenet121", 2), ("efficientnet_b0", 2), ("mobilenet_v2", 2)]
)
def test_stem_stride_two_quarters_the_work_of_the_small_input_form(name, final_side, user_error):
    base = layer_table(create(name, num_classes=10, input_size=32, width_mult=0.5), (3, 32, 32))
    strided = layer_table(
        create(name, num_classes=10, input_size=32, width_mult=0.5, stem_stride=2), (3, 32, 32)
    )
    assert strided.attrs["total_params"] == base.attrs["total_params"]  # same layers, same weights
    assert strided.attrs["total_macs"] < 0.3 * base.attrs["total_macs"]
    maps = [shape for shape in strided["output_shape"] if len(shape) == 3 and shape[1] > 1]
    assert maps[-1][1:] == (final_side, final_side)  # the last feature map before the global pool
    with user_error("stem_stride", "3", "1, 2"):
        create(name, num_classes=10, input_size=32, stem_stride=3)
    with user_error("stem_stride", "leave it at 1", "ImageNet"):
        create(name, num_classes=10, input_size=224, stem_stride=2)


def test_mobilenet_v2_relu6_after_the_projection_is_the_only_change(user_error):
    # Sandler et al. 2018, Sec. 6.4 and Fig. 6a: the linear bottleneck against ReLU6 after the 1×1 projection.
    linear = create("mobilenet_v2", 10, 3, 32, width_mult=0.5)
    nonlinear = create("mobilenet_v2", 10, 3, 32, width_mult=0.5, linear_bottleneck=False)
    projections = [name for name, _ in nonlinear.named_modules() if name.endswith("project.act")]
    assert len(projections) == 17  # one per inverted residual unit of Table 2 (1+2+3+4+3+3+1)
    assert not any(name.endswith("project.act") for name, _ in linear.named_modules())
    assert all(isinstance(nonlinear.get_submodule(name), nn.ReLU6) for name in projections)
    assert sum(p.numel() for p in linear.parameters()) == sum(p.numel() for p in nonlinear.parameters())
    with user_error("linear_bottleneck", "'no'", "True, False"):
        create("mobilenet_v2", 10, 3, 32, linear_bottleneck="no")


def test_efficientnet_without_squeeze_and_excitation_has_no_gates_and_its_other_layers_unchanged():
    from cnnlib.models.blocks import SqueezeExcitation

    gated = create("efficientnet_b0", num_classes=10, input_size=32)
    plain = create("efficientnet_b0", num_classes=10, input_size=32, se_ratio=0.0)
    gates = [module for module in gated.modules() if isinstance(module, SqueezeExcitation)]
    assert len(gates) == 16  # one per MBConv unit of Table 1: 1 + 2 + 2 + 3 + 3 + 4 + 1
    assert not any(isinstance(module, SqueezeExcitation) for module in plain.modules())
    gate_params = sum(parameter.numel() for gate in gates for parameter in gate.parameters())
    count = sum(parameter.numel() for parameter in gated.parameters())
    assert sum(parameter.numel() for parameter in plain.parameters()) == count - gate_params
