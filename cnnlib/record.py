"""The record of a run: what a checkpoint and ``metrics.json`` hold, written and read here only.

A :class:`RunRecord` holds the run's settings (a :class:`~cnnlib.config.TrainConfig`), how an
image becomes the model's input (:class:`Preprocess`), the data set it saw, one history row per
finished epoch, its :class:`RunMetrics` (once it ends) and the versions it ran with. A checkpoint
stores it beside the :class:`TrainingState` a run needs to continue; ``metrics.json`` stores it
as one flat JSON object, the keys a sweep's ``results.csv`` is made of. Every other module reads
these files through :func:`read_checkpoint` and :func:`read_metrics` and the attributes they
return. Checkpoints and ``metrics.json`` files written before this shape still load.

A run holds its output folder while it writes (:func:`hold_folder`), so that two runs never
write into one folder and silently keep one run's files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

import cnnlib
from cnnlib.checkpoint import atomic_write, load_checkpoint, save_checkpoint
from cnnlib.config import TrainConfig, config_from_dict
from cnnlib.errors import UserError


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

    def normaliser(self, device: torch.device | str) -> Normaliser:
        """The normalisation with its mean and std on ``device``, made once for many batches."""
        return Normaliser(
            torch.tensor(self.mean, dtype=torch.float32, device=device).view(-1, 1, 1),
            torch.tensor(self.std, dtype=torch.float32, device=device).view(-1, 1, 1),
        )

    def normalise(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """float32 ``(x / 255 − mean) / std`` per channel, on ``x_uint8``'s device."""
        return self.normaliser(x_uint8.device)(x_uint8)


@dataclass(frozen=True)
class Normaliser:
    """``(x / 255 − mean) / std`` with mean and std already on the device (:meth:`Preprocess.normaliser`)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __call__(self, x_uint8: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
        """float32 model input, channels-last where asked."""
        x = (x_uint8.float() / 255 - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@dataclass
class RunMetrics:
    """What a finished run measured. ``epochs_trained`` is fractional where the time budget ended
    the last epoch early; ``test_accuracy`` is ``None`` for a run that never looked at the test set
    (``final_test=False``), the ``val_`` metrics ``None`` for one without a validation split."""

    epochs: int
    epochs_trained: float
    train_seconds: float
    train_images_per_second: float
    final_train_loss: float
    final_train_accuracy: float
    params: int
    macs: int
    train_images: int
    test_images: int
    device: str
    device_name: str
    precision: str
    cpu_threads: int
    world_size: int
    checkpoint: str
    test_accuracy: float | None = None
    test_loss: float | None = None
    validation_images: int = 0
    val_accuracy: float | None = None
    val_loss: float | None = None

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> RunMetrics:
        """The metrics of a ``metrics.json`` object; one written before ``epochs_trained`` was
        recorded trained whole epochs."""
        known = {entry.name for entry in dataclasses.fields(cls)}
        return cls(
            **{"epochs_trained": values.get("epochs")}
            | {key: value for key, value in values.items() if key in known and value is not None}
        )


def current_versions() -> dict[str, str]:
    """The versions of torch and cnnlib running now."""
    return {"torch": str(torch.__version__), "cnnlib": str(cnnlib.__version__)}


@dataclass
class RunRecord:
    """One run: its settings, its preprocessing, the data set it saw, one history row per
    finished epoch, its metrics (``None`` until the run ends) and the versions it ran with."""

    config: TrainConfig
    preprocess: Preprocess
    dataset: str
    dataset_source: str
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: RunMetrics | None = None
    versions: dict[str, str] = field(default_factory=current_versions)

    @property
    def model(self) -> str:
        """The model's registry name."""
        return self.config.model

    @property
    def model_options(self) -> dict[str, Any]:
        """The options its builder was given."""
        return dict(self.config.model_options)

    @property
    def epochs(self) -> int:
        """Epochs finished."""
        return len(self.history)

    def metrics_json(self) -> dict[str, Any]:
        """The flat object ``metrics.json`` holds: the metrics and what names the run."""
        config = asdict(self.config)
        return (asdict(self.metrics) if self.metrics else {}) | {
            "model": self.model,
            "dataset": self.dataset,
            "dataset_source": self.dataset_source,
            "input_shape": list(self.preprocess.input_shape),
            "config": config,
            "recipe": config["recipe"],
            "seed": config["seed"],
            "torch_version": self.versions.get("torch"),
            "cnnlib_version": self.versions.get("cnnlib"),
            "preprocess": {key: list(value) for key, value in asdict(self.preprocess).items()},
        }

    def write_metrics(self, path: str | os.PathLike) -> Path:
        """Write :meth:`metrics_json` to ``path``, atomically; never a NaN, which JSON does not have."""
        return atomic_write(
            path, (json.dumps(self.metrics_json(), indent=2, allow_nan=False) + "\n").encode()
        )

    def write_history(self, path: str | os.PathLike) -> Path:
        """Write the history as CSV to ``path``, atomically (an epoch without a value leaves its cell
        empty)."""
        return atomic_write(path, pd.DataFrame(self.history).to_csv(index=False).encode())


@dataclass
class TrainingState:
    """The tensors a run needs to continue exactly: the weights, the optimiser's and the weight
    average's state (``ema``; or ``lookahead``'s slow weights), the random generators, and where the
    run stood (epochs and steps done, and the seconds of the last step, by which the time budget is
    judged)."""

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None
    ema: dict[str, torch.Tensor] | None
    epoch: int
    steps: int
    step_seconds: float
    generator: torch.Tensor | None
    torch_rng: torch.Tensor | None
    cuda_rng: torch.Tensor | None = None
    lookahead: dict[str, torch.Tensor] | None = None

    def inference_weights(self) -> dict[str, torch.Tensor]:
        """The weights to predict with: the weight average's where the run kept one."""
        if self.ema is None:
            return self.model
        return {
            key.removeprefix("module."): value for key, value in self.ema.items() if key.startswith("module.")
        }


def write_checkpoint(path: str | os.PathLike, record: RunRecord, state: TrainingState) -> Path:
    """Save ``record`` and ``state`` to ``path`` atomically, as plain values the safe loader reads."""
    preprocess = record.preprocess
    return save_checkpoint(
        path,
        {
            "config": asdict(record.config),
            "history": record.history,
            "versions": record.versions,
            "data": {
                "name": record.dataset,
                "classes": list(preprocess.classes),
                "mean": list(preprocess.mean),
                "std": list(preprocess.std),
                "input_shape": list(preprocess.input_shape),
                "source": record.dataset_source,
            },
            "model": state.model,
            "optimizer": state.optimizer,
            "ema": state.ema,
            "lookahead": state.lookahead,
            "epoch": state.epoch,
            "steps": state.steps,
            "step_seconds": state.step_seconds,
            "rng": {"generator": state.generator, "torch": state.torch_rng, "cuda": state.cuda_rng},
        },
    )


def read_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[RunRecord, TrainingState]:
    """The record and the training state a checkpoint holds (:func:`cnnlib.checkpoint.load_checkpoint`
    checks the file); a checkpoint without an optimiser's state (weights only) loads too."""
    saved = load_checkpoint(path, map_location)
    data, rng = saved["data"], saved.get("rng") or {}
    record = RunRecord(
        config_from_dict(saved["config"]),
        Preprocess(data["classes"], data["input_shape"], data["mean"], data["std"]),
        data["name"],
        data["source"],
        list(saved["history"]),
        versions=dict(saved.get("versions") or {}),
    )
    epoch = int(saved.get("epoch", len(record.history)))
    state = TrainingState(
        saved["model"],
        saved.get("optimizer"),
        saved.get("ema"),
        epoch,
        int(saved.get("steps", 0)),
        float(saved.get("step_seconds", 0.0)),
        rng.get("generator"),
        rng.get("torch"),
        rng.get("cuda"),
        saved.get("lookahead"),
    )
    return record, state


def read_metrics(path: str | os.PathLike) -> RunRecord:
    """The record of a ``metrics.json``. One written before the preprocessing was stored
    there has no classes, mean or std: its ``preprocess`` holds the input shape only."""
    path = Path(path)
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(
            f"Cannot read {path} ({type(error).__name__}): give the metrics.json a run wrote."
        ) from None
    if not isinstance(saved, dict) or "model" not in saved or "config" not in saved:
        raise UserError(f"{path} is not the metrics.json of a cnnlib run: give the one `cnnlib train` wrote.")
    stored = saved.get("preprocess") or {
        "classes": (),
        "input_shape": saved["input_shape"],
        "mean": (),
        "std": (),
    }
    metrics = {
        key: None if isinstance(value, float) and math.isnan(value) else value for key, value in saved.items()
    }
    return RunRecord(
        config_from_dict(saved["config"]),
        Preprocess(**stored),
        saved["dataset"],
        saved["dataset_source"],
        metrics=RunMetrics.from_json(metrics),
        versions={"torch": saved.get("torch_version"), "cnnlib": saved.get("cnnlib_version")},
    )


def saved_settings(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings and the model options a ``metrics.json`` recorded, as it saved them: a setting the run's
    cnnlib did not have yet is absent (where :func:`read_metrics` fills in its default)."""
    config = dict(json.loads(Path(path).read_text())["config"])
    return config, config.pop("model_options")


@contextlib.contextmanager
def hold_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold ``folder`` for one run while it writes there: a second run into the same folder stops
    with :class:`UserError` naming the holder, before it trains. The hold is a lock on
    ``folder/.lock`` that the system releases when the holding process ends, however it ends
    (``kill -9`` included), so a crashed run never leaves its folder locked."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / ".lock"
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise UserError(
                f"{folder} is being written by another run ({holder}): wait for it to finish, or "
                "choose another --out."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(
            f"process {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}"
        )
        handle.flush()
        try:
            yield folder
        finally:
            handle.seek(0)
            handle.truncate()


@dataclass(frozen=True)
class SeedSpread:
    """The test accuracies of one preset's final runs, one per seed (issue 36: a chapter reports the
    mean and the range of three seeds, each tested once). An accuracy is counted in test images, so that
    8,200 of 10,000 is 0.82 exactly, whatever float the run stored."""

    seeds: tuple[int, ...]
    accuracies: tuple[float, ...]

    @property
    def mean(self) -> float:
        """The mean test accuracy over the seeds."""
        return sum(self.accuracies) / len(self.accuracies)

    @property
    def low(self) -> float:
        """The lowest seed's test accuracy."""
        return min(self.accuracies)

    @property
    def high(self) -> float:
        """The highest seed's test accuracy."""
        return max(self.accuracies)

    def __str__(self) -> str:
        each = ", ".join(f"{seed}: {accuracy:.2%}" for seed, accuracy in zip(self.seeds, self.accuracies))
        return (
            f"test accuracy over {len(self.seeds)} seeds: mean {self.mean:.2%}, range "
            f"{self.low:.2%}–{self.high:.2%} (seed {each})"
        )


# The settings that say where and how a run ran, not what it trained: the seeds of one preset may differ in
# them (a final run resumes where it stopped; the page's own run downloads the data if it is missing).
RUN_CONTROLS = ("seed", "out", "data_root", "download", "resume", "stop_after", "progress")


def final_runs(results: str | os.PathLike, run: str) -> list[RunRecord]:
    """The final runs of one chapter network, by seed: ``<results>/<run>.json`` (seed 0, the run its page
    shows) and ``<results>/<run>/seed<N>.json`` (the seeds ``make finals`` adds)."""
    results = Path(results)
    paths = [results / f"{run}.json", *(results / run).glob("seed*.json")]
    records = [read_metrics(path) for path in paths if path.exists()]
    if not records:
        raise UserError(f"No final run of {run!r} in {results}: run `make chapters CHAPTERS={run}` first.")
    return sorted(records, key=lambda record: record.config.seed)


def seed_spread(records: list[RunRecord]) -> SeedSpread:
    """The test accuracies of ``records`` (runs of one preset that differ in their seed only) as a
    :class:`SeedSpread`. A run that never looked at the test set, or runs of different settings: one
    sentence."""
    untested = [record.config.seed for record in records if record.metrics.test_accuracy is None]
    if untested:
        raise UserError(f"The runs of seeds {untested} were never tested: give final runs (final_test=True).")
    settings = {
        json.dumps(asdict(record.config) | dict.fromkeys(RUN_CONTROLS), sort_keys=True) for record in records
    }
    if len(settings) > 1:
        raise UserError("These runs differ in more than their seed: give the final runs of one preset.")
    return SeedSpread(
        tuple(record.config.seed for record in records),
        tuple(
            round(record.metrics.test_accuracy * record.metrics.test_images) / record.metrics.test_images
            for record in records
        ),
    )
