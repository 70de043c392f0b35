"""Evaluation throughput against the batch size: why ``cnnlib.evaluate.default_eval_batch_size``
is 64 on a CPU.

For each model, the images per second of inference (eval mode, channels-last, no
gradients) on random 32×32 inputs at each batch size, the median of ``--repeats`` passes
over ``--images`` images. Example::

    python benchmarks/eval_batch.py --out results/benchmark-cpu-eval-batch.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from cnnlib import models
from cnnlib.device import device_description

# (name, input channels, model options): a LeNet, Table 1's ResNet-18 and the depth study's narrow one.
MODELS = (("lenet5", 1, {}), ("resnet18", 3, {}), ("resnet18", 3, {"width_mult": 0.25}))


@torch.no_grad()
def images_per_second(model: torch.nn.Module, channels: int, batch: int, images: int, repeats: int) -> float:
    """Median throughput of ``repeats`` passes over ``images`` images in batches of ``batch``."""
    x = torch.randn(batch, channels, 32, 32).contiguous(memory_format=torch.channels_last)
    model(x)  # warm-up: the first call picks the kernels
    samples = []
    for _ in range(repeats):
        start, seen = time.perf_counter(), 0
        while seen < images:
            model(x)
            seen += batch
        samples.append(seen / (time.perf_counter() - start))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 64, 128, 256, 1024])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    for name, channels, options in MODELS:
        model = models.create(name, 10, channels, 32, **options).eval().to(memory_format=torch.channels_last)
        label = name + "".join(f" {key}={value}" for key, value in options.items())
        for batch in args.batches:
            speed = images_per_second(model, channels, batch, args.images, args.repeats)
            rows.append({"model": label, "batch": batch, "images_per_second": round(speed)})
            print(f"{label:<24} batch {batch:>5}: {speed:>9,.0f} images/s", flush=True)
    report = {
        "device": device_description(torch.device("cpu")),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "images": args.images,
        "repeats": args.repeats,
        "results": rows,
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
