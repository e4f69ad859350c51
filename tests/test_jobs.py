"""``jobs/*.py``: the same commands as the CLI, run locally and submitted with ``ray job submit`` to a real Ray head.

The submission test starts its own head (``ray start --head --block``, every service on 127.0.0.1, ports picked
free, a private temp dir) in a new process group and ends it by that group's id in teardown: never ``ray stop``,
which would end every Ray process on the machine, other test sessions' included. Ray is driven through its CLI
next to this interpreter (``Path(sys.executable).parent / "ray"``), never whatever ``ray`` is first on PATH.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path

import pytest

from spectrotune.sources.synth.corpus import generate_corpus

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RAY = BIN / "ray"
JOBS = ("prepare", "train", "tune", "pipeline")
MAX_UPLOAD_BYTES = 5 * 2**20
HEAD_START_TIMEOUT_S = 120
JOB_TIMEOUT_S = 300
TINY = (  # a few seconds of work per stage on 2 cores
    "noise.enabled=false",
    "features.handcrafted=false",
    "train.epochs=1",
    "train.batch_size=8",
    "model.width=4",
    "model.depth=2",
    "evaluate.baselines=false",
    "evaluate.noise_kinds=[white]",
    "evaluate.snr_db=[10]",
)


def _sets(overrides) -> list[str]:
    return [arg for kv in overrides for arg in ("--set", kv)]


def _python_env() -> dict[str, str]:
    """This environment without a Ray address, with the repository importable (as the editable install does)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def _env(ray_tmp: Path) -> dict[str, str]:
    """Environment for Ray processes of this test: private temp dir, loopback, this interpreter's tools."""
    env = _python_env()
    env["RAY_TMPDIR"] = str(ray_tmp)  # ray_current_cluster goes here: no other ray.init() on the machine joins us
    # Without this ray.init("127.0.0.1:PORT") swaps loopback for the machine's outward IP, where nothing listens
    # (ray-project/ray#59110); the job's driver connects that way.
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # Ray's token auth (on by default for a new head) with a token of our own, not the user's ~/.ray/auth_token.
    env["RAY_AUTH_MODE"] = "token"
    env["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # the job's `python` is this venv's, as if activated
    return env


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), int(fields[19])


def _descendants(pid: int) -> list[tuple[int, int]]:
    """(pid, start time) of every live descendant of ``pid`` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        info = _proc_stat(int(stat.parent.name))
        if info is not None:
            children.setdefault(info[0], []).append(int(stat.parent.name))
    out, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        info = _proc_stat(child)
        if info is not None:
            out.append((child, info[1]))
        todo += children.get(child, [])
    return out


def _end_process_group(proc: subprocess.Popen, *, grace_s: float = 5.0) -> None:
    """End what ``proc`` started: its process group (SIGTERM, then SIGKILL), then any descendant that left it."""
    started = _descendants(proc.pid)  # Ray's workers run in process groups of their own
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=grace_s)
            break
        except subprocess.TimeoutExpired:
            continue
    deadline = time.monotonic() + grace_s
    alive = started
    while alive and time.monotonic() < deadline:
        alive = [(pid, t) for pid, t in alive if (_proc_stat(pid) or (0, -1))[1] == t]
        time.sleep(0.2)
    for pid, _ in alive:  # same pid and start time: still the process this test started
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _job_status(text: str, job_id: str) -> str:
    """The status that ``ray job status`` printed: a sentence for a finished job, else ``Status for job ...``."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # colours, if any
    for status, sentence in (("SUCCEEDED", "succeeded"), ("FAILED", "failed"), ("STOPPED", "was stopped")):
        if f"Job '{job_id}' {sentence}" in text:
            return status
    match = re.search(rf"Status for job '{re.escape(job_id)}': (\w+)", text)
    return match.group(1) if match else ""


def _ray(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(RAY), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("jobs") / "corpus"
    generate_corpus(root, genres=3, tracks=3, seconds=6.0, seed=0)
    return root


@pytest.fixture
def ray_tmp():
    # Short and private: Ray's socket paths live under it and must stay under 108 characters.
    path = Path(tempfile.mkdtemp(prefix="st-ray-", dir="/tmp" if os.path.isdir("/tmp") else None))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def ray_head(ray_tmp):
    """A Ray head with its dashboard (job server) on 127.0.0.1; yields ``(dashboard address, env, log path)``."""
    if importlib.util.find_spec("aiohttp") is None:  # a missing dependency must fail CI, not skip the test
        pytest.fail("the Ray job server (dashboard) needs ray[default]: pip install 'ray[default]'")
    gcs, dashboard, agent_http, agent_grpc, env_agent, metrics, client = _free_ports(7)
    log = ray_tmp / "head.log"
    env = _env(ray_tmp)
    cmd = [str(RAY), "start", "--head", "--block", "--disable-usage-stats", "--node-ip-address=127.0.0.1",
           f"--port={gcs}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
           f"--dashboard-port={dashboard}", f"--dashboard-agent-listen-port={agent_http}",
           f"--dashboard-agent-grpc-port={agent_grpc}", f"--runtime-env-agent-port={env_agent}",
           f"--metrics-export-port={metrics}", f"--ray-client-server-port={client}", "--num-cpus=2",
           "--object-store-memory=300000000", f"--temp-dir={ray_tmp / 'ray'}"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)  # its own process group: teardown ends exactly that
    address = f"http://127.0.0.1:{dashboard}"
    # The job API answers only once the head's agent is up, later than the dashboard itself.
    probe = urllib.request.Request(f"{address}/api/jobs/", headers={"Authorization": f"Bearer {env['RAY_AUTH_TOKEN']}"})
    try:
        deadline, last = time.monotonic() + HEAD_START_TIMEOUT_S, "no answer"
        while True:
            if proc.poll() is not None:
                pytest.fail(f"ray start exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(probe, timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError) as e:
                last = repr(e)
            if time.monotonic() > deadline:
                pytest.fail(f"job API not up after {HEAD_START_TIMEOUT_S} s ({last}):\n"
                            f"{log.read_text(errors='replace')[-3000:]}")
            time.sleep(1.0)
        yield address, env, log
    finally:
        _end_process_group(proc)


@pytest.mark.parametrize("job", JOBS)
def test_job_takes_the_cli_options(job):
    done = subprocess.run([sys.executable, str(REPO / "jobs" / f"{job}.py"), "--help"], capture_output=True,
                          text=True, timeout=60, env=_python_env(), check=False)
    assert done.returncode == 0, done.stderr
    assert "--config" in done.stdout and "--set" in done.stdout


def test_prepare_job_runs_locally(corpus, ray_tmp, tmp_path):
    out = tmp_path / "prepared"
    done = subprocess.run(
        [sys.executable, str(REPO / "jobs" / "prepare.py"), "demo", "--source", str(corpus), "--out", str(out),
         "--no-progress", *_sets(TINY)],
        capture_output=True, text=True, timeout=180, env=_env(ray_tmp), cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["tracks"] == 9
    assert "prepared 9 tracks" in done.stdout


def _package(root: Path, *, include_gitignore: bool, excludes: list[str], tmp: Path) -> zipfile.ZipFile:
    """The zip that ``ray job submit --working-dir root`` uploads, built by Ray's own packaging code."""
    from ray._private.runtime_env.packaging import create_package

    path = tmp / "package.zip"
    create_package(str(root), path, include_gitignore=include_gitignore, excludes=excludes)
    return zipfile.ZipFile(path)


def test_working_dir_upload_is_small(tmp_path):
    from ray._private import ray_constants

    # What the CLI does (dashboard_sdk): .gitignore unless RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1, Ray's default
    # excludes, .rayignore.
    package = _package(REPO, include_gitignore=True, excludes=ray_constants.get_runtime_env_default_excludes(),
                       tmp=tmp_path)
    names = package.namelist()
    assert Path(package.filename).stat().st_size < MAX_UPLOAD_BYTES
    assert {"jobs/pipeline.py", "spectrotune/cli.py", "configs/demo.yaml",
            "spectrotune/data/gtzan_fault_filtered/train.txt"} <= set(names)
    heavy = [n for n in names if n.split("/")[0] in (".git", ".venv", "venv", "spectrotune-demo", "out", "runs")
             or "__pycache__" in n or n.endswith((".parquet", ".wav", ".pt", ".safetensors"))]
    assert heavy == []


def test_rayignore_alone_leaves_out_environments_and_data(tmp_path):
    root = tmp_path / "repo"
    kept = ["jobs/pipeline.py", "spectrotune/__init__.py", "spectrotune/data/gtzan_fault_filtered/train.txt",
            "configs/demo.yaml", ".rayignore"]
    dropped = [".git/HEAD", ".venv/lib/site.py", "venv/bin/python", "spectrotune/__pycache__/cli.cpython-311.pyc",
               "data/genres_original/blues/blues.00000.wav", "prepared/gtzan/data/split=train/part-00000.parquet",
               "runs/train-abc/checkpoint_epoch_0001/model.safetensors", "spectrotune-demo/run/bundle/model.pt",
               "spectrotune.egg-info/PKG-INFO", ".pytest_cache/v/cache/nodeids"]
    for rel in kept + dropped:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    shutil.copy(REPO / ".rayignore", root / ".rayignore")
    # No .gitignore and none of Ray's default excludes: .rayignore has to do it all.
    package = _package(root, include_gitignore=False, excludes=[], tmp=tmp_path)
    assert sorted(n for n in package.namelist() if not n.endswith("/")) == sorted(kept)


def test_pipeline_job_submitted_to_a_ray_head(ray_head, corpus, tmp_path):
    address, env, head_log = ray_head
    out = tmp_path / "out"
    job_id = f"spectrotune-test-{uuid.uuid4().hex[:8]}"
    submit = _ray("job", "submit", "--address", address, "--submission-id", job_id, "--working-dir", str(REPO),
                  "--no-wait", "--", "python", "jobs/pipeline.py", "demo", "--source", str(corpus), "--out",
                  str(out), "--no-progress", *_sets(TINY), env=env, timeout=120)
    assert submit.returncode == 0, (submit.stdout[-2000:] + submit.stderr[-2000:]
                                    + "\nhead:\n" + head_log.read_text(errors="replace")[-2000:])
    assert "Uploading package" in submit.stdout + submit.stderr  # the working dir went up as a package

    status, deadline = "", time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        done = _ray("job", "status", "--address", address, job_id, env=env)
        status = _job_status(done.stdout + done.stderr, job_id)
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            break
        time.sleep(3.0)
    logs = _ray("job", "logs", "--address", address, job_id, env=env).stdout
    assert status == "SUCCEEDED", f"job {job_id}: {status or 'no status'}\n{logs[-4000:]}"

    manifest = json.loads((out / "dataset" / "manifest.json").read_text())
    assert manifest["counts"]["tracks"] == 9
    assert len(manifest["timings"]["nodes"]) == 1  # the head is the only node
    assert (out / "run" / "bundle").is_dir()
    report = json.loads((out / "run" / "report" / "report.json").read_text())
    assert "[3/3] evaluating" in logs
    assert f"clip accuracy {report['clip_accuracy']:.3f}" in logs  # the pipeline's headline
