"""Device options of the training step, decided once per worker: mixed precision (AMP), the gradient scaler, the
model's memory format, ``torch.compile``, and how batches reach the device (pinned host memory, non-blocking copies).

Each choice is a plain value computed here from the config and the device (:func:`amp_policy`,
:func:`input_options`), which the loop (:mod:`spectrotune.training.loop`) follows without asking the device
again. So every branch a CUDA worker takes also runs on CPU in a test: an :class:`AmpPolicy` with autocast on CPU
(bfloat16, or float16 with an enabled ``GradScaler("cpu")``), ``channels_last`` weights, ``torch.compile`` with the
``eager`` backend.

On a CUDA device (``train.amp``, default on): autocast in ``train.amp_dtype`` (float16, with loss scaling; or
bfloat16, whose float32 range needs none); the train batches' producer thread
(:class:`~spectrotune.training.batches.EpochBatches`) pins each batch in host memory and copies it to the device
(``non_blocking``), so the next ``train.prefetch_batches`` batches are on their way while the current step runs.
``train.channels_last`` and ``train.compile`` are off by default on every device.

Pure torch: no ``ray``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from spectrotune.config import TrainConfig

__all__ = ["AMP_DTYPES", "AmpPolicy", "amp_policy", "input_options", "make_scaler", "speed_up_model",
           "to_device"]

#: ``train.amp_dtype`` -> the autocast dtype.
AMP_DTYPES: dict[str, torch.dtype] = {"float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class AmpPolicy:
    """Mixed precision of one worker: autocast on/off and in which dtype, and whether the loss is scaled.

    ``scaler`` is only ever on with float16 (bfloat16 has float32's exponent range: no underflowing gradients).
    """

    enabled: bool = False
    dtype: torch.dtype = torch.float16
    scaler: bool = False

    def autocast(self, device: torch.device) -> Any:
        """The ``torch.autocast`` context of this policy on ``device`` (a no-op context when disabled)."""
        return torch.autocast(device_type=device.type, dtype=self.dtype, enabled=self.enabled)


def amp_policy(tc: TrainConfig, device: torch.device) -> AmpPolicy:
    """AMP from ``train.amp`` / ``train.amp_dtype`` and the device: only on CUDA (on CPU autocast is no faster)."""
    dtype = AMP_DTYPES[tc.amp_dtype]
    enabled = bool(tc.amp) and device.type == "cuda"
    return AmpPolicy(enabled=enabled, dtype=dtype, scaler=enabled and dtype == torch.float16)


def make_scaler(policy: AmpPolicy, device: torch.device) -> torch.amp.GradScaler:
    """The worker's ``GradScaler`` for ``device``; disabled (every call a pass-through) unless ``policy.scaler``."""
    return torch.amp.GradScaler(device.type, enabled=policy.scaler)


def input_options(device: torch.device) -> dict[str, Any]:
    """How batches reach ``device``: ``pin_memory``, pinned host batches when it is a CUDA device (the copy to the
    device is then asynchronous, ``non_blocking``); nothing to pin on CPU."""
    return {"pin_memory": device.type == "cuda"}


def to_device(array: np.ndarray, device: torch.device, *, dtype: np.dtype | type = np.float32) -> torch.Tensor:
    """A numpy batch (validation's, which Ray Data hands over as numpy for its string column) as a ``dtype`` tensor
    on ``device``; the copy does not wait for the device to finish queued work (a no-op on CPU)."""
    return torch.from_numpy(np.ascontiguousarray(array, dtype=dtype)).to(device, non_blocking=True)


def speed_up_model(model: torch.nn.Module, *, channels_last: bool = False, compile: bool = False,  # noqa: A002
                   compile_backend: str = "inductor") -> torch.nn.Module:
    """``model`` with 4-D weights in ``channels_last`` (convolutions run NHWC, faster with AMP on tensor cores) and/or
    wrapped by ``torch.compile`` (``compile_backend``; tests use ``eager``). Apply ``channels_last`` before the DDP
    wrapper and ``compile`` after it; :func:`~spectrotune.training.checkpoint.unwrap_model` undoes both wrappers."""
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile:
        model = torch.compile(model, backend=compile_backend)
    return model
