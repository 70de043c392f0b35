"""The chapters' measured runs, one after another on an idle machine: the recipe search and the final seeds.

``recipes``: for each chapter network, its ``cpu`` preset against its nearest alternatives (the
choices the preset makes: batch size, crop padding, width, growth rate, dropout, augmentation),
each trained on 45,000 CIFAR-10 images in the preset's time budget and scored on the other 5,000
(``validation=5000``), never on the test set (``final_test=False``). One sweep per chapter, into
``runs/recipes/<chapter>/``; its ``results.csv`` and ``histories.csv`` are copied to
``results/recipes/<chapter>/`` as soon as the chapter's sweep ends. The preset must be the
validation winner (``tests/test_results.py`` reads the tables).

``finals``: each chapter network's ``cpu`` preset on all 50,000 training images, tested once, for
seeds 1 and 2 (seed 0 is the run its notebook makes and shows: ``make chapters``), into
``runs/finals/<chapter>/seed<N>/``; each run's ``metrics.json`` is copied to
``results/cpu/<chapter>/seed<N>.json`` as it ends.

``tricks``: the fast chapter's trick table (:data:`TRICKS`), three seeds per arm on the validation split, into
``results/ablations/10_fast_training/``.

All three are resumable: a sweep skips the runs it finished, and a final run whose record exists is not
made again. Run nothing else on the machine meanwhile: the time budgets make every figure depend on
the machine's speed. ``make recipes`` and ``make finals`` call this script.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path
from typing import Any

from cnnlib.presets import preset_config
from cnnlib.sweep import sweep_settings
from cnnlib.train import train

ROOT = Path(__file__).resolve().parents[1]
VALIDATION = (
    5000  # CIFAR-10's 50,000 training images as 45,000 / 5,000, as He et al. 2016 (§4.2) chose theirs
)

# The fast chapter's runs made before its whitening bias froze after 3 epochs (round 3 of its search): a
# freeze after more epochs than any of those runs trained, that is none, so that their rows name what they
# trained.
BIAS_LEARNS = {"whiten_bias_epochs": 20}

# Per chapter: its network, and the alternatives each changing one choice of the preset (or two that go
# together, as a batch size and its learning rate). The arm "preset" is always the preset as it is now: when a
# search changes the preset, the run that won becomes the arm "preset" (its folder renamed) and the former
# preset's run an alternative that declares what it trained, as do the alternatives run beside it (so that
# each row of a table names what its run trained: cnnlib.sweep refuses a finished run of other values).
CHAPTERS: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    # Chapter 02 in two rounds, at 5 epochs, then 12: flips alone beat the former preset's crops and flips,
    # then 12 epochs (the budget holds them) beat 5.
    "02_alexnet": (
        "alexnet",
        {
            "5 epochs": {"epochs": 5},
            "crops and flips (the former preset)": {"augment": "crop+flip", "epochs": 5},
            "lr 0.05, with crops and flips": {"augment": "crop+flip", "lr": 0.05, "epochs": 5},
            "the paper's network (LRN, no batch norm), lr 0.05, with crops and flips": {
                "augment": "crop+flip",
                "variant": "paper",
                "lr": 0.05,
                "epochs": 5,
            },
            "12 epochs, with crops and flips": {"epochs": 12, "augment": "crop+flip"},
        },
    ),
    # Chapter 03 in two rounds: the preset at 8 epochs beat its first three alternatives, then 12 epochs (the
    # budget holds them) beat 8.
    "03_nin": (
        "nin",
        {
            "8 epochs": {"epochs": 8},
            "dropout 0.5": {"dropout": 0.5, "epochs": 8},
            "crops and flips": {"augment": "crop+flip", "epochs": 8},
            "the paper's network (no batch norm), lr 0.05": {"variant": "paper", "lr": 0.05, "epochs": 8},
            "12 epochs, with crops and flips": {"epochs": 12, "augment": "crop+flip"},
        },
    ),
    # Chapter 04 in two rounds: the preset at 9 epochs beat its first two alternatives, then 12 epochs (the
    # budget holds them) beat 9.
    "04_vgg": (
        "vgg16_bn",
        {
            "9 epochs": {"epochs": 9},
            "width 0.375": {"width_mult": 0.375, "epochs": 9},
            "lr 0.1": {"lr": 0.1, "epochs": 9},
        },
    ),
    # Chapter 05 in three rounds: the preset at 6 epochs beat its first two alternatives, 9 epochs beat 6, and
    # 12 epochs (the budget ends them at about 11.8 on 45,000 images; the schedule ends with it) beat 9.
    "05_googlenet": (
        "googlenet",
        {
            "6 epochs": {"epochs": 6},
            "batch 256, lr 0.2": {"batch_size": 256, "lr": 0.2, "epochs": 6},
            "dropout 0.4": {"dropout": 0.4, "epochs": 6},
            "9 epochs": {"epochs": 9},
        },
    ),
    "06_resnet": ("resnet18", {"padding 4": {"crop_padding": 4}, "batch 128": {"batch_size": 128}}),
    "07_densenet": ("densenet121", {"growth rate 8": {"width_mult": 0.25}}),
    # Chapters 08 and 09 in two rounds: the presets' 12 and 10 epochs took about 400 and 480 s of the
    # 1,200 s budget on this machine, so a second round tried twice as many. Chapter 08's 24 epochs with
    # crops and flips beat 24 with flips alone by 0.04 points (a tie one seed can undo) and 12 epochs by 3.2.
    "08_mobilenet": (
        "mobilenet_v2",
        {
            "12 epochs, flips only (the former preset)": {"epochs": 12, "augment": "flip"},
            "12 epochs": {"epochs": 12},
            "24 epochs, flips only": {"augment": "flip"},
        },
    ),
    # Chapter 09's 20 epochs beat its 10 by 2.1 points.
    "09_efficientnet": (
        "efficientnet_b0",
        {"10 epochs": {"epochs": 10}, "crops and flips": {"augment": "crop+flip", "epochs": 10}},
    ),
    # Chapter 10 in three rounds: the preset (zero padding) against its epochs, Lookahead and decay on the
    # shifts, then crops from reflected padding, which won by 0.04 points (a tie one seed can undo), and a
    # bound; then three details of airbench94's code the preset lacked (its get_lr, whiten_bias_epochs and
    # BatchNorm eps), each alone, all three, and the freeze with the schedule. The freeze won at seed 0, and
    # over three seeds tied the former preset (90.70 % against 90.69 %), winning by the mean. Last, the preset
    # in fp32, to ask whether bf16 is where the gap to airbench's 94 % lies. The runs before round 3 trained
    # the bias throughout (BIAS_LEARNS). The preset's seeds 1 and 2 also give the page's time to 90, 93 and
    # 94 % of each seed (a final run reads the test set once, at its end, so it cannot say when it passed a
    # mark).
    "10_fast_training": (
        "fastnet",
        {
            "preset, seed 1": {"seed": 1},
            "preset, seed 2": {"seed": 2},
            "crops from zero padding": {"padding_mode": "zeros", **BIAS_LEARNS},
            "8 epochs": {"epochs": 8, "padding_mode": "zeros", **BIAS_LEARNS},
            "12 epochs": {"epochs": 12, "padding_mode": "zeros", **BIAS_LEARNS},
            "Lookahead in place of the EMA": {
                "ema": 0.0,
                "lookahead": True,
                "padding_mode": "zeros",
                **BIAS_LEARNS,
            },
            "weight decay on the batch norms' shifts too": {
                "decay_norms_and_biases": True,
                "padding_mode": "zeros",
                **BIAS_LEARNS,
            },
            # How far the recipe goes on this data with twice the budget: a bound, not a candidate.
            "20 epochs in 1,200 s (a bound)": {"epochs": 20, "time_budget": 1200, **BIAS_LEARNS},
            "the preset before round 3 (the whitening bias learns throughout)": BIAS_LEARNS,
            "the preset before round 3 (the whitening bias learns throughout), seed 1": {
                "seed": 1,
                **BIAS_LEARNS,
            },
            "the preset before round 3 (the whitening bias learns throughout), seed 2": {
                "seed": 2,
                **BIAS_LEARNS,
            },
            "airbench's schedule ends, bias freeze and batch-norm eps": {
                "warmup_from": 0.2,
                "anneal_to": 0.07,
                "norm_eps": 1e-12,
            },
            "schedule from 0.2 through 1 to 0.07 of the peak": {
                "warmup_from": 0.2,
                "anneal_to": 0.07,
                **BIAS_LEARNS,
            },
            "batch-norm eps 1e-12": {"norm_eps": 1e-12, **BIAS_LEARNS},
            "whitening bias frozen after 3 epochs, schedule from 0.2 through 1 to 0.07": {
                "warmup_from": 0.2,
                "anneal_to": 0.07,
            },
            # Whether bf16 costs accuracy (airbench trains in fp16 on a GPU): a bound, not a candidate.
            "fp32 in 2,000 s (a bound)": {"amp": False, "time_budget": 2000},
        },
    ),
}


# The fast chapter's trick table (issue 42, point 4; after Jordan 2024, Table 2): the full recipe, then each
# trick removed in turn, three seeds per arm, two runs at a time (one core each): within 60 minutes. Each run
# trains on the 5,000 images of a random 10,000 that the validation split does not hold out, for 8 epochs
# (72 steps of 512) within a cap of 150 s of training (the bf16 runs took about 80 s; the cap ended two of the
# fp32 runs), and is scored once, at its end, on the other 5,000. Thirty runs of the page's scale would take
# five hours.
TRICKS: dict[str, dict[str, Any]] = {
    "no patch whitening": {"whiten": False},
    "no identity initialisation": {"init": "pytorch"},
    "batch-norm biases at the others' rate": {"norm_bias_lr_factor": 1.0},
    "no label smoothing": {"label_smoothing": 0.0},
    "no weight averaging": {"ema": 0.0, "lookahead": False},
    "random flips, not alternating": {"augment": "crop+flip"},
    "no test-time augmentation": {"tta": "none"},
    "channels-first memory": {"channels_last": False},
    "fp32, not bf16": {"amp": False},
}
# The table was measured before the preset froze the whitening bias after 3 epochs: its runs' bias learns
# throughout (BIAS_LEARNS), and its full recipe is the preset less that freeze.
TRICK_RUN = {"subset": 10_000, "epochs": 8, "time_budget": 150, "eval_every": 8, **BIAS_LEARNS}


def sweep_parameters(network: str, **changes: Any) -> dict[str, Any]:
    """The ``train`` parameters of ``network``'s cpu preset with ``changes``, as a sweep takes them
    (model options as ``option.NAME``)."""
    config = preset_config(network, "cpu", **changes)
    settings = {
        name: value
        for name, value in vars(config).items()
        if value is not None and name not in ("model_options", "out", "resume", "progress", "stop_after")
    }
    return settings | {f"option.{key}": value for key, value in config.model_options.items()}


def sweep_and_keep(name: str, arms: dict[str, dict[str, Any]], out: Path, kept: Path, **sweep: Any) -> None:
    """Run the sweep of ``arms`` into ``out`` (``sweep``: ``repeats``, ``jobs``) and copy its
    ``results.csv`` and ``histories.csv`` to ``kept``, only if every run finished."""
    results = sweep_settings("train", arms, out=out, **sweep)
    failed = results.loc[results["status"] != "ok", "setting"].tolist()
    if failed:
        raise SystemExit(f"{name}: the arms {failed} failed (see {out}); nothing was kept.")
    kept.mkdir(parents=True, exist_ok=True)
    for table in ("results.csv", "histories.csv"):
        shutil.copy(out / table, kept / table)


def recipes(chapter: str) -> None:
    """The chapter's recipe search on the validation split (see the module docstring)."""
    network, alternatives = CHAPTERS[chapter]
    on_validation = {"validation": VALIDATION, "final_test": False}
    arms = {
        name: sweep_parameters(network, **on_validation, **changes)
        for name, changes in {"preset": {}, **alternatives}.items()
    }
    sweep_and_keep(chapter, arms, ROOT / "runs" / "recipes" / chapter, ROOT / "results" / "recipes" / chapter)


def finals(chapter: str, seeds: tuple[int, ...] = (1, 2)) -> None:
    """The chapter network's final runs for ``seeds`` (see the module docstring)."""
    network = CHAPTERS[chapter][0]
    for seed in seeds:
        record = ROOT / "results" / "cpu" / chapter / f"seed{seed}.json"
        if record.exists():
            continue
        out = Path("runs", "finals", chapter, f"seed{seed}")  # relative: a record names no machine's folders
        train(preset_config(network, "cpu", seed=seed, out=str(out), resume=True, progress=False))
        record.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / out / "metrics.json", record)


def trick_arms() -> dict[str, dict[str, Any]]:
    """The trick table's arms, as :func:`cnnlib.sweep.sweep_settings` takes them: without a seed, since the
    sweep gives each arm its seeds."""
    on_validation = {"validation": VALIDATION, "final_test": False, **TRICK_RUN}
    arms = {
        name: sweep_parameters("fastnet", **on_validation, **changes)
        for name, changes in {"full recipe": {}, **TRICKS}.items()
    }
    for arm in arms.values():
        del arm["seed"]
    return arms


def tricks() -> None:
    """The fast chapter's trick table (see :data:`TRICKS`), into ``results/ablations/10_fast_training/``
    with its wall time."""
    arms = trick_arms()
    kept = ROOT / "results" / "ablations" / "10_fast_training"
    started = time.perf_counter()
    out = ROOT / "runs" / "ablations" / "10_fast_training"
    sweep_and_keep("10_fast_training", arms, out, kept, repeats=3, jobs=2)
    seconds = time.perf_counter() - started
    (kept / "wall_seconds.txt").write_text(
        f"10_fast_training: {seconds:.0f} s on {os.cpu_count()} cores, 2 runs at a time\n"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """What to run (``recipes``, ``finals`` or ``tricks``) and for which chapters (default: all)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("recipes", "finals", "tricks"))
    # Checked here, not by argparse's choices: Python 3.11's argparse checks an empty list against them, and
    # refuses it.
    parser.add_argument(
        "chapters", nargs="*", metavar="CHAPTER", help=f"of {', '.join(CHAPTERS)} (default: all)"
    )
    args = parser.parse_args(argv)
    unknown = [chapter for chapter in args.chapters if chapter not in CHAPTERS]
    if unknown:
        parser.error(f"no chapter {unknown[0]!r}: choose from {', '.join(CHAPTERS)}.")
    args.chapters = args.chapters or list(CHAPTERS)
    return args


def main() -> None:
    args = parse_args()
    os.chdir(ROOT)
    if args.what == "tricks":
        tricks()
        return
    for chapter in args.chapters:
        (recipes if args.what == "recipes" else finals)(chapter)
        print(f"{args.what}: {chapter} done", flush=True)


if __name__ == "__main__":
    main()
