"""fp32 against bf16 autocast on this CPU: training speed per network, one epoch, and accuracy.

Three measurements, each its own section of the JSON report:

* **steps**: images per second of the training step (forward, backward, Nesterov SGD; batches
  already made and resident, channels-last, as cnnlib's loop runs) in fp32 and in bf16
  autocast, for each chapter's network at its ``cpu`` preset (:mod:`cnnlib.presets`: width
  and batch) on 32×32 colour images, and LeNet-5 on 32×32 grey images. The median of
  ``--repeats`` windows of ``--steps`` steps.
* **epoch**: one epoch of ``cnnlib.train.train`` over the whole CIFAR-10 training set
  (50,000 images) for ResNet-18 at ``width_mult=0.25``, with ``amp`` on and off: the
  speed-up a user of ``cnnlib train`` sees.
* **accuracy**: the same network trained ``--epochs`` epochs on ``--subset`` CIFAR-10
  images with seeds 0..``--seeds``-1, once per precision: is the bf16 run within the
  seed-to-seed spread of the fp32 runs?

bf16 is only used where the CPU computes it natively (``cnnlib.device.cpu_has_native_bf16``);
elsewhere the report says so and both columns are fp32. Example::

    python benchmarks/precision.py --out results/benchmark-cpu-precision.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import MainOutput, timed_steps, write_report  # noqa: E402

from cnnlib import models  # noqa: E402
from cnnlib.arithmetic import layer_table  # noqa: E402
from cnnlib.config import TrainConfig  # noqa: E402
from cnnlib.device import cpu_has_native_bf16, device_description  # noqa: E402
from cnnlib.presets import PRESETS, preset_config, preset_values  # noqa: E402
from cnnlib.record import RunRecord  # noqa: E402
from cnnlib.train import train  # noqa: E402

CPU = torch.device("cpu")
EPOCH_NETWORK = {"model": "resnet18", "model_options": {"width_mult": 0.25}}


def step_speeds(
    model_name: str, options: dict, batch_size: int, channels: int, steps: int, repeats: int
) -> dict[str, float | int]:
    """Training-step images per second in fp32 and bf16 for one network on 32×32 images, with its MACs."""
    torch.manual_seed(0)
    model = models.create(model_name, num_classes=10, in_channels=channels, input_size=32, **options)
    macs = layer_table(model, (channels, 32, 32)).attrs["total_macs"]
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x = torch.randn(batch_size, channels, 32, 32).contiguous(memory_format=torch.channels_last)
    batches = itertools.repeat((x, torch.randint(0, 10, (batch_size,))))
    speeds = {}
    for name, amp in (("fp32", False), ("bf16", True)):
        speeds[name] = statistics.median(
            timed_steps(MainOutput(model), optimizer, batches, CPU, amp, steps) for _ in range(repeats)
        )
    return {
        "macs": int(macs),
        "fp32_images_per_second": round(speeds["fp32"], 1),
        "bf16_images_per_second": round(speeds["bf16"], 1),
        "speedup": round(speeds["bf16"] / speeds["fp32"], 2),
    }


def preset_step_speeds(name: str, steps: int, repeats: int) -> dict:
    """``step_speeds`` of chapter network ``name`` at its ``cpu`` preset's width and batch (LeNet-5 on
    grey images, batch 128), with the network, its options and its batch."""
    grey = name == "lenet5"
    options = {} if grey else preset_config(name, "cpu").model_options
    batch = 128 if grey else preset_values(name, "cpu").get("batch_size", 128)
    speeds = step_speeds(name, options, batch, 1 if grey else 3, steps, repeats)
    return {"model": name, "options": options, "batch_size": batch, **speeds}


def run(
    model_options: dict, *, amp: bool, epochs: int, subset: int | None, seed: int, data_root: str | None
) -> RunRecord:
    """One ``cnnlib.train`` run of ResNet-18 at the epoch benchmark's width; its record."""
    config = TrainConfig(
        model=EPOCH_NETWORK["model"],
        dataset="cifar10",
        data_root=data_root,
        subset=subset,
        epochs=epochs,
        batch_size=256,
        lr=0.1,
        seed=seed,
        amp=amp,
        model_options=model_options,
        out=tempfile.mkdtemp(prefix="cnnlib-precision-"),
        progress=False,
    )
    return train(config).record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", nargs="*", default=[*PRESETS, "lenet5"], help="networks of the steps section"
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps per window")
    parser.add_argument(
        "--repeats", type=int, default=3, help="windows per figure (their median is reported)"
    )
    parser.add_argument(
        "--epoch-subset", type=int, default=None, help="training images of the epoch section (all)"
    )
    parser.add_argument("--subset", type=int, default=10_000, help="training images of the accuracy section")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of each run of the accuracy section")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per precision in the accuracy section")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default=None, help="JSON file for the report")
    args = parser.parse_args()

    report = {
        "device_name": device_description(CPU),
        "native_bf16": cpu_has_native_bf16(),
        "torch_version": torch.__version__,
        "steps": [],
        "epoch": {},
        "accuracy": [],
    }
    for name in args.models:
        row = preset_step_speeds(name, args.steps, args.repeats)
        print(json.dumps(row), flush=True)
        report["steps"].append(row)
    options = EPOCH_NETWORK["model_options"]
    for precision, amp in (("fp32", False), ("bf16", True)):
        metrics = run(
            options, amp=amp, epochs=1, subset=args.epoch_subset, seed=0, data_root=args.data_root
        ).metrics
        report["epoch"][precision] = {
            "train_seconds": round(metrics.train_seconds, 2),
            "train_images": metrics.train_images,
            "precision": metrics.precision,
        }
        print(precision, report["epoch"][precision], flush=True)
    report["epoch"]["speedup"] = round(
        report["epoch"]["fp32"]["train_seconds"] / report["epoch"]["bf16"]["train_seconds"], 2
    )
    report["epoch"] |= {"model": EPOCH_NETWORK["model"], "options": options}
    for seed, (precision, amp) in itertools.product(range(args.seeds), (("fp32", False), ("bf16", True))):
        record = run(
            options, amp=amp, epochs=args.epochs, subset=args.subset, seed=seed, data_root=args.data_root
        )
        metrics = record.metrics
        row = {
            "precision": metrics.precision,
            "seed": seed,
            "epochs": args.epochs,
            "train_images": metrics.train_images,
            "test_images": metrics.test_images,
            "test_accuracy": round(metrics.test_accuracy, 4),
            "train_seconds": round(metrics.train_seconds, 1),
        }
        print(json.dumps(row), flush=True)
        report["accuracy"].append(row)
    report["dataset_source"] = record.dataset_source
    write_report(report, args.out)


if __name__ == "__main__":
    main()
