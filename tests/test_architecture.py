"""The shape of the package (../shared/DESIGN.md): which modules may pull in the trainer, and that a
checkpoint's and a metrics.json's keys are read in cnnlib.record only."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import torch

PACKAGE = Path(__file__).parents[1] / "cnnlib"
STORED = Path(__file__).parent / "data"

# Modules that must run without the trainer (the picture in ../shared/DESIGN.md): inference,
# prediction, explanation, the classifier app and the figures.
WITHOUT_TRAINER = [
    "cnnlib.record",
    "cnnlib.checkpoint",
    "cnnlib.evaluate",
    "cnnlib.predict",
    "cnnlib.explain",
    "cnnlib.classifier_app",
    "cnnlib.plots",
    "cnnlib.data",
    "cnnlib.device",
    "cnnlib.arithmetic",
    "cnnlib.models",
    "cnnlib.augment",
    "cnnlib.optim",
    "cnnlib.config",
]


def test_every_module_imports_alone_and_only_the_cli_and_sweep_pull_in_the_trainer():
    names = sorted(
        {f"cnnlib.{path.stem}" for path in PACKAGE.glob("*.py") if not path.stem.startswith("__")}
        | {"cnnlib.models"}
    )
    script = (
        "import importlib, json, sys\n"
        f"for name in {names!r}:\n"
        "    before = set(sys.modules)\n"
        "    importlib.import_module(name)\n"
        "    print(json.dumps([name, 'cnnlib.train' in set(sys.modules)]))\n"
        "    for loaded in set(sys.modules) - before:\n"
        "        if loaded.startswith('cnnlib'):\n"
        "            del sys.modules[loaded]\n"
    )
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-2000:]
    pulled_in = dict(json.loads(line) for line in finished.stdout.splitlines())
    assert set(pulled_in) == set(names)
    assert not [name for name in WITHOUT_TRAINER if pulled_in[name]]
    pulling_in = {name for name, loaded in pulled_in.items() if loaded}
    assert pulling_in <= {"cnnlib.train", "cnnlib.lr_range", "cnnlib.cli", "cnnlib.sweep"}


# --- the record is read in one place ---------------------------------------------------------------------
#
# A string-keyed read of the record is `holder["key"]`, `holder.get("key")`, `holder.pop("key")` or
# `"key" in holder`, where the key is one a checkpoint or a metrics.json of this format holds (read from the
# kept fixture, tests/data/lenet5-digits-v1.*) and the holder is named as the record is where it is read:
# a loaded checkpoint (`state`, `saved`, `checkpoint`), its settings (`config`), metrics.json or the record's
# metrics (`metrics`), or `record`; or the result of the call that loads one. Opening a checkpoint
# (`load_checkpoint`) or parsing a metrics file with `json` outside cnnlib.record counts as a read too.
# Other dictionaries keyed by the same words (a history row, a data frame, a sweep's parameters) are not
# reads of the record. cnnlib.checkpoint writes and checks the envelope of every checkpoint, "format" and
# "version", around what cnnlib.record puts inside: those two keys are its own.

HOLDERS = {"state", "saved", "checkpoint", "config", "metrics", "record"}
LOADERS = {"load_checkpoint", "load", "loads"}  # cnnlib.checkpoint.load_checkpoint, torch.load, json.load(s)
ENVELOPE = {"format", "version"}


def record_keys() -> set[str]:
    """Every key of the kept checkpoint (top level, its settings and its data) and of its metrics.json."""
    checkpoint = torch.load(STORED / "lenet5-digits-v1.pt", map_location="cpu", weights_only=True)
    metrics = json.loads((STORED / "lenet5-digits-v1.metrics.json").read_text())
    return (set(checkpoint) | set(checkpoint["config"]) | set(checkpoint["data"]) | set(metrics)) - ENVELOPE


def _name(node: ast.expr) -> str:
    """The last name of ``x``, ``a.x`` or ``f(...)``/``a.f(...)``: what a holder or a call is called."""
    if isinstance(node, ast.Call):
        node = node.func
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def _is_holder(node: ast.expr) -> bool:
    return (_name(node) in HOLDERS and not isinstance(node, ast.Call)) or (
        isinstance(node, ast.Call) and _name(node) in LOADERS
    )


def record_reads(source: str, filename: str, keys: set[str]) -> list[str]:
    """``filename:line: code`` for each string-keyed read of the record in ``source`` (see above)."""
    reads = []
    for node in ast.walk(ast.parse(source)):
        key = holder = None
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            key, holder = node.slice, node.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("get", "pop")
            and node.args
        ):
            key, holder = node.args[0], node.func.value
        elif isinstance(node, ast.Compare) and isinstance(node.ops[0], (ast.In, ast.NotIn)):
            key, holder = node.left, node.comparators[0]
        elif isinstance(node, ast.Call) and _name(node) == "load_checkpoint":
            reads.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
            continue
        elif (
            isinstance(node, ast.Call)
            and _name(node) in ("load", "loads")
            and _name(getattr(node.func, "value", node.func)) == "json"
            and "metrics" in ast.unparse(node.args[0] if node.args else node)
        ):
            reads.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
            continue
        if (
            isinstance(key, ast.Constant)
            and isinstance(key.value, str)
            and key.value in keys
            and holder is not None
            and _is_holder(holder)
        ):
            reads.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
    return sorted(reads, key=lambda read: (read.split(":")[0], int(read.split(":")[1])))


def test_the_scan_finds_string_reads_of_the_record_and_nothing_else():
    source = (
        "def summary(path, row, table, run):\n"
        "    state = load_checkpoint(path)\n"
        "    config = state['config']\n"
        "    metrics = json.loads((path.parent / 'metrics.json').read_text())\n"
        "    if 'ema' in state:\n"
        "        pass\n"
        "    return (config['dataset'], metrics.get('test_accuracy'), run.record.metrics['epochs'],\n"
        "            json.load(open(path))['test_loss'],\n"
        "            row['test_accuracy'], table.attrs['macs'], config['colour'], state['format'],\n"
        "            run.seed)\n"
    )
    lines = [read.split(": ", 1)[1] for read in record_reads(source, "summary.py", record_keys())]
    assert lines == [
        "load_checkpoint(path)",
        "state['config']",
        "json.loads((path.parent / 'metrics.json').read_text())",
        "'ema' in state",
        "config['dataset']",
        "metrics.get('test_accuracy')",
        "run.record.metrics['epochs']",
        "json.load(open(path))['test_loss']",
    ]


def test_no_module_but_the_record_reads_a_checkpoint_or_metrics_json_by_string():
    keys = record_keys()
    reads = [
        read
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "record.py"
        for read in record_reads(path.read_text(), str(path.relative_to(PACKAGE.parent)), keys)
    ]
    assert not reads, f"{len(reads)} reads of the record outside cnnlib/record.py:\n" + "\n".join(reads)
