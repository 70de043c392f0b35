"""Helpers the export tests share: a checkpoint's test split, its probabilities from onnxruntime and
from torch (cnnlib's own inference path, never the exported wrapper), and issue 39's bounds on their
agreement: the largest difference of probabilities at most 1e-4 (fp32 and fp16-stored weights alike:
the fp16 values are cast to float32 in the graph, the same values torch loads), the same top-1 on at
least 99.9 % of the test split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cnnlib.evaluate import model_from_checkpoint, predict_logits
from cnnlib.record import read_checkpoint

BOUND, TOP1_SHARE = 1e-4, 0.999


def test_images(checkpoint: Path) -> torch.Tensor:
    """The checkpoint's test split as uint8 (N, C, H, W), fitted as evaluation fits it."""
    from cnnlib.data import load_dataset

    record, _ = read_checkpoint(checkpoint)
    channels, side, _ = record.preprocess.input_shape
    return load_dataset(record.config.dataset, record.config.data_root).fitted(side, channels).test_x


def onnx_probabilities(onnx_file: Path, images: torch.Tensor, chunk: int = 500) -> np.ndarray:
    """onnxruntime's probabilities for uint8 (N, C, H, W) images, given as RGB (N, H, W, 3), ``chunk``
    images a run."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_file))
    rgb = images.expand(-1, 3, -1, -1).permute(0, 2, 3, 1).contiguous().numpy()
    return np.concatenate(
        [session.run(None, {"image": part})[0] for part in np.split(rgb, range(chunk, len(rgb), chunk))]
    )


def torch_probabilities(checkpoint: Path, images: torch.Tensor) -> np.ndarray:
    """cnnlib's probabilities in fp32, without test-time augmentation (the exported graph has none)."""
    model, record = model_from_checkpoint(checkpoint)
    return predict_logits(model, record.preprocess, images, amp=False).softmax(1).numpy()


def agreement(checkpoint: Path, onnx_file: Path) -> tuple[float, float]:
    """The largest difference of probabilities and the share of the same top-1 over the test split."""
    images = test_images(checkpoint)
    ours, theirs = onnx_probabilities(onnx_file, images), torch_probabilities(checkpoint, images)
    np.testing.assert_allclose(ours.sum(1), 1, atol=1e-5)
    return float(np.abs(ours - theirs).max()), float((ours.argmax(1) == theirs.argmax(1)).mean())


def assert_agree(checkpoint: Path, onnx_file: Path) -> None:
    """onnxruntime and torch agree within issue 39's bounds on the checkpoint's test split."""
    largest, same_top1 = agreement(checkpoint, onnx_file)
    assert largest <= BOUND, largest
    assert same_top1 >= TOP1_SHARE, same_top1
