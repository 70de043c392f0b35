"""Write the page "Comparing the architectures" (book/comparison.md) and its figure.

Run from the repository root after a chapter's run has been added to ``results/``:
``python book/figures/make_comparison.py``. The site is built without executing anything,
so the page is generated here and committed. Parameters and MACs are computed with
``cnnlib`` from the model registry; accuracies and times are read from the ``metrics.json``
files of the chapters' runs, copied to ``results/cpu/<run folder>.json``; the quoted figures
of other sources are the constants below, labelled as quoted on the page.
"""

from __future__ import annotations

import argparse
import inspect
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cnnlib import models  # noqa: E402
from cnnlib.arithmetic import layer_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIGURE = "comparison_costs.svg"
CIFAR_FIGURE = "comparison_cifar_costs.svg"

# Quoted, not measured here: the course's earlier student projects (LeNet-5 on CIFAR-10; the
# others on a small ImageNet subset at 112×112 pixels, no augmentation), test accuracy.
STUDENT_PROJECTS = [("LeNet-5", "CIFAR-10", 0.64), ("AlexNet", "ImageNet subset, 112 px", 0.66),
                    ("GoogLeNet", "ImageNet subset, 112 px", 0.76), ("VGG-16", "ImageNet subset, 112 px", 0.82),
                    ("VGG-19", "ImageNet subset, 112 px", 0.82), ("ResNet-18", "ImageNet subset, 112 px", 0.71),
                    ("ResNet-34", "ImageNet subset, 112 px", 0.73), ("ResNet-50", "ImageNet subset, 112 px", 0.71),
                    ("ResNet-101", "ImageNet subset, 112 px", 0.67), ("ResNet-152", "ImageNet subset, 112 px", 0.65)]
# Quoted: kuangliu/pytorch-cifar's README, CIFAR-10 test accuracy after 200 epochs.
KUANGLIU = [("VGG-16", 0.9264), ("ResNet-18", 0.9302), ("ResNet-50", 0.9362), ("DenseNet-121", 0.9504)]


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A GitHub/MyST pipe table; numbers right-aligned."""
    align = ["---:" if rows and isinstance(rows[0][i], (int, float)) else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(f"{cell:,}" if isinstance(cell, int) else str(cell) for cell in row) + " |"
              for row in rows]
    return "\n".join(lines)


def has_aux_heads(name: str) -> bool:
    """Whether the model's builder takes ``aux_logits`` (training-only auxiliary classifiers, GoogLeNet's)."""
    return "aux_logits" in inspect.signature(models.spec(name).builder).parameters


def costs() -> list[dict]:
    """Parameters and MACs of every registered model, at its paper's input and at CIFAR-10's 32×32.

    The counts are those of the inference network: a model with auxiliary classifiers (GoogLeNet) is built with
    ``aux_logits=False``, as it is deployed (the heads are dropped after training, §5 of its paper); the heads'
    own parameters, which exist only in training, are ``paper_aux_params`` and ``cifar_aux_params`` (0 elsewhere).
    """
    rows = []
    for name in models.names():
        spec = models.spec(name)
        paper_classes = 10 if spec.paper_input[1] <= 64 else 1000
        side = spec.input_size_for(32)
        forms = {"paper": (paper_classes, spec.paper_input[0], spec.paper_input[1:], spec.paper_input),
                 "cifar": (10, 3, side, (3, side, side))}
        row = {"name": name, "paper_input": spec.paper_input, "paper_classes": paper_classes, "cifar_side": side}
        for form, (classes, channels, input_size, shape) in forms.items():
            options = {"aux_logits": False} if has_aux_heads(name) else {}
            kwargs = {"num_classes": classes, "input_size": input_size}
            if form == "cifar":
                kwargs["in_channels"] = channels
            table = layer_table(models.create(name, **kwargs, **options), shape).attrs
            row[f"{form}_params"], row[f"{form}_macs"] = table["total_params"], table["total_macs"]
            row[f"{form}_aux_params"] = (sum(p.numel() for p in models.create(name, **kwargs).parameters())
                                         - table["total_params"]) if options else 0
        rows.append(row)
    return rows


def runs(folder: Path) -> list[tuple[str, dict]]:
    """The metrics of every run copied to ``folder``, by file stem."""
    return [(path.stem, json.loads(path.read_text())) for path in sorted(folder.glob("*.json"))]


def run_label(metrics: dict) -> str:
    options = metrics["config"].get("model_options") or {}
    return metrics["model"] + "".join(f", {key}={value}" for key, value in options.items())


def plot_costs(rows: list[dict], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(8, 5.5), layout="constrained")
    for row in rows:
        axis.scatter(row["paper_macs"] / 1e9, row["paper_params"] / 1e6, color="tab:blue")
        axis.annotate(row["name"], (row["paper_macs"] / 1e9, row["paper_params"] / 1e6), fontsize=7,
                      xytext=(3, 3), textcoords="offset points")
    axis.set(xscale="log", yscale="log", xlabel="multiply–accumulates per image at the paper's input (G)",
             ylabel="parameters (millions)", title="Every architecture of the course, as in its paper")
    axis.grid(alpha=0.3, which="both")
    figure.savefig(path)
    plt.close(figure)


def plot_cifar_costs(rows: list[dict], path: Path) -> None:
    names = [row["name"] for row in rows]
    figure, (params_axis, macs_axis) = plt.subplots(1, 2, figsize=(10, 0.28 * len(rows) + 1.5), layout="constrained")
    params_axis.barh(names, [row["cifar_params"] / 1e6 for row in rows], color="tab:blue")
    macs_axis.barh(names, [row["cifar_macs"] / 1e6 for row in rows], color="tab:orange")
    params_axis.set(xscale="log", xlabel="parameters (millions)", title="Parameters, CIFAR-10 form")
    macs_axis.set(xscale="log", xlabel="multiply–accumulates per image (millions)", title="MACs, CIFAR-10 form")
    for axis in (params_axis, macs_axis):
        axis.invert_yaxis()
        axis.grid(axis="x", alpha=0.3, which="both")
    macs_axis.set_yticklabels([])
    figure.savefig(path)
    plt.close(figure)


def aux_note(rows: list[dict]) -> str:
    """The sentence under the cost table on the auxiliary classifiers left out of its counts."""
    with_aux = [row for row in rows if row["paper_aux_params"] or row["cifar_aux_params"]]
    if not with_aux:
        return ""
    parts = [f"{row['name']}'s two auxiliary classifiers add {row['paper_aux_params']:,} parameters at the paper's "
             f"input and {row['cifar_aux_params']:,} in the CIFAR-10 form" for row in with_aux]
    return ("\nThe parameters and MACs are those of the network used for inference. " + "; ".join(parts)
            + ": they exist only in training and are dropped afterwards, so they are not in the table.\n")


def page(rows: list[dict], measured: list[tuple[str, dict]]) -> str:
    cost_rows = [[row["name"], "×".join(map(str, row["paper_input"])), row["paper_params"],
                  round(row["paper_macs"] / 1e6, 1), f"{row['cifar_side']}×{row['cifar_side']}", row["cifar_params"],
                  round(row["cifar_macs"] / 1e6, 1)] for row in rows]
    # Test accuracy right after the run's name; the data set by name only (the admonition above says which copy).
    run_rows = [[stem, f"{m['test_accuracy']:.2%}", run_label(m), m["dataset_source"].split(",")[0],
                 "×".join(map(str, m["input_shape"])), f"{m['train_images']:,} / {m['test_images']:,}",
                 m.get("epochs_trained", m["epochs"]),
                 round(m["train_seconds"]), f"{m['device_name']}"] for stem, m in measured]
    student_rows = [[model, data, f"{accuracy:.0%}"] for model, data, accuracy in STUDENT_PROJECTS]
    kuangliu_rows = [[model, f"{accuracy:.2%}"] for model, accuracy in KUANGLIU]
    return f"""# Comparing the architectures

<!-- Generated by book/figures/make_comparison.py from cnnlib and results/cpu/*.json: edit the script, not this page. -->

This page puts the networks of the course side by side: what they cost, computed by `cnnlib`, and how well
they learned, read from the `metrics.json` of each chapter's run. It is generated by
`python book/figures/make_comparison.py`, which rebuilds every model from the registry and reads
`results/cpu/*.json`; nothing on it is typed by hand except the figures quoted from other sources, which say so.

## Parameters and multiply–accumulates

At the paper's input (1000 classes, except 10 for the networks of 32×32 images) and in the form `cnnlib` builds
for CIFAR-10 (10 classes; the small-input forms of the modern networks, see each chapter). MACs count the
multiply–accumulates of one forward pass of one image.

{markdown_table(["model", "paper input", "params", "MACs (M)", "CIFAR-10 input", "params", "MACs (M)"], cost_rows)}
{aux_note(rows)}

```{{figure}} figures/{FIGURE}
:name: fig-comparison-costs

Parameters against multiply–accumulates per image at each paper's input, both on logarithmic scales
(computed by `cnnlib`, as in the table above).
```

```{{figure}} figures/{CIFAR_FIGURE}
:name: fig-comparison-cifar-costs

Parameters and multiply–accumulates per image of the forms trained on CIFAR-10 (32×32, 10 classes), on
logarithmic scales (the values of the table's last two columns).
```

## Measured here: ten-minute CPU runs

```{{admonition}} Short CPU runs at reduced width, not the networks' real accuracy
:class: warning
No GPU has been lent to the course yet. Each row is the committed run of a chapter (or of a second model in it)
on a 2-core CPU, on every training and test image at 32×32, each network but LeNet-5 at a reduced width
(`width_mult`, in the column "model") and for at most 600 s of training (1,200 s for chapter 08's networks):
the time budget ends a run part-way through an epoch when the machine is too slow for its epochs, so the column
"epochs" gives the passes over the data each run made. Most are far from converged; the parameters are in each
chapter's admonition and in the `config` of the JSON file. The AlexNet, NiN and GoogLeNet runs train the paper's
network with batch norm before every ReLU (`variant=paper_bn`); their chapters say why. CIFAR-10 here is the JPEG
copy of the data set, whose accuracies differ slightly from the official binary files. The numbers show how far
each network gets in about ten minutes of a 2-core CPU (chance is 10 % on CIFAR-10); the widths and epochs differ from row to row, and so
does what each row's accuracy costs.
```

{markdown_table(["run (results/cpu/)", "test accuracy", "model", "data", "input", "train / test images", "epochs",
                 "train seconds", "hardware"], run_rows)}

## Quoted, not measured here

The course's earlier student projects (test accuracy, as reported by the students; LeNet-5 on CIFAR-10, the
others on a small ImageNet subset at 112×112 pixels without augmentation):

{markdown_table(["model", "data", "accuracy (quoted)"], student_rows)}

The CIFAR-10 test accuracies of [kuangliu/pytorch-cifar](https://github.com/kuangliu/pytorch-cifar), whose
small-input ResNets and DenseNet `cnnlib`'s follow, after 200 epochs on a GPU (quoted from its README):

{markdown_table(["model", "CIFAR-10 accuracy (quoted)"], kuangliu_rows)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "book")
    args = parser.parse_args()
    rows = costs()
    plot_costs(rows, args.out / "figures" / FIGURE)
    plot_cifar_costs(rows, args.out / "figures" / CIFAR_FIGURE)
    (args.out / "comparison.md").write_text(page(rows, runs(args.results)))
    print(f"wrote {args.out / 'comparison.md'}")


if __name__ == "__main__":
    main()
