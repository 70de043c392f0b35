"""The classifier's widget callbacks (cnnlib.classifier_app), run without a browser: what each
source of images shows, the MNIST-style drawing, and the messages for a user's mistakes.

What the app should show is computed without cnnlib's inference path: the model's weights read from the
checkpoint file with torch, the image fitted with torchvision and normalised by hand (:class:`Reference`)."""

from __future__ import annotations

import datetime
import io
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.transforms.v2 import functional as TF

from cnnlib import models
from cnnlib.classifier_app import (
    ClassifierApp,
    checkpoint_dataset,
    describe_checkpoint,
    drawing_to_image,
    find_checkpoint,
)
from cnnlib.predict import Classifier, load_classifier
from cnnlib.record import Preprocess

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NOW = datetime.datetime.now(datetime.UTC)


STORED = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A run folder holding the stored LeNet-5 (97.49 % on the digits' 359 test images, whose
    first five are 1, 2, 6, 0, 3: tests/test_checkpoint.py) and its metrics.json."""
    out = tmp_path_factory.mktemp("lenet5-digits")
    shutil.copy(STORED / "lenet5-digits-v1.pt", out / "checkpoint.pt")
    shutil.copy(STORED / "lenet5-digits-v1.metrics.json", out / "metrics.json")
    return out / "checkpoint.pt"


@pytest.fixture(scope="module")
def stored_lenet(checkpoint) -> Reference:
    """The stored LeNet-5 read with torch alone: its weights and the training images' mean and std
    (`cnnlib train --model lenet5 --dataset digits --param activation=relu`: tests/test_checkpoint.py)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = models.create("lenet5", num_classes=10, in_channels=1, input_size=32, activation="relu")
    model.load_state_dict(state["model"])
    return Reference(model.eval(), state["data"]["mean"], state["data"]["std"])


class Reference:
    """A model and its training images' per-channel mean and std (0–1 scale)."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]):
        self.model, self.mean, self.std = model, mean, std

    def probabilities(self, image: torch.Tensor) -> torch.Tensor:
        """The class probabilities of a uint8 (C, H, W) image brought to the model's 32×32 input as
        cnnlib.data's docstring says training does: padded onto a zero canvas when its sides are between
        3/4 of 32 and 32, else torchvision's antialiased Resize then CenterCrop; then (x / 255 − mean) / std
        per channel and one float32 forward pass."""
        height, width = image.shape[-2:]
        if 24 <= min(height, width) and max(height, width) <= 32:
            top, left = (32 - height) // 2, (32 - width) // 2
            image = F.pad(image, (left, 32 - width - left, top, 32 - height - top))
        else:
            image = TF.center_crop(TF.resize(image, [32], antialias=True), [32])
        mean, std = (torch.tensor(values).view(-1, 1, 1) for values in (self.mean, self.std))
        x = (image.float() / 255 - mean) / std
        with torch.no_grad():
            return self.model(x.unsqueeze(0))[0].softmax(0)

    def label(self, image: torch.Tensor) -> str:
        """The most probable class, named by its index (the classes of these tests are "0", "1", ...)."""
        return str(self.probabilities(image).argmax().item())


@pytest.fixture()
def app(checkpoint) -> ClassifierApp:
    classifier = load_classifier(checkpoint)
    return ClassifierApp(classifier, checkpoint_dataset(classifier), seed=1)


def assert_shows(
    app: ClassifierApp, label: str, source: str, reference: Reference, image: torch.Tensor
) -> None:
    """The status, the figures and the last prediction are the reference's for ``image``. The app may
    predict in bf16 autocast where the CPU has it (cnnlib.device.precision): probabilities agree to 0.01."""
    assert app.status.value.startswith(f"<b>{label}</b> (") and source in app.status.value
    assert all(bytes(figure.value).startswith(PNG_SIGNATURE) for figure in (app.views, app.maps))
    assert app.last.label == label == reference.label(image) and not app.last.inverted
    torch.testing.assert_close(app.last.probabilities, reference.probabilities(image), atol=0.01, rtol=0)


def test_test_image_by_number_and_at_random(app, stored_lenet):
    app.index.value = 4
    app.on_test_image()
    # The stored model's fifth test prediction, a right one (tests/test_checkpoint.py).
    assert_shows(app, "3", "test image 4 (true class 3)", stored_lenet, app.data.test_x[4])
    app.on_random_test_image()
    picked = app.index.value
    assert picked == random.Random(1).randrange(359)  # the app's seed
    image, truth = app.data.test_x[picked], app.data.test_y[picked].item()
    source = f"test image {picked} (true class {truth})"
    assert_shows(app, stored_lenet.label(image), source, stored_lenet, image)


def test_upload_is_classified_like_the_same_image(app, stored_lenet):
    image = app.data.test_x[3]
    buffer = io.BytesIO()
    Image.fromarray(image[0].numpy()).save(buffer, format="PNG")
    app.upload.value = (
        {
            "name": "three.png",
            "type": "image/png",
            "size": len(buffer.getvalue()),
            "content": memoryview(buffer.getvalue()),
            "last_modified": NOW,
        },
    )
    # Test image 3 is a 0, which the stored model gets right (tests/test_checkpoint.py).
    assert_shows(app, "0", "the upload three.png", stored_lenet, image)


def test_unreadable_upload_is_one_sentence(app):
    app.upload.value = (
        {
            "name": "notes.txt",
            "type": "text/plain",
            "size": 5,
            "content": memoryview(b"hello"),
            "last_modified": NOW,
        },
    )
    assert all(words in app.status.value for words in ("notes.txt", "not an image", "PNG or JPEG"))
    assert app.last is None


def test_drawing_with_the_mouse_is_classified(app, stored_lenet):
    app.on_classify_drawing()
    assert "canvas is empty" in app.status.value and "draw a digit" in app.status.value
    app.on_mouse_move(10, 10)  # no button pressed: nothing is drawn
    app.on_mouse_down(100, 40)
    for y in range(40, 190, 15):
        app.on_mouse_move(104, y)
    app.on_mouse_up(104, 190)
    app.on_mouse_move(200, 200)
    assert len(app.strokes) == 1 and len(app.strokes[0]) == 11
    app.on_classify_drawing()
    # One vertical stroke is a 1; the reference classifies the digit the drawing becomes, tested below.
    assert_shows(app, "1", "your drawing", stored_lenet, drawing_to_image(app.strokes))
    app.on_clear()
    assert app.strokes == []


def test_drawing_becomes_an_mnist_style_digit():
    # A tall bar in the top-left corner of the canvas: fitted into a 20-pixel box, centred by mass.
    image = drawing_to_image([[(30.0, 20.0), (30.0, 120.0)]], side=224, width=20)
    assert image.shape == (1, 28, 28) and image.dtype == torch.uint8
    rows, columns = (image[0] > 0).nonzero().T
    assert rows.max() - rows.min() + 1 == 20
    pixels = image[0].double().numpy()
    row_indices, column_indices = np.indices(pixels.shape)
    assert abs((row_indices * pixels).sum() / pixels.sum() - 14) <= 1
    assert abs((column_indices * pixels).sum() / pixels.sum() - 14) <= 1


def test_colour_models_have_no_drawing_pad():
    torch.manual_seed(0)
    model = models.create("lenet5", in_channels=3).eval()
    with torch.no_grad():
        model.classifier.output.bias[7] += 3  # class 7 at about 2/3 whatever the image: a known label
    mean, std = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)
    app = ClassifierApp(Classifier(model, Preprocess([str(i) for i in range(10)], (3, 32, 32), mean, std)))
    assert app.canvas is None
    photo = torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    app.show(photo, "a photo")
    assert_shows(app, "7", "a photo", Reference(model, list(mean), list(std)), photo)


def test_checkpoint_is_found_from_the_notebooks_folder(tmp_path, monkeypatch, checkpoint):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "checkpoint.pt").write_bytes(checkpoint.read_bytes())
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert find_checkpoint("runs/checkpoint.pt") == Path("../runs/checkpoint.pt")
    assert find_checkpoint("runs/missing.pt") is None and find_checkpoint("") is None
    described = describe_checkpoint(find_checkpoint("runs/checkpoint.pt"))
    assert described == "Loaded the trained model ../runs/checkpoint.pt."


def test_the_checkpoint_is_described_from_the_metrics_beside_it(checkpoint):
    note = describe_checkpoint(checkpoint)
    assert note.startswith(
        f"Loaded {checkpoint}: lenet5 trained for 4 epoch(s) on 1,438 images of scikit-learn"
    )
    assert "on cpu (" in note and note.endswith("test accuracy 97.49% on 359 test images.")
