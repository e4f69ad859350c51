"""Faults from outside, for the fault tests: watch Ray's worker logs for a line, then SIGKILL what the test chose.

Used by ``tests/training/test_driver.py`` (kill the training worker process) and ``tests/cluster_script.py`` (kill
a worker node of a two-node cluster). The code under test never takes part: a :class:`KillOnLine` thread polls the
``worker-*.out`` files Ray writes for every worker process (named ``worker-<worker id>-<job id>-<pid>.out``), and
the moment a new line starts with the wanted prefix (e.g. ``epoch 2/3:``, the line rank 0 prints after an epoch)
it calls its action, which sends SIGKILL: at a moment the training loop does not choose and cannot delay.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

WORKER_LOGS = "worker-*.out"


def log_pid(path: Path) -> int:
    """The pid of the Ray worker process that writes the log file ``path`` (the last ``-`` field of its name)."""
    return int(path.stem.rsplit("-", 1)[1])


def kill_tree(pid: int, *, expect: str = "") -> list[int]:
    """SIGKILL process ``pid`` and all its descendants, parent first; returns the pids signalled.

    ``expect``, when given, must occur in the process's name or command line (Ray names its workers
    ``ray::RayTrainWorker...``, its raylet ``raylet``): a reused pid is never signalled.
    """
    proc = psutil.Process(pid)
    label = f"{proc.name()} {' '.join(proc.cmdline())}"
    if expect and expect not in label:
        raise AssertionError(f"pid {pid} is not a {expect!r} process: {label[:200]}")
    procs = [proc, *proc.children(recursive=True)]
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)
    return [p.pid for p in procs]


def kill_live(expect: str) -> list[int]:
    """SIGKILL every live process whose name or command line holds ``expect`` (Ray titles a training worker
    ``ray::RayTrainWorker...`` while it runs and ``ray::IDLE`` after), and their descendants; returns the pids.

    The tests run one training at a time, so these are the current run's workers. (The pid in a worker log's name
    is not used: CI showed it could name a process of an earlier run.)"""
    killed: list[int] = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if expect in f"{proc.info['name']} {' '.join(proc.info['cmdline'] or [])}":
            try:
                killed += kill_tree(proc.pid, expect=expect)
            except psutil.NoSuchProcess:
                continue
    if not killed:
        raise AssertionError(f"no live {expect!r} process to kill")
    return killed


class KillOnLine(threading.Thread):
    """A thread that waits (up to ``timeout_s``) for a line starting with ``prefix`` to be *added* to a Ray worker
    log under ``logs`` (searched recursively; what the files held when the thread was made is ignored), then calls
    ``action(log_file)`` once.

    After :meth:`join`: ``fired`` (the action ran), ``found`` (the log the line appeared in), ``seconds`` (from
    start to the line being seen), ``result`` (what the action returned) and ``error`` (an exception it raised, or a
    timeout); :meth:`lines_added` reads what a log gained since the thread was made.
    """

    def __init__(self, logs: Path, prefix: str, action: Callable[[Path], object], *, timeout_s: float = 120.0,
                 poll_s: float = 0.05) -> None:
        super().__init__(daemon=True, name=f"kill-on-{prefix!r}")
        self.logs, self.prefix, self.action = Path(logs), prefix, action
        self.timeout_s, self.poll_s = timeout_s, poll_s
        self.offsets = {path: path.stat().st_size for path in self.logs.rglob(WORKER_LOGS)}
        self.initial = dict(self.offsets)
        self.found: Path | None = None
        self.stop = threading.Event()
        self.fired = False
        self.seconds: float | None = None
        self.result: object = None
        self.error: BaseException | None = None

    def _new_line(self) -> Path | None:
        for path in self.logs.rglob(WORKER_LOGS):
            start = self.offsets.get(path, 0)
            try:
                with open(path, "rb") as f:
                    f.seek(start)
                    chunk = f.read()
            except OSError:
                continue
            complete = chunk[:chunk.rfind(b"\n") + 1]  # a line still being written is read next time
            self.offsets[path] = start + len(complete)
            if any(line.startswith(self.prefix.encode()) for line in complete.splitlines()):
                return path
        return None

    def lines_added(self, path: Path, prefix: str = "") -> list[str]:
        """The complete lines starting with ``prefix`` that log ``path`` gained after this thread was made."""
        with open(path, "rb") as f:
            f.seek(self.initial.get(path, 0))
            chunk = f.read()
        lines = chunk[:chunk.rfind(b"\n") + 1].decode(errors="replace").splitlines()
        return [line for line in lines if line.startswith(prefix)]

    def run(self) -> None:
        t0 = time.monotonic()
        try:
            while not self.stop.is_set():
                found = self._new_line()
                if found is not None:
                    self.seconds = time.monotonic() - t0
                    self.fired, self.found = True, found
                    self.result = self.action(found)
                    return
                if time.monotonic() - t0 > self.timeout_s:
                    raise TimeoutError(f"no line {self.prefix!r} in {self.logs}/**/{WORKER_LOGS} in {self.timeout_s} s")
                time.sleep(self.poll_s)
        except BaseException as e:  # noqa: BLE001 - reported to the test through .error
            self.error = e
