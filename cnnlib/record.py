"""The record of a run: what a checkpoint and ``metrics.json`` hold, written and read here only.

A :class:`RunRecord` names the model and its options, how an image becomes the model's input
(:class:`Preprocess`), the run's settings as a plain dictionary, its history, its metrics and
the versions it ran with. A checkpoint stores it beside the tensors a run needs to continue
(written by :mod:`cnnlib.train`); ``metrics.json`` stores it as one flat JSON object, the keys
a sweep's ``results.csv`` is made of. Checkpoints of format 1 written before this module
existed hold the same keys and load unchanged.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

import cnnlib
from cnnlib.errors import UserError

# The keys of metrics.json that the record itself holds; every other key is a metric.
_RECORD_KEYS = ("model", "dataset", "dataset_source", "input_shape", "config", "recipe", "seed", "torch_version",
                "cnnlib_version", "preprocess")


@dataclass(frozen=True)
class Preprocess:
    """What a model needs to turn a uint8 image (C, H, W) into its input: the class names its
    outputs stand for, the input shape, and the per-channel mean and standard deviation (0–1
    scale) of the training images."""

    classes: tuple[str, ...]
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "input_shape", tuple(int(size) for size in self.input_shape))
        object.__setattr__(self, "mean", tuple(float(value) for value in self.mean))
        object.__setattr__(self, "std", tuple(float(value) for value in self.std))

    def normalise(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """float32 ``(x / 255 − mean) / std`` per channel, on ``x_uint8``'s device."""
        mean = torch.tensor(self.mean, dtype=torch.float32, device=x_uint8.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=x_uint8.device).view(-1, 1, 1)
        return (x_uint8.float() / 255 - mean) / std

    def model_input(self, x_uint8: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
        """Normalised images in the memory layout the model runs in (channels-last or not)."""
        x = self.normalise(x_uint8)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def current_versions() -> dict[str, str]:
    """The versions of torch and cnnlib running now."""
    return {"torch": str(torch.__version__), "cnnlib": str(cnnlib.__version__)}


@dataclass
class RunRecord:
    """One run: the model by name and options, its preprocessing, the data set it saw, its
    settings (``TrainConfig`` as a plain dict), one history row per finished epoch, its
    metrics (empty until the run ends) and the versions it ran with."""

    model: str
    model_options: dict[str, Any]
    preprocess: Preprocess
    dataset: str
    dataset_source: str
    config: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=current_versions)

    @property
    def epochs(self) -> int:
        """Epochs finished."""
        return len(self.history)

    def checkpoint_entries(self) -> dict[str, Any]:
        """The record as the entries of a checkpoint (tensors of the run are added beside them)."""
        preprocess = self.preprocess
        return {"config": self.config, "history": self.history, "versions": self.versions,
                "data": {"name": self.dataset, "classes": list(preprocess.classes), "mean": list(preprocess.mean),
                         "std": list(preprocess.std), "input_shape": list(preprocess.input_shape),
                         "source": self.dataset_source}}

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any]) -> RunRecord:
        """The record a loaded checkpoint holds (:func:`cnnlib.checkpoint.load_checkpoint`)."""
        config, data = state["config"], state["data"]
        preprocess = Preprocess(data["classes"], data["input_shape"], data["mean"], data["std"])
        return cls(config["model"], dict(config.get("model_options") or {}), preprocess, data["name"], data["source"],
                   config, list(state["history"]), versions=dict(state.get("versions") or {}))

    def metrics_json(self) -> dict[str, Any]:
        """The flat object ``metrics.json`` holds: the metrics and what names the run."""
        return self.metrics | {
            "model": self.model, "dataset": self.dataset, "dataset_source": self.dataset_source,
            "input_shape": list(self.preprocess.input_shape), "config": self.config,
            "recipe": self.config.get("recipe"), "seed": self.config.get("seed"),
            "torch_version": self.versions.get("torch"), "cnnlib_version": self.versions.get("cnnlib"),
            "preprocess": {key: list(value) for key, value in asdict(self.preprocess).items()}}

    def write_metrics(self, path: str | os.PathLike) -> Path:
        """Write :meth:`metrics_json` to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.metrics_json(), indent=2) + "\n")
        return path


def read_metrics(path: str | os.PathLike) -> RunRecord:
    """The record of a ``metrics.json``. One written before the preprocessing was stored
    there has no classes, mean or std: its ``preprocess`` holds the input shape only."""
    path = Path(path)
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"Cannot read {path} ({type(error).__name__}): give the metrics.json a run wrote.") from None
    if not isinstance(saved, dict) or "model" not in saved or "config" not in saved:
        raise UserError(f"{path} is not the metrics.json of a cnnlib run: give the one `cnnlib train` wrote.")
    stored = saved.get("preprocess") or {"classes": (), "input_shape": saved["input_shape"], "mean": (), "std": ()}
    config = saved["config"]
    return RunRecord(saved["model"], dict(config.get("model_options") or {}), Preprocess(**stored), saved["dataset"],
                     saved["dataset_source"], config,
                     metrics={key: value for key, value in saved.items() if key not in _RECORD_KEYS},
                     versions={"torch": saved.get("torch_version"), "cnnlib": saved.get("cnnlib_version")})
