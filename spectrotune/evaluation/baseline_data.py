"""Track tables for the classical baselines: the 57 handcrafted features averaged per track, with a split by track.

:func:`track_table` turns segment rows into one row per track (:data:`TRACK_COLUMNS`, then
:data:`~spectrotune.schema.FEATURE_NAMES` as float64). :func:`load_dataset_features` builds it from the ``clean``
segments of a prepared spectrotune dataset (its ``split`` partitions, so the baselines see exactly the CNN's
split) and never reads the (large) ``mel`` column; :func:`spectrotune.evaluation.kaggle_csv.load_kaggle_csv`
builds it from Kaggle's feature CSVs.

Averaging per track first means no clip has segments on both sides of a split (the student prototype's RBF SVM
scored 91 % on randomly split 3-s segments and 68.5 % when split by track). No ``ray``.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from spectrotune import storage
from spectrotune.errors import DatasetError
from spectrotune.schema import (
    CLEAN,
    FEATURE_NAMES,
    FEATURES,
    GENRE,
    LABEL,
    SEGMENT,
    SPLIT,
    TRACK_ID,
    VARIANT,
)

__all__ = ["TRACK_COLUMNS", "load_dataset_features", "track_table"]

#: Identifying columns of a track table (:func:`track_table`), before the feature columns.
TRACK_COLUMNS: tuple[str, ...] = (TRACK_ID, GENRE, LABEL, SPLIT, "n_segments")

_DATASET_COLUMNS = (TRACK_ID, GENRE, LABEL, SEGMENT, VARIANT)


# --------------------------------------------------------------------------------------------------------
# Track tables


def track_table(segment_features: pd.DataFrame) -> pd.DataFrame:
    """Average segment feature vectors into one row per track.

    Parameters
    ----------
    segment_features : pandas.DataFrame
        One row per segment with columns ``track_id`` (str), ``genre`` (str), ``label`` (int) and
        ``split`` (str), plus the features either as the 57 columns :data:`FEATURE_NAMES`
        or as one ``features`` column holding a length-57 float vector per row (dataset order).

    Returns
    -------
    pandas.DataFrame
        One row per track, sorted by ``track_id``, with columns :data:`TRACK_COLUMNS`
        (``n_segments`` = number of segments averaged) followed by :data:`FEATURE_NAMES`
        as float64 (the unweighted mean over the track's segments).

    Raises
    ------
    DatasetError
        If a column is missing, a feature vector has the wrong length or a non-finite value, or a
        track's segments disagree on genre, label or split (a track on both sides of a split).
    """
    frame = _with_feature_columns(segment_features)
    missing = [c for c in (TRACK_ID, GENRE, LABEL, SPLIT) if c not in frame.columns]
    if missing:
        raise DatasetError(f"segment table lacks column(s) {missing}; has {list(segment_features.columns)}")
    if frame.empty:
        raise DatasetError("segment table is empty: no segments to average")
    values = frame[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DatasetError(
            f"{int(bad.sum())} segment(s) have non-finite features, "
            f"first: track {frame[TRACK_ID].iloc[row]!r}"
        )
    grouped = frame.groupby(TRACK_ID, sort=True)
    for column in (GENRE, LABEL, SPLIT):
        n_values = grouped[column].nunique(dropna=False)
        if (n_values > 1).any():
            track = n_values.index[n_values > 1][0]
            seen = sorted(map(str, frame.loc[frame[TRACK_ID] == track, column].unique()))
            raise DatasetError(f"track {track!r} has segments with different {column} values {seen}")
    # float64 before averaging: shards store float32 and the _var features span many decades.
    feature_frame = pd.DataFrame(values, columns=list(FEATURE_NAMES), index=frame.index)
    feature_frame[TRACK_ID] = frame[TRACK_ID].to_numpy()
    means = feature_frame.groupby(TRACK_ID, sort=True).mean()
    first = grouped[[GENRE, LABEL, SPLIT]].first()
    out = pd.DataFrame(
        {
            TRACK_ID: means.index.astype(str),
            GENRE: first[GENRE].astype(str).to_numpy(),
            LABEL: first[LABEL].astype(np.int64).to_numpy(),
            SPLIT: first[SPLIT].astype(str).to_numpy(),
            "n_segments": grouped.size().astype(np.int64).to_numpy(),
        }
    )
    return pd.concat([out, means.reset_index(drop=True)], axis=1)


def _with_feature_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with the 57 named feature columns, expanding a ``features`` vector column."""
    if all(c in frame.columns for c in FEATURE_NAMES):
        return frame
    if FEATURES not in frame.columns:
        missing = [c for c in FEATURE_NAMES if c not in frame.columns]
        raise DatasetError(
            f"segment table has neither a 'features' column nor the feature columns (missing {missing[:3]}...)"
        )
    vectors = frame[FEATURES].to_list()
    n = len(FEATURE_NAMES)
    for track, vector in zip(frame[TRACK_ID] if TRACK_ID in frame else range(len(frame)), vectors):
        if vector is None or len(vector) != n:
            length = None if vector is None else len(vector)
            raise DatasetError(f"track {track!r}: features vector has length {length}, expected {n}")
    matrix = np.asarray(vectors, dtype=np.float64).reshape(len(vectors), n)
    expanded = frame.drop(columns=[FEATURES]).copy()
    expanded[list(FEATURE_NAMES)] = matrix
    return expanded


# --------------------------------------------------------------------------------------------------------
# Prepared spectrotune dataset


def load_dataset_features(data_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Read the handcrafted features of a prepared dataset's clean segments, averaged per track.

    Only the ``clean`` variant is used (noisy copies of a segment would weight a track by its number of
    variants and blur the baseline). Only the columns needed are read, never ``mel``.

    Parameters
    ----------
    data_dir : str or path
        A prepared dataset: Hive-partitioned Parquet shards ``data_dir/data/split=<name>/*.parquet`` and
        ``data_dir/manifest.json`` (key ``"labels"``: the genre names, label ``i`` = ``labels[i]``).

    Returns
    -------
    pandas.DataFrame
        The track table of :func:`track_table`; ``attrs["labels"]`` holds the manifest's label names.

    Raises
    ------
    DatasetError
        If the directory, manifest or shards are missing or unreadable, a required column is missing,
        the ``features`` column is absent or null (handcrafted features switched off with
        ``features.handcrafted: false``), or labels disagree with the manifest.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    root = storage.norm(data_dir)
    if not storage.is_dir(root):
        raise DatasetError(f"dataset directory {root} does not exist")
    from spectrotune.dataset import open_dataset, read_manifest

    labels = list(read_manifest(root).labels)

    dataset = open_dataset(root)
    names = set(dataset.schema.names)
    if FEATURES not in names:
        raise DatasetError(
            f"dataset {root} has no 'features' column: handcrafted features were switched off when it was "
            "prepared; prepare it again with features.handcrafted: true to run the baselines"
        )
    missing = [c for c in _DATASET_COLUMNS if c not in names]
    if missing:
        raise DatasetError(f"dataset {root} lacks column(s) {missing}")
    try:
        table = dataset.to_table(
            columns=[*_DATASET_COLUMNS, SPLIT, FEATURES], filter=pc.field(VARIANT) == CLEAN
        )
    except (pa.ArrowException, OSError) as e:
        raise DatasetError(f"cannot read the shards of {root}: {e}") from e
    if table.num_rows == 0:
        raise DatasetError(f"dataset {root} has no segments with variant 'clean'")
    features = table.column(FEATURES)
    if features.null_count:
        raise DatasetError(
            f"dataset {root}: {features.null_count} of {table.num_rows} clean segments have no features "
            "(handcrafted features switched off?); prepare it again with features.handcrafted: true"
        )
    features = features.combine_chunks()
    lengths = pc.list_value_length(features).to_numpy(zero_copy_only=False)
    n = len(FEATURE_NAMES)
    if (lengths != n).any():
        row = int(np.flatnonzero(lengths != n)[0])
        raise DatasetError(
            f"dataset {root}: track {table.column(TRACK_ID)[row].as_py()!r} has a features vector of "
            f"length {int(lengths[row])}, expected {n}"
        )
    matrix = features.flatten().to_numpy(zero_copy_only=False).astype(np.float64).reshape(-1, n)
    segments = table.drop_columns([FEATURES, VARIANT]).to_pandas()
    label = segments[LABEL].to_numpy()
    in_range = (label >= 0) & (label < len(labels))
    if not in_range.all():
        bad = segments.loc[~in_range].iloc[0]
        raise DatasetError(
            f"dataset {root}: track {bad[TRACK_ID]!r} has label {bad[LABEL]} outside the "
            f"{len(labels)} labels of manifest.json"
        )
    expected = np.asarray(labels, dtype=object)[label]
    wrong = expected != segments[GENRE].to_numpy(dtype=object)
    if wrong.any():
        bad = segments.loc[wrong].iloc[0]
        raise DatasetError(
            f"dataset {root}: track {bad[TRACK_ID]!r} has genre {bad[GENRE]!r} but label {bad[LABEL]} "
            f"is {labels[bad[LABEL]]!r} in manifest.json"
        )
    segments[list(FEATURE_NAMES)] = matrix
    tracks = track_table(segments)
    tracks.attrs["labels"] = list(labels)
    return tracks


