"""The speed of light of this CPU, and how close each chapter's network comes to it (issue 42, point 5).

Two measurements in one run, on an idle machine:

* **matmul**: the rate of a square matrix multiply (``torch.matmul``, ``--side`` × ``--side``) in fp32 and in
  bf16, in GFLOP/s (2·n³ operations per product), and of the same product as a 1×1 convolution
  (1,024 channels in and out on 16 maps of 32×32, channels-last), which oneDNN computes, the library the
  networks' convolutions run on. On some CPUs the two differ by a factor of two (BLAS libraries tuned for
  one vendor's processors); the higher of the two is this machine's speed of light in that precision.
* **networks**: each chapter network's training step at its ``cpu`` preset (width and batch; 32×32 colour
  images, LeNet-5 on grey), fp32 and bf16, images per second (``precision.preset_step_speeds``), and the
  FLOP/s that makes: 6 operations per multiply–accumulate per image (2 for the forward pass, about 4 for
  the backward), as a fraction of the speed of light in the same precision.

A network whose layers are large matrix products (wide convolutions at small sides) comes closer to the
matmul rate than one made of depthwise convolutions and small layers, whose work is memory traffic rather
than arithmetic. Example::

    python benchmarks/speed_of_light.py --out results/benchmark-cpu-speed-of-light.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from precision import preset_step_speeds  # noqa: E402
from throughput import write_report  # noqa: E402

from cnnlib.device import cpu_has_native_bf16, device_description  # noqa: E402
from cnnlib.presets import PRESETS  # noqa: E402

CPU = torch.device("cpu")
FLOPS_PER_MAC_TRAINING = 6  # forward 2, backward about 4 (the gradients of the inputs and of the weights)


@torch.no_grad()
def median_gflops(compute: Callable[[], torch.Tensor], flops: int, repeats: int) -> float:
    """The median rate of ``repeats`` calls of ``compute``, each ``flops`` operations, in GFLOP/s, after
    one call that lets the library pick its kernel."""
    compute()
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        compute()
        rates.append(flops / (time.perf_counter() - started) / 1e9)
    return statistics.median(rates)


def matmul_gflops(side: int, dtype: torch.dtype, repeats: int) -> float:
    """The median rate of products of two ``side`` × ``side`` matrices of ``dtype`` (GFLOP/s)."""
    a, b = torch.randn(side, side, dtype=dtype), torch.randn(side, side, dtype=dtype)
    return median_gflops(lambda: torch.matmul(a, b), 2 * side**3, repeats)


def conv1x1_gflops(dtype: torch.dtype, repeats: int, channels: int = 1024) -> float:
    """The median rate of a 1×1 convolution of ``channels`` to ``channels`` on 16 maps of 32×32 in
    ``dtype`` (a matrix product of 16,384 × ``channels`` by ``channels`` × ``channels``), in GFLOP/s."""
    conv = nn.Conv2d(channels, channels, 1, bias=False).to(dtype=dtype, memory_format=torch.channels_last)
    x = torch.randn(16, channels, 32, 32, dtype=dtype).contiguous(memory_format=torch.channels_last)
    return median_gflops(lambda: conv(x), 2 * x.numel() * channels, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=[*PRESETS, "lenet5"], help="the networks to time")
    parser.add_argument("--side", type=int, default=2048, help="side of the square matrices")
    parser.add_argument("--matmul-repeats", type=int, default=20, help="products per precision (median)")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per window")
    parser.add_argument("--repeats", type=int, default=1, help="windows per network (median)")
    parser.add_argument("--out", default=None, help="JSON file for the report")
    args = parser.parse_args()

    matmul = {"side": args.side}
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        matmul[f"{precision}_matmul_gflops"] = round(matmul_gflops(args.side, dtype, args.matmul_repeats), 1)
        matmul[f"{precision}_conv1x1_gflops"] = round(conv1x1_gflops(dtype, args.matmul_repeats), 1)
        matmul[f"{precision}_gflops"] = max(
            matmul[f"{precision}_matmul_gflops"], matmul[f"{precision}_conv1x1_gflops"]
        )
    print(json.dumps(matmul), flush=True)
    report = {
        "device_name": device_description(CPU),
        "native_bf16": cpu_has_native_bf16(),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "matmul": matmul,
        "networks": [],
    }
    for name in args.models:
        row = preset_step_speeds(name, args.steps, args.repeats)
        for precision in ("fp32", "bf16"):
            flops = FLOPS_PER_MAC_TRAINING * row["macs"] * row[f"{precision}_images_per_second"]
            row[f"{precision}_gflops"] = round(flops / 1e9, 1)
            row[f"{precision}_of_matmul"] = round(flops / 1e9 / matmul[f"{precision}_gflops"], 3)
        print(json.dumps(row), flush=True)
        report["networks"].append(row)
    write_report(report, args.out)


if __name__ == "__main__":
    main()
