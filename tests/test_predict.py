"""Prediction from a checkpoint (cnnlib.predict, `cnnlib predict`): the same preprocessing as
training, so its answers agree with `cnnlib evaluate` on the same held-out MNIST images; bad
files and foreign checkpoints are reported as one sentence."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from cnnlib import models
from cnnlib.data import load_dataset, read_image
from cnnlib.errors import UserError
from cnnlib.predict import Classifier, load_classifier, predict_files
from cnnlib.record import Preprocess

HELD_OUT = 200


@pytest.fixture(scope="module")
def mnist(data_root):
    return load_dataset("mnist", data_root)


@pytest.fixture(scope="module")
def checkpoint(data_root, tmp_path_factory) -> Path:
    """A LeNet-5 trained briefly (2 epochs on 2,000 MNIST training images)."""
    from cnnlib.config import TrainConfig
    from cnnlib.train import train

    out = tmp_path_factory.mktemp("lenet5-mnist")
    train(
        TrainConfig(
            model="lenet5",
            dataset="mnist",
            data_root=str(data_root),
            subset=2000,
            epochs=2,
            optimizer="adam",
            lr=0.003,
            schedule="none",
            device="cpu",
            out=str(out),
            progress=False,
        )
    )
    return out / "checkpoint.pt"


@pytest.fixture(scope="module")
def held_out(mnist, tmp_path_factory) -> Path:
    """The first MNIST test images as PNG files in test/<class>/, with one training image per
    class in train/<class>/ (a folder data set `cnnlib evaluate` reads)."""
    folder = tmp_path_factory.mktemp("held-out")
    for label in range(10):
        index = int((mnist.train_y == label).nonzero()[0])
        (folder / "train" / str(label)).mkdir(parents=True)
        Image.fromarray(mnist.train_x[index, 0].numpy()).save(folder / "train" / str(label) / f"{index}.png")
    for index in range(HELD_OUT):
        target = folder / "test" / str(int(mnist.test_y[index]))
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mnist.test_x[index, 0].numpy()).save(target / f"{index:05d}.png")
    return folder


def test_predict_agrees_with_evaluate_on_the_same_images(
    run_cli, monkeypatch, tmp_path, checkpoint, held_out
):
    monkeypatch.setenv("CNNLIB_CACHE", str(tmp_path / "cache"))
    status, _, err = run_cli(
        "evaluate",
        "--checkpoint",
        str(checkpoint),
        "--dataset",
        str(held_out),
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "evaluation.json"),
    )
    assert status == 0, err
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())
    assert evaluation["test_images"] == HELD_OUT

    status, out, err = run_cli(
        "predict", "--checkpoint", str(checkpoint), str(held_out / "test"), "--format", "csv", "--top-k", "3"
    )
    assert status == 0, err
    rows = pd.read_csv(io.StringIO(out), dtype={"class_1": str, "class_2": str, "class_3": str})
    assert len(rows) == HELD_OUT and not rows["inverted"].any()
    truth = rows["image"].map(lambda name: Path(name).parent.name)
    correct = int((rows["class_1"] == truth).sum())
    assert evaluation["test_accuracy"] == correct / HELD_OUT
    assert correct / HELD_OUT > 0.5, "a trained LeNet-5 reads most digits"
    probabilities = rows[["probability_1", "probability_2", "probability_3"]]
    assert (probabilities.diff(axis=1).iloc[:, 1:] <= 0).all().all()
    assert (probabilities.sum(axis=1) <= 1.0001).all()


def test_table_and_json_formats(run_cli, checkpoint, held_out):
    image = sorted((held_out / "test" / "7").iterdir())[0]
    status, out, _ = run_cli(
        "predict", "--checkpoint", str(checkpoint), str(image), "--format", "json", "--top-k", "10"
    )
    [row] = json.loads(out)
    assert status == 0 and row["image"] == str(image)
    assert sorted(row[f"class_{rank}"] for rank in range(1, 11)) == [str(digit) for digit in range(10)]
    assert sum(row[f"probability_{rank}"] for rank in range(1, 11)) == pytest.approx(1, abs=1e-3)
    status, out, _ = run_cli("predict", "--checkpoint", str(checkpoint), str(image))
    assert status == 0 and out.splitlines()[0].split() == ["image", "class_1", "probability_1", "inverted"]
    assert str(image) in out.splitlines()[1]


def test_unreadable_image_is_reported_and_the_others_go_on(run_cli, tmp_path, checkpoint, held_out):
    images = tmp_path / "mixed"
    images.mkdir()
    for name, source in (
        ("a.png", sorted((held_out / "test" / "1").iterdir())[0]),
        ("c.png", sorted((held_out / "test" / "2").iterdir())[0]),
    ):
        (images / name).write_bytes(source.read_bytes())
    (images / "b.png").write_bytes(b"this is not a PNG")
    status, out, err = run_cli("predict", "--checkpoint", str(checkpoint), str(images), "--format", "csv")
    rows = pd.read_csv(io.StringIO(out))
    assert status == 2
    assert [Path(name).name for name in rows["image"]] == ["a.png", "c.png"]
    assert f"{images / 'b.png'} is not an image PIL can read" in err
    assert err.splitlines()[-1] == (
        "cnnlib: error: 1 of 3 files could not be read as images (listed above); the others were classified."
    )


def test_foreign_and_missing_checkpoints_and_paths(run_cli, tmp_path, checkpoint, held_out):
    foreign = tmp_path / "weights.pt"
    torch.save(models.create("lenet5").state_dict(), foreign)
    image = str(sorted((held_out / "test" / "0").iterdir())[0])
    status, _, err = run_cli("predict", "--checkpoint", str(foreign), image)
    assert status == 2 and err == (
        f"cnnlib: error: {foreign} is not a cnnlib checkpoint: give a checkpoint.pt "
        "written by `cnnlib train`.\n"
    )
    status, _, err = run_cli("predict", "--checkpoint", str(checkpoint), str(tmp_path / "nowhere.png"))
    assert status == 2 and err == (
        f"cnnlib: error: {tmp_path / 'nowhere.png'} does not exist: give image files or folders of images.\n"
    )


def test_dark_digit_on_white_paper_is_inverted(checkpoint, mnist):
    classifier = load_classifier(checkpoint)
    digits = [mnist.test_x[index] for index in range(20)]
    plain = classifier.predict_many(digits)
    on_paper = classifier.predict_many([255 - digit for digit in digits])
    assert not any(prediction.inverted for prediction in plain)
    assert all(prediction.inverted for prediction in on_paper)
    assert [prediction.label for prediction in on_paper] == [prediction.label for prediction in plain]
    assert all(torch.equal(a.image, b.image) for a, b in zip(on_paper, plain))
    forced = classifier.predict(255 - digits[0], invert=False)
    assert not forced.inverted and torch.equal(forced.image[:, 2:30, 2:30], 255 - digits[0])


def test_colour_models_and_light_training_sets_never_auto_invert():
    light_page = torch.full((1, 28, 28), 250, dtype=torch.uint8)
    light_page[:, 8:20, 12:16] = 0
    grey_dark = Classifier(None, Preprocess(["a", "b"], (1, 32, 32), (0.13,), (0.3,)))
    assert grey_dark.should_invert(light_page)
    assert not Classifier(None, Preprocess(["a", "b"], (1, 32, 32), (0.8,), (0.3,))).should_invert(light_page)
    assert not Classifier(None, Preprocess(["a", "b"], (3, 32, 32), (0.4,) * 3, (0.2,) * 3)).should_invert(
        light_page.expand(3, -1, -1)
    )


def test_predict_files_keeps_going_and_names_bad_files(tmp_path, checkpoint, mnist):
    Image.fromarray(mnist.test_x[0, 0].numpy()).save(tmp_path / "digit.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (tmp_path / ".hidden.png").write_bytes(b"ignored")
    predictions, failures = predict_files(load_classifier(checkpoint), [tmp_path])
    assert [Path(prediction.source).name for prediction in predictions] == ["digit.png"]
    assert [Path(name).name for name, _ in failures] == ["broken.jpg"]


def test_read_image_decodes_as_training_does(tmp_path):
    colour = torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8)
    Image.fromarray(colour.permute(1, 2, 0).numpy()).save(tmp_path / "colour.png")
    assert torch.equal(read_image(tmp_path / "colour.png", 3), colour)
    grey = read_image(tmp_path / "colour.png", 1)
    expected = Image.fromarray(colour.permute(1, 2, 0).numpy()).convert("L")
    assert grey.shape == (1, 5, 7) and torch.equal(grey[0], torch.from_numpy(np.array(expected)))
    (tmp_path / "bad.png").write_text("no")
    with pytest.raises(
        UserError,
        match=r"bad\.png is not an image PIL can read \(UnidentifiedImageError\): "
        r"convert it to PNG or JPEG\.",
    ):
        read_image(tmp_path / "bad.png", 1)


def test_predict_logits_restores_the_training_mode_after_an_error():
    from cnnlib.evaluate import predict_logits
    from cnnlib.record import Preprocess

    class Failing(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("out of memory")

    model = Failing().train()
    with pytest.raises(RuntimeError, match="out of memory"):
        predict_logits(
            model, Preprocess(["a"], (1, 2, 2), (0.5,), (0.5,)), torch.zeros(1, 1, 2, 2, dtype=torch.uint8)
        )
    assert model.training
