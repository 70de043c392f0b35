"""The benchmark scripts run and write the report the performance page quotes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_eval_batch_benchmark_reports_every_model_and_batch(tmp_path):
    report_file = tmp_path / "eval.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "eval_batch.py"), "--batches", "4", "8", "--images", "8",
               "--repeats", "1", "--out", str(report_file)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    report = json.loads(report_file.read_text())
    rows = [(row["model"], row["batch"]) for row in report["results"]]
    assert rows == [(model, batch) for model in ("lenet5", "resnet18", "resnet18 width=16") for batch in (4, 8)]
    assert all(row["images_per_second"] > 0 for row in report["results"])
    assert report["threads"] >= 1 and report["repeats"] == 1
