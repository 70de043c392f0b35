"""Checkpoints and the run record (cnnlib.checkpoint, cnnlib.record): a checkpoint of the
first format still loads and predicts, a checkpoint holding code is refused for what it is,
metrics.json is read back as the record it was written from, and the package's modules load
without the trainer where they must."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnlib.checkpoint import atomic_save, load_checkpoint, save_checkpoint
from cnnlib.data import load_dataset
from cnnlib.errors import UserError
from cnnlib.evaluate import evaluate, model_from_checkpoint
from cnnlib.predict import load_classifier
from cnnlib.record import Preprocess, RunRecord, read_metrics

DATA = Path(__file__).parent / "data"
# LeNet-5 (ReLU) trained 4 epochs on scikit-learn's digits by cnnlib before cnnlib.record existed:
# `cnnlib train --model lenet5 --dataset digits --epochs 4 --param activation=relu`. Its metrics.json
# says 97.49 % on the 359 test images; the first five test digits are 1, 2, 6, 0, 3.
OLD_CHECKPOINT, OLD_METRICS, OLD_ACCURACY = DATA / "lenet5-digits-v1.pt", DATA / "lenet5-digits-v1.metrics.json", 0.9749


def test_a_checkpoint_of_the_first_format_loads_and_predicts_as_it_did():
    model, record = model_from_checkpoint(OLD_CHECKPOINT)
    assert record.model == "lenet5" and record.model_options == {"activation": "relu"}
    assert record.preprocess.classes == tuple(str(digit) for digit in range(10))
    assert record.preprocess.input_shape == (1, 32, 32) and record.epochs == 4
    digits = load_dataset("digits").fitted(32)
    assert evaluate(model, digits, amp=False)["accuracy"] == pytest.approx(OLD_ACCURACY, abs=1e-3)
    classifier = load_classifier(OLD_CHECKPOINT)
    labels = [prediction.label for prediction in classifier.predict_many(list(digits.test_x[:5]), invert=False)]
    assert labels == ["1", "2", "6", "0", "3"]


def test_old_metrics_json_reads_as_a_record_and_a_new_one_round_trips(tmp_path):
    old = read_metrics(OLD_METRICS)
    assert old.model == "lenet5" and old.dataset == "digits" and old.preprocess.input_shape == (1, 32, 32)
    assert old.metrics["test_accuracy"] == pytest.approx(OLD_ACCURACY, abs=1e-4) and "model" not in old.metrics
    preprocess = Preprocess(["cat", "dog"], (3, 8, 8), (0.5, 0.4, 0.3), (0.2, 0.2, 0.25))
    record = RunRecord("resnet18", {"width": 0.5}, preprocess, "pets", "a folder", {"model": "resnet18", "seed": 3},
                       metrics={"test_accuracy": 0.75, "epochs": 2})
    written = json.loads(record.write_metrics(tmp_path / "metrics.json").read_text())
    assert written["test_accuracy"] == 0.75 and written["seed"] == 3 and written["input_shape"] == [3, 8, 8]
    again = read_metrics(tmp_path / "metrics.json")
    assert again.preprocess == preprocess and again.metrics == {"test_accuracy": 0.75, "epochs": 2}
    (tmp_path / "other.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="not the metrics.json"):
        read_metrics(tmp_path / "other.json")


def test_preprocess_normalises_per_channel():
    preprocess = Preprocess(["a"], (2, 1, 1), (0.5, 0.0), (0.25, 1.0))
    image = torch.tensor([[[[255]], [[51]]]], dtype=torch.uint8)
    assert preprocess.normalise(image).flatten().tolist() == pytest.approx([2.0, 0.2])


def test_a_checkpoint_holding_code_is_refused_as_such_not_as_corrupt(tmp_path):
    state = load_checkpoint(OLD_CHECKPOINT)
    state["history"] = [Path("an object, not a tensor")]
    pickled = tmp_path / "pickled.pt"
    torch.save(state, pickled)
    with pytest.raises(UserError, match="objects other than tensors") as caught:
        load_checkpoint(pickled)
    assert "corrupt" not in str(caught.value) and "will not" in str(caught.value)


def test_checkpoints_and_the_data_cache_share_one_atomic_writer(tmp_path, monkeypatch):
    import cnnlib.data

    written = []
    monkeypatch.setattr(cnnlib.data, "atomic_save", lambda value, path: written.append(Path(path)))
    monkeypatch.setenv("CNNLIB_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "shapes"
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        for index in range(3):
            from PIL import Image

            Image.new("L", (8, 8), 40 * index).save(folder / label / f"{index}.png")
    load_dataset(folder)
    assert [path.parent.name for path in written] == ["tensors"]
    save_checkpoint(tmp_path / "run" / "checkpoint.pt", {"epoch": 1})
    assert [path.name for path in (tmp_path / "run").iterdir()] == ["checkpoint.pt"]
    atomic_save({"x": torch.ones(2)}, tmp_path / "plain.pt")
    assert torch.equal(torch.load(tmp_path / "plain.pt")["x"], torch.ones(2))


# Modules that must run without the trainer (the picture in ../shared/DESIGN.md): inference,
# prediction, explanation, the classifier app and the figures.
WITHOUT_TRAINER = ["cnnlib.record", "cnnlib.checkpoint", "cnnlib.evaluate", "cnnlib.predict", "cnnlib.explain",
                   "cnnlib.classifier_app", "cnnlib.plots", "cnnlib.data", "cnnlib.device", "cnnlib.arithmetic",
                   "cnnlib.models", "cnnlib.augment", "cnnlib.optim", "cnnlib.config"]


def test_every_module_imports_alone_and_only_the_cli_and_sweep_pull_in_the_trainer():
    package = Path(__file__).parents[1] / "cnnlib"
    names = sorted({f"cnnlib.{path.stem}" for path in package.glob("*.py") if not path.stem.startswith("__")} | {"cnnlib.models"})
    script = ("import importlib, json, sys\n"
              f"for name in {names!r}:\n"
              "    before = set(sys.modules)\n"
              "    importlib.import_module(name)\n"
              "    print(json.dumps([name, 'cnnlib.train' in set(sys.modules)]))\n"
              "    for loaded in set(sys.modules) - before:\n"
              "        if loaded.startswith('cnnlib'):\n"
              "            del sys.modules[loaded]\n")
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-2000:]
    pulled_in = dict(json.loads(line) for line in finished.stdout.splitlines())
    assert set(pulled_in) == set(names)
    assert not [name for name in WITHOUT_TRAINER if pulled_in[name]]
    assert {name for name, loaded in pulled_in.items() if loaded} <= {"cnnlib.train", "cnnlib.cli", "cnnlib.sweep"}


def test_damaged_files_are_still_called_corrupt(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="corrupt or truncated"):
        load_checkpoint(garbage)
