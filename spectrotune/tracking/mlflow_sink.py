"""MLflow behind a few fail-soft calls: connect (with one clear warning when MLflow cannot be used), runs, params,
metrics, tags, artifacts.

``mlflow`` is imported here only, inside :meth:`MlflowSink.connect`, and only when ``tracking.mlflow_uri`` is set
(``pip install 'spectrotune[mlflow]'``). Everything goes through ``mlflow.MlflowClient`` with explicit run ids, never
MLflow's global "active run", so the driver, Ray Train's controller and Ray Tune's callbacks can log to the same
run from different processes.

Failures never stop a run: :meth:`MlflowSink.connect` probes the store once with a short timeout and returns
``None`` after one warning (or raises :class:`~spectrotune.errors.TrackingError` when ``strict``); a call that
fails later (the server went away) warns once and turns the sink off; :attr:`MlflowSink.failure` keeps the
reason so a strict run can fail after its local outputs are written. HTTP retries are capped (at most 2 retries,
10 s timeout, unless the ``MLFLOW_HTTP_REQUEST_*`` variables say otherwise), so a dead server costs seconds, not
MLflow's default minutes of back-off. No ``ray``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from spectrotune.errors import TrackingError
from spectrotune.tracking.records import normalize_uri

__all__ = ["MLFLOW_STATUS", "MlflowSink", "unusable"]

logger = logging.getLogger(__name__)

#: spectrotune's end states -> MLflow run statuses.
MLFLOW_STATUS = {"done": "FINISHED", "failed": "FAILED", "stopped": "KILLED"}
# Defaults for this process's MLflow HTTP client (a variable the user set wins).
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
                  "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
_PROBE = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
_BATCH = 100  # MLflow's log_batch takes at most 100 params (1000 metrics) per call


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _first_line(error: BaseException) -> str:
    """The gist of an MLflow error: an OS error's ``[Errno N] reason`` when there is one, else its first line."""
    text = str(error)
    errno = re.search(r"\[Errno -?\d+\] [^\"')]+", text)
    if errno:
        return errno.group(0).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def unusable(message: str, *, strict: bool) -> None:
    """The one warning (or, ``strict``, the :class:`TrackingError`) for an MLflow that cannot be used."""
    if strict:
        raise TrackingError(message)
    logger.warning("%s; going on without MLflow (local outputs are written as usual; --strict-tracking makes this "
                   "an error)", message)


class MlflowSink:
    """One MLflow tracking store, reached through ``MlflowClient``; make it with :meth:`connect`.

    Attributes
    ----------
    uri : str
        The tracking URI (absolute; see :func:`~spectrotune.tracking.records.normalize_uri`).
    failure : str or None
        Why a call failed after connecting (the sink is off from then on), else None.
    """

    def __init__(self, client: Any, uri: str, artifact_location: str | None) -> None:
        self._client = client
        self.uri = uri
        self._artifact_location = artifact_location
        self.failure: str | None = None

    @classmethod
    def connect(cls, uri: str, *, strict: bool = False) -> MlflowSink | None:
        """A sink for ``uri`` (``tracking.mlflow_uri``), or None after one warning when it cannot be used.

        Raises
        ------
        TrackingError
            ``strict`` and MLflow is not installed, the server does not answer or the URI is not one MLflow takes.
        """
        tracking_uri, artifact_location = normalize_uri(uri)
        try:
            from mlflow import MlflowClient
        except ImportError:
            unusable(f"tracking.mlflow_uri={uri} but MLflow is not installed: pip install 'spectrotune[mlflow]'",
                     strict=strict)
            return None
        for key, value in _HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        for name in ("alembic", "mlflow.store.db.utils"):  # the sqlite store's migration chatter on first use
            logging.getLogger(name).setLevel(logging.WARNING)
        if tracking_uri.startswith("sqlite:///"):
            Path(tracking_uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        try:
            with _environ(_PROBE):
                client = MlflowClient(tracking_uri=tracking_uri)
                client.search_experiments(max_results=1)
        except Exception as e:  # noqa: BLE001 - any failure of the store means: no MLflow for this run
            unusable(f"MLflow tracking URI {uri} cannot be used: {_first_line(e)}", strict=strict)
            return None
        return cls(client, tracking_uri, artifact_location)

    @property
    def on(self) -> bool:
        """Whether calls still reach MLflow (False after a failure)."""
        return self.failure is None

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``, or None when the sink is off or the call fails (then it warns once, turns off)."""
        if not self.on:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - tracking must never stop a run
            self.failure = f"MLflow at {self.uri}: {what} failed: {_first_line(e)}"
            logger.warning("%s; no more MLflow logging from this process (local outputs are complete)", self.failure)
            return None

    def experiment_id(self, name: str) -> str | None:
        """The id of experiment ``name``, created when missing (artifacts under the folder of a local store)."""

        def get_or_create() -> str:
            found = self._client.get_experiment_by_name(name)
            if found is not None:
                if found.lifecycle_stage == "deleted":
                    self._client.restore_experiment(found.experiment_id)
                return found.experiment_id
            return self._client.create_experiment(name, artifact_location=self._artifact_location)

        return self._call(f"opening experiment {name!r}", get_or_create)

    def start_run(self, experiment_id: str, *, name: str, tags: Mapping[str, str],
                  parent: str | None = None) -> str | None:
        """A new run (nested under run ``parent`` when given); returns its id, or None when the sink is off."""
        tags = {**tags, **({"mlflow.parentRunId": parent} if parent else {})}
        run = self._call(f"creating run {name!r}", self._client.create_run, experiment_id, run_name=name,
                         tags=dict(tags))
        return None if run is None else run.info.run_id

    def continue_run(self, run_id: str) -> bool:
        """Mark an earlier run as running again; False when it is gone (deleted, or not on this store)."""

        def reopen() -> bool:
            try:
                run = self._client.get_run(run_id)
            except Exception:  # noqa: BLE001 - not found on this store: start a new run instead
                return False
            if run.info.lifecycle_stage == "deleted":
                return False
            self._client.update_run(run_id, status="RUNNING")
            return True

        return bool(self._call(f"reopening run {run_id}", reopen))

    def has_run(self, run_id: str) -> bool:
        """Whether the store has run ``run_id`` (not deleted)."""
        try:
            return self._client.get_run(run_id).info.lifecycle_stage != "deleted"
        except Exception:  # noqa: BLE001 - RESOURCE_DOES_NOT_EXIST, or an id of another store
            return False

    def log_params(self, run_id: str, params: Mapping[str, str]) -> list[str]:
        """Log the parameters the run does not have yet; returns the keys it already had with another value
        (MLflow never changes a logged parameter: a resumed run keeps the values it started with)."""
        from mlflow.entities import Param

        def log() -> list[str]:
            have = self._client.get_run(run_id).data.params
            new = [Param(k, v) for k, v in params.items() if k not in have]
            for i in range(0, len(new), _BATCH):
                self._client.log_batch(run_id, params=new[i:i + _BATCH])
            return sorted(k for k, v in params.items() if k in have and have[k] != v)

        return self._call("logging parameters", log) or []

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], *, step: int | None = None) -> None:
        """Log ``metrics`` at ``step`` (one batch)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step or 0) for key, value in metrics.items()]
        if batch:
            self._call("logging metrics", self._client.log_batch, run_id, metrics=batch)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(key, str(value)) for key, value in tags.items()]
        if batch:
            self._call("setting tags", self._client.log_batch, run_id, tags=batch)

    def log_files(self, run_id: str, files: Iterable[Path], *, artifact_path: str | None = None) -> None:
        """Upload the existing ``files`` into the run's artifacts (under ``artifact_path``)."""
        for path in files:
            if Path(path).is_file():
                self._call(f"uploading {Path(path).name}", self._client.log_artifact, run_id, str(path),
                           artifact_path)

    def log_dir(self, run_id: str, folder: Path, *, artifact_path: str) -> None:
        """Upload the whole local ``folder`` as the run's ``artifact_path``."""
        self._call(f"uploading {folder}", self._client.log_artifacts, run_id, str(folder), artifact_path)

    def end(self, run_id: str, state: str) -> None:
        """End the run as ``state`` (``done``, ``failed`` or ``stopped``; see :data:`MLFLOW_STATUS`)."""
        self._call("ending the run", self._client.set_terminated, run_id, MLFLOW_STATUS[state])

    def url(self, experiment_id: str, run_id: str) -> str:
        """Where the run is in the MLflow UI (the run id alone for a store without one)."""
        if self.uri.startswith(("http://", "https://")):
            return f"{self.uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        return f"run {run_id} in {self.uri}"
