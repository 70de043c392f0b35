"""Inference: a model's logits for uint8 images, its accuracy on a test split, a checkpoint's test accuracy."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlib.data import DataSplit, load_dataset
from cnnlib.device import autocast, select_device
from cnnlib.errors import UserError


def default_eval_batch_size(device: torch.device) -> int:
    """The evaluation batch: 1024 on a GPU; 64 on a CPU, where a batch whose activations
    fit the caches ran 1.3-2.7× faster than one of 1024 (book/performance.md)."""
    return 1024 if device.type == "cuda" else 64


@torch.no_grad()
def predict_logits(model: nn.Module, data: DataSplit, images: torch.Tensor, batch_size: int | None = None,
                   tta: bool = False, channels_last: bool = False, amp: bool = True) -> torch.Tensor:
    """Logits for uint8 ``images`` (on the model's device), in eval mode, batch by
    batch (of :func:`default_eval_batch_size` unless given), in the precision
    :func:`cnnlib.device.precision` gives for ``amp``; ``tta`` averages them with those of
    the mirrored images."""
    batch_size = batch_size or default_eval_batch_size(images.device)
    was_training = model.training
    model.eval()
    chunks = []
    for batch in images.split(batch_size):
        x = data.model_input(batch, channels_last)
        with autocast(images.device, amp):
            logits = model(x).float()
            if tta:
                logits = (logits + model(x.flip(3)).float()) / 2
        chunks.append(logits)
    model.train(was_training)
    return torch.cat(chunks)


def evaluate(model: nn.Module, data: DataSplit, batch_size: int | None = None, tta: bool = False,
             channels_last: bool = False, amp: bool = True) -> dict[str, Any]:
    """Test loss, accuracy and predictions of ``model`` on ``data``'s test split."""
    logits = predict_logits(model, data, data.test_x, batch_size, tta, channels_last, amp)
    predictions = logits.argmax(1)
    return {
        "loss": F.cross_entropy(logits, data.test_y).item(),
        "accuracy": (predictions == data.test_y).float().mean().item(),
        "predictions": predictions.cpu(),
    }


def evaluate_checkpoint(checkpoint: str | os.PathLike, dataset: str | None = None, data_root: str | None = None,
                        device: str = "auto", tta: bool | None = None) -> dict[str, Any]:
    """Test accuracy of a checkpoint on its data set (or ``dataset``), preprocessed as in training."""
    from cnnlib.checkpoint import model_from_checkpoint

    target = select_device(device)
    model, state = model_from_checkpoint(checkpoint, target)
    config, trained_on = state["config"], state["data"]
    channels, side = trained_on["input_shape"][0], trained_on["input_shape"][1]
    data = load_dataset(dataset or config["dataset"], data_root or config["data_root"])
    data = dataclasses.replace(data.fitted(side, channels), mean=tuple(trained_on["mean"]), std=tuple(trained_on["std"]))
    if data.classes != trained_on["classes"]:
        raise UserError(f"{checkpoint} was trained on classes {trained_on['classes']} but {data.name} has "
                        f"{data.classes}: evaluate it on a data set with the same classes.")
    result = evaluate(model, data.to(target), tta=config["tta"] if tta is None else tta, amp=config.get("amp") is not False)
    return {"checkpoint": str(checkpoint), "model": config["model"], "dataset": data.name,
            "dataset_source": data.source, "test_accuracy": result["accuracy"], "test_loss": result["loss"],
            "test_images": int(len(data.test_y)), "epochs": state["epoch"], "device": target.type}
