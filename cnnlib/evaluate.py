"""Inference: a model's logits for uint8 images, its accuracy on a test split, a checkpoint's model and
test accuracy."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlib import models
from cnnlib.checkpoint import load_model_state
from cnnlib.config import TTA_MODES
from cnnlib.data import DataSplit, load_dataset
from cnnlib.device import autocast, select_device
from cnnlib.errors import UserError
from cnnlib.record import Preprocess, RunRecord, TrainingState, read_checkpoint


def default_eval_batch_size(device: torch.device) -> int:
    """The evaluation batch: 1024 on a GPU; 64 on a CPU, where a batch whose activations
    fit the caches ran 1.3-2.7× faster than one of 1024 (book/performance.md)."""
    return 1024 if device.type == "cuda" else 64


def tta_mode(tta: str | bool | None) -> str:
    """The test-time augmentation ``tta`` names, one of ``TTA_MODES``; ``True`` and ``False`` (and
    ``None``) are the ``flip`` and ``none`` they meant when the setting was a bool, so that the runs
    recorded then evaluate as they did."""
    if tta is None or isinstance(tta, bool):
        return "flip" if tta else "none"
    if tta not in TTA_MODES:
        raise UserError(f"Unknown tta {tta!r}: choose one of {', '.join(TTA_MODES)}.")
    return tta


def tta_views(x: torch.Tensor, tta: str | bool | None) -> list[tuple[float, torch.Tensor]]:
    """The views of the model input ``x`` (N, C, H, W) whose outputs test-time augmentation ``tta``
    averages, each with its weight: ``none``, ``x`` alone; ``flip``, ``x`` and its mirror image, 1/2
    each; ``multicrop`` (Jordan 2024, arXiv 2404.00498, §3.5), those two at 1/4 each and, at 1/8 each,
    both of them shifted by one pixel down and right and by one pixel up and left, the edge reflected
    into the pixel row and column uncovered: the expected output when each image is mirrored with
    probability 1/2 and shifted with probability 1/2, either way."""
    mode = tta_mode(tta)
    if mode == "none":
        return [(1.0, x)]
    if mode == "flip":
        return [(0.5, x), (0.5, x.flip(3))]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = [padded[:, :, :-2, :-2], padded[:, :, 2:, 2:]]  # content moved down-right, up-left
    channels_last = x.is_contiguous(memory_format=torch.channels_last)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    views = [(0.25, x), (0.25, x.flip(3))]
    for view in shifted:
        view = view.contiguous(memory_format=layout)
        views += [(0.125, view), (0.125, view.flip(3))]
    return views


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    preprocess: Preprocess,
    images: torch.Tensor,
    batch_size: int | None = None,
    tta: str | bool = "none",
    channels_last: bool = False,
    amp: bool = True,
) -> torch.Tensor:
    """Logits for uint8 ``images`` (on the model's device), prepared by ``preprocess``, in eval
    mode, batch by batch (of :func:`default_eval_batch_size` unless given), in the precision
    :func:`cnnlib.device.precision` gives for ``amp``; ``tta`` averages them over the views
    :func:`tta_views` makes of each image. The model's training mode is restored, even after an error."""
    batch_size = batch_size or default_eval_batch_size(images.device)
    tta = tta_mode(tta)
    was_training = model.training
    model.eval()
    normalise, chunks = preprocess.normaliser(images.device), []
    try:
        for batch in images.split(batch_size):
            x = normalise(batch, channels_last)
            with autocast(images.device, amp):
                logits = sum(weight * model(view).float() for weight, view in tta_views(x, tta))
            chunks.append(logits)
    finally:
        model.train(was_training)
    return torch.cat(chunks)


def evaluate(
    model: nn.Module,
    data: DataSplit,
    batch_size: int | None = None,
    tta: str | bool = "none",
    channels_last: bool = False,
    amp: bool = True,
    split: str = "test",
) -> dict[str, Any]:
    """Loss, accuracy and predictions of ``model`` on ``data``'s ``split``: ``test``, or ``val``
    (the validation split held out of the training images)."""
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', not {split!r}")
    images, labels = (data.test_x, data.test_y) if split == "test" else (data.val_x, data.val_y)
    if labels is None:
        raise UserError("This data set has no validation split: load it with validation=N (--validation N).")
    logits = predict_logits(model, data.preprocess, images, batch_size, tta, channels_last, amp)
    predictions = logits.argmax(1)
    return {
        "loss": F.cross_entropy(logits, labels).item(),
        "accuracy": (predictions == labels).sum().item() / len(labels),
        "predictions": predictions.cpu(),
    }


def model_from_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[nn.Module, RunRecord]:
    """The trained model a checkpoint holds (its EMA weights where training kept an EMA),
    in eval mode on ``device``, and the record of its run."""
    record, state = read_checkpoint(path, map_location=device)
    return model_from_state(record, state, path).to(device).eval(), record


def model_from_state(record: RunRecord, state: TrainingState, source: str | os.PathLike) -> nn.Module:
    """The network of ``record`` with the weights ``state`` evaluates (its EMA's where training kept one),
    for a checkpoint already read from ``source`` (:func:`cnnlib.record.read_checkpoint`)."""
    channels, height, width = record.preprocess.input_shape
    model = models.create(
        record.model,
        num_classes=len(record.preprocess.classes),
        in_channels=channels,
        input_size=(height, width),
        **record.model_options,
    )
    load_model_state(model, state.inference_weights(), source)
    return model


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    dataset: str | None = None,
    data_root: str | None = None,
    device: str = "auto",
    tta: str | bool | None = None,
) -> dict[str, Any]:
    """Test accuracy of a checkpoint on its data set (or ``dataset``), preprocessed as in training, with
    its run's test-time augmentation unless ``tta`` is given (:func:`tta_mode`: a run's bool still counts)."""
    target = select_device(device)
    model, record = model_from_checkpoint(checkpoint, target)
    config, preprocess = record.config, record.preprocess
    channels, side = preprocess.input_shape[0], preprocess.input_shape[1]
    data = load_dataset(dataset or config.dataset, data_root or config.data_root)
    data = dataclasses.replace(data.fitted(side, channels), preprocess=preprocess)
    if tuple(data.classes) != preprocess.classes:
        raise UserError(
            f"{checkpoint} was trained on classes {list(preprocess.classes)} but {data.name} has "
            f"{data.classes}: evaluate it on a data set with the same classes."
        )
    result = evaluate(
        model, data.to(target), tta=config.tta if tta is None else tta, amp=config.amp is not False
    )
    return {
        "checkpoint": str(checkpoint),
        "model": record.model,
        "dataset": data.name,
        "dataset_source": data.source,
        "test_accuracy": result["accuracy"],
        "test_loss": result["loss"],
        "test_images": int(len(data.test_y)),
        "epochs": record.epochs,
        "device": target.type,
    }
