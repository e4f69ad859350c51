"""Quieter Ray workers: the few Ray loggers that repeat one line every epoch or every second.

Kept apart from everything else (it imports only :mod:`logging`) because it runs at the start of every worker
process of a local Ray (``worker_process_setup_hook``, see :func:`spectrotune.pipeline.init_ray`), where importing
numpy, pyarrow or librosa would slow every worker's start. No ``ray`` import.
"""

from __future__ import annotations

import logging

__all__ = ["NOISY_WORKER_LOGGERS", "quiet_worker_logs"]

# Ray loggers that, in worker processes, repeat one line every epoch or every second and say nothing to act on.
NOISY_WORKER_LOGGERS = {
    # "Dataset train_... execution finished": once per split per epoch, from training workers and the split actor.
    "ray.data._internal.execution.streaming_executor": logging.WARNING,
    # "Progress bars disabled": training turns them off on purpose (see spectrotune.train).
    "ray.data._internal.progress": logging.ERROR,
    # A local Ray runs without the dashboard (a process and a second or two less to start), so there is no state
    # API; Ray Train's placement-group cleaner polls it every second and warns each time it cannot reach it. The
    # cleaner only matters when a controller dies ungracefully; ray.shutdown removes placement groups anyway.
    "ray.train.v2._internal.execution.controller.placement_group_cleaner": logging.ERROR,
}


def quiet_worker_logs() -> None:
    """Raise the level of :data:`NOISY_WORKER_LOGGERS` in this process (a Ray worker); warnings still show.

    Runs in every worker of a local Ray that :func:`spectrotune.pipeline.init_ray` starts (its
    ``worker_process_setup_hook``) and at the start of every training worker, on any cluster. To see these lines
    again, start Ray yourself and point ``RAY_ADDRESS`` at it (training workers stay quiet either way).
    """
    for name, level in NOISY_WORKER_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
