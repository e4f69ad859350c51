"""Helpers of the tracking tests (tests/tracking): the tiny training settings, a free loopback port, the ``mlflow``
command of this environment, and ``spectrotune`` run as a command."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

# Tiny, fast runs (as in tests/tuning): a 2-block CNN, constant lr, no early stopping, no baselines.
TINY = ["model.name=cnn", "model.width=8", "model.depth=2", "train.batch_size=4", "train.schedule=constant",
        "train.warmup_epochs=0", "train.patience=0", "train.shuffle_buffer=64", "evaluate.baselines=false",
        "evaluate.noise_kinds=[]"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (and that nothing listens on after this returns)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mlflow_command() -> str:
    """The ``mlflow`` command of an environment of its own for the tracking server the tests start.

    This environment holds only the MLflow client (the test extra's mlflow-skinny): the full ``mlflow`` package,
    which the server needs, pins pyarrow<26 while spectrotune needs pyarrow>=26. So the server gets a virtual
    environment of its own with ``mlflow`` at the client's version, made once with pip (the registry must be
    reachable: this fails with pip's reason otherwise, it never skips) and kept in ~/.cache/spectrotune-tests.
    """
    from importlib.metadata import version

    release = version("mlflow-skinny")
    home = Path(os.environ.get("SPECTROTUNE_TEST_CACHE", Path.home() / ".cache" / "spectrotune-tests"))
    venv = home / f"mlflow-server-{release}"
    command = venv / "bin" / "mlflow"
    if (venv / "installed").is_file() and command.is_file():
        return str(command)
    shutil.rmtree(venv, ignore_errors=True)  # a half-made one from an interrupted run
    venv.parent.mkdir(parents=True, exist_ok=True)
    for step in ([sys.executable, "-m", "venv", str(venv)],
                 [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"mlflow=={release}"]):
        done = subprocess.run(step, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"could not make the MLflow server environment ({' '.join(step)}):\n"
                               f"{done.stdout[-2000:]}{done.stderr[-3000:]}")
    (venv / "installed").write_text(release)
    return str(command)


def spectrotune(*args: object, timeout: int = 400) -> subprocess.CompletedProcess:
    """``spectrotune ARGS...`` as a user types it (``python -m spectrotune``), output captured. A command that needs
    Ray starts its own local one, as on a user's machine (``RAY_ADDRESS`` is not passed on); it runs in its own
    process group, ended by that group's id afterwards (any Ray process it left behind goes with it)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen([sys.executable, "-m", "spectrotune", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def sets(*items: str) -> list[str]:
    """``--set ITEM`` for each item."""
    return [part for item in items for part in ("--set", item)]
