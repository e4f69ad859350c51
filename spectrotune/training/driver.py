"""``spectrotune train``: fit a genre CNN on a prepared Parquet dataset with Ray Train (V2).

:func:`train` runs the steps a sweep trial (:mod:`spectrotune.tuning`) runs too, each in its own module:

1. :func:`~spectrotune.training.plan.plan_run`: manifest, row selection and checks, normalisation statistics,
   the checkpoint spec;
2. :func:`~spectrotune.training.plan.run_name` and :func:`check_resumable`: the run's identity, and an early
   refusal to resume a run made with another model or on other data;
3. :func:`~spectrotune.training.trainer.make_trainer` and ``fit()``: the workers run
   :func:`~spectrotune.training.loop.train_fn_per_worker`;
4. :func:`~spectrotune.training.outputs.export_run`: best checkpoint by ``valid_clip_accuracy`` -> bundle,
   ``history.json``, ``curves.png``, ``train.log`` (the layout is in :mod:`spectrotune.training.outputs`).

Tracking (config ``tracking``, :mod:`spectrotune.tracking.runs`): TensorBoard events in ``OUT/tb/<run name>`` and,
with ``tracking.mlflow_uri``, an MLflow run (params, per-epoch metrics, artifacts) that a resumed run continues.

Resuming. Ray Train V2 keeps a checkpoint-manager snapshot in the run folder (``storage_path/name``); a new
``TorchTrainer`` with the same ``RunConfig(name, storage_path)`` loads it and hands its latest checkpoint to the
workers, exactly as after a worker failure. The default run name hashes the config and the dataset's
:func:`~spectrotune.training.plan.dataset_id`, so rerunning the same command on the same prepared dataset
continues the same run (a finished run just rebuilds the bundle); change the config or prepare the data again and
a new run starts. The checkpoint spec holds the dataset id too, so an explicit ``train.run_name`` cannot resume
onto other data.

``ray`` is imported inside the functions (importing this module does not load Ray).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from spectrotune import storage
from spectrotune.config import Config
from spectrotune.errors import ConfigError, SpectrotuneError
from spectrotune.models.params import own_input_norm
from spectrotune.training.checkpoint import read_spec, spec_difference
from spectrotune.training.outputs import TrainResult, export_run, recording
from spectrotune.training.plan import plan_run, run_name
from spectrotune.training.trainer import make_trainer, training_error
from spectrotune.tracking.runs import start_train_tracking

logger = logging.getLogger(__name__)

__all__ = ["check_resumable", "train"]


def train(
    data: str | Path,
    out: str | Path,
    *,
    config: Config,
    progress: bool = True,
    log: Callable[[str], None] = logger.info,
) -> TrainResult:
    """Train ``config.model`` on the prepared dataset ``data`` with Ray Train; write the bundle to ``out``.

    Parameters
    ----------
    data : path
        A prepared dataset (``spectrotune prepare`` output: manifest + ``data/split=*/`` shards).
    out : path
        Output folder (created; an existing one is reused: a rerun with the same run name continues the run).
    config : Config
        ``config.model``, ``config.train`` and ``config.seed`` are used; the rest is saved with the outputs.
    progress : bool
        One line per epoch.
    log : callable
        Receives the driver's progress messages.

    Returns
    -------
    TrainResult

    Raises
    ------
    DatasetError
        ``data`` is not a prepared dataset, or its train/valid split is empty (after the variant filter).
    ConfigError
        The run to resume was made with another model or dataset shape.
    SpectrotuneError
        Training failed (more worker failures than ``train.max_failures``, or an error in the loop).
    """
    from spectrotune.runtime import init_ray

    t_start = time.perf_counter()
    out = storage.norm(out)
    driver_log: list[str] = []
    log = recording(log, driver_log)
    log(f"spectrotune train: data {storage.norm(data)}, out {out}, config hash {config.hash()}")
    plan = plan_run(data, config=config)
    tc = config.train
    n_mels, n_frames = plan.input_shape
    norm = "its own input batch norm" if own_input_norm(config.model.name) else "normalisation over the train split"
    log(f"training {config.model.name} on {plan.n_train} train rows ({len(plan.labels)} genres, input "
        f"{n_mels}x{n_frames}); {norm}")
    if plan.pretrained is not None:
        log(f"backbone: pretrained {plan.pretrained.model} (sha256 {plan.pretrained.sha256[:12]}) from the cache, "
            f"shipped to the workers; head only for {tc.freeze_epochs} epoch(s), backbone LR x {tc.backbone_lr_scale:g}")

    storage_root = storage.norm(tc.storage_path) if tc.storage_path else storage.join(out, "runs")
    name = run_name(config, plan.spec["data"])
    run_dir = storage.join(storage_root, name)
    check_resumable(run_dir, plan.spec, epochs=tc.epochs, log=log)

    storage.makedirs(out)
    storage.makedirs(storage_root)
    # Before Ray starts: with tracking.strict, an unusable MLflow fails here (else one warning, no MLflow).
    tracking = start_train_tracking(config, name=name, out=out, run_dir=run_dir, data=storage.norm(data),
                                    dataset_id=plan.spec["data"], log=log)
    init_ray()
    trainer = make_trainer(plan, run_name=name, storage_path=str(storage_root), callbacks=tracking.callbacks(),
                           progress=progress, log=log)
    try:
        result = trainer.fit()
    except Exception as e:  # TrainingFailedError: worker failures beyond max_failures, or a controller error
        error = training_error(e, run_dir=run_dir)
        tracking.fail(error)
        raise error from e
    if result.checkpoint is None:
        tracking.fail(SpectrotuneError("no checkpoint"))
        raise SpectrotuneError(f"training run {name} produced no checkpoint")
    trained = export_run(plan, result, out, run_dir=run_dir, log=log, t_start=t_start, driver_log=driver_log)
    tracking.finish(trained, out=out)
    return trained


def check_resumable(run_dir: Path | str, spec: Mapping[str, Any], *, epochs: int,
                    log: Callable[[str], None]) -> None:
    """Refuse early (before starting workers) to resume a run made with another model or on another dataset.

    A run folder without Ray Train's checkpoint-manager snapshot is a new run; otherwise ``log`` says whether the
    run resumes (after which epoch of ``epochs``) or only rebuilds the bundle. Raises :class:`ConfigError` when
    the latest checkpoint's spec differs from ``spec``.
    """
    from ray.train import Result

    if not storage.is_file(storage.join(run_dir, "checkpoint_manager_snapshot.json")):
        return
    try:
        previous = Result.from_path(str(run_dir))
    except Exception:  # noqa: BLE001 - a foreign or damaged run folder: let Ray Train report it
        return
    if previous.checkpoint is None:
        return
    with previous.checkpoint.as_directory() as directory:
        old = read_spec(Path(directory))
    if old is not None and old != dict(spec):
        raise ConfigError(f"{run_dir}: cannot resume this run with {spec_difference(old, spec)}; "
                          f"set another train.run_name or remove the run folder")
    done = int((previous.metrics or {}).get("epoch", 0))
    if done >= epochs:
        log(f"run {storage.name(run_dir)} already trained {done} epoch(s): rebuilding the bundle from its "
            "checkpoints")
    else:
        log(f"resuming run {storage.name(run_dir)} after epoch {done} (of {epochs})")
