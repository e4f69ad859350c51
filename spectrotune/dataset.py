"""The prepared dataset: Parquet schema, manifest, and reading it back without Ray.

Layout written by ``spectrotune prepare``::

    OUT/
      manifest.json            resolved config + hash, labels, counts per split x genre x variant, versions, timings
      config.yaml              the resolved config
      errors.parquet           one row per input that failed: path, track_id, genre, stage, reason
      data/split=train/train-part-*.parquet
      data/split=valid/valid-part-*.parquet
      data/split=test/test-part-*.parquet

The shards sit in their own ``data/`` folder so that plain ``pyarrow.parquet.read_table("OUT/data")`` and
``pandas.read_parquet("OUT/data")`` read them directly (pyarrow would try to parse ``manifest.json`` as Parquet if
it sat among them); the split leads each file name because Hugging Face ``datasets`` names splits by file names, not
Hive folders. ``OUT`` may be a local folder or a URI (``s3://bucket/gtzan``, see :mod:`spectrotune.storage`).

One row per segment and variant; ``split`` comes from the Hive folder names, not the files. ``features`` is a
list of the 57 Kaggle feature values (null on noisy rows and when handcrafted features are off; format 1 stored a
fixed-size list, which pyarrow before 26 cannot read back once it holds a null). ``mel`` is float32
[n_mels, n_frames] (row 0 = lowest mel band), stored by format:

- ``spectrotune-dataset/2`` (:data:`FORMAT`): nested fixed-size lists tagged as ``datasets``' ``Array2D``; ``label``
  a nullable int64; the ``datasets`` features in the schema metadata (:func:`hf_features`: ``mel`` an ``Array2D``,
  ``label`` a ``ClassLabel`` with the genre names). ``datasets``, polars, DuckDB, pandas and pyarrow read it with
  their ordinary calls (README, "The prepared dataset"); a reader that does not know the tag sees nested lists.
- ``spectrotune-dataset/1`` (still read, :data:`READ_FORMATS`): ``mel`` an Arrow ``fixed_shape_tensor``, ``label``
  an int32; ``datasets`` cannot read that type.

:func:`mel_array` reads either as one array (``mel_array(pq.read_table("OUT/data"))``: rows x n_mels x n_frames).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from spectrotune import storage
from spectrotune.config import AudioConfig, FeatureConfig, NoiseConfig
from spectrotune.errors import DatasetError
from spectrotune.typed_config import JsonRecord

from spectrotune.schema import (  # noqa: F401  (the dataset's column and file names, read as D.TRACK_ID etc.)
    CLEAN, ERRORS, FEATURES, GENRE, LABEL, MANIFEST, MEL, N_FEATURES, SEGMENT, SHARDS, SNR_DB, SPLIT, SPLITS, TRACK_ID,
    VARIANT,
)

#: The format of a prepared dataset: ``manifest.json``'s keys and their meaning, and the shards' column types; a
#: change to either is a new format. 2: ``mel`` as nested fixed-size lists tagged ``Array2D``, ``label`` int64,
#: ``features`` a variable-size list and the ``datasets`` features in the schema (1 stored ``mel`` as a
#: ``fixed_shape_tensor``, ``label`` as int32, ``features`` as a fixed-size list).
FORMAT = "spectrotune-dataset/2"
#: Older formats still read (:func:`read_manifest`, :func:`mel_array`).
READ_FORMATS: tuple[str, ...] = ("spectrotune-dataset/1",)

#: The Arrow extension name of Hugging Face ``datasets``' ``Array2D`` (``datasets.features.features``; its
#: parameters serialise as ``[shape, dtype]``) and the schema metadata key whose ``{"info": {"features": ...}}``
#: ``datasets.Features.from_arrow_schema`` reads. Written without importing ``datasets``.
HF_ARRAY2D = "datasets.features.features.Array2DExtensionType"
HF_METADATA_KEY = "huggingface"

ERRORS_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string()),
        pa.field("track_id", pa.string()),
        pa.field("genre", pa.string()),
        pa.field("stage", pa.string()),
        pa.field("reason", pa.string()),
    ]
)


def segment_schema(*, n_mels: int, n_frames: int, labels: Sequence[str]) -> pa.Schema:
    """Arrow schema of one shard of :data:`FORMAT` (without the Hive ``split`` column); ``labels`` are the genre
    names by label index (the ``ClassLabel`` names). ``features`` holds :data:`N_FEATURES` values or null."""
    mel_tag = {b"ARROW:extension:name": HF_ARRAY2D.encode(),
               b"ARROW:extension:metadata": json.dumps([[n_mels, n_frames], "float32"]).encode()}
    features = {"info": {"features": hf_features(n_mels=n_mels, n_frames=n_frames, labels=labels)}}
    return pa.schema(
        [
            pa.field(TRACK_ID, pa.string(), nullable=False),
            pa.field(GENRE, pa.string(), nullable=False),
            # nullable int64: datasets applies the metadata's ClassLabel only to a field equal to its own
            pa.field(LABEL, pa.int64()),
            pa.field(SEGMENT, pa.int32(), nullable=False),
            pa.field(VARIANT, pa.string(), nullable=False),
            pa.field(SNR_DB, pa.float32()),
            pa.field(MEL, pa.list_(pa.list_(pa.float32(), n_frames), n_mels), nullable=False, metadata=mel_tag),
            # variable-size: pyarrow before 26 cannot read a null in a fixed-size list from Parquet (GH-35692)
            pa.field(FEATURES, pa.list_(pa.float32())),
        ],
        metadata={HF_METADATA_KEY: json.dumps(features)},
    )


def hf_features(*, n_mels: int, n_frames: int, labels: Sequence[str]) -> dict[str, Any]:
    """The Hugging Face ``datasets`` features of a shard, as ``datasets.Features.to_dict()`` writes them.

    ``features`` is left out: ``datasets`` infers it from its Arrow type (a fixed-length ``List``), while naming it
    would need ``List``, which ``datasets`` before 4.0 does not know (it would refuse the whole dict); ``Value``,
    ``ClassLabel`` and ``Array2D`` are older.
    """

    def value(dtype: str) -> dict[str, str]:
        return {"dtype": dtype, "_type": "Value"}

    return {
        TRACK_ID: value("string"), GENRE: value("string"),
        LABEL: {"names": list(labels), "_type": "ClassLabel"},
        SEGMENT: value("int32"), VARIANT: value("string"), SNR_DB: value("float32"),
        MEL: {"shape": [n_mels, n_frames], "dtype": "float32", "_type": "Array2D"},
    }


def mel_column(mel: np.ndarray) -> pa.FixedSizeListArray:
    """float32 [rows, n_mels, n_frames] as a ``mel`` column of :data:`FORMAT` (not copied when ``mel`` is already
    C-contiguous float32)."""
    mel = np.ascontiguousarray(mel, dtype=np.float32)
    if mel.ndim != 3:
        raise ValueError(f"mel must be [rows, n_mels, n_frames], got shape {mel.shape}")
    frames = pa.FixedSizeListArray.from_arrays(pa.array(mel.reshape(-1)), mel.shape[2])
    return pa.FixedSizeListArray.from_arrays(frames, mel.shape[1])


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
    (Hz, samples, dB; ``top_db`` None: no clamp) and window length (s) it was computed with (the front end is the
    config's ``features.frontend``: :attr:`DatasetManifest.feature_config`)."""

    shape: tuple[int, ...]
    values: str
    sample_rate: int
    n_fft: int
    hop_length: int
    n_mels: int
    fmin: float
    fmax: float | None
    top_db: float | None
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
    :data:`FORMAT` or one of :data:`READ_FORMATS` (a manifest of another format is refused).

    ``config`` is the resolved config prepare ran with, as saved (a plain mapping: configs of older versions keep
    loading); its sections that describe the rows are read typed through :attr:`seed`, :attr:`audio_config`,
    :attr:`feature_config` and :attr:`noise_config`.
    """

    FILE: ClassVar[str] = MANIFEST
    FORMAT: ClassVar[str] = FORMAT
    READS: ClassVar[tuple[str, ...]] = READ_FORMATS
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
        """Decoding and segmentation the rows were cut with (a manifest without ``audio.pad``, written before it
        existed, was zero-padded: :attr:`AudioConfig.LEGACY_PAD`)."""
        from spectrotune.config import build

        section = {"pad": AudioConfig.LEGACY_PAD, **(self.config.get("audio") or {})}
        return build(AudioConfig, section, origin=f"{MANIFEST} config", prefix="audio")

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


def shard_file(split: str, shard: str) -> str:
    """Path of one shard under the dataset root: ``data/split=<split>/<split>-<shard>.parquet`` (the split leads the
    file name for ``datasets``, which names splits by file names, not Hive folders)."""
    return f"{SHARDS}/split={split}/{split}-{shard}.parquet"


def open_dataset(directory: str | Path) -> pads.Dataset:
    """The shards as a ``pyarrow.dataset`` with the Hive ``split`` column, once the manifest and every shard's footer
    passed :func:`spectrotune.dataset_check.check_shards` (a damaged dataset: a DatasetError naming the file)."""
    from spectrotune.dataset_check import check_shards  # it imports this module

    check_shards(directory)
    root = shards_dir(directory)
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


def mel_array(table: pa.Table | pa.RecordBatch) -> np.ndarray:
    """The ``mel`` column as one float32 array [rows, n_mels, n_frames], in any format read (:data:`READ_FORMATS`).

    Read-only when it shares the column's memory (copy it to write). Takes the nested lists of :data:`FORMAT` as
    written (fixed-size), as ``datasets`` casts them when it is imported in the process (its ``Array2D`` type over
    variable-size lists) and as Ray Data reads them (variable-size lists), and format 1's ``fixed_shape_tensor``.
    """
    column = table.column(MEL)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if isinstance(column.type, pa.FixedShapeTensorType):  # format 1
        if len(column) == 0:
            return np.zeros((0, *column.type.shape), dtype=np.float32)
        return column.to_numpy_ndarray()
    shape = tuple(getattr(column.type, "shape", ()))  # datasets' Array2D type carries its shape
    if isinstance(column, pa.ExtensionArray):
        column = column.storage
    if not shape and pa.types.is_fixed_size_list(column.type) and pa.types.is_fixed_size_list(column.type.value_type):
        shape = (column.type.list_size, column.type.value_type.list_size)
    if not shape and not len(column):
        return np.zeros((0, 0, 0), dtype=np.float32)  # an empty batch of variable-size lists names no shape
    frames = column.flatten()
    values = frames.flatten()
    if not shape:  # variable-size lists of unknown shape (Ray Data's read): equal in every row
        n = [pc.unique(pc.list_value_length(c)).to_pylist() for c in (column, frames)]
        if len(n[0]) != 1 or len(n[1]) != 1:
            raise DatasetError(f"{MEL}: not a column of [n_mels, n_frames] arrays (list lengths {n[0]} and {n[1]})")
        shape = (n[0][0], n[1][0])
    if len(shape) != 2:
        raise DatasetError(f"{MEL}: not a column of [n_mels, n_frames] arrays (Arrow type {column.type})")
    if len(values) != len(column) * shape[0] * shape[1] or values.null_count:
        raise DatasetError(f"{MEL}: {len(values)} values ({values.null_count} null) for {len(column)} rows of "
                           f"{shape[0]} x {shape[1]}")
    return values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(len(column), *shape)


def with_tensor_mel(table: pa.Table) -> pa.Table:
    """``table`` with ``mel`` as an Arrow ``fixed_shape_tensor`` (format 1's type; such a table is returned as is):
    the type Ray Data turns into one [rows, n_mels, n_frames] array per batch (nested lists become object arrays
    of arrays there)."""
    if isinstance(table.schema.field(MEL).type, pa.FixedShapeTensorType):
        return table
    tensor = pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(mel_array(table)))
    return table.set_column(table.schema.get_field_index(MEL), MEL, tensor)


def read_errors(directory: str | Path) -> pa.Table:
    """The errors table (empty if the run had no failures)."""
    import pyarrow.parquet as pq

    path = storage.join(directory, ERRORS)
    if not storage.is_file(path):
        return ERRORS_SCHEMA.empty_table()
    fs, inner = storage.filesystem(path)
    return pq.read_table(inner, filesystem=fs)
