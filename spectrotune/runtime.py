"""The one place that starts, joins and stops Ray, and quiets its per-epoch and per-second log lines.

:func:`init_ray` joins ``RAY_ADDRESS`` when set, else starts a local Ray on loopback; :func:`shutdown_ray` ends only a
Ray that :func:`init_ray` started. :func:`quiet_worker_logs` runs at the start of every worker process of that local
Ray (its ``worker_process_setup_hook``) and of every training worker, so this module imports only :mod:`logging`
and :mod:`os` at module level (importing numpy, pyarrow or librosa there would slow every worker's start); ``ray``
itself is imported inside the functions that need it.
"""

from __future__ import annotations

import logging
import os

__all__ = ["NOISY_WORKER_LOGGERS", "init_ray", "quiet_worker_logs", "shutdown_ray"]

# Ray loggers that, in worker processes, repeat one line every epoch or every second and say nothing to act on.
NOISY_WORKER_LOGGERS = {
    # "Dataset train_... execution finished": once per split per epoch, from training workers and the split actor.
    "ray.data._internal.execution.streaming_executor": logging.WARNING,
    # "Progress bars disabled": training turns them off on purpose (see spectrotune.training.trainer).
    "ray.data._internal.progress": logging.ERROR,
    # A local Ray runs without the dashboard (a process and a second or two less to start), so there is no state
    # API; Ray Train's placement-group cleaner polls it every second and warns each time it cannot reach it. The
    # cleaner only matters when a controller dies ungracefully; ray.shutdown removes placement groups anyway.
    "ray.train.v2._internal.execution.controller.placement_group_cleaner": logging.ERROR,
}


def quiet_worker_logs() -> None:
    """Raise the level of :data:`NOISY_WORKER_LOGGERS` in this process (a Ray worker); warnings still show.

    Runs in every worker of a local Ray that :func:`init_ray` starts (its
    ``worker_process_setup_hook``) and at the start of every training worker, on any cluster. To see these lines
    again, start Ray yourself and point ``RAY_ADDRESS`` at it (training workers stay quiet either way).
    """
    for name, level in NOISY_WORKER_LOGGERS.items():
        logging.getLogger(name).setLevel(level)


_STARTED_LOCAL = False  # True once init_ray started a local Ray in this process (shutdown_ray ends it)


def init_ray(*, num_cpus: int | None = None) -> None:
    """Connect to ``RAY_ADDRESS`` if set, else start a local Ray bound to loopback (no-op if already up)."""
    global _STARTED_LOCAL
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=True)
        return
    ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=True,
             configure_logging=True, logging_level="warning",
             runtime_env={"worker_process_setup_hook": f"{__name__}.quiet_worker_logs"})
    _STARTED_LOCAL = True


def shutdown_ray() -> None:
    """End the local Ray that :func:`init_ray` started here, if any (a Ray started by the caller is left alone).

    Ray's own exit hook would do it too, after a fixed 0.5 s pause; the command line calls this when done.
    """
    global _STARTED_LOCAL
    if not _STARTED_LOCAL:
        return
    import ray

    _STARTED_LOCAL = False
    if ray.is_initialized():
        ray.shutdown()
