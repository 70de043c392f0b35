"""The CIFAR-10 ResNets of He et al. 2016, Sec. 4.2 (Table 6), and their plain twins."""

from __future__ import annotations

import math

import pytest
import torch
from shapes import build, count_params, io_shapes
from torch import nn

from cnnlib.models import spec
from cnnlib.models.resnet import ResidualUnit, ZeroPadShortcut

DEPTHS = (20, 32, 44, 56, 110)
RESIDUAL = [f"resnet{depth}" for depth in DEPTHS]
PLAIN = [f"plain{depth}" for depth in DEPTHS]

# Exact parameter counts, derived by hand for 6n + 2 layers (n = (depth − 2) / 6), option A
# (parameter-free) shortcuts, batch norm's scale and shift (2 per channel) and the FC's bias;
# a 3×3 convolution from c to c' channels has 9·c·c' weights and no bias (batch norm follows):
#   stem           9·3·16 + 2·16                                        =    464
#   stage 16       2n × (9·16·16 + 2·16)             = 2n × 2,336
#   stage 32       (9·16·32 + 2·32) + (2n − 1) × (9·32·32 + 2·32)   = 4,672 + (2n − 1) × 9,280
#   stage 64       (9·32·64 + 2·64) + (2n − 1) × (9·64·64 + 2·64)   = 18,560 + (2n − 1) × 36,992
#   FC             64·10 + 10                                           =    650
# total = 97,216·n − 21,926: ResNet-20 (n = 3) 269,722. (With 1×1 projection shortcuts and their
# batch norms, option B, ResNet-20 would have 2,752 more: 272,474.)
EXACT_PARAMS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}
# Table 6, "# params": 0.27M, 0.46M, 0.66M, 0.85M, 1.7M.
TABLE_6_MILLIONS = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7}


def test_listed_by_cnnlib_models(run_cli):
    status, out, err = run_cli("models")
    assert status == 0, err
    assert set(RESIDUAL + PLAIN) <= set(out.split())
    assert all(spec(name).paper_input == (3, 32, 32) for name in RESIDUAL + PLAIN)


@pytest.mark.parametrize("depth", DEPTHS)
def test_parameter_counts_are_table_6s(depth):
    n = (depth - 2) // 6
    assert 97_216 * n - 21_926 == EXACT_PARAMS[depth]  # the hand derivation above, for every n
    residual, plain = build(f"resnet{depth}", 32), build(f"plain{depth}", 32)
    assert count_params(residual) == count_params(plain) == EXACT_PARAMS[depth]
    digits = 1 if depth == 110 else 2  # the precision Table 6 prints
    assert round(EXACT_PARAMS[depth] / 1e6, digits) == TABLE_6_MILLIONS[depth]


@pytest.mark.parametrize("depth", DEPTHS)
def test_depth_is_6n_plus_2_weighted_layers_in_three_stages(depth):
    model = build(f"resnet{depth}", 32)
    weighted = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weighted) == depth
    n = (depth - 2) // 6
    stages = [getattr(model, f"conv{index}_x") for index in (2, 3, 4)]
    assert [len(stage) for stage in stages] == [n, n, n]
    assert not hasattr(model, "conv5_x")
    assert model.conv1.conv.kernel_size == (3, 3) and model.conv1.conv.out_channels == 16
    assert model.fc.in_features == 64


def test_option_a_shortcuts_subsample_and_zero_pad_without_parameters():
    model = build("resnet20", 32)
    shortcuts = [unit.shortcut for unit in model.modules() if isinstance(unit, ResidualUnit)]
    assert sum(isinstance(s, ZeroPadShortcut) for s in shortcuts) == 2  # entering the 32 and 64 stages
    assert sum(isinstance(s, nn.Identity) for s in shortcuts) == 7
    assert all(not list(s.parameters()) for s in shortcuts)
    shortcut = model.conv3_x[0].shortcut
    x = torch.arange(2 * 16 * 4 * 4, dtype=torch.float32).reshape(2, 16, 4, 4)
    out = shortcut(x)
    assert out.shape == (2, 32, 2, 2)
    torch.testing.assert_close(out[:, :16], x[:, :, 0::2, 0::2])  # every other pixel of each map
    assert not out[:, 16:].any()  # the new channels are zeros


def test_plain_twins_have_no_shortcuts():
    plain = build("plain56", 32)
    units = [m for m in plain.modules() if isinstance(m, ResidualUnit)]
    assert len(units) == 27 and all(unit.shortcut is None for unit in units)


@pytest.mark.parametrize("name", ["resnet20", "plain20", "resnet110"])
def test_output_shapes_on_real_images(name, cifar_batch):
    images, _ = cifar_batch
    model = build(name, 32).eval()
    shapes = io_shapes(model, images[:2], ["conv2_x", "conv3_x", "conv4_x", "fc"])
    assert [shapes[stage][1] for stage in ("conv2_x", "conv3_x", "conv4_x")] == [
        (16, 32, 32),
        (32, 16, 16),
        (64, 8, 8),
    ]
    assert shapes["fc"] == ((64,), (10,))
    with torch.no_grad():
        assert model(images[:2]).shape == (2, 10)


def test_width_mult_scales_the_three_stages(cifar_batch, assert_width_mult_errors):
    model = build("resnet20", 32, width_mult=0.5).eval()
    assert model.conv1.conv.out_channels == 8
    assert [getattr(model, f"conv{index}_x")[-1].branch[-1].conv.out_channels for index in (2, 3, 4)] == [
        8,
        16,
        32,
    ]
    with torch.no_grad():
        assert model(cifar_batch[0][:2]).shape == (2, 10)
    assert_width_mult_errors("resnet20", 0.01, "conv1")


def test_paper_init_is_he_normal_with_the_fan_out():
    torch.manual_seed(0)
    model = build("resnet56", 32)
    conv = model.conv4_x[-1].branch[0].conv  # 64 → 64 channels, 3×3
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.05)
    assert model.fc.weight.abs().max().item() <= 1 / math.sqrt(64)  # PyTorch's default U(±1/√fan_in)


def test_small_input_is_not_an_option():
    from cnnlib.errors import UserError

    with pytest.raises(
        UserError,
        match=r"^Model 'resnet20' has no option 'small_input': its options are "
        r"width_mult, init\.$",
    ):
        build("resnet20", 32, small_input=True)


def test_resnet20_trains_one_epoch_on_200_digits(run_cli, tmp_path):
    status, out, err = run_cli(
        "train",
        "--model",
        "resnet20",
        "--dataset",
        "digits",
        "--subset",
        "200",
        "--epochs",
        "1",
        "--batch-size",
        "50",
        "--device",
        "cpu",
        "--no-progress",
        "--out",
        str(tmp_path),
    )
    assert status == 0, err
    assert "test accuracy" in out
