"""Export: a checkpoint's network as an ONNX file that takes raw pixels, and checkpoints stripped for
shipping.

The ONNX file
-------------
Input ``image``: uint8 (N, H, W, C) with C = 3 (RGB) or 4 (RGBA, the alpha ignored), the layout of a
browser canvas's ``getImageData`` and of a PIL image as a NumPy array; H × W is the model's input size.
Output ``probabilities``: float32 (N, classes), the softmax of the logits.

What :mod:`cnnlib.predict` does between a decoded image and the model is in the graph: for a grey model,
the RGB → luma conversion PIL's ``convert("L")`` makes (``(19595 R + 38470 G + 7471 B + 2^15) >> 16``,
Pillow's ``Convert.c``, exact in float32 since every sum is below 2^24); then ``x / 255``, the training
mean and standard deviation, the network in eval mode and the softmax. Fitting an image to the input
size (padding or resizing, :func:`cnnlib.data.fit_images`) and inverting a dark-on-light digit are not:
they depend on the image's own size, so the caller does them (the site's panel does them with a canvas).

The graph keeps the checkpoint's weights as they are stored (the exporter's own optimiser, which would
fold batch norm into the convolutions, is off; onnxruntime fuses them when it loads the file). Weights a
shipped checkpoint holds in fp16 are stored in fp16 and cast to float32 in the graph, so the file is
half the size and computes with exactly the values torch loads from the checkpoint, in float32. Weights
it holds in int8 (one scale per output unit) are stored in int8 and dequantised by the graph
(``DequantizeLinear``: the integer times its row's scale, in float32, as ``load_model_state`` does).
The class names, input shape, mean and standard deviation are in the file's metadata (key ``cnnlib``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlib.checkpoint import INT8_SCALE
from cnnlib.errors import UserError
from cnnlib.evaluate import model_from_state
from cnnlib.record import Preprocess, TrainingState, read_checkpoint, write_checkpoint

FORMATS = ("onnx",)
INPUT_NAME, OUTPUT_NAME = "image", "probabilities"
HALF = torch.float16
# How a shipped checkpoint stores its floating-point weights (issue 39: under 10 MB a file): as trained; in
# fp16; or the fully connected layers' weight matrices in int8, one scale per output unit, the rest in fp16.
WEIGHTS = ("fp32", "fp16", "int8")
# Pillow's RGB → L weights (libImaging/Convert.c, L24), in units of 2^-16.
_LUMA = (19595.0, 38470.0, 7471.0)


class RawPixelClassifier(nn.Module):
    """A trained model behind its checkpoint's preprocessing: uint8 (N, H, W, 3 or 4) images in,
    class probabilities out (see the module docstring)."""

    def __init__(self, model: nn.Module, preprocess: Preprocess) -> None:
        super().__init__()
        self.model = model
        self.grey = preprocess.input_shape[0] == 1
        self.register_buffer("pixel_luma", torch.tensor(_LUMA).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_mean", torch.tensor(preprocess.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(preprocess.std).view(1, -1, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Probabilities for a uint8 (N, H, W, 3 or 4) batch."""
        x = image[..., :3].permute(0, 3, 1, 2).float()
        if self.grey:
            x = torch.floor(((x * self.pixel_luma).sum(1, keepdim=True) + 32768) / 65536)
        # The same operations, in the same order, as Preprocess.normalise.
        return self.model((x / 255 - self.pixel_mean) / self.pixel_std).softmax(1)


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike, opset: int | None = None) -> Path:
    """Write the network of a ``cnnlib train`` checkpoint (or of a shipped one) to ``out`` as ONNX:
    uint8 pixels in, probabilities out, preprocessing folded in (see the module docstring)."""
    import onnx

    record, state = read_checkpoint(checkpoint)
    wrapped = RawPixelClassifier(model_from_state(record, state, checkpoint), record.preprocess).eval()
    _, height, width = record.preprocess.input_shape
    # A batch of 2: torch.export specialises a dimension of size 1 (one image would fix the batch).
    example = torch.zeros(2, height, width, 4, dtype=torch.uint8)
    dims = {0: torch.export.Dim("batch", min=1, max=4096), 3: torch.export.Dim("channels", min=3, max=4)}
    # The exporter prints its progress on stdout whatever `verbose` says; a command prints its own line.
    with contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(
            wrapped,
            (example,),
            dynamo=True,
            optimize=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=(dims,),
        )
    proto = program.model_proto
    for node in proto.graph.node:  # torch's stack traces and node names: a tenth of a small file
        del node.metadata_props[:]
    _store_compact(proto, state.inference_weights())
    info = {
        "model": record.model,
        "model_options": record.model_options,
        "classes": list(record.preprocess.classes),
        "input_shape": list(record.preprocess.input_shape),
        "mean": list(record.preprocess.mean),
        "std": list(record.preprocess.std),
        "input": f"{INPUT_NAME}: uint8 (N, {height}, {width}, 3 or 4), RGB or RGBA",
        "output": f"{OUTPUT_NAME}: float32 (N, {len(record.preprocess.classes)})",
        "checkpoint_sha256": sha256(checkpoint),
    }
    onnx.helper.set_model_props(proto, {"cnnlib": json.dumps(info)})
    onnx.checker.check_model(proto)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, out)
    return out


def _store_compact(proto: Any, weights: dict[str, torch.Tensor]) -> None:
    """Store each float initializer whose checkpoint weight is fp16 or int8 as the checkpoint does, turned
    back into float32 by a node at the head of the graph (a Cast, or a DequantizeLinear along the axis of
    the output units: the exporter may keep a matrix transposed)."""
    import onnx
    from onnx import numpy_helper

    scales = {
        name.removesuffix(INT8_SCALE): scale for name, scale in weights.items() if name.endswith(INT8_SCALE)
    }
    stored = {
        f"model.{name}": tensor for name, tensor in weights.items() if tensor.dtype in (HALF, torch.int8)
    }
    heads = []
    for initializer in proto.graph.initializer:
        tensor = stored.get(initializer.name)
        if tensor is None or initializer.data_type != onnx.TensorProto.FLOAT:
            continue
        name, values = initializer.name, numpy_helper.to_array(initializer)
        if tensor.dtype == HALF:
            initializer.CopyFrom(numpy_helper.from_array(values.astype("float16"), f"{name}.fp16"))
            heads.append(onnx.helper.make_node("Cast", [f"{name}.fp16"], [name], to=onnx.TensorProto.FLOAT))
            continue
        integers, axis = tensor.numpy(), 0
        if values.shape != integers.shape:
            integers, axis = integers.T, 1
        scale = scales[name.removeprefix("model.")].numpy()
        initializer.CopyFrom(numpy_helper.from_array(integers, f"{name}.int8"))
        proto.graph.initializer.extend(
            [
                numpy_helper.from_array(scale, f"{name}.scale"),
                numpy_helper.from_array(np.zeros_like(scale, dtype="int8"), f"{name}.zero"),
            ]
        )
        heads.append(
            onnx.helper.make_node(
                "DequantizeLinear", [f"{name}.int8", f"{name}.scale", f"{name}.zero"], [name], axis=axis
            )
        )
    nodes = heads + list(proto.graph.node)
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)


def _stored(name: str, tensor: torch.Tensor, weights: str) -> dict[str, torch.Tensor]:
    """How a shipped checkpoint stores the weight ``name`` (see :data:`WEIGHTS`): a weight matrix in int8 is
    symmetric, one float32 scale per row (per output unit), its largest weight at ±127 steps."""
    if not tensor.is_floating_point() or weights == "fp32":
        return {name: tensor}
    if weights == "int8" and tensor.dim() == 2:
        matrix = tensor.float()
        scale = (matrix.abs().amax(dim=1) / 127).clamp(min=torch.finfo(torch.float32).tiny)
        return {name: torch.round(matrix / scale[:, None]).to(torch.int8), name + INT8_SCALE: scale}
    return {name: tensor.to(HALF)}


def strip_checkpoint(source: str | os.PathLike, out: str | os.PathLike, weights: str = "fp32") -> Path:
    """Write what ``cnnlib evaluate`` and ``cnnlib predict`` need of a checkpoint to ``out``: the
    evaluated weights (the EMA's where the run kept one) and the run's record, without the optimiser,
    the EMA copy or the random state; floating-point weights stored as ``weights`` says (:data:`WEIGHTS`)."""
    if weights not in WEIGHTS:
        raise UserError(f"Unknown weight storage {weights!r}: choose one of {', '.join(WEIGHTS)}.")
    record, state = read_checkpoint(source)
    kept_weights = {
        key: value
        for name, tensor in state.inference_weights().items()
        for key, value in _stored(name, tensor, weights).items()
    }
    kept = TrainingState(
        kept_weights,
        optimizer=None,
        ema=None,
        epoch=state.epoch,
        steps=state.steps,
        step_seconds=state.step_seconds,
        generator=None,
        torch_rng=None,
    )
    return write_checkpoint(out, record, kept)


def export(checkpoint: str | os.PathLike, out: str | os.PathLike, format: str = "onnx") -> Path:
    """``cnnlib export``: ``checkpoint`` to ``out`` in ``format`` (only "onnx" for now)."""
    if format not in FORMATS:
        raise UserError(f"Unknown export format {format!r}: choose one of {', '.join(FORMATS)}.")
    return export_onnx(checkpoint, out)


def export_for_site(manifest: str | os.PathLike, folder: str | os.PathLike) -> list[dict[str, Any]]:
    """The shipped checkpoints a manifest lists (``benchmarks/ship_checkpoints.py`` writes it), each
    copied into ``folder`` beside its ONNX export, and ``folder/models.json`` listing them for the
    site's live classifier; returns that list. A file already exported from the same checkpoint
    (same SHA-256) is kept."""
    manifest, folder = Path(manifest), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for shipped in json.loads(manifest.read_text())["checkpoints"]:
        checkpoint = manifest.parent / shipped["file"]
        name = checkpoint.stem
        onnx_file, copied = folder / f"{name}.onnx", folder / checkpoint.name
        digest = sha256(checkpoint)
        if digest != shipped["sha256"]:
            raise UserError(
                f"{checkpoint} does not match its SHA-256 in {manifest}: ship it again with "
                f"benchmarks/ship_checkpoints.py."
            )
        if not copied.is_file() or sha256(copied) != digest:
            shutil.copyfile(checkpoint, copied)
        if not onnx_file.is_file() or _exported_from(onnx_file) != digest:
            export_onnx(checkpoint, onnx_file)
        info = json.loads(_onnx_metadata(onnx_file))
        entries.append(
            {
                "name": name,
                "model": info["model"],
                "classes": info["classes"],
                "input_shape": info["input_shape"],
                "mean": info["mean"],
                "test_accuracy": shipped["test_accuracy"],
                "weights": shipped["weights"],
                "onnx": onnx_file.name,
                "onnx_bytes": onnx_file.stat().st_size,
                "checkpoint": copied.name,
                "checkpoint_bytes": copied.stat().st_size,
                "sha256": digest,
            }
        )
    (folder / "models.json").write_text(json.dumps(entries, indent=1) + "\n")
    return entries


def _onnx_metadata(path: Path) -> str:
    import onnx

    props = {prop.key: prop.value for prop in onnx.load(path, load_external_data=False).metadata_props}
    return props.get("cnnlib", "{}")


def _exported_from(path: Path) -> str | None:
    return json.loads(_onnx_metadata(path)).get("checkpoint_sha256")
