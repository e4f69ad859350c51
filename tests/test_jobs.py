"""``jobs/*.py`` and README.md's "Running on a Ray cluster": the documented lines, run as written.

The section's fenced bash blocks are parsed into command lines (continuations joined) and run through bash as a
user in a new shell would run them, with only what a test must vary: free ports instead of the fixed defaults
(8265, and ``--port``/``--ray-client-server-port``/``--dashboard-agent-listen-port`` appended to ``ray start``, whose
defaults 6379/10001/52365 another Ray on the machine may hold), ``$PWD/`` (where the jobs' data and outputs go) set
to a temporary folder, a private ``RAY_TMPDIR`` and ``HOME`` (the token file), the project's ``activate`` script
where the README says ``.venv/bin/activate``, and tiny ``--set`` overrides appended to each job. The shell starts
without any Ray variable, virtual environment or ``PYTHONPATH`` from this process: what it needs, the README must
say. A line that changes shape so that it can no longer be found fails the test, naming the pattern.

``HOME`` holds the token that any earlier ``spectrotune`` command leaves in ``~/.ray/auth_token`` (its own Ray's
``ray.init`` creates it): with that file a head turns token authentication on by itself, which is where a
submission without ``RAY_AUTH_MODE=token`` fails with "Missing authentication token". One head serves the four
submissions; a second one checks the token step alone in an empty ``HOME``. Each head is started in a process
group of its own and ended by that group's id (and its members' descendants), never by ``ray stop``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from ray_processes import end_group, exposed, group_and_descendants

from spectrotune.bundle import load_bundle
from spectrotune.schema import BUNDLE_DIR, BUNDLE_META, MANIFEST, REPORT_JSON, RESULTS_CSV, SWEEP_JSON

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
RUNTIME_ENV = REPO / "jobs" / "runtime_env.yaml"
PYPROJECT = REPO / "pyproject.toml"
BIN = Path(sys.executable).parent
SECTION = "## Running on a Ray cluster"
LOCAL_ADDRESS = "http://127.0.0.1:8265"
JOBS = ("prepare", "train", "tune", "pipeline")
TRACKS = 12  # the README's synth line: 3 genres x 4 tracks
MAX_UPLOAD_BYTES = 5 * 2**20
HEAD_START_TIMEOUT_S = 180
JOB_TIMEOUT_S = 420
TINY = (  # a few seconds of work per stage on 2 cores
    "noise.enabled=false",
    "features.handcrafted=false",
    "train.batch_size=8",
    "model.width=4",
    "model.depth=2",
    "evaluate.baselines=false",
    "evaluate.noise_kinds=[white]",
    "evaluate.snr_db=[10]",
)


# ------------------------------------------------------------------------------------------ the README's lines


def section_blocks(text: str) -> list[list[str]]:
    """The command lines of each fenced bash block of the section (up to its first subsection), in order."""
    start = text.find(f"\n{SECTION}\n")
    assert start >= 0, f"README.md has no {SECTION!r} section"
    body = text[start + len(SECTION) + 2:]
    body = body[:min((i for i in (body.find("\n## "), body.find("\n### ")) if i >= 0), default=len(body))]
    blocks = []
    for block in re.findall(r"^```bash\n(.*?)^```", body, flags=re.S | re.M):
        lines, current = [], ""
        for raw in block.splitlines():
            current += raw.strip()
            if current.endswith("\\"):
                current = current[:-1].rstrip() + " "
                continue
            if current:
                lines.append(current)
            current = ""
        blocks.append(lines)
    return blocks


def _one(lines: list[str], pattern: str, what: str) -> str:
    found = [line for line in lines if re.search(pattern, line)]
    assert len(found) == 1, (f"README.md {SECTION!r}: expected one {what} line matching {pattern!r}, found "
                             f"{len(found)}: {found}")
    return found[0]


@dataclass(frozen=True)
class LocalHead:
    """The README's lines for a local head: the setup (up to and including ``ray start``), then the rest."""

    setup: list[str]
    synth: str
    submit: dict[str, str]  # job -> its ``ray job submit`` line
    status: str
    logs: str


def local_head_lines() -> LocalHead:
    blocks = section_blocks(README.read_text(encoding="utf-8"))
    heads = [(i, j) for i, block in enumerate(blocks) for j, line in enumerate(block) if " ray start --head " in
             f" {line} "]
    assert len(heads) == 1, f"README.md {SECTION!r}: expected one `ray start --head` line, found {len(heads)}"
    b, h = heads[0]
    setup = blocks[b][:h + 1]
    later = blocks[b][h + 1:] + [line for block in blocks[b + 1:] for line in block]
    submit = {}
    for job in JOBS:
        submit[job] = _one(later, rf"^ray job submit --address {re.escape(LOCAL_ADDRESS)} --working-dir \. "
                                  rf"(--no-wait )?-- python jobs/{job}\.py ", f"`ray job submit ... jobs/{job}.py`")
    return LocalHead(
        setup=setup,
        synth=_one(later, r"^spectrotune synth ", "`spectrotune synth`"),
        submit=submit,
        status=_one(later, rf"^ray job status --address {re.escape(LOCAL_ADDRESS)} <submission-id>$",
                    "`ray job status`"),
        logs=_one(later, rf"^ray job logs --address {re.escape(LOCAL_ADDRESS)} <submission-id>$", "`ray job logs`"),
    )


def test_the_readme_lines_this_file_runs_are_there():
    lines = local_head_lines()
    assert "--no-wait" in lines.submit["prepare"]  # the line that status and logs follow
    for line in [lines.synth, *lines.submit.values()]:
        assert "$PWD/" in line, f"paths of a job must be absolute (the job runs in the uploaded copy): {line}"


# --------------------------------------------------------------------------------- running them as a user would


@dataclass
class Shell:
    """The state of the user's shell after the setup lines: its environment, and the values this test varies."""

    env: dict[str, str]
    work: Path
    dashboard_port: int
    log: Path

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def adapt(self, line: str) -> str:
        """The README's line with this test's port and work folder (``$PWD/``)."""
        return (line.replace(LOCAL_ADDRESS, self.address)
                .replace("--dashboard-port=8265", f"--dashboard-port={self.dashboard_port}")
                .replace("$PWD/", f"{self.work}/"))

    def run(self, line: str, *, timeout: float = 120) -> subprocess.CompletedProcess:
        """``line`` through bash in this shell's environment, from the repository root."""
        done = subprocess.run([_bash(), "-c", line], env=self.env, cwd=REPO, capture_output=True, text=True,
                              timeout=timeout, check=False)
        with open(self.log, "a", encoding="utf-8") as log:
            log.write(f"$ {line}\n[{done.returncode}]\n{done.stdout}{done.stderr}\n")
        return done


def _bash() -> str:
    bash = shutil.which("bash")
    if bash is None:
        pytest.fail("the README's commands are bash: no bash on PATH")
    return bash


def _fresh_shell_env(home: Path, ray_tmp: Path) -> dict[str, str]:
    """A new login's environment: this one without Ray variables, virtual environment or PYTHONPATH; own HOME."""
    dropped = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") and k not in dropped}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() != BIN.resolve()]
    env["PATH"] = os.pathsep.join(path or ["/usr/bin", "/bin"])
    env["HOME"] = str(home)
    env["RAY_TMPDIR"] = str(ray_tmp)  # Ray's session folder: ours, so no other Ray on the machine finds this head
    return env


def _free_ports(n: int) -> list[int]:
    import socket

    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        ports = [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
    # Ray gives its workers ports 10002-19999 by default and refuses a component port in that range.
    assert all(p >= 20000 for p in ports), f"the OS handed out ports in Ray's worker range: {ports}"
    return ports


def _activate_script() -> Path:
    script = BIN / "activate"
    if not script.is_file():
        pytest.fail(f"the README activates the project's virtual environment; {sys.executable} has no {script}")
    return script


def start_head(home: Path, ray_tmp: Path, work: Path, setup: list[str]) -> tuple[Shell, int, int | None, Path]:
    """Run the README's setup lines in one bash in a new session (process group).

    Returns the shell, the group's id (also when a line failed, so that the caller ends whatever started), bash's
    exit status (None: still running after the timeout) and the file bash wrote its final environment to.
    """
    dashboard, gcs, client, agent = _free_ports(4)
    env = _fresh_shell_env(home, ray_tmp)
    shell = Shell(env=env, work=work, dashboard_port=dashboard, log=ray_tmp / "shell.log")
    lines = []
    for line in setup:
        line = shell.adapt(line).replace(".venv/bin/activate", shlex.quote(str(_activate_script())))
        if " ray start --head " in f" {line} ":
            line += f" --port={gcs} --ray-client-server-port={client} --dashboard-agent-listen-port={agent}"
        lines.append(line)
    env_file = ray_tmp / "shell.env"
    script = "set -e\n" + "\n".join(lines) + f"\nenv -0 > {shlex.quote(str(env_file))}\n"
    with open(shell.log, "w", encoding="utf-8") as log:
        log.write(script + "\n")
        log.flush()
        proc = subprocess.Popen([_bash(), "-c", script], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        proc.wait(timeout=HEAD_START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    return shell, proc.pid, proc.returncode, env_file


def _token(home: Path) -> str:
    return (home / ".ray" / "auth_token").read_text().strip()


def _job_api(address: str, token: str | None) -> int:
    """HTTP status of the job API's list (0: no answer)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{address}/api/jobs/", headers=headers), timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return 0


def _wait_for_job_api(shell: Shell, home: Path) -> None:
    deadline = time.monotonic() + HEAD_START_TIMEOUT_S
    while _job_api(shell.address, _token(home)) != 200:
        if time.monotonic() > deadline:
            pytest.fail(f"job API at {shell.address} not up after {HEAD_START_TIMEOUT_S} s:\n{_tail(shell.log)}")
        time.sleep(1.0)


def _tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else "(no log)"


@pytest.fixture(scope="module")
def ray_tmp():
    # Short and private: Ray's socket paths live under it and must stay under 108 characters.
    path = Path(tempfile.mkdtemp(prefix="st-jobs-", dir="/tmp" if os.path.isdir("/tmp") else None))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def readme_head(tmp_path_factory, ray_tmp):
    """The README's local head, started by its own lines in a new shell; yields the shell after them."""
    lines = local_head_lines()
    home = tmp_path_factory.mktemp("home")
    # What an earlier `spectrotune` command leaves there: its own Ray's ray.init creates ~/.ray/auth_token.
    made = subprocess.run(
        [sys.executable, "-c", "from ray._private.authentication.authentication_token_setup import "
                               "generate_and_save_token as g; g()"],
        env={**_fresh_shell_env(home, ray_tmp), "PATH": os.environ.get("PATH", "")}, capture_output=True, text=True,
        timeout=120, check=False)
    assert made.returncode == 0 and (home / ".ray" / "auth_token").is_file(), made.stderr
    work = tmp_path_factory.mktemp("work")
    shell, pgid, rc, env_file = start_head(home, ray_tmp, work, lines.setup)
    try:
        if rc != 0:
            pytest.fail(f"the README's setup lines failed (exit {rc}):\n{_tail(shell.log)}")
        shell.env = dict(kv.split("=", 1) for kv in env_file.read_text().split("\0") if "=" in kv)
        _wait_for_job_api(shell, home)
        synth = shell.run(shell.adapt(lines.synth))
        assert synth.returncode == 0, synth.stdout[-2000:] + synth.stderr[-2000:]
        yield shell, lines, pgid
    finally:
        end_group(pgid)


def _tiny(line: str) -> str:
    return line + " --no-progress " + " ".join(f"--set {shlex.quote(kv)}" for kv in TINY)


def _submission_id(output: str) -> str:
    found = re.findall(r"Job '(raysubmit_\w+)' submitted successfully", output)
    assert found, f"no submission id in:\n{output[-3000:]}"
    return found[0]


def _status(text: str, job_id: str) -> str:
    """The status that ``ray job status`` printed: a sentence for a finished job, else ``Status for job ...``."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # colours, if any
    for status, sentence in (("SUCCEEDED", "succeeded"), ("FAILED", "failed"), ("STOPPED", "was stopped")):
        if f"Job '{job_id}' {sentence}" in text:
            return status
    match = re.search(rf"Status for job '{re.escape(job_id)}': (\w+)", text)
    return match.group(1) if match else ""


def submit_and_wait(shell: Shell, lines: LocalHead, job: str) -> tuple[str, str]:
    """Run the README's submit line of ``job``; with ``--no-wait``, its status line until the job ends. Returns the
    submission id and the job's logs (the README's logs line). Fails unless the job SUCCEEDED."""
    done = shell.run(_tiny(shell.adapt(lines.submit[job])), timeout=JOB_TIMEOUT_S)
    output = done.stdout + done.stderr
    assert "Missing authentication token" not in output, output[-3000:]
    job_id = _submission_id(output)
    status, deadline = _status(output, job_id), time.monotonic() + JOB_TIMEOUT_S
    while status not in ("SUCCEEDED", "FAILED", "STOPPED") and time.monotonic() < deadline:
        polled = shell.run(shell.adapt(lines.status).replace("<submission-id>", job_id))
        status = _status(polled.stdout + polled.stderr, job_id)
        if status not in ("SUCCEEDED", "FAILED", "STOPPED"):
            time.sleep(3.0)
    logs = shell.run(shell.adapt(lines.logs).replace("<submission-id>", job_id))
    assert status == "SUCCEEDED", f"job {job_id} ({job}): {status or 'no status'}\n{output[-2000:]}\n{logs.stdout[-4000:]}"
    if "--no-wait" not in lines.submit[job]:
        assert done.returncode == 0, output[-3000:]
    assert logs.returncode == 0, logs.stderr[-2000:]
    return job_id, logs.stdout


def test_the_head_listens_on_loopback_only(readme_head):
    _, _, pgid = readme_head
    procs = list(group_and_descendants(pgid).values())
    seen, bad = exposed(procs)
    assert any("gcs_server" in who for who in seen.values()), sorted(set(seen.values()))
    assert any("ray_client_server" in who or "ray.util.client.server" in who for who in seen.values()), seen
    assert not bad, "the README's head listens beyond loopback:\n" + "\n".join(bad)


def test_pipeline_job(readme_head):
    shell, lines, _ = readme_head
    _, logs = submit_and_wait(shell, lines, "pipeline")
    out = shell.work / "out" / "pipeline"
    manifest = json.loads((out / "dataset" / MANIFEST).read_text())
    assert manifest["counts"]["tracks"] == TRACKS
    assert len(manifest["timings"]["nodes"]) == 1  # the head is the only node
    bundle = load_bundle(out / "run" / BUNDLE_DIR)
    assert bundle.labels == list(manifest["labels"])
    report = json.loads((out / "run" / "report" / REPORT_JSON).read_text())
    assert 0.0 <= report["clip_accuracy"] <= 1.0
    assert f"{report['clip_accuracy']:.3f}" in logs  # the pipeline's headline, in the job's logs


@pytest.fixture(scope="module")
def prepared_job(readme_head):
    shell, lines, _ = readme_head
    job_id, logs = submit_and_wait(shell, lines, "prepare")
    return shell.work / "out" / "prepared", logs


def test_prepare_job_with_status_and_logs(prepared_job):
    out, logs = prepared_job
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["counts"]["tracks"] == TRACKS
    assert f"prepared {TRACKS} tracks" in logs  # the job's own summary line, through `ray job logs`


def test_train_job(readme_head, prepared_job):
    shell, lines, _ = readme_head
    submit_and_wait(shell, lines, "train")
    out = shell.work / "out" / "run"
    meta = json.loads((out / BUNDLE_DIR / BUNDLE_META).read_text())
    assert meta  # bundle.json is written last
    bundle = load_bundle(out / BUNDLE_DIR)
    assert bundle.labels == list(json.loads((prepared_job[0] / MANIFEST).read_text())["labels"])


def test_tune_job(readme_head, prepared_job):
    shell, lines, _ = readme_head
    submit_and_wait(shell, lines, "tune")
    out = shell.work / "out" / "sweep"
    rows = (out / RESULTS_CSV).read_text().splitlines()
    assert len(rows) == 2, rows  # header + the one trial
    summary = json.loads((out / SWEEP_JSON).read_text())
    best = summary["best"]["audio"]
    load_bundle(best["bundle"])
    assert (Path(best["bundle"]) / BUNDLE_META).is_file()
    report = json.loads((out / "best" / "audio" / "report" / REPORT_JSON).read_text())
    assert 0.0 <= report["clip_accuracy"] <= 1.0


def test_the_token_step_works_in_an_empty_home(tmp_path):
    """A brand-new machine: no ~/.ray yet. The README's setup lines make the token and the head asks for it."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="st-jobs-", dir="/tmp" if os.path.isdir("/tmp") else None))
    home = tmp_path / "home"
    home.mkdir()
    shell, pgid, rc, _ = start_head(home, ray_tmp, tmp_path, local_head_lines().setup)
    try:
        assert rc == 0, _tail(shell.log)
        token_file = home / ".ray" / "auth_token"
        assert stat.S_IMODE(token_file.stat().st_mode) & 0o077 == 0, oct(token_file.stat().st_mode)  # owner only
        _wait_for_job_api(shell, home)
        assert _job_api(shell.address, None) == 401  # the head refuses a client without the token
        assert _job_api(shell.address, "0" * 64) == 403
    finally:
        end_group(pgid)
        shutil.rmtree(ray_tmp, ignore_errors=True)


# ------------------------------------------------------------------------------ the runtime environment and upload


def _requirements(specs: list[str]) -> dict[str, tuple]:
    from packaging.requirements import Requirement

    parsed = [Requirement(s) for s in specs]
    names = [r.name.lower().replace("_", "-") for r in parsed]
    assert len(set(names)) == len(names), f"a requirement is listed twice: {specs}"
    return {n: (frozenset(r.extras), str(r.specifier), str(r.marker or "")) for n, r in zip(names, parsed)}


def _pyproject_dependencies() -> list[str]:
    text = PYPROJECT.read_text(encoding="utf-8")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the array of plain strings is simple enough to read directly
        block = re.search(r"^dependencies = \[(.*?)^\]", text, flags=re.S | re.M)
        assert block, "pyproject.toml: no dependencies array"
        return re.findall(r'"([^"]+)"', block.group(1))
    return tomllib.loads(text)["project"]["dependencies"]


def test_runtime_env_carries_every_dependency_of_pyproject():
    env = yaml.safe_load(RUNTIME_ENV.read_text(encoding="utf-8"))
    deps = _pyproject_dependencies()
    assert _requirements(env["pip"]) == _requirements(deps)  # same requirements, same version specs
    assert "torch" in _requirements(env["pip"])
    assert env["working_dir"] == "."
    assert set(env) <= {"working_dir", "pip", "excludes"}, sorted(env)


def test_runtime_env_is_what_ray_job_submit_reads():
    from ray.dashboard.modules.dashboard_sdk import parse_runtime_env_args
    from ray.dashboard.modules.job.cli import submit
    from ray.runtime_env import RuntimeEnv

    assert "--runtime-env" in [opt for p in submit.params for opt in p.opts]
    parsed = parse_runtime_env_args(runtime_env=str(RUNTIME_ENV))  # what `--runtime-env FILE` sends
    assert parsed == yaml.safe_load(RUNTIME_ENV.read_text(encoding="utf-8"))
    checked = RuntimeEnv(**parsed)  # Ray's own validation of every field
    assert checked.pip_config()["packages"] == parsed["pip"]


def test_readme_cluster_commands_use_the_runtime_env():
    lines = [line for block in section_blocks(README.read_text(encoding="utf-8")) for line in block]
    cluster = [line for line in lines if line.startswith("ray job submit") and LOCAL_ADDRESS in line
               and "--runtime-env " in line]
    assert cluster and all("--runtime-env jobs/runtime_env.yaml " in line for line in cluster), cluster
    assert not any("--runtime-env-json" in line for line in lines)  # the partial pip list it once carried


def test_job_takes_the_cli_options():
    for job in JOBS:
        done = subprocess.run([sys.executable, str(REPO / "jobs" / f"{job}.py"), "--help"], capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert "--config" in done.stdout and "--set" in done.stdout, job


def _package(root: Path, *, include_gitignore: bool, excludes: list[str], tmp: Path) -> zipfile.ZipFile:
    """The zip that ``ray job submit`` uploads for ``working_dir: root``, built by Ray's own packaging code."""
    from ray._private.runtime_env.packaging import create_package

    path = tmp / "package.zip"
    create_package(str(root), path, include_gitignore=include_gitignore, excludes=excludes)
    return zipfile.ZipFile(path)


def test_working_dir_upload_is_small(tmp_path):
    from ray._private import ray_constants

    env = yaml.safe_load(RUNTIME_ENV.read_text(encoding="utf-8"))
    # What the CLI does (dashboard_sdk): .gitignore unless RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1, Ray's default
    # excludes plus the runtime env's own, .rayignore.
    package = _package(REPO / env["working_dir"], include_gitignore=True, tmp=tmp_path,
                       excludes=ray_constants.get_runtime_env_default_excludes() + env.get("excludes", []))
    names = package.namelist()
    assert Path(package.filename).stat().st_size < MAX_UPLOAD_BYTES
    assert {"jobs/pipeline.py", "jobs/runtime_env.yaml", "spectrotune/cli.py", "configs/demo.yaml",
            "spectrotune/data/gtzan_fault_filtered/train.txt"} <= set(names)
    heavy = [n for n in names if n.split("/")[0] in (".git", ".venv", "venv", "spectrotune-demo", "out", "runs", "data")
             or "__pycache__" in n or n.endswith((".parquet", ".wav", ".pt", ".safetensors"))]
    assert heavy == []


def test_rayignore_alone_leaves_out_environments_and_data(tmp_path):
    root = tmp_path / "repo"
    kept = ["jobs/pipeline.py", "spectrotune/__init__.py", "spectrotune/data/gtzan_fault_filtered/train.txt",
            "configs/demo.yaml", ".rayignore"]
    dropped = [".git/HEAD", ".venv/lib/site.py", "venv/bin/python", "spectrotune/__pycache__/cli.cpython-311.pyc",
               "data/genres_original/blues/blues.00000.wav", "prepared/gtzan/data/split=train/part-00000.parquet",
               "runs/train-abc/checkpoint_epoch_0001/model.safetensors", "spectrotune-demo/run/bundle/model.pt",
               "spectrotune.egg-info/PKG-INFO", ".pytest_cache/v/cache/nodeids", "data/synth/genres_original/a.wav",
               "out/pipeline/dataset/manifest.json"]
    for rel in kept + dropped:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    shutil.copy(REPO / ".rayignore", root / ".rayignore")
    # No .gitignore and none of Ray's default excludes: .rayignore has to do it all.
    package = _package(root, include_gitignore=False, excludes=[], tmp=tmp_path)
    assert sorted(n for n in package.namelist() if not n.endswith("/")) == sorted(kept)
