"""How stable is the studies' baseline recipe? LeNet-5 on scikit-learn's digits, 10 epochs,
one-cycle SGD, at several (peak learning rate, warm-up fraction) pairs, over training seeds
and data splits.

A run is unstable when its training accuracy falls from one epoch to the next (the largest
fall is recorded). The recipe ``small-digits`` takes the pair that had no such fall. Timings
are not recorded, so this may run beside other work. Example::

    python benchmarks/recipe_stability.py --out results/recipe-stability-digits.csv
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import pandas as pd
import torch

from cnnlib import models
from cnnlib.config import TrainConfig
from cnnlib.data import load_dataset
from cnnlib.train import train

# (peak learning rate, warm-up as a fraction of the steps): the old recipe first.
CANDIDATES = ((0.05, 0.2), (0.05, 0.3), (0.03, 0.3), (0.03, 0.2), (0.02, 0.3))


def largest_fall(accuracies: list[float]) -> float:
    """The largest drop of training accuracy between two consecutive epochs (0 if it never drops)."""
    return max([0.0, *(before - after for before, after in zip(accuracies, accuracies[1:]))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="training seeds 0 .. N-1 per split")
    parser.add_argument("--splits", type=int, default=3, help="data split seeds 0 .. N-1")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("results/recipe-stability-digits.csv"))
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for split in range(arguments.splits):
        data = load_dataset("digits", split_seed=split).fitted(models.spec("lenet5").input_size_for(8))
        for (lr, warmup), seed in itertools.product(CANDIDATES, range(arguments.seeds)):
            config = TrainConfig(
                model="lenet5",
                dataset="digits",
                device="cpu",
                epochs=arguments.epochs,
                lr=lr,
                warmup=warmup,
                seed=seed,
                progress=False,
            )
            result = train(config, data)
            rows.append(
                {
                    "lr": lr,
                    "warmup": warmup,
                    "split_seed": split,
                    "seed": seed,
                    "test_accuracy": round(result.metrics.test_accuracy, 4),
                    "largest_train_accuracy_fall": round(
                        largest_fall(list(result.history["train_accuracy"])), 4
                    ),
                }
            )
    frame = pd.DataFrame(rows)
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(arguments.out, index=False)
    summary = frame.groupby(["lr", "warmup"], sort=False).agg(
        mean=("test_accuracy", "mean"),
        min=("test_accuracy", "min"),
        runs_below_97=("test_accuracy", lambda accuracy: int((accuracy < 0.97).sum())),
        largest_fall=("largest_train_accuracy_fall", "max"),
    )
    print(summary.round(4).to_string())


if __name__ == "__main__":
    main()
