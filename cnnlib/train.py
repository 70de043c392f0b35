"""The training loop: short enough to read in one sitting, fast because the data sits on the device.

The whole data set is held as one uint8 tensor on the training device (as in Keller
Jordan's airbench and David Page's ResNet-9 trainer); each step takes a shuffled slice,
augments it there (random crop with padding, horizontal flip), normalises it, and runs
the model, in bf16 autocast and channels-last memory on a GPU. No DataLoader, no Python
work per image. The same code runs on CPU and GPU, and under ``torchrun`` on several
processes (each rank takes its shard of the shuffled index; rank 0 alone writes).

Everything a run needs to continue is checkpointed atomically after every epoch, so
``resume=True`` (``cnnlib train ... --resume``) continues an interrupted run exactly.

``time_budget`` caps the seconds of training (evaluation aside) whatever the machine's speed: the
learning-rate schedule then runs on the clock as well as on the steps (its position is the larger of
the two fractions done), so that the one-cycle ramp still ends at zero when the budget is spent,
after ``epochs`` or earlier, part-way through an epoch. Such a run follows the clock, so it is
repeatable only as far as the machine's speed is.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from cnnlib import models
from cnnlib.arithmetic import layer_table
from cnnlib.augment import augmentation_for, crop_padding, training_batch
from cnnlib.checkpoint import load_checkpoint, load_model_state, save_checkpoint
from cnnlib.config import RESUMABLE, TrainConfig, resolve
from cnnlib.data import DataSplit, load_dataset
from cnnlib.device import autocast, device_description, precision, select_device, uses_channels_last
from cnnlib.errors import UserError
from cnnlib.evaluate import evaluate
from cnnlib.optim import lr_factor, loss_and_logits, make_criterion, make_optimizer, schedule_position
from cnnlib.record import RunRecord

@dataclass
class TrainResult:
    """What a run leaves: the trained model (eval mode), its data, history and metrics."""

    model: nn.Module
    data: DataSplit
    history: pd.DataFrame
    metrics: dict[str, Any]
    config: TrainConfig
    out: Path | None


# ----------------------------------------------------------------------------- the run


def prepare_data(config: TrainConfig, device: torch.device) -> DataSplit:
    """Load the data set and bring it to the model's input size, on ``device``."""
    # The split and the subset never depend on config.seed: a seed changes the initial
    # weights and the order of the batches only, so runs that differ by seed see the same images.
    data = load_dataset(config.dataset, config.data_root, subset=config.subset, download=config.download)
    side = models.spec(config.model).input_size_for(data.input_shape[1])
    if side != data.input_shape[1]:
        data = data.fitted(side)
    return data.to(device)


def build_model(config: TrainConfig, data: DataSplit, device: torch.device) -> nn.Module:
    """``config.model`` for ``data``'s classes and input shape, initialised from ``config.seed``, on ``device``."""
    torch.manual_seed(config.seed)
    return models.create(config.model, num_classes=len(data.classes), in_channels=data.input_shape[0],
                         input_size=data.input_shape[1:], **config.model_options).to(device)


def default_out(config: TrainConfig) -> Path:
    """``runs/<model>-<data set>``: one folder per model and data set, so a rerun resumes it."""
    dataset = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(config.dataset)).name.split(".")[0])
    return Path("runs") / f"{config.model}-{dataset}"


def train(config: TrainConfig, data: DataSplit | None = None) -> TrainResult:
    """Train ``config.model`` on ``config.dataset``; see the module docstring."""
    world, rank = _init_distributed(config)
    device = select_device(config.device) if world == 1 else _distributed_device(config)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    main = rank == 0
    data = prepare_data(config, device) if data is None else data.to(device)
    config = resolve(config, data.input_shape[0])
    if config.time_budget and world > 1:
        raise UserError("A time budget needs one process (each would stop on its own clock): "
                        "drop --time-budget, or run without torchrun.")
    out = Path(config.out) if config.out else default_out(config)
    model = build_model(config, data, device)
    channels_last = uses_channels_last(config.channels_last, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = _optimizer(model, config)
    per_rank_batch = max(1, config.batch_size // world)
    steps_per_epoch = max(1, len(data.train_y) // world // per_rank_batch)
    total_steps = config.epochs * steps_per_epoch
    factor = lr_factor(config.schedule, config.warmup, total_steps)
    ema = (torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(config.ema),
                                               use_buffers=True) if config.ema else None)
    generator = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, Any]] = []
    start_epoch, steps_done, step_seconds = 0, 0, 0.0

    checkpoint_path = out / "checkpoint.pt"
    if config.resume and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path, map_location=device)
        _check_resumable(state["config"], config, checkpoint_path)
        load_model_state(model, state["model"], checkpoint_path)
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        generator.set_state(state["rng"]["generator"])
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"])
        history, start_epoch = RunRecord.from_checkpoint(state).history, state["epoch"]
        steps_done = state.get("steps", start_epoch * steps_per_epoch)
        step_seconds = state.get("step_seconds", 0.0)  # so that a budget that held no further step still holds none
        if main:
            print(f"Resuming {checkpoint_path} after epoch {start_epoch} of {config.epochs}.")

    trained = torch.compile(model) if config.compile else model
    if world > 1:
        trained = nn.parallel.DistributedDataParallel(trained, device_ids=[device.index] if device.type == "cuda" else None)
    criterion = make_criterion(config.loss, config.label_smoothing)
    aux_weight = getattr(model, "aux_weight", 0.0)
    mode, padding = augmentation_for(config.augment, data), crop_padding(data, config.crop_padding)
    evaluated = ema.module if ema is not None else model
    last_epoch = config.epochs if config.stop_after is None else min(config.epochs, start_epoch + config.stop_after)

    spent = sum(row["train_seconds"] for row in history)  # seconds of training before this invocation
    for epoch in range(start_epoch, last_epoch):
        if steps_done < epoch * steps_per_epoch or _over_budget(spent, step_seconds, config.time_budget):
            break  # the budget ended the last epoch early, or holds no further step
        trained.train()
        started = time.perf_counter()
        order = torch.randperm(len(data.train_y), generator=generator).to(device)
        shard = order[rank::world][: steps_per_epoch * per_rank_batch]
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        first_bad = torch.full((), -1, device=device, dtype=torch.long)
        first_step, images = steps_done, 0
        steps = tqdm(enumerate(shard.split(per_rank_batch)), total=steps_per_epoch, leave=False, mininterval=1,
                     desc=f"epoch {epoch + 1}/{config.epochs}", disable=not (config.progress and main))
        before = started
        for step, index in steps:
            now = time.perf_counter()
            step_seconds, before = (now - before if step else step_seconds), now
            clock = spent + now - started
            if _over_budget(clock, step_seconds, config.time_budget):
                break
            position = schedule_position(steps_done, clock, total_steps, config.time_budget)
            _set_lr(optimizer, config.lr * factor(position))
            x, y = training_batch(data, index, mode, padding, generator, channels_last)
            loss, logits = _step(trained, model, x, y, criterion, aux_weight, optimizer, config, device)
            steps_done, images = steps_done + 1, images + len(index)
            if ema is not None:
                ema.update_parameters(model)
            loss_sum += loss.float()
            correct += (logits.argmax(1) == y).sum()
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), step, first_bad)
            if step % 50 == 49:
                _stop_if_diverged(first_bad, epoch, config, checkpoint_path)
                steps.set_postfix(loss=f"{loss_sum.item() / (step + 1):.4f}", refresh=False)
        _stop_if_diverged(first_bad, epoch, config, checkpoint_path)
        if world > 1:
            for total in (loss_sum, correct):
                dist.all_reduce(total)
        train_seconds = time.perf_counter() - started
        spent += train_seconds
        stopped = steps_done < (epoch + 1) * steps_per_epoch  # by the time budget
        next_lr = config.lr * factor(schedule_position(steps_done, spent, total_steps, config.time_budget))
        row = {"epoch": epoch + 1, "train_loss": loss_sum.item() / max(1, (steps_done - first_step) * world),
               "train_accuracy": correct.item() / max(1, images * world), "lr": next_lr,
               "train_seconds": train_seconds, "images_per_second": images * world / train_seconds}
        if main:
            if (epoch + 1) % config.eval_every == 0 or epoch + 1 == last_epoch or stopped:
                result = evaluate(evaluated, data, config.eval_batch_size, config.tta, channels_last, config.amp)
                row |= {"test_loss": result["loss"], "test_accuracy": result["accuracy"]}
            history.append(row)
            tested = f"  test loss {row['test_loss']:.4f} acc {row['test_accuracy']:.4f}" if "test_loss" in row else ""
            budget = f" (the {config.time_budget:g} s budget ended it)" if stopped else ""
            print(f"epoch {epoch + 1:>3}/{config.epochs}  train loss {row['train_loss']:.4f} "
                  f"acc {row['train_accuracy']:.4f}{tested}  {train_seconds:.1f} s{budget}", flush=True)
            save_checkpoint(checkpoint_path, _checkpoint_state(model, optimizer, ema, generator, device, epoch + 1,
                                                               steps_done, step_seconds,
                                                               _record(config, data, history)))
        if world > 1:
            dist.barrier()

    history_frame = pd.DataFrame(history)
    history_frame.attrs["loss"] = config.loss  # plots.plot_history names the loss axis after it
    metrics = {}
    if main and history:
        record = _record(config, data, history, _metrics(config, data, model, history_frame, device, world, out))
        out.mkdir(parents=True, exist_ok=True)
        history_frame.to_csv(out / "history.csv", index=False)
        record.write_metrics(out / "metrics.json")
        metrics = record.metrics_json()
    if world > 1:
        dist.destroy_process_group()
    evaluated.eval()
    return TrainResult(evaluated, data, history_frame, metrics, config, out)


def lr_range_test(config: TrainConfig, start: float = 1e-5, end: float = 10.0, steps: int = 100,
                  data: DataSplit | None = None, smoothing: float = 0.9, stop_factor: float = 4.0) -> pd.DataFrame:
    """A learning-rate range test, in the common short variant of Smith 2017's ("Cyclical
    learning rates", Sec. 3.3, which raises the rate linearly over a few epochs and reads the
    accuracy): train a fresh model for ``steps`` mini-batches while the learning rate grows
    geometrically from ``start`` to ``end``, and record the loss at each. Stops once the
    smoothed loss exceeds ``stop_factor`` times its minimum. Returns the columns ``lr``,
    ``loss`` and ``smoothed_loss``; ``attrs["suggested_lr"]`` is a tenth of the learning
    rate of the lowest smoothed loss, a common reading of the curve."""
    if not 0 < start < end or steps < 2:
        raise UserError(f"The range test needs 0 < start < end and at least 2 steps, not {start}, {end}, {steps}.")
    device = select_device(config.device)
    data = prepare_data(config, device) if data is None else data.to(device)
    config = resolve(dataclasses.replace(config, lr=start, schedule="none"), data.input_shape[0])
    model = build_model(config, data, device)
    optimizer = _optimizer(model, config)
    criterion, aux_weight = make_criterion(config.loss, config.label_smoothing), getattr(model, "aux_weight", 0.0)
    generator = torch.Generator().manual_seed(config.seed)
    mode, padding = augmentation_for(config.augment, data), crop_padding(data, config.crop_padding)
    growth = (end / start) ** (1 / (steps - 1))
    rows, average, best = [], 0.0, math.inf
    for step in range(steps):
        lr = start * growth**step
        _set_lr(optimizer, lr)
        index = torch.randint(0, len(data.train_y), (config.batch_size,), generator=generator).to(device)
        x, y = training_batch(data, index, mode, padding, generator, False)
        value = _step(model, model, x, y, criterion, aux_weight, optimizer, config, device)[0].item()
        average = smoothing * average + (1 - smoothing) * value
        smoothed = average / (1 - smoothing ** (step + 1))  # bias-corrected, as Adam's moments
        rows.append({"lr": lr, "loss": value, "smoothed_loss": smoothed})
        best = min(best, smoothed)
        if not math.isfinite(smoothed) or smoothed > stop_factor * best:
            break
    frame = pd.DataFrame(rows)
    frame.attrs["suggested_lr"] = float(frame["lr"][frame["smoothed_loss"].idxmin()] / 10)
    return frame


def _step(network: nn.Module, model: nn.Module, x: torch.Tensor, y: torch.Tensor, criterion: nn.Module,
          aux_weight: float, optimizer: torch.optim.Optimizer, config: TrainConfig,
          device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step of ``network`` (``model``, compiled or wrapped for several processes)
    on a batch, in the run's precision: the detached loss and the logits."""
    with autocast(device, config.amp):
        loss, logits = loss_and_logits(network(x), y, criterion, aux_weight)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip:
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    return loss.detach(), logits


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _over_budget(seconds: float, step_seconds: float, budget: float | None) -> bool:
    """Whether two more steps would end past the budget (two: a step's time varies)."""
    return budget is not None and seconds + 2 * step_seconds > budget


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    return make_optimizer(model, config.optimizer, config.lr, config.momentum, config.nesterov, config.weight_decay,
                          config.decay_norms_and_biases)


def _stop_if_diverged(first_bad: torch.Tensor, epoch: int, config: TrainConfig, checkpoint: Path) -> None:
    step = int(first_bad.item())
    if step >= 0:
        kept = (f"the last good checkpoint ({checkpoint}, after epoch {epoch}) is kept" if epoch
                else "no epoch finished, so no checkpoint was written")
        raise UserError(f"The loss became NaN or infinite at epoch {epoch + 1}, step {step + 1} (lr {config.lr}): "
                        f"lower the learning rate, e.g. --lr {config.lr / 10:g}; {kept}.")


def _check_resumable(saved: dict[str, Any], config: TrainConfig, path: Path) -> None:
    current = dataclasses.asdict(config)
    changed = [key for key, value in saved.items() if key not in RESUMABLE and current.get(key) != value]
    if changed:
        detail = ", ".join(f"{key}={saved[key]!r} there, {current.get(key)!r} now" for key in changed)
        raise UserError(f"Cannot resume {path}: it was trained with other settings ({detail}); "
                        "rerun with the same settings, or choose another --out.")


def _record(config: TrainConfig, data: DataSplit, history: list[dict[str, Any]],
            metrics: dict[str, Any] | None = None) -> RunRecord:
    return RunRecord(config.model, dict(config.model_options), data.preprocess, data.name, data.source,
                     dataclasses.asdict(config), list(history), metrics or {})


def _checkpoint_state(model, optimizer, ema, generator, device, epoch, steps, step_seconds,
                      record: RunRecord) -> dict[str, Any]:
    return record.checkpoint_entries() | {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "epoch": epoch,
        "steps": steps,
        "step_seconds": step_seconds,
        "rng": {"generator": generator.get_state(), "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
    }


def _metrics(config, data, model, history, device, world, out) -> dict[str, Any]:
    last = history.iloc[-1]
    train_seconds = float(history["train_seconds"].sum())
    images = float((history["images_per_second"] * history["train_seconds"]).sum())
    table = layer_table(model, data.input_shape)
    return {
        "test_accuracy": float(last["test_accuracy"]),
        "test_loss": float(last["test_loss"]),
        "final_train_loss": float(last["train_loss"]),
        "final_train_accuracy": float(last["train_accuracy"]),
        "epochs": int(last["epoch"]),
        "epochs_trained": round(images / len(data.train_y), 2),  # below "epochs" where the time budget ended one
        "train_seconds": train_seconds,
        "train_images_per_second": images / train_seconds,
        "params": int(table.attrs["total_params"]),
        "macs": int(table.attrs["total_macs"]),
        "train_images": int(len(data.train_y)),
        "test_images": int(len(data.test_y)),
        "device": device.type,
        "device_name": device_description(device),
        "precision": precision(device, config.amp),
        "cpu_threads": torch.get_num_threads(),
        "world_size": world,
        "checkpoint": str(out / "checkpoint.pt"),
    }


# ----------------------------------------------------------------------------- several processes


def _init_distributed(config: TrainConfig) -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and config.device != "cpu" else "gloo"
        dist.init_process_group(backend)
    return world, int(os.environ.get("RANK", "0"))


def _distributed_device(config: TrainConfig) -> torch.device:
    if dist.get_backend() == "nccl":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")
