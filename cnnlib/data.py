"""Data sets: every image set reaches a model through :func:`load_dataset`, as uint8 tensors.

Sources
-------
* ``digits``: scikit-learn's bundled 8×8 digits (1,797 images, values 0–16 scaled to 0–255),
  split per class by ``split_seed`` (0 by default). Needs no files.
* ``mnist``: the four IDX files of ``<root>/MNIST/raw`` (torchvision's layout, gzip or not),
  read directly; magic numbers and sizes are checked.
* ``cifar10``: ``<root>/cifar-10-batches-py`` (the official batches), else the JPEG copy
  ``<root>/cifar10-jpg/`` or ``<root>/cifar10-jpg.tar.gz``, whose pixels, and so accuracies,
  differ slightly from the official set's.
* Anything else is a path: a folder, or a ``.tar``/``.tar.gz``/``.tgz`` of one, holding either
  ``train/`` and ``test/`` with one sub-folder per class, or only the class sub-folders (then
  each class is split by ``split_seed``). Classes are the sorted sub-folder names; one enclosing
  folder, as most archives have, is looked through; hidden files and files outside class
  folders are ignored. Every image is decoded once, up front, with PIL (upright per its EXIF
  orientation; 16-bit grey scaled to 8 bits; palette transparency kept until the alpha is
  dropped); files PIL cannot decode are skipped, named in one sentence on stderr.

``<root>`` is :func:`data_root`: the ``root`` argument, else ``$CNNLIB_DATA``, else
``cache_dir()/"data"``.

Fitting (:func:`fit_images`)
----------------------------
* Channels: grey → colour repeats the grey channel; colour → grey is the ITU-R BT.601 luma
  0.299 R + 0.587 G + 0.114 B (PIL's own "L" conversion).
* ``fit="pad"`` centres each image on a zero canvas: LeCun et al. (1998, Sec. III-A) extend the
  28×28 MNIST field to LeNet-5's 32×32 input with background pixels, which leaves every digit
  pixel unchanged.
* ``fit="resize"`` resizes with antialiased bilinear interpolation; a non-square image has its
  shorter side resized to the target and is then centre-cropped, so the aspect ratio is kept
  (the rescale-and-crop of Krizhevsky et al. 2012, Sec. 2).
* ``fit="auto"`` pads when the image is no larger than the target and at least 3/4 of it (a
  thin border, as 28 → 32), and resizes otherwise: padding 8 → 32 would leave a small patch on
  an empty canvas, and a larger image cannot be padded.
* ``size=None`` keeps a built-in set's own size (digits 8, MNIST 28, CIFAR-10 32); a user's
  folder is brought to the height of its most common stored image size, capped at 256 (the
  side AlexNet rescales ImageNet to, Sec. 2). ``channels=None`` keeps the set's channels; a
  user's folder is colour if any of its images is.

Caching
-------
Decoded tensors of the CIFAR-10 JPEG copy and of user folders are saved under
``cache_dir()/"tensors"``, keyed by the source's path, size and modification time (every
file's, for a folder) and the fitting options, and written atomically. Archives are streamed,
never unpacked (not beside the archive, whose folder may be read-only, nor anywhere else: 60,000
small files cost more to write and delete than to decode). MNIST is read from its IDX files
each time.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import sys
import tarfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from cnnlib.checkpoint import atomic_save
from cnnlib.errors import UserError
from cnnlib.record import Preprocess

DATASETS = ("digits", "mnist", "cifar10")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FITS = ("auto", "pad", "resize")
PAD_MIN_FRACTION = 0.75
MAX_FOLDER_SIZE = 256

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
_CHUNK = 4096  # images per step where a wider dtype is needed, to bound the temporary memory
_CACHE_VERSION = 1  # part of every cache key: bump it when decoding changes
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def cache_dir() -> Path:
    """Where cnnlib keeps decoded tensors: ``$CNNLIB_CACHE``, else ``$XDG_CACHE_HOME/cnnlib``,
    else ``~/.cache/cnnlib``."""
    if os.environ.get("CNNLIB_CACHE"):
        return Path(os.environ["CNNLIB_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "cnnlib"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder that holds the built-in data sets: ``root``, else ``$CNNLIB_DATA``, else
    ``cache_dir()/"data"``."""
    chosen = root if root is not None else os.environ.get("CNNLIB_DATA")
    return Path(chosen).expanduser() if chosen else cache_dir() / "data"


@dataclass
class DataSplit:
    """A data set as uint8 images (N, C, H, W) and int64 labels: the training split, the validation
    split held out of the training images (``None`` without one), the test split, and the
    :class:`Preprocess` of the training images (classes, input shape, per-channel mean and std)."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    preprocess: Preprocess
    source: str
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.train_x.shape[1:])

    @property
    def classes(self) -> list[str]:
        """The class names, in the order of the labels."""
        return list(self.preprocess.classes)

    @property
    def mean(self) -> tuple[float, ...]:
        """Per-channel mean of the training images (0–1 scale)."""
        return self.preprocess.mean

    @property
    def std(self) -> tuple[float, ...]:
        """Per-channel standard deviation of the training images (0–1 scale)."""
        return self.preprocess.std

    @property
    def validation_images(self) -> int:
        """How many images the validation split holds (0 without one)."""
        return 0 if self.val_y is None else len(self.val_y)

    def to(self, device: torch.device | str) -> DataSplit:
        """A copy with every tensor on ``device``."""
        moved = {
            name: None if tensor is None else tensor.to(device) for name, tensor in self._tensors().items()
        }
        return replace(self, **moved)

    def normalise(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """float32 ``(x / 255 − mean) / std`` per channel (:meth:`Preprocess.normalise`)."""
        return self.preprocess.normalise(x_uint8)

    def fitted(self, size: int, channels: int | None = None, fit: str = "auto") -> DataSplit:
        """Every image set brought to ``channels`` × ``size`` × ``size`` by :func:`fit_images`,
        with the statistics recomputed."""
        channels = channels or self.input_shape[0]
        fitted = {
            name: tensor if tensor is None or name.endswith("_y") else fit_images(tensor, size, channels, fit)
            for name, tensor in self._tensors().items()
        }
        return _make_split(self.name, fitted, self.classes, self.source)

    def _tensors(self) -> dict[str, torch.Tensor | None]:
        return {
            "train_x": self.train_x,
            "train_y": self.train_y,
            "val_x": self.val_x,
            "val_y": self.val_y,
            "test_x": self.test_x,
            "test_y": self.test_y,
        }


@dataclass
class _Images:
    """A data set as read from its source, before splitting, subsetting and fitting.
    ``test_x`` is None when the source has no test set of its own."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor | None
    test_y: torch.Tensor | None
    classes: list[str]
    source: str
    skipped: list[str]


def load_dataset(
    name_or_path: str | os.PathLike,
    root: str | os.PathLike | None = None,
    *,
    size: int | None = None,
    channels: int | None = None,
    fit: str = "auto",
    subset: int | None = None,
    validation: int = 0,
    split_seed: int = 0,
    download: bool = False,
    test_fraction: float = 0.2,
) -> DataSplit:
    """Load a built-in data set (:data:`DATASETS`) or a folder/archive of images as a
    :class:`DataSplit`; see the module docstring for the sources and the fitting rules.

    A source without its own test set is split per class by ``split_seed`` (``test_fraction`` of
    each class); ``subset=N`` then keeps N random training images and at most N test images;
    ``validation=N`` then holds out N of the training images as the validation split, stratified
    by class (each class in proportion to its share). Every split is drawn with ``split_seed``, not
    with a run's training seed: runs that differ only in their seed see the same images, and
    every run of every recipe is compared on the same validation split. The mean and standard
    deviation are those of the training split alone.
    """
    _check_fit_options(size, channels, fit)
    if subset is not None and subset < 1:
        raise UserError(f"subset must be a positive number of training images, not {subset}.")
    if validation < 0:
        raise UserError(
            f"validation must be a number of training images to hold out, 0 or more, not {validation}."
        )
    if not 0 < test_fraction < 1:
        raise UserError(f"test_fraction must lie strictly between 0 and 1, not {test_fraction}.")
    images = _read_source(os.fspath(name_or_path), root, size, channels, fit, download)
    if images.skipped:
        shown = ", ".join(images.skipped[:5]) + (", ..." if len(images.skipped) > 5 else "")
        _tell(
            f"Skipped {len(images.skipped)} file(s) of {images.name} that PIL cannot read as images: {shown}."
        )
    train, test, source = (images.train_x, images.train_y), (images.test_x, images.test_y), images.source
    if images.test_x is None:
        counts = {
            label: min(round(count * test_fraction), count - 1) for label, count in _class_counts(train[1])
        }
        train_index, test_index = _hold_out(train[1], counts, split_seed)
        train, test = _take(train, train_index), _take(train, test_index)
        source += f"; split {1 - test_fraction:.0%}/{test_fraction:.0%} per class with seed {split_seed}"
    if subset is not None:
        generator = torch.Generator().manual_seed(split_seed)
        train, test = [
            _take(part, torch.randperm(len(part[1]), generator=generator)[:subset].sort().values)
            for part in (train, test)
        ]
        source += f"; random subset of {len(train[1])} train / {len(test[1])} test images (seed {split_seed})"
    held = None
    if validation:
        train_index, val_index = _hold_out(
            train[1], _validation_counts(train[1], validation, images.classes), split_seed
        )
        train, held = _take(train, train_index), _take(train, val_index)
        source += f"; {validation} training images held out for validation, per class (seed {split_seed})"
    size = size or train[0].shape[-1]
    channels = channels or train[0].shape[1]
    parts = {"train": train, "val": held or (None, None), "test": test}
    tensors = {
        f"{part}_{axis}": tensor if tensor is None or axis == "y" else fit_images(tensor, size, channels, fit)
        for part, pair in parts.items()
        for axis, tensor in zip("xy", pair)
    }
    return _make_split(images.name, tensors, images.classes, source)


def fit_images(x: torch.Tensor, size: int, channels: int, fit: str = "auto") -> torch.Tensor:
    """uint8 images (N, 1 or 3, H, W) brought to uint8 (N, ``channels``, ``size``, ``size``)
    by padding or resizing (``fit``: "auto", "pad" or "resize"; see the module docstring)."""
    _check_fit_options(size, channels, fit)
    if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"fit_images expects uint8 images (N, 1 or 3, H, W), not {x.dtype} {tuple(x.shape)}")
    # Fewer channels to pad or resize: reduce to grey first, expand to colour last.
    if channels == 1 and x.shape[1] == 3:
        x = _luminance(x)
    height, width = x.shape[-2:]
    if (height, width) != (size, size):
        small_border = PAD_MIN_FRACTION * size <= min(height, width) and max(height, width) <= size
        x = _pad(x, size) if fit == "pad" or (fit == "auto" and small_border) else _resize(x, size)
    if channels == 3 and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.contiguous()


def read_image(file: str | os.PathLike | BinaryIO, channels: int) -> torch.Tensor:
    """One image file as uint8 (``channels``, H, W), decoded as the images of a folder are
    (upright per EXIF, 16-bit grey scaled, palette transparency applied); a file PIL cannot
    read raises :class:`UserError` naming it."""
    _check_fit_options(None, channels, "auto")
    try:
        return _decode(file, "RGB" if channels == 3 else "L")
    except Exception as error:  # PIL raises many exception types on malformed files
        name = file if isinstance(file, (str, os.PathLike)) else getattr(file, "name", "The image")
        raise UserError(
            f"{name} is not an image PIL can read ({type(error).__name__}): convert it to PNG or JPEG."
        ) from error


# ----------------------------------------------------------------------------- fitting


def _check_fit_options(size: int | None, channels: int | None, fit: str) -> None:
    if fit not in FITS:
        raise UserError(f"Unknown fit {fit!r}: choose 'auto', 'pad' or 'resize'.")
    if size is not None and size < 1:
        raise UserError(f"size must be a positive number of pixels, not {size}.")
    if channels not in (None, 1, 3):
        raise UserError(f"channels must be 1 (grey) or 3 (colour), not {channels}.")


def _luminance(x: torch.Tensor) -> torch.Tensor:
    # ITU-R BT.601 luma, in integers with rounding: (299 R + 587 G + 114 B + 500) // 1000.
    weights = torch.tensor([299, 587, 114], dtype=torch.int32, device=x.device).view(1, 3, 1, 1)
    grey = torch.empty(x.shape[0], 1, *x.shape[2:], dtype=torch.uint8, device=x.device)
    for start in range(0, len(x), _CHUNK):
        weighted = (x[start : start + _CHUNK].int() * weights).sum(1, keepdim=True)
        grey[start : start + _CHUNK] = (weighted + 500) // 1000
    return grey


def _pad(x: torch.Tensor, size: int) -> torch.Tensor:
    height, width = x.shape[-2:]
    if height > size or width > size:
        raise UserError(
            f"Cannot pad {height}×{width} images to {size}×{size}: use fit='resize' or fit='auto' "
            f"for images larger than the target size."
        )
    top, left = (size - height) // 2, (size - width) // 2
    return F.pad(x, (left, size - width - left, top, size - height - top))


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    # torchvision's Resize(size) then CenterCrop(size), bilinear with antialiasing, to the same bytes
    # (tests/test_data.py compares them); written with torch alone because importing torchvision.transforms
    # costs every process that loads data about 3 s.
    height, width = x.shape[-2:]
    shorter, longer = sorted((height, width))
    longer_fitted = int(size * longer / shorter)
    fitted = (size, longer_fitted) if height <= width else (longer_fitted, size)
    top, left = (round((side - size) / 2) for side in fitted)
    resized = torch.empty(*x.shape[:2], size, size, dtype=torch.uint8, device=x.device)
    for start in range(0, len(x), _CHUNK):
        shorter_side_fitted = F.interpolate(
            x[start : start + _CHUNK], size=fitted, mode="bilinear", align_corners=False, antialias=True
        )
        resized[start : start + _CHUNK] = shorter_side_fitted[..., top : top + size, left : left + size]
    return resized


def _channel_statistics(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    # Exact, from a 256-bin histogram per channel: no float copy of up to 150 M values is made.
    levels = torch.arange(256, dtype=torch.float64, device=x.device) / 255
    means, stds = [], []
    for channel in range(x.shape[1]):
        counts = torch.bincount(x[:, channel].reshape(-1), minlength=256).double()
        mean = (counts * levels).sum() / counts.sum()
        variance = (counts * (levels - mean) ** 2).sum() / counts.sum()
        means.append(mean.item())
        stds.append(variance.sqrt().item())
    return tuple(means), tuple(stds)


def _make_split(
    name: str, tensors: dict[str, torch.Tensor | None], classes: list[str], source: str
) -> DataSplit:
    """A :class:`DataSplit` of ``tensors`` (keys ``train_x``, ``val_y``, ...), its statistics
    computed on the training images."""
    train_x = tensors["train_x"]
    mean, std = _channel_statistics(train_x)
    contiguous = {key: None if value is None else value.contiguous() for key, value in tensors.items()}
    return DataSplit(
        name, preprocess=Preprocess(classes, tuple(train_x.shape[1:]), mean, std), source=source, **contiguous
    )


def _take(part: tuple[torch.Tensor, torch.Tensor], index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return part[0][index], part[1][index]


def _class_counts(labels: torch.Tensor) -> list[tuple[int, int]]:
    values, counts = labels.unique(return_counts=True)
    return list(zip(values.tolist(), counts.tolist()))


def _hold_out(labels: torch.Tensor, counts: dict[int, int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Kept and held-out indices: ``counts[c]`` random images of each class ``c`` are held out."""
    generator = torch.Generator().manual_seed(seed)
    held = torch.zeros(len(labels), dtype=torch.bool)
    for label in labels.unique():
        members = (labels == label).nonzero().flatten()
        shuffled = members[torch.randperm(len(members), generator=generator)]
        held[shuffled[: counts[int(label)]]] = True
    return (~held).nonzero().flatten(), held.nonzero().flatten()


def _validation_counts(labels: torch.Tensor, validation: int, classes: list[str]) -> dict[int, int]:
    """``validation`` images shared among the classes in proportion to their sizes (the largest
    remainders round up), so that the validation split has the training split's class balance."""
    if validation >= len(labels):
        raise UserError(
            f"validation={validation} would hold out every one of the {len(labels):,} training images: "
            "hold out fewer, such as a tenth of them."
        )
    sizes = _class_counts(labels)
    shares = {label: validation * count / len(labels) for label, count in sizes}
    counts = {label: math.floor(share) for label, share in shares.items()}
    by_remainder = sorted(shares, key=lambda label: (counts[label] - shares[label], label))
    for label in by_remainder[: validation - sum(counts.values())]:
        counts[label] += 1
    for label, count in sizes:
        if not 0 < counts[label] < count:
            where = "the validation split" if counts[label] == 0 else "the training split"
            raise UserError(
                f"validation={validation} leaves class {classes[label]!r} out of {where}: hold out "
                f"at least {len(sizes)} images (one per class) and fewer than every image of a class."
            )
    return counts


# ----------------------------------------------------------------------------- sources


def _read_source(
    name: str,
    root: str | os.PathLike | None,
    size: int | None,
    channels: int | None,
    fit: str,
    download: bool,
) -> _Images:
    if name == "digits":
        return _load_digits()
    if name == "mnist":
        return _load_mnist(data_root(root), download)
    if name == "cifar10":
        return _load_cifar10(data_root(root), download)
    path = Path(name).expanduser()
    if path.is_dir() or (path.is_file() and path.name.endswith(_ARCHIVE_SUFFIXES)):
        return _load_image_folder(path, size, channels, fit)
    if path.exists():
        raise UserError(
            f"{path} is neither a folder nor a .tar, .tar.gz or .tgz archive: pass a folder of images "
            f"with one sub-folder per class, or an archive of one."
        )
    raise UserError(
        f"Unknown data set {name!r}: choose one of {', '.join(DATASETS)}, or pass a folder or .tar.gz "
        f"of images with one sub-folder per class."
    )


def _load_digits() -> _Images:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Each pixel counts the set bits of a 4×4 block of the 32×32 bitmap: 0–16, scaled to 0–255.
    x = torch.from_numpy(np.rint(digits.images * (255 / 16)).astype(np.uint8)).unsqueeze(1)
    return _Images(
        "digits",
        x,
        torch.from_numpy(digits.target).long(),
        None,
        None,
        [str(digit) for digit in range(10)],
        "scikit-learn 8×8 digits (sklearn.datasets.load_digits)",
        [],
    )


def _load_mnist(root: Path, download: bool) -> _Images:
    raw = root / "MNIST" / "raw"
    stems = [stem for pair in _MNIST_FILES.values() for stem in pair]
    if download and any(_find_idx(raw, stem) is None for stem in stems):
        from torchvision.datasets import MNIST

        _download(MNIST, root, "MNIST")
    for stem in stems:
        if _find_idx(raw, stem) is None:
            raise UserError(
                f"MNIST not found in {raw} (looked for {stem}[.gz]); pass --download (download=True) to "
                f"fetch it, or set CNNLIB_DATA to a folder that holds MNIST/raw."
            )
    tensors = {}
    for part, (images_stem, labels_stem) in _MNIST_FILES.items():
        images = _read_idx(_find_idx(raw, images_stem), ndim=3)
        labels_path = _find_idx(raw, labels_stem)
        labels = _read_idx(labels_path, ndim=1)
        if len(labels) != len(images):
            raise _corrupt(labels_path, f"{len(labels)} labels for {len(images)} images")
        tensors[part] = images.unsqueeze(1), labels.long()
    return _Images(
        "mnist",
        *tensors["train"],
        *tensors["test"],
        [str(digit) for digit in range(10)],
        "MNIST, official IDX files from MNIST/raw in the data root",
        [],
    )


def _find_idx(folder: Path, stem: str) -> Path | None:
    return next((path for path in (folder / stem, folder / f"{stem}.gz") if path.is_file()), None)


def _read_idx(path: Path, ndim: int) -> torch.Tensor:
    """An IDX file of unsigned bytes (the MNIST format) as a uint8 tensor, checked against its header."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        raise _corrupt(path, f"unreadable: {error}") from error
    # Header: two zero bytes, the type 0x08 (unsigned byte), the number of dimensions, then
    # each dimension as a big-endian 32-bit integer.
    header = 4 + 4 * ndim
    if len(data) < header or data[:4] != bytes([0, 0, 8, ndim]):
        raise _corrupt(path, f"its magic number is not 0x0000080{ndim}")
    shape = tuple(int.from_bytes(data[4 + 4 * axis : 8 + 4 * axis], "big") for axis in range(ndim))
    if len(data) - header != math.prod(shape):
        raise _corrupt(
            path, f"it holds {len(data) - header} data bytes where its header announces {math.prod(shape)}"
        )
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=header).view(shape)


def _corrupt(path: Path, reason: str) -> UserError:
    return UserError(
        f"{path} is corrupt ({reason}): delete it and download it again with --download (download=True)."
    )


def _download(dataset_class: type, root: Path, name: str) -> None:
    try:
        dataset_class(str(root), train=True, download=True)
    except (OSError, RuntimeError) as error:
        raise UserError(
            f"Could not download {name} into {root} ({error}): check the network connection and that "
            f"the folder is writable, or copy the files there by hand."
        ) from error


def _load_cifar10(root: Path, download: bool) -> _Images:
    batches, folder, archive = root / "cifar-10-batches-py", root / "cifar10-jpg", root / "cifar10-jpg.tar.gz"
    if not (batches.is_dir() or folder.is_dir() or archive.is_file()):
        if not download:
            raise UserError(
                f"CIFAR-10 not found in {root} (looked for cifar-10-batches-py/, cifar10-jpg/ and "
                f"cifar10-jpg.tar.gz); pass --download (download=True) to fetch it, or set CNNLIB_DATA "
                f"to a folder that holds one of them."
            )
        from torchvision.datasets import CIFAR10

        _download(CIFAR10, root, "CIFAR-10")
    if batches.is_dir():
        return _load_cifar10_batches(root, batches)
    jpeg = folder if folder.is_dir() else archive
    images = _load_image_folder(jpeg, size=32, channels=3, fit="auto")
    if images.classes != list(CIFAR10_CLASSES) or images.test_x is None:
        raise UserError(
            f"{jpeg} does not hold the CIFAR-10 JPEG copy (train/ and test/ folders of the classes "
            f"{', '.join(CIFAR10_CLASSES)}): remove it, or set CNNLIB_DATA to another folder."
        )
    return replace(
        images,
        name="cifar10",
        source=f"CIFAR-10, JPEG copy (quality ~75) from {jpeg.name} in the data root: accuracies "
        f"differ slightly from the official binary set",
    )


def _load_cifar10_batches(root: Path, batches: Path) -> _Images:
    from torchvision.datasets import CIFAR10

    try:
        train, test = CIFAR10(str(root), train=True), CIFAR10(str(root), train=False)
    except RuntimeError as error:
        raise UserError(
            f"The CIFAR-10 batches in {batches} are incomplete or corrupt: delete the folder and "
            f"download them again with --download (download=True)."
        ) from error

    def tensors(dataset: CIFAR10) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(dataset.targets)

    return _Images(
        "cifar10",
        *tensors(train),
        *tensors(test),
        list(train.classes),
        f"CIFAR-10, official python batches from {batches}",
        [],
    )


# ----------------------------------------------------------------------------- image folders


def _load_image_folder(path: Path, size: int | None, channels: int | None, fit: str) -> _Images:
    """A folder or archive of images, from the tensor cache or decoded (and then cached)."""
    cached = cache_dir() / "tensors" / f"{_cache_key(path, size, channels, fit)}.pt"
    if cached.is_file():
        return _Images(**torch.load(cached, weights_only=True))
    if path.is_dir():
        name, source = path.resolve().name, f"Image folder {path}"
    else:
        name = path.name.removesuffix(
            next(suffix for suffix in _ARCHIVE_SUFFIXES if path.name.endswith(suffix))
        )
        source = f"Image archive {path}"
    images = _decode_images(path, name, source, size, channels, fit)
    _write_cache(images, cached)
    return images


def _cache_key(path: Path, size: int | None, channels: int | None, fit: str) -> str:
    path = path.resolve()
    if path.is_dir():
        # Every file and folder: moving an image to another class changes two folders' mtimes.
        stats = [
            Path(folder, entry).stat()
            for folder, subfolders, files in os.walk(path, followlinks=True)
            for entry in (".", *files)
        ]
    else:
        stats = [path.stat()]
    fingerprint = (
        str(path),
        len(stats),
        sum(s.st_size for s in stats),
        max(s.st_mtime_ns for s in stats),
        size,
        channels,
        fit,
        _CACHE_VERSION,
    )
    return hashlib.sha256(repr(fingerprint).encode()).hexdigest()[:24]


def _write_cache(images: _Images, target: Path) -> None:
    """Save the decoded images atomically; a cache that cannot be written only costs time, so it is
    said, not raised."""
    try:
        atomic_save(vars(images), target)
    except UserError as error:  # atomic_save's sentence for the OSError it met, which is kept as the cause
        _tell(
            f"Could not cache the decoded images in {target.parent} ({error.__cause__}); set CNNLIB_CACHE "
            f"to a writable folder to make the next load fast."
        )


def _tell(sentence: str) -> None:
    """A message the user should read, as one plain sentence on stderr (no warning's source line)."""
    print(sentence, file=sys.stderr, flush=True)


def _decode_images(
    path: Path, name: str, source: str, size: int | None, channels: int | None, fit: str
) -> _Images:
    classes, labelled = _find_layout(_list_files(path))
    if len(classes) < 2:
        raise UserError(
            f"No class folders with images in {path}: expected train/ and test/ folders that each "
            f"hold one folder per class, or one folder per class (e.g. cat/1.jpg, dog/2.jpg)."
        )
    order = sorted(labelled)
    if size is None or channels is None:
        common_height, any_colour = _survey(path, order)
        size = size or min(common_height, MAX_FOLDER_SIZE)
        channels = channels or (3 if any_colour else 1)
    position = {relative: index for index, relative in enumerate(order)}
    x = torch.zeros(len(order), channels, size, size, dtype=torch.uint8)
    readable = torch.zeros(len(order), dtype=torch.bool)
    skipped = []
    for relative, file in _open_files(path, order):
        try:
            image = _decode(file, "RGB" if channels == 3 else "L")
        except Exception:  # PIL raises many exception types on malformed files
            skipped.append(relative.as_posix())
            continue
        x[position[relative]] = fit_images(image.unsqueeze(0), size, channels, fit)[0]
        readable[position[relative]] = True
    if not readable.any():
        raise _no_images(path, len(order))
    y = torch.tensor([labelled[relative][0] for relative in order], dtype=torch.int64)
    parts = [labelled[relative][1] for relative in order]
    if "all" in parts:
        return _Images(name, x[readable], y[readable], None, None, classes, source, skipped)
    is_test = torch.tensor([part == "test" for part in parts], dtype=torch.bool)
    train, test = readable & ~is_test, readable & is_test
    return _Images(
        name, x[train], y[train], x[test], y[test], classes, f"{source} (train/ and test/ folders)", skipped
    )


def _no_images(path: Path, count: int) -> UserError:
    return UserError(
        f"None of the {count} files in the class folders of {path} is an image PIL can read: check "
        f"the folder, or convert the images to PNG or JPEG."
    )


def _list_files(path: Path) -> list[PurePosixPath]:
    """The visible (not dot-named) regular files of a folder or archive, relative to it."""
    if path.is_dir():
        files = []
        for folder, subfolders, names in os.walk(path, followlinks=True):
            subfolders[:] = [subfolder for subfolder in subfolders if not subfolder.startswith(".")]
            relative = PurePosixPath(Path(folder).relative_to(path).as_posix())
            files += [relative / name for name in names if not name.startswith(".")]
        return files
    return [
        relative
        for relative, _ in _archive_files(path)
        if not any(part.startswith(".") for part in relative.parts)
    ]


def _open_files(path: Path, wanted: list[PurePosixPath]) -> Iterator[tuple[PurePosixPath, Path | BinaryIO]]:
    """Each wanted file of a folder (in ``wanted``'s order) or archive (in stored order)."""
    if path.is_dir():
        return ((relative, path / relative) for relative in wanted)
    return _archive_files(path, set(wanted))


def _archive_files(
    archive: Path, wanted: set[PurePosixPath] | None = None
) -> Iterator[tuple[PurePosixPath, BinaryIO | None]]:
    """The regular files of an archive, streamed front to back (a gzip is never seeked in): all
    of them without contents, or only the ``wanted`` ones with their contents. Nothing is
    unpacked to disk, so the archive's folder may be read-only."""
    try:
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                relative = PurePosixPath(member.name)
                if member.isfile() and wanted is None:
                    yield relative, None
                elif member.isfile() and relative in wanted:
                    yield relative, io.BytesIO(tar.extractfile(member).read())
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise UserError(
            f"Could not read the archive {archive} ({error}): check that it is a complete .tar, "
            f".tar.gz or .tgz file."
        ) from error


def _find_layout(files: list[PurePosixPath]) -> tuple[list[str], dict[PurePosixPath, tuple[int, str]]]:
    """The classes, and each image file's class index and part: "train", "test", or "all" when
    the source is to be split. Files outside class folders are left out."""
    root = PurePosixPath()
    # An archive usually holds one enclosing folder (cifar10-jpg/train/...): look through it.
    while len(subfolders := _subfolders(files, root)) == 1 and not subfolders & {"train", "test"}:
        root /= subfolders.pop()
    has_test_set = {"train", "test"} <= _subfolders(files, root)
    found = {}
    for file in files:
        below = file.relative_to(root).parts if file.is_relative_to(root) else ()
        if has_test_set and len(below) >= 3 and below[0] in ("train", "test"):
            found[file] = below[1], below[0]
        elif not has_test_set and len(below) >= 2:
            found[file] = below[0], "all"
    classes = sorted({label for label, part in found.values() if part != "test"})
    extra = sorted({label for label, _ in found.values()} - set(classes))
    if extra:
        raise UserError(
            f"The test/ folder has class folders that train/ lacks ({', '.join(extra)}): give train/ "
            f"and test/ the same class folders."
        )
    index = {label: position for position, label in enumerate(classes)}
    return classes, {file: (index[label], part) for file, (label, part) in found.items()}


def _subfolders(files: list[PurePosixPath], root: PurePosixPath) -> set[str]:
    depth = len(root.parts)
    return {file.parts[depth] for file in files if len(file.parts) > depth + 1 and file.is_relative_to(root)}


def _survey(path: Path, files: list[PurePosixPath]) -> tuple[int, bool]:
    """From the headers alone: the height of the most common stored image size, and whether
    any image is in colour."""
    sizes, any_colour = Counter(), False
    for _, file in _open_files(path, files):
        try:
            with Image.open(file) as image:
                sizes[image.size] += 1
                any_colour |= image.mode not in _GREY_MODES
        except Exception:  # reported with the others when decoding
            continue
    if not sizes:
        raise _no_images(path, len(files))
    (_, height), _ = sizes.most_common(1)[0]
    return height, any_colour


def _decode(file: Path | BinaryIO, mode: str) -> torch.Tensor:
    """One image as uint8 (C, H, W), upright per its EXIF orientation, in ``mode`` ("L" or "RGB")."""
    with Image.open(file) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode in _SIXTEEN_BIT_MODES:
            # PIL's conversion to 8 bits clips at 255; scale the 16-bit range instead.
            image = Image.fromarray(
                np.clip(np.array(image, dtype=np.float64) / 257, 0, 255).round().astype(np.uint8)
            )
        elif image.mode == "P":
            image = image.convert("RGBA")  # applies the palette's transparency before the alpha is dropped
        pixels = np.array(image.convert(mode))
    return torch.from_numpy(pixels).view(*pixels.shape[:2], -1).permute(2, 0, 1)
