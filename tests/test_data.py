"""cnnlib.data: the built-in sets on real files, users' image folders, fitting, caching and errors."""

import gzip
import os
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlib import data as data_module
from cnnlib.data import DATASETS, DataSplit, fit_images, load_dataset
from cnnlib.errors import UserError

# CNNLIB_CACHE as the session found it (None: the user's cache folder), before the fixture below replaces it.
SESSION_CACHE = os.environ.get("CNNLIB_CACHE")
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data_root: Path) -> None:
    monkeypatch.setenv("CNNLIB_DATA", str(data_root))
    monkeypatch.setenv("CNNLIB_CACHE", str(tmp_path / "cache"))


def _save(path: Path, image: Image.Image, **options) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)


def _solid_16_bit(grey: int, size: tuple[int, int]) -> Image.Image:
    return Image.fromarray(np.full(size[::-1], grey * 257, dtype=np.uint16))


def _palette_with_transparency(size: tuple[int, int]) -> Image.Image:
    image = Image.new("P", size, 0)
    image.putpalette([0, 255, 0] * 256)
    image.info["transparency"] = 0
    return image


# One solid image per PIL mode, with the RGB colour each must decode to.
MIXED_IMAGES = {
    "circle/rgb.png": (Image.new("RGB", (32, 32), (200, 100, 50)), (200, 100, 50)),
    "circle/grey.png": (Image.new("L", (32, 32), 77), (77, 77, 77)),
    "circle/cmyk.tif": (Image.new("CMYK", (32, 32), (0, 255, 255, 0)), (255, 0, 0)),
    "square/rgba.png": (Image.new("RGBA", (32, 32), (10, 20, 30, 0)), (10, 20, 30)),
    "square/palette.png": (_palette_with_transparency((48, 40)), (0, 255, 0)),
    "square/sixteen.png": (_solid_16_bit(200, (32, 32)), (200, 200, 200)),
    "square/tall.png": (Image.new("L", (20, 30), 33), (33, 33, 33)),
}


def _mixed_folder(root: Path) -> Path:
    """Two classes of images in every mode and several sizes, plus files that are not images."""
    for name, (image, _) in MIXED_IMAGES.items():
        _save(root / name, image)
    (root / "square" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    (root / "circle" / "notes.txt").write_text("drawn by hand\n")
    (root / ".DS_Store").write_bytes(b"\0\1")  # hidden: ignored without a warning
    (root / "circle" / "._rgb.png").write_bytes(b"\0\1")
    (root / "README.txt").write_text("outside the class folders: ignored\n")
    return root


def _grey_folder(root: Path, per_class: int = 10, classes: tuple[str, ...] = ("a", "b")) -> Path:
    for label, name in enumerate(classes):
        for index in range(per_class):
            _save(root / name / f"{index:02d}.png", Image.new("L", (8, 8), 10 * index + label))
    return root


def _corner_colours(split: DataSplit) -> set[tuple[int, ...]]:
    images = torch.cat([split.train_x, split.test_x])
    return {tuple(image[:, 0, 0].tolist()) for image in images}


def _load_warning_free(*args, **kwargs) -> DataSplit:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return load_dataset(*args, **kwargs)


# ----------------------------------------------------------------------------- built-in sets


def test_mnist_from_the_official_idx_files(data_root: Path):
    mnist = _load_warning_free("mnist")
    assert mnist.name == "mnist" and mnist.classes == [str(digit) for digit in range(10)]
    assert mnist.train_x.shape == (60_000, 1, 28, 28) and mnist.test_x.shape == (10_000, 1, 28, 28)
    assert mnist.train_x.dtype == mnist.test_x.dtype == torch.uint8 and mnist.train_x.is_contiguous()
    assert mnist.train_y.dtype == mnist.test_y.dtype == torch.int64
    assert mnist.input_shape == (1, 28, 28)
    assert int(mnist.train_y.min()) == 0 and int(mnist.train_y.max()) == 9
    # Label counts of the official files, as torchvision's MNIST reports them.
    assert int((mnist.train_y == 1).sum()) == 6742
    assert torch.bincount(mnist.test_y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    # The normalisation constants quoted with MNIST everywhere (PyTorch's MNIST example).
    assert mnist.mean == pytest.approx((0.1307,), abs=1e-4) and mnist.std == pytest.approx(
        (0.3081,), abs=1e-4
    )
    # No absolute path of the machine that read it: the source string ends up in metrics.json and the book.
    assert mnist.source == "MNIST, official IDX files from MNIST/raw in the data root"


def test_mnist_padded_to_lenets_input_keeps_every_digit_pixel():
    native = load_dataset("mnist", subset=300)
    padded = load_dataset("mnist", subset=300, size=32)
    assert padded.input_shape == (1, 32, 32)
    assert torch.equal(padded.train_x[:, :, 2:30, 2:30], native.train_x)
    assert padded.train_x.sum(dtype=torch.int64) == native.train_x.sum(dtype=torch.int64)  # zero border
    assert padded.mean[0] == pytest.approx(native.mean[0] * 28 * 28 / (32 * 32))


def test_digits_need_no_files_and_split_per_class_by_seed():
    from sklearn.datasets import load_digits

    digits = _load_warning_free("digits", root="/nonexistent")
    official = torch.from_numpy(load_digits().target)
    assert digits.train_x.shape[1:] == (1, 8, 8) and len(digits.train_y) + len(digits.test_y) == 1797
    assert int(digits.train_x.max()) == 255 and int(digits.train_x.min()) == 0
    assert torch.equal(torch.bincount(torch.cat([digits.train_y, digits.test_y])), torch.bincount(official))
    for label, count in enumerate(torch.bincount(official).tolist()):
        assert abs(int((digits.test_y == label).sum()) - 0.2 * count) <= 0.5
    again, other = load_dataset("digits"), load_dataset("digits", split_seed=1)
    assert torch.equal(again.test_x, digits.test_x) and torch.equal(again.test_y, digits.test_y)
    assert not torch.equal(other.test_x, digits.test_x)
    assert "split 80%/20% per class with seed 0" in digits.source
    assert len(load_dataset("digits", test_fraction=0.5).test_y) == pytest.approx(1797 / 2, abs=10)


@pytest.mark.slow
def test_cifar10_jpeg_copy_is_decoded_once_then_cached(monkeypatch, data_root: Path):
    # In the cache the notebooks and other tests read, so that a fresh machine decodes the 60,000 JPEGs once.
    if SESSION_CACHE:
        monkeypatch.setenv("CNNLIB_CACHE", SESSION_CACHE)
    else:
        monkeypatch.delenv("CNNLIB_CACHE")
    data_files = sorted(os.listdir(data_root))
    cifar = _load_warning_free("cifar10")
    assert cifar.name == "cifar10" and cifar.classes == CIFAR10_CLASSES
    assert cifar.train_x.shape == (50_000, 3, 32, 32) and cifar.test_x.shape == (10_000, 3, 32, 32)
    assert torch.bincount(cifar.train_y).tolist() == [5000] * 10
    assert torch.bincount(cifar.test_y).tolist() == [1000] * 10
    assert "JPEG copy" in cifar.source and "differ slightly from the official" in cifar.source
    assert "/" not in cifar.source.split(" from ")[1].split(" in the data root")[0]
    # The official set's per-channel means; the JPEG copy agrees to about 0.01 (data README).
    assert cifar.mean == pytest.approx((0.4914, 0.4822, 0.4465), abs=0.01)
    assert sorted(os.listdir(data_root)) == data_files  # nothing unpacked beside the archive
    archive = data_root / "cifar10-jpg.tar.gz"
    assert (
        data_module.cache_dir() / "tensors" / f"{data_module._cache_key(archive, 32, 3, 'auto')}.pt"
    ).is_file()
    # The second load reads the cached tensors: no image is decoded again.
    monkeypatch.setattr(data_module, "_decode", lambda *args: pytest.fail("decoded an image again"))
    again = load_dataset("cifar10")
    assert torch.equal(again.train_x, cifar.train_x) and torch.equal(again.test_y, cifar.test_y)


def test_subset_is_drawn_by_seed():
    first, same = (
        load_dataset("mnist", subset=500, split_seed=3),
        load_dataset("mnist", subset=500, split_seed=3),
    )
    other = load_dataset("mnist", subset=500, split_seed=4)
    assert len(first.train_y) == len(first.test_y) == 500
    assert torch.equal(first.train_x, same.train_x) and torch.equal(first.test_y, same.test_y)
    assert not torch.equal(first.train_x, other.train_x)
    assert "random subset of 500 train / 500 test images (seed 3)" in first.source
    everything = load_dataset("digits", subset=100_000)
    assert len(everything.train_y) + len(everything.test_y) == 1797  # at most N: never more than there is


def test_split_normalise_to_and_fitted():
    digits = load_dataset("digits")
    normalised = digits.normalise(digits.train_x)
    assert normalised.dtype == torch.float32 and normalised.shape == digits.train_x.shape
    assert float(normalised.mean()) == pytest.approx(0, abs=1e-5)
    assert float(normalised.double().std(unbiased=False)) == pytest.approx(1, abs=1e-5)
    moved = digits.to("meta")
    assert moved is not digits and digits.train_x.device.type == "cpu"
    assert {t.device.type for t in (moved.train_x, moved.train_y, moved.test_x, moved.test_y)} == {"meta"}
    assert moved.normalise(moved.test_x).device.type == "meta"
    colour = digits.fitted(32, 3)
    assert colour.input_shape == (3, 32, 32) and colour.test_x.shape[1:] == (3, 32, 32)
    assert colour.mean[0] == colour.mean[1] == colour.mean[2] != digits.mean[0]


# ----------------------------------------------------------------------------- users' folders


def test_mixed_folder_decodes_every_mode_and_skips_non_images_with_one_sentence(tmp_path: Path, capsys):
    folder = _mixed_folder(tmp_path / "shapes")
    shapes = _load_warning_free(folder)
    message = capsys.readouterr().err
    assert message.startswith("Skipped 2 file(s) of shapes") and message.count("\n") == 1  # no source line
    assert "circle/notes.txt" in message
    assert "square/broken.jpg" in message
    assert shapes.name == "shapes" and shapes.classes == ["circle", "square"]
    assert shapes.input_shape == (3, 32, 32)  # colour present; the most common size is 32×32
    assert len(shapes.train_y) + len(shapes.test_y) == len(MIXED_IMAGES)
    assert _corner_colours(shapes) == {colour for _, colour in MIXED_IMAGES.values()}
    assert shapes.source.startswith(f"Image folder {folder}")


def test_grey_folder_stays_grey_unless_colour_is_asked_for(tmp_path: Path):
    folder = _grey_folder(tmp_path / "grey")
    assert _load_warning_free(folder).input_shape == (1, 8, 8)
    colour = load_dataset(folder, channels=3, size=16)
    assert colour.input_shape == (3, 16, 16)
    assert torch.equal(colour.train_x[:, 0], colour.train_x[:, 2])


def test_archive_loads_like_the_folder_and_writes_nothing_beside_it(tmp_path: Path, capsys):
    folder = _mixed_folder(tmp_path / "shapes")
    archive = tmp_path / "release" / "shapes.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="shapes-v1")  # one enclosing folder, as most archives have
    from_folder, from_archive = load_dataset(folder), load_dataset(archive)
    assert capsys.readouterr().err.count("Skipped 2 file") == 2
    assert from_archive.name == "shapes" and from_archive.classes == from_folder.classes
    assert torch.equal(from_archive.train_x, from_folder.train_x)
    assert torch.equal(from_archive.test_y, from_folder.test_y)
    assert from_archive.source.startswith(f"Image archive {archive}")
    assert os.listdir(archive.parent) == ["shapes.tar.gz"]


def test_train_test_layout_is_kept_and_a_class_folder_layout_is_split_by_seed(tmp_path: Path):
    _grey_folder(tmp_path / "given" / "train", per_class=6)
    _grey_folder(tmp_path / "given" / "test", per_class=3)
    given = load_dataset(tmp_path / "given", split_seed=5)
    assert given.classes == ["a", "b"] and len(given.train_y) == 12 and len(given.test_y) == 6
    assert torch.bincount(given.test_y).tolist() == [3, 3]
    assert "(train/ and test/ folders)" in given.source and "split" not in given.source

    folder = _grey_folder(tmp_path / "split", per_class=10)
    split = load_dataset(folder)
    assert torch.bincount(split.train_y).tolist() == [8, 8] and torch.bincount(split.test_y).tolist() == [
        2,
        2,
    ]
    assert torch.equal(load_dataset(folder).test_x, split.test_x)
    assert not torch.equal(load_dataset(folder, split_seed=1).test_x, split.test_x)
    every_image = torch.cat([split.train_x, split.test_x]).flatten(1)[:, 0].sort().values
    assert every_image.tolist() == sorted(10 * index + label for label in (0, 1) for index in range(10))


def test_images_are_turned_upright_by_their_exif_orientation(tmp_path: Path):
    stored = Image.new("RGB", (40, 20))
    stored.paste((255, 255, 255), (20, 0, 40, 20))  # left half black, right half white, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": the left half becomes the top
    for name in ("a", "b"):
        _save(tmp_path / "turned" / name / "1.png", stored, exif=exif)
    turned = load_dataset(tmp_path / "turned", fit="resize")
    image = torch.cat([turned.train_x, turned.test_x])[0, 0]
    assert image.shape == (20, 20)
    assert int(image[:8].max()) == 0 and int(image[-8:].min()) == 255


def test_folder_cache_is_reused_keeps_the_warning_and_follows_changes(tmp_path: Path, capsys):
    folder = _mixed_folder(tmp_path / "shapes")
    first = load_dataset(folder)
    cached = list((tmp_path / "cache" / "tensors").iterdir())
    assert len(cached) == 1 and cached[0].suffix == ".pt"  # no temporary file left behind
    second = load_dataset(folder)
    assert torch.equal(second.train_x, first.train_x)
    _save(folder / "circle" / "new.png", Image.new("RGB", (32, 32), (1, 2, 3)))
    changed = load_dataset(folder)
    assert capsys.readouterr().err.count("Skipped 2 file") == 3
    assert len(changed.train_y) + len(changed.test_y) == len(MIXED_IMAGES) + 1


def test_unwritable_cache_warns_and_still_loads(monkeypatch, tmp_path: Path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("CNNLIB_CACHE", str(blocker / "cache"))
    grey = _load_warning_free(_grey_folder(tmp_path / "grey"))
    assert capsys.readouterr().err.startswith("Could not cache the decoded images")
    assert len(grey.train_y) == 16


# ----------------------------------------------------------------------------- fitting


def test_pad_centres_the_image_and_auto_pads_a_thin_border():
    x = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    padded = fit_images(x, 32, 1, "pad")
    assert padded.shape == (5, 1, 32, 32) and padded.dtype == torch.uint8
    assert torch.equal(padded[:, :, 2:30, 2:30], x)
    assert padded.sum(dtype=torch.int64) == x.sum(dtype=torch.int64)
    assert torch.equal(fit_images(x, 32, 1), padded)


def test_resize_keeps_the_aspect_ratio_and_auto_resizes_small_or_large_images():
    wide = torch.zeros(1, 1, 20, 40, dtype=torch.uint8)
    wide[..., 20:] = 255
    square = fit_images(wide, 10, 1, "resize")
    assert square.shape == (1, 1, 10, 10)  # 20×40 → 10×20, then the central 10 columns
    assert int(square[..., :4].max()) == 0 and int(square[..., 6:].min()) == 255
    tiny = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    assert torch.equal(fit_images(tiny, 32, 1), fit_images(tiny, 32, 1, "resize"))
    large = torch.randint(0, 256, (3, 3, 40, 40), dtype=torch.uint8)
    assert fit_images(large, 32, 3).shape == (3, 3, 32, 32)
    flat = torch.full((2, 3, 13, 17), 99, dtype=torch.uint8)
    assert torch.equal(fit_images(flat, 32, 3, "resize"), torch.full((2, 3, 32, 32), 99, dtype=torch.uint8))


@pytest.mark.parametrize(
    "height, width, size", [(32, 32, 8), (28, 28, 32), (37, 53, 20), (100, 30, 24), (61, 61, 32)]
)
def test_resize_gives_torchvisions_resize_and_centre_crop_bytes(height, width, size):
    from torchvision.transforms import v2

    images = torch.randint(
        0, 256, (4, 3, height, width), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    torchvision_fit = v2.Compose(
        [v2.Resize(size, v2.InterpolationMode.BILINEAR, antialias=True), v2.CenterCrop(size)]
    )
    assert torch.equal(fit_images(images, size, 3, "resize"), torchvision_fit(images))


def test_channels_are_repeated_or_reduced_to_bt601_luma():
    grey = torch.randint(0, 256, (4, 1, 6, 6), dtype=torch.uint8)
    colour = fit_images(grey, 6, 3)
    assert colour.shape == (4, 3, 6, 6) and all(torch.equal(colour[:, c], grey[:, 0]) for c in range(3))
    primaries = torch.tensor([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]], dtype=torch.uint8)
    luma = fit_images(primaries.view(4, 3, 1, 1), 1, 1)
    assert luma.flatten().tolist() == [76, 150, 29, 255]  # 255 × (0.299, 0.587, 0.114), rounded


# ----------------------------------------------------------------------------- errors


def _message(*args, **kwargs) -> str:
    with pytest.raises(UserError) as caught:
        load_dataset(*args, **kwargs)
    return str(caught.value)


def test_unknown_name_lists_the_built_in_sets():
    assert DATASETS == ("digits", "mnist", "cifar10")
    assert _message("imagenet") == (
        "Unknown data set 'imagenet': choose one of digits, mnist, cifar10, or pass a "
        "folder or .tar.gz of images with one sub-folder per class."
    )


def test_missing_sets_say_where_they_were_looked_for(tmp_path: Path):
    assert _message("mnist", root=tmp_path) == (
        f"MNIST not found in {tmp_path / 'MNIST' / 'raw'} (looked for train-images-idx3-ubyte[.gz]); pass "
        f"--download (download=True) to fetch it, or set CNNLIB_DATA to a folder that holds MNIST/raw."
    )
    assert _message("cifar10", root=tmp_path) == (
        f"CIFAR-10 not found in {tmp_path} (looked for cifar-10-batches-py/, cifar10-jpg/ and "
        f"cifar10-jpg.tar.gz); pass --download (download=True) to fetch it, or set CNNLIB_DATA to a "
        f"folder that holds one of them."
    )
    (tmp_path / "cifar-10-batches-py").mkdir()
    assert _message("cifar10", root=tmp_path) == (
        f"The CIFAR-10 batches in {tmp_path / 'cifar-10-batches-py'} are incomplete or corrupt: delete "
        f"the folder and download them again with --download (download=True)."
    )


@pytest.mark.parametrize(
    "content, reason",
    [
        (
            gzip.compress(bytes([0, 0, 8, 1]) + (4).to_bytes(4, "big") + bytes(4)),
            "its magic number is not 0x00000803",
        ),
        (
            gzip.compress(
                bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (60000, 28, 28)) + bytes(100)
            ),
            "it holds 100 data bytes where its header announces 47040000",
        ),
        (b"not gzip at all", "unreadable: Not a gzipped file (b'no')"),
    ],
    ids=["wrong magic number", "short of data", "not gzip"],
)
def test_corrupt_idx_file_is_named_with_what_to_do(tmp_path: Path, content: bytes, reason: str):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (raw / f"{stem}.gz").write_bytes(content)
    assert _message("mnist", root=tmp_path) == (
        f"{raw / 'train-images-idx3-ubyte.gz'} is corrupt ({reason}): delete it and download it again with "
        f"--download (download=True)."
    )


def test_folders_without_class_folders_say_which_layout_is_expected(tmp_path: Path):
    expected = (
        "No class folders with images in {}: expected train/ and test/ folders that each hold one folder "
        "per class, or one folder per class (e.g. cat/1.jpg, dog/2.jpg)."
    )
    (tmp_path / "empty").mkdir()
    assert _message(tmp_path / "empty") == expected.format(tmp_path / "empty")
    _save(tmp_path / "loose" / "1.png", Image.new("L", (8, 8)))
    assert _message(tmp_path / "loose") == expected.format(tmp_path / "loose")
    for name in ("a", "b"):
        (tmp_path / "junk" / name).mkdir(parents=True)
        (tmp_path / "junk" / name / "1.jpg").write_bytes(b"junk")
    assert _message(tmp_path / "junk") == (
        f"None of the 2 files in the class folders of {tmp_path / 'junk'} is an "
        f"image PIL can read: check the folder, or convert the images to PNG "
        f"or JPEG."
    )
    _grey_folder(tmp_path / "mismatch" / "train", per_class=2, classes=("a", "b"))
    _grey_folder(tmp_path / "mismatch" / "test", per_class=2, classes=("a", "c"))
    assert _message(tmp_path / "mismatch") == (
        "The test/ folder has class folders that train/ lacks (c): give "
        "train/ and test/ the same class folders."
    )


def test_paths_that_are_no_image_folder_or_archive(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("hello")
    assert _message(tmp_path / "notes.txt") == (
        f"{tmp_path / 'notes.txt'} is neither a folder nor a .tar, .tar.gz or .tgz archive: pass a folder "
        f"of images with one sub-folder per class, or an archive of one."
    )
    (tmp_path / "broken.tar.gz").write_bytes(b"junk")
    assert _message(tmp_path / "broken.tar.gz").startswith(
        f"Could not read the archive {tmp_path / 'broken.tar.gz'}"
    )


@pytest.mark.parametrize(
    "options, message",
    [
        ({"subset": 0}, "subset must be a positive number of training images, not 0."),
        ({"subset": -5}, "subset must be a positive number of training images, not -5."),
        ({"test_fraction": 0}, "test_fraction must lie strictly between 0 and 1, not 0."),
        ({"test_fraction": 1.5}, "test_fraction must lie strictly between 0 and 1, not 1.5."),
        ({"fit": "crop"}, "Unknown fit 'crop': choose 'auto', 'pad' or 'resize'."),
        ({"channels": 2}, "channels must be 1 (grey) or 3 (colour), not 2."),
        ({"size": 0}, "size must be a positive number of pixels, not 0."),
    ],
)
def test_bad_options(options: dict, message: str):
    assert _message("digits", **options) == message


def test_padding_an_image_larger_than_the_target():
    with pytest.raises(UserError) as caught:
        fit_images(torch.zeros(1, 1, 40, 40, dtype=torch.uint8), 32, 1, "pad")
    assert str(caught.value) == (
        "Cannot pad 40×40 images to 32×32: use fit='resize' or fit='auto' for images "
        "larger than the target size."
    )


def test_data_root_and_cache_dir_precedence(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("CNNLIB_DATA", "/data/here")
    assert data_module.data_root("/given") == Path("/given")
    assert data_module.data_root() == Path("/data/here")
    monkeypatch.delenv("CNNLIB_DATA")
    monkeypatch.setenv("CNNLIB_CACHE", "/cache/here")
    assert data_module.data_root() == Path("/cache/here/data")
    monkeypatch.delenv("CNNLIB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    assert data_module.cache_dir() == Path("/xdg/cnnlib")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data_module.cache_dir() == tmp_path / ".cache" / "cnnlib"


def test_a_validation_split_is_stratified_fixed_and_held_out_of_the_training_images():
    whole, held = load_dataset("digits"), load_dataset("digits", validation=360)
    assert len(held.train_y) + len(held.val_y) == len(whole.train_y) == 1438 and len(held.val_y) == 360
    # Each class keeps its share of the training split (the largest remainders rounded up), to within one
    # image.
    shares = whole.train_y.bincount().double() * 360 / 1438
    assert ((held.val_y.bincount().double() - shares).abs() < 1).all()
    # Held out, not copied: every training image is in exactly one of the two splits, and the test split
    # is untouched.
    combined = torch.cat([held.train_x, held.val_x]).flatten(1)
    assert sorted(map(bytes, combined.numpy())) == sorted(map(bytes, whole.train_x.flatten(1).numpy()))
    assert torch.equal(held.test_x, whole.test_x)
    # The statistics are the training split's alone.
    assert held.mean[0] == pytest.approx(held.train_x.float().mean().item() / 255, rel=1e-5)
    assert held.validation_images == 360 and whole.validation_images == 0 and whole.val_x is None


def test_the_validation_split_is_the_same_for_every_seed_and_fitting():
    from cnnlib.config import TrainConfig
    from cnnlib.run_state import prepare_data

    runs = [
        prepare_data(
            TrainConfig(model="lenet5", dataset="digits", validation=200, seed=seed), torch.device("cpu")
        )
        for seed in (0, 1, 7)
    ]
    for other in runs[1:]:
        assert torch.equal(other.val_x, runs[0].val_x) and torch.equal(other.val_y, runs[0].val_y)
        assert torch.equal(other.train_x, runs[0].train_x)
    assert runs[0].val_x.shape[1:] == (1, 32, 32)  # fitted to LeNet-5's input with the other splits


@pytest.mark.parametrize(
    "validation, words",
    [
        (-1, ("validation", "0 or more", "-1")),
        (1438, ("validation=1438", "every one of the 1,438 training images", "fewer")),
        (5, ("validation=5", "class", "out of the validation split", "at least 10")),
    ],
)
def test_a_validation_split_that_cannot_be_made_is_one_sentence(validation, words):
    with pytest.raises(UserError) as caught:
        load_dataset("digits", validation=validation)
    assert all(word in str(caught.value) for word in words) and str(caught.value).count(". ") == 0
