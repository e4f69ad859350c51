"""GPU utilisation sampling for ``bench/train.py --gpu``: :class:`GpuSampler` reads the busy share (%) of one GPU
every ``interval_s`` in a background thread (``torch.cuda.utilization``, else ``nvidia-smi``)."""

from __future__ import annotations

import subprocess
import threading

import numpy as np
import torch


class GpuSampler:
    """Samples GPU utilisation (%) in a background thread until stopped; empty when no GPU is visible."""

    def __init__(self, *, interval_s: float = 0.2, device: int = 0) -> None:
        self.interval_s = interval_s
        self.device = device
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> float | None:
        try:
            return float(torch.cuda.utilization(self.device))  # needs pynvml / amdsmi
        except Exception:  # noqa: BLE001, S110 - fall back to the command-line tool
            pass
        try:
            out = subprocess.run(
                ["nvidia-smi", f"--id={self.device}", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                capture_output=True, text=True, timeout=5, check=True,
            )  # fmt: skip
            return float(out.stdout.strip().splitlines()[0])
        except Exception:  # noqa: BLE001 - no GPU tooling: no samples
            return None

    def _run(self) -> None:
        while not self._stop.is_set():
            value = self._read()
            if value is not None:
                self.samples.append(value)
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        if torch.cuda.is_available():
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.samples)) if self.samples else None
