"""Training batches made on the device: a gather of shuffled examples, random crops and flips, normalisation.

As in Keller Jordan's airbench and David Page's ResNet-9 trainer, the whole training set sits
on the device as one uint8 tensor; a batch is one ``index_select``, one gather for the crops
and one ``where`` for the flips, with no Python work per image.

A mode names its parts joined by ``+``: ``crop`` (random crops after padding, with zeros or, with
``padding_mode="reflect"``, the image reflected at its edges, as airbench pads), ``flip`` (each
image mirrored with probability 1/2 at every draw) or ``altflip``, the alternating flip of Jordan 2024
(arXiv 2404.00498, §3.6): a random half of the images is mirrored in the first epoch, and from then on
each image is mirrored in every other epoch, so that any two epochs in a row show every image both
ways, where random flips show about half of the images the same way twice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnlib.data import DataSplit
from cnnlib.record import Normaliser

_MASK = 0xFFFFFFFF


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


def alternating_flips(index: torch.Tensor, epoch: int, seed: int) -> torch.Tensor:
    """Whether each training image ``index`` is mirrored in ``epoch`` (from 0) under alternating flips
    (Jordan 2024 §3.6): a fair coin per image and ``seed``, fixed for the run, decides the first epoch,
    and each later epoch mirrors exactly the images the one before did not. The coin is a hash of the
    image's index, so it needs no state and a resumed run draws the same."""
    # Two multiply–xorshift rounds of a 32-bit integer hash, on the index offset by the seed.
    h = (index.long() + (seed * 0x9E3779B1 & _MASK)) & _MASK
    for _ in range(2):
        h = ((h >> 16) ^ h) * 0x45D9F3B & _MASK
    coin = (((h >> 16) ^ h) & 1).bool()
    return coin ^ bool(epoch % 2)


def augment(
    x: torch.Tensor,
    mode: str,
    padding: int,
    generator: torch.Generator,
    *,
    index: torch.Tensor | None = None,
    epoch: int = 0,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """``x`` (uint8 in, uint8 out, on its device) augmented by ``mode`` (see the module docstring), crops
    padded by ``padding_mode`` (``zeros`` or ``reflect``). Random crops and flips draw from ``generator``;
    alternating flips need the images' training ``index`` and the ``epoch``, and take their coins from the
    generator's seed."""
    n, c, h, w = x.shape
    parts = mode.split("+")
    if "crop" in parts:
        # One gather from the flattened, padded images: pixel (i, j) of image k comes from
        # (i + dy_k, j + dx_k) of its padded copy.
        height, width = h + 2 * padding, w + 2 * padding
        padded = (
            F.pad(x, (padding,) * 4)
            if padding_mode == "zeros"
            else F.pad(x.float(), (padding,) * 4, mode=padding_mode).to(x.dtype)  # reflect: float only
        ).view(n, c, height * width)
        dy, dx = torch.randint(0, 2 * padding + 1, (2, n, 1), generator=generator).to(x.device)
        grid = (torch.arange(h, device=x.device)[:, None] * width + torch.arange(w, device=x.device)).view(
            1, h * w
        )
        x = padded.gather(2, (grid + dy * width + dx).unsqueeze(1).expand(n, c, h * w)).view(n, c, h, w)
    if "flip" in parts:
        flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if "altflip" in parts:
        if index is None:
            raise ValueError("alternating flips need the images' training indices (index=...)")
        flip = alternating_flips(index, epoch, generator.initial_seed()).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


def training_batch(
    data: DataSplit,
    index: torch.Tensor,
    mode: str,
    padding: int,
    generator: torch.Generator,
    normalise: Normaliser,
    channels_last: bool,
    epoch: int = 0,
    padding_mode: str = "zeros",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The augmented images of the training examples ``index`` in ``epoch`` (from 0: alternating flips
    depend on it; crops padded by ``padding_mode``), normalised by ``normalise`` (made once per run, its
    mean and std on the device), and their labels."""
    images = augment(
        data.train_x.index_select(0, index),
        mode,
        padding,
        generator,
        index=index,
        epoch=epoch,
        padding_mode=padding_mode,
    )
    return normalise(images, channels_last), data.train_y.index_select(0, index)
