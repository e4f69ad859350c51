"""What changes from step to step and epoch to epoch: the learning-rate schedule, per-epoch seeds, early stopping.

:func:`lr_factor` is the multiplier ``LambdaLR`` applies per optimiser step; :func:`epoch_seed` gives every
``(seed, rank, epoch)`` its own reproducible stream (a resumed epoch draws what it would have drawn);
:func:`track_best` is the early-stopping bookkeeping the worker loop keeps in its checkpoint state
(:func:`initial_state`). Pure Python and numpy, no ``ray``, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from spectrotune.errors import ConfigError
from spectrotune.schema import SCORE

__all__ = ["ONECYCLE_DIV", "ONECYCLE_FINAL_DIV", "epoch_seed", "initial_state", "lr_factor", "stopped_early",
           "track_best"]

ONECYCLE_DIV = 25.0  # torch OneCycleLR defaults: start at lr / 25, end at lr / (25 * 1e4)
ONECYCLE_FINAL_DIV = 1e4


def lr_factor(step: int, *, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Learning-rate multiplier at optimiser step ``step`` (0-based), applied per step by ``LambdaLR``.

    ``cosine``: linear warm-up from ``1/warmup_steps`` to 1 over ``warmup_steps``, then cosine decay to 0 at
    ``total_steps``. ``constant``: the same warm-up, then 1. ``onecycle``: the shape of torch's ``OneCycleLR``
    (cosine up from 1/25 over ``warmup_steps`` — 30 % of the run when 0 — then cosine down to 1/(25·10^4));
    momentum is not cycled. Steps past ``total_steps`` keep the final value (a schedule never raises).
    """
    total_steps = max(1, int(total_steps))
    step = min(max(0, int(step)), total_steps)
    if schedule == "onecycle":
        up = warmup_steps if warmup_steps > 0 else max(1, round(0.3 * total_steps))
        up = min(up, total_steps)
        start, end = 1.0 / ONECYCLE_DIV, 1.0 / (ONECYCLE_DIV * ONECYCLE_FINAL_DIV)
        if step < up:
            return _cos_interp(start, 1.0, step / up)
        return _cos_interp(1.0, end, (step - up) / max(1, total_steps - up))
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))
    raise ConfigError(f"train.schedule: unknown schedule {schedule!r} (valid: cosine, onecycle, constant)")


def _cos_interp(start: float, end: float, t: float) -> float:
    """Cosine interpolation from ``start`` (t=0) to ``end`` (t=1)."""
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, t))))


def epoch_seed(seed: int, rank: int, epoch: int) -> int:
    """A 63-bit seed for one epoch of one rank: distinct, reproducible streams per ``(seed, rank, epoch)``."""
    return int(np.random.SeedSequence([seed, rank, epoch]).generate_state(1, np.uint64)[0] >> 1)


def initial_state() -> dict[str, Any]:
    """The early-stopping state of a run before its first epoch (``attempt`` counts sessions, see the loop)."""
    return {"epoch": 0, "history": [], "best": None, "best_epoch": 0, "bad_epochs": 0, "attempt": 0}


def track_best(state: Mapping[str, Any], metrics: Mapping[str, Any], *, patience: int) -> dict[str, Any]:
    """Early-stopping bookkeeping after one epoch: the state's new ``epoch``, ``history``, ``best``, ``best_epoch``,
    ``bad_epochs`` and ``stop``.

    An epoch improves when its :data:`SCORE` (valid clip accuracy) beats the best so far strictly; a tie keeps the
    earlier epoch (fewer epochs, same score). ``stop`` is True once ``patience`` epochs in a row did not improve
    (``patience`` 0: never stop early).
    """
    epoch = int(metrics["epoch"])
    best = state.get("best")
    if best is None or metrics[SCORE] > best[SCORE]:
        best, best_epoch, bad_epochs = dict(metrics), epoch, 0
    else:
        best_epoch, bad_epochs = int(state["best_epoch"]), int(state["bad_epochs"]) + 1
    return {"epoch": epoch, "history": [*state.get("history", []), dict(metrics)], "best": best,
            "best_epoch": best_epoch, "bad_epochs": bad_epochs, "stop": bool(patience) and bad_epochs >= patience}


def stopped_early(state: Mapping[str, Any], *, patience: int) -> bool:
    """Whether a (resumed) run had already stopped early: ``patience`` epochs in a row without improvement."""
    return bool(patience) and int(state["bad_epochs"]) >= patience
