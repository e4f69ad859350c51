"""Tracking of one ``spectrotune train`` run and of an evaluation: the small interface the drivers call.

``train`` (:mod:`spectrotune.training.driver`)::

    tracking = start_train_tracking(config, name=..., out=..., run_dir=..., data=..., dataset_id=..., log=log)
    trainer = make_trainer(..., callbacks=tracking.callbacks())   # one Ray Train callback logs every epoch
    ...                                                            # fit, export the bundle
    tracking.finish(result, out=out)                               # or tracking.fail(error)

What a train run logs to MLflow (``tracking.mlflow_uri``): the resolved config as parameters
(:func:`~spectrotune.tracking.records.flat_params`); tags ``spectrotune.config_hash``, ``spectrotune.dataset_id``,
``spectrotune.model``, ``spectrotune.kind=train`` and ``tracking.tags``; per epoch the history's metrics at step
``epoch``; at the end ``best_epoch`` / ``best_valid_clip_accuracy`` and the artifacts ``history.json``,
``train.log``, ``curves.png``, ``config.yaml`` (and ``bundle/`` with ``tracking.log_bundle``). Only rank 0's report
of each epoch is logged, once, by the callback on Ray Train's controller (see :mod:`spectrotune.tracking.callbacks`).
The run id is kept in ``<run folder>/tracking.json``: a resumed run (same run name) continues that MLflow run; the
bundle gets a copy, so ``evaluate`` (:func:`attach_report`) can attach its report, confusion matrix and robustness
plot to the run that trained it. TensorBoard (``tracking.tensorboard``): ``OUT/tb/<run name>/``.

No ``ray`` and no ``mlflow`` here: the callback module and MLflow are imported only when used.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spectrotune import __version__, storage
from spectrotune.config import Config
from spectrotune.errors import TrackingError
from spectrotune.schema import (BUNDLE_DIR, CONFIG, CURVES_PNG, HISTORY, REPORT_JSON, REPORT_MD, SCORE,
                                TENSORBOARD_DIR, TRAIN_LOG)
from spectrotune.tracking.mlflow_sink import MlflowSink, unusable
from spectrotune.tracking.records import RunRecord, epoch_metrics, flat_params, read_record, report_metrics
from spectrotune.tracking.tensorboard import ScalarWriter

__all__ = ["EpochLogger", "EpochTarget", "TrainTracking", "attach_report", "open_run", "run_tags",
           "start_train_tracking"]


@dataclass(frozen=True)
class EpochTarget:
    """Where each epoch of one run goes; small and picklable, so Ray Train's controller opens it itself.

    ``tracking_uri`` / ``run_id``: the MLflow run (None: no MLflow); ``tb_dir``: the TensorBoard folder (None: no
    TensorBoard).
    """

    tracking_uri: str | None = None
    run_id: str | None = None
    tb_dir: str | None = None

    @property
    def enabled(self) -> bool:
        return self.run_id is not None or self.tb_dir is not None


class EpochLogger:
    """Logs epoch reports to an :class:`EpochTarget`, opening MLflow and the event writer on first use."""

    def __init__(self, target: EpochTarget) -> None:
        self.target = target
        self._sink: MlflowSink | None = None
        self._writer: ScalarWriter | None = None
        self._opened = False

    def log(self, report: Mapping[str, Any]) -> None:
        """Log one epoch's report (a dict with ``epoch`` and the :data:`~spectrotune.schema.METRIC_KEYS`)."""
        if not self._opened:
            self._opened = True
            if self.target.run_id and self.target.tracking_uri:
                self._sink = MlflowSink.connect(self.target.tracking_uri)
            if self.target.tb_dir:
                self._writer = ScalarWriter(Path(self.target.tb_dir))
        epoch, values = epoch_metrics(report)
        if self._writer is not None:
            self._writer.log(values, step=epoch)
        if self._sink is not None and self.target.run_id:
            self._sink.log_metrics(self.target.run_id, values, step=epoch)


def run_tags(config: Config, *, kind: str, extra: Mapping[str, str]) -> dict[str, str]:
    """The tags of every run: ``spectrotune.kind``, config hash, model, version, ``extra`` and ``tracking.tags``."""
    return {"spectrotune.kind": kind, "spectrotune.config_hash": config.hash(), "spectrotune.model": config.model.name,
            "spectrotune.version": __version__, **extra, **config.tracking.tags}


def open_run(sink: MlflowSink, record_dir: str | Path, *, experiment: str, name: str, tags: Mapping[str, str],
             params: Mapping[str, str], parent: str | None = None) -> RunRecord | None:
    """Continue the MLflow run recorded in ``record_dir`` (same tracking URI) or start one there, log ``params``
    it does not have yet and ``tags``, and record it; None when MLflow failed meanwhile."""
    previous = read_record(record_dir)
    if previous is not None and previous.tracking_uri == sink.uri and sink.continue_run(previous.run_id):
        record = previous
    else:
        experiment_id = sink.experiment_id(experiment)
        run_id = None if experiment_id is None else sink.start_run(experiment_id, name=name, tags=tags,
                                                                   parent=parent)
        if run_id is None:
            return None
        record = RunRecord.of(tracking_uri=sink.uri, experiment=experiment, experiment_id=experiment_id,
                              run_id=run_id)
        record.write(record_dir)
    sink.set_tags(record.run_id, tags)
    kept = sink.log_params(record.run_id, params)
    if kept:
        sink.set_tags(record.run_id, {"spectrotune.params_kept": ", ".join(kept)})
    return record


class TrainTracking:
    """The tracking of one train run (made by :func:`start_train_tracking`)."""

    def __init__(self, config: Config, *, sink: MlflowSink | None, record: RunRecord | None, tb_local: Path | None,
                 tb_published: str | Path | None, log: Callable[[str], None]) -> None:
        self.config, self.sink, self.record, self.log = config, sink, record, log
        self.tb_local, self.tb_published = tb_local, tb_published

    @property
    def target(self) -> EpochTarget:
        return EpochTarget(tracking_uri=self.sink.uri if self.sink and self.record else None,
                           run_id=self.record.run_id if self.record else None,
                           tb_dir=str(self.tb_local) if self.tb_local else None)

    def callbacks(self) -> list[Any]:
        """The Ray Train callbacks for ``make_trainer(callbacks=...)`` (none when nothing is tracked)."""
        if not self.target.enabled:
            return []
        from spectrotune.tracking.callbacks import TrainEpochs

        return [TrainEpochs(self.target)]

    def _publish_tensorboard(self) -> None:
        """Upload the event files when ``out`` is a URI (they were written to a local temporary folder)."""
        if self.tb_local is not None and str(self.tb_local) != str(self.tb_published):
            if self.tb_local.is_dir():
                storage.copy_tree(self.tb_local, self.tb_published)
            shutil.rmtree(self.tb_local.parent, ignore_errors=True)

    def finish(self, result: Any, *, out: str | Path) -> None:
        """After the bundle is written: best metrics, artifacts, the bundle's record, the run marked finished.

        ``result`` is the :class:`~spectrotune.training.outputs.TrainResult`. Raises :class:`TrackingError` with
        ``tracking.strict`` when an MLflow call failed on the way (every local output is written by then).
        """
        self._publish_tensorboard()
        if self.sink is None or self.record is None:
            return
        run_id, best = self.record.run_id, result.metrics
        _, values = epoch_metrics(best)
        self.sink.log_metrics(run_id, {"best_epoch": float(best["epoch"]),
                                       **{f"best_{k}": v for k, v in values.items() if k.startswith("valid_")}})
        with _local_files(out, [HISTORY, TRAIN_LOG, CURVES_PNG, CONFIG]) as files:
            self.sink.log_files(run_id, files)
        if self.config.tracking.log_bundle:
            with storage.local_input(result.bundle) as bundle:
                self.sink.log_dir(run_id, bundle, artifact_path=BUNDLE_DIR)
        self.record.write(result.bundle)
        self.sink.end(run_id, "done")
        self.log(f"tracking: run logged to MLflow, {self.sink.url(self.record.experiment_id, run_id)} (best "
                 f"{SCORE} {best.get(SCORE, float('nan')):.3f})")
        if self.config.tracking.strict and self.sink.failure:
            raise TrackingError(f"{self.sink.failure} (the run's local outputs are complete)")

    def fail(self, error: BaseException) -> None:
        """The run failed: its MLflow run ends ``FAILED`` with the error as a tag; TensorBoard is published."""
        with contextlib.suppress(Exception):
            self._publish_tensorboard()
        if self.sink is not None and self.record is not None:
            lines = [line for line in str(error).splitlines() if line.strip()]
            self.sink.set_tags(self.record.run_id, {"spectrotune.error": (lines[-1] if lines else repr(error))[:500]})
            self.sink.end(self.record.run_id, "failed")


def start_train_tracking(config: Config, *, name: str, out: str | Path, run_dir: str | Path, data: str | Path,
                         dataset_id: str, log: Callable[[str], None]) -> TrainTracking:
    """Open the tracking of train run ``name`` (Ray Train folder ``run_dir``, outputs in ``out``).

    MLflow (``config.tracking.mlflow_uri``): the run recorded in ``run_dir`` is continued, else a new one is made
    in ``tracking.experiment`` (default: ``name``) with the config as parameters. TensorBoard: ``OUT/tb/<name>``
    (written locally and uploaded at the end when ``out`` is a URI).

    Raises
    ------
    TrackingError
        ``tracking.strict`` and MLflow cannot be used.
    """
    settings = config.tracking
    tb_local = tb_published = None
    if settings.tensorboard:
        tb_published = storage.join(out, TENSORBOARD_DIR, name)
        tb_local = (Path(tempfile.mkdtemp(prefix="spectrotune-tb-")) / name if storage.is_uri(out)
                    else Path(tb_published))
    sink = MlflowSink.connect(settings.mlflow_uri, strict=settings.strict) if settings.mlflow_uri else None
    record = None
    if sink is not None:
        tags = run_tags(config, kind="train", extra={"spectrotune.dataset_id": dataset_id,
                                                      "spectrotune.data": str(data), "spectrotune.out": str(out),
                                                      "spectrotune.run_dir": str(run_dir)})
        record = open_run(sink, run_dir, experiment=settings.experiment or name, name=name, tags=tags,
                          params=flat_params(config.to_dict()))
        if record is not None:
            log(f"tracking: MLflow run {record.run_id} in experiment {record.experiment!r} at {sink.uri}")
    if tb_local is not None:
        log(f"tracking: TensorBoard events in {tb_published} (tensorboard --logdir {storage.parent(tb_published)})")
    return TrainTracking(config, sink=sink, record=record, tb_local=tb_local, tb_published=tb_published, log=log)


@contextlib.contextmanager
def _local_files(folder: str | Path, names: Sequence[str]) -> Iterator[list[Path]]:
    """Local paths of the files ``names`` in ``folder`` that exist (downloaded first when ``folder`` is a URI)."""
    if not storage.is_uri(folder):
        yield [Path(folder) / n for n in names if (Path(folder) / n).is_file()]
        return
    with tempfile.TemporaryDirectory(prefix="spectrotune-track-") as tmp:
        paths = []
        for n in names:
            if storage.is_file(storage.join(folder, n)):
                (Path(tmp) / n).write_bytes(storage.read_bytes(storage.join(folder, n)))
                paths.append(Path(tmp) / n)
        yield paths


def attach_report(report: Mapping[str, Any], *, report_dir: Path, bundle_dir: str | Path, run_id: str | None = None,
                  tracking_uri: str | None = None, strict: bool = False,
                  log: Callable[[str], None] = print) -> TrackingError | None:
    """Attach an evaluation report to an MLflow run: its metrics (:func:`~spectrotune.tracking.records.report_metrics`)
    and ``report.json``, ``report.md`` and the plots under the artifact folder ``evaluation/``.

    The run is ``run_id`` (``--log-to``; ``"none"``: attach nothing) or the one recorded in the bundle; the store
    is ``tracking_uri`` or the bundle's. Without a run, nothing is attached. ``report_dir`` is the local folder the
    report was written to.

    Returns
    -------
    TrackingError or None
        The error to raise once the report is published: ``--log-to`` without a known tracking URI, or (``strict``)
        an MLflow that cannot be used or a run it does not have.
    """
    if run_id == "none":
        return None
    record = read_record(bundle_dir)
    run = run_id or (record.run_id if record else None)
    uri = tracking_uri or (record.tracking_uri if record else None)
    if run is None:
        return None
    if uri is None:
        return TrackingError(f"--log-to {run}: no MLflow tracking URI (bundle {bundle_dir} records none); "
                             "add --tracking-uri URI")
    try:
        sink = MlflowSink.connect(uri, strict=strict)
        if sink is not None and not sink.has_run(run):
            unusable(f"MLflow run {run} is not on {sink.uri}", strict=strict)
            sink = None
    except TrackingError as e:
        return e
    if sink is None:
        return None
    sink.log_metrics(run, report_metrics(report))
    names = [REPORT_JSON, REPORT_MD, *dict(report.get("files") or {}).values()]
    sink.log_files(run, [report_dir / n for n in names], artifact_path="evaluation")
    if sink.failure is None:
        log(f"tracking: report attached to MLflow run {run} at {sink.uri}")
    return TrackingError(sink.failure) if strict and sink.failure else None
