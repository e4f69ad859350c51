"""The prepared dataset: Parquet schema, manifest, and reading it back without Ray.

Layout written by ``spectrotune prepare``::

    OUT/
      manifest.json            resolved config + hash, labels, counts per split x genre x variant, versions, timings
      config.yaml              the resolved config
      errors.parquet           one row per input that failed: path, track_id, genre, stage, reason
      data/split=train/part-*.parquet
      data/split=valid/part-*.parquet
      data/split=test/part-*.parquet

The shards sit in their own ``data/`` folder so that plain ``pyarrow.parquet.read_table("OUT/data")`` and
``pandas.read_parquet("OUT/data")`` read them directly (pyarrow would try to parse ``manifest.json`` as Parquet if
it sat among them). ``OUT`` may be a local folder or a URI (``s3://bucket/gtzan``, see :mod:`spectrotune.storage`).

One row per segment and variant. ``mel`` is an Arrow canonical ``fixed_shape_tensor`` (float32
[n_mels, n_frames], row 0 = lowest mel band), ``features`` a fixed-size list of the 57 Kaggle feature values (null
when handcrafted features are off). ``split`` is not stored in the files: it comes from the Hive folder names.

Reading with plain pyarrow::

    import pyarrow.parquet as pq
    t = pq.read_table("OUT/data", filters=[("split", "=", "train")])
    mel = t.column("mel").combine_chunks().to_numpy_ndarray()   # (rows, n_mels, n_frames) float32
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads

from spectrotune import storage
from spectrotune.errors import DatasetError

from spectrotune.schema import (  # noqa: F401  (the dataset's column and file names, read as D.TRACK_ID etc.)
    CLEAN, ERRORS, FEATURES, GENRE, LABEL, MANIFEST, MEL, N_FEATURES, SEGMENT, SHARDS, SNR_DB, SPLIT, SPLITS, TRACK_ID,
    VARIANT,
)

ERRORS_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string()),
        pa.field("track_id", pa.string()),
        pa.field("genre", pa.string()),
        pa.field("stage", pa.string()),
        pa.field("reason", pa.string()),
    ]
)


def segment_schema(*, n_mels: int, n_frames: int, n_features: int = N_FEATURES) -> pa.Schema:
    """Arrow schema of one shard (without the Hive ``split`` column)."""
    return pa.schema(
        [
            pa.field(TRACK_ID, pa.string(), nullable=False),
            pa.field(GENRE, pa.string(), nullable=False),
            pa.field(LABEL, pa.int32(), nullable=False),
            pa.field(SEGMENT, pa.int32(), nullable=False),
            pa.field(VARIANT, pa.string(), nullable=False),
            pa.field(SNR_DB, pa.float32()),
            pa.field(MEL, pa.fixed_shape_tensor(pa.float32(), [n_mels, n_frames]), nullable=False),
            pa.field(FEATURES, pa.list_(pa.float32(), n_features)),
        ]
    )


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """Load ``manifest.json`` of a prepared dataset (a local folder or a URI), with a clear error when it is not one."""
    path = storage.join(directory, MANIFEST)
    try:
        text = storage.read_text(path)
    except FileNotFoundError:
        raise DatasetError(f"{directory}: not a prepared spectrotune dataset (no {MANIFEST}; run spectrotune prepare)"
                           ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: unreadable manifest: {e}") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: unreadable manifest: {e}") from e


def shards_dir(directory: str | Path) -> str | Path:
    """The folder holding the Hive-partitioned shards of a prepared dataset (a ``Path``, or a string for URIs)."""
    return storage.join(directory, SHARDS)


def open_dataset(directory: str | Path) -> pads.Dataset:
    """The shards as a ``pyarrow.dataset`` with the Hive ``split`` column (checks the manifest first)."""
    read_manifest(directory)
    root = shards_dir(directory)
    if not storage.is_dir(root):
        raise DatasetError(f"{directory}: no shards folder {SHARDS}/ (an incomplete or foreign dataset)")
    partitioning = pads.partitioning(pa.schema([(SPLIT, pa.string())]), flavor="hive")
    fs, inner = storage.filesystem(root)
    try:
        return pads.dataset(inner, filesystem=fs, format="parquet", partitioning=partitioning)
    except (pa.ArrowException, OSError) as e:
        raise DatasetError(f"{root}: cannot open the Parquet shards: {e}") from e


def read_split(
    directory: str | Path,
    split: str,
    *,
    columns: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
) -> pa.Table:
    """Rows of one split (optionally only some variants and columns), sorted by track, segment, variant."""
    ds = open_dataset(directory)
    expr = pads.field(SPLIT) == split
    if variants is not None:
        expr = expr & pads.field(VARIANT).isin(list(variants))
    table = ds.to_table(columns=list(columns) if columns is not None else None, filter=expr)
    keys = [k for k in (TRACK_ID, SEGMENT, VARIANT) if k in table.column_names]
    return table.sort_by([(k, "ascending") for k in keys]) if keys else table


def mel_array(table: pa.Table) -> np.ndarray:
    """The ``mel`` column as one float32 array [rows, n_mels, n_frames]."""
    column = table.column(MEL).combine_chunks()
    if len(column) == 0:
        shape = column.type.shape
        return np.zeros((0, *shape), dtype=np.float32)
    return column.to_numpy_ndarray()


def read_errors(directory: str | Path) -> pa.Table:
    """The errors table (empty if the run had no failures)."""
    import pyarrow.parquet as pq

    path = storage.join(directory, ERRORS)
    if not storage.is_file(path):
        return ERRORS_SCHEMA.empty_table()
    fs, inner = storage.filesystem(path)
    return pq.read_table(inner, filesystem=fs)
