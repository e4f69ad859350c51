"""One Tune trial: train one model through exactly the code of ``spectrotune train``; and the janitor that frees
the CPUs of trials Tune stopped.

The pattern is the one Ray documents for Tune + Train V2 (``doc/source/train/user-guides/
hyperparameter-optimization.rst``, Ray 2.60): each Tune trial is a small *function trainable* (:func:`run_trial`)
that plans the run (:func:`spectrotune.training.plan.plan_run`), builds a ``TorchTrainer``
(:func:`~spectrotune.training.trainer.make_trainer`) and calls ``fit()``;
``ray.tune.integration.ray_train.TuneReportCallback`` in the trainer's ``RunConfig(callbacks=...)`` forwards every
epoch's worker report (``valid_clip_accuracy`` etc.) to Tune, where ASHA reads it. The deprecated
``Tuner(trainer)`` form is not used. Each trial's Train run is ``<sweep>/runs/<trial id>``: a resumed sweep
continues an interrupted run from its last epoch checkpoint (Ray Train resumes a run with the same name and
storage).

Ray Train removes a run's worker placement group itself only through the dashboard's state API; without a
dashboard (``spectrotune``'s local Ray) a run whose trial Tune stopped would keep its CPUs forever, so the sweep
driver removes placement groups whose creating actor died (:class:`PlacementGroupJanitor`, on Ray private APIs).

Imports Ray at module level: the janitor subclasses a Ray Tune callback.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import ray
from ray.tune import Callback

from spectrotune import storage
from spectrotune.tuning.plan import SweepSpec

logger = logging.getLogger(__name__)

__all__ = ["PlacementGroupJanitor", "run_trial", "trial_dirname"]


def run_trial(params: dict[str, Any], *, spec: SweepSpec) -> None:
    """One Tune trial: build the trial's ``TorchTrainer`` and fit it; worker reports reach Tune via the callback.

    Module level so Ray pickles it by reference. A trial whose Train run already finished (the sweep driver died
    before Tune recorded the trial as done) re-reports its epochs instead of training again.

    Parameters
    ----------
    params : dict
        The trial's sampled values: dotted config keys, ``source`` and (CV) ``fold``.
    spec : SweepSpec
        What every trial of the sweep shares.

    Raises
    ------
    SpectrotuneError
        The fit failed; one line, shown in the results table's ``error`` column.
    """
    import ray.tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from spectrotune.training.checkpoint import run_history
    from spectrotune.training.plan import plan_run
    from spectrotune.training.trainer import make_trainer, training_error

    trial_id = ray.tune.get_context().get_trial_id()
    spec.record_event(trial_id, "start")
    done = spec.read_done(trial_id)
    if done is not None:
        for metrics in done:
            ray.tune.report(metrics)
        return
    config, data, tracks = spec.trial_inputs(params)
    plan = plan_run(data, config=config, tracks=tracks, backbones=spec.backbones)  # checkpoints: the sweep driver's
    gpus = spec.gpus_per_worker
    trainer = make_trainer(
        plan, run_name=trial_id, storage_path=spec.runs, callbacks=[TuneReportCallback()], progress=False,
        resources_per_worker={"CPU": spec.cpus_per_worker, **({"GPU": gpus} if gpus > 0 else {})},
        use_gpu=gpus > 0, log=lambda _: None,
    )  # fmt: skip
    spec.record_event(trial_id, "fit")
    try:
        result = trainer.fit()
    except Exception as e:  # one clear line in the results table instead of a Ray traceback
        raise training_error(e, run_dir=storage.join(spec.runs, trial_id)) from e
    spec.write_done(trial_id, run_history(result))


def trial_dirname(trial: Any) -> str:
    """Tune's folder name for a trial: its id, the same name as its Train run and its ``trial_state`` folder."""
    return str(trial.trial_id)


class PlacementGroupJanitor(Callback):
    """Tune callback: remove placement groups whose creating actor died, in this job only.

    When Tune stops a trial (ASHA) it ends the trial's actor, which takes the Train controller it owns with it;
    the controller's worker placement group then outlives it, holding its CPUs until the job ends. Ray Train's
    own cleaner needs the dashboard's state API, which a local ``spectrotune`` Ray does not start. Placement
    groups made by the driver itself (Tune's trial groups) have no creating actor and are left alone.

    Parameters
    ----------
    interval_s : float
        Seconds between two sweeps of the placement-group table while trials run.
    """

    def __init__(self, interval_s: float = 2.0) -> None:
        self.interval_s = interval_s
        self._last = 0.0
        self._disabled = False

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            self.collect()

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self.collect()

    def collect(self) -> int:
        """Remove orphaned placement groups now; returns how many."""
        if self._disabled:
            return 0
        try:
            from ray._private.state import state
            from ray.core.generated import gcs_pb2
            from ray.util.placement_group import PlacementGroup, remove_placement_group

            job = ray.get_runtime_context().get_job_id()
            removed = 0
            for raw in state._connect_and_get_accessor().get_placement_group_table():
                info = gcs_pb2.PlacementGroupTableData.FromString(raw)
                if info.state == gcs_pb2.PlacementGroupTableData.REMOVED or info.is_detached:
                    continue
                creator = bytes(info.creator_actor_id)
                if info.creator_job_id.hex() != job or not creator or set(creator) == {0xFF}:
                    continue  # another job's, or made by a driver (no actor)
                if info.creator_actor_dead:
                    with contextlib.suppress(Exception):  # removed meanwhile by its owner
                        remove_placement_group(PlacementGroup(ray.PlacementGroupID(info.placement_group_id)))
                        removed += 1
            return removed
        except Exception as e:  # noqa: BLE001 - internal API changed: stop trying, say so once
            self._disabled = True
            logger.warning(f"tune: cannot clean up placement groups of stopped trials ({e!r}); "
                           "start Ray with the dashboard so Ray Train does it")
            return 0
