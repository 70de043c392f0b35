"""Grad-CAM (cnnlib.explain) against the paper's equations computed by hand with autograd,
the default layer it explains, and its user errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlib import models
from cnnlib.errors import UserError
from cnnlib.explain import grad_cam, last_spatial_layer, plot_grad_cam


def grad_cam_by_hand(model: nn.Module, layer: nn.Module, image: torch.Tensor, target: int) -> torch.Tensor:
    """Selvaraju et al. 2017, Eq. 1 (weights: the spatial mean of the gradient) and Eq. 2 (ReLU of the
    weighted sum), upsampled bilinearly and scaled to a maximum of 1."""
    captured = {}
    handle = layer.register_forward_hook(lambda module, inputs, output: captured.setdefault("maps", output))
    score = model(image.unsqueeze(0))[0, target]
    handle.remove()
    maps = captured["maps"]
    (gradient,) = torch.autograd.grad(score, maps)
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * maps).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=image.shape[-2:], mode="bilinear", align_corners=False)[0, 0].detach()
    return cam / cam.max() if cam.max() > 0 else cam


def test_grad_cam_follows_the_papers_equations():
    torch.manual_seed(0)
    model = models.create("lenet5").eval()
    image = torch.randn(1, 32, 32)
    explained = 0
    for target in range(10):
        ours = grad_cam(model, image, target, "features.C3")
        expected = grad_cam_by_hand(model, model.features.C3, image, target)
        assert ours.shape == (32, 32)
        assert torch.allclose(ours, expected, atol=1e-5)
        explained += bool(expected.max() > 0)
    assert explained >= 3, "most classes of this random network have some positive evidence"


def test_grad_cam_finds_the_evidence():
    # One feature map that copies the image, one class scored by its sum: the evidence is the
    # bright square, and the map is the (upsampled) image itself.
    copy = nn.Conv2d(1, 1, 1, bias=False)
    nn.init.ones_(copy.weight)
    model = nn.Sequential(copy, nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    image = torch.zeros(1, 16, 16)
    image[0, 2:6, 9:13] = 1.0
    heatmap = grad_cam(model, image, 0, "0")
    assert heatmap.max() == 1 and torch.equal(heatmap, image[0])


def test_default_layer_is_the_last_with_feature_maps():
    lenet = models.create("lenet5")
    assert last_spatial_layer(lenet, (1, 32, 32)) == "features.S4"  # C5's output is 1×1
    assert grad_cam(lenet, torch.randn(1, 32, 32), 0).shape == (32, 32)


def test_unknown_or_flat_layer_is_a_user_error():
    lenet = models.create("lenet5")
    with pytest.raises(
        UserError, match=r"^The model has no layer 'features\.C9': pick a name from its layer table"
    ):
        grad_cam(lenet, torch.randn(1, 32, 32), 0, "features.C9")
    with pytest.raises(UserError, match=r"^Layer 'classifier\.F6' does not output feature maps"):
        grad_cam(lenet, torch.randn(1, 32, 32), 0, "classifier.F6")


def test_overlay_draws_image_and_map():
    image = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)
    figure = plot_grad_cam(image, torch.rand(8, 8), "cat")
    layers = figure.axes[0].get_images()
    assert len(layers) == 2 and layers[1].get_alpha() == 0.5
    assert (layers[0].get_array() == image.permute(1, 2, 0).numpy()).all()
    assert figure.axes[0].get_title() == "cat"
