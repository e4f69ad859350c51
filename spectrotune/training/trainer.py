"""The ``TorchTrainer`` of one run: datasets by name, scaling, run, checkpoint and failure settings, and the one
clear error a failed fit becomes.

:func:`make_trainer` turns a :class:`~spectrotune.training.plan.RunPlan` into Ray Datasets (``train`` split across
workers with ``DataConfig(datasets_to_split=["train"])``, ``valid`` given whole to every worker) and a
``TorchTrainer`` whose workers run :func:`~spectrotune.training.loop.train_fn_per_worker`. The same
``RunConfig(name, storage_path)`` resumes the run (Ray Train V2 keeps a checkpoint-manager snapshot in the run
folder), exactly as after a worker failure (``FailureConfig``). The train split is read with Ray Data's
``preserve_order``, so its rows reach the shuffle buffer in the same order whichever read task finishes first:
its shards in an order drawn from ``seed`` (:func:`shard_order`), not in the order of their names (datasets prepared
before prepare drew its task plan hold one or two genres per shard, in genre order).

``ray`` is imported inside the functions (importing this module does not load Ray).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spectrotune.dataset import with_tensor_mel
from spectrotune.errors import SpectrotuneError
from spectrotune.schema import LABEL, MEL, TRACK_ID, VARIANT
from spectrotune.training.checkpoint import keep_best
from spectrotune.training.loop import train_fn_per_worker
from spectrotune.training.plan import RowSelection, RunPlan

logger = logging.getLogger(__name__)

__all__ = ["LOCAL_READ_BYTES", "MATERIALIZE_FRACTION", "make_trainer", "ray_dataset", "resolve_use_gpu",
           "shard_order", "should_materialize", "shuffled_rows", "training_error"]

MATERIALIZE_FRACTION = 0.3  # train.materialize auto: hold the splits when they need under 30 % of the object store
LOCAL_READ_BYTES = 256 * 2**20  # splits up to this size are read with pyarrow in the driver (see make_trainer)


def make_trainer(
    plan: RunPlan,
    *,
    run_name: str,
    storage_path: str,
    callbacks: Sequence[Any] = (),
    progress: bool = False,
    resources_per_worker: Mapping[str, float] | None = None,
    use_gpu: bool | None = None,
    log: Callable[[str], None] = logger.info,
) -> Any:
    """The ``TorchTrainer`` of one run (Ray must be initialised): workers run ``train_fn_per_worker``.

    Parameters
    ----------
    plan : RunPlan
    run_name, storage_path : str
        Ray Train's ``RunConfig(name, storage_path)``; the same pair resumes the run. ``storage_path`` may be a
        local folder or a URI.
    callbacks : sequence
        Ray Train ``UserCallback`` objects (e.g. Tune's ``TuneReportCallback`` when the run is a trial).
    progress : bool
        One line per epoch from rank 0 (Ray Data's progress bars stay off while training, see
        :func:`_quiet_data_context`).
    resources_per_worker : mapping, optional
        Overrides ``{"CPU": train.cpus_per_worker}`` (e.g. fractional GPUs per trial in a sweep).
    use_gpu : bool, optional
        Overrides ``train.use_gpu`` (``auto``: when the cluster has GPUs).
    log : callable
    """
    import ray
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    config, tc = plan.config, plan.config.train
    if use_gpu is None:
        use_gpu = resolve_use_gpu(tc.use_gpu, float(ray.cluster_resources().get("GPU", 0)))
    n_mels, n_frames = plan.input_shape
    rows_per_worker = plan.n_train // tc.num_workers  # streaming_split(equal=True) drops the remainder
    loop_config = {
        "config": config, "n_classes": len(plan.labels), "n_mels": n_mels, "norm_mean": plan.norm_mean,
        "norm_std": plan.norm_std, "steps_per_epoch": max(1, math.ceil(rows_per_worker / tc.batch_size)),
        "spec": plan.spec, "progress": progress,
        # the backbone's checkpoint, read from the cache by this driver: workers need no cache
        "pretrained": plan.pretrained.to_loop() if plan.pretrained is not None else None,
    }
    columns = {"train": [MEL, LABEL], "valid": [MEL, LABEL, TRACK_ID]}
    rows = {"train": plan.train_rows, "valid": plan.valid_rows}
    nbytes = (plan.n_train + plan.n_valid) * n_mels * n_frames * 4
    materialize = should_materialize(tc.materialize, nbytes=nbytes,
                                     object_store_bytes=float(ray.cluster_resources().get("object_store_memory", 0)))
    with _quiet_data_context():  # each Dataset keeps a copy of the context it was made in; workers get that copy
        # The train split is read in an order drawn from the seed (shards, or rows when held in one block), not in
        # the shards' name order (see shard_order); valid is read whole every epoch, in any order.
        seeds = {"train": config.seed, "valid": None}
        if not materialize:
            datasets = {name: ray_dataset(rows[name], columns[name], shuffle_seed=seeds[name]) for name in rows}
        elif nbytes <= LOCAL_READ_BYTES:
            # Tiny splits (tests, the demo, cross-validation folds): read them here with pyarrow and hand Ray Data
            # one in-memory block each; a Ray Data read costs seconds of task start-up per split on a small machine.
            tables = {name: rows[name].arrow_table(columns[name]) for name in rows}
            tables["train"] = shuffled_rows(tables["train"], seed=config.seed)
            datasets = {name: ray.data.from_arrow(with_tensor_mel(table)) for name, table in tables.items()}
        else:
            # Small enough: read the shards once instead of once per epoch (each read is a Ray Data execution
            # with its own tasks, seconds of overhead per epoch on a small machine).
            datasets = {name: ray_dataset(rows[name], columns[name], shuffle_seed=seeds[name]).materialize()
                        for name in rows}
    if materialize:
        log(f"holding {nbytes / 2**20:.0f} MiB of train/valid segments in the object store")
    return TorchTrainer(
        train_fn_per_worker,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=tc.num_workers, use_gpu=use_gpu,
                                     resources_per_worker=dict(resources_per_worker or {"CPU": tc.cpus_per_worker})),
        run_config=RunConfig(
            name=run_name, storage_path=storage_path,
            failure_config=FailureConfig(max_failures=tc.max_failures),
            checkpoint_config=CheckpointConfig(**keep_best(tc.keep_checkpoints)),
            callbacks=list(callbacks),
            # Ray Train's INFO lines (every report's full metrics, every checkpoint path) drown the epoch lines;
            # Ray still writes every level to its session logs (logs/train/ray-train-sys-*.log).
            logging_config=LoggingConfig(log_level="WARNING"),
        ),
        datasets=datasets,
        dataset_config=DataConfig(datasets_to_split=["train"], execution_options=_ingest_options()),
    )


def ray_dataset(rows: RowSelection, columns: list[str], *, shuffle_seed: int | None = None) -> Any:
    """A Ray Dataset of ``columns`` of the selected rows (filters run in Ray Data, before the selection), ``mel`` as
    a tensor column (:func:`~spectrotune.dataset.with_tensor_mel`: batches hold one array, in either format).

    ``shuffle_seed``: read the shards in an order drawn from it (see :func:`shard_order`) instead of listing order.
    """
    import ray
    from ray.data.expressions import col

    filesystem, files = _files(rows.arrow_dataset())
    drawn = shuffle_seed is not None and filesystem is not None  # files on one store: read them in a drawn order
    paths = ([files[i] for i in shard_order(len(files), seed=shuffle_seed)] if drawn
             else [str(folder) for folder in rows.folders])
    context = ray.data.DataContext.get_current()
    saved = context.use_datasource_v2
    # Ray Data's file-based Parquet reader with one read task per shard: it reads the footers once, here, and each
    # execution (every epoch of a streamed split) starts with the shards' read tasks, each yielding its shard's
    # blocks. The default (datasource V2) re-lists the folders in a ListFiles task with footer-reader actors every
    # epoch and, on 2 CPUs, starts one read task for all shards whose blocks come only when it ends: 4-7 s before
    # each epoch's first batch (BENCHMARKS.md "train, held vs streamed splits"). Rows and order are the same.
    context.use_datasource_v2 = False
    try:
        ds = ray.data.read_parquet(paths, override_num_blocks=max(1, len(files)),
                                   **({"filesystem": filesystem} if drawn else {}))
    finally:
        context.use_datasource_v2 = saved
    filters = ([(TRACK_ID, list(rows.tracks))] if rows.tracks is not None else []) + (
        [(VARIANT, list(rows.variants))] if rows.variants else [])
    if filters:
        ds = ds.select_columns(list(dict.fromkeys([*columns, *(key for key, _ in filters)])))
        for key, values in filters:
            ds = ds.filter(expr=col(key).is_in(values))
    return ds.select_columns(columns).map_batches(with_tensor_mel, batch_format="pyarrow")


def resolve_use_gpu(value: str, cluster_gpus: float) -> bool:
    """``train.use_gpu`` (``auto``, ``true``, ``false``) as a bool; ``auto`` means "when the cluster has GPUs"."""
    if value == "auto":
        return cluster_gpus > 0
    return value == "true"


def should_materialize(setting: bool | None, *, nbytes: int, object_store_bytes: float) -> bool:
    """Whether to hold the splits (``nbytes`` bytes) in the object store (``train.materialize``; ``None`` decides by
    size: under :data:`MATERIALIZE_FRACTION` of ``object_store_bytes``)."""
    if setting is None:
        return nbytes <= MATERIALIZE_FRACTION * object_store_bytes
    return bool(setting)


def training_error(error: Exception, *, run_dir: Path | str) -> SpectrotuneError:
    """One clear error for a failed fit: a worker's own SpectrotuneError as is, else the failure's last line.

    ``error`` is what ``TorchTrainer.fit()`` raised (a ``WorkerGroupError`` carries ``worker_failures``, rank ->
    exception wrapped with its traceback text); the result names ``run_dir`` and the failing rank.
    """
    failures = dict(getattr(error, "worker_failures", None) or {})
    for rank, failure in sorted(failures.items()):
        base = getattr(failure, "_base_exc", failure)  # Ray wraps worker exceptions with their traceback text
        if isinstance(base, SpectrotuneError):
            return type(base)(str(base))
        lines = [line for line in str(failure).strip().splitlines() if line.strip()]
        # repr() only for an exception without text: "!r" on the whole conditional quoted the last line too
        return SpectrotuneError(f"training run {run_dir} failed on rank {rank}: {lines[-1] if lines else repr(base)}")
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return SpectrotuneError(f"training run {run_dir} failed: {lines[-1] if lines else repr(error)}")


@contextlib.contextmanager
def _quiet_data_context() -> Iterator[None]:
    """Ray Data without progress bars or "Execution plan" lines while the block runs (then as it was).

    Drawn by remote training workers, every epoch's bars arrive as hundreds of garbled lines; rank 0's epoch line
    says more.
    """
    import ray

    context = ray.data.DataContext.get_current()
    saved = context.enable_progress_bars, context.print_on_execution_start
    context.enable_progress_bars = context.print_on_execution_start = False
    try:
        yield
    finally:
        context.enable_progress_bars, context.print_on_execution_start = saved


def _ingest_options() -> Any:
    """Train's default ingest options with ``preserve_order``: batches no longer depend on task timing.

    Built here rather than from ``DataConfig.default_ingest_options()``, which passes the deprecated
    ``exclude_resources`` and makes Ray Data warn on every run.
    """
    from ray.data import DataContext, ExecutionOptions

    current = DataContext.get_current().execution_options
    return ExecutionOptions(resource_limits=current.resource_limits, preserve_order=True,
                            verbose_progress=current.verbose_progress)


def shard_order(n_files: int, *, seed: int) -> list[int]:
    """The order (indices into the listed shard files) in which a run reads its train shards: a permutation drawn
    from ``seed``, the same every epoch and on every resume.

    Prepare now spreads each genre over all shards (:func:`spectrotune.prepare.resume.track_order`), but datasets
    prepared before it did hold one or two genres per shard, in genre order (GTZAN's folders are genres): read in
    name order, a local shuffle buffer (``train.shuffle_buffer`` rows) would mix only the few genres it holds and
    the last genre would always end the epoch. Read in a drawn order, the buffer holds shards of random genres.
    """
    return _drawn_order(n_files, seed=seed)


def shuffled_rows(table: Any, *, seed: int) -> Any:
    """``table``'s rows (a ``pyarrow.Table``, e.g. a tiny train split held in one block) in an order drawn from
    ``seed``: the whole split is in memory, so the permutation is over rows, not shards."""
    return table.take(_drawn_order(table.num_rows, seed=seed))


def _drawn_order(n: int, *, seed: int) -> list[int]:
    """A permutation of ``range(n)`` drawn from ``(seed, n)``: the one draw behind shard and row order."""
    return [int(i) for i in np.random.default_rng([seed, n]).permutation(n)]


def _files(dataset: Any) -> tuple[Any, list[str]]:
    """The filesystem and the Parquet files of a pyarrow dataset: a FileSystemDataset's own, or those of a
    UnionDataset's children (the splits of several folders, e.g. a CV fold's train and valid). The filesystem is
    ``None`` when the children's differ (folders on two stores): the files are then only counted, not re-read."""
    files = getattr(dataset, "files", None)
    if files is not None:
        return dataset.filesystem, list(files)
    parts = [_files(child) for child in dataset.children]
    kinds = {type(fs).__name__ for fs, _ in parts}
    filesystem = parts[0][0] if len(kinds) == 1 and all(fs is not None for fs, _ in parts) else None
    return filesystem, [f for _, child_files in parts for f in child_files]
