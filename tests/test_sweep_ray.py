"""Sweeps on a real Ray cluster (a head node with 2 CPUs, started here): the same
results.csv as a local sweep, a failing run recorded while the others finish, a killed
driver resumed without redoing finished runs, and an address with no cluster behind it
as one sentence. Without an address a sweep starts a cluster of its own, which a stale
cluster file does not stop, with no dashboard and nothing listening beyond the loopback.
Every Ray started here keeps its files in a temporary folder of its own, so that no test
leaves a cluster file in /tmp/ray for a later ``ray.init()`` to find."""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pandas as pd
import psutil
import pytest

from cnnlib.cli import main

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

# Two epochs of LeNet-5 on scikit-learn's digits, one thread per run: deterministic.
QUICK = ["--param", "dataset=digits", "--param", "subset=300", "--param", "epochs=2", "--param", "device=cpu"]
WALL_CLOCK = ["train_seconds"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ray_temp_dir() -> Path:
    """A folder of its own for one Ray's files, its sockets among them: under /tmp, as a Unix socket's
    path must fit in 107 bytes."""
    return Path(tempfile.mkdtemp(prefix="cnnlib-ray-", dir="/tmp"))


@pytest.fixture(scope="module")
def cluster() -> str:
    """The address of a Ray head node with 2 CPUs, stopped when the module's tests are done."""
    port, temp_dir = _free_port(), _ray_temp_dir()
    previous = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # a head and its drivers on one machine, started here
    ray = str(Path(sys.executable).parent / "ray")  # the command line of the Ray installed beside this Python
    # `ray start` writes the head's address into its temp folder (ray_current_cluster) and leaves it there.
    head = subprocess.Popen(
        [
            ray,
            "start",
            "--head",
            "--num-cpus",
            "2",
            "--temp-dir",
            str(temp_dir),
            "--num-gpus",
            "0",
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            str(port),
            "--include-dashboard",
            "false",
            "--disable-usage-stats",
            "--block",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{port}"
    try:
        # Ready when `ray status` reads the cluster, not when its port first answers: on 2 busy cores the head
        # accepts connections well before a driver can join it.
        deadline = time.monotonic() + 180
        while subprocess.run([ray, "status", "--address", address], capture_output=True).returncode != 0:
            assert head.poll() is None and time.monotonic() < deadline, "the Ray head did not start"
            time.sleep(1)
        yield address
    finally:
        head.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started
        head.wait(timeout=60)
        shutil.rmtree(temp_dir, ignore_errors=True)
        os.environ.pop("RAY_AUTH_MODE") if previous is None else os.environ.update(RAY_AUTH_MODE=previous)


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_a_ray_sweep_gives_the_same_results_as_a_local_one(capsys, tmp_path, cluster):
    grid = ["--grid", "lr=0.05,0.01", "--grid", "optimizer=sgd,adam", *QUICK]
    # --jobs 2 on 2 cores gives each local run one thread, as --cpus-per-run 1 does on Ray.
    assert cli(capsys, "sweep", "train", *grid, "--jobs", "2", "--out", str(tmp_path / "local"))[0] == 0
    status, out, err = cli(
        capsys,
        "sweep",
        "train",
        *grid,
        "--executor",
        "ray",
        "--address",
        cluster,
        "--out",
        str(tmp_path / "ray"),
    )

    assert status == 0 and "4 runs, 0 already finished, 4 to run, on Ray" in out, err
    assert "4 of 4 runs finished" in out, err
    assert "finished=4, failed=0, running=0" in err  # the progress bar
    local, on_ray = (pd.read_csv(tmp_path / name / "results.csv") for name in ("local", "ray"))
    assert list(on_ray.columns) == list(local.columns)
    pd.testing.assert_frame_equal(
        on_ray.drop(columns=WALL_CLOCK), local.drop(columns=WALL_CLOCK), check_exact=True
    )
    histories = [pd.read_csv(tmp_path / name / "histories.csv") for name in ("local", "ray")]
    timing = [column for column in histories[0].columns if "second" in column or column == "time"]
    pd.testing.assert_frame_equal(histories[1].drop(columns=timing), histories[0].drop(columns=timing))
    run = tmp_path / "ray" / "runs" / "lr=0.05_optimizer=sgd"
    assert {"metrics.json", "history.csv", "status.json"} <= {path.name for path in run.iterdir()}
    assert not (run / "checkpoint.pt").exists()  # only with --fetch-checkpoints


def test_a_failing_run_on_ray_is_recorded_and_the_others_finish(capsys, tmp_path, cluster):
    status, out, err = cli(
        capsys,
        "sweep",
        "train",
        "--grid",
        "option.variant=tiny,modern",
        *QUICK,
        "--executor",
        "ray",
        "--address",
        cluster,
        "--fetch-checkpoints",
        "--out",
        str(tmp_path),
    )
    assert (tmp_path / "results.csv").exists(), err
    results = pd.read_csv(tmp_path / "results.csv")
    assert status == 2 and "1 of 2 runs finished" in out and "1 run(s) failed" in err
    assert list(results["status"]) == ["failed", "ok"]
    assert "Unknown LeNet-5 variant 'tiny'" in results["error"][0]
    assert (tmp_path / "runs" / "variant=modern" / "checkpoint.pt").stat().st_size > 0


def test_a_run_whose_worker_dies_is_retried_once_then_recorded(capsys, tmp_path, cluster):
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("crash = False\nattempts = ''", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(
                "import os, signal\n"
                "if crash:  # count the attempt, then kill the Ray worker of this kernel\n"
                "    open(attempts, 'a').write('attempt\\n')\n"
                "    os.kill(os.getppid(), signal.SIGKILL)"
            ),
        ]
    )
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (tmp_path / "notebooks").mkdir()
    target = tmp_path / "notebooks" / "crash.ipynb"
    nbformat.write(notebook, target)
    attempts = tmp_path / "attempts.txt"
    status, out, _ = cli(
        capsys,
        "sweep",
        str(target),
        "--grid",
        "crash=true,false",
        "--param",
        f"attempts={attempts}",
        "--executor",
        "ray",
        "--address",
        cluster,
        "--out",
        str(tmp_path / "sweep"),
    )
    results = pd.read_csv(tmp_path / "sweep" / "results.csv")
    assert status == 2 and list(results["status"]) == ["failed", "ok"]
    assert results["error"][0].startswith("WorkerCrashedError: "), results["error"][0]
    assert attempts.read_text().splitlines() == ["attempt", "attempt"]  # retried once
    assert (tmp_path / "sweep" / "runs" / "crash=False" / "crash.ipynb").exists()  # the executed notebook


def test_a_killed_driver_resumes_without_redoing_finished_runs(capsys, tmp_path, cluster):
    argv = [
        "sweep",
        "train",
        "--grid",
        "lr=0.05,0.02,0.01",
        *QUICK,
        "--executor",
        "ray",  # 2 CPUs a run:
        "--address",
        cluster,
        "--cpus-per-run",
        "2",
        "--out",
        str(tmp_path),
    ]  # one run at a time
    driver = subprocess.Popen(
        [sys.executable, "-m", "cnnlib", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ,
    )
    statuses = [tmp_path / "runs" / f"lr={lr}" / "status.json" for lr in ("0.05", "0.02", "0.01")]
    deadline = time.monotonic() + 90
    while not any(path.exists() for path in statuses):
        assert driver.poll() is None and time.monotonic() < deadline, "no run finished"
        time.sleep(0.05)
    driver.kill()
    driver.wait()
    finished = {path: path.stat().st_mtime_ns for path in statuses if path.exists()}
    assert 1 <= len(finished) < 3

    status, out, err = cli(capsys, *argv)

    assert status == 0, err
    assert f"3 runs, {len(finished)} already finished, {3 - len(finished)} to run" in out
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in finished.items())
    assert (pd.read_csv(tmp_path / "results.csv")["status"] == "ok").all()


def test_an_address_with_no_cluster_behind_it_is_one_sentence(capsys, tmp_path):
    address = f"127.0.0.1:{_free_port()}"
    started = time.monotonic()
    status, _, err = cli(
        capsys,
        "sweep",
        "train",
        "--grid",
        "lr=0.05,0.01",
        *QUICK,
        "--executor",
        "ray",
        "--address",
        address,
        "--out",
        str(tmp_path),
    )
    assert status == 2 and time.monotonic() - started < 30
    assert f"cnnlib: error: No Ray cluster answers at {address}: start one with `ray start --head`" in err
    assert "Traceback" not in err


def _listening(pid: int) -> dict[str, str]:
    """The TCP addresses (HOST:PORT) that process ``pid`` and its descendants listen on, each with its
    process's program: the Python script it runs, the title Ray gave it (``ray::IDLE``), or its executable."""
    found = {}
    try:
        processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return found
    for process in processes:
        try:
            command = process.cmdline() or [process.name()]
            program = next((word for word in command if word.endswith(".py")), command[0].split(" ")[0])
            found |= {
                f"{entry.laddr.ip}:{entry.laddr.port}": program
                for entry in process.net_connections(kind="tcp")
                if entry.status == psutil.CONN_LISTEN
            }
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            pass
    return found


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.rpartition(":")[0].strip("[]"))
    # ::ffff:127.0.0.1 is the IPv4 loopback on an IPv6 socket.
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


def test_without_an_address_a_sweep_starts_its_own_cluster_on_the_loopback_despite_a_stale_cluster_file(
    tmp_path,
):
    # What a stopped `ray start` leaves behind: Ray's temp folder naming a head that is gone, which
    # `ray.init()` without an address retries for minutes.
    temp_dir = _ray_temp_dir()
    (temp_dir / "ray").mkdir()
    (temp_dir / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{_free_port()}")
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    env |= {"RAY_TMPDIR": str(temp_dir), "RAY_AUTH_MODE": "disabled"}  # no token written to ~/.ray by a test
    log = tmp_path / "driver.log"
    argv = [
        "sweep",
        "train",
        "--grid",
        "lr=0.05,0.01",
        *QUICK,
        "--executor",
        "ray",
        "--out",
        str(tmp_path / "out"),
    ]
    listening: dict[str, str] = {}
    with open(log, "w") as output:
        driver = subprocess.Popen(
            [sys.executable, "-m", "cnnlib", *argv],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 120
            while driver.poll() is None:
                assert time.monotonic() < deadline, f"not finished in 120 s: {log.read_text()[-2000:]}"
                listening |= _listening(driver.pid)
                time.sleep(0.5)
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started
            driver.wait()
            shutil.rmtree(temp_dir, ignore_errors=True)
    assert driver.returncode == 0 and "2 of 2 runs finished" in log.read_text(), log.read_text()[-2000:]
    assert any(program.endswith("gcs_server") for program in listening.values()), listening  # Ray was seen
    # Neither the dashboard (ray/dashboard/dashboard.py) nor its agent (ray::DashboardAgent).
    assert not [program for program in listening.values() if "dashboard" in program.lower()], listening
    assert [address for address in listening if not _loopback(address)] == [], listening
