"""Turning one batch of input files into Parquet shard rows: the work each prepare task does.

Pure numpy/pyarrow, no ``ray``: :mod:`spectrotune.prepare.driver` ships batches of :class:`~spectrotune.sources.listing.SourceItem`
to Ray tasks that call :func:`process_batch`. A file that cannot be used is recorded with its reason and the rest of
the batch goes on (one bad file never costs a worker's batch). Randomness comes only from seeds derived from
``(seed, track_id, segment, variant)``, so any shard can be rebuilt bit-identically: a task run again (a Ray retry
after a killed worker, a resumed prepare) first removes whatever shard files an earlier attempt of it left, then
writes the same bytes. Items whose path is an object-store URI (``--source s3://...``) are downloaded to a local
temporary file in the task (:func:`~spectrotune.sources.listing.local_copy`: every decoder, ffmpeg's included, reads
a local file); an object that cannot be read is recorded like a file that cannot be decoded.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from spectrotune import storage
from spectrotune.config import SPLITS, Config
from spectrotune.dataset import (
    CLEAN, FEATURES, GENRE, LABEL, MEL, SEGMENT, SHARDS, SNR_DB, TRACK_ID, VARIANT, mel_column, segment_schema,
    shard_file,
)
from spectrotune.errors import InputError
from spectrotune.sources.kinds import SourceKind, TrackWindows
from spectrotune.sources.listing import SourceItem, SourceReadError, local_copy


_DICT_COLUMNS = [TRACK_ID, GENRE, VARIANT]
_STATS_COLUMNS = [TRACK_ID, GENRE, LABEL, SEGMENT, VARIANT, SNR_DB]


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
    shard: str = ""  # the task's shard name (part-00000): results are merged in this order

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
            type=pa.list_(pa.float32()),
        )
        return pa.table(
            {
                TRACK_ID: pa.array(self.track_id, pa.string()),
                GENRE: pa.array(self.genre, pa.string()),
                LABEL: pa.array(self.label, pa.int64()),
                SEGMENT: pa.array(self.segment, pa.int32()),
                VARIANT: pa.array(self.variant, pa.string()),
                SNR_DB: pa.array(self.snr_db, pa.float32()),
                MEL: mel_column(mel),
                FEATURES: feats,
            },
            schema=schema,
        )


def process_batch(
    items: Sequence[SourceItem],
    *,
    splits: Mapping[str, str],
    labels: Mapping[str, int],
    config: Config,
    kind: SourceKind,
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
    kind : SourceKind
        What the files are (:data:`spectrotune.sources.kinds.AUDIO` or ``SPOTIFY``): it turns each into rows.
    out_dir : path
        Dataset root being written; shards go to ``out_dir/data/split=<split>/<split>-<shard_name>.parquet``
        (:func:`~spectrotune.dataset.shard_file`).
    background : ndarray, optional
        Decoded background-noise recording (float32, at the configured rate) for variants of kind ``file``.
    """
    result = BatchResult(shard=shard_name)
    columns: dict[str, _Columns] = {}
    tracks: dict[str, set[str]] = {}
    for split in SPLITS:  # what an earlier, unfinished attempt of this task wrote (a split it may not write now)
        storage.delete(storage.join(out_dir, shard_file(split, shard_name)))
    for item in items:
        split = splits[item.track_id]
        local = item.path
        try:
            with local_copy(item.path, timer=result.add_time) as local:
                windows = kind.track_windows(replace(item, path=local), split=split, config=config,
                                             background=background, timer=result.add_time)
        except SourceReadError as e:
            result.errors.append(_error(item, "read", e.reason))
            continue
        except InputError as e:
            reason = getattr(e, "reason", None) or str(e).removeprefix(f"{local}: ")
            result.errors.append(_error(item, "decode", reason.replace(local, item.path)))
            continue
        except Exception as e:  # noqa: BLE001 - one bad file must never cost the batch; the reason is recorded
            result.errors.append(_error(item, "process", f"{type(e).__name__}: {e}".replace(local, item.path)))
            continue
        _add_rows(result, columns.setdefault(split, _Columns()), item, windows, split=split,
                  label=labels[item.genre])
        tracks.setdefault(split, set()).add(item.track_id)
    n_mels, n_frames = kind.mel_shape(config)
    schema = segment_schema(n_mels=n_mels, n_frames=n_frames, labels=sorted(labels, key=labels.__getitem__))
    start = time.perf_counter()
    for split, cols in columns.items():
        if not cols.mel:
            continue
        rel = shard_file(split, shard_name)
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


def _add_rows(result: BatchResult, columns: _Columns, item: SourceItem, windows: TrackWindows, *, split: str,
              label: int) -> None:
    """Buffer one file's rows (every variant of every window) and count them."""
    for name, mel, snrs in windows.variants:
        feats = windows.features if name == CLEAN else None
        columns.extend(item=item, label=label, segments=windows.segments, variant=name, snr_db=snrs, mel=mel,
                       feats=feats)
        _count(result, split, item.genre, name, len(windows.segments))
    result.padded_clips += int(windows.padded)
    result.silent_segments += windows.silent_segments


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
