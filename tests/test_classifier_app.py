"""The classifier's widget callbacks (cnnlib.classifier_app), run without a browser: what each
source of images shows, the MNIST-style drawing, and the messages for a user's mistakes."""

from __future__ import annotations

import datetime
import io
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlib import models
from cnnlib.classifier_app import (ClassifierApp, checkpoint_dataset, describe_checkpoint, drawing_to_image,
                                   find_checkpoint)
from cnnlib.predict import Classifier, load_classifier
from cnnlib.record import Preprocess

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NOW = datetime.datetime.now(datetime.timezone.utc)


STORED = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A run folder holding the stored LeNet-5 (97.49 % on the digits' 359 test images, whose
    first five are 1, 2, 6, 0, 3: tests/test_checkpoint.py) and its metrics.json."""
    out = tmp_path_factory.mktemp("lenet5-digits")
    shutil.copy(STORED / "lenet5-digits-v1.pt", out / "checkpoint.pt")
    shutil.copy(STORED / "lenet5-digits-v1.metrics.json", out / "metrics.json")
    return out / "checkpoint.pt"


@pytest.fixture()
def app(checkpoint) -> ClassifierApp:
    classifier = load_classifier(checkpoint)
    return ClassifierApp(classifier, checkpoint_dataset(classifier), seed=1)


def assert_shows(app: ClassifierApp, label: str, source: str) -> None:
    assert app.status.value.startswith(f"<b>{label}</b> (") and source in app.status.value
    assert bytes(app.views.value).startswith(PNG_SIGNATURE) and bytes(app.maps.value).startswith(PNG_SIGNATURE)
    assert app.last.label == label


def test_test_image_by_number_and_at_random(app):
    app.index.value = 4
    app.on_test_image()
    assert_shows(app, "3", "test image 4 (true class 3)")
    app.on_random_test_image()
    picked = app.index.value
    assert picked == random.Random(1).randrange(359)  # the app's seed
    assert_shows(app, app.classifier.predict(app.data.test_x[picked]).label, f"test image {picked} ")


def test_upload_is_classified_like_the_same_image(app):
    image = app.data.test_x[3]
    buffer = io.BytesIO()
    Image.fromarray(image[0].numpy()).save(buffer, format="PNG")
    app.upload.value = ({"name": "three.png", "type": "image/png", "size": len(buffer.getvalue()),
                         "content": memoryview(buffer.getvalue()), "last_modified": NOW},)
    assert_shows(app, "0", "the upload three.png")  # test image 3 is a 0
    assert torch.equal(app.last.probabilities, app.classifier.predict(image).probabilities)


def test_unreadable_upload_is_one_sentence(app):
    app.upload.value = ({"name": "notes.txt", "type": "text/plain", "size": 5, "content": memoryview(b"hello"),
                         "last_modified": NOW},)
    assert "notes.txt is not an image PIL can read: upload a PNG or JPEG file." in app.status.value
    assert app.last is None


def test_drawing_with_the_mouse_is_classified(app):
    app.on_classify_drawing()
    assert "The canvas is empty: draw a digit first." in app.status.value
    app.on_mouse_move(10, 10)  # no button pressed: nothing is drawn
    app.on_mouse_down(100, 40)
    for y in range(40, 190, 15):
        app.on_mouse_move(104, y)
    app.on_mouse_up(104, 190)
    app.on_mouse_move(200, 200)
    assert len(app.strokes) == 1 and len(app.strokes[0]) == 11
    app.on_classify_drawing()
    assert_shows(app, app.classifier.predict(drawing_to_image(app.strokes)).label, "your drawing")
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
    classifier = Classifier(models.create("lenet5", in_channels=3).eval(),
                            Preprocess([str(i) for i in range(10)], (3, 32, 32), (0.5,) * 3, (0.25,) * 3))
    app = ClassifierApp(classifier)
    assert app.canvas is None
    app.show(torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8), "a photo")
    assert_shows(app, app.last.label, "a photo")


def test_checkpoint_is_found_from_the_notebooks_folder(tmp_path, monkeypatch, checkpoint):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "checkpoint.pt").write_bytes(checkpoint.read_bytes())
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert find_checkpoint("runs/checkpoint.pt") == Path("../runs/checkpoint.pt")
    assert find_checkpoint("runs/missing.pt") is None and find_checkpoint("") is None
    assert describe_checkpoint(find_checkpoint("runs/checkpoint.pt")) == "Loaded the trained model ../runs/checkpoint.pt."


def test_the_checkpoint_is_described_from_the_metrics_beside_it(checkpoint):
    note = describe_checkpoint(checkpoint)
    assert note.startswith(f"Loaded {checkpoint}: lenet5 trained for 4 epoch(s) on 1,438 images of scikit-learn")
    assert "on cpu (" in note and note.endswith("test accuracy 97.49% on 359 test images.")
