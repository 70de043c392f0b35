"""GPU reference runs: every chapter's ``gpu`` preset, one after another, within one deadline.

Each chapter's network is trained at the paper's width on the whole of CIFAR-10 at 32×32
(:mod:`cnnlib.presets`, preset ``gpu``: bf16 autocast, channels-last, data on the device),
in the order of ``NETWORKS`` (the headline targets first). The data are loaded once, before the
first network. Each run has a time budget (the trainer's ``time_budget``, :mod:`cnnlib.train`): a
network too slow for its preset's epochs stops when the budget is spent, with its one-cycle schedule
run down on the clock, and with ``--compile`` the compilation counts against the budget too. The
budgets are ``NETWORKS``' own while the deadline leaves room for them; when it does not, the networks
at the end of the list get less, but never under half their own, and a network that would is recorded
as skipped (:func:`budget_now`). Last, the throughput benchmark
(``benchmarks/throughput.py``: cnnlib against a plain DataLoader loop and the model-only limit) runs
for ResNet-18, in the minute the budgets keep back for it. After each network the script writes
``<out>/gpu/<chapter>.json`` (the same fields as ``results/cpu/``) and rewrites
``<out>/reference_runs.csv`` (one row per finished run, with the public anchor for that network),
and with ``--archive`` packs ``<out>`` into that archive again, so a run cut off by the device's
time limit still leaves every finished network's results.

Targets on one H100/H200: the fast chapter's network ≥ 94 % in ≤ 10 s of training, ResNet-18 ≥ 94 % in
≤ 60 s, VGG-16-BN ≥ 92 %, DenseNet-121 ≥ 93 %, the whole script ≤ 8 minutes.

With ``--smoke`` it runs the same path on a CPU in well under a minute (256 images, one
epoch, width 0.125): the test suite runs that, so the script is known to work before a
GPU is lent.

On the course's device machine (the device tool; its Python already has PyTorch), from
the repository root::

    mkdir -p data && cp ../shared/data/cifar10-jpg.tar.gz data/     # 19 MB; /data/ is ignored by git
    # device tool: run, carry ["data"], timeout_s 540, command:
    export PYTHONPATH=. PYTHONUNBUFFERED=1; timeout 480 python3 benchmarks/reference_gpu.py --data-root data \
        --out /tmp/reference --archive $OUT/reference.tgz --deadline 450

(one archive, since the device returns at most 8 files; what is under ``$OUT`` comes back even
when the command is stopped at its limit), then unpack ``reference.tgz`` into ``results/``: it
holds ``gpu/<chapter>.json``, ``gpu/benchmark-throughput-resnet18.json``,
``gpu/reference_log.json`` and ``reference_runs.csv``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pandas as pd

from cnnlib.device import select_device
from cnnlib.presets import preset_config
from cnnlib.record import RunRecord
from cnnlib.run_state import prepare_data
from cnnlib.train import train

# (chapter, model, time budget of its training in seconds on one H100/H200), in the order they run.
NETWORKS = [
    ("10_fast_training", "fastnet", 10),
    ("06_resnet", "resnet18", 60),
    ("04_vgg", "vgg16_bn", 50),
    ("07_densenet", "densenet121", 80),
    ("05_googlenet", "googlenet", 50),
    ("02_alexnet", "alexnet", 25),
    ("03_nin", "nin", 30),
    ("08_mobilenet", "mobilenet_v2", 30),
    ("09_efficientnet", "efficientnet_b0", 30),
]

# Seconds of the deadline besides the training budgets: a network's model, first steps and evaluations,
# and the throughput benchmark at the end. A budget the deadline cannot hold is cut to no less than
# SHORTEST_SHARE of it.
SECONDS_AROUND_A_NETWORK = 8
THROUGHPUT_SECONDS = 60
SHORTEST_SHARE = 0.5

# Public figures to print beside ours: other code, other data pipelines, longer schedules.
ANCHORS = {
    "resnet18": "kuangliu/pytorch-cifar ResNet18 93.02 % (200 epochs); airbench94: 94 % in 3.3 s on an A100 "
    "(its own network)",
    "vgg16_bn": "kuangliu/pytorch-cifar VGG16 92.64 % (200 epochs)",
    "densenet121": "kuangliu/pytorch-cifar DenseNet121 95.04 % (200 epochs)",
    "fastnet": "airbench94 (Jordan 2024): 94.01 % in 3.29 s on an A100",
}

COLUMNS = [
    "chapter",
    "model",
    "dataset",
    "test_accuracy",
    "train_seconds",
    "epochs",
    "device",
    "images_per_second",
    "anchor",
]


def write_row(out: Path, chapter: str, record: RunRecord) -> None:
    """Save the run's record as ``gpu/<chapter>.json`` and add its row to ``reference_runs.csv``."""
    record.write_metrics(out / "gpu" / f"{chapter}.json")
    table = out / "reference_runs.csv"
    rows = pd.read_csv(table) if table.exists() else pd.DataFrame(columns=COLUMNS)
    metrics = record.metrics
    row = {
        "chapter": chapter,
        "model": record.model,
        "dataset": record.dataset_source,
        "test_accuracy": round(metrics.test_accuracy, 4),
        "train_seconds": round(metrics.train_seconds, 1),
        "epochs": metrics.epochs_trained,
        "device": metrics.device_name,
        "images_per_second": round(metrics.train_images_per_second),
        "anchor": ANCHORS.get(record.model, ""),
    }
    rows = pd.concat([rows[rows["chapter"] != chapter], pd.DataFrame([row])], ignore_index=True)
    rows[COLUMNS].to_csv(table, index=False)


def budget_now(budget: float, later: list[float], seconds_left: float) -> float:
    """The training seconds of the next network: its own ``budget`` while the deadline, ``seconds_left``
    away, also holds SHORTEST_SHARE of the budgets ``later`` of the networks after it, every network's
    SECONDS_AROUND_A_NETWORK and the THROUGHPUT_SECONDS; less when it does not; 0 (skip the network)
    when that would be under SHORTEST_SHARE of its own."""
    spare = (
        seconds_left
        - THROUGHPUT_SECONDS
        - SECONDS_AROUND_A_NETWORK * (1 + len(later))
        - SHORTEST_SHARE * sum(later)
    )
    given = min(budget, spare)
    return given if given >= SHORTEST_SHARE * budget else 0.0


def pack(out: Path, archive: Path) -> None:
    """Replace ``archive`` by a .tgz of everything under ``out``, atomically (a cut-off leaves the last
    one whole)."""
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w:gz") as tar:
        for path in sorted(out.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(out)))
    os.replace(partial, archive)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-root", default=None, help="folder holding cifar10-jpg.tar.gz (default: $CNNLIB_DATA)"
    )
    parser.add_argument(
        "--out", default="results", help="folder for gpu/<chapter>.json and reference_runs.csv"
    )
    parser.add_argument(
        "--archive", type=Path, default=None, help="a .tgz of --out, rewritten after each network"
    )
    parser.add_argument("--deadline", type=float, default=450, help="seconds for the whole script")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile each network (costs its compile time)"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="256 images, one epoch, width 0.125: a dry run on a CPU"
    )
    args = parser.parse_args()

    started = time.perf_counter()
    device = select_device(args.device)
    out = Path(args.out)
    (out / "gpu").mkdir(parents=True, exist_ok=True)
    runs = Path(tempfile.mkdtemp(prefix="cnnlib-reference-"))  # checkpoints stay out of --out
    overrides = dict(subset=256, epochs=1, batch_size=64, width_mult=0.125) if args.smoke else {}
    configs = [
        (
            chapter,
            budget,
            preset_config(
                model,
                "gpu",
                data_root=args.data_root,
                device=args.device,
                compile=args.compile,
                out=str(runs / chapter),
                progress=False,
                **overrides,
            ),
        )
        for chapter, model, budget in NETWORKS
    ]
    data = prepare_data(configs[0][2], device)  # every network takes CIFAR-10 at 32×32
    log = {"device": str(device), "data_seconds": round(time.perf_counter() - started, 1), "runs": []}
    for index, (chapter, budget, config) in enumerate(configs):
        left = args.deadline - (time.perf_counter() - started)
        given = budget_now(budget, [later for _, later, _ in configs[index + 1 :]], left)
        if not given:
            log["runs"].append({"chapter": chapter, "status": f"skipped: {left:.0f} s left of the deadline"})
            print(log["runs"][-1], flush=True)
            continue
        config = dataclasses.replace(config, time_budget=round(given, 1))
        print(
            f"{chapter}: {config.model} {config.model_options}, at most {config.epochs} epochs in "
            f"{config.time_budget:g} s",
            flush=True,
        )
        record = train(config, data=data).record
        write_row(out, chapter, record)
        log["runs"].append(
            {
                "chapter": chapter,
                "status": "ok",
                "test_accuracy": record.metrics.test_accuracy,
                "train_seconds": record.metrics.train_seconds,
                "epochs": record.metrics.epochs_trained,
            }
        )
        print(log["runs"][-1], flush=True)
        if args.archive:
            pack(out, args.archive)
    if args.deadline - (time.perf_counter() - started) > THROUGHPUT_SECONDS / 2 or args.smoke:
        command = [
            sys.executable,
            str(Path(__file__).resolve().parent / "throughput.py"),
            "--model",
            "resnet18",
            "--dataset",
            "cifar10",
            "--device",
            args.device,
            "--out",
            str(out / "gpu" / "benchmark-throughput-resnet18.json"),
        ]
        command += (
            [
                "--batch-size",
                "64",
                "--steps",
                "2",
                "--repeats",
                "1",
                "--subset",
                "256",
                "--width-mult",
                str(overrides["width_mult"]),
            ]
            if args.smoke
            else ["--batch-size", "512", "--steps", "50", "--repeats", "3"]
        )
        if args.data_root:
            command += ["--data-root", args.data_root]
        log["throughput"] = subprocess.run(command, capture_output=True, text=True).returncode
    log["seconds"] = round(time.perf_counter() - started, 1)
    (out / "gpu" / "reference_log.json").write_text(json.dumps(log, indent=2) + "\n")
    if args.archive:
        pack(out, args.archive)
    print(json.dumps(log, indent=2))


if __name__ == "__main__":
    main()
