"""Training batches made on the device: a gather of shuffled examples, random crops and flips, normalisation.

As in Keller Jordan's airbench and David Page's ResNet-9 trainer, the whole training set sits
on the device as one uint8 tensor; a batch is one ``index_select``, one gather for the crops
and one ``where`` for the flips, with no Python work per image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnlib.data import DataSplit


def augmentation_for(augment: str, data: DataSplit) -> str:
    """The augmentation actually used for ``augment``: ``auto`` shifts digits and shifts and
    flips colour images (natural images are left–right symmetric, digits are not)."""
    if augment != "auto":
        return augment
    if data.name == "digits":
        return "none"
    return "crop+flip" if data.input_shape[0] == 3 else "crop"


def crop_padding(data: DataSplit, padding: int | None = None) -> int:
    """Random-crop padding: ``padding`` where given, else 4 pixels at 32×32 for colour images
    (the common CIFAR-10 practice), 2 for greyscale digits at 32×32; proportional for other sizes."""
    if padding is not None:
        return padding
    side = data.input_shape[1]
    return max(1, side // 8 if data.input_shape[0] == 3 else side // 16)


def augment(x: torch.Tensor, mode: str, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Random crops after zero padding and random horizontal flips, per image, on ``x``'s device (uint8 in, uint8 out)."""
    n, c, h, w = x.shape
    if "crop" in mode:
        # One gather from the flattened, zero-padded images: pixel (i, j) of image k comes from
        # (i + dy_k, j + dx_k) of its padded copy.
        height, width = h + 2 * padding, w + 2 * padding
        padded = F.pad(x, (padding,) * 4).view(n, c, height * width)
        dy, dx = torch.randint(0, 2 * padding + 1, (2, n, 1), generator=generator).to(x.device)
        grid = (torch.arange(h, device=x.device)[:, None] * width + torch.arange(w, device=x.device)).view(1, h * w)
        x = padded.gather(2, (grid + dy * width + dx).unsqueeze(1).expand(n, c, h * w)).view(n, c, h, w)
    if "flip" in mode:
        flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


def training_batch(data: DataSplit, index: torch.Tensor, mode: str, padding: int, generator: torch.Generator,
                   channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The augmented, normalised images and the labels of the training examples ``index``."""
    images = augment(data.train_x.index_select(0, index), mode, padding, generator)
    return data.model_input(images, channels_last), data.train_y.index_select(0, index)
