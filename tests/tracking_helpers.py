"""Helpers of the tracking tests (tests/tracking): the tiny training settings, a free loopback port, the ``mlflow``
command of this environment, and ``spectrotune`` run as a command."""

from __future__ import annotations

import os
import shutil
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
    beside = Path(sys.executable).parent / "mlflow"  # the test extra's console script, in this environment
    found = str(beside) if beside.is_file() else shutil.which("mlflow")
    if not found:
        raise RuntimeError("the `mlflow` command is missing: pip install -e '.[test]'")
    return found


def spectrotune(*args: object, env: dict[str, str] | None = None, timeout: int = 400) -> subprocess.CompletedProcess:
    """``spectrotune ARGS...`` as a user types it (``python -m spectrotune``), output captured."""
    return subprocess.run([sys.executable, "-m", "spectrotune", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, check=False, env={**os.environ, **(env or {})})


def sets(*items: str) -> list[str]:
    """``--set ITEM`` for each item."""
    return [part for item in items for part in ("--set", item)]
