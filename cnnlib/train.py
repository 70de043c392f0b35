"""The training loop: short enough to read in one sitting, fast because the data sits on the device.

The whole data set is held as one uint8 tensor on the training device (as in Keller
Jordan's airbench and David Page's ResNet-9 trainer); each step takes a shuffled slice,
augments it there (random crop with padding, horizontal flip), normalises it, and runs
the model, in bf16 autocast and channels-last memory where the device has them. No DataLoader,
no Python work per image. The same code runs on CPU and GPU, and under ``torchrun`` on several
processes (each rank takes its shard of the shuffled index; rank 0 alone writes).

:func:`train` reads as its four parts: :func:`cnnlib.run_state.set_up` (data, model, optimiser),
:func:`cnnlib.run_state.restore` (continue from the checkpoint), :func:`train_epoch` (one pass, then
the validation split and a checkpoint) and :func:`finish` (the test set, once, and the record). The
validation split (``validation=N``) is evaluated during training; the test set only after the last
epoch, whatever ended it, and never with ``final_test=False``. Everything a run needs to continue is
checkpointed atomically after every epoch, so ``resume=True`` continues an interrupted run exactly.

``time_budget`` caps the seconds of training (evaluation aside) whatever the machine's speed: the
learning-rate schedule then runs on the clock as well as on the steps (its position is the larger of
the two fractions done), so that the one-cycle ramp still ends at zero when the budget is spent,
after ``epochs`` or earlier, part-way through an epoch. Such a run follows the clock, so it is
repeatable only as far as the machine's speed is.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from cnnlib.augment import augmentation_for, crop_padding, training_batch
from cnnlib.config import TrainConfig
from cnnlib.data import DataSplit
from cnnlib.device import autocast, leave_distributed
from cnnlib.errors import UserError
from cnnlib.evaluate import evaluate
from cnnlib.optim import Lookahead, loss_and_logits, make_criterion, schedule_position, set_lr
from cnnlib.record import RunMetrics, RunRecord, hold_folder
from cnnlib.run_state import Run, measure, restore, save, set_up


@dataclass
class TrainResult:
    """What a run leaves: the trained model (eval mode; the weight average where the run kept one),
    its data, its history, and its record (``None`` on the ranks that do not write)."""

    model: nn.Module
    data: DataSplit
    history: pd.DataFrame
    record: RunRecord | None
    out: Path

    @property
    def metrics(self) -> RunMetrics | None:
        """The run's metrics (:class:`~cnnlib.record.RunMetrics`)."""
        return self.record.metrics if self.record else None


# ----------------------------------------------------------------------------- the run


def train(config: TrainConfig, data: DataSplit | None = None) -> TrainResult:
    """Train ``config.model`` on ``config.dataset`` (or on ``data``); see the module docstring."""
    run = set_up(config, data)
    with hold_folder(run.out) if run.writes else contextlib.nullcontext():
        if run.config.resume and run.checkpoint.exists():
            restore(run)
        last = (
            run.config.epochs
            if run.config.stop_after is None
            else min(run.config.epochs, run.epoch + run.config.stop_after)
        )
        while run.epoch < last and not run.ended:
            train_epoch(run)
        return finish(run)


def train_epoch(run: Run) -> None:
    """One pass over the training split (or the part of it the budget holds), then the validation
    split every ``eval_every`` epochs, a history row and a checkpoint."""
    config, data, device, clock = run.config, run.data, run.device, run.clock
    run.network.train()
    if hasattr(run.model, "start_epoch"):
        run.model.start_epoch(run.epoch)  # a model's schedule of its own (fastnet's whitening bias)
    started = time.perf_counter()
    per_rank = max(1, config.batch_size // run.world)
    order = torch.randperm(len(data.train_y), generator=run.generator).to(device)
    shard = order[run.rank :: run.world][: run.steps_per_epoch * per_rank]
    criterion, aux_weight = (
        make_criterion(config.loss, config.label_smoothing),
        getattr(run.model, "aux_weight", 0.0),
    )
    mode, padding = augmentation_for(config.augment, data), crop_padding(data, config.crop_padding)
    loss_sum, correct = torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long)
    first_bad = torch.full((), -1, device=device, dtype=torch.long)
    first_step, images, before = run.steps, 0, started
    total_steps = config.epochs * run.steps_per_epoch
    batches = tqdm(
        enumerate(shard.split(per_rank)),
        total=run.steps_per_epoch,
        leave=False,
        mininterval=1,
        desc=f"epoch {run.epoch + 1}/{config.epochs}",
        disable=not (config.progress and run.writes),
    )
    for number, index in batches:
        now = time.perf_counter()
        clock.step_seconds, before = (now - before if number else clock.step_seconds), now
        seconds = clock.spent + now - started
        if not clock.holds_another_step(seconds):
            break
        position = schedule_position(run.steps, seconds, total_steps, config.time_budget)
        set_lr(run.optimizer, run.lr_at(position))
        x, y = training_batch(
            data,
            index,
            mode,
            padding,
            run.generator,
            run.normalise,
            run.channels_last,
            epoch=run.epoch,
            padding_mode=config.padding_mode,
        )
        loss, logits = step(run, x, y, criterion, aux_weight)
        run.steps, images = run.steps + 1, images + len(index) * run.world
        if run.lookahead is not None and run.steps % Lookahead.PERIOD == 0:
            run.lookahead.update(run.model, position / total_steps)
        loss_sum += loss.float()
        correct += (logits.argmax(1) == y).sum()
        first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), number, first_bad)
        if number % 50 == 49:
            _stop_if_diverged(first_bad, run)
            batches.set_postfix(loss=f"{loss_sum.item() / (number + 1):.4f}", refresh=False)
    _stop_if_diverged(first_bad, run)
    if run.world > 1:
        for total in (loss_sum, correct):
            torch.distributed.all_reduce(total)
    seconds = time.perf_counter() - started
    clock.spent += seconds
    run.epoch += 1
    steps = run.steps - first_step
    lr = run.lr_at(schedule_position(run.steps, clock.spent, total_steps, config.time_budget))
    if run.lookahead is not None and run.ended:
        run.lookahead.finish(run.model)  # the run ends on the slow weights (Jordan 2024 §3.7)
    row = {
        "epoch": run.epoch,
        "train_loss": loss_sum.item() / max(1, steps * run.world),
        "train_accuracy": correct.item() / max(1, images),
        "lr": lr,
        "train_seconds": seconds,
        "images_per_second": images / seconds,
    }
    if run.writes and data.val_y is not None and run.epoch % config.eval_every == 0:
        row |= _evaluated(run, "val")
    _end_epoch(run, row, stopped=run.steps < run.epoch * run.steps_per_epoch)


def finish(run: Run) -> TrainResult:
    """After the last epoch, whatever ended it: the validation split if that epoch skipped it, the
    test set once (unless ``final_test`` is off), then the checkpoint, ``history.csv`` and
    ``metrics.json``."""
    record = None
    ended = run.ended  # not paused by stop_after
    if run.writes and run.history:
        last = run.history[-1]
        added = {
            **(
                {}
                if "val_accuracy" in last or run.data.val_y is None or not ended
                else _evaluated(run, "val")
            ),
            **(
                _evaluated(run, "test")
                if run.config.final_test and ended and "test_accuracy" not in last
                else {}
            ),
        }
        if added:
            last |= added
            save(run)
        record = run.record(measure(run))
        record.write_history(run.out / "history.csv")
        record.write_metrics(run.out / "metrics.json")
        if "test_accuracy" in added:
            print(f"test accuracy {last['test_accuracy']:.4f} (loss {last['test_loss']:.4f}), evaluated once")
    if run.world > 1:
        torch.distributed.barrier()
    leave_distributed(run.world)
    history = pd.DataFrame(run.history)
    history.attrs |= {
        "loss": run.config.loss,
        "model": run.config.model,  # plots.plot_history's axis and title
        "model_options": dict(run.config.model_options),
    }
    return TrainResult(run.trained.eval(), run.data, history, record, run.out)


# --------------------------------------------------------------------------- the parts of a step and an epoch


def step(
    run: Run, x: torch.Tensor, y: torch.Tensor, criterion: nn.Module, aux_weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on a batch, in the run's precision: the detached loss and the logits."""
    with autocast(run.device, run.config.amp):
        loss, logits = loss_and_logits(run.network(x), y, criterion, aux_weight)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if run.config.grad_clip:
        nn.utils.clip_grad_norm_(run.model.parameters(), run.config.grad_clip)
    run.optimizer.step()
    if run.ema is not None:
        run.ema.update_parameters(run.model)
    return loss.detach(), logits


def _evaluated(run: Run, split: str) -> dict[str, float]:
    """``{split}_loss`` and ``{split}_accuracy`` of the trained network on ``split`` (``val`` or ``test``)."""
    result = evaluate(
        run.trained,
        run.data,
        run.config.eval_batch_size,
        run.config.tta,
        run.channels_last,
        run.config.amp,
        split=split,
    )
    return {f"{split}_loss": result["loss"], f"{split}_accuracy": result["accuracy"]}


def _end_epoch(run: Run, row: dict[str, Any], stopped: bool) -> None:
    """Record the epoch's row, print it, and checkpoint the run (rank 0), then wait for the other ranks."""
    if run.writes:
        run.history.append(row)
        validated = (
            f"  val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f}" if "val_loss" in row else ""
        )
        budget = f" (the {run.config.time_budget:g} s budget ended it)" if stopped else ""
        print(
            f"epoch {run.epoch:>3}/{run.config.epochs}  train loss {row['train_loss']:.4f} "
            f"acc {row['train_accuracy']:.4f}{validated}  {row['train_seconds']:.1f} s{budget}",
            flush=True,
        )
        save(run)
    if run.world > 1:
        torch.distributed.barrier()


def _stop_if_diverged(first_bad: torch.Tensor, run: Run) -> None:
    step = int(first_bad.item())
    if step >= 0:
        kept = (
            f"the last good checkpoint ({run.checkpoint}, after epoch {run.epoch}) is kept"
            if run.epoch
            else "no epoch finished, so no checkpoint was written"
        )
        lr = run.config.lr
        raise UserError(
            f"The loss became NaN or infinite at epoch {run.epoch + 1}, step {step + 1} (lr {lr}): "
            f"lower the learning rate, e.g. --lr {lr / 10:g}; {kept}."
        )
