"""Hyperparameter sweeps: one run per combination of a grid, in parallel, resumable.

A sweep's target is a chapter notebook (executed with papermill, its ``parameters`` cell
overridden per run) or ``train`` (each run is :func:`cnnlib.train.train` with a
:class:`~cnnlib.config.TrainConfig`; ``option.NAME`` sets the model option ``NAME``).
Every run gets its own folder ``<out>/runs/<name>``, named from the values that vary, and
leaves there its ``metrics.json`` (and, for a notebook, the executed notebook) and a
``status.json``: ``ok``, or ``failed`` with the error. :func:`sweep` gathers them into
``<out>/results.csv``, one row per run, and the runs' per-epoch ``history.csv`` files into
``<out>/histories.csv`` (training curves). Rerunning the same sweep skips the runs whose
status is ``ok`` and reruns the others (a training run killed half-way continues from
its last checkpoint). Parameter names, and for ``train`` every value against its setting's
declaration (:mod:`cnnlib.config`), are checked before anything runs.
:func:`sweep_settings` runs named settings instead of a grid (parameters that go together,
such as an optimiser and its learning rate), each over the same seeds; the hyperparameter
studies of the book (``results/studies``) are made with it.

Runs go to local processes (``executor="local"``, ``jobs`` at a time) or to a Ray cluster
(``executor="ray"`` or a :class:`RayExecutor`): one Ray task per run, with the CPUs and GPUs
it asks for, run in a temporary folder on its node; the task returns the run's files and
the driver writes them under ``out`` exactly as a local run would, so no shared file
system is needed. Without an address the sweep starts a Ray cluster of its own on this
machine, listening on the loopback interface only, and stops it when it ends. Either way one
progress bar counts the finished, failed and running runs. The tables are written atomically
(:func:`cnnlib.checkpoint.atomic_write`) and each run's ``metrics.json`` is read through
:func:`cnnlib.record.read_metrics`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import shutil
import socket
import tempfile
import traceback
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from cnnlib.checkpoint import atomic_write
from cnnlib.errors import UserError

TRAIN = "train"
MODEL_OPTION = "option."
RESULT_COLUMNS = (
    "test_accuracy",
    "val_accuracy",
    "val_loss",
    "final_train_loss",
    "final_train_accuracy",
    "epochs_trained",
    "train_seconds",
    "train_images",
    "validation_images",
    "params",
    "macs",
)
CHECKPOINT = "checkpoint.pt"
STATUS = "status.json"
LOOPBACK = "127.0.0.1"


@dataclasses.dataclass(frozen=True)
class RayExecutor:
    """Where a sweep's runs go on Ray: the cluster's ``address`` (``None``: a new cluster of
    this machine's cores, for this sweep only; ``"auto"``: the one ``ray start`` started on this
    machine), the CPUs and GPUs each run asks for, and whether each run's checkpoint comes back
    to the driver (it can be large)."""

    address: str | None = None
    cpus_per_run: float = 1
    gpus_per_run: float = 0
    checkpoints: bool = False


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of a sweep: its folder name and the parameters it is given."""

    name: str
    parameters: dict[str, Any]


def valid_parameters(target: str) -> list[str]:
    """The names a sweep of ``target`` accepts: a notebook's ``parameters`` cell, or the
    :class:`~cnnlib.config.TrainConfig` fields (plus ``option.NAME`` for model options)."""
    if target == TRAIN:
        from cnnlib.config import sweepable

        return sweepable()
    import papermill

    path = Path(target)
    if path.suffix != ".ipynb" or not path.is_file():
        raise UserError(
            f"The sweep target {target!r} is neither 'train' nor a notebook file: give a .ipynb "
            "path or 'train'."
        )
    names = list(papermill.inspect_notebook(str(path)))
    if not names:
        raise UserError(f"{target} has no cell tagged 'parameters': tag the cell that holds its knobs.")
    return names


def plan(target: str, grid: dict[str, Iterable[Any]], fixed: dict[str, Any], repeats: int = 1) -> list[Run]:
    """Every run of the sweep, in grid order, with seeds ``0..repeats-1``. A grid's values are
    any sequence (a list, a tuple, a range, a NumPy array). Rejects unknown parameter names, a
    parameter given twice, ``repeats`` beside a ``seed`` grid, and for ``train`` any value its
    setting's declaration refuses."""
    names = valid_parameters(target)
    given = [*grid, *fixed]
    unknown = [
        key for key in given if key not in names and not (target == TRAIN and key.startswith(MODEL_OPTION))
    ]
    if unknown:
        raise UserError(
            f"Unknown parameter {unknown[0]!r} for {target}: the valid parameters are {', '.join(names)}."
        )
    twice = sorted(set(grid) & set(fixed))
    if twice:
        raise UserError(f"Parameter {twice[0]!r} is given both as --grid and --param: give it once.")
    if repeats < 1:
        raise UserError(f"--repeats must be at least 1, not {repeats}.")
    grid = {key: _grid_values(key, values) for key, values in grid.items()}
    if repeats > 1:
        if "seed" in given:
            raise UserError("--repeats sets the seeds 0..N-1 itself: leave seed out of --grid and --param.")
        if "seed" not in names:
            raise UserError(f"--repeats needs a 'seed' parameter, and {target} has none.")
        grid["seed"] = list(range(repeats))
    for key, values in grid.items():
        if not values:
            raise UserError(f"--grid {key} has no values: write {key}=VALUE1,VALUE2.")
    if target == TRAIN:
        _check_values(grid, fixed)
    runs = []
    for values in itertools.product(*grid.values()):
        swept = dict(zip(grid, values))
        runs.append(Run(run_name(swept), {**fixed, **swept}))
    if target == TRAIN:
        _check_model_options(runs)
    return runs


def _grid_values(key: str, values: Iterable[Any]) -> list[Any]:
    """A grid's values as a list, from any sequence but a string or a mapping."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise UserError(
            f"The grid of {key} is {values!r}, not a sequence of values: give a list such as [{values!r}]."
        )
    return list(values)


def _check_values(grid: dict[str, list[Any]], fixed: dict[str, Any]) -> None:
    """Check every value of a sweep of ``train`` against its setting's declaration, naming the first
    one refused (model options are checked by the model's registry, in :func:`_check_model_options`)."""
    from cnnlib.config import check_setting

    given = [(key, value) for key, values in grid.items() for value in values] + list(fixed.items())
    for key, value in given:
        if not key.startswith(MODEL_OPTION):
            check_setting(key, value)


def run_name(parameters: dict[str, Any]) -> str:
    """A folder name from the swept parameters: ``lr=0.1_optimizer=sgd`` (``run`` if none)."""
    text = "_".join(f"{key.removeprefix(MODEL_OPTION)}={value}" for key, value in parameters.items())
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "-", text) or "run"


def _check_model_options(runs: list[Run]) -> None:
    from cnnlib import models

    for run in runs:
        options = {
            key.removeprefix(MODEL_OPTION): value
            for key, value in run.parameters.items()
            if key.startswith(MODEL_OPTION)
        }
        if options:
            models.check_options(run.parameters.get("model", "lenet5"), options)


def sweep(
    target: str,
    grid: dict[str, Iterable[Any]],
    fixed: dict[str, Any] | None = None,
    *,
    out: str | os.PathLike,
    repeats: int = 1,
    jobs: int = 1,
    executor: str | RayExecutor = "local",
) -> pd.DataFrame:
    """Run every combination of ``grid`` (plus the ``fixed`` parameters) on ``target`` in
    ``jobs`` local processes or on Ray (``executor``), skip the runs already finished, and
    write ``<out>/results.csv``."""
    runs = plan(target, grid, fixed or {}, repeats)
    out = Path(out)
    _execute_all(
        target, [(run, out / "runs" / run.name) for run in runs], out / "results.csv", jobs, executor
    )
    _write_table(collect_histories(runs, out), out / "histories.csv")
    return collect(runs, out)


def _execute_all(
    target: str, runs: list[tuple[Run, Path]], results: Path, jobs: int, executor: str | RayExecutor
) -> None:
    """Run each (run, folder) whose status is not ``ok``: ``jobs`` at a time here, or on Ray."""
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, not {jobs}.")
    if executor not in ("local", "ray") and not isinstance(executor, RayExecutor):
        raise UserError(f"Unknown executor {executor!r}: use 'local' or 'ray'.")
    on_ray = RayExecutor() if executor == "ray" else executor if isinstance(executor, RayExecutor) else None
    if on_ray and jobs > 1:
        raise UserError(
            "--jobs is for --executor local: on Ray, the cluster's CPUs and --cpus-per-run "
            "decide how many runs go at a time."
        )
    finished = {folder for _, folder in runs if _status(folder).get("status") == "ok"}
    if target == TRAIN:
        for run, folder in runs:
            if folder in finished:
                _check_trained_as_asked(run, folder)
    pending = [(run, folder) for run, folder in runs if folder not in finished]
    where = "on Ray" if on_ray else f"{jobs} at a time"
    print(
        f"{len(runs)} runs, {len(runs) - len(pending)} already finished, {len(pending)} to run, "
        f"{where}; results in {results}",
        flush=True,
    )
    target = target if target == TRAIN else str(Path(target).resolve())
    if on_ray:
        _execute_on_ray(target, pending, on_ray, len(runs))
    else:
        _execute_locally(target, pending, jobs, len(runs))


class _Progress:
    """One bar over the runs of a sweep, with the finished, failed and running counts;
    ``slots`` runs go at a time, so the running ones are the pending ones up to that."""

    def __init__(self, total: int, pending: int, slots: int) -> None:
        self.pending, self.slots, self.failed = pending, slots, 0
        self.bar = tqdm(total=total, initial=total - pending, unit="run", desc="sweep", dynamic_ncols=True)
        self._show()

    def done(self, run: Run, status: dict[str, Any]) -> None:
        """Count ``run`` as finished or failed, and print its line above the bar."""
        self.pending -= 1
        self.failed += status["status"] != "ok"
        self.bar.update()
        self.bar.write(f"{status['status']:>6}  {run.name}  {status['error']}")
        self._show()

    def _show(self) -> None:
        self.bar.set_postfix(
            {
                "finished": self.bar.n - self.failed,
                "failed": self.failed,
                "running": min(self.slots, self.pending),
            }
        )

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


def _execute_locally(target: str, pending: list[tuple[Run, Path]], jobs: int, total: int) -> None:
    """Run the pending runs in this process (``jobs == 1``) or in ``jobs`` spawned processes."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with _Progress(total, len(pending), jobs) as progress:
        if jobs == 1:
            for run, folder in pending:
                progress.done(run, execute_run(target, run, str(folder), threads))
            return
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            futures = {
                pool.submit(execute_run, target, run, str(folder), threads): run for run, folder in pending
            }
            for future in as_completed(futures):
                progress.done(futures[future], future.result())


def _execute_on_ray(target: str, pending: list[tuple[Run, Path]], executor: RayExecutor, total: int) -> None:
    """One Ray task per pending run; each run's files are written under its folder as its task
    returns. A task whose worker dies is retried once, then recorded as failed."""
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install 'cnnlib[cluster]'.") from None
    default = "digits" if target == TRAIN else None
    if any(run.parameters.get("dataset", default) != "digits" for run, _ in pending):
        print(
            "Each Ray node reads the data set from its own disk: set CNNLIB_DATA on every node to a folder "
            "that holds it, or add --param download=true (as `cnnlib train --download`) to fetch MNIST or "
            "CIFAR-10 there.",
            flush=True,
        )
    connected = _connect(executor.address)
    try:
        task = ray.remote(num_cpus=executor.cpus_per_run, num_gpus=executor.gpus_per_run, max_retries=1)(
            _run_remotely
        )
        notebook = None if target == TRAIN else Path(target).read_bytes()
        name = TRAIN if target == TRAIN else Path(target).name
        threads = max(1, int(executor.cpus_per_run))
        tasks = {
            task.remote(name, notebook, run, threads, executor.checkpoints): (run, folder)
            for run, folder in pending
        }
        with _Progress(total, len(pending), _slots(executor, len(pending))) as progress:
            while tasks:
                [ready], _ = ray.wait(list(tasks), num_returns=1)
                run, folder = tasks.pop(ready)
                try:
                    files = ray.get(ready)
                except ray.exceptions.RayError as error:  # the worker died twice, or the task could not run
                    files = {STATUS: json.dumps(_failure(error)).encode()}
                progress.done(run, _store(folder, files))
    finally:
        if connected:
            ray.shutdown()


def _connect(address: str | None) -> bool:
    """Connect to the Ray cluster at ``address``, or start one of this machine's cores (``None``),
    unless already connected; True when this call connected."""
    import ray

    if ray.is_initialized():
        return False
    if not address:
        _start_local_cluster()
        return True
    refused = UserError(
        f"No Ray cluster answers at {address}: start one with `ray start --head` or leave out --address."
    )
    if not _answers(address):  # ray.init would retry for minutes
        raise refused
    try:
        ray.init(address=address, log_to_driver=False, logging_level="warning")
    except ConnectionError:
        raise refused from None
    return True


def _start_local_cluster() -> None:
    """A Ray cluster of this machine's cores for this sweep alone, reachable from this machine only.

    ``address="local"`` starts a new cluster: ``ray.init()`` without an address would first read
    the last ``ray start``'s address from ``/tmp/ray/ray_current_cluster`` and retry it for minutes
    when that cluster is gone. No dashboard. Ray 2.60 turns a node address of 127.0.0.1 into the
    machine's network address (``ray._private.services.get_node_ip_address``) unless its
    ``ENABLE_RAY_CLUSTER`` is off, as Ray sets it on macOS and Windows; with it off during
    ``ray.init`` the GCS, the raylet, the workers, the driver and the agents listen on 127.0.0.1
    alone (measured with ``ss -ltn``; tests/test_sweep_ray.py checks it)."""
    import ray
    from ray._private import ray_constants

    translate = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(
            address="local",
            include_dashboard=False,
            _node_ip_address=LOOPBACK,
            log_to_driver=False,
            logging_level="warning",
        )
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = translate


def _answers(address: str) -> bool:
    """Whether something listens at ``host:port`` (an address that is not one is left to Ray)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not port.isdigit():
        return True
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            return True
    except OSError:
        return False


def _slots(executor: RayExecutor, runs: int) -> int:
    """How many of ``runs`` the cluster holds at a time, from its CPUs and GPUs (for the progress bar)."""
    import ray

    resources = ray.cluster_resources()
    limits = [
        resources.get(kind, 0) / need
        for kind, need in (("CPU", executor.cpus_per_run), ("GPU", executor.gpus_per_run))
        if need
    ]
    return max(1, int(min(limits, default=runs)))


def _run_remotely(
    target: str, notebook: bytes | None, run: Run, threads: int, checkpoint: bool
) -> dict[str, bytes]:
    """On a Ray worker: run ``run`` in a temporary folder and return its files (``checkpoint.pt``
    only when ``checkpoint``), by path relative to the run's folder."""
    with tempfile.TemporaryDirectory(prefix="cnnlib-run-") as temporary:
        root = Path(temporary)
        if notebook is not None:  # the notebook runs from the parent of its folder, as in the repository
            (root / "notebooks").mkdir()
            (root / "notebooks" / target).write_bytes(notebook)
            target = str(root / "notebooks" / target)
        folder = root / "run"
        execute_run(target, run, str(folder), threads)
        return {
            str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*"))
            if path.is_file() and (checkpoint or path.name != CHECKPOINT)
        }


def _store(folder: Path, files: dict[str, bytes]) -> dict[str, Any]:
    """Replace ``folder`` with a run's returned files, its status last; returns the status."""
    shutil.rmtree(folder, ignore_errors=True)
    for name, data in files.items():
        if name != STATUS:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
    status = json.loads(files[STATUS])
    _write_status(folder, status)
    return status


def execute_run(target: str, run: Run, folder: str, threads: int = 1) -> dict[str, Any]:
    """Run one combination into ``folder`` and write its ``status.json``; an error is
    recorded there, not raised, so that the other runs go on. Returns the status."""
    import torch

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    (path / STATUS).unlink(missing_ok=True)
    try:
        if target == TRAIN:
            _train_run(run, path)
        else:
            _notebook_run(target, run, path)
        status = {"status": "ok", "error": ""}
    except Exception as error:  # noqa: BLE001 -- a failed run is a result of the sweep, recorded as such
        status = _failure(error)
    finally:
        torch.set_num_threads(previous_threads)
    _write_status(path, status)
    return status


def _failure(error: BaseException) -> dict[str, Any]:
    """The status of a failed run: the error's type and last line, and the traceback."""
    message = str(error).strip().splitlines()
    return {
        "status": "failed",
        "error": f"{type(error).__name__}: {message[-1] if message else ''}",
        "traceback": traceback.format_exc(),
    }


def _write_status(folder: Path, status: dict[str, Any]) -> None:
    """Write ``status.json`` atomically: a run counts as done only once it is whole."""
    atomic_write(folder / STATUS, (json.dumps(status, indent=2) + "\n").encode())


def _train_run(run: Run, path: Path) -> None:
    from cnnlib.config import TrainConfig
    from cnnlib.train import train

    options = {
        key.removeprefix(MODEL_OPTION): value
        for key, value in run.parameters.items()
        if key.startswith(MODEL_OPTION)
    }
    knobs = {key: value for key, value in run.parameters.items() if not key.startswith(MODEL_OPTION)}
    # A run killed half-way left its checkpoint: continue from it.
    train(TrainConfig(**knobs, model_options=options, out=str(path), resume=True, progress=False))


def _notebook_run(notebook: str, run: Run, path: Path) -> None:
    import papermill

    parameters = dict(run.parameters)
    if "out" in papermill.inspect_notebook(notebook):
        parameters["out"] = str(path.resolve())
    papermill.execute_notebook(
        notebook,
        str(path / Path(notebook).name),
        parameters=parameters,
        cwd=str(Path(notebook).parent.parent),
        kernel_name="python3",
        progress_bar=False,
    )


def _check_trained_as_asked(run: Run, folder: Path) -> None:
    """A finished run is skipped only if it trained what its arm asks for now: an arm declared relative to
    a recipe's preset asks for other values once the preset changes, and a table pairing the new values
    with the old run would misreport it. Else one sentence names the folder and the first difference. A
    setting the run's cnnlib did not have yet is not compared (the run trained as its default does)."""
    from cnnlib.record import saved_settings

    metrics = folder / "metrics.json"
    if not metrics.is_file():
        return
    settings, options = saved_settings(metrics)
    for key, value in run.parameters.items():
        option = key.removeprefix(MODEL_OPTION)
        saved = options if key.startswith(MODEL_OPTION) else settings
        if option in saved and saved[option] != value:
            raise UserError(
                f"{folder} holds a finished run of {option}={saved[option]!r}, but its arm now asks for "
                f"{value!r}: declare the arm by what that run trained, or move the folder aside to train it "
                "again."
            )


def _status(folder: Path) -> dict[str, Any]:
    path = folder / STATUS
    return json.loads(path.read_text()) if path.exists() else {}


def collect(runs: Sequence[Run], out: str | os.PathLike) -> pd.DataFrame:
    """One row per run: its parameters, status, error, seed and results (``metrics.json``),
    written to ``<out>/results.csv``."""
    from cnnlib.record import read_metrics

    out = Path(out)
    rows = []
    for run in runs:
        folder = out / "runs" / run.name
        status = _status(folder)
        metrics_path = folder / "metrics.json"
        finished = status.get("status") == "ok" and metrics_path.exists()
        record = read_metrics(metrics_path) if finished else None
        metrics = record.metrics if record else None  # None: each result below is empty
        row = {"run": run.name, "status": status.get("status", "not run"), "error": status.get("error", "")}
        row |= {
            key.removeprefix(MODEL_OPTION) if key.startswith(MODEL_OPTION) else key: value
            for key, value in run.parameters.items()
        }
        row["seed"] = record.config.seed if record else run.parameters.get("seed")
        row |= {key: getattr(metrics, key, None) for key in RESULT_COLUMNS}
        row |= {
            "epochs_run": getattr(metrics, "epochs", None),
            "device_name": getattr(metrics, "device_name", None),
            "dataset_source": record.dataset_source if record else None,
        }
        rows.append(row)
    frame = pd.DataFrame(rows)
    _write_table(frame, out / "results.csv")
    return frame


def _write_table(frame: pd.DataFrame, path: Path) -> None:
    """``frame`` as CSV at ``path``, atomically; a failed write (a full disk) is one sentence naming
    the file."""
    atomic_write(path, frame.to_csv(index=False).encode())


def collect_histories(runs: Sequence[Run], out: str | os.PathLike) -> pd.DataFrame:
    """The per-epoch ``history.csv`` of every run that left one, with a ``run`` column
    (and the swept parameters) in front: the training curves of a sweep."""
    swept = [
        key
        for key in dict.fromkeys(key for run in runs for key in run.parameters)
        if key != "seed" and len({repr(run.parameters.get(key)) for run in runs}) > 1
    ]
    columns = ["run", "seed", *(key.removeprefix(MODEL_OPTION) for key in swept)]
    frames = []
    for run in runs:
        path = Path(out) / "runs" / run.name / "history.csv"
        if path.exists():
            frames.append(
                pd.read_csv(path).assign(
                    run=run.name,
                    seed=run.parameters.get("seed"),
                    **{key.removeprefix(MODEL_OPTION): run.parameters.get(key) for key in swept},
                )
            )
    if not frames:
        return pd.DataFrame(columns=[*columns, "epoch"])
    histories = pd.concat(frames, ignore_index=True)
    return histories[[*columns, *histories.columns.drop(columns)]]


def locate(path: str | os.PathLike) -> Path:
    """``path`` as written relative to the repository root, found from where a page runs (the root,
    ``notebooks/`` or anywhere with an installed copy of the repository); unchanged if absolute or absent."""
    roots = [Path("."), Path(".."), Path(__file__).resolve().parents[1]]
    return next((root / path for root in roots if (root / path).exists()), Path(path))


def read_sweep(folder: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A finished sweep's ``results.csv`` and ``histories.csv`` (empty if it has none) from ``folder``,
    relative to the repository root (see :func:`locate`) or absolute."""
    found = locate(Path(folder) / "results.csv")
    if not found.exists():
        raise UserError(
            f"No results.csv in {folder}: run the sweep that writes it first, or give its folder."
        )
    histories = found.with_name("histories.csv")
    return pd.read_csv(found), pd.read_csv(histories) if histories.exists() else pd.DataFrame()


def summarise(results: pd.DataFrame, by: str | Sequence[str], metric: str = "test_accuracy") -> pd.DataFrame:
    """Mean, standard deviation, minimum, maximum and number of the finished runs of
    ``metric`` per value of ``by`` (the spread over seeds), in the order the values first appear."""
    keys = [by] if isinstance(by, str) else list(by)
    finished = results[results["status"] == "ok"]
    return (
        finished.groupby(keys, sort=False)[metric]
        .agg(["mean", "std", "min", "max", "count"])
        .rename(columns={"count": "runs"})
        .reset_index()
    )


def arm_table(results: pd.DataFrame, by: str, split: str = "test") -> pd.DataFrame:
    """One row per value of ``by`` (an arm of an experiment), over its seeds: the accuracy on ``split``
    (``test``, or ``val`` for a sweep scored on the validation split; mean, min, max, %), final training
    error (mean, %), parameters, training seconds per run (mean) and the number of finished runs; the
    values in the order they first appear."""
    if split not in ("test", "val"):
        raise UserError(f"split must be 'test' or 'val', not {split!r}.")
    finished = results[results["status"] == "ok"]
    grouped = finished.groupby(by, sort=False)
    accuracy = grouped[f"{split}_accuracy"]
    label = f"{'test' if split == 'test' else 'validation'} accuracy % (mean)"
    table = pd.DataFrame(
        {
            label: accuracy.mean() * 100,
            "min": accuracy.min() * 100,
            "max": accuracy.max() * 100,
            "training error % (mean)": (1 - grouped["final_train_accuracy"].mean()) * 100,
            "parameters": grouped["params"].first(),
            "seconds per run": grouped["train_seconds"].mean(),
            "runs": grouped.size(),
        }
    )
    return table.round({label: 2, "min": 2, "max": 2, "training error % (mean)": 2, "seconds per run": 0})


def time_to_accuracy(
    histories: pd.DataFrame, marks: Sequence[float] = (0.90, 0.93, 0.94), split: str = "val"
) -> pd.DataFrame:
    """One row per ``setting`` of a sweep's ``histories`` (one seed each): its epochs, its best accuracy on
    ``split`` (%), and for each of ``marks`` the seconds of training until the first epoch whose accuracy
    reached it ("not reached" where none did), the time-to-accuracy measure of Page's and Jordan's work."""
    rows = []
    for setting, curve in histories.groupby("setting", sort=False):
        seconds, accuracy = curve["train_seconds"].cumsum(), curve[f"{split}_accuracy"]
        row = {
            "setting": setting,
            "epochs": int(curve["epoch"].max()),
            "best %": round(100 * accuracy.max(), 2),
        }
        for mark in marks:
            reached = seconds[accuracy >= mark]
            row[f"s to {100 * mark:g} %"] = round(float(reached.iloc[0])) if len(reached) else "not reached"
        rows.append(row)
    return pd.DataFrame(rows).set_index("setting")


def sweep_settings(
    target: str,
    settings: dict[str, dict[str, Any]],
    fixed: dict[str, Any] | None = None,
    *,
    out: str | os.PathLike,
    repeats: int = 1,
    jobs: int = 1,
    executor: str | RayExecutor = "local",
) -> pd.DataFrame:
    """One sweep over ``repeats`` seeds per named setting (a dict of parameters that go
    together, such as an optimiser and its learning rate), each in ``<out>/<name>``; the
    rows of all of them, with the name in a ``setting`` column, go to ``<out>/results.csv``."""
    if not settings:
        raise UserError("A study needs at least one setting: give a name and its parameters.")
    out = Path(out)
    planned = {
        name: (plan(target, {}, {**(fixed or {}), **parameters}, repeats), out / run_name({"setting": name}))
        for name, parameters in settings.items()
    }
    _execute_all(
        target,
        [(run, folder / "runs" / run.name) for runs, folder in planned.values() for run in runs],
        out / "results.csv",
        jobs,
        executor,
    )
    frames = [collect(runs, folder).assign(setting=name) for name, (runs, folder) in planned.items()]
    results = pd.concat(frames, ignore_index=True)
    results = results[["setting", *results.columns.drop("setting")]]
    _write_table(results, out / "results.csv")
    histories = pd.concat(
        [collect_histories(runs, folder).assign(setting=name) for name, (runs, folder) in planned.items()],
        ignore_index=True,
    )
    _write_table(histories[["setting", *histories.columns.drop("setting")]], out / "histories.csv")
    return results
