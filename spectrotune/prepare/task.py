"""Turning one batch of input files into Parquet shard rows: the work each prepare task does.

Pure numpy/pyarrow, no ``ray``: :mod:`spectrotune.prepare.driver` ships batches of :class:`~spectrotune.sources.listing.SourceItem`
to Ray tasks that call :func:`process_batch`. A file that cannot be used is recorded with its reason and the rest of
the batch goes on (one bad file never costs a worker's batch). Randomness comes only from seeds derived from
``(seed, track_id, segment, variant)``, so any shard can be rebuilt bit-identically.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from spectrotune import storage
from spectrotune.audio import io as audio
from spectrotune.audio import handcrafted, logmel
from spectrotune.audio import noise
from spectrotune.config import Config
from spectrotune.dataset import CLEAN, N_FEATURES, SHARDS, segment_schema
from spectrotune.errors import InputError
from spectrotune.sources.listing import SourceItem


_DICT_COLUMNS = ["track_id", "genre", "variant"]
_STATS_COLUMNS = ["track_id", "genre", "label", "segment", "variant", "snr_db"]


@dataclass
class BatchResult:
    """What one task reports back to the driver (small: counts and error records, never arrays)."""

    rows: dict[str, int] = field(default_factory=dict)  # "split|genre|variant" -> rows
    tracks: dict[str, int] = field(default_factory=dict)  # split -> tracks written
    silent_segments: int = 0
    padded_clips: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> seconds spent
    files: list[str] = field(default_factory=list)  # shard files written (relative)
    node_id: str = ""  # Ray node that ran the task (filled by the pipeline; shows where work was scheduled)

    def add_time(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


class _Columns:
    """Column buffers of one split's shard."""

    def __init__(self) -> None:
        self.track_id: list[str] = []
        self.genre: list[str] = []
        self.label: list[int] = []
        self.segment: list[int] = []
        self.variant: list[str] = []
        self.snr_db: list[float | None] = []
        self.mel: list[np.ndarray] = []  # each [n, n_mels, n_frames]
        self.features: list[np.ndarray | None] = []  # one per row

    def extend(self, *, item: SourceItem, label: int, segments: Sequence[int], variant: str,
               snr_db: Sequence[float | None], mel: np.ndarray, feats: np.ndarray | None) -> None:
        n = len(segments)
        self.track_id += [item.track_id] * n
        self.genre += [item.genre] * n
        self.label += [label] * n
        self.segment += list(segments)
        self.variant += [variant] * n
        self.snr_db += list(snr_db)
        self.mel.append(mel)
        self.features += list(feats) if feats is not None else [None] * n

    def table(self, schema: pa.Schema) -> pa.Table:
        mel = np.concatenate(self.mel, axis=0).astype(np.float32, copy=False)
        feats = pa.array(
            [None if f is None else np.asarray(f, dtype=np.float32) for f in self.features],
            type=pa.list_(pa.float32(), N_FEATURES),
        )
        return pa.table(
            {
                "track_id": pa.array(self.track_id, pa.string()),
                "genre": pa.array(self.genre, pa.string()),
                "label": pa.array(self.label, pa.int32()),
                "segment": pa.array(self.segment, pa.int32()),
                "variant": pa.array(self.variant, pa.string()),
                "snr_db": pa.array(self.snr_db, pa.float32()),
                "mel": pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(mel)),
                "features": feats,
            },
            schema=schema,
        )


def mel_shape(config: Config, *, kind: str) -> tuple[int, int]:
    """``(n_mels, n_frames)`` of the ``mel`` column for a source kind."""
    if kind == "spotify":
        return config.features.n_mels, config.image.n_frames
    window = int(round(config.audio.segment_seconds * config.audio.sample_rate))
    return config.features.n_mels, logmel.n_frames(window, hop_length=config.features.hop_length)


def process_batch(
    items: Sequence[SourceItem],
    *,
    splits: Mapping[str, str],
    labels: Mapping[str, int],
    config: Config,
    kind: str,
    out_dir: str | Path,
    shard_name: str,
    background: np.ndarray | None = None,
) -> BatchResult:
    """Decode, segment, add noise, compute log-mel and features for ``items``; write one shard per split.

    Parameters
    ----------
    items : sequence of SourceItem
        Files of this batch (each with a split in ``splits``).
    splits, labels : mapping
        track id -> split; genre -> label index.
    out_dir : path
        Dataset root being written; shards go to ``out_dir/data/split=<split>/<shard_name>.parquet``.
    background : ndarray, optional
        Decoded background-noise recording (float32, at the configured rate) for variants of kind ``file``.
    """
    result = BatchResult()
    columns: dict[str, _Columns] = {}
    tracks: dict[str, set[str]] = {}
    for item in items:
        split = splits[item.track_id]
        try:
            if kind == "spotify":
                added = _image_rows(item, split=split, label=labels[item.genre], config=config, result=result,
                                    columns=columns.setdefault(split, _Columns()))
            else:
                added = _audio_rows(item, split=split, label=labels[item.genre], config=config, result=result,
                                    columns=columns.setdefault(split, _Columns()), background=background)
        except InputError as e:
            result.errors.append(_error(item, "decode", getattr(e, "reason", None) or str(e)))
            continue
        except Exception as e:  # noqa: BLE001 - one bad file must never cost the batch; the reason is recorded
            result.errors.append(_error(item, "process", f"{type(e).__name__}: {e}"))
            continue
        if added:
            tracks.setdefault(split, set()).add(item.track_id)
    n_mels, n_frames = mel_shape(config, kind=kind)
    schema = segment_schema(n_mels=n_mels, n_frames=n_frames)
    start = time.perf_counter()
    for split, cols in columns.items():
        if not cols.mel:
            continue
        rel = f"{SHARDS}/split={split}/{shard_name}.parquet"
        storage.makedirs(storage.join(out_dir, SHARDS, f"split={split}"))
        fs, path = storage.filesystem(storage.join(out_dir, rel))
        compression = None if config.prepare.compression == "none" else config.prepare.compression
        # Dictionary encoding and statistics only for the small columns: trying them on the float mel tensor
        # cost more than half of the write time and gained nothing.
        pq.write_table(cols.table(schema), path, filesystem=fs, compression=compression,
                       use_dictionary=_DICT_COLUMNS, write_statistics=_STATS_COLUMNS)
        result.files.append(rel)
    result.add_time("write", time.perf_counter() - start)
    result.tracks = {split: len(ids) for split, ids in tracks.items()}
    return result


def _error(item: SourceItem, stage: str, reason: str) -> dict[str, str]:
    reason = reason.removeprefix(f"{item.path}: ")
    return {"path": item.path, "track_id": item.track_id, "genre": item.genre, "stage": stage, "reason": reason}


def _count(result: BatchResult, split: str, genre: str, variant: str, n: int) -> None:
    key = f"{split}|{genre}|{variant}"
    result.rows[key] = result.rows.get(key, 0) + n


def _variants_for(config: Config, split: str) -> list[tuple[str, float]]:
    if not config.noise.enabled or split not in config.noise.splits:
        return []
    return [(v.kind, v.snr_db) for v in config.noise.variants]


def _audio_rows(item: SourceItem, *, split: str, label: int, config: Config, result: BatchResult,
                columns: _Columns, background: np.ndarray | None) -> int:
    a, f = config.audio, config.features
    t0 = time.perf_counter()
    y = audio.decode(item.path, sr=a.sample_rate, min_seconds=a.min_seconds)
    segs, padded = audio.segment(y, sr=a.sample_rate, seconds=a.segment_seconds, hop_seconds=a.hop_for(split))
    result.padded_clips += int(padded)
    result.silent_segments += int(np.count_nonzero(audio.is_silent(segs)))
    t1 = time.perf_counter()
    result.add_time("decode", t1 - t0)
    seg_ids = list(range(len(segs)))

    variants: list[tuple[str, np.ndarray, list[float | None]]] = []
    variant_list = _variants_for(config, split)
    if config.noise.keep_clean or not variant_list:
        variants.append((CLEAN, segs, [None] * len(segs)))
    for kind, snr in variant_list:
        noisy, snrs = noise.add_noise_batch(
            segs, kind=kind, snr_db=snr, seed=config.seed, track_id=item.track_id,
            segment_indices=seg_ids, background=background if kind == "file" else None,
        )
        # A silent segment has no defined SNR: it stays clean and its snr_db is null.
        variants.append((noise.variant_name(kind, snr), noisy, [None if s is None else float(snr) for s in snrs]))
    t2 = time.perf_counter()
    result.add_time("noise", t2 - t1)

    stacked = np.concatenate([v[1] for v in variants], axis=0)
    mel = logmel.log_mel(stacked, sr=a.sample_rate, n_fft=f.n_fft, hop_length=f.hop_length, n_mels=f.n_mels,
                           fmin=f.fmin, fmax=f.fmax, top_db=f.top_db)
    t3 = time.perf_counter()
    result.add_time("log_mel", t3 - t2)

    n = len(segs)
    for i, (name, _, snrs) in enumerate(variants):
        feats = None
        if f.handcrafted and name == CLEAN:
            feats = handcrafted.handcrafted_features(segs, sr=a.sample_rate)
        columns.extend(item=item, label=label, segments=seg_ids, variant=name, snr_db=snrs,
                       mel=mel[i * n : (i + 1) * n], feats=feats)
        _count(result, split, item.genre, name, n)
    result.add_time("features", time.perf_counter() - t3)
    return n


def _image_rows(item: SourceItem, *, split: str, label: int, config: Config, result: BatchResult,
                columns: _Columns) -> int:
    from spectrotune.sources import spotify as images  # matplotlib-free decode path; imported lazily for audio-only runs

    t0 = time.perf_counter()
    arr = images.image_to_array(item.path, n_mels=config.features.n_mels, n_frames=config.image.n_frames)
    result.add_time("decode", time.perf_counter() - t0)
    columns.extend(item=item, label=label, segments=[item.clip or 0], variant=CLEAN, snr_db=[None],
                   mel=arr[None].astype(np.float32, copy=False), feats=None)
    _count(result, split, item.genre, CLEAN, 1)
    return 1


def merge_results(results: Sequence[BatchResult]) -> dict[str, Any]:
    """Add up task results for the manifest."""
    rows: dict[str, int] = {}
    tracks: dict[str, int] = {}
    seconds: dict[str, float] = {}
    errors: list[dict[str, str]] = []
    nodes: dict[str, int] = {}  # node id -> batches it ran
    silent = padded = 0
    for r in results:
        if r.node_id:
            nodes[r.node_id] = nodes.get(r.node_id, 0) + 1
        for k, v in r.rows.items():
            rows[k] = rows.get(k, 0) + v
        for k, v in r.tracks.items():
            tracks[k] = tracks.get(k, 0) + v
        for k, v in r.seconds.items():
            seconds[k] = seconds.get(k, 0.0) + v
        errors += r.errors
        silent += r.silent_segments
        padded += r.padded_clips
    return {"rows": rows, "tracks": tracks, "seconds": seconds, "errors": errors,
            "silent_segments": silent, "padded_clips": padded, "nodes": nodes}
