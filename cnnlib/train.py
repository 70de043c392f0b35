"""The training loop: short enough to read in one sitting, fast because the data sits on the device.

The whole data set is held as one uint8 tensor on the training device (as in Keller
Jordan's airbench and David Page's ResNet-9 trainer); each step takes a shuffled slice,
augments it there (random crop with padding, horizontal flip), normalises it, and runs
the model, in bf16 autocast and channels-last memory on a GPU. No DataLoader, no Python
work per image. The same code runs on CPU and GPU, and under ``torchrun`` on several
processes (each rank takes its shard of the shuffled index; rank 0 alone writes).

Everything a run needs to continue is checkpointed atomically after every epoch, so
``resume=True`` (``cnnlib train ... --resume``) continues an interrupted run exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

import cnnlib
from cnnlib import models
from cnnlib.checkpoint import load_checkpoint, load_model_state, save_checkpoint
from cnnlib.data import DataSplit, load_dataset
from cnnlib.errors import UserError
from cnnlib.recipes import BASE, recipe_for, recipe_values

OPTIMIZERS = ("sgd", "adam", "adamw", "nadam", "adagrad", "rmsprop")
SCHEDULES = ("none", "step", "cosine", "onecycle")
AUGMENTATIONS = ("auto", "none", "crop", "flip", "crop+flip")
DEVICES = ("auto", "cpu", "cuda", "mps")
LOSSES = ("cross_entropy", "mse", "hinge")

# Fields that may change between an interrupted run and its resumption.
_RESUMABLE_CHANGES = {"epochs", "out", "device", "resume", "stop_after", "progress", "compile", "data_root",
                      "eval_batch_size", "download"}


@dataclass
class TrainConfig:
    """One training run. Knobs left at ``None`` take the value of the recipe
    (:mod:`cnnlib.recipes`), named by ``recipe`` or chosen for the model and data set."""

    model: str = "lenet5"
    dataset: str = "digits"
    data_root: str | None = None
    download: bool = False
    subset: int | None = None
    seed: int = 0
    device: str = "auto"
    out: str | None = None
    recipe: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    loss: str = "cross_entropy"
    # Recipe knobs.
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    momentum: float | None = None
    nesterov: bool | None = None
    weight_decay: float | None = None
    schedule: str | None = None
    warmup: float | None = None
    label_smoothing: float | None = None
    augment: str | None = None
    grad_clip: float | None = None
    ema: float | None = None
    tta: bool | None = None
    # Engineering.
    decay_norms_and_biases: bool = False
    amp: bool = True
    channels_last: bool | None = None
    compile: bool = False
    eval_batch_size: int | None = None  # None: default_eval_batch_size(device)
    resume: bool = False
    stop_after: int | None = None
    progress: bool = True


@dataclass
class TrainResult:
    """What a run leaves: the trained model (eval mode), its data, history and metrics."""

    model: nn.Module
    data: DataSplit
    history: pd.DataFrame
    metrics: dict[str, Any]
    config: TrainConfig
    out: Path | None


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU."""
    if name not in DEVICES:
        raise UserError(f"Unknown device {name!r}: choose one of {', '.join(DEVICES)}.")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is visible: use --device auto or cpu.")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps was asked for but Apple's MPS backend is not available: use --device auto or cpu.")
    return torch.device(name)


def device_description(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name and the threads torch uses."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M) if cpuinfo.exists() else []
    return f"{names[0] if names else platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def resolve(config: TrainConfig, channels: int) -> TrainConfig:
    """Fill the knobs left unset from the recipe, and check every value."""
    recipe = config.recipe or recipe_for(config.model, config.dataset, channels)
    values = recipe_values(recipe)
    filled = {key: values[key] if getattr(config, key) is None else getattr(config, key) for key in BASE}
    resolved = dataclasses.replace(config, recipe=recipe, **filled)
    _validate(resolved)
    return resolved


def _validate(config: TrainConfig) -> None:
    choices = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "augment": AUGMENTATIONS, "loss": LOSSES}
    for key, allowed in choices.items():
        if getattr(config, key) not in allowed:
            raise UserError(f"Unknown {key} {getattr(config, key)!r}: choose one of {', '.join(allowed)}.")
    kinds = {"epochs": int, "batch_size": int, "seed": int, "eval_batch_size": int, "lr": float, "momentum": float,
             "weight_decay": float, "warmup": float, "label_smoothing": float, "grad_clip": float, "ema": float}
    for key, kind in kinds.items():
        value = getattr(config, key)
        if key == "eval_batch_size" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
            raise UserError(f"{key} must be {'a number' if kind is float else 'an integer'}, not {value!r}.")
    positive = {"epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr}
    if config.eval_batch_size is not None:
        positive["eval_batch_size"] = config.eval_batch_size
    for key, value in positive.items():
        if not value > 0:
            raise UserError(f"{key} must be positive, not {value}.")
    ranges = {"warmup": (config.warmup, 0, 1), "label_smoothing": (config.label_smoothing, 0, 1),
              "ema": (config.ema, 0, 1), "momentum": (config.momentum, 0, 1)}
    for key, (value, low, high) in ranges.items():
        if not low <= value < high:
            raise UserError(f"{key} must lie in [{low}, {high}), not {value}.")
    if config.weight_decay < 0 or config.grad_clip < 0:
        raise UserError("weight_decay and grad_clip must be zero or positive.")
    if config.loss == "hinge" and config.label_smoothing:
        raise UserError("Label smoothing has no meaning for the hinge loss: set --label-smoothing 0.")
    if config.stop_after is not None and config.stop_after < 1:
        raise UserError(f"stop_after must be at least 1, not {config.stop_after}.")


# ----------------------------------------------------------------------------- augmentation


def augmentation_for(config: TrainConfig, data: DataSplit) -> str:
    """The augmentation actually used: ``auto`` shifts digits and shifts and flips colour
    images (natural images are left–right symmetric, digits are not)."""
    if config.augment != "auto":
        return config.augment
    if data.name == "digits":
        return "none"
    return "crop+flip" if data.input_shape[0] == 3 else "crop"


def crop_padding(data: DataSplit) -> int:
    """Random-crop padding: 4 pixels at 32×32 for colour images (the common CIFAR-10
    practice), 2 for greyscale digits at 32×32; proportional for other sizes."""
    side = data.input_shape[1]
    return max(1, side // 8 if data.input_shape[0] == 3 else side // 16)


def augment(x: torch.Tensor, mode: str, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Random crops after zero padding and random horizontal flips, per image, on ``x``'s device (uint8 in, uint8 out)."""
    n, c, h, w = x.shape
    if "crop" in mode:
        # One gather from the flattened, zero-padded images: pixel (i, j) of image k comes from
        # (i + dy_k, j + dx_k) of its padded copy.
        height, width = h + 2 * padding, w + 2 * padding
        padded = F.pad(x, (padding,) * 4).view(n, c, height * width)
        dy, dx = torch.randint(0, 2 * padding + 1, (2, n, 1), generator=generator).to(x.device)
        grid = (torch.arange(h, device=x.device)[:, None] * width + torch.arange(w, device=x.device)).view(1, h * w)
        x = padded.gather(2, (grid + dy * width + dx).unsqueeze(1).expand(n, c, h * w)).view(n, c, h, w)
    if "flip" in mode:
        flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


# ----------------------------------------------------------------------------- optimisation


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser by name. Weight decay skips norms and biases (one-dimensional
    parameters) unless ``decay_norms_and_biases`` is set (Goyal et al. 2017, Sec. 5)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decayed = params if config.decay_norms_and_biases else [p for p in params if p.ndim > 1]
    exempt = [] if config.decay_norms_and_biases else [p for p in params if p.ndim <= 1]
    groups = [{"params": decayed, "weight_decay": config.weight_decay}, {"params": exempt, "weight_decay": 0.0}]
    lr, momentum = config.lr, config.momentum
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=config.nesterov and momentum > 0)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if config.optimizer == "nadam":
        return torch.optim.NAdam(groups, lr=lr)
    if config.optimizer == "adagrad":
        return torch.optim.Adagrad(groups, lr=lr)
    return torch.optim.RMSprop(groups, lr=lr, momentum=momentum)


def lr_factor(schedule: str, warmup: float, total_steps: int) -> Callable[[int], float]:
    """The learning-rate multiplier at each step: a linear warm-up over the first
    ``warmup`` fraction of the run, then constant (``none``), ×0.1 at 50 % and 75 %
    (``step``), a cosine to zero (``cosine``, Loshchilov & Hutter 2017), or a linear
    ramp to zero (``onecycle``, Smith & Topin 2019)."""
    warm = int(warmup * total_steps)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total_steps - warm)
        if schedule == "step":
            return 0.1 ** ((progress >= 0.5) + (progress >= 0.75))
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        if schedule == "onecycle":
            return max(0.0, 1 - progress)
        return 1.0

    return factor


class ProbabilityMSE(nn.Module):
    """The squared error between the softmax probabilities and the (smoothed) one-hot
    target, summed over classes: the Brier score (Brier 1950), a bounded alternative to
    cross-entropy."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        classes = logits.shape[1]
        one_hot = F.one_hot(target, classes).float() * (1 - self.label_smoothing) + self.label_smoothing / classes
        return (logits.float().softmax(1) - one_hot).pow(2).sum(1).mean()


def make_criterion(config: TrainConfig) -> nn.Module:
    """The training loss by name: softmax cross-entropy (with ``label_smoothing``, Szegedy
    et al. 2016, Sec. 7), ``mse`` (:class:`ProbabilityMSE`) or ``hinge``, the multi-class
    margin loss of Weston & Watkins 1999 (``nn.MultiMarginLoss``)."""
    if config.loss == "mse":
        return ProbabilityMSE(config.label_smoothing)
    if config.loss == "hinge":
        return nn.MultiMarginLoss()
    return nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)


def loss_and_logits(output: torch.Tensor | tuple, target: torch.Tensor, criterion: nn.Module,
                    aux_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss of a model's output; auxiliary heads (GoogLeNet, Szegedy et al. Sec. 5)
    add their losses times ``aux_weight``."""
    if isinstance(output, tuple):
        logits, *aux = output
        return criterion(logits, target) + aux_weight * sum(criterion(a, target) for a in aux), logits
    return criterion(output, target), output


# ----------------------------------------------------------------------------- evaluation


def default_eval_batch_size(device: torch.device) -> int:
    """The evaluation batch: 1024 on a GPU; 64 on a CPU, where a batch whose activations
    fit the caches ran 1.3-2.7× faster than one of 1024 (book/performance.md)."""
    return 1024 if device.type == "cuda" else 64


@torch.no_grad()
def predict_logits(model: nn.Module, data: DataSplit, images: torch.Tensor, batch_size: int | None = None,
                   tta: bool = False, channels_last: bool = False) -> torch.Tensor:
    """Logits for uint8 ``images`` (on the model's device), in eval mode, batch by
    batch (of :func:`default_eval_batch_size` unless given); ``tta`` averages them with
    those of the mirrored images."""
    batch_size = batch_size or default_eval_batch_size(images.device)
    was_training = model.training
    model.eval()
    chunks = []
    autocast = _autocast(images.device, enabled=True)
    for batch in images.split(batch_size):
        x = _prepare(data, batch, channels_last)
        with autocast:
            logits = model(x).float()
            if tta:
                logits = (logits + model(x.flip(3)).float()) / 2
        chunks.append(logits)
    model.train(was_training)
    return torch.cat(chunks)


def evaluate(model: nn.Module, data: DataSplit, batch_size: int | None = None, tta: bool = False,
             channels_last: bool = False) -> dict[str, Any]:
    """Test loss, accuracy and predictions of ``model`` on ``data``'s test split."""
    logits = predict_logits(model, data, data.test_x, batch_size, tta, channels_last)
    predictions = logits.argmax(1)
    return {
        "loss": F.cross_entropy(logits, data.test_y).item(),
        "accuracy": (predictions == data.test_y).float().mean().item(),
        "predictions": predictions.cpu(),
    }


def _prepare(data: DataSplit, x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    x = data.normalise(x)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _autocast(device: torch.device, enabled: bool):
    # bf16 needs no loss scaling; on the CPU autocast would only slow small networks.
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


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
    result = evaluate(model, data.to(target), tta=config["tta"] if tta is None else tta)
    return {"checkpoint": str(checkpoint), "model": config["model"], "dataset": data.name,
            "dataset_source": data.source, "test_accuracy": result["accuracy"], "test_loss": result["loss"],
            "test_images": int(len(data.test_y)), "epochs": state["epoch"], "device": target.type}


# ----------------------------------------------------------------------------- the run


def prepare_data(config: TrainConfig, device: torch.device) -> DataSplit:
    """Load the data set and bring it to the model's input size, on ``device``."""
    data = load_dataset(config.dataset, config.data_root, subset=config.subset, seed=config.seed,
                        download=config.download)
    side = models.spec(config.model).input_size_for(data.input_shape[1])
    if side != data.input_shape[1]:
        data = data.fitted(side)
    return data.to(device)


def uses_channels_last(config: TrainConfig, device: torch.device) -> bool:
    """Channels-last memory unless the config says otherwise: cuDNN's and oneDNN's fast
    convolution kernels read NHWC (measured in benchmarks/throughput.py); MPS keeps NCHW."""
    return config.channels_last if config.channels_last is not None else device.type in ("cuda", "cpu")


def build_model(config: TrainConfig, data: DataSplit, device: torch.device) -> nn.Module:
    """``config.model`` for ``data``'s classes and input shape, initialised from ``config.seed``, on ``device``."""
    torch.manual_seed(config.seed)
    return models.create(config.model, num_classes=len(data.classes), in_channels=data.input_shape[0],
                         input_size=data.input_shape[1:], **config.model_options).to(device)


def training_batch(data: DataSplit, index: torch.Tensor, mode: str, padding: int, generator: torch.Generator,
                   channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The augmented, normalised images and the labels of the training examples ``index``."""
    images = augment(data.train_x.index_select(0, index), mode, padding, generator)
    return _prepare(data, images, channels_last), data.train_y.index_select(0, index)


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
    out = Path(config.out) if config.out else default_out(config)
    model = build_model(config, data, device)
    channels_last = uses_channels_last(config, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config)
    per_rank_batch = max(1, config.batch_size // world)
    steps_per_epoch = max(1, len(data.train_y) // world // per_rank_batch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_factor(config.schedule, config.warmup, config.epochs * steps_per_epoch))
    ema = (torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(config.ema),
                                               use_buffers=True) if config.ema else None)
    generator = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, Any]] = []
    start_epoch = 0

    checkpoint_path = out / "checkpoint.pt"
    if config.resume and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path, map_location=device)
        _check_resumable(state["config"], config, checkpoint_path)
        load_model_state(model, state["model"], checkpoint_path)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        generator.set_state(state["rng"]["generator"])
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"])
        history, start_epoch = state["history"], state["epoch"]
        if main:
            print(f"Resuming {checkpoint_path} after epoch {start_epoch} of {config.epochs}.")

    trained = torch.compile(model) if config.compile else model
    if world > 1:
        trained = nn.parallel.DistributedDataParallel(trained, device_ids=[device.index] if device.type == "cuda" else None)
    criterion = make_criterion(config)
    aux_weight = getattr(model, "aux_weight", 0.0)
    mode, padding = augmentation_for(config, data), crop_padding(data)
    evaluated = ema.module if ema is not None else model
    last_epoch = config.epochs if config.stop_after is None else min(config.epochs, start_epoch + config.stop_after)

    for epoch in range(start_epoch, last_epoch):
        trained.train()
        started = time.perf_counter()
        order = torch.randperm(len(data.train_y), generator=generator).to(device)
        shard = order[rank::world][: steps_per_epoch * per_rank_batch]
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        first_bad = torch.full((), -1, device=device, dtype=torch.long)
        steps = tqdm(enumerate(shard.split(per_rank_batch)), total=steps_per_epoch, leave=False, mininterval=1,
                     desc=f"epoch {epoch + 1}/{config.epochs}", disable=not (config.progress and main))
        for step, index in steps:
            x, y = training_batch(data, index, mode, padding, generator, channels_last)
            with _autocast(device, config.amp):
                loss, logits = loss_and_logits(trained(x), y, criterion, aux_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            loss_sum += loss.detach().float()
            correct += (logits.argmax(1) == y).sum()
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), step, first_bad)
            if step % 50 == 49:
                _stop_if_diverged(first_bad, epoch, config, checkpoint_path)
                steps.set_postfix(loss=f"{loss_sum.item() / (step + 1):.4f}", refresh=False)
        _stop_if_diverged(first_bad, epoch, config, checkpoint_path)
        if world > 1:
            for total in (loss_sum, correct):
                dist.all_reduce(total)
        train_seconds = time.perf_counter() - started
        seen = steps_per_epoch * per_rank_batch * world
        row = {"epoch": epoch + 1, "train_loss": loss_sum.item() / (steps_per_epoch * world),
               "train_accuracy": correct.item() / seen, "lr": scheduler.get_last_lr()[0],
               "train_seconds": train_seconds, "images_per_second": seen / train_seconds}
        if main:
            result = evaluate(evaluated, data, config.eval_batch_size, config.tta, channels_last)
            row |= {"test_loss": result["loss"], "test_accuracy": result["accuracy"]}
            history.append(row)
            print(f"epoch {epoch + 1:>3}/{config.epochs}  train loss {row['train_loss']:.4f} "
                  f"acc {row['train_accuracy']:.4f}  test loss {row['test_loss']:.4f} acc {row['test_accuracy']:.4f}  "
                  f"{train_seconds:.1f} s", flush=True)
            save_checkpoint(checkpoint_path, _checkpoint_state(model, optimizer, scheduler, ema, generator, device,
                                                               epoch + 1, config, history, data))
        if world > 1:
            dist.barrier()

    history_frame = pd.DataFrame(history)
    metrics = _metrics(config, data, model, history_frame, device, world, out) if main and history else {}
    if main and history:
        out.mkdir(parents=True, exist_ok=True)
        history_frame.to_csv(out / "history.csv", index=False)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if world > 1:
        dist.destroy_process_group()
    evaluated.eval()
    return TrainResult(evaluated, data, history_frame, metrics, config, out)


def lr_range_test(config: TrainConfig, start: float = 1e-5, end: float = 10.0, steps: int = 100,
                  data: DataSplit | None = None, smoothing: float = 0.9, stop_factor: float = 4.0) -> pd.DataFrame:
    """The learning-rate range test of Smith 2017 ("Cyclical learning rates", Sec. 3.3):
    train a fresh model for ``steps`` mini-batches while the learning rate grows
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
    optimizer = make_optimizer(model, config)
    criterion, aux_weight = make_criterion(config), getattr(model, "aux_weight", 0.0)
    generator = torch.Generator().manual_seed(config.seed)
    mode, padding = augmentation_for(config, data), crop_padding(data)
    growth = (end / start) ** (1 / (steps - 1))
    rows, average, best = [], 0.0, math.inf
    for step in range(steps):
        lr = start * growth**step
        for group in optimizer.param_groups:
            group["lr"] = lr
        index = torch.randint(0, len(data.train_y), (config.batch_size,), generator=generator).to(device)
        x, y = training_batch(data, index, mode, padding, generator, False)
        loss, _ = loss_and_logits(model(x), y, criterion, aux_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = loss.item()
        average = smoothing * average + (1 - smoothing) * value
        smoothed = average / (1 - smoothing ** (step + 1))  # bias-corrected, as Adam's moments
        rows.append({"lr": lr, "loss": value, "smoothed_loss": smoothed})
        best = min(best, smoothed)
        if not math.isfinite(smoothed) or smoothed > stop_factor * best:
            break
    frame = pd.DataFrame(rows)
    frame.attrs["suggested_lr"] = float(frame["lr"][frame["smoothed_loss"].idxmin()] / 10)
    return frame


def _stop_if_diverged(first_bad: torch.Tensor, epoch: int, config: TrainConfig, checkpoint: Path) -> None:
    step = int(first_bad.item())
    if step >= 0:
        kept = (f"the last good checkpoint ({checkpoint}, after epoch {epoch}) is kept" if epoch
                else "no epoch finished, so no checkpoint was written")
        raise UserError(f"The loss became NaN or infinite at epoch {epoch + 1}, step {step + 1} (lr {config.lr}): "
                        f"lower the learning rate, e.g. --lr {config.lr / 10:g}; {kept}.")


def _check_resumable(saved: dict[str, Any], config: TrainConfig, path: Path) -> None:
    current = dataclasses.asdict(config)
    changed = [key for key, value in saved.items() if key not in _RESUMABLE_CHANGES and current.get(key) != value]
    if changed:
        detail = ", ".join(f"{key}={saved[key]!r} there, {current.get(key)!r} now" for key in changed)
        raise UserError(f"Cannot resume {path}: it was trained with other settings ({detail}); "
                        "rerun with the same settings, or choose another --out.")


def _checkpoint_state(model, optimizer, scheduler, ema, generator, device, epoch, config, history, data):
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "epoch": epoch,
        "rng": {"generator": generator.get_state(), "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
        "config": dataclasses.asdict(config),
        "history": history,
        "data": {"name": data.name, "classes": list(data.classes), "mean": list(data.mean), "std": list(data.std),
                 "input_shape": list(data.input_shape), "source": data.source},
    }


def _metrics(config, data, model, history, device, world, out) -> dict[str, Any]:
    from cnnlib.arithmetic import layer_table

    last = history.iloc[-1]
    train_seconds = float(history["train_seconds"].sum())
    images = float((history["images_per_second"] * history["train_seconds"]).sum())
    table = layer_table(model, data.input_shape)
    return {
        "model": config.model,
        "dataset": data.name,
        "dataset_source": data.source,
        "test_accuracy": float(last["test_accuracy"]),
        "test_loss": float(last["test_loss"]),
        "final_train_loss": float(last["train_loss"]),
        "final_train_accuracy": float(last["train_accuracy"]),
        "epochs": int(last["epoch"]),
        "train_seconds": train_seconds,
        "train_images_per_second": images / train_seconds,
        "params": int(table.attrs["total_params"]),
        "macs": int(table.attrs["total_macs"]),
        "input_shape": list(data.input_shape),
        "train_images": int(len(data.train_y)),
        "test_images": int(len(data.test_y)),
        "device": device.type,
        "device_name": device_description(device),
        "cpu_threads": torch.get_num_threads(),
        "world_size": world,
        "seed": config.seed,
        "torch_version": torch.__version__,
        "cnnlib_version": cnnlib.__version__,
        "recipe": config.recipe,
        "config": dataclasses.asdict(config),
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
