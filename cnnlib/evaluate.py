"""Inference: a model's logits for uint8 images, its accuracy on a test split, a checkpoint's model and test accuracy."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlib import models
from cnnlib.checkpoint import load_checkpoint, load_model_state
from cnnlib.data import DataSplit, load_dataset
from cnnlib.device import autocast, select_device
from cnnlib.errors import UserError
from cnnlib.record import Preprocess, RunRecord


def default_eval_batch_size(device: torch.device) -> int:
    """The evaluation batch: 1024 on a GPU; 64 on a CPU, where a batch whose activations
    fit the caches ran 1.3-2.7× faster than one of 1024 (book/performance.md)."""
    return 1024 if device.type == "cuda" else 64


@torch.no_grad()
def predict_logits(model: nn.Module, preprocess: Preprocess, images: torch.Tensor, batch_size: int | None = None,
                   tta: bool = False, channels_last: bool = False, amp: bool = True) -> torch.Tensor:
    """Logits for uint8 ``images`` (on the model's device), prepared by ``preprocess``, in eval
    mode, batch by batch (of :func:`default_eval_batch_size` unless given), in the precision
    :func:`cnnlib.device.precision` gives for ``amp``; ``tta`` averages them with those of
    the mirrored images. The model's training mode is restored, even after an error."""
    batch_size = batch_size or default_eval_batch_size(images.device)
    was_training = model.training
    model.eval()
    chunks = []
    try:
        for batch in images.split(batch_size):
            x = preprocess.model_input(batch, channels_last)
            with autocast(images.device, amp):
                logits = model(x).float()
                if tta:
                    logits = (logits + model(x.flip(3)).float()) / 2
            chunks.append(logits)
    finally:
        model.train(was_training)
    return torch.cat(chunks)


def evaluate(model: nn.Module, data: DataSplit, batch_size: int | None = None, tta: bool = False,
             channels_last: bool = False, amp: bool = True) -> dict[str, Any]:
    """Test loss, accuracy and predictions of ``model`` on ``data``'s test split."""
    logits = predict_logits(model, data.preprocess, data.test_x, batch_size, tta, channels_last, amp)
    predictions = logits.argmax(1)
    return {
        "loss": F.cross_entropy(logits, data.test_y).item(),
        "accuracy": (predictions == data.test_y).sum().item() / len(data.test_y),
        "predictions": predictions.cpu(),
    }


def model_from_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, RunRecord]:
    """The trained model a checkpoint holds (its EMA weights where training kept an EMA),
    in eval mode on ``device``, and the record of its run."""
    state = load_checkpoint(path, map_location=device)
    record = RunRecord.from_checkpoint(state)
    channels, height, width = record.preprocess.input_shape
    model = models.create(record.model, num_classes=len(record.preprocess.classes), in_channels=channels,
                          input_size=(height, width), **record.model_options)
    weights = state["model"]
    if state.get("ema") is not None:
        weights = {key.removeprefix("module."): value for key, value in state["ema"].items() if key.startswith("module.")}
    load_model_state(model, weights, path)
    return model.to(device).eval(), record


def evaluate_checkpoint(checkpoint: str | os.PathLike, dataset: str | None = None, data_root: str | None = None,
                        device: str = "auto", tta: bool | None = None) -> dict[str, Any]:
    """Test accuracy of a checkpoint on its data set (or ``dataset``), preprocessed as in training."""
    target = select_device(device)
    model, record = model_from_checkpoint(checkpoint, target)
    config, preprocess = record.config, record.preprocess
    channels, side = preprocess.input_shape[0], preprocess.input_shape[1]
    data = load_dataset(dataset or config["dataset"], data_root or config["data_root"])
    data = dataclasses.replace(data.fitted(side, channels), mean=preprocess.mean, std=preprocess.std)
    if tuple(data.classes) != preprocess.classes:
        raise UserError(f"{checkpoint} was trained on classes {list(preprocess.classes)} but {data.name} has "
                        f"{data.classes}: evaluate it on a data set with the same classes.")
    result = evaluate(model, data.to(target), tta=config["tta"] if tta is None else tta, amp=config.get("amp") is not False)
    return {"checkpoint": str(checkpoint), "model": record.model, "dataset": data.name,
            "dataset_source": data.source, "test_accuracy": result["accuracy"], "test_loss": result["loss"],
            "test_images": int(len(data.test_y)), "epochs": record.epochs, "device": target.type}
