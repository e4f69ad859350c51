"""Faults during prepare, sent from outside the process under test at a moment its code does not choose.

- SIGKILL of the whole ``spectrotune prepare`` process group (the driver and the local Ray it started) once a few
  tasks have finished (their done markers appear in the staging folder), then the same command with ``--resume``
  (in this process, on the session's Ray: a resumed run may meet another cluster): the dataset is byte-identical
  to an undisturbed run, and the resumed run ran only the unfinished tasks.
- The same from an ``s3://`` source into an ``s3://`` output on the loopback S3 server, both commands as child
  processes (the Ray workers need the server's AWS variables): the shards are those of the local run, and the
  unreadable object is named in ``errors.parquet`` by its URI.
- SIGKILL of a Ray Data worker while it runs a prepare task (in the session's Ray): Ray retries the task and the
  dataset is byte-identical.

The commands run as child processes in their own process group with a private ``RAY_TMPDIR``, so each starts its
own local Ray, as a user's does; they are ended by their group's id. The undisturbed run is the Python API's on the
session Ray. Every wait has a deadline.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
from ray_processes import kill_group
from s3_server import moto_s3

from spectrotune import dataset as D
from spectrotune import storage
from spectrotune.cli import main as cli_main
from spectrotune.config import load_config
from spectrotune.prepare.driver import prepare
from spectrotune.schema import ERRORS, PREPARE_DONE, SHARDS
from spectrotune.sources.synth.corpus import generate_corpus

BUCKET = "spectrotune-faults"
SETS = ["prepare.files_per_task=1"]  # one file a task: enough tasks that a kill lands mid-run
N_FILES = 2 * 10 + 1  # the corpus below: 2 genres x 10 tracks, and one text file named .wav
RUN_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults") / "corpus"
    generate_corpus(root, genres=2, tracks=10, seconds=4.0, seed=7, borrow=0.0)
    genre = sorted((root / "genres_original").iterdir())[0]
    (genre / f"{genre.name}.00099.wav").write_text("not audio\n" * 50)
    return root


@pytest.fixture(scope="module")
def reference(corpus, ray_session, tmp_path_factory) -> Path:
    """The undisturbed run (Python API, session Ray)."""
    out = tmp_path_factory.mktemp("reference") / "ds"
    result = prepare(corpus, out, config=load_config("demo", overrides=SETS), progress=False, log=lambda _: None)
    assert result.tasks_run == N_FILES and result.tasks_skipped == 0 and result.n_failed == 1
    return out


def _shards(root) -> dict[str, bytes]:
    return {rel: storage.read_bytes(storage.join(root, rel)) for rel in storage.list_files(root)
            if rel.startswith(f"{SHARDS}/")}


def _manifest_without_run_details(root) -> dict:
    m = D.read_manifest(root).to_dict()
    return {k: v for k, v in m.items() if k not in ("timings", "created_unix", "command")}


def _env(extra: dict[str, str], ray_tmp: Path) -> dict[str, str]:
    env = {**os.environ, **extra, "RAY_TMPDIR": str(ray_tmp), "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    return env


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the command's process group and every descendant (Ray's processes), and wait until they are gone."""
    kill_group(proc.pid)
    proc.wait(timeout=30)


def _markers(staging) -> int:
    return sum(1 for rel in storage.list_files(storage.join(staging, PREPARE_DONE))
               if rel.endswith(".json") and not rel.startswith("."))


def _kill_after_markers(args: list[str], *, staging, k: int, env: dict[str, str], ray_tmp: Path) -> int:
    """Start ``spectrotune ARGS``, SIGKILL its whole group once ``k`` tasks are marked done; markers at the kill."""
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "spectrotune.cli", *args], env=_env(env, ray_tmp), stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while _markers(staging) < k:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"prepare {'exited ' + str(proc.returncode) if proc.poll() is not None else 'timed out'}"
                            f" before {k} tasks were done:\n{log.read().decode(errors='replace')[-3000:]}")
            time.sleep(0.05)
    finally:
        _kill_group(proc)
        log.close()
    return _markers(staging)


def _run(args: list[str], *, env: dict[str, str], ray_tmp: Path) -> str:
    proc = subprocess.Popen([sys.executable, "-m", "spectrotune.cli", *args], env=_env(env, ray_tmp),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, text=True)
    try:
        out, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        pytest.fail(f"spectrotune {' '.join(args)} did not finish in {RUN_TIMEOUT_S} s")
    finally:
        _kill_group(proc)  # whatever Ray left behind
    assert proc.returncode == 0, f"spectrotune {' '.join(args)} exited {proc.returncode}:\n{out[-4000:]}"
    return out


def _resumed_counts(log: str, killed_with: int) -> tuple[int, int]:
    found = re.search(r"resuming: (\d+) of (\d+) tasks done, running (\d+)", log)
    assert found, log[-3000:]
    kept, total, ran = map(int, found.groups())
    assert total == N_FILES and kept + ran == total and kept >= killed_with and ran >= 1, found.group(0)
    assert f"resumed: {kept} task(s) kept from the interrupted run, {ran} run" in log
    return kept, ran


@pytest.fixture
def ray_tmp():
    path = Path(tempfile.mkdtemp(prefix="st-faults-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.integration
def test_a_killed_prepare_resumes_running_only_the_unfinished_tasks(corpus, reference, tmp_path, ray_tmp, capsys):
    out = tmp_path / "ds"
    args = ["prepare", "--config", "demo", "--source", str(corpus), "--out", str(out), "--no-progress",
            *(a for kv in SETS for a in ("--set", kv))]
    killed_with = _kill_after_markers(args, staging=tmp_path / ".ds.partial", k=2, env={}, ray_tmp=ray_tmp)
    assert not out.exists() and (tmp_path / ".ds.partial").is_dir()
    capsys.readouterr()
    assert cli_main([*args, "--resume"]) == 0
    captured = capsys.readouterr()
    _resumed_counts(captured.err + captured.out, killed_with)
    assert _shards(out) == _shards(reference)
    assert (out / ERRORS).read_bytes() == (reference / ERRORS).read_bytes()
    assert _manifest_without_run_details(out) == _manifest_without_run_details(reference)
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # the staging folder is gone once published


@pytest.mark.integration
def test_an_s3_source_into_s3_killed_and_resumed_gives_the_local_shards(corpus, reference, ray_tmp, monkeypatch):
    with moto_s3(BUCKET) as env:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        storage.upload(corpus, f"s3://{BUCKET}/corpus")
        source, out = f"s3://{BUCKET}/corpus/", f"s3://{BUCKET}/runs/ds"
        args = ["prepare", "--config", "demo", "--source", source, "--out", out, "--no-progress",
                *(a for kv in SETS for a in ("--set", kv))]
        staging = f"s3://{BUCKET}/runs/.ds.partial"
        killed_with = _kill_after_markers(args, staging=staging, k=2, env=env, ray_tmp=ray_tmp)
        assert not storage.exists(out)
        log = _run([*args, "--resume"], env=env, ray_tmp=ray_tmp)
        _resumed_counts(log, killed_with)
        assert _shards(out) == _shards(reference)
        errors, local_errors = D.read_errors(out).to_pylist(), D.read_errors(reference).to_pylist()
        assert [{**e, "path": e["path"].replace(f"s3://{BUCKET}/corpus", str(corpus))} for e in errors] == local_errors
        assert errors[0]["path"].startswith(f"s3://{BUCKET}/corpus/genres_original/")
        assert "not a readable audio file" in errors[0]["reason"]
        assert D.read_manifest(out).source.path == f"s3://{BUCKET}/corpus"
        assert not storage.exists(staging)


def _prepare_workers() -> list[psutil.Process]:
    """This test process's Ray workers now running a prepare task (Ray names the process after the task)."""
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if " ".join(p.cmdline()).startswith("ray::MapBatches(run)"):
                found.append(p)
        except psutil.Error:
            continue
    return found


@pytest.mark.integration
def test_a_killed_ray_worker_is_retried_and_the_dataset_is_the_same(corpus, reference, tmp_path):
    killed: list[int] = []
    finished = threading.Event()

    def kill_one_worker():
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not finished.is_set() and time.monotonic() < deadline and not killed:
            for p in _prepare_workers():
                try:
                    p.send_signal(signal.SIGKILL)
                    killed.append(p.pid)
                except psutil.Error:
                    continue
                break
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    try:
        result = prepare(corpus, tmp_path / "ds", config=load_config("demo", overrides=SETS), progress=False,
                         log=lambda _: None)
    finally:
        finished.set()
        killer.join(timeout=10)
    assert killed, "no Ray worker was seen running a prepare task"
    assert result.tasks_run == N_FILES
    assert _shards(tmp_path / "ds") == _shards(reference)
    assert (tmp_path / "ds" / ERRORS).read_bytes() == (reference / ERRORS).read_bytes()
