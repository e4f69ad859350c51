"""A small standard-library client for ``spectrotune serve``: one upload, or a bounded load test.

:func:`post_audio` sends one file (multipart, as a browser form does, or as the raw body) and returns the status and
the JSON reply; :func:`load_test` sends a fixed number of uploads from a fixed number of threads and measures
latency and throughput (``bench/serve.py`` and the tests use it); :func:`serve_process` runs ``spectrotune serve``
as a child in its own process group (with its own ``RAY_TMPDIR``) and ends that group. Standard library only; no
``ray``.

Example
-------
>>> status, reply = post_audio("http://127.0.0.1:8000", Path("song.flac").read_bytes(), filename="song.flac")
>>> reply["top"][0]
{'genre': 'jazz', 'probability': 0.71}
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = ["LoadResult", "ServerProcess", "encode_multipart", "free_port", "load_test", "post_audio", "serve_process"]


def encode_multipart(data: bytes, filename: str, *, field_name: str = "file") -> tuple[bytes, str]:
    """``(body, content type)`` of a ``multipart/form-data`` request carrying ``data`` as ``field_name``."""
    boundary = "spectrotune-" + secrets.token_hex(12)
    safe = filename.replace('"', "%22").replace("\r", "").replace("\n", "")
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field_name}\"; filename=\"{safe}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode("utf-8")
    return head + data + f"\r\n--{boundary}--\r\n".encode("ascii"), f"multipart/form-data; boundary={boundary}"


def post_audio(url: str, data: bytes, *, filename: str = "upload", path: str = "/v1/predict", multipart: bool = True,
               query: str = "", timeout: float = 60.0) -> tuple[int, dict[str, Any]]:
    """POST ``data`` to ``url`` + ``path``; returns ``(HTTP status, JSON reply)`` (``{}`` when the reply is not JSON)."""
    if multipart:
        body, ctype = encode_multipart(data, filename)
        headers = {"Content-Type": ctype}
    else:
        body, headers = data, {"Content-Type": "application/octet-stream", "X-Filename": filename}
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        conn.request("POST", path + (f"?{query}" if query else ""), body=body, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        reply = json.loads(raw)
    except ValueError:
        reply = {}
    return response.status, reply


@dataclass
class LoadResult:
    """What :func:`load_test` measured: per-request latency in s, status codes, failures and the wall time."""

    latencies: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    concurrency: int = 1

    @property
    def errors(self) -> int:
        """Requests that did not get a 200 (failed connections included)."""
        return sum(s != 200 for s in self.statuses) + len(self.failures)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile of the latencies in s (``statistics.quantiles``, inclusive method)."""
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else float("nan")
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[int(q) - 1]

    @property
    def requests_per_second(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> dict[str, float | int]:
        return {"requests": len(self.statuses) + len(self.failures), "concurrency": self.concurrency,
                "errors": self.errors, "p50_ms": round(1000 * self.percentile(50), 1),
                "p95_ms": round(1000 * self.percentile(95), 1), "requests_per_s": round(self.requests_per_second, 1),
                "seconds": round(self.seconds, 2)}


def load_test(url: str, payloads: Sequence[tuple[str, bytes]], *, requests: int = 200, concurrency: int = 8,
              timeout: float = 60.0) -> LoadResult:
    """Send ``requests`` uploads (``payloads`` in turn: ``(filename, bytes)``) from ``concurrency`` threads, each
    waiting for its reply before the next; returns when all are answered (a request that hangs ends at ``timeout``)."""
    result = LoadResult(concurrency=concurrency)
    lock = threading.Lock()

    def one(i: int) -> None:
        name, data = payloads[i % len(payloads)]
        t0 = time.perf_counter()
        try:
            status, _ = post_audio(url, data, filename=name, timeout=timeout)
        except OSError as e:
            with lock:
                result.failures.append(f"request {i}: {type(e).__name__}: {e}")
            return
        with lock:
            result.latencies.append(time.perf_counter() - t0)
            result.statuses.append(status)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(requests)))
    result.seconds = time.perf_counter() - start
    return result


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now at ``host`` (the OS's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    """A running ``spectrotune serve``: its URL, process (the leader of its own process group) and log file."""

    url: str
    process: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def serve_process(bundle: str | os.PathLike[str], *, args: Sequence[str] = (), port: int | None = None,
                  startup_timeout: float = 180.0, env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """Run ``spectrotune serve BUNDLE --port PORT ARGS...`` (the command next to this interpreter) until the block
    ends, on 127.0.0.1 with a free port unless ``args``/``port`` say otherwise.

    The server runs in a new process group with a private ``RAY_TMPDIR`` (and no ``RAY_ADDRESS``: a local Ray of
    its own). Ready means ``GET /healthz`` answers 200. On exit it gets SIGINT (what Ctrl-C sends), then the
    whole group SIGKILL after 20 s; the temporary folder is removed.
    """
    port = free_port() if port is None else port
    tmp = Path(tempfile.mkdtemp(prefix="st-serve-"))  # short: Ray's socket paths must stay under 107 bytes
    log = tmp / "serve.log"
    run_env = {k: v for k, v in (env or os.environ).items() if k != "RAY_ADDRESS"}
    run_env["RAY_TMPDIR"] = str(tmp / "ray")
    (tmp / "ray").mkdir()
    exe = Path(sys.executable).parent / "spectrotune"
    cmd = [str(exe), "serve", os.fspath(bundle), "--port", str(port), *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=run_env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(url, proc, log)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"spectrotune serve exited with {proc.returncode}:\n{server.log_text()[-4000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            finally:
                conn.close()
            if time.monotonic() > deadline:
                raise RuntimeError(f"spectrotune serve not ready after {startup_timeout:.0f} s:\n"
                                   f"{server.log_text()[-4000:]}")
            time.sleep(0.5)
        yield server
    finally:
        _end_group(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def _end_group(proc: subprocess.Popen) -> None:
    """SIGINT to the server (a clean stop), then SIGKILL to its whole process group (every Ray process it started)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
