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
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cnnlib import models  # noqa: E402
from cnnlib.arithmetic import layer_table  # noqa: E402
from cnnlib.record import SeedSpread, final_runs, seed_spread  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIGURE = "comparison_costs.svg"
CIFAR_FIGURE = "comparison_cifar_costs.svg"

# Quoted, not measured here: the course's earlier student projects (LeNet-5 on CIFAR-10; the
# others on a small ImageNet subset at 112×112 pixels, no augmentation), test accuracy.
STUDENT_PROJECTS = [
    ("LeNet-5", "CIFAR-10", 0.64),
    ("AlexNet", "ImageNet subset, 112 px", 0.66),
    ("GoogLeNet", "ImageNet subset, 112 px", 0.76),
    ("VGG-16", "ImageNet subset, 112 px", 0.82),
    ("VGG-19", "ImageNet subset, 112 px", 0.82),
    ("ResNet-18", "ImageNet subset, 112 px", 0.71),
    ("ResNet-34", "ImageNet subset, 112 px", 0.73),
    ("ResNet-50", "ImageNet subset, 112 px", 0.71),
    ("ResNet-101", "ImageNet subset, 112 px", 0.67),
    ("ResNet-152", "ImageNet subset, 112 px", 0.65),
]
# Quoted: kuangliu/pytorch-cifar's README, CIFAR-10 test accuracy after 200 epochs.
KUANGLIU = [("VGG-16", 0.9264), ("ResNet-18", 0.9302), ("ResNet-50", 0.9362), ("DenseNet-121", 0.9504)]


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A GitHub/MyST pipe table; numbers right-aligned."""
    align = ["---:" if rows and isinstance(rows[0][i], (int, float)) else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += [
        "| " + " | ".join(f"{cell:,}" if isinstance(cell, int) else str(cell) for cell in row) + " |"
        for row in rows
    ]
    return "\n".join(lines)


def has_aux_heads(name: str) -> bool:
    """Whether the model's builder takes ``aux_logits`` (training-only auxiliary classifiers, GoogLeNet's)."""
    return "aux_logits" in inspect.signature(models.spec(name).builder).parameters


def costs() -> list[dict]:
    """Parameters and MACs of every registered model, at its paper's input and at CIFAR-10's 32×32.

    The counts are those of the inference network: a model with auxiliary classifiers (GoogLeNet) is built
    with ``aux_logits=False``, as it is deployed (the heads are dropped after training, §5 of its paper); the
    heads' own parameters, which exist only in training, are ``paper_aux_params`` and ``cifar_aux_params``
    (0 elsewhere).
    """
    rows = []
    for name in models.names():
        spec = models.spec(name)
        paper_classes = 10 if spec.paper_input[1] <= 64 else 1000
        side = spec.input_size_for(32)
        forms = {
            "paper": (paper_classes, spec.paper_input[0], spec.paper_input[1:], spec.paper_input),
            "cifar": (10, 3, side, (3, side, side)),
        }
        row = {
            "name": name,
            "paper_input": spec.paper_input,
            "paper_classes": paper_classes,
            "cifar_side": side,
        }
        for form, (classes, channels, input_size, shape) in forms.items():
            options = {"aux_logits": False} if has_aux_heads(name) else {}
            kwargs = {"num_classes": classes, "input_size": input_size}
            if form == "cifar":
                kwargs["in_channels"] = channels
            table = layer_table(models.create(name, **kwargs, **options), shape).attrs
            row[f"{form}_params"], row[f"{form}_macs"] = table["total_params"], table["total_macs"]
            row[f"{form}_aux_params"] = (
                (sum(p.numel() for p in models.create(name, **kwargs).parameters()) - table["total_params"])
                if options
                else 0
            )
        rows.append(row)
    return rows


def runs(folder: Path) -> list[tuple[dict, SeedSpread]]:
    """Every chapter network's page run (seed 0: ``folder/<chapter>.json``) with the test accuracies of all
    its final runs (the seeds in ``folder/<chapter>/``), by file stem."""
    return [
        (json.loads(path.read_text()), seed_spread(final_runs(folder, path.stem)))
        for path in sorted(folder.glob("*.json"))
    ]


# The networks as the chapters name them; a model not listed here is named by its registry name.
NETWORK_NAMES = {
    "lenet5": "LeNet-5",
    "alexnet": "AlexNet",
    "nin": "NiN",
    "vgg16_bn": "VGG-16 with batch norm",
    "googlenet": "GoogLeNet",
    "resnet18": "ResNet-18",
    "densenet121": "DenseNet-121",
    "mobilenet_v2": "MobileNetV2",
    "efficientnet_b0": "EfficientNet-B0",
    "fastnet": "FastNet (airbench's kind)",
}
# The model options that change what the network is, as the run table writes them; the others (the
# initialisation, dropout, the stem's stride) are in each run's JSON file.
OPTION_NAMES = {
    ("variant", "paper_bn"): "with batch norm",
    ("variant", "modern"): "(modern form)",
    ("residual", False): "without shortcuts",
}


def network_name(metrics: dict) -> str:
    """A run's network as the run table names it: ``ResNet-18 without shortcuts``."""
    options = metrics["config"].get("model_options") or {}
    notes = [OPTION_NAMES[item] for item in options.items() if item in OPTION_NAMES]
    return " ".join([NETWORK_NAMES.get(metrics["model"], metrics["model"]), *notes])


def hardware(measured: list[tuple[dict, SeedSpread]]) -> str:
    """Every machine the page runs were made on, once each (the run table's caption names them)."""
    return "; ".join(dict.fromkeys(m["device_name"] for m, _ in measured))


# Networks that differ only in depth (and, for VGG, batch norm; for ResNet, the shortcuts) are one family
# on the cost figure, one colour named once in the legend: twenty near-equal points print no twenty names.
FAMILY = re.compile(r"^(vgg|resnet|plain)(\d+)(_bn)?$")


def family(row: dict) -> str | None:
    """The legend entry of ``row``'s family on the cost figure, None for a network labelled on its own."""
    match = FAMILY.match(row["name"])
    if not match:
        return None
    if match.group(1) == "vgg":
        return "vgg11–vgg19, with and without batch norm"
    if row["paper_input"][1] <= 64:
        return "CIFAR resnet and plain, 20–110 layers (equal costs)"
    return "resnet10–resnet152, plain18 and plain34"


def place_labels(
    axis: plt.Axes, labels: list[tuple[str, float, float]], points: list[tuple[float, float]]
) -> None:
    """Write each label beside its point on the first side where it overlaps no label already written, no
    other of ``points`` and the axes' edge: above right, below right, above left, below left, then further
    out."""
    renderer = axis.figure.canvas.get_renderer()
    marks = [axis.transData.transform(point) for point in points]
    inside = axis.get_window_extent(renderer)
    taken = []
    sides = [(dx * step, dy * step) for step in (1, 2.5) for dx, dy in ((4, 4), (4, -11), (-4, 4), (-4, -11))]
    for text, x, y in labels:
        own = axis.transData.transform((x, y))
        for dx, dy in sides:
            label = axis.annotate(
                text,
                (x, y),
                xytext=(dx, dy),
                textcoords="offset points",
                fontsize=7,
                ha="left" if dx > 0 else "right",
            )
            box = label.get_window_extent(renderer).expanded(1.1, 1.2)
            free = not any(box.overlaps(other) for other in taken) and not any(
                box.contains(*mark) for mark in marks if (mark != own).any()
            )
            if free and inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1):
                break
            label.remove()
        else:  # no side free: above right, overlapping
            label = axis.annotate(text, (x, y), xytext=sides[0], textcoords="offset points", fontsize=7)
        taken.append(label.get_window_extent(renderer))


def plot_costs(rows: list[dict], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(8, 5.5), layout="constrained")
    families: dict[str | None, list[dict]] = {}
    for row in rows:
        families.setdefault(family(row), []).append(row)
    markers = iter(("s", "^", "D"))
    for name, members in families.items():
        x = [row["paper_macs"] / 1e9 for row in members]
        y = [row["paper_params"] / 1e6 for row in members]
        if name is None:
            axis.scatter(x, y, color="tab:blue", zorder=3)
        else:
            axis.scatter(
                x,
                y,
                marker=next(markers),
                facecolors="none",
                edgecolors=f"C{len(axis.collections)}",
                label=name,
                zorder=3,
            )
    axis.set(
        xscale="log",
        yscale="log",
        xlabel="multiply–accumulates per image at the paper's input (G)",
        ylabel="parameters (millions)",
        title="Every architecture of the course, as in its paper",
    )
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=7, loc="lower right")
    figure.canvas.draw()  # the axes' final limits, before the labels are placed
    place_labels(
        axis,
        [(row["name"], row["paper_macs"] / 1e9, row["paper_params"] / 1e6) for row in families.get(None, [])],
        [(row["paper_macs"] / 1e9, row["paper_params"] / 1e6) for row in rows],
    )
    figure.savefig(path)
    plt.close(figure)


def plot_cifar_costs(rows: list[dict], path: Path) -> None:
    names = [row["name"] for row in rows]
    figure, (params_axis, macs_axis) = plt.subplots(
        1, 2, figsize=(10, 0.28 * len(rows) + 1.5), layout="constrained"
    )
    params_axis.barh(names, [row["cifar_params"] / 1e6 for row in rows], color="tab:blue")
    macs_axis.barh(names, [row["cifar_macs"] / 1e6 for row in rows], color="tab:orange")
    params_axis.set(xscale="log", xlabel="parameters (millions)", title="Parameters, CIFAR-10 form")
    macs_axis.set(
        xscale="log", xlabel="multiply–accumulates per image (millions)", title="MACs, CIFAR-10 form"
    )
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
    parts = [
        f"{row['name']}'s two auxiliary classifiers add {row['paper_aux_params']:,} parameters "
        "at the paper's "
        f"input and {row['cifar_aux_params']:,} in the CIFAR-10 form"
        for row in with_aux
    ]
    return (
        "\nThe parameters and MACs are those of the network used for inference. "
        + "; ".join(parts)
        + ": they exist only in training and are dropped afterwards, so they are not in the table.\n"
    )


def page(rows: list[dict], measured: list[tuple[dict, SeedSpread]]) -> str:
    cost_rows = [
        [
            row["name"],
            "×".join(map(str, row["paper_input"])),
            row["paper_params"],
            round(row["paper_macs"] / 1e6, 1),
            f"{row['cifar_side']}×{row['cifar_side']}",
            row["cifar_params"],
            round(row["cifar_macs"] / 1e6, 1),
        ]
        for row in rows
    ]
    # Accuracy first (issue 37): the mean over the seeds, on which the floors are judged (issue 36); then the
    # network by name.
    run_rows = [
        [
            f"{spread.mean:.2%}",
            network_name(m),
            f"{spread.low:.2%}–{spread.high:.2%}" if len(spread.seeds) > 1 else "",
            len(spread.seeds),
            m["dataset_source"].split(",")[0],
            (m["config"].get("model_options") or {}).get("width_mult", 1),
            m["epochs"],
            round(m["train_seconds"]),
        ]
        for m, spread in measured
    ]
    # A directive's caption is its first line only.
    run_caption = (
        f"The chapter networks' final runs, all on {hardware(measured)}: the mean and range of the test "
        "accuracy over the seeds run so far (each tested once), the width multiplier of every layer's "
        "channels, and the epochs and seconds of training of seed 0, the run its chapter shows."
    )
    student_rows = [[model, data, f"{accuracy:.0%}"] for model, data, accuracy in STUDENT_PROJECTS]
    kuangliu_rows = [[model, f"{accuracy:.2%}"] for model, accuracy in KUANGLIU]
    return f"""# Comparing the architectures

<!-- Generated by book/figures/make_comparison.py from cnnlib and results/cpu/*.json: \
edit the script, not this page. -->

This page puts the networks of the course side by side: what they cost, computed by `cnnlib`, and how well
they learned, read from the `metrics.json` of each chapter's run. It is generated by
`python book/figures/make_comparison.py`, which rebuilds every model from the registry and reads
`results/cpu/*.json`; nothing on it is typed by hand except the figures quoted from other sources, \
which say so.

## Parameters and multiply–accumulates

At the paper's input (1000 classes, except 10 for the networks of 32×32 images) and in the form \
`cnnlib` builds
for CIFAR-10 (10 classes; the small-input forms of the modern networks, see each chapter). MACs count the
multiply–accumulates of one forward pass of one image.

{
        markdown_table(
            ["model", "paper input", "params", "MACs (M)", "CIFAR-10 input", "params", "MACs (M)"], cost_rows
        )
    }
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
No GPU has been lent to the course yet. Each row is a chapter network's `cpu` preset (or the second model of
a chapter: ResNet-18 without shortcuts), trained on a 2-core CPU on every training image at 32×32 and tested
once on the 10,000 test images, for seeds 0, 1 and 2 where `make finals` has run (the column "seeds" says
how many are in); the chapter page shows seed 0. Each classic network but LeNet-5 runs at a reduced width
(`width_mult`, the column "width"), the last chapter's fast network at its full width, within 600 s of
training (1,200 s for MobileNetV2 and EfficientNet-B0). Each preset but LeNet-5's was chosen on a validation
split (`results/recipes/`), never on the test set. The parameters are in each chapter's admonition and in
the `config` of its JSON files in `results/cpu/`. The AlexNet, NiN and GoogLeNet runs train the paper's
network with batch norm before every ReLU (`variant=paper_bn`); their chapters say why. CIFAR-10 here is the
JPEG copy of the data set, whose accuracies differ slightly from the official binary files. The numbers show
how far each network gets in about ten minutes of a 2-core CPU (chance is 10 % on CIFAR-10); the widths and
epochs differ from row to row, and so does what each row's accuracy costs.
```

```{{table}} {run_caption}
:name: table-comparison-runs

{
        markdown_table(
            ["test accuracy (mean)", "network", "range", "seeds", "data", "width", "epochs", "training (s)"],
            run_rows,
        )
    }
```

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
