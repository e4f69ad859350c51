"""The Ray callbacks that log every epoch: one for Ray Train (``train``), two for Ray Tune (``tune``, ``cv``).

What was reused from Ray 2.60, and why not more:

- Ray Train V2 has no tracking callback of its own; its ``UserCallback.after_report(run_context, metrics,
  checkpoint)`` runs on the Train *controller* (an actor that Ray Train pins to the driver's node) once every rank
  has reported, with ``metrics[i]`` the report of rank ``i``. :class:`TrainEpochs` logs ``metrics[0]``, rank 0's
  report (the one Ray Tune's ``TuneReportCallback`` forwards too), so a run with N workers logs each epoch once and
  ``OUT/tb`` is written on the driver's machine. ``ray.air.integrations.mlflow.setup_mlflow`` (rank-0 fluent MLflow
  in the workers) opens a new run on every start, so a resumed run could not continue its MLflow run.
- Ray Tune's ``TBXLoggerCallback`` writes into each trial's own folder; :class:`SweepTensorBoard` subclasses it to
  write ``OUT/tb/<trial id>`` with spectrotune's metric names at step ``epoch`` and keeps its HParams summary at
  the end of a trial. Being a ``TBXLoggerCallback``, it also stops Tune from adding its default one.
- Ray Tune's ``MLflowLoggerCallback`` makes one unnested run per trial start, logs every Tune field at
  ``training_iteration`` and ends runs as FINISHED or FAILED only; :class:`SweepMlflow` is a plain
  ``LoggerCallback`` over :class:`~spectrotune.tracking.sweeps.SweepTracking` (nested runs, continued on resume,
  statuses from the results table).

Every callback swallows its own errors (one warning): tracking never stops a run. Imports Ray at module level (the
classes subclass Ray's).
"""

from __future__ import annotations

import logging
from typing import Any

from ray.train import UserCallback
from ray.tune.logger import LoggerCallback, TBXLoggerCallback

from spectrotune.tracking.records import epoch_metrics
from spectrotune.tracking.runs import EpochLogger, EpochTarget
from spectrotune.tracking.sweeps import active
from spectrotune.tracking.tensorboard import unique_suffix

__all__ = ["SweepMlflow", "SweepTensorBoard", "TrainEpochs"]

logger = logging.getLogger(__name__)


class _Quiet:
    """Runs tracking calls, warning once (per callback) if one fails instead of letting it reach Ray."""

    def __init__(self, name: str) -> None:
        self.name, self.warned = name, False

    def run(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - tracking must never stop training
            if not self.warned:
                self.warned = True
                logger.warning("%s: tracking failed (%s: %s); training goes on", self.name, type(e).__name__, e)


class TrainEpochs(UserCallback):
    """Ray Train V2 callback: rank 0's report of every epoch to TensorBoard and MLflow (see the module docstring).

    Parameters
    ----------
    target : EpochTarget
        Where the run's epochs go; the MLflow client and the event writer are opened on the controller.
    """

    def __init__(self, target: EpochTarget) -> None:
        self.target = target
        self._logger: EpochLogger | None = None
        self._quiet = _Quiet("spectrotune train")

    def __getstate__(self) -> dict[str, Any]:
        return {"target": self.target}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["target"])

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        if not metrics or "epoch" not in (metrics[0] or {}):
            return
        if self._logger is None:
            self._logger = EpochLogger(self.target)
        self._quiet.run(self._logger.log, metrics[0])


class SweepTensorBoard(TBXLoggerCallback):
    """Ray Tune callback: every trial's epochs into ``OUT/tb/<trial id>`` (nothing when TensorBoard is off).

    Parameters
    ----------
    key : str
        The sweep's experiment folder: the live session is :func:`~spectrotune.tracking.sweeps.active` ``(key)``.
    """

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self._quiet = _Quiet("spectrotune tune (TensorBoard)")

    def __getstate__(self) -> dict[str, Any]:  # the writers stay behind; Tune pickles its callbacks on resume
        return {"key": self.key}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["key"])

    def log_trial_start(self, trial: Any) -> None:
        self._quiet.run(self._start, trial)

    def _start(self, trial: Any) -> None:
        session = active(self.key)
        folder = session.tb_folder(str(trial.trial_id)) if session is not None else None
        if folder is None:
            return
        if trial in self._trial_writer:
            self._trial_writer[trial].close()
        folder.mkdir(parents=True, exist_ok=True)
        self._trial_writer[trial] = self._summary_writer_cls(str(folder), flush_secs=30,
                                                             filename_suffix=unique_suffix())
        self._trial_result[trial] = {}

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        self._quiet.run(self._result, trial, result)

    def _result(self, trial: Any, result: dict) -> None:
        if "epoch" not in result:
            return
        if trial not in self._trial_writer:
            self._start(trial)
        writer = self._trial_writer.get(trial)
        if writer is None:
            return
        epoch, values = epoch_metrics(result)
        for tag, value in values.items():
            writer.add_scalar(tag, value, global_step=epoch)
        self._trial_result[trial] = values  # the HParams summary's metrics at the trial's end
        writer.flush()

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        self._quiet.run(super().log_trial_end, trial, failed)


class SweepMlflow(LoggerCallback):
    """Ray Tune callback: one MLflow run per trial, nested under the sweep's parent run (see the module docstring).

    Parameters
    ----------
    key : str
        The sweep's experiment folder (see :class:`SweepTensorBoard`).
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self._quiet = _Quiet("spectrotune tune (MLflow)")

    def __getstate__(self) -> dict[str, Any]:
        return {"key": self.key}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["key"])

    def log_trial_start(self, trial: Any) -> None:
        session = active(self.key)
        if session is not None:
            self._quiet.run(session.trial_started, str(trial.trial_id), dict(trial.config or {}))

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        session = active(self.key)
        if session is not None:
            self._quiet.run(session.trial_epoch, str(trial.trial_id), dict(trial.config or {}), result)

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        session = active(self.key)
        if session is not None:
            self._quiet.run(session.trial_ended, str(trial.trial_id), failed=failed)
