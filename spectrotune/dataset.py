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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads

from spectrotune import storage
from spectrotune.config import AudioConfig, FeatureConfig, NoiseConfig
from spectrotune.errors import DatasetError
from spectrotune.typed_config import JsonRecord

from spectrotune.schema import (  # noqa: F401  (the dataset's column and file names, read as D.TRACK_ID etc.)
    CLEAN, ERRORS, FEATURES, GENRE, LABEL, MANIFEST, MEL, N_FEATURES, SEGMENT, SHARDS, SNR_DB, SPLIT, SPLITS, TRACK_ID,
    VARIANT,
)

#: The format of ``manifest.json``; a change to its keys or their meaning is a new format.
FORMAT = "spectrotune-dataset/1"

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


# --------------------------------------------------------------------------------------------------------------
# manifest.json


@dataclass(frozen=True)
class SourceInfo:
    """The corpus a dataset was prepared from: its absolute ``path`` and its ``kind`` (``audio`` or ``spotify``)."""

    path: str
    kind: str


@dataclass(frozen=True)
class MelInfo:
    """The ``mel`` column: ``shape`` ``(n_mels, n_frames)``, what its ``values`` are, and the log-mel parameters
    (Hz, samples, dB) and window length (s) it was computed with."""

    shape: tuple[int, ...]
    values: str
    sample_rate: int
    n_fft: int
    hop_length: int
    n_mels: int
    fmin: float
    fmax: float | None
    top_db: float
    segment_seconds: float


@dataclass(frozen=True)
class FeaturesInfo:
    """Whether the ``features`` column holds handcrafted features, and on which variants' rows."""

    handcrafted: bool
    on_variants: tuple[str, ...]


@dataclass(frozen=True)
class Counts:
    """Tracks and rows written: per split, and rows per split x genre x variant."""

    tracks: int
    tracks_assigned: int
    tracks_per_split: dict[str, int]
    rows_per_split: dict[str, int]
    per_split_genre_variant: dict[str, dict[str, dict[str, int]]]
    silent_segments: int
    padded_clips: int

    def variants_in(self, split: str) -> set[str]:
        """Variant names that have rows in ``split`` (empty for an empty split)."""
        return {v for variants in self.per_split_genre_variant.get(split, {}).values() for v in variants}

    def rows_of(self, split: str, variant: str) -> int:
        """Rows of ``variant`` in ``split``, all genres together."""
        return sum(v.get(variant, 0) for v in self.per_split_genre_variant.get(split, {}).values())


@dataclass(frozen=True)
class ErrorSummary:
    """How many inputs failed, and the first few as ``"path: reason"`` (all of them are in ``errors.parquet``)."""

    count: int
    examples: tuple[str, ...]


@dataclass(frozen=True)
class Timings:
    """Seconds spent listing, processing and in total; seconds per task stage summed over tasks; batches per
    Ray node id."""

    list_seconds: float
    process_seconds: float
    total_seconds: float
    task_seconds: dict[str, float]
    nodes: dict[str, int]


@dataclass(frozen=True)
class DatasetManifest(JsonRecord):
    """``manifest.json`` of a prepared dataset, written by :func:`spectrotune.prepare.driver.prepare` and read by
    everything after it (:func:`read_manifest`). The fields are the file's keys, in its order; ``format`` is
    :data:`FORMAT` (a manifest of another format is refused).

    ``config`` is the resolved config prepare ran with, as saved (a plain mapping: configs of older versions keep
    loading); its sections that describe the rows are read typed through :attr:`seed`, :attr:`audio_config`,
    :attr:`feature_config` and :attr:`noise_config`.
    """

    FILE: ClassVar[str] = MANIFEST
    FORMAT: ClassVar[str] = FORMAT
    KIND: ClassVar[str] = "dataset"
    WHAT: ClassVar[str] = "manifest"
    ERROR: ClassVar[type[Exception]] = DatasetError

    format: str
    created_unix: float
    source: SourceInfo
    config: dict[str, Any]
    config_hash: str
    labels: tuple[str, ...]
    mel: MelInfo
    features: FeaturesInfo
    noise: str
    variants: tuple[str, ...]
    split: dict[str, Any]
    counts: Counts
    errors: ErrorSummary
    versions: dict[str, str]
    timings: Timings
    command: str

    @property
    def input_shape(self) -> tuple[int, int]:
        """``(n_mels, n_frames)`` of one row's ``mel``."""
        n_mels, n_frames = self.mel.shape
        return int(n_mels), int(n_frames)

    @property
    def seed(self) -> int:
        """The seed the noise of every row was drawn from (with the track, segment and variant)."""
        return int(self.config["seed"])

    @property
    def audio_config(self) -> AudioConfig:
        """Decoding and segmentation the rows were cut with."""
        return self._section("audio", AudioConfig)

    @property
    def feature_config(self) -> FeatureConfig:
        """Log-mel and handcrafted feature parameters of the rows."""
        return self._section("features", FeatureConfig)

    @property
    def noise_config(self) -> NoiseConfig:
        """The noise variants made, for which splits, and the background file of kind ``file``."""
        return self._section("noise", NoiseConfig)

    def _section(self, name: str, cls: type) -> Any:
        from spectrotune.config import build

        return build(cls, self.config.get(name), origin=f"{MANIFEST} config", prefix=name)

    @classmethod
    def read(cls, directory: str | Path) -> DatasetManifest:
        """:func:`read_manifest`."""
        path = storage.join(directory, MANIFEST)
        return cls.from_dict(_manifest_json(directory), origin=str(path))


def read_manifest(directory: str | Path) -> DatasetManifest:
    """The typed ``manifest.json`` of a prepared dataset (a local folder or a URI).

    Raises
    ------
    DatasetError
        ``directory`` is not a prepared dataset, or its manifest is unreadable or of another format.
    """
    return DatasetManifest.read(directory)


def _manifest_json(directory: str | Path) -> dict[str, Any]:
    """``manifest.json`` parsed, with a clear error when ``directory`` holds none."""
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


# --------------------------------------------------------------------------------------------------------------
# Shards


def shards_dir(directory: str | Path) -> str | Path:
    """The folder holding the Hive-partitioned shards of a prepared dataset (a ``Path``, or a string for URIs)."""
    return storage.join(directory, SHARDS)


def open_dataset(directory: str | Path) -> pads.Dataset:
    """The shards as a ``pyarrow.dataset`` with the Hive ``split`` column (checks that a manifest is there first)."""
    _manifest_json(directory)
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
