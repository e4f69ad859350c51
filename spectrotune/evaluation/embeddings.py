"""musicnn embeddings + SVM / logistic regression: the pretrained-feature baselines of ``evaluate`` and ``baseline``,
computed with Ray Data.

Every track of a prepared dataset (train, valid and test, clean rows) gets one vector from the pretrained musicnn
tagger (:class:`~spectrotune.evaluation.embedding_data.Embedder`: ``max_pool`` + ``mean_pool``, or the penultimate
layer, averaged over the track's 3-s patches, as musicnn's own transfer examples describe a clip); then the
classical baselines' :func:`~spectrotune.evaluation.baselines.fit_baseline` fits an RBF SVM and a logistic
regression on them: trained on the train tracks, ``C`` chosen on valid, scored on test, exactly as the handcrafted
features are. Where the patches come from:

- a dataset prepared with the musicnn front end at the checkpoint's parameters (``configs/musicnn.yaml``): its own
  clean rows, read by Ray Data (no audio needed);
- any other audio dataset: the source audio its manifest points to (a folder or an ``s3://`` / ``gs://`` URI, listed
  as prepare lists it; the actors download a URI's files through :func:`~spectrotune.sources.listing.local_copy`, so
  every node needs the store's credentials), decoded at 16 kHz and cut into the tagger's whole-file patches (as
  ``spectrotune tag`` does); tracks missing from the source, or whose file cannot be read, are named and left out.

Ray Data: this process reads the checkpoint from the cache (``spectrotune fetch musicnn``) and hands it to
``map_batches(Embedder)`` actors, one CPU each, and one GPU each when the cluster has GPUs, so the nodes need no
cache. When the embeddings cannot be made (no cache, image sources, no source audio) the result says why in one
line instead of failing: ``{"available": False, "reason": ...}``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.dataset as pads

from spectrotune import dataset as D
from spectrotune import storage
from spectrotune.errors import DatasetError, InputError, StorageError
from spectrotune.evaluation.embedding_data import ESTIMATORS, Embedder, embedding_columns, embedding_track_table
from spectrotune.schema import CLEAN, FRONTEND_MUSICNN, GENRE, LABEL, MEL, SPLIT, SPLITS, TRACK_ID, VARIANT

logger = logging.getLogger(__name__)

__all__ = ["MAX_BATCH_FILES", "PATCH_BATCH", "embedding_baselines", "result_name"]

PATCH_BATCH = 64  #: dataset patches per actor batch
MAX_BATCH_FILES = 8  #: audio files per actor batch (a 30-s file is 10 patches)


def result_name(model: str, layer: str, estimator: str) -> str:
    """The row of a report's baselines table: ``MSD_musicnn embeddings (pool) + svm_rbf``."""
    return f"{model} embeddings ({layer}) + {estimator}"


def embedding_baselines(data_dir: str | Path, *, model: str = "MSD_musicnn", layer: str = "pool", seed: int = 0,
                        cache: str | Path | None = None, log: Callable[[str], None] = logger.info) -> dict[str, Any]:
    """The musicnn-embedding baselines of a prepared dataset (starts or joins Ray).

    Parameters
    ----------
    data_dir : path
        A prepared dataset (a folder or a URI).
    model : str
        ``MSD_musicnn`` or ``MTT_musicnn``, read from the musicnn cache (``cache``, default ``$SPECTROTUNE_CACHE``).
    layer : str
        ``pool``, ``penultimate``, or ``none`` (nothing is computed).
    seed : int
        Seed of the baselines (the dataset's seed in ``evaluate``).

    Returns
    -------
    dict
        ``available`` False with a one-line ``reason``; or ``available`` True, ``model``, ``layer``, ``dimensions``,
        ``source`` (``dataset`` or the source audio folder), ``n_tracks``, ``seconds``, ``results`` (by
        :func:`result_name`: :func:`~spectrotune.evaluation.baselines.fit_baseline`'s dicts) and, when some tracks
        could not be embedded, ``tracks_not_embedded``.
    """
    from spectrotune.evaluation.baselines import run_baselines
    from spectrotune.models.pretrained import read_pretrained
    from spectrotune.sources.kinds import source_kind

    if layer == "none":
        return {"available": False, "reason": "disabled (evaluate.embeddings: none)"}
    t0 = time.perf_counter()
    data_dir = storage.norm(data_dir)
    manifest = D.read_manifest(data_dir)
    if not source_kind(manifest.source.kind).has_audio:
        return {"available": False, "reason": "image sources have no audio for musicnn's front end"}
    columns = embedding_columns(layer)
    try:
        meta, weights = read_pretrained(model, cache)
    except InputError as e:
        return {"available": False, "reason": str(e)}
    tracks = D.open_dataset(data_dir).to_table(columns=[TRACK_ID, GENRE, LABEL, SPLIT],
                                               filter=pads.field(VARIANT) == CLEAN).to_pandas()
    tracks = tracks.drop_duplicates(TRACK_ID).reset_index(drop=True)
    if tracks.empty:
        return {"available": False, "reason": f"dataset {data_dir} has no clean rows to embed"}
    patches = _uses_dataset_patches(manifest, meta)
    inputs, notes = (None, {}) if patches else _source_files(manifest, list(tracks[TRACK_ID]))
    if inputs is not None and not inputs:
        return {"available": False, "reason": notes["reason"]}
    source = "dataset" if patches else str(manifest.source.path)
    log(f"musicnn embeddings ({model}, {layer}) of {len(tracks)} tracks from the "
        f"{'dataset patches' if patches else 'source audio'} with Ray Data")
    ids, counts, vectors, failed = _embed(data_dir, inputs, model=model, layer=layer, weights=weights,
                                          meta=meta.to_dict())
    if failed:
        notes.setdefault("failed", []).extend(failed[:20])
        notes["n_failed"] = len(failed)
    try:
        table = embedding_track_table(tracks, ids, counts, vectors, columns=columns)
        results = run_baselines(table, seed=seed, models=ESTIMATORS, features=columns)
    except DatasetError as e:
        return {"available": False, "reason": f"musicnn embeddings of {data_dir}: {e}"}
    log("musicnn embeddings: " + ", ".join(f"{m} {r['test_accuracy']:.3f}" for m, r in results.items()))
    out = {"available": True, "model": model, "layer": layer, "dimensions": len(columns), "source": source,
           "n_tracks": int(len(table)), "seconds": round(time.perf_counter() - t0, 3),
           "results": {result_name(model, layer, m): r for m, r in results.items()}}
    if notes:
        out["tracks_not_embedded"] = notes
    return out


def _uses_dataset_patches(manifest: D.DatasetManifest, meta: Any) -> bool:
    """Whether the dataset's rows are the checkpoint's own input (the musicnn front end at its parameters)."""
    from spectrotune.sources.kinds import LogMel
    from spectrotune.training.transfer import FRONTEND_KEYS

    if manifest.feature_config.frontend != FRONTEND_MUSICNN:
        return False
    ours = LogMel.from_config(manifest.feature_config, sample_rate=manifest.audio_config.sample_rate).musicnn_params()
    return all(float(getattr(ours, k)) == float(getattr(meta.frontend, k)) for k in FRONTEND_KEYS)


def _source_files(manifest: D.DatasetManifest, track_ids: list[str]) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """``[{track_id, path}]`` of the tracks found in the manifest's source, and notes on the ones that are not."""
    from spectrotune.sources.listing import list_source

    try:
        listing = list_source(storage.norm(manifest.source.path), kind=manifest.source.kind)
    except (InputError, StorageError) as e:
        return [], {"reason": f"source audio unavailable: {e}"}
    by_track = {item.track_id: item.path for item in listing.items}
    absent = [t for t in track_ids if t not in by_track]
    files = [{TRACK_ID: t, "path": str(by_track[t])} for t in track_ids if t in by_track]
    notes: dict[str, Any] = {"not_in_source": absent[:20], "n_not_in_source": len(absent)} if absent else {}
    if not files:
        notes["reason"] = f"none of the {len(track_ids)} tracks is in the source {manifest.source.path}"
    return files, notes


def _embed(data_dir: Path | str, files: list[dict[str, str]] | None, *, model: str, layer: str,
           weights: dict[str, np.ndarray], meta: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Ray Data: the dataset's clean patches (``files`` None) or the audio files through :class:`Embedder` actors.

    Returns track ids [n], patch counts [n], vectors [n, D] and ``"track: reason"`` of files that failed.
    """
    import ray

    from spectrotune.runtime import init_ray
    from spectrotune.training.plan import RowSelection
    from spectrotune.training.trainer import ray_dataset

    init_ray()
    context = ray.data.DataContext.get_current()
    context.verbose_stats_logs = False
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    if files is None:
        folders = tuple(storage.join(D.shards_dir(data_dir), f"split={s}") for s in SPLITS
                        if storage.is_dir(storage.join(D.shards_dir(data_dir), f"split={s}")))
        ds, size = ray_dataset(RowSelection(folders, None, (CLEAN,), "embeddings"), [TRACK_ID, MEL]), PATCH_BATCH
        # the read tasks need a CPU of their own while the actors hold theirs
        actors = max(1, min(gpus or cpus - 1, cpus - 1))
    else:
        size = max(1, min(MAX_BATCH_FILES, -(-len(files) // cpus)))
        ds = ray.data.from_items(files, override_num_blocks=-(-len(files) // size))
        actors = max(1, min(gpus or cpus, -(-len(files) // size)))
    out = ds.map_batches(
        Embedder, batch_format="numpy", batch_size=size, zero_copy_batch=True,
        fn_constructor_kwargs={"model": model, "weights": weights, "meta": meta, "layer": layer,
                               "num_threads": 1},
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
        num_cpus=1, num_gpus=1 if gpus else 0,
    )
    ids, counts, vectors, failed = [], [], [], []
    for batch in out.iter_batches(batch_format="numpy", batch_size=1024):
        ids.append(np.asarray(batch[TRACK_ID]).astype(str))
        counts.append(np.asarray(batch["weight"]))
        vectors.append(np.asarray(batch["vector"], np.float32))
        failed += [f"{t}: {r}" for t, r in zip(ids[-1], batch["reason"], strict=True) if r]
    if not ids:
        return np.zeros(0, str), np.zeros(0, np.int64), np.zeros((0, len(embedding_columns(layer))), np.float32), []
    return np.concatenate(ids), np.concatenate(counts), np.concatenate(vectors), failed
