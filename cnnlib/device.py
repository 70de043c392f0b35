"""Where tensors live: the device by name, its description, the precision a model runs in there, and
the process group of a run on several processes.

Mixed precision here is bf16 autocast (Kalamkar et al. 2019, "A study of BFLOAT16 for deep
learning training"): bf16 keeps fp32's exponent range, so it needs no loss scaling. It is used
on CUDA and on CPUs with native bf16 instructions (AVX-512 BF16 or AMX, where oneDNN's
convolutions run up to twice as fast: ``benchmarks/precision.py``); elsewhere the model runs
in fp32, since emulated bf16 is slower than fp32.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
from pathlib import Path

import torch
import torch.distributed as dist

from cnnlib.errors import UserError

DEVICES = ("auto", "cpu", "cuda", "mps")


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
        raise UserError(
            "--device mps was asked for but Apple's MPS backend is not available: use --device auto or cpu."
        )
    return torch.device(name)


def device_description(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name and the threads torch uses."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M) if cpuinfo.exists() else []
    return (
        f"{names[0] if names else platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads"
    )


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (oneDNN's own test: AVX-512 BF16, AMX or Arm's BF16)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def precision(device: torch.device, amp: bool) -> str:
    """``"bf16"`` when ``amp`` is asked for and ``device`` computes bf16 natively, else ``"fp32"``."""
    if not amp:
        return "fp32"
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()):
        return "bf16"
    return "fp32"


def autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    """The autocast context of :func:`precision`: bf16 autocast, or nothing (fp32)."""
    if precision(device, amp) == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def uses_channels_last(channels_last: bool | None, device: torch.device) -> bool:
    """Channels-last memory unless set: cuDNN's and oneDNN's fast convolution kernels read
    NHWC (measured in ``benchmarks/throughput.py``); MPS keeps NCHW."""
    return channels_last if channels_last is not None else device.type in ("cuda", "cpu")


def init_distributed(device_name: str) -> tuple[int, int]:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE``, ``RANK``): NCCL where CUDA
    is used, gloo on the CPU. Returns (world size, rank); (1, 0) without torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() and device_name != "cpu" else "gloo")
    return world, int(os.environ.get("RANK", "0"))


def training_device(device_name: str, world: int) -> torch.device:
    """The device this process trains on: ``device_name``'s alone, or, among several processes,
    this rank's GPU (``LOCAL_RANK``) under NCCL and the CPU under gloo."""
    if world == 1:
        return select_device(device_name)
    if dist.get_backend() == "nccl":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def leave_distributed(world: int) -> None:
    """Leave the process group :func:`init_distributed` joined, if any."""
    if world > 1:
        dist.destroy_process_group()
