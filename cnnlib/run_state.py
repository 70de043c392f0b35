"""A run in progress: its state, set up from its settings, saved to and restored from its checkpoint,
and measured when it ends.

:class:`Run` gathers what the training loop (:mod:`cnnlib.train`) works on: the data on the
device, the model under its three views (``model``, whose weights are trained and saved;
``network``, the same network as a step calls it, compiled or wrapped for several processes;
``ema``, the average of its weights, where the run keeps one), its Lookahead's slow weights where it
has them, the optimiser, the random
generator, the schedule and the :class:`Clock` that judges the time budget.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from cnnlib import models
from cnnlib.arithmetic import count_macs
from cnnlib.checkpoint import load_model_state
from cnnlib.config import TrainConfig, resolve, resumable
from cnnlib.data import DataSplit, load_dataset
from cnnlib.device import device_description, init_distributed, precision, training_device, uses_channels_last
from cnnlib.errors import UserError
from cnnlib.optim import Lookahead, lr_factor, make_optimizer
from cnnlib.record import Normaliser, RunMetrics, RunRecord, TrainingState, read_checkpoint, write_checkpoint


@dataclass
class Clock:
    """The seconds of training a run has spent and its last step's, judged against its budget here only."""

    budget: float | None
    spent: float = 0.0
    step_seconds: float = 0.0

    def holds_another_step(self, seconds: float) -> bool:
        """Whether two more steps after ``seconds`` of training end within the budget (two: a step's
        time varies)."""
        return self.budget is None or seconds + 2 * self.step_seconds <= self.budget


@dataclass
class Run:
    """One run in progress. ``model`` is the network whose weights are trained and saved;
    ``network`` the same network as a step calls it (compiled, or wrapped for several processes);
    ``ema`` the average of its weights, where the run keeps one; ``lookahead`` its slow weights, where the
    run has them."""

    config: TrainConfig
    data: DataSplit
    device: torch.device
    world: int
    rank: int
    out: Path
    model: nn.Module
    network: nn.Module
    ema: torch.optim.swa_utils.AveragedModel | None
    lookahead: Lookahead | None
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    normalise: Normaliser
    channels_last: bool
    lr_at: Callable[[float], float]
    steps_per_epoch: int
    clock: Clock
    history: list[dict[str, Any]] = field(default_factory=list)
    epoch: int = 0
    steps: int = 0

    @property
    def ended(self) -> bool:
        """Whether the run is over: all its epochs done, or its time budget spent (part-way through the
        last epoch, or with no room for another step)."""
        return (
            self.epoch >= self.config.epochs
            or self.steps < self.epoch * self.steps_per_epoch
            or not self.clock.holds_another_step(self.clock.spent)
        )

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files (rank 0)."""
        return self.rank == 0

    @property
    def trained(self) -> nn.Module:
        """The network as the run leaves it: the weight average where there is one."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def checkpoint(self) -> Path:
        """Where the run's checkpoint lives."""
        return self.out / "checkpoint.pt"

    def record(self, metrics: RunMetrics | None = None) -> RunRecord:
        """The run's record as it stands."""
        return RunRecord(
            self.config, self.data.preprocess, self.data.name, self.data.source, list(self.history), metrics
        )


def set_up(config: TrainConfig, data: DataSplit | None = None) -> Run:
    """Everything a run needs before its first step: process group, device, data, the resolved
    settings, the model, its optimiser and weight average, the random generator and the schedule."""
    world, rank = init_distributed(config.device)
    device = training_device(config.device, world)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    data = prepare_data(config, device) if data is None else data.to(device)
    config = resolve(config, data.input_shape[0])
    if config.time_budget and world > 1:
        raise UserError(
            "A time budget needs one process (each would stop on its own clock): "
            "drop --time-budget, or run without torchrun."
        )
    model = build_model(config, data, device)
    if world > 1 and getattr(model, "whiten_bias_epochs", None) is not None:
        raise UserError(
            "whiten_bias_epochs freezes a parameter mid-run, which DistributedDataParallel does not allow: "
            "leave the option unset, or run without torchrun."
        )
    channels_last = uses_channels_last(config.channels_last, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    network = torch.compile(model) if config.compile else model
    if world > 1:
        network = nn.parallel.DistributedDataParallel(
            network, device_ids=[device.index] if device.type == "cuda" else None
        )
    ema = (
        torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(config.ema), use_buffers=True
        )
        if config.ema
        else None
    )
    steps_per_epoch = max(1, len(data.train_y) // world // max(1, config.batch_size // world))
    factor = lr_factor(
        config.schedule, config.warmup, config.epochs * steps_per_epoch, config.warmup_from, config.anneal_to
    )
    return Run(
        config,
        data,
        device,
        world,
        rank,
        Path(config.out) if config.out else default_out(config),
        model,
        network,
        ema,
        Lookahead(model) if config.lookahead else None,
        _optimizer(model, config),
        torch.Generator().manual_seed(config.seed),
        data.preprocess.normaliser(device),
        channels_last,
        lambda position: config.lr * factor(position),
        steps_per_epoch,
        Clock(config.time_budget),
    )


def restore(run: Run) -> None:
    """Continue ``run`` from its checkpoint: weights, optimiser, weight average, random generators,
    history, and where the run and its clock stood."""
    record, state = read_checkpoint(run.checkpoint, map_location=run.device)
    _check_resumable(record.config, run.config, run.checkpoint)
    load_model_state(run.model, state.model, run.checkpoint)
    run.optimizer.load_state_dict(state.optimizer)
    if run.ema is not None:
        run.ema.load_state_dict(state.ema)
    if run.lookahead is not None:
        run.lookahead.load_state_dict(state.lookahead)
    run.generator.set_state(state.generator)
    torch.set_rng_state(state.torch_rng)
    if run.device.type == "cuda" and state.cuda_rng is not None:
        torch.cuda.set_rng_state(state.cuda_rng)
    run.history, run.epoch, run.steps = record.history, state.epoch, state.steps
    run.clock.spent = sum(row["train_seconds"] for row in run.history)
    run.clock.step_seconds = state.step_seconds  # a budget that held no further step still holds none
    if run.writes:
        print(f"Resuming {run.checkpoint} after epoch {run.epoch} of {run.config.epochs}.")


def save(run: Run) -> None:
    """Checkpoint ``run`` as it stands, atomically."""
    state = TrainingState(
        run.model.state_dict(),
        run.optimizer.state_dict(),
        run.ema.state_dict() if run.ema is not None else None,
        run.epoch,
        run.steps,
        run.clock.step_seconds,
        run.generator.get_state(),
        torch.get_rng_state(),
        torch.cuda.get_rng_state(run.device) if run.device.type == "cuda" else None,
        run.lookahead.state_dict() if run.lookahead is not None else None,
    )
    write_checkpoint(run.checkpoint, run.record(), state)


def measure(run: Run) -> RunMetrics:
    """What ``run`` measured, from its history and its model."""
    history, data = pd.DataFrame(run.history), run.data
    last = run.history[-1]
    seconds = float(history["train_seconds"].sum())
    images = float((history["images_per_second"] * history["train_seconds"]).sum())
    return RunMetrics(
        epochs=int(last["epoch"]),
        epochs_trained=round(run.steps / run.steps_per_epoch, 2),
        train_seconds=seconds,
        train_images_per_second=images / seconds,
        final_train_loss=float(last["train_loss"]),
        final_train_accuracy=float(last["train_accuracy"]),
        params=sum(parameter.numel() for parameter in run.model.parameters()),
        macs=count_macs(run.model, data.input_shape),
        train_images=len(data.train_y),
        test_images=len(data.test_y),
        device=run.device.type,
        device_name=device_description(run.device),
        precision=precision(run.device, run.config.amp),
        cpu_threads=torch.get_num_threads(),
        world_size=run.world,
        checkpoint=str(run.checkpoint),
        test_accuracy=last.get("test_accuracy"),
        test_loss=last.get("test_loss"),
        validation_images=data.validation_images,
        val_accuracy=last.get("val_accuracy"),
        val_loss=last.get("val_loss"),
    )


def prepare_data(config: TrainConfig, device: torch.device) -> DataSplit:
    """Load the data set, hold out its validation split, and bring it to the model's input size, on
    ``device``."""
    # The splits and the subset never depend on config.seed: a seed changes the initial weights and
    # the order of the batches only, so runs that differ by seed see the same images.
    data = load_dataset(
        config.dataset,
        config.data_root,
        subset=config.subset,
        validation=config.validation,
        download=config.download,
    )
    side = models.spec(config.model).input_size_for(data.input_shape[1])
    if side != data.input_shape[1]:
        data = data.fitted(side)
    return data.to(device)


def build_model(config: TrainConfig, data: DataSplit, device: torch.device) -> nn.Module:
    """``config.model`` for ``data``'s classes and input shape, initialised from ``config.seed``, on
    ``device``."""
    torch.manual_seed(config.seed)
    model = models.create(
        config.model,
        num_classes=len(data.classes),
        in_channels=data.input_shape[0],
        input_size=data.input_shape[1:],
        **config.model_options,
    ).to(device)
    if hasattr(model, "init_from_data"):  # a first layer set from the training images (fastnet's whitening)
        model.init_from_data(data.train_x, data.normalise)
    return model


def default_out(config: TrainConfig) -> Path:
    """``runs/<model>-<data set>``: one folder per model and data set, so a rerun resumes it."""
    dataset = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(config.dataset)).name.split(".")[0])
    return Path("runs") / f"{config.model}-{dataset}"


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    return make_optimizer(
        model,
        config.optimizer,
        config.lr,
        config.momentum,
        config.nesterov,
        config.weight_decay,
        config.decay_norms_and_biases,
        config.norm_bias_lr_factor,
    )


def _check_resumable(saved: TrainConfig, config: TrainConfig, path: Path) -> None:
    before, now = dataclasses.asdict(saved), dataclasses.asdict(config)
    changed = [key for key, value in before.items() if key not in resumable() and now[key] != value]
    if changed:
        detail = ", ".join(f"{key}={before[key]!r} there, {now[key]!r} now" for key in changed)
        raise UserError(
            f"Cannot resume {path}: it was trained with other settings ({detail}); "
            "rerun with the same settings, or choose another --out."
        )
