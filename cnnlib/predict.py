"""Prediction: a trained checkpoint applied to any image file, preprocessed as in training.

A checkpoint's record carries what preprocessing needs (:class:`cnnlib.record.Preprocess`:
class names, input shape, mean and std of the training images), so nothing is retyped. An image goes through
the same steps as a training image: decoded by :func:`cnnlib.data.read_image`, brought to
the model's channels and size by :func:`cnnlib.data.fit_images`, normalised with the
training statistics, and run through :func:`cnnlib.evaluate.predict_logits`.

Inverting
---------
MNIST digits are white strokes on a black background; a photo or scan of a dark digit on
white paper is the opposite, and a network trained on one polarity reads the other badly.
``invert="auto"`` inverts a greyscale image when the model is greyscale, its training images
were dark on average (mean below 0.5, as MNIST's 0.13), and the image's border is brighter than
its centre, i.e. a light background. ``invert=True`` / ``False`` force it. Inversion comes
before fitting, so that the padding a 28×28 image gets (zeros, black) matches the background.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from cnnlib.data import fit_images, read_image
from cnnlib.device import select_device
from cnnlib.errors import UserError
from cnnlib.evaluate import model_from_checkpoint, predict_logits
from cnnlib.record import Preprocess, RunRecord


@dataclass
class Prediction:
    """One classified image: the model's input as uint8 (C, H, W) after fitting (and
    inverting), the probabilities of every class, and the top ``k`` as (class, probability)."""

    source: str
    image: torch.Tensor
    probabilities: torch.Tensor
    top: list[tuple[str, float]]
    inverted: bool

    @property
    def label(self) -> str:
        """The most probable class."""
        return self.top[0][0]


@dataclass
class Classifier:
    """A trained model with the preprocessing of its checkpoint (and the record of its run,
    where it came from one)."""

    model: nn.Module
    preprocess: Preprocess
    checkpoint: str = ""
    record: RunRecord | None = None

    @property
    def classes(self) -> list[str]:
        """The class names, in the order of the model's outputs."""
        return list(self.preprocess.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the model's input."""
        return self.preprocess.input_shape

    @property
    def mean(self) -> tuple[float, ...]:
        """Per-channel mean of the training images (0–1 scale)."""
        return self.preprocess.mean

    @property
    def std(self) -> tuple[float, ...]:
        """Per-channel standard deviation of the training images (0–1 scale)."""
        return self.preprocess.std

    @property
    def device(self) -> torch.device:
        """Where the model's weights are."""
        return next(self.model.parameters()).device

    def should_invert(self, image: torch.Tensor) -> bool:
        """Whether ``invert="auto"`` inverts this uint8 (C, H, W) image (see the module docstring)."""
        if self.input_shape[0] != 1 or self.mean[0] >= 0.5:
            return False
        grey = image.float().mean(0)
        height, width = grey.shape
        ring = max(1, min(height, width) // 8)
        inside = torch.zeros(height, width, dtype=torch.bool)
        inside[ring : height - ring, ring : width - ring] = True
        centre = grey[height // 4 : height - height // 4, width // 4 : width - width // 4]
        return grey[~inside].mean().item() > centre.mean().item()

    def prepare(
        self, image: torch.Tensor, invert: str | bool = "auto", fit: str = "auto"
    ) -> tuple[torch.Tensor, bool]:
        """A uint8 (1 or 3, H, W) image brought to the model's input as training did, and
        whether it was inverted (``invert``: "auto", True or False)."""
        if invert not in ("auto", True, False):
            raise UserError(f"invert must be 'auto', True or False, not {invert!r}.")
        flip = self.should_invert(image) if invert == "auto" else invert
        if flip:
            image = 255 - image
        return fit_images(image.unsqueeze(0), self.input_shape[1], self.input_shape[0], fit)[0], flip

    def predict(
        self,
        image: torch.Tensor | str | os.PathLike,
        top_k: int = 5,
        invert: str | bool = "auto",
        fit: str = "auto",
    ) -> Prediction:
        """Classify a uint8 (C, H, W) image or an image file."""
        return self.predict_many([image], top_k, invert, fit)[0]

    def predict_many(
        self,
        images: list[torch.Tensor | str | os.PathLike],
        top_k: int = 5,
        invert: str | bool = "auto",
        fit: str = "auto",
    ) -> list[Prediction]:
        """Classify several images (uint8 tensors or files) in one batch."""
        if top_k < 1:
            raise UserError(f"top_k must be a positive number of classes, not {top_k}.")
        sources, prepared, flips = [], [], []
        for image in images:
            if isinstance(image, torch.Tensor):
                sources.append("image")
            else:
                sources.append(str(image))
                image = read_image(image, self.input_shape[0])
            fitted, flipped = self.prepare(image, invert, fit)
            prepared.append(fitted)
            flips.append(flipped)
        batch = torch.stack(prepared).to(self.device)
        # fp32 whatever the run trained in: a few images take no time, and the probabilities then
        # match the exported ONNX network's (cnnlib.export) to within 1e-4.
        probabilities = predict_logits(self.model, self.preprocess, batch, amp=False).softmax(1).cpu()
        k = min(top_k, len(self.classes))
        predictions = []
        for source, fitted, flipped, row in zip(sources, prepared, flips, probabilities):
            values, indices = row.topk(k)
            top = [(self.classes[index], value) for index, value in zip(indices.tolist(), values.tolist())]
            predictions.append(Prediction(source, fitted, row, top, flipped))
        return predictions


def load_classifier(checkpoint: str | os.PathLike, device: str = "cpu") -> Classifier:
    """The model of a ``cnnlib train`` checkpoint, ready to classify images."""
    model, record = model_from_checkpoint(checkpoint, select_device(device))
    return Classifier(model, record.preprocess, str(checkpoint), record)


def image_files(paths: list[str | os.PathLike]) -> list[Path]:
    """The files named, and every visible file below the folders named, sorted per folder.
    A path that does not exist raises :class:`UserError`."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(
                file
                for file in path.rglob("*")
                if file.is_file() and not any(part.startswith(".") for part in file.relative_to(path).parts)
            )
        elif path.exists():
            files.append(path)
        else:
            raise UserError(f"{path} does not exist: give image files or folders of images.")
    return files


def predict_files(
    classifier: Classifier,
    paths: list[str | os.PathLike],
    top_k: int = 5,
    invert: str | bool = "auto",
    fit: str = "auto",
    batch_size: int = 256,
) -> tuple[list[Prediction], list[tuple[str, str]]]:
    """Classify image files and folders of them; returns the predictions and, for every file
    that could not be read, its name and the reason. One bad file never stops the others."""
    predictions, failures = [], []
    readable = []
    for file in image_files(paths):
        try:
            readable.append((file, read_image(file, classifier.input_shape[0])))
        except UserError as error:
            failures.append((str(file), str(error)))
    for start in range(0, len(readable), batch_size):
        chunk = readable[start : start + batch_size]
        batch = classifier.predict_many([image for _, image in chunk], top_k, invert, fit)
        for (file, _), prediction in zip(chunk, batch):
            prediction.source = str(file)
            predictions.append(prediction)
    return predictions, failures


def predictions_frame(predictions: list[Prediction]) -> pd.DataFrame:
    """One row per image: its name, the top classes and probabilities, and whether it was inverted."""
    rows = []
    for prediction in predictions:
        row: dict[str, Any] = {"image": prediction.source}
        for rank, (label, probability) in enumerate(prediction.top, start=1):
            row[f"class_{rank}"] = label
            row[f"probability_{rank}"] = round(probability, 4)
        row["inverted"] = prediction.inverted
        rows.append(row)
    return pd.DataFrame(rows)
