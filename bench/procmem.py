"""Memory and CPU time of a benchmarked command and every process it starts (Linux: reads /proc).

:func:`run_measured` runs a command in its own session while a :class:`MemorySampler` sums, over the command's
process tree, its process group and (given a ``RAY_TMPDIR``) every process whose environment names it: peak RSS
in bytes (every 50 ms), peak PSS in bytes (shared pages split between their users, so Ray's object store is
counted once; every 0.5 s) and CPU seconds (user + system). Used by ``bench/prepare.py``.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time

__all__ = ["MemorySampler", "run_measured"]


def _children(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cpu_ticks(pid: int) -> int:
    """utime + stime of ``pid`` so far, in clock ticks (fields 14 and 15 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def _related(root: int, *, pgid: int, marker: bytes | None) -> set[int]:
    """Pids of ``root``'s tree, of process group ``pgid`` and of processes whose environment holds ``marker``."""
    found = _related_tree(root)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in found:
            continue
        pid = int(entry)
        try:
            if os.getpgid(pid) == pgid:
                found.add(pid)
                continue
            if marker is not None:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if marker in f.read().split(b"\0"):
                        found.add(pid)
        except OSError:  # gone, or another user's process
            continue
    return found


class MemorySampler:
    """Peak RSS (every ``interval_s``) and peak PSS (every ``pss_every`` samples) summed over a run's processes.

    The processes: the tree under ``pid``, its process group (the child was started in its own session) and, with
    ``ray_tmpdir``, every process whose environment has ``RAY_TMPDIR=<ray_tmpdir>`` (re-discovered with the PSS
    samples, so processes that appear late are counted from then on; the tree is walked every sample).
    """

    def __init__(self, pid: int, *, ray_tmpdir: str | None = None, interval_s: float = 0.05, pss_every: int = 10):
        self.pid, self.interval_s, self.pss_every = pid, interval_s, pss_every
        self.marker = f"RAY_TMPDIR={ray_tmpdir}".encode() if ray_tmpdir else None
        self.peak_rss = self.peak_pss = self.max_processes = 0
        self.ticks: dict[int, int] = {}  # pid -> CPU ticks when last seen (a process's total once it has exited)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        pgid = os.getpgid(self.pid)
        known: set[int] = set()
        k = 0
        while not self._stop.is_set():
            if k % self.pss_every == 0:
                known = _related(self.pid, pgid=pgid, marker=self.marker)
                self.peak_pss = max(self.peak_pss, sum(_pss_bytes(p) for p in known))
                for p in known:
                    self.ticks[p] = max(self.ticks.get(p, 0), _cpu_ticks(p))
            pids = known | _related_tree(self.pid)
            self.max_processes = max(self.max_processes, len(pids))
            self.peak_rss = max(self.peak_rss, sum(_rss_bytes(p) for p in pids))
            k += 1
            self._stop.wait(self.interval_s)

    def __enter__(self) -> MemorySampler:  # noqa: PYI034
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def cpu_seconds(self) -> float:
        """CPU time (user + system) of every process seen, up to its last sample (at most 0.5 s missed each)."""
        return sum(self.ticks.values()) / os.sysconf("SC_CLK_TCK")


def _related_tree(pid: int) -> set[int]:
    found, stack = set(), [pid]
    while stack:
        p = stack.pop()
        if p not in found:
            found.add(p)
            stack += _children(p)
    return found


def run_measured(cmd: list[str], *, env: dict[str, str] | None = None,
                 ray_tmpdir: str | None = None) -> tuple[float, int, str, dict[str, int]]:
    """Run ``cmd`` in its own session; (wall seconds, peak RSS bytes, output, {peak_pss, max_processes})."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env=env)
    with MemorySampler(proc.pid, ray_tmpdir=ray_tmpdir) as mem:
        output, _ = proc.communicate()
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-3000:]}")
    return wall, mem.peak_rss, output, {"peak_pss": mem.peak_pss, "max_processes": mem.max_processes,
                                        "cpu_seconds": mem.cpu_seconds}
