"""Checkpoints: written atomically, loaded safely, checked before use.

A checkpoint is a plain dictionary of tensors, numbers, strings, lists and dicts, so that
``torch.load(weights_only=True)`` can read it without unpickling arbitrary code. It holds
everything a run needs to continue exactly where it stopped (model, optimiser, schedule,
EMA, epoch, random states, configuration, history) and everything a prediction needs to
preprocess an image as training did (class names, input shape, mean and std).
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlib.errors import UserError

FORMAT = "cnnlib-checkpoint"
VERSION = 1


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, then a
    rename, so an interrupted save never leaves a truncated checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, **state}
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a cnnlib checkpoint with ``weights_only=True``; a missing, corrupt, truncated
    or foreign file raises :class:`UserError` saying what to do."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Checkpoint {path} does not exist: train a model first (`cnnlib train ... --out DIR` writes DIR/checkpoint.pt).")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError, OSError) as error:
        raise UserError(
            f"Checkpoint {path} is corrupt or truncated ({type(error).__name__}); delete it and train again, "
            "or point to another checkpoint."
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path} is not a cnnlib checkpoint: give a checkpoint.pt written by `cnnlib train`.")
    if state.get("version", 0) > VERSION:
        raise UserError(f"Checkpoint {path} was written by a newer cnnlib (format {state['version']}): upgrade cnnlib to read it.")
    return state


def load_model_state(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str | os.PathLike) -> None:
    """Load weights into ``model``; a checkpoint made for another model or number of
    classes raises :class:`UserError` naming the first mismatch."""
    own = model.state_dict()
    missing = [key for key in own if key not in state_dict]
    unexpected = [key for key in state_dict if key not in own]
    if missing or unexpected:
        example = (missing or unexpected)[0]
        raise UserError(
            f"Checkpoint {source} does not fit this model ({'missing' if missing else 'unexpected'} weight {example!r}): "
            "build the model the checkpoint was trained with, or train again."
        )
    for key, tensor in state_dict.items():
        if own[key].shape != tensor.shape:
            raise UserError(
                f"Checkpoint {source} does not fit this model: {key} has shape {tuple(tensor.shape)} there and "
                f"{tuple(own[key].shape)} here (another number of classes or channels?); use the same options as in training."
            )
    model.load_state_dict(state_dict)


def model_from_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The trained model a checkpoint holds (its EMA weights where training kept an EMA),
    in eval mode on ``device``, and the checkpoint itself."""
    from cnnlib import models

    state = load_checkpoint(path, map_location=device)
    config, data = state["config"], state["data"]
    channels, height, width = data["input_shape"]
    model = models.create(config["model"], num_classes=len(data["classes"]), in_channels=channels,
                          input_size=(height, width), **config.get("model_options", {}))
    weights = state["model"]
    if state.get("ema") is not None:
        weights = {key.removeprefix("module."): value for key, value in state["ema"].items() if key.startswith("module.")}
    load_model_state(model, weights, path)
    return model.to(device).eval(), state
