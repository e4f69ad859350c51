"""The one place that starts, joins and stops Ray, and quiets its per-epoch and per-second log lines.

:func:`init_ray` joins ``RAY_ADDRESS`` when set (Ray's own choice of addresses), else starts a local Ray whose every
process listens on 127.0.0.1 only; :func:`shutdown_ray` ends only a Ray that :func:`init_ray` started.
:func:`quiet_worker_logs` runs at the start of every worker process of that local Ray (its
``worker_process_setup_hook``) and of every training worker, so this module imports only the standard library at
module level (importing numpy, pyarrow or librosa there would slow every worker's start); ``ray`` itself is imported
inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import logging
import os

__all__ = ["LOOPBACK", "NOISY_DRIVER_LOGGERS", "NOISY_WORKER_LINES", "NOISY_WORKER_LOGGERS", "init_ray",
           "quiet_terminal", "quiet_worker_logs", "show_ray_logs", "shutdown_ray"]

LOOPBACK = "127.0.0.1"  # the node address of a local Ray: every Ray process of it listens there only

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


# Ray's own lines on a command's terminal (this process) that say nothing to act on while spectrotune's stage lines
# say what runs. The records still reach Ray's log files (logs/ray-data/*.log); -v/--verbose shows them again.
NOISY_DRIVER_LOGGERS = {
    # "Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out ...": a warning
    # at every ray.init that starts a local Ray (2.59+), from ray._private.authentication.authentication_token_setup.
    "ray._private.authentication.authentication_token_setup": logging.ERROR,
    # "Starting execution of Dataset ...", "Execution plan of Dataset ...", "Dataset ... execution finished in ...".
    "ray.data._internal.execution.streaming_executor": logging.WARNING,
    # "Progress will be logged because stdout is a non-interactive terminal." and that log (Total Progress, resources
    # and one line per operator every few seconds, from .logging_progress), or "Progress bars disabled" (--no-progress).
    "ray.data._internal.progress": logging.ERROR,
}
# Lines Ray's workers and actors print, forwarded to this terminal (log_to_driver), that say nothing to act on.
NOISY_WORKER_LINES = (
    # A core worker (C++) that creates a restartable actor whose arguments are object refs, e.g. the Ray Train
    # controller, once per run: "Actor with class name: 'PreemptionWatcher' ... has constructor arguments in the
    # object store and max_restarts > 0. If the arguments ... are lost, the actor restart will fail." (Ray's own
    # actors, nothing to act on). The same warning from this process's own core worker (Ray Data's actor pool of
    # predict) is written by C++ straight to stderr, out of reach of any Python filter.
    "has constructor arguments in the object store and max_restarts > 0",
)
_RAY_LOGS_SHOWN = False  # show_ray_logs(True): -v/--verbose


def show_ray_logs(shown: bool = True) -> None:
    """Let :data:`NOISY_DRIVER_LOGGERS` and :data:`NOISY_WORKER_LINES` reach the terminal (``-v``), or not (default)."""
    global _RAY_LOGS_SHOWN
    _RAY_LOGS_SHOWN = bool(shown)


class _TerminalFilter(logging.Filter):
    """Drops the records of :data:`NOISY_DRIVER_LOGGERS` below their level from the handler it is added to."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _RAY_LOGS_SHOWN:
            return True
        for name, level in NOISY_DRIVER_LOGGERS.items():
            if record.name == name or record.name.startswith(name + "."):
                return record.levelno >= level
        return True


_TERMINAL_FILTER = _TerminalFilter()


def _drop_noisy_lines(data: dict, ignore_prefix: bool, *, printer) -> None:  # noqa: ANN001 - Ray's printer
    """Ray's printer of workers' lines (``print_to_stdstream``) without :data:`NOISY_WORKER_LINES`."""
    if not _RAY_LOGS_SHOWN:
        lines = [line for line in data.get("lines", []) if not any(n in line for n in NOISY_WORKER_LINES)]
        if not lines:
            return
        data = {**data, "lines": lines}
    printer(data, ignore_prefix)


def quiet_terminal() -> None:
    """Filter Ray's terminal handlers in this process with :data:`NOISY_DRIVER_LOGGERS`, and the workers' lines it
    prints with :data:`NOISY_WORKER_LINES` (idempotent; :func:`init_ray` calls it; :func:`show_ray_logs` lets
    everything through again)."""
    import functools

    import ray._private.worker as ray_worker
    import ray.data  # noqa: F401 - sets up the "ray.data" logger and its terminal handler

    for name in ("ray", "ray.data"):  # "ray.data" does not propagate to "ray": each has its own handlers
        for handler in logging.getLogger(name).handlers:
            # The terminal handlers only: Ray Data's file handlers keep every record.
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                if _TERMINAL_FILTER not in handler.filters:
                    handler.addFilter(_TERMINAL_FILTER)
    # ray.init binds ray._private.worker.print_to_stdstream as the printer of workers' lines when it connects, so
    # wrapping it before then drops the noisy lines. There is no setting for that C++ warning short of
    # log_to_driver=False, which would hide the epoch lines too.
    if not isinstance(ray_worker.print_to_stdstream, functools.partial):
        ray_worker.print_to_stdstream = functools.partial(_drop_noisy_lines, printer=ray_worker.print_to_stdstream)


def quiet_worker_logs() -> None:
    """Raise the level of :data:`NOISY_WORKER_LOGGERS` in this process (a Ray worker); warnings still show.

    Runs in every worker of a local Ray that :func:`init_ray` starts (its
    ``worker_process_setup_hook``) and at the start of every training worker, on any cluster. To see these lines
    again, start Ray yourself and point ``RAY_ADDRESS`` at it (training workers stay quiet either way).
    """
    for name, level in NOISY_WORKER_LOGGERS.items():
        logging.getLogger(name).setLevel(level)


_STARTED_LOCAL = False  # True once init_ray started a local Ray in this process (shutdown_ray ends it)


@contextlib.contextmanager
def keep_loopback_node_address():
    """Within: ``ray.init(_node_ip_address="127.0.0.1")`` keeps that address instead of swapping it for the machine's.

    Ray 2.60 replaces a loopback ``_node_ip_address`` by the machine's outward address
    (``services.resolve_ip_for_localhost``) unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, an environment variable
    read once, when Ray is imported, into ``ray_constants.ENABLE_RAY_CLUSTER`` (ray-project/ray#59110). With the
    outward address the GCS, the raylet (node and object manager), every worker's gRPC server and the agents listen
    on all interfaces; with 127.0.0.1 each of them binds loopback only (tests/test_runtime.py lists them). The
    constant is read when called, so it is switched off here for the start of the local Ray and restored after:
    nothing else in this process (a later ``ray.init(address=...)`` to a cluster) sees the change.
    """
    from ray._private import ray_constants

    saved = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if saved is None:
            del ray_constants.ENABLE_RAY_CLUSTER
        else:
            ray_constants.ENABLE_RAY_CLUSTER = saved


def _is_loopback(address: str) -> bool:
    """Whether a Ray GCS address (``host:port``) names this machine's loopback (a ``ray://`` client address never
    does here: Ray Client runs no local services)."""
    if "://" in address:
        return False
    host = address.rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


def init_ray(*, num_cpus: int | None = None) -> None:
    """Connect to ``RAY_ADDRESS`` if set, else start a local Ray bound to loopback (no-op if already up).

    Joining a cluster keeps Ray's own choice of addresses. Without ``RAY_ADDRESS`` the Ray is always a new one (a
    head left by ``ray start`` on the machine is not joined). It runs on node address 127.0.0.1: its GCS, raylet,
    workers, the dashboard process Ray starts even with ``include_dashboard=False``, the dashboard and runtime-env
    agents and the autoscaler monitor all listen on loopback (tests/test_runtime.py lists them). Raises
    ``RuntimeError`` if Ray nevertheless picked another node address (a Ray version that changed how it resolves
    it), after shutting that Ray down.
    """
    global _STARTED_LOCAL
    import ray

    quiet_terminal()
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        address = os.environ["RAY_ADDRESS"]
        if _is_loopback(address):
            # A head on this machine bound to loopback (the README's local head, a test's Ray): this driver's own
            # services must be on 127.0.0.1 too, or Ray swaps in the machine's address and cannot reach the head.
            with keep_loopback_node_address():
                ray.init(address=address, _node_ip_address=LOOPBACK, log_to_driver=True)
        else:
            ray.init(address=address, log_to_driver=True)
        return
    with keep_loopback_node_address():
        # address="local": a new Ray of its own even when `ray start` left a cluster address in Ray's temp folder
        # (ray.init() would join that head, or wait for it when it is gone).
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, _node_ip_address=LOOPBACK,
                 log_to_driver=True, configure_logging=True, logging_level="warning",
                 runtime_env={"worker_process_setup_hook": f"{__name__}.quiet_worker_logs"})
    _STARTED_LOCAL = True
    address = ray.util.get_node_ip_address()
    if address != LOOPBACK:
        shutdown_ray()
        raise RuntimeError(f"local Ray started on node address {address}, not {LOOPBACK}: its services would "
                           "listen beyond loopback (see spectrotune.runtime.keep_loopback_node_address)")


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
