"""The classic models (AlexNet, NiN, VGG, GoogLeNet) against their papers and torchvision.

Paper numbers are test data typed from the papers; torchvision's model cards are read from
torchvision's own code (no download). Parameter and MAC counts at ImageNet size are taken on
the meta device (shapes only, no memory, no arithmetic); the forwards that check real values
run on the CPU with batch size 1.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torchvision
from shapes import build, conv_shapes, count_macs, count_params, io_shapes, on_meta
from torch import nn

from cnnlib.errors import UserError
from cnnlib.models import create, names, spec
from cnnlib.models.alexnet import response_norm
from cnnlib.models.blocks import ResponseNorm

CLASSIC = [
    "alexnet",
    "nin",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "vgg11_bn",
    "vgg13_bn",
    "vgg16_bn",
    "vgg19_bn",
    "googlenet",
]
IMAGENET_SIDE = {"alexnet": 227}  # the others: 224
INITS = ("paper", "xavier", "kaiming", "pytorch")
DATA = Path(os.environ.get("CNNLIB_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def output_shapes(model: nn.Module, x: torch.Tensor, modules: list[str]) -> dict[str, tuple[int, ...]]:
    """(C, H, W) of each named module's output in one forward."""
    return {name: shapes[1] for name, shapes in io_shapes(model, x, modules).items()}


# --- every model: registry, shapes, one training step, options -------------------------------


def test_every_classic_model_is_registered():
    assert set(CLASSIC) <= set(names())
    assert spec("alexnet").paper_input == (3, 227, 227)
    assert all(spec(name).paper_input == (3, 224, 224) for name in CLASSIC if name != "alexnet")


@pytest.mark.parametrize("name", CLASSIC)
def test_imagenet_size_output_shape(name):
    side = IMAGENET_SIDE.get(name, 224)
    model = on_meta(name, side)
    assert model(torch.empty(2, 3, side, side, device="meta")).shape == (2, 1000)


@pytest.mark.parametrize("name", CLASSIC)
def test_cifar_and_mnist_shapes_on_real_images(name, cifar_batch, mnist_batch):
    images, _ = cifar_batch
    with torch.no_grad():
        assert build(name, 32).eval()(images[:2]).shape == (2, 10)
        assert build(name, 28, num_classes=7, in_channels=1).eval()(mnist_batch).shape == (4, 7)


def _sgd_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Loss before and after one SGD step (lr 0.01) on one batch, in training mode."""
    criterion = nn.CrossEntropyLoss()

    def loss() -> torch.Tensor:
        torch.manual_seed(1)  # the same dropout masks in both forwards
        out = model(images)
        if isinstance(out, tuple):  # GoogLeNet's auxiliary heads, weighted as in §5
            logits, *aux = out
            return criterion(logits, labels) + model.aux_weight * sum(criterion(a, labels) for a in aux)
        return criterion(out, labels)

    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    before = loss()
    optimiser.zero_grad()
    before.backward()
    optimiser.step()
    with torch.no_grad():
        return before.item(), loss().item()


# VGG §3.1: its Gaussian initialisation stalls the deeper plain nets (the authors pre-trained
# them from net A, see the next test); Glorot's initialisation trains them from scratch.
TRAINABLE_INIT = {name: "xavier" for name in ("vgg11", "vgg13", "vgg16", "vgg19")}


@pytest.mark.parametrize("name", CLASSIC)
def test_one_sgd_step_lowers_the_loss(name, cifar_batch):
    torch.manual_seed(0)
    model = build(name, 32, init=TRAINABLE_INIT.get(name, "paper")).train()
    before, after = _sgd_step(model, *cifar_batch)
    assert after < before


@pytest.mark.slow
def test_vgg_paper_init_stalls_the_deeper_plain_nets(cifar_batch):
    # §3.1: "bad initialisation can stall learning due to the instability of gradient in deep
    # nets"; the authors trained A from random weights and started B, D, E from A's layers.
    images, labels = cifar_batch
    first_layer_gradient = {}
    for column, name in VGG_NAMES.items():
        for init in ("paper", "xavier"):
            torch.manual_seed(0)
            model = build(name, 32, init=init).train()
            nn.CrossEntropyLoss()(model(images), labels).backward()
            first_layer_gradient[column, init] = model.features[0].weight.grad.norm().item()
    paper = [first_layer_gradient[column, "paper"] for column in VGG_NAMES]
    assert paper == sorted(paper, reverse=True)  # A > B > D > E: vanishing with depth
    assert all(
        first_layer_gradient[column, "paper"] * 100 < first_layer_gradient[column, "xavier"]
        for column in VGG_NAMES
    )


def _expected_std(scheme: str, name: str, weight: torch.Tensor) -> float:
    fan_in = weight[0].numel()
    fan_out = weight.shape[0] * weight[0, 0].numel()
    return {
        # AlexNet §5 and VGG §3.1: 0.01; NiN: its released models' 0.05; GoogLeNet: Glorot.
        "paper": {"googlenet": (2 / (fan_in + fan_out)) ** 0.5, "nin": 0.05}.get(name, 0.01),
        "xavier": (2 / (fan_in + fan_out)) ** 0.5,
        "kaiming": (2 / (fan_out if weight.dim() == 4 else fan_in)) ** 0.5,  # fan-in in linear layers
        "pytorch": (1 / (3 * fan_in)) ** 0.5,  # kaiming_uniform(a=√5): U(±1/√fan_in)
    }[scheme]


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("name", CLASSIC)
def test_init_schemes_give_their_weight_scale(name, init):
    torch.manual_seed(0)
    model = build(name, 32, init=init)
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    largest = max(layers, key=lambda layer: layer.weight.numel())
    assert largest.weight.std().item() == pytest.approx(_expected_std(init, name, largest.weight), rel=0.05)
    if init != "pytorch" and name != "alexnet":
        assert all(layer.bias is None or not layer.bias.any() for layer in layers)


@pytest.mark.parametrize(
    "name,message",
    [
        ("alexnet", "Unknown init 'he' for AlexNet: choose one of 'paper', 'xavier', 'kaiming', 'pytorch'."),
        ("nin", "Unknown init 'he' for NiN: choose one of 'paper', 'xavier', 'kaiming', 'pytorch'."),
        (
            "vgg16",
            "Unknown init 'he' for VGG configuration D: choose one of 'paper', 'xavier', 'kaiming', "
            "'pytorch'.",
        ),
        (
            "googlenet",
            "Unknown init 'he' for GoogLeNet: choose one of 'paper', 'xavier', 'kaiming', 'pytorch'.",
        ),
    ],
)
def test_unknown_init_is_a_user_error(name, message):
    with pytest.raises(UserError) as error:
        build(name, 32, init="he")
    assert str(error.value) == message


@pytest.mark.parametrize(
    "name,message",
    [
        ("alexnet", "Unknown AlexNet variant 'caffe': choose one of 'paper', 'paper_bn', 'torchvision'."),
        ("googlenet", "Unknown GoogLeNet variant 'caffe': choose one of 'paper', 'paper_bn', 'torchvision'."),
        ("nin", "Unknown NiN variant 'caffe': choose one of 'paper', 'paper_bn'."),
    ],
)
def test_unknown_variant_is_a_user_error(name, message):
    with pytest.raises(UserError) as error:
        build(name, 32, variant="caffe")
    assert str(error.value) == message


# --- width_mult (MobileNetV1 Sec. 3.3, MobileNetV2 Sec. 6.1) --------------------------------


@pytest.mark.parametrize("name", CLASSIC)
def test_half_width_costs_a_quarter_of_the_convolution_macs(name, half_width_conv_macs_ratio):
    # The first convolution is left out: its input is the image's 3 channels, which width_mult does
    # not scale, so its MACs halve instead (AlexNet's conv1 alone would put the total 16 % above ¼).
    assert half_width_conv_macs_ratio(name, lambda conv, index: index > 0) == pytest.approx(1 / 4, rel=0.10)


@pytest.mark.parametrize(
    "name, options, widths",
    [
        ("alexnet", {}, {"features.0": 48, "features.4": 128, "features.8": 192, "classifier.0": 2048}),
        ("alexnet", {"variant": "torchvision"}, {"features.0": 32, "features.3": 96, "classifier.1": 2048}),
        ("nin", {}, {"features.mlpconv1.0": 48, "features.mlpconv4.2": 512, "features.mlpconv4.4": 1000}),
        ("vgg16", {}, {"features.0": 32, "features.28": 256, "classifier.0": 2048, "classifier.6": 1000}),
        (
            "googlenet",
            {},
            {
                "conv1.conv": 32,
                "conv3.conv": 96,
                "inception3a.branch3.0.conv": 8,
                "inception5b.branch2.1.conv": 192,
                "aux1.conv.conv": 64,
                "aux1.fc1": 512,
            },
        ),
    ],
)
def test_half_width_halves_every_layer_but_the_class_outputs(name, options, widths):
    model = on_meta(name, IMAGENET_SIDE.get(name, 224), width_mult=0.5, **options)
    for layer, channels in widths.items():
        module = model.get_submodule(layer)
        assert getattr(module, "out_channels", getattr(module, "out_features", None)) == channels, layer


def test_alexnet_paper_width_keeps_whole_channels_per_tower():
    model = build("alexnet", 32, width_mult=0.3)  # 96 × 0.3 = 28.8: 14 + 14 kernels, one tower each
    assert [conv.out_channels for conv in model.features if isinstance(conv, nn.Conv2d)] == [
        28,
        76,
        116,
        116,
        76,
    ]


@pytest.mark.parametrize(
    "name, tiny, layer",
    [
        ("alexnet", 0.001, "conv1"),
        ("nin", 0.001, "mlpconv1 conv3"),
        ("vgg11", 0.001, "conv1"),
        ("vgg19_bn", 0.001, "conv1"),
        ("googlenet", 0.01, "ch5x5_reduce of inception3a"),
    ],
)
def test_width_mult_errors(name, tiny, layer, assert_width_mult_errors):
    assert_width_mult_errors(name, tiny, layer)


@pytest.mark.parametrize("name", CLASSIC)
def test_cli_summary_at_a_quarter_width(name, run_cli):
    status, out, err = run_cli("summary", "--model", name, "--model-option", "width_mult=0.25")
    assert status == 0, err
    assert "Conv2d" in out


# --- torchvision's model cards and weights ---------------------------------------------------

CARDS = [
    ("alexnet", {"variant": "torchvision"}, torchvision.models.AlexNet_Weights),
    *[
        (name, {}, getattr(torchvision.models, name.upper() + "_Weights"))
        for name in CLASSIC
        if name.startswith("vgg")
    ],
    ("googlenet", {"variant": "torchvision", "aux_logits": False}, torchvision.models.GoogLeNet_Weights),
]


@pytest.mark.parametrize("name,options,weights", CARDS, ids=[card[0] for card in CARDS])
def test_params_and_macs_equal_torchvision_cards(name, options, weights):
    card = weights.IMAGENET1K_V1.meta
    model = on_meta(name, 224, **options)
    macs, _ = count_macs(model, 224)
    assert count_params(model) == card["num_params"]
    assert abs(round(macs / 1e9, 3) - card["_ops"]) <= 0.0005


def test_googlenet_card_counts_the_network_without_its_auxiliary_heads():
    card = torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1.meta
    with_heads = on_meta("googlenet", 224, variant="torchvision")
    assert count_params(with_heads) == card["num_params"] + 6_379_984  # 2 × (1×1 conv+BN, fc1, fc2)
    assert count_params(with_heads, skip=("aux1.", "aux2.")) == card["num_params"]
    assert round(count_macs(with_heads, 224)[0] / 1e9, 3) == card["_ops"]  # eval mode: heads idle


@pytest.mark.parametrize(
    "name,options,reference",
    [
        ("alexnet", {"variant": "torchvision"}, lambda: torchvision.models.alexnet()),
        (
            "googlenet",
            {"variant": "torchvision"},
            lambda: torchvision.models.googlenet(aux_logits=True, init_weights=True),
        ),
        ("vgg11_bn", {}, lambda: torchvision.models.vgg11_bn()),
    ],
    ids=["alexnet", "googlenet", "vgg11_bn"],
)
@pytest.mark.slow
def test_torchvision_weights_load_and_give_the_same_logits(name, options, reference):
    torch.manual_seed(0)
    theirs = reference().eval()
    ours = on_meta(name, 224, **options)
    ours.load_state_dict(theirs.state_dict(), assign=True)  # strict: same names, same shapes
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


# --- AlexNet (Krizhevsky et al. 2012) ---------------------------------------------------------


@pytest.fixture(scope="module")
def alexnet_227() -> nn.Module:
    torch.manual_seed(0)
    return build("alexnet", 227, num_classes=1000).eval()


def test_alexnet_has_the_papers_60_965_224_parameters(alexnet_227):
    assert count_params(alexnet_227) == 60_965_224


def test_alexnet_kernels_are_those_of_section_3_5(alexnet_227):
    # §3.5: "96 kernels of size 11×11×3", "256 kernels of size 5×5×48", "384 kernels of size
    # 3×3×256", "384 kernels of size 3×3×192", "256 kernels of size 3×3×192"; FC layers 4096.
    convs = [m for m in alexnet_227.features if isinstance(m, nn.Conv2d)]
    assert [tuple(c.weight.shape) for c in convs] == [
        (96, 3, 11, 11),
        (256, 48, 5, 5),
        (384, 256, 3, 3),
        (384, 192, 3, 3),
        (256, 192, 3, 3),
    ]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]  # §3.2: GPUs talk only at conv3 and the FC layers
    assert [m.out_features for m in alexnet_227.classifier if isinstance(m, nn.Linear)] == [4096, 4096, 1000]


def test_alexnet_feature_maps_at_227_are_those_of_section_3_5(alexnet_227):
    convs = [f"features.{i}" for i, m in enumerate(alexnet_227.features) if isinstance(m, nn.Conv2d)]
    shapes = output_shapes(alexnet_227, torch.randn(1, 3, 227, 227), [*convs, "features"])
    assert [shapes[c] for c in convs] == [
        (96, 55, 55),
        (256, 27, 27),
        (384, 13, 13),
        (384, 13, 13),
        (256, 13, 13),
    ]
    assert shapes["features"] == (256, 6, 6)  # fc6 sees 6×6×256 = 9216 inputs


def test_alexnet_224_cannot_give_55_with_an_unpadded_11_by_4_kernel():
    assert (224 - 11) / 4 + 1 == 54.25  # not a whole number: Fig. 2's 224 is a misprint for 227
    assert (227 - 11) / 4 + 1 == 55
    conv1 = nn.Conv2d(3, 96, 11, stride=4)
    assert conv1(torch.zeros(1, 3, 224, 224)).shape[-1] == 54  # PyTorch floors
    assert conv1(torch.zeros(1, 3, 227, 227)).shape[-1] == 55


def test_student_table_with_stride_2_conv3_to_conv5_is_impossible():
    # A student project listed conv3–conv5 as 3×3, stride 2, no padding. From the 13×13 maps
    # after the second pool, the output-size formula ⌊(W − F + 2P)/S⌋ + 1 gives 6, 2, 0.
    sides = [13]
    for _ in range(3):
        sides.append((sides[-1] - 3 + 2 * 0) // 2 + 1)
    assert sides == [13, 6, 2, 0]  # the paper's conv5 is 13×13; this table leaves nothing
    layers = nn.Sequential(nn.Conv2d(256, 384, 3, 2), nn.Conv2d(384, 384, 3, 2), nn.Conv2d(384, 256, 3, 2))
    with pytest.raises(RuntimeError):
        layers(torch.zeros(1, 256, 13, 13))


def test_alexnet_response_normalisation_is_section_3_3():
    a = torch.randn(2, 12, 3, 3) * 10
    k, n, alpha, beta = 2.0, 5, 1e-4, 0.75
    expected = torch.empty_like(a)
    for i in range(a.shape[1]):
        window = a[:, max(0, i - n // 2) : min(a.shape[1], i + n // 2 + 1)]
        expected[:, i] = a[:, i] / (k + alpha * window.pow(2).sum(1)) ** beta
    torch.testing.assert_close(response_norm()(a), expected)


@pytest.mark.parametrize("size", [5, 4])
def test_response_norm_equals_torchs_forward_and_backward(size):
    a = (torch.randn(2, 13, 5, 5) * 10).to(memory_format=torch.channels_last).requires_grad_()
    b = a.detach().clone().contiguous().requires_grad_()
    ours, torchs = (
        ResponseNorm(size, alpha=5e-4, beta=0.75, k=2.0),
        nn.LocalResponseNorm(size, 5e-4, 0.75, 2.0),
    )
    torch.testing.assert_close(ours(a), torchs(b))
    ours(a).pow(2).sum().backward()
    torchs(b).pow(2).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)


def test_alexnet_paper_init_is_section_5(alexnet_227):
    layers = [m for m in alexnet_227.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    # conv1..conv5, fc6, fc7, fc8: biases 1 in conv2, conv4, conv5 and the hidden FC layers.
    biases = [layer.bias.unique().tolist() for layer in layers]
    assert biases == [[0.0], [1.0], [0.0], [1.0], [1.0], [1.0], [1.0], [0.0]]
    assert all(layer.weight.std().item() == pytest.approx(0.01, rel=0.05) for layer in layers)
    assert all(abs(layer.weight.mean().item()) < 1e-3 for layer in layers)


def test_alexnet_imagenet_form_cannot_take_a_cifar_image():
    # 32 → conv1 ⌊(32 − 11)/4⌋ + 1 = 6 → pool 2 → conv2..5 2 → pool 0; the smallest input
    # that leaves one pixel after the third pool is 67 (conv1 15 → 7 → 3 → 1).
    with pytest.raises(UserError) as error:
        build("alexnet", 32, small_input=False)
    assert "layer features.7 (MaxPool2d)" in str(error.value) and "at least 67×67" in str(error.value)


def test_alexnet_small_form_swaps_only_conv1():
    small = build("alexnet", 32)
    assert small.features[0].kernel_size == (3, 3) and small.features[0].stride == (1, 1)
    assert on_meta("alexnet", 227, small_input=True).features[0].kernel_size == (3, 3)
    large_layers = [type(m) for m in on_meta("alexnet", 227).features]
    assert [type(m) for m in small.features] == large_layers  # LRNs and the three pools stay
    assert small.classifier[0].in_features == 256 * 3 * 3  # 32 → 15 → 7 → 3


# --- NiN (Lin et al. 2014) --------------------------------------------------------------------


def _mlpconvs(model: nn.Module) -> list[nn.Sequential]:
    return [block for name, block in model.features.named_children() if name.startswith("mlpconv")]


@pytest.mark.parametrize("side,blocks", [(224, 4), (32, 3)])
def test_nin_is_mlpconv_layers_and_global_average_pooling(side, blocks):
    model = build("nin", side, num_classes=1000 if side > 64 else 10)
    assert len(_mlpconvs(model)) == blocks
    for block in _mlpconvs(model):
        kinds = [type(m) for m in block]
        assert kinds == [nn.Conv2d, nn.ReLU] * 3
        assert [m.kernel_size for m in block[2::2]] == [(1, 1), (1, 1)]  # §3.1: the MLP as 1×1 convolutions
    assert not any(isinstance(m, nn.Linear) for m in model.modules())  # §3.2: no fully connected layer
    assert isinstance(model.global_pool, nn.AdaptiveAvgPool2d)


def test_nin_imagenet_form_matches_the_released_model():
    model = build("nin", 224, num_classes=1000).eval()
    pools = ["features.pool1", "features.pool2", "features.pool3", "features.mlpconv4"]
    shapes = output_shapes(model, torch.randn(1, 3, 224, 224), pools)
    assert [shapes[p] for p in pools] == [(96, 27, 27), (256, 13, 13), (384, 6, 6), (1000, 6, 6)]
    # conv1 11×11×3×96, cccp 96², conv2 5×5×96×256, cccp 256², conv3 3×3×256×384, cccp 384²,
    # conv4 3×3×384×1024, cccp7 1024², cccp8 1024×1000, each with its biases.
    expected = (
        11 * 11 * 3 * 96
        + 96
        + 2 * (96 * 96 + 96)
        + 5 * 5 * 96 * 256
        + 256
        + 2 * (256 * 256 + 256)
        + 3 * 3 * 256 * 384
        + 384
        + 2 * (384 * 384 + 384)
        + 3 * 3 * 384 * 1024
        + 1024
        + 1024 * 1024
        + 1024
        + 1024 * 1000
        + 1000
    )
    assert count_params(model) == expected
    assert [n for n, m in model.features.named_children() if isinstance(m, nn.Dropout)] == ["dropout3"]


def test_nin_cifar_form_matches_section_4_2():
    model = build("nin", 32).eval()
    shapes = output_shapes(
        model, torch.randn(1, 3, 32, 32), ["features.pool1", "features.pool2", "features.mlpconv3"]
    )
    assert list(shapes.values()) == [(96, 16, 16), (192, 8, 8), (10, 8, 8)]
    assert [m.kernel_size for m in (b[0] for b in _mlpconvs(model))] == [(5, 5), (5, 5), (3, 3)]
    assert (type(model.features.pool1), type(model.features.pool2)) == (nn.MaxPool2d, nn.AvgPool2d)
    # 192-160-96, 192-192-192, 192-192-10 with biases
    expected = (
        5 * 5 * 3 * 192
        + 192
        + 192 * 160
        + 160
        + 160 * 96
        + 96
        + 5 * 5 * 96 * 192
        + 192
        + 2 * (192 * 192 + 192)
        + 3 * 3 * 192 * 192
        + 192
        + 192 * 192
        + 192
        + 192 * 10
        + 10
    )
    assert count_params(model) == expected
    # §4.1: dropout on the outputs of all but the last mlpconv layer
    assert [n for n, m in model.features.named_children() if isinstance(m, nn.Dropout)] == [
        "dropout1",
        "dropout2",
    ]


def test_alexnet_with_batch_norm_is_the_paper_network_with_batch_norm_and_no_lrn(cifar_batch):
    paper = build("alexnet", 227, num_classes=1000)
    with_bn = build("alexnet", 227, num_classes=1000, variant="paper_bn")
    # §3.5 and the two towers of §3.2 (batch norm shifts the modules' indices, so compare in order)
    assert list(conv_shapes(with_bn).values()) == list(conv_shapes(paper).values())
    kinds = [type(m) for m in with_bn.features]
    pooled, unpooled = (
        [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d],
        [nn.Conv2d, nn.BatchNorm2d, nn.ReLU],
    )
    assert kinds == pooled * 2 + unpooled * 2 + pooled  # Ioffe & Szegedy §3.2; no LRN (their §4.2.1)
    assert all(m.bias is None for m in with_bn.features if isinstance(m, nn.Conv2d))
    assert [type(m) for m in with_bn.classifier] == [type(m) for m in paper.classifier]  # fc6–fc8 and dropout
    small = build("alexnet", 32, variant="paper_bn", init="paper")  # §5's biases have no place without a bias
    images, _ = cifar_batch
    assert small.train()(images).shape == (len(images), 10)


def test_nin_with_batch_norm_is_the_cifar_network_with_batch_norm_before_every_relu(cifar_batch):
    paper, with_bn = build("nin", 32), build("nin", 32, variant="paper_bn")
    assert list(conv_shapes(with_bn).values()) == list(conv_shapes(paper).values())
    for normed in _mlpconvs(with_bn):
        assert [type(m) for m in normed] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU] * 3  # Ioffe & Szegedy §3.2
        assert all(
            m.bias is None for m in normed if isinstance(m, nn.Conv2d)
        )  # batch norm's shift replaces the bias
    # each convolution loses its bias and its batch norm gains a scale and a shift
    assert count_params(with_bn) - count_params(paper) == sum(
        m.out_channels for m in with_bn.modules() if isinstance(m, nn.Conv2d)
    )
    assert [n for n, m in with_bn.features.named_children() if isinstance(m, nn.Dropout)] == [
        "dropout1",
        "dropout2",
    ]
    images, _ = cifar_batch
    assert with_bn.train()(images).shape == (len(images), 10)


def test_nin_dropout_rate_is_an_option_and_zero_leaves_the_layers_out():
    paper, without, light = build("nin", 32), build("nin", 32, dropout=0.0), build("nin", 32, dropout=0.2)
    assert [m.p for m in paper.modules() if isinstance(m, nn.Dropout)] == [0.5, 0.5]  # §4.1
    assert [m.p for m in light.modules() if isinstance(m, nn.Dropout)] == [0.2, 0.2]
    assert not any(isinstance(m, nn.Dropout) for m in without.modules())
    assert count_params(without) == count_params(paper)
    with pytest.raises(UserError, match=r"^dropout 1\.0 must be a probability in \[0, 1\), e\.g\. 0\.2\.$"):
        build("nin", 32, dropout=1.0)


# --- VGG (Simonyan & Zisserman 2015) ----------------------------------------------------------

# Table 1, in the paper's notation (the final soft-max is the loss).
TABLE_1 = {
    "A": "conv3-64 maxpool conv3-128 maxpool conv3-256 conv3-256 maxpool conv3-512 conv3-512 maxpool "
    "conv3-512 conv3-512 maxpool",
    "B": "conv3-64 conv3-64 maxpool conv3-128 conv3-128 maxpool conv3-256 conv3-256 maxpool "
    "conv3-512 conv3-512 maxpool conv3-512 conv3-512 maxpool",
    "D": "conv3-64 conv3-64 maxpool conv3-128 conv3-128 maxpool conv3-256 conv3-256 conv3-256 maxpool "
    "conv3-512 conv3-512 conv3-512 maxpool conv3-512 conv3-512 conv3-512 maxpool",
    "E": "conv3-64 conv3-64 maxpool conv3-128 conv3-128 maxpool conv3-256 conv3-256 conv3-256 conv3-256 "
    "maxpool conv3-512 conv3-512 conv3-512 conv3-512 maxpool conv3-512 conv3-512 conv3-512 conv3-512 "
    "maxpool",
}
TABLE_2_MILLIONS = {"A": 133, "B": 133, "D": 138, "E": 144}
VGG_NAMES = {"A": "vgg11", "B": "vgg13", "D": "vgg16", "E": "vgg19"}


def _table_1_notation(model: nn.Module) -> str:
    words = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            words.append(f"conv{m.kernel_size[0]}-{m.out_channels}")
        elif isinstance(m, nn.MaxPool2d):
            words.append("maxpool")
        elif isinstance(m, nn.Linear):
            words.append(f"FC-{m.out_features}")
    return " ".join(words)


@pytest.mark.parametrize("column", TABLE_1)
def test_vgg_layers_follow_table_1(column):
    for name in (VGG_NAMES[column], VGG_NAMES[column] + "_bn"):
        assert _table_1_notation(on_meta(name, 224)) == TABLE_1[column] + " FC-4096 FC-4096 FC-1000"
    bn_layers = list(on_meta(VGG_NAMES[column] + "_bn", 224).features)
    assert all(
        isinstance(after, nn.BatchNorm2d)
        for layer, after in zip(bn_layers, bn_layers[1:])
        if isinstance(layer, nn.Conv2d)
    )


@pytest.mark.parametrize("column", TABLE_2_MILLIONS)
def test_vgg_parameter_counts_match_table_2(column):
    assert count_params(on_meta(VGG_NAMES[column], 224)) / 1e6 == pytest.approx(
        TABLE_2_MILLIONS[column], abs=0.5
    )


def test_vgg_small_form_is_one_linear_layer_and_reaches_1x1_at_28(mnist_batch):
    model = build("vgg16", 28, in_channels=1).eval()
    assert [type(m) for m in model.classifier] == [nn.Linear] and model.classifier[0].in_features == 512
    assert output_shapes(model, mnist_batch, ["features"])["features"] == (512, 1, 1)  # 28→14→7→4→2→1
    assert build("vgg11", 64).classifier[0].in_features == 512 * 2 * 2
    assert len(build("vgg11", 32, small_input=False).classifier) == 7  # forced: Table 1's classifier


# --- GoogLeNet (Szegedy et al. 2015) ----------------------------------------------------------


@pytest.fixture(scope="module")
def googlenet_224() -> nn.Module:
    torch.manual_seed(0)
    return build("googlenet", 224, num_classes=1000).eval()


# Table 1: output size, params (K), ops (M). Rows map to our modules; Table 1's "conv2" is our
# conv2 (1×1 reduce) + conv3 (3×3).
TABLE_1_GOOGLENET = {
    "conv1": ((64, 112, 112), 2.7, 34, ["conv1"]),
    "max pool 1": ((64, 56, 56), None, None, ["maxpool1"]),
    "conv2": ((192, 56, 56), 112, 360, ["conv2", "conv3"]),
    "max pool 2": ((192, 28, 28), None, None, ["maxpool2"]),
    "3a": ((256, 28, 28), 159, 128, ["inception3a"]),
    "3b": ((480, 28, 28), 380, 304, ["inception3b"]),
    "max pool 3": ((480, 14, 14), None, None, ["maxpool3"]),
    "4a": ((512, 14, 14), 364, 73, ["inception4a"]),
    "4b": ((512, 14, 14), 437, 88, ["inception4b"]),
    "4c": ((512, 14, 14), 463, 100, ["inception4c"]),
    "4d": ((528, 14, 14), 580, 119, ["inception4d"]),
    "4e": ((832, 14, 14), 840, 170, ["inception4e"]),
    "max pool 4": ((832, 7, 7), None, None, ["maxpool4"]),
    "5a": ((832, 7, 7), 1072, 54, ["inception5a"]),
    "5b": ((1024, 7, 7), 1388, 71, ["inception5b"]),
    "avg pool": ((1024, 1, 1), None, None, ["avgpool"]),
    "linear": ((1000,), 1000, 1, ["fc"]),
}
# Rows where Table 1 disagrees with its own layer widths. conv1: 7×7×3×64 = 9,408 weights
# (9.2K, 118M MACs on 112×112), not 2.7K/34M. 4c: its 509,440 weights are 497.5K; the ops
# entry, 100M, matches them (463K × 196 would be 93M). 5a: 1,042,432 weights = 1018K and 51M,
# not 1072K/54M (the two entries agree with each other, not with the widths of the same table).
PARAMS_ERRATA, OPS_ERRATA = {"conv1", "4c", "5a"}, {"conv1", "5a"}


def test_googlenet_output_sizes_follow_table_1(googlenet_224):
    last_module = {row: entry[3][-1] for row, entry in TABLE_1_GOOGLENET.items()}
    shapes = output_shapes(googlenet_224, torch.randn(1, 3, 224, 224), list(last_module.values()))
    assert {row: shapes[module] for row, module in last_module.items()} == {
        row: entry[0] for row, entry in TABLE_1_GOOGLENET.items()
    }


def test_googlenet_params_and_ops_follow_table_1(googlenet_224):
    # The params column counts weights without biases in units of 1024 (conv2: 4,096 + 110,592
    # = 114,688 = 112 × 1024 exactly); entries agree with the layer widths within 2% (4d, the
    # farthest, is 590.5K against 580K, while its ops entry matches ours to the unit). The ops
    # column is MACs in millions, rounded or truncated: within 1M.
    _, macs = count_macs(googlenet_224, 224)
    for row, (_, params_k, ops_m, modules) in TABLE_1_GOOGLENET.items():
        if params_k is None:
            continue
        weights = sum(
            p.numel()
            for m in modules
            for n, p in googlenet_224.get_submodule(m).named_parameters()
            if n.endswith("weight")
        )
        ours_ops = sum(macs[m] for m in modules) / 1e6
        if row not in PARAMS_ERRATA:
            assert weights / 1024 == pytest.approx(params_k, rel=0.02), row
        if row not in OPS_ERRATA:
            assert abs(ours_ops - ops_m) < 1, row
    conv1_weights = googlenet_224.conv1.conv.weight.numel()
    assert conv1_weights == 7 * 7 * 3 * 64 and conv1_weights * 112 * 112 / 1e6 == pytest.approx(118, abs=0.5)


def test_googlenet_paper_form_has_5x5_branches_lrn_and_no_batch_norm(googlenet_224):
    fifth_branches = [
        m.branch3[1].conv.kernel_size for n, m in googlenet_224.named_children() if n.startswith("incep")
    ]
    assert fifth_branches == [(5, 5)] * 9
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in googlenet_224.modules()) == 2  # Fig. 3
    assert not any(isinstance(m, nn.BatchNorm2d) for m in googlenet_224.modules())
    assert googlenet_224.dropout.p == 0.4
    torchvision_form = on_meta("googlenet", 224, variant="torchvision")
    assert torchvision_form.inception3a.branch3[1].conv.kernel_size == (3, 3)
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in torchvision_form.modules())


def test_googlenet_with_batch_norm_is_table_1_with_batch_norm_and_no_lrn():
    paper, with_bn = on_meta("googlenet", 224), on_meta("googlenet", 224, variant="paper_bn")
    assert conv_shapes(paper) == conv_shapes(with_bn)
    bn_convs = [m for m in with_bn.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.bias is None for m in bn_convs)  # batch norm's shift replaces the bias
    norms = [m for m in with_bn.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == len(bn_convs)  # Ioffe & Szegedy §3.2: before every nonlinearity
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in with_bn.modules())  # their §4.2.1
    assert (with_bn.dropout.p, with_bn.aux1.pool.kernel_size, with_bn.maxpool4.kernel_size) == (0.4, 5, 3)


def test_googlenet_dropout_option_sets_the_last_layers_rate_and_leaves_the_auxiliary_heads_0_7():
    assert on_meta("googlenet", 224, variant="torchvision").dropout.p == 0.2  # the variant's, by default
    lighter = on_meta("googlenet", 32, variant="paper_bn", dropout=0.0)
    assert lighter.dropout.p == 0.0
    assert (lighter.aux1.dropout.p, lighter.aux2.dropout.p) == (0.7, 0.7)  # §5
    assert count_params(lighter) == count_params(on_meta("googlenet", 32, variant="paper_bn"))
    with pytest.raises(UserError, match=r"^dropout -0\.1 must be a probability in \[0, 1\), e\.g\. 0\.2\.$"):
        on_meta("googlenet", 32, dropout=-0.1)


def test_googlenet_auxiliary_classifiers_follow_section_5(googlenet_224):
    for aux, channels in ((googlenet_224.aux1, 512), (googlenet_224.aux2, 528)):  # on 4a and 4d
        assert (aux.pool.kernel_size, aux.pool.stride) == (5, 3)
        assert (aux.conv.conv.kernel_size, aux.conv.conv.out_channels) == ((1, 1), 128)
        assert (aux.conv.conv.in_channels, aux.fc1.in_features, aux.fc1.out_features) == (
            channels,
            128 * 4 * 4,
            1024,
        )
        assert aux.dropout.p == 0.7
    x = torch.randn(1, 3, 224, 224)
    assert output_shapes(googlenet_224, x, ["aux1.pool", "aux2.pool"]) == {}  # eval mode: the heads idle
    try:  # §5: "4×4×512 output for the (4a), and 4×4×528 for the (4d) stage"
        assert output_shapes(googlenet_224.train(), x, ["aux1.pool", "aux2.pool"]) == {
            "aux1.pool": (512, 4, 4),
            "aux2.pool": (528, 4, 4),
        }
    finally:
        googlenet_224.eval()
    assert googlenet_224.aux_weight == 0.3


def test_googlenet_returns_auxiliary_logits_in_training_only(cifar_batch):
    images, _ = cifar_batch
    model = build("googlenet", 32)
    seen = {}
    for head in ("aux1", "aux2"):
        model.get_submodule(head).register_forward_hook(lambda m, a, out, head=head: seen.update({head: out}))
    logits, aux1, aux2 = model.train()(images[:2])
    assert aux1 is seen["aux1"] and aux2 is seen["aux2"]  # order: main, 4a head, 4d head
    assert logits.shape == aux1.shape == aux2.shape == (2, 10)
    with torch.no_grad():
        assert model.eval()(images[:2]).shape == (2, 10)
    assert build("googlenet", 32, aux_logits=False).aux1 is None


def test_googlenet_small_form_keeps_the_stem_but_its_first_pool():
    model = build("googlenet", 32).eval()
    assert model.conv1.conv.kernel_size == (3, 3) and isinstance(model.maxpool1, nn.Identity)
    shapes = output_shapes(model, torch.randn(1, 3, 32, 32), ["inception3b", "inception4e", "inception5b"])
    assert list(shapes.values()) == [(480, 32 // 2, 32 // 2), (832, 8, 8), (1024, 4, 4)]
    assert model.aux1.fc1.in_features == 128 * 2 * 2  # 8×8 → 5×5/3 pool → 2×2


def test_lenet5_study_options_change_the_modern_form_only():
    base = create("lenet5")
    normed = create("lenet5", batch_norm=True, dropout=0.5, activation="gelu")
    layers = dict(normed.named_modules())
    # Batch norm adds a scale and shift per channel (6 + 16 + 120 + 84) and removes the biases before it.
    assert sum(p.numel() for p in normed.parameters()) == sum(p.numel() for p in base.parameters()) + 226
    assert isinstance(layers["features.C1_bn"], nn.BatchNorm2d) and layers["features.C1"].bias is None
    assert isinstance(layers["features.C1_act"], nn.GELU) and layers["classifier.F6_dropout"].p == 0.5
    small = create("lenet5", init="small_normal")
    assert all(
        abs(float(layer.weight.detach().std()) - 0.01) < 0.003
        for layer in small.modules()
        if isinstance(layer, (nn.Conv2d, nn.Linear)) and layer.weight.numel() > 500
    )
    torch.manual_seed(0)
    xavier = create("lenet5", init="xavier").classifier.F6.weight.detach()
    assert float(xavier.abs().max()) <= (6 / (120 + 84)) ** 0.5
    with pytest.raises(UserError, match="leave them out with variant='paper'"):
        create("lenet5", variant="paper", activation="tanh")
    with pytest.raises(UserError, match="Unknown activation 'swish': choose one of 'relu', 'tanh'"):
        create("lenet5", activation="swish")
    with pytest.raises(UserError, match="Unknown init 'he' for LeNet-5: choose one of .*'small_normal'"):
        create("lenet5", init="he")


def test_xavier_init_reaches_lenet5s_sparse_c3():
    # Table I connects the 16 C3 maps to 6×3 + 6×4 + 3×4 + 1×6 = 60 S2 maps, 60 × 25 = 1,500 weights:
    # a mean fan-in of 1500/16 = 93.75 and fan-out of 1500/6 = 250, so Glorot's bound is
    # √(6 / 343.75) = 0.1321. The paper's own bound (Appendix C), 2.4/(6 × 25) = 0.016, is far below it.
    torch.manual_seed(0)
    c3 = create("lenet5", variant="paper", init="xavier").features.C3.weight
    assert 0.95 * 0.1321 < c3.abs().max().item() <= 0.1322
    paper = create("lenet5", variant="paper").features.C3.weight
    assert paper.abs().max().item() <= 2.4 / 150


@pytest.mark.parametrize(
    "name, option, valid",
    [
        ("vgg16", "depth", "small_input, width_mult, init"),
        ("lenet5", "small_input", "variant, activation, dropout, batch_norm, init"),
    ],
)
def test_unknown_option_names_the_valid_ones(name, option, valid):
    with pytest.raises(
        UserError, match=rf"^Model '{name}' has no option '{option}': its options are {valid}\.$"
    ):
        create(name, **{option: 1})


# --- the options the chapters' paper experiments switch (results/ablations/) -------------------


def test_alexnet_tanh_replaces_every_relu_and_nothing_else():
    relu, tanh = (
        build("alexnet", 32, width_mult=0.25),
        build("alexnet", 32, width_mult=0.25, activation="tanh"),
    )
    kinds = [type(module) for module in relu.modules()]
    assert kinds.count(nn.ReLU) == 7  # conv1-conv5, fc6, fc7 (§3.1)
    assert [nn.Tanh if kind is nn.ReLU else kind for kind in kinds] == [
        type(module) for module in tanh.modules()
    ]
    assert count_params(relu) == count_params(tanh)
    with pytest.raises(UserError, match="Unknown activation 'sigmoid'.*'relu', 'tanh'"):
        build("alexnet", 32, activation="sigmoid")


def test_nin_fully_connected_head_of_section_4_6_on_the_cifar_network(cifar_batch):
    fc = build("nin", 32, head="fc")
    [linear] = [module for module in fc.modules() if isinstance(module, nn.Linear)]
    assert (linear.in_features, linear.out_features) == (
        10 * 8 * 8,
        10,
    )  # the class maps at 8×8 (32 → 16 → 8)
    assert any(isinstance(module, nn.Dropout) for module in fc.classifier)  # Table 5's "+ dropout" row
    assert not hasattr(fc, "global_pool") and fc(cifar_batch[0]).shape == (len(cifar_batch[0]), 10)
    gap = build("nin", 32)
    assert count_params(fc) - count_params(gap) == 640 * 10 + 10  # the mlpconv body is the same
    without_dropout = build("nin", 32, head="fc", dropout=0.0)
    assert not any(isinstance(module, nn.Dropout) for module in without_dropout.modules())
    with pytest.raises(UserError, match="Unknown head 'max'.*'gap', 'fc'"):
        build("nin", 32, head="max")
