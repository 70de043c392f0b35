"""ONNX export and shipped checkpoints: onnxruntime agrees with torch, stripped files load everywhere.

The references are computed by torch through cnnlib's own inference path (``predict_logits`` in fp32,
``Classifier.predict`` on image files), never by the exported wrapper; the bounds are issue 39's
(tests/onnx_agreement.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from onnx_agreement import BOUND, assert_agree
from PIL import Image
from repo_scripts import repo_script

from cnnlib.config import TrainConfig
from cnnlib.errors import UserError
from cnnlib.evaluate import evaluate_checkpoint
from cnnlib.export import export, export_for_site, strip_checkpoint
from cnnlib.record import read_checkpoint
from cnnlib.train import train

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lenet(tmp_path_factory) -> Path:
    """A LeNet-5 trained on digits for 3 epochs, with a weight average (so that stripping must pick it)."""
    out = tmp_path_factory.mktemp("lenet")
    train(
        TrainConfig(
            model="lenet5", dataset="digits", epochs=3, ema=0.9, device="cpu", out=str(out), progress=False
        )
    )
    return out / "checkpoint.pt"


@pytest.fixture(scope="module")
def colour_net(tmp_path_factory) -> Path:
    """A narrow ResNet-18 trained for one epoch on a folder of random 32×32 colour images in three classes."""
    folder = tmp_path_factory.mktemp("random_images")
    generator = np.random.default_rng(0)
    for label in ("a", "b", "c"):
        (folder / label).mkdir()
        for index in range(40):
            Image.fromarray(generator.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                folder / label / f"{index}.png"
            )
    out = tmp_path_factory.mktemp("resnet")
    train(
        TrainConfig(
            model="resnet18",
            dataset=str(folder),
            epochs=1,
            batch_size=32,
            device="cpu",
            out=str(out),
            model_options={"width_mult": 0.25},
            progress=False,
        )
    )
    return out / "checkpoint.pt"


def test_cli_export_agrees_with_torch_on_the_test_split(lenet, tmp_path, run_cli):
    out = tmp_path / "lenet.onnx"
    status, stdout, stderr = run_cli(
        "export", "--checkpoint", str(lenet), "--format", "onnx", "--out", str(out)
    )
    assert status == 0, stderr
    assert str(out) in stdout and "[torch.onnx]" not in stdout
    assert_agree(lenet, out)
    metadata = json.loads({prop.key: prop.value for prop in onnx.load(out).metadata_props}["cnnlib"])
    record, _ = read_checkpoint(lenet)
    assert metadata["classes"] == list(record.preprocess.classes) and metadata["input_shape"] == [1, 32, 32]


@pytest.mark.slow
def test_colour_network_export_agrees_with_torch_in_fp32_and_fp16(colour_net, tmp_path):
    export(colour_net, tmp_path / "fp32.onnx")
    assert_agree(colour_net, tmp_path / "fp32.onnx")
    half = strip_checkpoint(colour_net, tmp_path / "half.pt", weights="fp16")
    export(half, tmp_path / "fp16.onnx")
    assert_agree(half, tmp_path / "fp16.onnx")
    stored = {
        initializer.data_type
        for initializer in onnx.load(tmp_path / "fp16.onnx").graph.initializer
        if initializer.name.startswith("model.") and "num_batches" not in initializer.name
    }
    assert stored == {onnx.TensorProto.FLOAT16}
    assert (tmp_path / "fp16.onnx").stat().st_size < 0.6 * (tmp_path / "fp32.onnx").stat().st_size


def test_exported_grey_network_converts_colour_files_as_predict_does(lenet, tmp_path, monkeypatch):
    # cnnlib.predict reads a colour file for a grey model through PIL's convert("L"); the graph does the same
    # sum. fp32 on every CPU (predict runs bf16 autocast where the CPU has native bf16).
    from cnnlib.predict import load_classifier

    monkeypatch.setattr("cnnlib.device.cpu_has_native_bf16", lambda: False)
    onnx_file = export(lenet, tmp_path / "lenet.onnx")
    rgb = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    expected = load_classifier(lenet).predict(tmp_path / "colour.png", invert=False).probabilities.numpy()
    session = ort.InferenceSession(str(onnx_file))
    rgba = np.concatenate([rgb, np.full((32, 32, 1), 7, np.uint8)], axis=2)
    for pixels in (rgb, rgba):  # the alpha of a canvas's RGBA is ignored
        assert np.abs(session.run(None, {"image": pixels[None]})[0][0] - expected).max() <= BOUND


def test_export_refuses_an_unknown_format_and_a_missing_checkpoint(lenet, tmp_path, run_cli):
    with pytest.raises(UserError, match=r"^Unknown export format 'tflite': choose one of onnx\.$"):
        export(lenet, tmp_path / "x.tflite", format="tflite")
    status, _, stderr = run_cli(
        "export", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "x.onnx")
    )
    assert status == 2 and "does not exist" in stderr and not (tmp_path / "x.onnx").exists()


def test_stripped_checkpoint_holds_the_evaluated_weights_and_loads_in_evaluate_and_predict(
    lenet, tmp_path, run_cli
):
    stripped = strip_checkpoint(lenet, tmp_path / "lenet.pt", weights="fp16")
    saved = torch.load(stripped, weights_only=True)
    assert saved["optimizer"] is None and saved["ema"] is None
    assert {tensor.dtype for tensor in saved["model"].values()} == {torch.float16}
    original = torch.load(lenet, weights_only=True)
    assert original["ema"] is not None
    for name, tensor in saved["model"].items():  # the weight average's, not the last step's
        assert torch.equal(tensor, original["ema"][f"module.{name}"].half())
    assert stripped.stat().st_size < lenet.stat().st_size / 3
    status, stdout, stderr = run_cli(
        "evaluate", "--checkpoint", str(stripped), "--out", str(tmp_path / "e.json")
    )
    assert status == 0, stderr
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "blank.png")
    status, stdout, stderr = run_cli(
        "predict", "--checkpoint", str(stripped), str(tmp_path / "blank.png"), "--format", "json"
    )
    assert status == 0, stderr
    assert json.loads(stdout)[0]["class_1"] in [str(digit) for digit in range(10)]


def test_ship_script_writes_checkpoints_and_a_manifest_that_checks_out(lenet, tmp_path):
    ship = repo_script("benchmarks/ship_checkpoints.py")
    runs, results, out = tmp_path / "runs", tmp_path / "results", tmp_path / "checkpoints"
    (runs / "01_lenet5").mkdir(parents=True)
    (runs / "01_lenet5" / "checkpoint.pt").write_bytes(lenet.read_bytes())
    results.mkdir()
    (results / "01_lenet5.json").write_text("{}")
    manifest = ship.ship_all(["01_lenet5", "02_absent"], runs, results, out)
    assert json.loads((out / "manifest.json").read_text()) == manifest
    [entry] = manifest["checkpoints"]
    shipped = out / entry["file"]
    assert entry["file"] == "01_lenet5.pt" and sorted(path.name for path in out.iterdir()) == [
        "01_lenet5.pt",
        "manifest.json",
    ]
    assert entry["sha256"] == hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert entry["bytes"] == shipped.stat().st_size
    measured = evaluate_checkpoint(shipped, device="cpu")["test_accuracy"]
    assert entry["test_accuracy"] == measured
    assert abs(entry["test_accuracy"] - entry["test_accuracy_fp32"]) <= 0.001
    dtypes = {tensor.dtype for tensor in torch.load(shipped, weights_only=True)["model"].values()}
    assert dtypes == ({torch.float16} if entry["weights"] == "fp16" else {torch.float32})
    ship.FILE_BUDGET, ship.TOLERANCE = 0, 1.0  # every file over budget, any accuracy holds: int8 is tried
    [entry] = ship.ship_all(["01_lenet5"], runs, results, out)["checkpoints"]
    assert (
        entry["weights"] == "int8"
        and entry["test_accuracy"] == evaluate_checkpoint(shipped, device="cpu")["test_accuracy"]
    )
    assert torch.int8 in {tensor.dtype for tensor in torch.load(shipped, weights_only=True)["model"].values()}
    assert entry["metrics"].endswith("01_lenet5.json")
    # Shipping one run again leaves the others' entries in the manifest.
    (runs / "03_other").mkdir()
    (runs / "03_other" / "checkpoint.pt").write_bytes(lenet.read_bytes())
    (results / "03_other.json").write_text("{}")
    ship.ship_all(["03_other"], runs, results, out)
    first, other = json.loads((out / "manifest.json").read_text())["checkpoints"]
    assert (first, other["file"]) == (entry, "03_other.pt")
    with pytest.raises(UserError, match="No checkpoint of 02_absent"):
        ship.ship_all(["02_absent"], runs, results, out)


def test_site_folder_exports_each_shipped_network_once(lenet, tmp_path):
    shipped = strip_checkpoint(lenet, tmp_path / "shipped" / "01_lenet5.pt")
    digest = hashlib.sha256(shipped.read_bytes()).hexdigest()
    manifest = tmp_path / "shipped" / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "checkpoints": [
                    {"file": "01_lenet5.pt", "sha256": digest, "test_accuracy": 0.5, "weights": "fp32"}
                ]
            }
        )
    )
    [entry] = export_for_site(manifest, tmp_path / "site")
    assert (
        entry["onnx"] == "01_lenet5.onnx"
        and entry["sha256"] == digest
        and entry["input_shape"] == [1, 32, 32]
    )
    assert json.loads((tmp_path / "site" / "models.json").read_text()) == [entry]
    exported = (tmp_path / "site" / "01_lenet5.onnx").stat().st_mtime_ns
    export_for_site(manifest, tmp_path / "site")
    assert (tmp_path / "site" / "01_lenet5.onnx").stat().st_mtime_ns == exported
    manifest.write_text(manifest.read_text().replace(digest, "0" * 64))
    with pytest.raises(UserError, match="does not match its SHA-256"):
        export_for_site(manifest, tmp_path / "site")
