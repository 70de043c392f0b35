"""The command line: argument parsing and user-facing errors, nothing else.

Every command calls the same library functions as the notebooks. A user's mistake
(:class:`cnnlib.UserError`) is printed as one sentence and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlib.errors import UserError

if TYPE_CHECKING:
    from cnnlib.sweep import RayExecutor

EPILOG = "Data: --data-root, else $CNNLIB_DATA, else ~/.cache/cnnlib/data. Docs: the course site (make book)."


def _option_value(text: str) -> Any:
    """``3`` → 3, ``0.5`` → 0.5, ``true`` → True, anything else stays a string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def key_values(texts: Sequence[str], option: str, many: bool = False) -> dict[str, Any]:
    """``KEY=VALUE`` texts (``KEY=V1,V2,...`` when ``many``: a list per key) as a dict, the values
    typed by :func:`_option_value` and dashes in keys read as underscores; a malformed text or a
    key given twice is a one-sentence :class:`UserError` naming ``option``."""
    values: dict[str, Any] = {}
    for text in texts:
        key, separator, value = text.partition("=")
        items = value.split(",") if many else [value]
        if not separator or not key or not all(items):
            form, example = ("KEY=VALUE1,VALUE2", "lr=0.1,0.01") if many else ("KEY=VALUE", "variant=paper")
            raise UserError(f"{option} {text!r} is not {form}: write e.g. {option} {example}.")
        key = key.replace("-", "_")
        if key in values:
            raise UserError(f"{option} {key} is given twice: give each one once.")
        values[key] = [_option_value(item) for item in items] if many else _option_value(value)
    return values


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _add_settings(parser: argparse.ArgumentParser) -> None:
    """One flag per training setting, from its declaration in :mod:`cnnlib.config`; only the
    flags given reach the namespace, so the others keep TrainConfig's defaults. Each flag also
    answers to the setting's own name (``--batch_size``), as sweeps and notebooks spell it."""
    from cnnlib.config import SETTINGS

    for name, declared in SETTINGS.items():
        if declared.flag:
            _add_setting(parser, name, _shown_default(name))


def _add_setting(parser: argparse.ArgumentParser, name: str, default_text: str) -> None:
    """The flag of setting ``name`` (``--batch-size``, and ``--batch_size`` unlisted), typed, checked
    and explained by its declaration; ``default_text`` ends its help."""
    from cnnlib.config import SETTINGS

    declared = SETTINGS[name]
    if declared.kind is bool:
        options: dict[str, Any] = {"action": argparse.BooleanOptionalAction}
    else:
        options = {"choices": declared.choices, "type": _setting_type(name, declared.kind)}
    flag, own_name = f"--{name.replace('_', '-')}", f"--{name}"
    parser.add_argument(
        flag, dest=name, default=argparse.SUPPRESS, help=declared.help + default_text, **options
    )
    if own_name != flag:
        parser.add_argument(own_name, dest=name, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **options)


def _shown_default(name: str) -> str:
    """What ``--help`` adds about setting ``name``'s default (nothing where its help says it)."""
    from cnnlib.config import SETTINGS, TrainConfig, knob_bases

    default = TrainConfig.__dataclass_fields__[name].default
    if name in knob_bases():
        return " (default: the recipe's)"
    if default is None:
        return ""
    if SETTINGS[name].kind is bool:
        return f" (default: {'on' if default else 'off'})"
    return f" (default: {default})"


def _setting_type(name: str, kind: type) -> Any:
    """The argparse ``type`` of setting ``name``: its text as ``kind``, checked as the declaration says."""
    from cnnlib.config import check_setting

    def convert(text: str) -> Any:
        try:
            value = kind(text) if kind in (int, float) else text
        except ValueError:
            value = text
        try:
            check_setting(name, value)
        except UserError as error:
            raise argparse.ArgumentTypeError(str(error).removesuffix(".")) from None
        return value

    return convert


def build_parser() -> argparse.ArgumentParser:
    """The ``cnnlib`` argument parser with its sub-commands."""
    from cnnlib.device import DEVICES

    parser = argparse.ArgumentParser(
        prog="cnnlib", description="The classic CNNs, read from the papers.", epilog=EPILOG
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("models", help="list the models, one per line: name and paper")

    summary = commands.add_parser(
        "summary", help="the layer table of a model: shapes, formula, params, MACs, receptive field"
    )
    summary.add_argument("--model", required=True)
    summary.add_argument(
        "--input-size",
        nargs=3,
        type=_positive_int,
        metavar=("C", "H", "W"),
        help="input shape (default: the paper's)",
    )
    summary.add_argument(
        "--num-classes", type=_positive_int, default=None, help="default: 1000 at ImageNet size, else 10"
    )
    summary.add_argument("--format", choices=("table", "csv", "json"), default="table")
    summary.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model option, e.g. variant=paper (repeatable)",
    )

    train = commands.add_parser(
        "train", help="train a model and write metrics.json, history.csv and checkpoint.pt"
    )
    _add_settings(train)
    train.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model option, e.g. width_mult=0.5 (repeatable)",
    )

    evaluate = commands.add_parser("evaluate", help="the test accuracy of a checkpoint")
    evaluate.add_argument("--checkpoint", required=True)
    for name, default_text in (
        ("dataset", " (default: the one it was trained on)"),
        ("data_root", ""),
        ("device", " (default: auto)"),
        ("tta", " (default: the run's)"),
    ):
        _add_setting(evaluate, name, default_text)
    evaluate.add_argument(
        "--out", default=None, help="JSON file to write (default: evaluation.json beside the checkpoint)"
    )

    predict = commands.add_parser(
        "predict", help="classify image files and folders with a checkpoint, one row per image"
    )
    predict.add_argument("--checkpoint", required=True)
    predict.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER")
    predict.add_argument(
        "--top-k", type=_positive_int, default=1, help="classes to show per image (default 1)"
    )
    predict.add_argument("--format", choices=("table", "csv", "json"), default="table")
    predict.add_argument(
        "--invert",
        choices=("auto", "yes", "no"),
        default="auto",
        help="invert grey images (dark digit on white paper for an MNIST model); auto: when the "
        "border is brighter than the centre",
    )
    predict.add_argument(
        "--fit",
        choices=("auto", "pad", "resize"),
        default="auto",
        help="how an image is brought to the model's size (default: as in training)",
    )
    predict.add_argument("--device", choices=DEVICES, default="cpu")

    export = commands.add_parser(
        "export",
        help="a checkpoint's network as ONNX: uint8 (N, H, W, 3 or 4) pixels in, "
        "class probabilities out (the site's live classifier runs it)",
    )
    export.add_argument("--checkpoint", required=True)
    export.add_argument("--format", choices=("onnx",), default="onnx")
    export.add_argument("--out", required=True, help="the file to write, e.g. resnet.onnx")

    sweep = commands.add_parser(
        "sweep", help="run a notebook or `train` once per combination of a grid; gather results.csv"
    )
    sweep.add_argument("target", metavar="NOTEBOOK", help="a notebook with a 'parameters' cell, or 'train'")
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="values to sweep (repeatable); with 'train', option.NAME=... sweeps a model option",
    )
    sweep.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="a fixed value (repeatable)"
    )
    sweep.add_argument(
        "--repeats", type=_positive_int, default=1, help="run each combination with seeds 0..N-1"
    )
    sweep.add_argument(
        "--jobs", type=_positive_int, default=1, help="runs at a time, in separate processes (local)"
    )
    sweep.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local processes (default), or one Ray task per run on a Ray cluster: "
        "without --address a cluster of this machine's cores for this sweep, with no "
        "dashboard and every port on 127.0.0.1, open to each user of this machine and to "
        "no other machine, while a cluster of `ray start` listens on all interfaces and "
        "whoever reaches its ports can run code on it, so on a network you do not trust "
        "use the local executor or a firewall",
    )
    sweep.add_argument(
        "--address",
        help="the Ray cluster's head, HOST:PORT, or auto for the one `ray start` "
        "runs on this machine (default: a new cluster for this sweep)",
    )
    sweep.add_argument("--cpus-per-run", type=_positive_float, help="CPUs Ray gives each run (default 1)")
    sweep.add_argument("--gpus-per-run", type=float, help="GPUs Ray gives each run (default 0)")
    sweep.add_argument(
        "--fetch-checkpoints",
        action="store_true",
        help="bring each run's checkpoint.pt back from the Ray workers (it can be large)",
    )
    sweep.add_argument("--out", required=True, help="folder of the runs and results.csv; rerun to resume")
    return parser


def _summary(args: argparse.Namespace) -> None:
    from cnnlib import models
    from cnnlib.arithmetic import layer_table

    entry = models.spec(args.model)
    shape = tuple(args.input_size) if args.input_size else entry.paper_input
    num_classes = args.num_classes or (1000 if shape[1] >= 224 else 10)
    model = models.create(
        args.model,
        num_classes=num_classes,
        in_channels=shape[0],
        input_size=shape[1:],
        **key_values(args.model_option, "--model-option"),
    )
    table = layer_table(model, shape)
    if args.format == "json":
        layers = json.loads(table.to_json(orient="records"))
        print(
            json.dumps(
                {
                    "model": args.model,
                    "input_shape": list(shape),
                    "num_classes": num_classes,
                    "total_params": int(table.attrs["total_params"]),
                    "total_macs": int(table.attrs["total_macs"]),
                    "layers": layers,
                },
                indent=2,
            )
        )
    elif args.format == "csv":
        print(table.to_csv(index=False), end="")
    else:
        print(table.to_string(index=False))
        print(
            f"\n{args.model} on {'×'.join(map(str, shape))}, {num_classes} classes: "
            f"{table.attrs['total_params']:,} parameters, {table.attrs['total_macs']:,} MACs"
        )


def _train(args: argparse.Namespace) -> None:
    from cnnlib.config import TrainConfig
    from cnnlib.train import train

    settings = {key: value for key, value in vars(args).items() if key not in ("command", "model_option")}
    result = train(TrainConfig(model_options=key_values(args.model_option, "--model-option"), **settings))
    metrics = result.metrics
    if metrics:
        measured = [
            f"{name} accuracy {accuracy:.4f}"
            for name, accuracy in (("validation", metrics.val_accuracy), ("test", metrics.test_accuracy))
            if accuracy is not None
        ]
        print(
            f"{', '.join(measured) or 'trained'} after {metrics.epochs_trained:g} epochs "
            f"({metrics.train_seconds:.1f} s of training); wrote {result.out}/metrics.json"
        )


def _evaluate(args: argparse.Namespace) -> None:
    from cnnlib.evaluate import evaluate_checkpoint

    settings = vars(args)
    report = evaluate_checkpoint(
        args.checkpoint,
        dataset=settings.get("dataset"),
        data_root=settings.get("data_root"),
        device=settings.get("device", "auto"),
        tta=settings.get("tta"),
    )
    out = Path(args.out) if args.out else Path(args.checkpoint).with_name("evaluation.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"test accuracy {report['test_accuracy']:.4f} on {report['test_images']} "
        f"{report['dataset']} images; wrote {out}"
    )


def _sweep_executor(args: argparse.Namespace) -> str | RayExecutor:
    """``"local"``, or the :class:`~cnnlib.sweep.RayExecutor` the Ray options describe."""
    from cnnlib.sweep import RayExecutor

    ray_options = {
        "--address": args.address,
        "--cpus-per-run": args.cpus_per_run,
        "--gpus-per-run": args.gpus_per_run,
        "--fetch-checkpoints": args.fetch_checkpoints or None,
    }
    if args.executor == "local":
        given = [option for option, value in ray_options.items() if value is not None]
        if given:
            raise UserError(f"{given[0]} is for --executor ray: add --executor ray, or leave {given[0]} out.")
        return "local"
    if args.gpus_per_run is not None and args.gpus_per_run < 0:
        raise UserError(f"--gpus-per-run must be 0 or more, not {args.gpus_per_run:g}.")
    return RayExecutor(
        address=args.address,
        cpus_per_run=args.cpus_per_run or 1,
        gpus_per_run=args.gpus_per_run or 0,
        checkpoints=args.fetch_checkpoints,
    )


def _sweep(args: argparse.Namespace) -> None:
    from cnnlib.sweep import sweep

    results = sweep(
        args.target,
        key_values(args.grid, "--grid", many=True),
        key_values(args.param, "--param"),
        out=args.out,
        repeats=args.repeats,
        jobs=args.jobs,
        executor=_sweep_executor(args),
    )
    failed = int((results["status"] != "ok").sum())
    print(f"{len(results) - failed} of {len(results)} runs finished; wrote {Path(args.out) / 'results.csv'}")
    if failed:
        raise UserError(
            f"{failed} run(s) failed: see the error column of {Path(args.out) / 'results.csv'}, "
            "fix the cause and rerun the same command to run only those."
        )


def _predict(args: argparse.Namespace) -> None:
    from cnnlib.predict import load_classifier, predict_files, predictions_frame

    classifier = load_classifier(args.checkpoint, args.device)
    invert = {"auto": "auto", "yes": True, "no": False}[args.invert]
    predictions, failures = predict_files(classifier, args.images, args.top_k, invert, args.fit)
    table = predictions_frame(predictions)
    if args.format == "json":
        print(json.dumps(json.loads(table.to_json(orient="records")) if predictions else [], indent=2))
    elif args.format == "csv":
        print(table.to_csv(index=False), end="")
    elif predictions:
        print(table.to_string(index=False))
    for _, reason in failures:
        print(f"cnnlib: skipped: {reason}", file=sys.stderr)
    if failures:
        raise UserError(
            f"{len(failures)} of {len(failures) + len(predictions)} files could not be read as images "
            f"(listed above); the others were classified."
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "models":
            from cnnlib import models

            width = max(map(len, models.names()))
            print("\n".join(f"{name:<{width}}  {models.spec(name).summary}" for name in models.names()))
        elif args.command == "summary":
            _summary(args)
        elif args.command == "train":
            _train(args)
        elif args.command == "predict":
            _predict(args)
        elif args.command == "export":
            from cnnlib.export import export

            print(f"wrote {export(args.checkpoint, args.out, args.format)}")
        elif args.command == "sweep":
            _sweep(args)
        else:
            _evaluate(args)
    except UserError as error:
        print(f"cnnlib: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "cnnlib: interrupted; a training run continues from its last checkpoint with --resume.",
            file=sys.stderr,
        )
        return 130
    return 0
