"""Tracking of a sweep or cross-validation (``spectrotune tune`` / ``cv``): one MLflow run per trial, nested under a
parent run for the sweep, and one TensorBoard folder per trial.

``tune`` and ``cv`` (:mod:`spectrotune.tuning.sweep`, :mod:`spectrotune.tuning.cv`)::

    tracking = start_sweep_tracking(config, kind=..., name=..., experiment_dir=..., out=..., ...)
    grid = run_tuner(..., callbacks=tracking.callbacks())      # Ray Tune callbacks, on the sweep driver
    ...                                                          # results table, best bundles
    failure = tracking.finish(outcomes, metrics=..., files=...)  # statuses, the parent's numbers and files

Parent run (named after the sweep, in experiment ``tracking.experiment`` or the sweep's name): the base config as
parameters, tags ``spectrotune.kind`` (``sweep`` / ``cv``) and ``tracking.tags``; at the end the best trial's
evaluation per source (``best/<source>/test_clip_accuracy`` ...; CV: ``<source>/<model>/mean`` and ``std``) and the
results tables and plots as artifacts. Trial runs (named by trial id, tag ``mlflow.parentRunId``): the trial's
resolved config as parameters (the sampled values among them, and ``source`` / ``fold``), the sampled values also
as tag ``spectrotune.sampled``, every epoch's metrics, and at the end ``spectrotune.status`` (the results table's
status) with the MLflow status ``FINISHED`` (done, or stopped by patience), ``KILLED`` (stopped by ASHA) or
``FAILED``. TensorBoard: ``OUT/tb/<trial id>/`` (with the trial's hyperparameters for TensorBoard's HParams tab).

The run ids are kept in the experiment folder (``tracking.json`` for the parent, ``trial_state/<trial id>/`` for
each trial), so ``--resume`` continues the same runs. Ray Tune pickles a sweep's callbacks with the experiment
and restores them on ``--resume``, so the callbacks carry only the experiment folder and find the live session,
opened by the driver for this invocation, through :func:`active`. No ``ray``, no ``mlflow`` at import.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spectrotune import storage
from spectrotune.config import Config
from spectrotune.errors import TrackingError
from spectrotune.schema import TENSORBOARD_DIR
from spectrotune.tracking.mlflow_sink import MlflowSink
from spectrotune.tracking.records import RunRecord, epoch_metrics, flat_params, metric_name, read_record
from spectrotune.tracking.runs import open_run, run_tags

__all__ = ["SweepTracking", "TrialOutcome", "active", "start_sweep_tracking"]

_ACTIVE: dict[str, SweepTracking] = {}


def active(key: str) -> SweepTracking | None:
    """The session the driver opened for experiment folder ``key`` (None outside a running sweep)."""
    return _ACTIVE.get(key)


@dataclass(frozen=True)
class TrialOutcome:
    """How a trial ended, for :meth:`SweepTracking.finish`: its results-table ``status``, the ``state`` its MLflow
    run ends in (``done``, ``stopped``, ``failed``) and final ``metrics`` (best epoch, best score ...)."""

    trial_id: str
    status: str
    state: str
    metrics: dict[str, float] = field(default_factory=dict)


class SweepTracking:
    """The tracking session of one sweep invocation (made by :func:`start_sweep_tracking`)."""

    def __init__(self, *, key: str, config: Config, sink: MlflowSink | None, parent: RunRecord | None,
                 tb_root: Path | None, trial_folder: Callable[[str], str], trial_config: Callable[[Mapping], Config],
                 log: Callable[[str], None]) -> None:
        self.key, self.config, self.sink, self.parent, self.tb_root = key, config, sink, parent, tb_root
        self._trial_folder, self._trial_config, self.log = trial_folder, trial_config, log
        self._runs: dict[str, str] = {}

    def callbacks(self) -> list[Any]:
        """The Ray Tune callbacks for the sweep's ``RunConfig`` (both always: with TensorBoard off, the event
        writer writes nothing and still keeps Ray Tune from adding its own, which writes into every trial
        folder)."""
        from spectrotune.tracking.callbacks import SweepMlflow, SweepTensorBoard

        return [SweepTensorBoard(self.key), SweepMlflow(self.key)]

    def tb_folder(self, trial_id: str) -> Path | None:
        """``OUT/tb/<trial id>``, or None with ``tracking.tensorboard`` off."""
        return None if self.tb_root is None else self.tb_root / trial_id

    # --- called by the Tune callbacks (on the driver) ------------------------------------------------------------

    def trial_started(self, trial_id: str, params: Mapping[str, Any]) -> None:
        """Open (or continue) the trial's MLflow run with its parameters."""
        if self.sink is None or self.parent is None or trial_id in self._runs:
            return
        sampled = dict(params)
        trial_params = flat_params(self._trial_config(params).to_dict())
        trial_params.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in sampled.items()
                             if k not in trial_params})
        tags = run_tags(self.config, kind="trial", extra={"spectrotune.trial_id": trial_id,
                                                           "spectrotune.sampled": json.dumps(sampled, sort_keys=True,
                                                                                             default=str)})
        record = open_run(self.sink, self._trial_folder(trial_id), experiment=self.parent.experiment, name=trial_id,
                          tags=tags, params=trial_params, parent=self.parent.run_id)
        if record is not None:
            self._runs[trial_id] = record.run_id

    def trial_epoch(self, trial_id: str, params: Mapping[str, Any], result: Mapping[str, Any]) -> None:
        """Log one epoch of a trial (a Tune result carrying the worker's report)."""
        if self.sink is None or "epoch" not in result:
            return
        self.trial_started(trial_id, params)
        if trial_id in self._runs:
            epoch, values = epoch_metrics(result)
            self.sink.log_metrics(self._runs[trial_id], values, step=epoch)

    def trial_ended(self, trial_id: str, *, failed: bool) -> None:
        if self.sink is not None and trial_id in self._runs:
            self.sink.end(self._runs[trial_id], "failed" if failed else "done")

    # --- called by the driver ---------------------------------------------------------------------------------------

    def record_bundle(self, trial_id: str, bundle_dir: str | Path) -> None:
        """Record the trial's MLflow run in its exported bundle (so ``evaluate`` attaches its report there)."""
        if self.sink is None:
            return
        record = read_record(self._trial_folder(trial_id))
        if record is not None:
            record.write(bundle_dir)

    def finish(self, outcomes: Sequence[TrialOutcome], *, metrics: Mapping[str, float],
               files: Mapping[str, Sequence[Path]], tags: Mapping[str, str] | None = None,
               failed: bool = False) -> TrackingError | None:
        """Final status of every trial run, the parent's ``metrics``, ``tags`` and ``files`` (artifact folder ->
        local files; ``""`` for the top), the parent ended; returns the error a strict run raises, else None."""
        _ACTIVE.pop(self.key, None)
        if self.sink is None or self.parent is None:
            return None
        for outcome in outcomes:
            run_id = self._runs.get(outcome.trial_id)
            if run_id is None:
                record = read_record(self._trial_folder(outcome.trial_id))
                run_id = record.run_id if record is not None and record.tracking_uri == self.sink.uri else None
            if run_id is None:
                continue
            self.sink.set_tags(run_id, {"spectrotune.status": outcome.status})
            self.sink.log_metrics(run_id, outcome.metrics)
            self.sink.end(run_id, outcome.state)
        parent = self.parent.run_id
        self.sink.log_metrics(parent, {metric_name(k): v for k, v in metrics.items()})
        self.sink.set_tags(parent, dict(tags or {}))
        for folder, paths in files.items():
            self.sink.log_files(parent, paths, artifact_path=folder or None)
        self.sink.end(parent, "failed" if failed else "done")
        self.log(f"tracking: sweep logged to MLflow, {self.sink.url(self.parent.experiment_id, parent)}")
        if self.config.tracking.strict and self.sink.failure:
            return TrackingError(self.sink.failure)
        return None


def start_sweep_tracking(config: Config, *, kind: str, name: str, experiment_dir: str, out: Path,
                         published: str | Path, trial_folder: Callable[[str], str],
                         trial_config: Callable[[Mapping], Config], log: Callable[[str], None]) -> SweepTracking:
    """Open the tracking of sweep ``name`` (``kind`` ``sweep`` or ``cv``; Tune experiment ``experiment_dir``,
    local output folder ``out``, published as ``published``) and register it for its callbacks.

    ``trial_folder(trial_id)`` is the folder a trial's run record is kept in; ``trial_config(params)`` a trial's
    resolved config.

    Raises
    ------
    TrackingError
        ``tracking.strict`` and MLflow cannot be used.
    """
    settings = config.tracking
    sink = MlflowSink.connect(settings.mlflow_uri, strict=settings.strict) if settings.mlflow_uri else None
    parent = None
    if sink is not None:
        tc = config.tune
        tags = run_tags(config, kind=kind, extra={"spectrotune.experiment_dir": experiment_dir,
                                                   "spectrotune.search": tc.search,
                                                   "spectrotune.scheduler": tc.scheduler})
        parent = open_run(sink, experiment_dir, experiment=settings.experiment or name, name=name, tags=tags,
                          params=flat_params(config.to_dict()))
        if parent is not None:
            log(f"tracking: MLflow parent run {parent.run_id} in experiment {parent.experiment!r} at {sink.uri}; "
                "one nested run per trial")
    tb_root = Path(out) / TENSORBOARD_DIR if settings.tensorboard else None
    if tb_root is not None:
        shown = storage.join(published, TENSORBOARD_DIR)
        log(f"tracking: TensorBoard events of each trial in {shown}/<trial id> (tensorboard --logdir {shown})")
    session = SweepTracking(key=str(experiment_dir), config=config, sink=sink, parent=parent, tb_root=tb_root,
                            trial_folder=trial_folder, trial_config=trial_config, log=log)
    _ACTIVE[session.key] = session
    return session
