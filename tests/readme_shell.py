"""Run README.md's "Running on a Ray cluster" lines as a user in a new shell would (for ``tests/test_jobs.py``).

The section's fenced bash blocks are parsed into command lines (continuations joined); a line that changed shape
so that it can no longer be found fails, naming the pattern. They run through bash with only what a test must vary:
free ports instead of the fixed defaults (8265, and ``--port``/``--ray-client-server-port``/
``--dashboard-agent-listen-port`` appended to ``ray start``, whose defaults 6379/10001/52365 another Ray on the
machine may hold), ``$PWD/`` (where the jobs' data and outputs go) set to a temporary folder, a private
``RAY_TMPDIR`` and ``HOME`` (the token file), and the project's ``activate`` script where the README says
``.venv/bin/activate``. The shell starts without any Ray variable, virtual environment or ``PYTHONPATH`` from the
test's process: what it needs, the README must say.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BIN = Path(sys.executable).parent
SECTION = "## Running on a Ray cluster"
LOCAL_ADDRESS = "http://127.0.0.1:8265"
JOBS = ("prepare", "train", "tune", "pipeline")
HEAD_START_TIMEOUT_S = 180
JOB_TIMEOUT_S = 420


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


def fresh_shell_env(home: Path, ray_tmp: Path) -> dict[str, str]:
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
    env = fresh_shell_env(home, ray_tmp)
    shell = Shell(env=env, work=work, dashboard_port=dashboard, log=ray_tmp / "shell.log")
    lines = []
    for line in setup:
        line = shell.adapt(line).replace(".venv/bin/activate", shlex.quote(str(_activate_script())))
        if " ray start --head " in f" {line} ":  # right after it: a trailing comment stays a comment
            line = line.replace("ray start --head", f"ray start --head --port={gcs} --ray-client-server-port={client} "
                                                    f"--dashboard-agent-listen-port={agent}", 1)
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


def job_api(address: str, token: str | None) -> int:
    """HTTP status of the job API's list (0: no answer)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{address}/api/jobs/", headers=headers), timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return 0


def wait_for_job_api(shell: Shell, home: Path) -> None:
    deadline = time.monotonic() + HEAD_START_TIMEOUT_S
    while job_api(shell.address, _token(home)) != 200:
        if time.monotonic() > deadline:
            pytest.fail(f"job API at {shell.address} not up after {HEAD_START_TIMEOUT_S} s:\n{tail(shell.log)}")
        time.sleep(1.0)


def tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else "(no log)"


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


def submit_and_wait(shell: Shell, lines: LocalHead, job: str, *, overrides=()) -> tuple[str, str]:
    """Run the README's submit line of ``job`` (``--no-progress`` and ``--set`` ``overrides`` appended); with
    ``--no-wait``, its status line until the job ends. Returns the submission id and the job's logs (the README's
    logs line). Fails unless the job SUCCEEDED."""
    tiny = " --no-progress " + " ".join(f"--set {shlex.quote(kv)}" for kv in overrides)
    done = shell.run(shell.adapt(lines.submit[job]) + tiny, timeout=JOB_TIMEOUT_S)
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
    assert status == "SUCCEEDED", (f"job {job_id} ({job}): {status or 'no status'}\n{output[-2000:]}\n"
                                   f"{logs.stdout[-4000:]}")
    if "--no-wait" not in lines.submit[job]:
        assert done.returncode == 0, output[-3000:]
    assert logs.returncode == 0, logs.stderr[-2000:]
    return job_id, logs.stdout
