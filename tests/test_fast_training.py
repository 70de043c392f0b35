"""The fast chapter's network and tricks (issue 42): the whitened stem, the identity initialisation,
the batch-norm biases' learning rate, alternating flips, multi-crop test-time augmentation, the
network's size and width, and the one-sentence errors of their options."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlib import UserError
from cnnlib.augment import augment
from cnnlib.config import TrainConfig, check_setting, resolve
from cnnlib.evaluate import predict_logits
from cnnlib.models import create
from cnnlib.optim import make_optimizer, set_lr
from cnnlib.presets import preset_config
from cnnlib.record import Preprocess
from cnnlib.train import train

CLASSES = tuple(str(k) for k in range(10))


def smooth_images(n: int, seed: int = 0) -> torch.Tensor:
    """uint8 colour images whose neighbouring pixels and channels are strongly correlated: noise
    upsampled from 8×8, plus a grey level shared by the three channels."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 8, 8, generator=generator) + 2 * torch.rand(n, 1, 8, 8, generator=generator)
    fine = F.interpolate(coarse, size=32, mode="bilinear", align_corners=False)
    return (fine / fine.amax() * 255).round().to(torch.uint8)


def normaliser(images: torch.Tensor) -> Preprocess:
    x = images.float() / 255
    return Preprocess(CLASSES, tuple(images.shape[1:]), x.mean((0, 2, 3)).tolist(), x.std((0, 2, 3)).tolist())


def patch_covariance(conv: nn.Conv2d, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and covariance over every position of the first 12 output channels of ``conv`` on ``x``."""
    with torch.no_grad():
        out = conv(x)[:, :12].double()
    flat = out.permute(1, 0, 2, 3).reshape(12, -1)
    return flat.mean(1), torch.cov(flat)


def test_the_whitened_stem_decorrelates_the_training_patches():
    images = smooth_images(100)
    preprocess = normaliser(images)
    model = create("fastnet")
    conv = model.stem.conv
    x = preprocess.normalise(images)
    _, before = patch_covariance(conv, x)
    assert not torch.allclose(before, torch.eye(12, dtype=torch.float64), atol=0.1)  # the test can fail
    model.init_from_data(images, preprocess.normalise, eps=0.0)
    mean, covariance = patch_covariance(conv, x)
    assert torch.allclose(covariance, torch.eye(12, dtype=torch.float64), atol=2e-3)
    assert mean.abs().max() < 1e-3
    # The other 12 channels are the same filters negated, so the GELU after the stem keeps both signs.
    assert torch.equal(conv.weight[12:], -conv.weight[:12])
    assert not conv.weight.requires_grad and conv.bias.requires_grad
    # airbench's eps keeps the components decorrelated, the faintest scaled below 1.
    model.init_from_data(images, preprocess.normalise)
    _, covariance = patch_covariance(conv, x)
    off_diagonal = covariance - torch.diag(covariance.diagonal())
    assert off_diagonal.abs().max() < 2e-3 and (covariance.diagonal() <= 1 + 1e-3).all()


def test_whitening_reads_only_the_images_it_is_given_and_can_be_switched_off():
    images, others = smooth_images(40), smooth_images(40, seed=1)
    preprocess = normaliser(images)
    first, second = create("fastnet"), create("fastnet")
    first.init_from_data(images, preprocess.normalise)
    second.init_from_data(torch.cat([images, others]), preprocess.normalise, max_images=len(images))
    assert torch.equal(first.stem.conv.weight, second.stem.conv.weight)
    plain = create("fastnet", whiten=False)
    weight = plain.stem.conv.weight.clone()
    plain.init_from_data(images, preprocess.normalise)
    assert torch.equal(plain.stem.conv.weight, weight) and plain.stem.conv.weight.requires_grad


def test_a_fresh_identity_initialised_group_passes_its_input_through():
    torch.manual_seed(0)
    model = create("fastnet").eval()
    group = model.groups.group1
    x = torch.randn(2, group.conv1.in_channels, 16, 16)
    channels = group.conv1.in_channels  # 24 in, 64 out: the first 24 filters pass their channel through
    with torch.no_grad():
        assert torch.equal(group.conv1(x)[:, :channels], x)
        scale = math.sqrt(1 + group.bn1.eps)  # a fresh batch norm in eval mode: running mean 0, variance 1
        expected = F.gelu(F.gelu(F.max_pool2d(x, 2) / scale) / scale)
        assert torch.allclose(group(x)[:, :channels], expected, atol=1e-6)
        for name in ("group2", "group3"):
            conv = model.groups.get_submodule(name).conv2
            y = torch.randn(1, conv.in_channels, 7, 7)
            assert torch.equal(conv(y), y)
        # PyTorch's default initialisation (the ablation) does not.
        plain = create("fastnet", init="pytorch").groups.group1.conv1
        assert not torch.allclose(plain(x)[:, :channels], x, atol=0.1)


def test_the_norm_bias_learning_rate_reaches_the_optimisers_groups():
    model = create("fastnet")
    norm_biases = [module.bias for module in model.modules() if isinstance(module, nn.BatchNorm2d)]
    optimizer = make_optimizer(model, "sgd", lr=0.1, momentum=0.0, norm_bias_lr_factor=64.0)
    group_of = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    assert all(group_of[id(bias)]["lr"] == pytest.approx(6.4) for bias in norm_biases)
    assert group_of[id(model.stem.conv.bias)]["lr"] == pytest.approx(0.1)
    assert group_of[id(model.classifier.weight)]["lr"] == pytest.approx(0.1)
    set_lr(optimizer, 0.05)  # the schedule keeps the factor
    assert group_of[id(norm_biases[0])]["lr"] == pytest.approx(3.2)
    assert group_of[id(model.stem.conv.bias)]["lr"] == pytest.approx(0.05)
    # One step with a gradient of one everywhere moves a batch-norm bias 64 times as far as another bias.
    before = {id(p): p.detach().clone() for p in model.parameters()}
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()
    assert torch.allclose(norm_biases[0] - before[id(norm_biases[0])], torch.full_like(norm_biases[0], -3.2))
    stem_bias = model.stem.conv.bias
    assert torch.allclose(stem_bias - before[id(stem_bias)], torch.full_like(stem_bias, -0.05))
    # The default keeps today's two groups, so older optimiser states still load.
    assert len(make_optimizer(model, "sgd", lr=0.1).param_groups) == 2


def test_the_norm_bias_factor_keeps_the_decay_per_step_when_norms_are_decayed():
    model = create("fastnet")
    optimizer = make_optimizer(
        model, "sgd", lr=0.1, weight_decay=1e-3, decay_norms_and_biases=True, norm_bias_lr_factor=64.0
    )
    [bias_group] = [group for group in optimizer.param_groups if group.get("lr_factor") == 64.0]
    assert bias_group["lr"] * bias_group["weight_decay"] == pytest.approx(0.1 * 1e-3)


def shifted(x: torch.Tensor, step: int) -> torch.Tensor:
    """``x`` moved by ``step`` pixels down and right (``-step``: up and left), the edge row and
    column reflected: the rows and columns gathered by index."""
    side = x.shape[-1]
    if step == 1:
        index = torch.tensor([1] + list(range(side - 1)))
    else:
        index = torch.tensor(list(range(1, side)) + [side - 2])
    return x[:, :, index][:, :, :, index]


def test_the_whitening_bias_learns_its_epochs_then_is_frozen_and_resumes_so(data_root, tmp_path):
    settings = dict(
        model="fastnet",
        dataset="cifar10",
        data_root=str(data_root),
        device="cpu",
        subset=256,
        batch_size=128,
        epochs=2,
        lr=0.2,
        progress=False,
        final_test=False,
    )

    def stem_bias_by_epoch(folder: str, options: dict) -> list[torch.Tensor]:
        biases = []
        for stop_after, resume in ((1, False), (None, True)):
            config = TrainConfig(
                **settings,
                model_options=options,
                stop_after=stop_after,
                resume=resume,
                out=str(tmp_path / folder),
            )
            biases.append(train(config).model.stem.conv.bias.detach().clone())
        return biases

    frozen = stem_bias_by_epoch("frozen", {"whiten_bias_epochs": 1})
    learning = stem_bias_by_epoch("learning", {})
    assert torch.equal(frozen[0], learning[0])  # the first epoch learns it in both
    assert torch.equal(frozen[1], frozen[0])  # frozen after it, across the resume
    assert not torch.allclose(learning[1], learning[0])  # else it goes on learning
    plain = create("fastnet", whiten=False, whiten_bias_epochs=0)
    plain.start_epoch(5)
    assert plain.stem.conv.bias.requires_grad  # a learned stem (the ablation) is not whitening: no freeze


def test_the_bias_freeze_refuses_several_processes_in_one_sentence(data_root, monkeypatch):
    from cnnlib import run_state

    monkeypatch.setattr(run_state, "init_distributed", lambda device: (2, 0))
    monkeypatch.setattr(run_state, "training_device", lambda device, world: torch.device("cpu"))
    config = TrainConfig(
        model="fastnet",
        dataset="cifar10",
        data_root=str(data_root),
        subset=64,
        model_options={"whiten_bias_epochs": 3},
    )
    with pytest.raises(UserError, match=r"^whiten_bias_epochs freezes a parameter mid-run, .* torchrun\.$"):
        run_state.set_up(config)


def test_the_batch_norms_take_airbench94s_eps_when_asked():
    def eps(model: nn.Module) -> set[float]:
        return {module.eps for module in model.modules() if isinstance(module, nn.BatchNorm2d)}

    assert eps(create("fastnet")) == {1e-5} and eps(create("fastnet", norm_eps=1e-12)) == {1e-12}


def test_multicrop_tta_is_the_weighted_mean_of_its_views_outputs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 30 * 30, 10)).eval()
    images = smooth_images(6)
    preprocess = normaliser(images)
    x = preprocess.normalise(images)
    with torch.no_grad():

        def out(view: torch.Tensor) -> torch.Tensor:
            return model(view) + model(view.flip(3))

        expected = out(x) / 4 + (out(shifted(x, 1)) + out(shifted(x, -1))) / 8
        mirrored = out(x) / 2
    for channels_last in (False, True):
        logits = predict_logits(
            model, preprocess, images, batch_size=4, tta="multicrop", amp=False, channels_last=channels_last
        )
        assert torch.allclose(logits, expected, atol=1e-5)
    assert torch.allclose(
        predict_logits(model, preprocess, images, tta="flip", amp=False), mirrored, atol=1e-5
    )
    assert not torch.allclose(expected, mirrored, atol=1e-3)  # the shifts count
    # Runs recorded when tta was a bool keep their meaning: True was flip, False none.
    assert torch.equal(
        predict_logits(model, preprocess, images, tta=True, amp=False),
        predict_logits(model, preprocess, images, tta="flip", amp=False),
    )
    with torch.no_grad():
        plain = model(x)
    assert torch.allclose(predict_logits(model, preprocess, images, tta=False, amp=False), plain, atol=1e-6)


def flipped_in(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    mirrored = (out == x.flip(3)).flatten(1).all(1)
    assert (mirrored | (out == x).flatten(1).all(1)).all()  # every image as it was or mirrored
    return mirrored


def test_alternating_flips_mirror_each_image_in_every_other_epoch():
    x = torch.randint(0, 256, (1000, 3, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    index = torch.arange(1000)
    generator = torch.Generator().manual_seed(5)
    flips = [
        flipped_in(augment(x, "altflip", 1, generator, index=index, epoch=epoch), x) for epoch in range(4)
    ]
    assert 0.45 < flips[0].float().mean() < 0.55  # a random half in the first epoch
    assert (flips[0] ^ flips[1]).all() and torch.equal(flips[2], flips[0]) and torch.equal(flips[3], flips[1])
    # Each image's choice follows its index whatever batch it falls in; another seed draws other coins.
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(1))[:100]
    batch = augment(x[order], "altflip", 1, generator, index=order, epoch=2)
    assert torch.equal(flipped_in(batch, x[order]), flips[2][order])
    other = flipped_in(augment(x, "altflip", 1, torch.Generator().manual_seed(6), index=index), x)
    assert not torch.equal(other, flips[0])
    # With crops, the flips still alternate: the same crops in two epochs in a row come out mirrored.
    cropped = [
        augment(x, "crop+altflip", 1, torch.Generator().manual_seed(5), index=index, epoch=epoch)
        for epoch in (0, 1)
    ]
    assert torch.equal(cropped[1], cropped[0].flip(3)) and not torch.equal(cropped[0], x)


def test_the_network_at_32x32_has_its_size_and_output():
    model = create("fastnet")
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    widths = [24, 64, 256, 256]  # the stem's 2·3·2·2 channels, then the three groups
    convs = sum(
        c_in * c_out * 9 + c_out * c_out * 9 + 2 * 2 * c_out for c_in, c_out in zip(widths, widths[1:])
    )
    stem, head = 3 * 24 * 4 + 24, 256 * 10
    assert sum(p.numel() for p in model.parameters()) == stem + convs + head == 1_972_792  # airbench's 1.97 M
    norm_scales = 2 * (64 + 256 + 256)  # fixed at 1, as airbench's network has them
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == stem + convs + head - norm_scales
    grey = create("fastnet", num_classes=7, in_channels=1, input_size=32)
    assert grey.stem.conv.out_channels == 8 and grey(torch.randn(1, 1, 32, 32)).shape == (1, 7)


def test_width_mult_scales_the_groups_but_not_the_whitening():
    def widths(model: nn.Module) -> list[int]:
        return [conv.out_channels for conv in model.modules() if isinstance(conv, nn.Conv2d)]

    assert widths(create("fastnet")) == [24, 64, 64, 256, 256, 256, 256]
    assert widths(create("fastnet", width_mult=0.5)) == [24, 32, 32, 128, 128, 128, 128]
    assert create("fastnet", width_mult=0.25).classifier.in_features == 64


def test_bad_options_are_one_sentence(assert_width_mult_errors):
    assert_width_mult_errors("fastnet", 0.005, "group1")
    with pytest.raises(UserError, match=r"^whiten must be True or False, not 'yes'\.$"):
        create("fastnet", whiten="yes")
    with pytest.raises(UserError, match=r"^Model 'fastnet' has no option 'widths': its options are "):
        create("fastnet", widths=[64, 128, 128])
    with pytest.raises(UserError, match=r"^Unknown init 'dirac' for the fast network: choose one of "):
        create("fastnet", init="dirac")
    with pytest.raises(UserError, match=r"^Unknown tta 'multi': choose one of none, flip, multicrop\.$"):
        check_setting("tta", "multi")
    with pytest.raises(UserError, match=r"^Unknown tta 'multi': choose one of none, flip, multicrop\.$"):
        predict_logits(nn.Identity(), normaliser(smooth_images(1)), smooth_images(1), tta="multi")
    with pytest.raises(UserError, match=r"^Unknown augment 'altflips': choose one of .*crop\+altflip\.$"):
        check_setting("augment", "altflips")
    with pytest.raises(UserError, match=r"^whiten_bias_epochs must be a whole number .* not -1\.$"):
        create("fastnet", whiten_bias_epochs=-1)
    with pytest.raises(UserError, match=r"^whiten_bias_epochs must be a whole number .* not True\.$"):
        create("fastnet", whiten_bias_epochs=True)
    with pytest.raises(UserError, match=r"^norm_eps must be a small positive number such as 1e-5, not 0\.$"):
        create("fastnet", norm_eps=0)
    with pytest.raises(UserError, match=r"^norm_bias_lr_factor must be positive, not 0\.0\.$"):
        check_setting("norm_bias_lr_factor", 0.0)


@pytest.mark.parametrize("preset", ["cpu", "gpu"])
def test_the_fast_presets_resolve_and_build_their_network(preset):
    config = resolve(preset_config("fastnet", preset), channels=3)
    assert (config.augment, config.tta, config.norm_bias_lr_factor) == ("crop+altflip", "multicrop", 64.0)
    assert (config.time_budget == 600) == (preset == "cpu")
    model = create("fastnet", num_classes=10, input_size=32, **config.model_options)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert resolve(TrainConfig(dataset="cifar10", model="fastnet"), channels=3).norm_bias_lr_factor == 1.0
