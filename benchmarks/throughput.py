r"""Training throughput: cnnlib's loop against a plain DataLoader loop and the model-only limit.

Three measurements on the same model, data and batch size, in one run:

* **cnnlib**: ``cnnlib.train.train`` (data on the device as uint8, augmentation there);
  the images per second of its last epoch.
* **baseline**: the common tutorial loop, as a careful user would set it: torchvision's data
  set, ``ToTensor`` and ``Normalize`` (plus the same random crop), a ``DataLoader`` with
  4 workers and pinned memory on a GPU, and on a CPU whichever of 0 or 1 worker is faster;
  fp32.
* **model only**: the same optimiser steps on batches already made and resident on the
  device: the limit any input pipeline can reach.

Each figure is the median of ``--repeats`` measurements (epochs of cnnlib's loop, runs of
``--steps`` steps of the others), all of which are kept in the JSON. It prints the
speed-up over the baseline and the pipeline efficiency (cnnlib ÷ model only). Example::

    python benchmarks/throughput.py --model lenet5 --dataset mnist --batch-size 128 \
        --out results/benchmark-cpu.json
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import itertools
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision import transforms

from cnnlib import models
from cnnlib.augment import crop_padding
from cnnlib.config import TrainConfig, resolve
from cnnlib.data import cache_dir, data_root
from cnnlib.device import autocast, device_description, select_device, uses_channels_last
from cnnlib.optim import make_optimizer
from cnnlib.run_state import prepare_data
from cnnlib.train import train


def cnnlib_loop(config: TrainConfig) -> list[float]:
    """Images per second of each epoch of cnnlib's own loop but the first (warm-up)."""
    result = train(config)
    return result.history["images_per_second"].iloc[1:].tolist()


def _mnist_raw_folder(root: Path) -> Path:
    """torchvision's MNIST reads uncompressed IDX files: unpack the .gz files into a cache folder."""
    target = cache_dir() / "benchmark" / "MNIST" / "raw"
    target.mkdir(parents=True, exist_ok=True)
    for archive in (root / "MNIST" / "raw").glob("*.gz"):
        unpacked = target / archive.stem
        if not unpacked.exists():
            with gzip.open(archive) as source, open(unpacked, "wb") as destination:
                shutil.copyfileobj(source, destination)
    return target.parent.parent


def _cifar_folder(root: Path) -> Path:
    """The JPEG copy of CIFAR-10 unpacked as an image folder (torchvision's ImageFolder reads it)."""
    target = cache_dir() / "benchmark" / "cifar10-jpg"
    if not (target / "train").is_dir():
        with tempfile.TemporaryDirectory(dir=cache_dir()) as unpacked:
            shutil.unpack_archive(root / "cifar10-jpg.tar.gz", unpacked)
            shutil.move(str(Path(unpacked) / "cifar10-jpg"), target)
    return target / "train"


def baseline_dataset(config: TrainConfig, side: int, padding: int, mean, std) -> torch.utils.data.Dataset:
    """The data set a tutorial would build: PIL images, per-sample transforms, fp32 tensors."""
    per_sample = [transforms.Pad((side - 28) // 2)] if config.dataset == "mnist" and side > 28 else []
    per_sample += [
        transforms.RandomCrop(side, padding=padding),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ]
    pipeline = transforms.Compose(per_sample)
    root = data_root(config.data_root)
    if config.dataset == "mnist":
        return torchvision.datasets.MNIST(_mnist_raw_folder(root), train=True, transform=pipeline)
    if config.dataset == "cifar10":
        return torchvision.datasets.ImageFolder(_cifar_folder(root), transform=pipeline)
    raise SystemExit("the baseline is defined for --dataset mnist or cifar10")


def timed_steps(
    model: nn.Module, optimizer: torch.optim.Optimizer, batches, device: torch.device, amp: bool, limit: int
) -> float:
    """Images per second over ``limit`` optimiser steps on ``batches`` (after 5 warm-up steps)."""
    criterion = nn.CrossEntropyLoss()
    seen, started = 0, None
    for step, (x, y) in enumerate(batches):
        if step == 5:
            _synchronise(device)
            started, seen = time.perf_counter(), 0
        if step == limit + 5:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device, amp):
            loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(y)
    _synchronise(device)
    return seen / (time.perf_counter() - started)


class MainOutput(nn.Module):
    """A network whose training output is its main logits only: GoogLeNet also returns its
    auxiliary heads' logits, which are computed, and so timed, all the same."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = self.model(x)
        return output[0] if isinstance(output, tuple) else output


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument(
        "--width-mult",
        type=float,
        default=None,
        help="the model's width multiplier (default: the paper's width)",
    )
    parser.add_argument("--dataset", default="mnist", choices=("mnist", "cifar10"))
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--subset", type=int, default=None, help="train cnnlib's loop on N images only (quick runs)"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--steps", type=int, default=200, help="timed steps of the baseline and the model-only limit"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="measurements per figure (their median is reported)"
    )
    parser.add_argument("--out", default=None, help="JSON file for the figures")
    args = parser.parse_args()

    device = select_device(args.device)
    model_options = {} if args.width_mult is None else {"width_mult": args.width_mult}
    config = TrainConfig(
        model=args.model,
        model_options=model_options,
        dataset=args.dataset,
        data_root=args.data_root,
        subset=args.subset,
        batch_size=args.batch_size,
        epochs=args.repeats + 1,
        device=args.device,
        progress=False,
        out=tempfile.mkdtemp(prefix="cnnlib-bench-"),
    )
    data = prepare_data(config, device)
    config = resolve(config, data.input_shape[0])
    side, padding = data.input_shape[1], crop_padding(data)

    def fresh_model() -> tuple[nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = models.create(
            args.model,
            num_classes=len(data.classes),
            in_channels=data.input_shape[0],
            input_size=side,
            **model_options,
        ).to(device)
        return model, make_optimizer(
            model, config.optimizer, config.lr, config.momentum, config.nesterov, config.weight_decay
        )

    samples = {"cnnlib": cnnlib_loop(dataclasses.replace(config, data_root=args.data_root))}

    dataset = baseline_dataset(config, side, padding, data.mean, data.std)
    worker_choices = (4,) if device.type == "cuda" else (0, 1)
    baseline = {}
    for workers in worker_choices:
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=args.batch_size,
            shuffle=True,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            drop_last=True,
            persistent_workers=workers > 0,
        )
        model, optimizer = fresh_model()
        baseline[workers] = [
            timed_steps(model, optimizer, loader, device, amp=False, limit=args.steps)
            for _ in range(args.repeats)
        ]
    best_workers = max(baseline, key=lambda workers: statistics.median(baseline[workers]))
    samples["baseline"] = baseline[best_workers]

    model, optimizer = fresh_model()
    x = data.normalise(data.train_x[: args.batch_size])
    if uses_channels_last(config.channels_last, device):  # as cnnlib's loop runs
        model, x = (
            model.to(memory_format=torch.channels_last),
            x.contiguous(memory_format=torch.channels_last),
        )
    batches = itertools.repeat((x, data.train_y[: args.batch_size]))
    samples["model_only"] = [
        timed_steps(model, optimizer, batches, device, amp=config.amp, limit=args.steps)
        for _ in range(args.repeats)
    ]
    figures = {key: statistics.median(values) for key, values in samples.items()}

    report = {
        "model": args.model,
        "model_options": model_options,
        "dataset": args.dataset,
        "batch_size": args.batch_size,
        "device": device.type,
        "device_name": device_description(device),
        "torch_version": torch.__version__,
        "images_per_second": {key: round(value, 1) for key, value in figures.items()},
        "samples": {key: [round(value, 1) for value in values] for key, values in samples.items()},
        "baseline_workers": best_workers,
        "baseline_by_workers": {
            str(key): round(statistics.median(values), 1) for key, values in baseline.items()
        },
        "speedup_over_baseline": round(figures["cnnlib"] / figures["baseline"], 2),
        "pipeline_efficiency": round(figures["cnnlib"] / figures["model_only"], 3),
    }
    write_report(report, args.out)


def write_report(report: dict, out: str | None) -> None:
    """Print the report as JSON, and write it to ``out`` if given."""
    print(json.dumps(report, indent=2))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
