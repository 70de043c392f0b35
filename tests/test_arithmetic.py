"""Convolution arithmetic against real torch layers, the LeNet-5 paper and torchvision models."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torch.overrides import _get_current_function_mode_stack
from torch.utils.flop_counter import FlopCounterMode

from cnnlib.arithmetic import check_input_size, conv_output_size, formula_text, layer_table
from cnnlib.models import create

SIZES = range(1, 25)

# (kernel, stride, padding, dilation)
CONVS = [
    (3, 1, 0, 1),
    (5, 1, 2, 1),
    (3, 2, 1, 1),
    (11, 4, 2, 1),
    (3, 1, 2, 2),
    (3, 2, 0, 3),
    (7, 2, 3, 1),
    (1, 2, 0, 1),
]
# (kernel, stride, padding, dilation, ceil_mode)
MAX_POOLS = [
    (2, 2, 0, 1, False),
    (2, 2, 0, 1, True),
    (3, 2, 0, 1, True),
    (3, 2, 1, 1, False),
    (3, 2, 1, 1, True),
    (2, 2, 1, 1, True),
    (3, 1, 1, 2, False),
    (3, 3, 1, 2, True),
]
# (kernel, stride, padding, ceil_mode)
AVG_POOLS = [(2, 2, 0, False), (3, 2, 1, True), (2, 2, 1, True), (5, 3, 2, True), (3, 3, 0, True)]


def _layer_cases():
    for k, s, p, d in CONVS:
        yield nn.Conv2d(1, 1, k, s, p, d), dict(kernel_size=k, stride=s, padding=p, dilation=d)
    for k, s, p, d, ceil in MAX_POOLS:
        yield (
            nn.MaxPool2d(k, s, p, d, ceil_mode=ceil),
            dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil),
        )
    for k, s, p, ceil in AVG_POOLS:
        yield nn.AvgPool2d(k, s, p, ceil_mode=ceil), dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil)


LAYER_CASES = list(_layer_cases())


@pytest.mark.parametrize(
    "layer, arguments",
    LAYER_CASES,
    ids=[f"{type(layer).__name__}-{i}" for i, (layer, _) in enumerate(LAYER_CASES)],
)
def test_output_size_formula_matches_torch_layers(layer, arguments):
    for size in SIZES:
        predicted = conv_output_size(size, **arguments)
        if predicted < 1:
            with pytest.raises(RuntimeError):
                layer(torch.zeros(1, 1, size, size))
            continue
        real = layer(torch.zeros(1, 1, size, size)).shape[-1]
        assert predicted == real, (size, arguments)
        assert formula_text(size, **arguments).endswith(f"= {real}")


@pytest.mark.parametrize(
    "arguments, text",
    [
        # LeNet-5 C1 (Sec. II-B): 32×32 input, 5×5 kernel, 28×28 maps.
        (dict(size=32, kernel_size=5), "(32 − 5 + 2·0)/1 + 1 = 28"),
        # AlexNet conv1 on 227×227 (11×11, stride 4): exact, 55×55 maps.
        (dict(size=227, kernel_size=11, stride=4), "(227 − 11 + 2·0)/4 + 1 = 55"),
        # ... and on the 224×224 the paper states: the division is not exact.
        (dict(size=224, kernel_size=11, stride=4), "⌊(224 − 11 + 2·0)/4⌋ + 1 = 54"),
        (dict(size=32, kernel_size=3, padding=2, dilation=2), "(32 − (2·(3 − 1) + 1) + 2·2)/1 + 1 = 32"),
        # GoogLeNet's ceil-mode 3×3/2 max pool on the 112×112 maps of conv1: 56×56 (Szegedy et al. 2015,
        # Table 1).
        (dict(size=112, kernel_size=3, stride=2, ceil_mode=True), "⌈(112 − 3 + 2·0)/2⌉ + 1 = 56"),
        # Ceil mode drops a last window that would start in the right padding (MAX_POOLS' 2×2/2, padding 1).
        (dict(size=5, kernel_size=2, stride=2, padding=1, ceil_mode=True), "⌈(5 − 2 + 2·1)/2⌉ + 1 − 1 = 3"),
    ],
)
def test_formula_text(arguments, text):
    assert formula_text(**arguments) == text


def _leaf_calls(model: nn.Module, input_shape: tuple[int, int, int]) -> list[tuple[str, tuple, tuple]]:
    """(name, input shape, output shape) of every leaf call of a plain forward pass, batch of 2."""
    calls, handles = [], []
    for name, module in model.named_modules():
        if not list(module.children()):
            handles.append(
                module.register_forward_hook(
                    lambda m, args, out, name=name: calls.append(
                        (name, tuple(args[0].shape[1:]), tuple(out.shape[1:]))
                    )
                )
            )
    with torch.no_grad():
        model.eval()(torch.randn(2, *input_shape))
    for handle in handles:
        handle.remove()
    return calls


MODELS = {
    "lenet5-paper": (lambda: create("lenet5", variant="paper"), (1, 32, 32)),
    "lenet5-modern": (lambda: create("lenet5", variant="modern"), (1, 32, 32)),
    "resnet18": (lambda: torchvision.models.resnet18(), (3, 224, 224)),
    "googlenet": (lambda: torchvision.models.googlenet(aux_logits=False, init_weights=False), (3, 224, 224)),
}


@pytest.mark.parametrize("model_name", MODELS)
def test_layer_table_shapes_follow_the_real_forward(model_name):
    build, input_shape = MODELS[model_name]
    model = build()
    table = layer_table(model, input_shape)
    assert list(table.columns) == [
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
    ]
    rows = list(zip(table["name"], table["input_shape"], table["output_shape"]))
    assert rows == _leaf_calls(model, input_shape)
    assert table.attrs["input_shape"] == input_shape
    assert table.attrs["total_params"] == sum(p.numel() for p in model.parameters())
    assert table.attrs["total_macs"] == table["macs"].sum()


# LeCun et al. 1998, Sec. II-B: trainable parameters and connections per layer.
LENET_PARAMS = {"C1": 156, "S2": 12, "C3": 1_516, "S4": 32, "C5": 48_120, "F6": 10_164}
LENET_CONNECTIONS = {"C1": 122_304, "C3": 151_600, "C5": 48_120, "F6": 10_164}
# Bias terms among those connections: one per output unit (maps × rows × columns).
LENET_BIASES = {"C1": 6 * 28 * 28, "C3": 16 * 10 * 10, "C5": 120, "F6": 84}


def _by_layer(table):
    return {name.split(".")[-1]: row for name, row in table.set_index("name").iterrows()}


def test_lenet_paper_params_and_connections():
    table = layer_table(create("lenet5", variant="paper"), (1, 32, 32))
    rows = _by_layer(table)
    assert {layer: rows[layer]["params"] for layer in LENET_PARAMS} == LENET_PARAMS
    # "only 60,000 trainable free parameters" (Sec. II-B); the RBF codes are fixed.
    assert table.attrs["total_params"] == 60_000
    for layer, connections in LENET_CONNECTIONS.items():
        assert rows[layer]["macs"] == connections - LENET_BIASES[layer], layer
    assert rows["S2"]["macs"] == rows["S4"]["macs"] == 0
    assert (rows["C1"]["kernel"], rows["C1"]["stride"], rows["C1"]["padding"]) == ("5×5", "1", "0")
    assert rows["C1"]["formula"] == "(32 − 5 + 2·0)/1 + 1 = 28"
    assert rows["F6"]["formula"] == rows["F6"]["kernel"] == ""


@pytest.mark.parametrize("variant", ["paper", "modern"])
def test_lenet_receptive_fields(variant):
    rows = _by_layer(layer_table(create("lenet5", variant=variant), (1, 32, 32)))
    assert {layer: rows[layer]["receptive_field"] for layer in ("C1", "S2", "C3", "S4", "C5")} == {
        "C1": 5,
        "S2": 6,
        "C3": 14,
        "S4": 16,
        "C5": 32,
    }
    assert {layer: rows[layer]["jump"] for layer in ("C1", "S2", "C3", "S4", "C5")} == {
        "C1": 1,
        "S2": 2,
        "C3": 2,
        "S4": 4,
        "C5": 4,
    }


def _total_flops(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.zeros(1, *input_shape))
    return counter.get_total_flops()


@pytest.mark.parametrize(
    "build, input_shape",
    [
        (lambda: create("lenet5", variant="modern"), (1, 32, 32)),
        (lambda: torchvision.models.resnet18(), (3, 224, 224)),
        (lambda: torchvision.models.alexnet(), (3, 224, 224)),
    ],
    ids=["lenet5-modern", "resnet18", "alexnet"],
)
def test_total_macs_match_the_flop_counter(build, input_shape):
    model = build()
    assert layer_table(model, input_shape).attrs["total_macs"] * 2 == _total_flops(model, input_shape)


def test_resnet18_macs_match_torchvision_model_card():
    gmacs = layer_table(torchvision.models.resnet18(), (3, 224, 224)).attrs["total_macs"] / 1e9
    assert round(gmacs, 3) == torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["_ops"]


def test_resnet18_receptive_field():
    table = layer_table(torchvision.models.resnet18(), (3, 224, 224))
    rows = table.set_index("name")
    # 7×7/2 stem: 7 (jump 2); 3×3/2 max pool: 11 (jump 4); each 3×3 conv adds 2 × its input's jump:
    # layer1 11 + 4·8 = 43; layer2 (first conv at jump 4, then 8) 43 + 8 + 3·16 = 99;
    # layer3 99 + 16 + 3·32 = 211; layer4 211 + 32 + 3·64 = 435.
    assert rows.loc["conv1", "receptive_field"] == 7
    assert rows.loc["maxpool", "receptive_field"] == 11
    assert rows.loc["layer1.1.conv2", "receptive_field"] == 43
    assert rows.loc["layer4.1.conv2", "receptive_field"] == 435
    assert rows.loc["layer4.1.conv2", "jump"] == 32
    # The 1×1/2 shortcut sees less than the main branch; the sum takes the larger field.
    assert rows.loc["layer2.0.downsample.0", "receptive_field"] == 43
    assert rows.loc["layer2.1.conv1", "receptive_field"] == 43 + 8 + 16 + 16
    # Global pooling reaches every position of the 7×7 map: 435 + 6·32.
    assert rows.loc["fc", "receptive_field"] == 435 + 6 * 32


class Branches(nn.Module):
    """A stem, a narrow (1×1) and a wide (dilated 3×3, effective 5×5) branch, merged, then a 2×2 pool."""

    def __init__(self, merge: str):
        super().__init__()
        self.merge = merge
        self.stem = nn.Conv2d(1, 4, 3)
        self.narrow = nn.Conv2d(4, 4, 1)
        self.wide = nn.Conv2d(4, 4, 3, padding=2, dilation=2)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        stem = self.stem(x)
        narrow, wide = self.narrow(stem), self.wide(stem)
        if self.merge == "add":
            merged = narrow + wide
        elif self.merge == "cat":
            merged = torch.cat([narrow, wide], 1)
        else:  # a squeeze-and-excitation-like scale from the narrow branch
            merged = wide * narrow.mean((2, 3), keepdim=True)
        return self.pool(merged)


@pytest.mark.parametrize(
    "merge, pooled_field",
    [
        # stem 3, narrow 3, wide 3 + 4 = 7: the merge takes 7, the pool adds 1.
        ("add", 8),
        ("cat", 8),
        # The mean covers the stem's 10×10 map: 3 + 9 = 12 > 7; the pool adds 1 at jump 1.
        ("scale", 13),
    ],
)
def test_receptive_field_of_merged_branches(merge, pooled_field):
    rows = layer_table(Branches(merge), (1, 12, 12)).set_index("name")
    assert rows.loc["narrow", "receptive_field"] == 3
    assert rows.loc["wide", "receptive_field"] == 7
    assert rows.loc["pool", "receptive_field"] == pooled_field
    assert rows.loc["pool", "jump"] == 2


def test_module_called_twice_gives_two_rows_and_counts_its_params_once():
    shared = nn.Conv2d(1, 1, 3, padding=1)
    table = layer_table(nn.Sequential(shared, nn.ReLU(), shared), (1, 8, 8))
    assert list(table["name"]) == ["0", "1", "0"]
    assert list(table["params"]) == [10, 0, 0]
    assert list(table["macs"]) == [9 * 64, 0, 9 * 64]
    assert list(table["receptive_field"]) == [3, 3, 5]
    assert table.attrs["total_params"] == 10


def test_non_square_kernel_reports_the_height_axis():
    table = layer_table(nn.Sequential(nn.Conv2d(1, 2, (3, 5), stride=(2, 1))), (1, 9, 9))
    row = table.iloc[0]
    assert (row["kernel"], row["stride"], row["padding"]) == ("3×5", "2×1", "0")
    assert row["output_shape"] == (2, 4, 5)
    assert row["formula"] == "(9 − 3 + 2·0)/2 + 1 = 4"
    assert row["receptive_field"] == 3


# A too small input is named with the layer where the map vanishes, that layer's formula, and the least size.
@pytest.mark.parametrize("variant", ["paper", "modern"])
def test_lenet_too_small_input(variant, user_error):
    with user_error("1×28×28", "features.C5", "(4 − 5 + 2·0)/1 + 1 = 0 rows", "at least 32×32"):
        create("lenet5", variant=variant, input_size=28)
    assert check_input_size(create("lenet5", variant=variant), (1, 32, 32)) is None


def test_too_small_width_says_columns(user_error):
    with user_error("(4 − 5 + 2·0)/1 + 1 = 0 columns", "at least 5×5"):
        check_input_size(nn.Sequential(nn.Conv2d(1, 1, (1, 5))), (1, 8, 4))


def test_vgg19_check_runs_without_real_compute(user_error):
    # Parameters on the meta device: the check must not need real weights.
    with torch.device("meta"):
        model = torchvision.models.vgg19()
    check_input_size(model, (3, 224, 224))
    # Five 2×2 max pools: 16 → 8 → 4 → 2 → 1 → empty at the fifth (features.36); 32 is the least.
    with user_error("features.36", "MaxPool2d", "= 0 rows", "at least 32×32"):
        check_input_size(model, (3, 16, 16))


class ReadsAValue(nn.Module):
    """A forward pass that reads a value (``.item()``), which meta tensors cannot give."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.pool = nn.MaxPool2d(2)
        self.norm = nn.BatchNorm2d(2)

    def forward(self, x):
        x = self.norm(self.conv(x))
        return self.pool(x) * (1.0 if x.sum().item() >= 0 else -1.0)


def _assert_untouched(model: nn.Module, training: dict[nn.Module, bool]):
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert {m: m.training for m in model.modules()} == training
    assert not _get_current_function_mode_stack()
    assert torch.is_grad_enabled()


def test_check_falls_back_to_a_real_forward_and_leaves_the_model_as_it_was(user_error):
    model = ReadsAValue()
    model.pool.eval()  # mixed training flags must come back as they were
    training = {m: m.training for m in model.modules()}
    running_mean = model.norm.running_mean.clone()
    check_input_size(model, (1, 4, 4))
    with user_error("pool (MaxPool2d)", "⌊(1 − 2 + 2·0)/2⌋ + 1 = 0 rows", "at least 4×4"):
        check_input_size(model, (1, 3, 3))
    _assert_untouched(model, training)
    assert torch.equal(model.norm.running_mean, running_mean)


def test_linear_layer_sized_for_another_input_is_a_bug_not_a_user_error():
    model = create("lenet5")  # F6 sized for 32×32
    with pytest.raises(RuntimeError):
        check_input_size(model, (1, 36, 36))


class Fails(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3)

    def forward(self, x):
        self.conv(x)
        raise ValueError("broken forward")


def test_layer_table_removes_hooks_and_modes_after_an_exception():
    model = Fails()
    training = {m: m.training for m in model.modules()}
    with pytest.raises(ValueError, match="broken forward"):
        layer_table(model, (1, 8, 8))
    _assert_untouched(model, training)


class FunctionalPools(nn.Module):
    """Pooling written in forward() with torch.nn.functional, not as modules."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3)
        self.conv2 = nn.Conv2d(2, 2, 3)
        self.fc = nn.Linear(2, 3)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(self.conv1(x), 2)
        x = torch.nn.functional.adaptive_avg_pool2d(self.conv2(x), 1)
        return self.fc(torch.flatten(x, 1))


def test_receptive_field_through_functional_pools():
    rows = layer_table(FunctionalPools(), (1, 12, 12)).set_index("name")
    # conv1 3 (10×10); 2×2/2 pool 4, jump 2 (5×5); conv2 4 + 2·2 = 8 (3×3); global pool 8 + 2·2 = 12.
    assert rows.loc["conv1", "receptive_field"] == 3
    assert rows.loc["conv2", "receptive_field"] == 8
    assert rows.loc["conv2", "jump"] == 2
    assert rows.loc["fc", "receptive_field"] == 12
