"""Checkpoints and the run record (cnnlib.checkpoint, cnnlib.record): a checkpoint of the
first format still loads and predicts, a checkpoint holding code is refused for what it is,
and metrics.json is read back as the record it was written from (the package's shape:
tests/test_architecture.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from cnnlib.checkpoint import atomic_save, load_checkpoint, save_checkpoint
from cnnlib.config import TrainConfig
from cnnlib.data import load_dataset
from cnnlib.errors import UserError
from cnnlib.evaluate import evaluate, model_from_checkpoint
from cnnlib.predict import load_classifier
from cnnlib.record import Preprocess, RunMetrics, RunRecord, final_runs, read_metrics, seed_spread

DATA = Path(__file__).parent / "data"
# LeNet-5 (ReLU) trained 4 epochs on scikit-learn's digits by cnnlib before cnnlib.record existed:
# `cnnlib train --model lenet5 --dataset digits --epochs 4 --param activation=relu`. Its metrics.json
# says 97.49 % on the 359 test images; the first five test digits are 1, 2, 6, 0, 3.
OLD_CHECKPOINT, OLD_METRICS, OLD_ACCURACY = (
    DATA / "lenet5-digits-v1.pt",
    DATA / "lenet5-digits-v1.metrics.json",
    0.9749,
)


def test_a_checkpoint_of_the_first_format_loads_and_predicts_as_it_did():
    model, record = model_from_checkpoint(OLD_CHECKPOINT)
    assert record.model == "lenet5" and record.model_options == {"activation": "relu"}
    assert record.preprocess.classes == tuple(str(digit) for digit in range(10))
    assert record.preprocess.input_shape == (1, 32, 32) and record.epochs == 4
    digits = load_dataset("digits").fitted(32)
    assert evaluate(model, digits, amp=False)["accuracy"] == pytest.approx(OLD_ACCURACY, abs=1e-3)
    classifier = load_classifier(OLD_CHECKPOINT)
    labels = [
        prediction.label for prediction in classifier.predict_many(list(digits.test_x[:5]), invert=False)
    ]
    assert labels == ["1", "2", "6", "0", "3"]


def test_old_metrics_json_reads_as_a_record_and_a_new_one_round_trips(tmp_path):
    old = read_metrics(OLD_METRICS)
    assert old.model == "lenet5" and old.dataset == "digits" and old.preprocess.input_shape == (1, 32, 32)
    assert old.metrics.test_accuracy == pytest.approx(OLD_ACCURACY, abs=1e-4) and old.metrics.epochs == 4
    assert old.config.model_options == {"activation": "relu"} and old.config.epochs == 4
    preprocess = Preprocess(["cat", "dog"], (3, 8, 8), (0.5, 0.4, 0.3), (0.2, 0.2, 0.25))
    metrics = RunMetrics(
        epochs=2,
        epochs_trained=1.5,
        train_seconds=9.0,
        train_images_per_second=100.0,
        final_train_loss=0.5,
        final_train_accuracy=0.8,
        params=10,
        macs=20,
        train_images=600,
        test_images=100,
        device="cpu",
        device_name="a CPU",
        precision="fp32",
        cpu_threads=2,
        world_size=1,
        checkpoint="runs/x/checkpoint.pt",
        test_accuracy=0.75,
        test_loss=0.6,
    )
    config = TrainConfig(model="resnet18", seed=3, model_options={"width_mult": 0.5})
    record = RunRecord(config, preprocess, "pets", "a folder", metrics=metrics)
    written = json.loads(record.write_metrics(tmp_path / "metrics.json").read_text())
    assert written["test_accuracy"] == 0.75 and written["seed"] == 3 and written["input_shape"] == [3, 8, 8]
    assert written["val_accuracy"] is None and written["model"] == "resnet18"
    again = read_metrics(tmp_path / "metrics.json")
    assert again.preprocess == preprocess and again.metrics == metrics and again.config == config
    (tmp_path / "other.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="not the metrics.json"):
        read_metrics(tmp_path / "other.json")


def test_preprocess_normalises_per_channel():
    preprocess = Preprocess(["a"], (2, 1, 1), (0.5, 0.0), (0.25, 1.0))
    image = torch.tensor([[[[255]], [[51]]]], dtype=torch.uint8)
    assert preprocess.normalise(image).flatten().tolist() == pytest.approx([2.0, 0.2])


class CallsAFunction:
    """Unpickled, an object of this class would run ``os.system``: what a malicious checkpoint does."""

    def __reduce__(self):
        import os

        return os.system, ("echo this must never run",)


@pytest.mark.parametrize(
    "planted, named",
    [(Path("an object, not a tensor"), "pathlib.PosixPath"), (CallsAFunction(), "posix.system")],
)
def test_a_checkpoint_holding_code_is_refused_as_such_not_as_corrupt(tmp_path, planted, named):
    # A refused class and a blocked function: torch's safe loader words the two differently.
    state = load_checkpoint(OLD_CHECKPOINT)
    state["history"] = [planted]
    pickled = tmp_path / "pickled.pt"
    torch.save(state, pickled)
    with pytest.raises(
        UserError, match=rf"refers to code \({named}\) that torch's safe loader refuses"
    ) as caught:
        load_checkpoint(pickled)
    assert "corrupt" not in str(caught.value) and "will not be loaded" in str(caught.value)


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


def test_damaged_files_are_still_called_corrupt(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="corrupt or truncated"):
        load_checkpoint(garbage)


def test_an_atomically_written_file_has_the_mode_open_would_give_it(tmp_path):
    from cnnlib.checkpoint import atomic_write

    umask = os.umask(0o022)
    try:
        written = atomic_write(tmp_path / "metrics.json", b"{}")
    finally:
        os.umask(umask)
    assert written.stat().st_mode & 0o777 == 0o644  # readable by all, as metrics and tables are shared


def write_seed(folder: Path, name: str, seed: int, correct: int, **config: object) -> None:
    """A copy of the old digits run's metrics.json as seed ``seed`` that got ``correct`` of its 359 test
    images right (stored as float32 would store it), with ``config`` changed."""
    saved = json.loads(OLD_METRICS.read_text())
    saved["config"] |= {"seed": seed, "out": f"runs/{name}", **config}
    saved["seed"] = seed
    saved["test_images"] = 359
    saved["test_accuracy"] = float(torch.tensor(correct / 359, dtype=torch.float32))
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(saved))


def test_a_chapters_final_runs_read_by_seed_and_counted_in_test_images(tmp_path):
    write_seed(tmp_path, "digits/seed2.json", 2, 350, resume=True)  # a final run resumes; same preset
    write_seed(tmp_path, "digits.json", 0, 343)
    write_seed(tmp_path, "digits/seed1.json", 1, 346, download=True)
    spread = seed_spread(final_runs(tmp_path, "digits"))
    assert spread.seeds == (0, 1, 2)
    assert spread.accuracies == (343 / 359, 346 / 359, 350 / 359)  # exact: counted, not float32
    assert spread.mean == pytest.approx(1039 / 3 / 359) and (spread.low, spread.high) == (
        343 / 359,
        350 / 359,
    )
    assert str(spread) == (
        "test accuracy over 3 seeds: mean 96.47%, range 95.54%–97.49% (seed 0: 95.54%, 1: 96.38%, 2: 97.49%)"
    )


def test_seeds_of_different_presets_untested_runs_and_a_missing_run_are_refused(tmp_path):
    with pytest.raises(UserError, match=r"No final run of 'digits'.*make chapters CHAPTERS=digits"):
        final_runs(tmp_path, "digits")
    write_seed(tmp_path, "digits.json", 0, 343)
    write_seed(tmp_path, "digits/seed1.json", 1, 346, epochs=8)
    with pytest.raises(UserError, match="differ in more than their seed"):
        seed_spread(final_runs(tmp_path, "digits"))
    write_seed(tmp_path, "digits/seed1.json", 1, 346)
    saved = json.loads((tmp_path / "digits/seed1.json").read_text())
    (tmp_path / "digits/seed1.json").write_text(json.dumps(saved | {"test_accuracy": None}))
    with pytest.raises(UserError, match=r"seeds \[1\] were never tested"):
        seed_spread(final_runs(tmp_path, "digits"))
