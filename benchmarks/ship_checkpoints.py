"""Ship the chapters' trained networks with the book: each chapter run's checkpoint, stripped to what
``cnnlib evaluate`` and ``cnnlib predict`` need, into ``results/checkpoints/<run>.pt``, with a manifest.

    python benchmarks/ship_checkpoints.py            # each chapter page's run whose runs/<chapter>/ is here

A run is named by its metrics file, ``results/cpu/<run>.json`` (``make chapters`` copies it from the
chapter's ``runs/<run>/metrics.json``, the folder the notebook's ``out`` parameter trains into), and its
checkpoint is ``runs/<run>/checkpoint.pt``. The shipped file holds the evaluated weights (the EMA's where
the run kept one) and the run's record; no optimiser, no EMA copy, no random state. Its weights are stored
in fp16 when that leaves the test accuracy unchanged to 0.1 point, both measured here with
``cnnlib.evaluate`` on the run's own test split, else in fp32; a file still over 10 MB in fp16 stores its
fully connected layers in int8 (one scale per output unit) when that too leaves the accuracy unchanged
(issue 39: at most 10 MB a file, 40 MB for the set). ``results/checkpoints/manifest.json`` records per
file: SHA-256, size, weight precision, test
accuracy (fp32 and shipped), and the run's metrics file; the site's build reads it
(``book/_ext/live_classifier.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cnnlib.errors import UserError
from cnnlib.evaluate import evaluate_checkpoint
from cnnlib.export import sha256, strip_checkpoint

ROOT = Path(__file__).resolve().parents[1]
# Issue 39: the accuracy fp16 weights may move (a tenth of a point) and the repository's budgets.
TOLERANCE = 0.001
FILE_BUDGET, SET_BUDGET = 10e6, 40e6


def ship(name: str, checkpoint: Path, metrics: Path, out: Path, data_root: str | None, compact: str) -> dict:
    """Strip ``checkpoint`` into ``out/<name>.pt`` and return its manifest entry. With ``compact`` "auto" its
    weights go to fp16 where the accuracy holds, and to int8 fully connected layers where the fp16 file is
    still over the file budget and the accuracy holds (a large AlexNet's fc6 and fc7)."""
    target = out / f"{name}.pt"
    strip_checkpoint(checkpoint, target)
    full = evaluate_checkpoint(target, data_root=data_root, device="cpu")
    entry = {
        "name": name,
        "file": target.name,
        "model": full["model"],
        "dataset": full["dataset"],
        "test_images": full["test_images"],
        "test_accuracy_fp32": full["test_accuracy"],
        "metrics": metrics.resolve().relative_to(ROOT).as_posix()
        if metrics.resolve().is_relative_to(ROOT)
        else str(metrics),
        "weights": "fp32",
        "test_accuracy": full["test_accuracy"],
    }
    # fp16 where the accuracy holds; then int8 only where the file is still over its budget.
    for weights in ("fp16", "int8") if compact == "auto" else ():
        if weights == "int8" and target.stat().st_size <= FILE_BUDGET:
            break
        trial = out / f".{name}.{weights}.pt"
        try:
            strip_checkpoint(checkpoint, trial, weights=weights)
            accuracy = evaluate_checkpoint(trial, data_root=data_root, device="cpu")["test_accuracy"]
            if abs(accuracy - full["test_accuracy"]) <= TOLERANCE:
                trial.replace(target)
                entry |= {"weights": weights, "test_accuracy": accuracy}
        finally:
            trial.unlink(missing_ok=True)
    return entry | {"bytes": target.stat().st_size, "sha256": sha256(target)}


def ship_all(
    names: list[str],
    runs: Path,
    results: Path,
    out: Path,
    data_root: str | None = None,
    compact: str = "auto",
) -> dict:
    """Ship every run named that has a checkpoint under ``runs``; write and return the manifest, which keeps
    the entries of the runs shipped before (and not now) whose files are still in ``out``."""
    found = [
        (name, runs / name / "checkpoint.pt") for name in names if (runs / name / "checkpoint.pt").is_file()
    ]
    missing = sorted(set(names) - {name for name, _ in found})
    if not found:
        raise UserError(
            f"No checkpoint of {', '.join(names)} under {runs}: run the chapters first "
            f"(`make chapters`), then ship their checkpoints."
        )
    if missing:
        print(f"Not shipped, no runs/<run>/checkpoint.pt: {', '.join(missing)}.", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    shipped = [
        ship(name, checkpoint, results / f"{name}.json", out, data_root, compact)
        for name, checkpoint in found
    ]
    # The runs shipped before and not now keep their entries, as long as their files are there.
    path, now = out / "manifest.json", {entry["file"] for entry in shipped}
    before = json.loads(path.read_text())["checkpoints"] if path.is_file() else []
    kept = [entry for entry in before if entry["file"] not in now and (out / entry["file"]).is_file()]
    entries = sorted(kept + shipped, key=lambda entry: entry["file"])
    manifest = {"tolerance": TOLERANCE, "checkpoints": entries}
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    over = [entry["file"] for entry in entries if entry["bytes"] > FILE_BUDGET]
    total = sum(entry["bytes"] for entry in entries)
    if over or total > SET_BUDGET:
        print(
            f"Over issue 39's budget (10 MB a file, 40 MB in all): {', '.join(over) or 'none'} too large, "
            f"{total / 1e6:.1f} MB in all.",
            file=sys.stderr,
        )
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names", nargs="*", help="runs to ship (default: each chapter page's run, results/cpu/<chapter>.json)"
    )
    parser.add_argument("--runs", type=Path, default=ROOT / "runs", help="where the runs' folders are")
    parser.add_argument(
        "--results", type=Path, default=ROOT / "results" / "cpu", help="the runs' metrics files"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "checkpoints")
    parser.add_argument("--data-root", default=None, help="default: $CNNLIB_DATA, else ~/.cache/cnnlib/data")
    parser.add_argument(
        "--compact",
        choices=("auto", "never"),
        default="auto",
        help="auto: fp16 weights where the test accuracy is unchanged to 0.1 point, and int8 fully connected "
        "layers where a file is still over 10 MB and the accuracy holds",
    )
    arguments = parser.parse_args(argv)
    names = arguments.names or sorted(
        path.stem
        for path in arguments.results.glob("*.json")
        if (ROOT / "notebooks" / f"{path.stem}.ipynb").is_file()
    )
    try:
        manifest = ship_all(
            names, arguments.runs, arguments.results, arguments.out, arguments.data_root, arguments.compact
        )
    except UserError as error:
        print(f"ship_checkpoints: error: {error}", file=sys.stderr)
        return 2
    for entry in manifest["checkpoints"]:
        print(
            f"{entry['file']}: {entry['bytes'] / 1e6:.2f} MB, {entry['weights']}, test accuracy "
            f"{entry['test_accuracy']:.4f} (fp32 {entry['test_accuracy_fp32']:.4f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
