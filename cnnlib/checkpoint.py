"""Checkpoints on disk: written atomically, loaded safely, weights checked before they are loaded.

A checkpoint is a plain dictionary of tensors, numbers, strings, lists and dicts, so that
``torch.load(weights_only=True)`` can read it without unpickling arbitrary code. What it holds
is written by :mod:`cnnlib.train` (the tensors a run needs to continue) and
:class:`cnnlib.record.RunRecord` (what the run was: model, preprocessing, settings, history).
"""

from __future__ import annotations

import io
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


def atomic_write(path: str | os.PathLike, data: bytes | memoryview) -> Path:
    """Write ``data`` to a temporary file in ``path``'s folder, then rename it to ``path``: a reader
    never sees half a file, and a failed write (a full disk, a folder gone read-only) leaves the
    previous file as it was and raises :class:`UserError` naming the file and the cause."""
    path = Path(path)
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        # mkstemp makes a file only its owner can read; give it the mode open() would: 0o666 less the umask.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(handle, 0o666 & ~umask)
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        cause = error.strerror or type(error).__name__
        kept = f"the previous {path.name} is kept" if path.exists() else f"{path.name} was not written"
        raise UserError(
            f"Could not write {path}: {cause}; {kept}. Free some space, or choose another folder (--out)."
        ) from error
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
    return path


def atomic_save(value: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to memory, then :func:`atomic_write`: torch's own file writer reports a full
    disk as an internal error, Python's as the ``OSError`` it is."""
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return atomic_write(path, buffer.getbuffer())


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` with the format's name and version to ``path``, atomically."""
    return atomic_save({"format": FORMAT, "version": VERSION, **state}, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a cnnlib checkpoint with ``weights_only=True``; a missing, corrupt, truncated
    or foreign file, or one holding objects the safe loader refuses, raises :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"Checkpoint {path} does not exist: train a model first (`cnnlib train ... --out DIR` writes "
            "DIR/checkpoint.pt)."
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        refused = _unsafe_globals(path)
        if refused:
            raise UserError(
                f"Checkpoint {path} refers to code ({', '.join(refused[:3])}) that torch's safe loader "
                "refuses to run, so it will not be loaded: give a checkpoint.pt written by `cnnlib train`."
            ) from None
        raise _corrupt(path, error) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as error:
        raise _corrupt(path, error) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path} is not a cnnlib checkpoint: give a checkpoint.pt written by `cnnlib train`.")
    if state.get("version", 0) > VERSION:
        raise UserError(
            f"Checkpoint {path} was written by a newer cnnlib (format {state['version']}): upgrade cnnlib "
            "to read it."
        )
    return state


def _unsafe_globals(path: Path) -> list[str]:
    """The classes and functions a checkpoint's pickle names that the safe loader does not allow,
    read without running them (none where the file is too damaged to read)."""
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # a damaged archive or pickle: the caller reports it as corrupt
        return []


def _corrupt(path: Path, error: Exception) -> UserError:
    return UserError(
        f"Checkpoint {path} is corrupt or truncated ({type(error).__name__}); delete it and train again, "
        "or point to another checkpoint."
    )


# A shipped checkpoint may store a weight matrix in int8 (cnnlib.export.strip_checkpoint): the integers under
# the weight's name and, under this suffix, one float32 scale per row; the weight is the integers times their
# row's scale.
INT8_SCALE = ".int8_scale"


def load_model_state(
    model: nn.Module, state_dict: dict[str, torch.Tensor], source: str | os.PathLike
) -> None:
    """Load weights into ``model`` (int8 matrices dequantised: :data:`INT8_SCALE`); a checkpoint made for
    another model or number of classes raises :class:`UserError` naming the first mismatch."""
    scales = {
        key.removesuffix(INT8_SCALE): value for key, value in state_dict.items() if key.endswith(INT8_SCALE)
    }
    state_dict = {
        key: tensor.float() * scales[key][:, None] if key in scales else tensor
        for key, tensor in state_dict.items()
        if not key.endswith(INT8_SCALE)
    }
    own = model.state_dict()
    missing = [key for key in own if key not in state_dict]
    unexpected = [key for key in state_dict if key not in own]
    if missing or unexpected:
        example = (missing or unexpected)[0]
        raise UserError(
            f"Checkpoint {source} does not fit this model ({'missing' if missing else 'unexpected'} "
            f"weight {example!r}): build the model the checkpoint was trained with, or train again."
        )
    for key, tensor in state_dict.items():
        if own[key].shape != tensor.shape:
            raise UserError(
                f"Checkpoint {source} does not fit this model: {key} has shape {tuple(tensor.shape)} "
                f"there and {tuple(own[key].shape)} here (another number of classes or channels?); use the "
                "same options as in training."
            )
    model.load_state_dict(state_dict)
