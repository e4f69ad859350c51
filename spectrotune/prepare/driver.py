"""``spectrotune prepare``: the Ray Data pipeline from a corpus folder to a Parquet dataset.

The driver lists the source and assigns splits per track (cheap, no file is opened), then Ray Data fans batches of
files out to tasks; each task decodes, segments, adds the noise variants, computes log-mel and features and writes
its own shard per split straight to Parquet (:func:`spectrotune.prepare.task.process_batch`), returning only counts
and error records. Arrays never travel through the object store, so memory stays flat as the corpus grows.

Output appears atomically: everything is written into a hidden staging folder beside ``out`` and renamed onto
``out`` only when all tasks finished and the manifest is written. An existing ``out`` is refused unless
``overwrite``. ``out`` may be a URI (``s3://bucket/gtzan``): the tasks then write their shards straight to the
object store, under the staging prefix that is copied into place at the end with ``manifest.json`` last
(:mod:`spectrotune.storage`). The source may be a URI too (``s3://bucket/gtzan/``): it is listed through pyarrow
and each task downloads its files (:mod:`spectrotune.sources.listing`, :mod:`spectrotune.prepare.task`).

An interrupted prepare (Ctrl-C, a killed driver, a lost node) keeps its staging folder with every finished task's
shards; ``resume`` finishes it, running only the tasks that had not finished, and publishes the same bytes an
uninterrupted run would have (:mod:`spectrotune.prepare.resume`). Runs on a local Ray by default, or on the
cluster named by ``RAY_ADDRESS``.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import spectrotune
from spectrotune import console, runtime, storage
from spectrotune.audio import io as audio
from spectrotune.audio import handcrafted
from spectrotune.config import SPLITS, Config, save_config
from spectrotune.dataset import (
    CLEAN, ERRORS, ERRORS_SCHEMA, FORMAT, MANIFEST, Counts, DatasetManifest, ErrorSummary, FeaturesInfo, MelInfo,
    SourceInfo, Timings,
)
from spectrotune.errors import ConfigError, InputsFailedError, OutputExistsError
from spectrotune.prepare import resume as staging_state
from spectrotune.sources.kinds import LogMel, SourceKind, source_kind
from spectrotune.sources.listing import SourceItem, list_source
from spectrotune.sources.splits import assign_splits
from spectrotune.prepare.task import BatchResult, merge_results, process_batch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrepareResult:
    """Where the dataset is and what happened."""

    out: Path | str
    manifest: DatasetManifest
    tasks_run: int = 0  #: Ray Data tasks this call ran
    tasks_skipped: int = 0  #: tasks a resumed prepare kept from the interrupted run (their shards were done)

    @property
    def n_failed(self) -> int:
        return self.manifest.errors.count

    @property
    def all_failed(self) -> bool:
        """Inputs failed and not one track was prepared (the command line exits 1)."""
        return bool(self.n_failed) and self.manifest.counts.tracks == 0

    def summary(self) -> str:
        m = self.manifest
        rows = sum(m.counts.rows_per_split.values())
        line = (f"prepared {m.counts.tracks} tracks -> {rows} rows in {m.timings.total_seconds:.1f} s "
                f"({', '.join(f'{s}: {n}' for s, n in m.counts.rows_per_split.items())}) at {self.out}")
        if self.tasks_skipped:
            line += f"\nresumed: {self.tasks_skipped} task(s) kept from the interrupted run, {self.tasks_run} run"
        if self.n_failed:
            line += (f"\n{self.n_failed} input(s) failed; see {storage.join(self.out, ERRORS)} "
                     f"(first: {m.errors.examples[0]})")
        return line


def prepare(
    source: str | Path,
    out: str | Path,
    *,
    config: Config,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = logger.info,
) -> PrepareResult:
    """Prepare ``source`` (a folder or a URI) into a Parquet dataset at ``out`` (see :mod:`spectrotune.dataset`).

    ``resume`` finishes the unfinished prepare into ``out`` (its staging folder, :mod:`spectrotune.prepare.resume`)
    when there is one, keeping the tasks that had finished; without one it prepares from the start.

    Raises
    ------
    OutputExistsError
        ``out`` exists and ``overwrite`` is false; or an unfinished prepare into ``out`` is there and neither
        ``resume`` nor ``overwrite`` is given.
    ConfigError
        ``resume``, and the config or the source changed since the unfinished run (the message says what).
    InputsFailedError
        ``config.prepare.strict`` is set and any input failed (the dataset is still written).
    """
    t_start = time.perf_counter()
    out = storage.norm(out)
    if storage.exists(out) and not overwrite:
        raise OutputExistsError(f"{out}: output exists; pass --overwrite to replace it")
    # Absolute: the tasks may run in another folder (a Ray started elsewhere, a cluster). A URI is read by each task.
    source = storage.norm(source)
    listing = list_source(source, kind=config.source.kind, group_by_song=config.split.kind != "folders")
    kind = source_kind(listing.kind)
    kind.mel_shape(config)  # refuses a front end the kind cannot use (features.frontend) before any task starts
    splits, split_info = assign_splits(listing.items, config=config.split)
    labels = {genre: i for i, genre in enumerate(listing.genres)}
    items = [item for item in listing.items if item.track_id in splits]
    t_listed = time.perf_counter()
    log(f"found {len(listing.items)} {kind.name} files in {len(labels)} genres; {len(items)} assigned to splits "
        f"({', '.join(f'{s}: {sum(1 for t in set(splits) if splits[t] == s)} tracks' for s in SPLITS)})")

    if kind.has_audio and config.features.handcrafted:
        handcrafted.warm_up(sr=config.audio.sample_rate)
    background = None
    if kind.has_audio and config.noise.enabled and any(v.kind == "file" for v in config.noise.variants):
        background = audio.decode(config.noise.background, sr=config.audio.sample_rate, min_seconds=0.1)

    state = staging_state.open_staging(out, resume=resume, overwrite=overwrite, config=config, source=source,
                                       files=listing.stats, log=log)
    staging = staging_state.staging_dir(out)
    tmp = staging_state.staged_dataset(staging)
    if state is None:
        plan = staging_state.plan_tasks(items, _files_per_task(config, len(items)), seed=config.seed)
        storage.makedirs(tmp)
        staging_state.new_state(out=out, source=source, config=config, files=listing.stats, plan=plan).write(staging)
        done: dict[str, BatchResult] = {}
    else:
        plan = _recorded_plan(state, items)
        written = set(storage.list_files(tmp))  # a marker counts only with its shards (none removed since)
        done = {shard: r for shard, r in staging_state.done_tasks(staging, list(plan)).items()
                if all(f in written for f in r.files)}
        log(f"resuming: {len(done)} of {len(plan)} tasks done, running {len(plan) - len(done)}")
    todo = {shard: batch for shard, batch in plan.items() if shard not in done}
    log(f"processing {sum(map(len, todo.values()))} {kind.noun} files in {len(todo)} Ray Data tasks")
    try:
        results = list(done.values()) + _run_tasks(todo, splits=splits, labels=labels, config=config, kind=kind,
                                                   staging=staging, background=background, progress=progress)
        t_done = time.perf_counter()
        merged = merge_results(sorted(results, key=lambda r: r.shard))  # the plan's order, however they finished
        errors = [{"path": p, "track_id": "", "genre": "", "stage": "list", "reason": r}
                  for p, r in listing.problems] + merged["errors"]
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(errors, schema=ERRORS_SCHEMA), sink)
        storage.write_bytes(storage.join(tmp, ERRORS), sink.getvalue().to_pybytes())
        manifest = _manifest(config=config, kind=kind, source=source, labels=list(labels), merged=merged,
                             errors=errors, split_info=split_info, n_tracks=len({i.track_id for i in items}),
                             timings={"list_seconds": t_listed - t_start, "process_seconds": t_done - t_listed,
                                      "total_seconds": time.perf_counter() - t_start})
        save_config(config, tmp)
        manifest.write(tmp)
        storage.replace_dir(tmp, out, last=[MANIFEST])
    except BaseException:
        # Kept: the finished tasks' shards are hours of work on a big corpus. A plain rerun refuses until it is
        # given --resume (finish it) or --overwrite (start again); a later stage never reads a staging folder.
        log(f"prepare stopped; the finished tasks are kept in {staging}: run the same command with --resume to "
            "finish it")
        raise
    storage.delete(staging)
    result = PrepareResult(out=out, manifest=manifest, tasks_run=len(todo), tasks_skipped=len(done))
    if config.prepare.strict and result.n_failed:
        raise InputsFailedError(f"--strict: {result.n_failed} input(s) failed; see {storage.join(out, ERRORS)}")
    return result


def _files_per_task(config: Config, n_items: int) -> int:
    """Files per task of a new plan: at least ~4 tasks per CPU of the cluster, so a small corpus still keeps every
    core busy; never more than ``prepare.files_per_task``. (A resumed prepare keeps the plan it recorded.)"""
    import ray

    runtime.init_ray()
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1) / config.prepare.num_cpus))
    return max(1, min(config.prepare.files_per_task, -(-n_items // (4 * cpus))))


def _recorded_plan(state: staging_state.PrepareState, items: list[SourceItem]) -> dict[str, list[SourceItem]]:
    by_path = {item.path: item for item in items}
    missing = [p for paths in state.tasks.values() for p in paths if p not in by_path]
    if missing:  # the fingerprint matched, so only a changed split assignment can get here
        raise ConfigError(f"cannot resume: {missing[0]} was planned but is no longer assigned to a split; pass "
                          "--overwrite without --resume to start again")
    return {shard: [by_path[p] for p in paths] for shard, paths in state.tasks.items()}


def _run_tasks(plan: dict[str, list[SourceItem]], *, splits: dict[str, str], labels: dict[str, int],
               config: Config, kind: SourceKind, staging: Path | str, background: np.ndarray | None, progress: bool
               ) -> list[BatchResult]:
    """Run :func:`process_batch` over the planned shards as Ray Data tasks, each marking itself done in ``staging``
    once its shards are written; their reports, in no set order."""
    if not plan:
        return []
    import ray

    runtime.init_ray()
    ctx = ray.data.DataContext.get_current()
    # Ray Data's own bars (tqdm_ray) drew nothing on a terminal here; the files-done bar below is drawn instead.
    ctx.enable_progress_bars = False
    ctx.verbose_stats_logs = False
    tmp = staging_state.staged_dataset(staging)
    split_ref = ray.put(dict(splits))
    background_ref = ray.put(background) if background is not None else None
    tasks = [{"shard": shard, "items": json.dumps([asdict(x) for x in batch]), "n_files": len(batch)}
             for shard, batch in plan.items()]

    def run(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from threadpoolctl import threadpool_limits

        reports = []
        node_id = ray.get_runtime_context().get_node_id()
        split_map = ray.get(split_ref)
        bg = ray.get(background_ref) if background_ref is not None else None
        with threadpool_limits(1):  # one core per task: BLAS threads would only fight the other tasks
            for shard, raw in zip(batch["shard"], batch["items"]):
                batch_items = [SourceItem(**d) for d in json.loads(raw)]
                r = process_batch(batch_items, splits=split_map, labels=labels, config=config, kind=kind,
                                  out_dir=tmp, shard_name=str(shard), background=bg)
                r.node_id = node_id
                staging_state.write_done(staging, r)  # after its shards: a marker means a finished task
                reports.append(json.dumps(asdict(r)))
        return {"report": np.array(reports, dtype=object), "n_files": np.asarray(batch["n_files"])}

    ds = ray.data.from_items(tasks, override_num_blocks=len(tasks))
    ds = ds.map_batches(run, batch_size=1, num_cpus=config.prepare.num_cpus, zero_copy_batch=True)
    results = []
    n_files = sum(len(batch) for batch in plan.values())
    with console.Progress("prepare", n_files, unit=f"{kind.noun} files", enabled=progress) as bar:
        for row in ds.iter_rows():  # as each task finishes
            results.append(BatchResult(**json.loads(row["report"])))
            bar.advance(int(row["n_files"]))
    return results


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "spectrotune": spectrotune.__version__}
    for name in ("ray", "numpy", "librosa", "soundfile", "pyarrow", "torch", "scikit-learn"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _manifest(*, config: Config, kind: SourceKind, source: Path | str, labels: list[str], merged: dict[str, Any],
              errors: list[dict[str, str]], split_info: dict[str, Any], n_tracks: int,
              timings: dict[str, float]) -> DatasetManifest:
    n_mels, n_frames = kind.mel_shape(config)
    counts: dict[str, dict[str, dict[str, int]]] = {}
    rows_per_split = dict.fromkeys(SPLITS, 0)
    variants: set[str] = set()
    for key, n in sorted(merged["rows"].items()):
        split, genre, variant = key.split("|")
        counts.setdefault(split, {}).setdefault(genre, {})[variant] = n
        rows_per_split[split] += n
        variants.add(variant)
    f = config.features
    return DatasetManifest(
        format=FORMAT,
        created_unix=time.time(),
        source=SourceInfo(path=str(source), kind=kind.name),
        config=config.to_dict(),
        config_hash=config.hash(),
        labels=tuple(labels),
        mel=MelInfo(shape=(n_mels, n_frames), values=kind.mel_values if not kind.has_audio else
                    LogMel.from_config(f, sample_rate=config.audio.sample_rate).values,
                    sample_rate=config.audio.sample_rate, n_fft=f.n_fft, hop_length=f.hop_length, n_mels=n_mels,
                    fmin=f.fmin, fmax=f.fmax, top_db=f.top_db, segment_seconds=config.audio.segment_seconds),
        features=FeaturesInfo(handcrafted=bool(f.handcrafted and kind.has_audio), on_variants=(CLEAN,)),
        noise=kind.noise_note(config.noise),
        variants=tuple(sorted(variants)),
        split=split_info,
        counts=Counts(
            tracks=sum(merged["tracks"].values()),
            tracks_assigned=n_tracks,
            tracks_per_split={s: merged["tracks"].get(s, 0) for s in SPLITS},
            rows_per_split=rows_per_split,
            per_split_genre_variant=counts,
            silent_segments=merged["silent_segments"],
            padded_clips=merged["padded_clips"],
        ),
        errors=ErrorSummary(count=len(errors), examples=tuple(f"{e['path']}: {e['reason']}" for e in errors[:5])),
        versions=_versions(),
        timings=Timings(**timings, task_seconds=merged["seconds"], nodes=merged["nodes"]),
        command=" ".join(sys.argv),
    )
