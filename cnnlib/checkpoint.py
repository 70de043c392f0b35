"""Checkpoints on disk: written atomically, loaded safely, weights checked before they are loaded.

A checkpoint is a plain dictionary of tensors, numbers, strings, lists and dicts, so that
``torch.load(weights_only=True)`` can read it without unpickling arbitrary code. What it holds
is written by :mod:`cnnlib.train` (the tensors a run needs to continue) and
:class:`cnnlib.record.RunRecord` (what the run was: model, preprocessing, settings, history).
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlib.errors import UserError

FORMAT = "cnnlib-checkpoint"
VERSION = 1


def atomic_save(value: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in ``path``'s folder, then a rename: a reader never
    sees half a file, and an interrupted save leaves the previous file as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(value, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` with the format's name and version to ``path``, atomically."""
    return atomic_save({"format": FORMAT, "version": VERSION, **state}, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a cnnlib checkpoint with ``weights_only=True``; a missing, corrupt, truncated
    or foreign file, or one holding objects the safe loader refuses, raises :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Checkpoint {path} does not exist: train a model first (`cnnlib train ... --out DIR` writes DIR/checkpoint.pt).")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        # The safe loader names the class or function it refused; other unpickling errors are damage.
        if re.search(r"Unsupported global|unrecognized function", str(error)):
            raise UserError(
                f"Checkpoint {path} holds objects other than tensors and plain values (code torch's safe loader "
                "refuses to run), so it will not be loaded: give a checkpoint.pt written by `cnnlib train`."
            ) from None
        raise _corrupt(path, error) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as error:
        raise _corrupt(path, error) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path} is not a cnnlib checkpoint: give a checkpoint.pt written by `cnnlib train`.")
    if state.get("version", 0) > VERSION:
        raise UserError(f"Checkpoint {path} was written by a newer cnnlib (format {state['version']}): upgrade cnnlib to read it.")
    return state


def _corrupt(path: Path, error: Exception) -> UserError:
    return UserError(f"Checkpoint {path} is corrupt or truncated ({type(error).__name__}); delete it and train again, "
                     "or point to another checkpoint.")


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
