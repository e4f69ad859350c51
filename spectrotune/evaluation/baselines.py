"""Classical baselines (scikit-learn) on the 57 handcrafted Kaggle-GTZAN features, split by track.

The CNN is only worth its cost if it beats what a random forest or an SVM does with the classic feature
vector, measured the same way. This module makes that comparison honest:

* **Track level.** Segment feature vectors are averaged per track (:func:`track_table`), so every model
  sees one row per clip and no clip has segments on both sides of a split. (The student prototype's RBF SVM
  scored 91 % on randomly split 3-s segments and 68.5 % when split by track.)
* **Same split as the CNN.** :func:`load_dataset_features` reads the ``clean`` segments of a prepared
  spectrotune dataset (its ``split`` partitions); :func:`load_kaggle_csv` reads Kaggle's
  ``features_3_sec.csv`` / ``features_30_sec.csv`` and assigns the artist-aware "fault-filtered" split
  (Kereliuk, Sturm & Larsen 2015, shipped as package data) or a seeded stratified split by track.
* **No leakage.** Every model is a :class:`sklearn.pipeline.Pipeline` whose
  :class:`~sklearn.preprocessing.StandardScaler` is fitted on the training tracks only.

Model selection is deliberately small: one hyperparameter per model (``C`` for the SVMs and logistic
regression, ``k`` for kNN; the random forest is not tuned) is picked on the validation tracks from a fixed
grid (:data:`PARAM_GRIDS`), ties going to the first grid value. The chosen model is the one fitted on the
training tracks alone (not refitted on train + valid), so ``valid_accuracy`` is the selection score and is
optimistic; ``test_accuracy`` is the number to quote. Without validation tracks the defaults
(:data:`DEFAULT_PARAMS`) are used and ``valid_accuracy`` is ``None``.

Typical use::

    tracks = load_dataset_features("out/gtzan")            # or load_kaggle_csv("features_3_sec.csv")
    results = run_baselines(tracks, seed=0)
    write_baseline_report(results, "out/baselines")

This module never imports ``ray`` and never reads the (large) ``mel`` column of the shards.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spectrotune import storage
from spectrotune.errors import ConfigError, DatasetError, InputError
from spectrotune.schema import CLEAN, FEATURE_NAMES, SPLITS

logger = logging.getLogger(__name__)


#: Identifying columns of a track table (:func:`track_table`), before the feature columns.
TRACK_COLUMNS: tuple[str, ...] = ("track_id", "genre", "label", "split", "n_segments")

BASELINES: tuple[str, ...] = ("random_forest", "svm_rbf", "svm_linear", "knn", "logistic_regression")

#: Hyperparameter tried on the validation tracks, per model (one parameter each; see module docstring).
PARAM_GRIDS: dict[str, dict[str, tuple[float, ...]]] = {
    "random_forest": {},
    "svm_rbf": {"C": (0.1, 1.0, 10.0, 100.0)},
    "svm_linear": {"C": (0.01, 0.1, 1.0, 10.0)},
    "knn": {"n_neighbors": (1, 3, 5, 7, 9, 15)},
    "logistic_regression": {"C": (0.01, 0.1, 1.0, 10.0, 100.0)},
}

#: Hyperparameters used when there are no validation tracks to choose on.
DEFAULT_PARAMS: dict[str, dict[str, float]] = {
    "random_forest": {},
    "svm_rbf": {"C": 1.0},
    "svm_linear": {"C": 1.0},
    "knn": {"n_neighbors": 5},
    "logistic_regression": {"C": 1.0},
}

_RANDOM_FOREST_TREES = 300
# `blues.00000.3.wav` (3-s file: track blues.00000, segment 3) or `blues.00000.wav` (30-s file).
_KAGGLE_FILENAME = re.compile(r"^(?P<track>.+?\.\d+)(?:\.(?P<segment>\d+))?\.(?:wav|au)$")
_DATASET_COLUMNS = ("track_id", "genre", "label", "segment", "variant")


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
    missing = [c for c in ("track_id", "genre", "label", "split") if c not in frame.columns]
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
            f"first: track {frame['track_id'].iloc[row]!r}"
        )
    grouped = frame.groupby("track_id", sort=True)
    for column in ("genre", "label", "split"):
        n_values = grouped[column].nunique(dropna=False)
        if (n_values > 1).any():
            track = n_values.index[n_values > 1][0]
            seen = sorted(map(str, frame.loc[frame["track_id"] == track, column].unique()))
            raise DatasetError(f"track {track!r} has segments with different {column} values {seen}")
    # float64 before averaging: shards store float32 and the _var features span many decades.
    feature_frame = pd.DataFrame(values, columns=list(FEATURE_NAMES), index=frame.index)
    feature_frame["track_id"] = frame["track_id"].to_numpy()
    means = feature_frame.groupby("track_id", sort=True).mean()
    first = grouped[["genre", "label", "split"]].first()
    out = pd.DataFrame(
        {
            "track_id": means.index.astype(str),
            "genre": first["genre"].astype(str).to_numpy(),
            "label": first["label"].astype(np.int64).to_numpy(),
            "split": first["split"].astype(str).to_numpy(),
            "n_segments": grouped.size().astype(np.int64).to_numpy(),
        }
    )
    return pd.concat([out, means.reset_index(drop=True)], axis=1)


def _with_feature_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with the 57 named feature columns, expanding a ``features`` vector column."""
    if all(c in frame.columns for c in FEATURE_NAMES):
        return frame
    if "features" not in frame.columns:
        missing = [c for c in FEATURE_NAMES if c not in frame.columns]
        raise DatasetError(
            f"segment table has neither a 'features' column nor the feature columns (missing {missing[:3]}...)"
        )
    vectors = frame["features"].to_list()
    n = len(FEATURE_NAMES)
    for track, vector in zip(frame["track_id"] if "track_id" in frame else range(len(frame)), vectors):
        if vector is None or len(vector) != n:
            length = None if vector is None else len(vector)
            raise DatasetError(f"track {track!r}: features vector has length {length}, expected {n}")
    matrix = np.asarray(vectors, dtype=np.float64).reshape(len(vectors), n)
    expanded = frame.drop(columns=["features"]).copy()
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
    labels = _manifest_labels(root)
    from spectrotune.dataset import open_dataset

    dataset = open_dataset(root)
    names = set(dataset.schema.names)
    if "features" not in names:
        raise DatasetError(
            f"dataset {root} has no 'features' column: handcrafted features were switched off when it was "
            "prepared; prepare it again with features.handcrafted: true to run the baselines"
        )
    missing = [c for c in _DATASET_COLUMNS if c not in names]
    if missing:
        raise DatasetError(f"dataset {root} lacks column(s) {missing}")
    try:
        table = dataset.to_table(
            columns=[*_DATASET_COLUMNS, "split", "features"], filter=pc.field("variant") == CLEAN
        )
    except (pa.ArrowException, OSError) as e:
        raise DatasetError(f"cannot read the shards of {root}: {e}") from e
    if table.num_rows == 0:
        raise DatasetError(f"dataset {root} has no segments with variant 'clean'")
    features = table.column("features")
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
            f"dataset {root}: track {table.column('track_id')[row].as_py()!r} has a features vector of "
            f"length {int(lengths[row])}, expected {n}"
        )
    matrix = features.flatten().to_numpy(zero_copy_only=False).astype(np.float64).reshape(-1, n)
    segments = table.drop_columns(["features", "variant"]).to_pandas()
    label = segments["label"].to_numpy()
    in_range = (label >= 0) & (label < len(labels))
    if not in_range.all():
        bad = segments.loc[~in_range].iloc[0]
        raise DatasetError(
            f"dataset {root}: track {bad['track_id']!r} has label {bad['label']} outside the "
            f"{len(labels)} labels of manifest.json"
        )
    expected = np.asarray(labels, dtype=object)[label]
    wrong = expected != segments["genre"].to_numpy(dtype=object)
    if wrong.any():
        bad = segments.loc[wrong].iloc[0]
        raise DatasetError(
            f"dataset {root}: track {bad['track_id']!r} has genre {bad['genre']!r} but label {bad['label']} "
            f"is {labels[bad['label']]!r} in manifest.json"
        )
    segments[list(FEATURE_NAMES)] = matrix
    tracks = track_table(segments)
    tracks.attrs["labels"] = list(labels)
    return tracks


def _manifest_labels(root: Path | str) -> list[str]:
    """The ``labels`` list of ``root/manifest.json``."""
    if not storage.is_dir(root):
        raise DatasetError(f"dataset directory {root} does not exist")
    manifest_path = storage.join(root, "manifest.json")
    try:
        manifest = json.loads(storage.read_text(manifest_path))
    except FileNotFoundError as e:
        raise DatasetError(f"{manifest_path} is missing: {root} is not a finished prepared dataset") from e
    except (OSError, ValueError) as e:
        raise DatasetError(f"cannot read {manifest_path}: {e}") from e
    labels = manifest.get("labels") if isinstance(manifest, dict) else None
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise DatasetError(f"{manifest_path}: key 'labels' must be a non-empty list of genre names, got {labels!r}")
    return labels


# --------------------------------------------------------------------------------------------------------
# Kaggle feature CSVs


def load_kaggle_csv(
    path: str | os.PathLike[str],
    *,
    split: str = "fault_filtered",
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    lists_dir: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Read Kaggle's GTZAN feature CSV as a track table with a split by track.

    Rows of ``features_3_sec.csv`` (``blues.00000.3.wav``) are grouped by track (``blues.00000``) and
    averaged; rows of ``features_30_sec.csv`` (``blues.00000.wav``) are one segment each. The split is
    assigned per track, so no clip is on both sides.

    Parameters
    ----------
    path : str or path
        The CSV: columns ``filename``, ``label`` (genre name) and the 57 :data:`FEATURE_NAMES`
        (``length`` and any other column are ignored).
    split : {"fault_filtered", "stratified"}
        ``"fault_filtered"``: the artist-aware lists (443 / 197 / 290 tracks) shipped in
        ``spectrotune/data/gtzan_fault_filtered/{train,valid,test}.txt``; tracks in no list are dropped,
        and their number is logged and stored in ``attrs["n_dropped_tracks"]``.
        ``"stratified"``: a random split by track, per genre, with ``fractions``.
    seed : int
        Seed of the stratified split (unused for ``"fault_filtered"``).
    fractions : (float, float, float)
        Train, valid, test fractions of each genre's tracks for ``"stratified"``; non-negative, sum 1.
    lists_dir : str or path, optional
        A directory with ``train.txt``, ``valid.txt``, ``test.txt`` to use instead of the shipped lists.

    Returns
    -------
    pandas.DataFrame
        Track table (see :func:`track_table`). ``label`` indexes the sorted genre names found in the
        CSV, stored in ``attrs["labels"]``. ``attrs["n_dropped_tracks"]`` counts CSV tracks in no list
        and ``attrs["n_missing_listed"]`` listed tracks absent from the CSV (both 0 for stratified).

    Raises
    ------
    InputError
        If the file cannot be read, lacks a column, or has a bad row (unparseable file name, non-numeric
        or non-finite feature, empty label, duplicate segment, a track with two labels); the message
        names the file, the column and the CSV line. Also for a lists file that is missing or unreadable.
    ConfigError
        If ``split`` or ``fractions`` is invalid.
    """
    if split not in ("fault_filtered", "stratified"):
        raise ConfigError(f"split must be 'fault_filtered' or 'stratified', got {split!r}")
    if split == "stratified":
        _check_fractions(fractions)
    csv_path = Path(path)
    segments = _read_kaggle_rows(csv_path)
    labels = sorted(segments["genre"].unique())
    segments["label"] = segments["genre"].map({g: i for i, g in enumerate(labels)}).astype(np.int64)

    track_genre = segments.groupby("track_id", sort=True)["genre"].first()
    n_dropped = n_missing_listed = 0
    if split == "fault_filtered":
        assignment = _fault_filtered_assignment(lists_dir)
        track_split = track_genre.index.to_series().map(assignment)
        dropped = track_split.isna()
        n_dropped = int(dropped.sum())
        n_missing_listed = len(set(assignment) - set(track_genre.index))
        if n_dropped:
            logger.warning(
                "%s: %d of %d tracks are in none of the fault-filtered lists and were dropped",
                csv_path,
                n_dropped,
                len(track_genre),
            )
        if n_missing_listed:
            logger.info("%s: %d listed tracks are not in the CSV", csv_path, n_missing_listed)
        track_split = track_split[~dropped]
    else:
        track_split = _stratified_assignment(track_genre, seed=seed, fractions=fractions)
    segments = segments[segments["track_id"].isin(track_split.index)].copy()
    if segments.empty:
        raise InputError(f"{csv_path}: no track of the CSV is in the fault-filtered lists")
    segments["split"] = segments["track_id"].map(track_split)
    tracks = track_table(segments)
    tracks.attrs["labels"] = labels
    tracks.attrs["n_dropped_tracks"] = n_dropped
    tracks.attrs["n_missing_listed"] = n_missing_listed
    return tracks


def _read_kaggle_rows(csv_path: Path) -> pd.DataFrame:
    """Validated segment rows of a Kaggle CSV: track_id, segment, genre and the 57 float64 features."""
    try:
        raw = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except FileNotFoundError as e:
        raise InputError(f"feature CSV {csv_path} does not exist") from e
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise InputError(f"cannot read feature CSV {csv_path}: {e}") from e
    required = ("filename", "label", *FEATURE_NAMES)
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise InputError(f"{csv_path}: missing column(s) {', '.join(missing)}")
    if raw.empty:
        raise InputError(f"{csv_path}: no rows")

    def line(row: int) -> int:
        return row + 2  # 1-based, after the header line

    parts = raw["filename"].str.strip().str.extract(_KAGGLE_FILENAME)
    bad = parts["track"].isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{csv_path} line {line(row)}: column filename has {raw['filename'].iloc[row]!r}, expected a name "
            "like 'blues.00000.3.wav' or 'blues.00000.wav'"
        )
    genre = raw["label"].str.strip()
    if (genre == "").any():
        row = int(np.flatnonzero((genre == "").to_numpy())[0])
        raise InputError(f"{csv_path} line {line(row)}: column label is empty")
    segments = pd.DataFrame(
        {
            "track_id": parts["track"].to_numpy(),
            "segment": parts["segment"].fillna("0").astype(np.int64).to_numpy(),
            "genre": genre.to_numpy(),
        }
    )
    for column in FEATURE_NAMES:
        values = pd.to_numeric(raw[column].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
        finite = np.isfinite(values)
        if not finite.all():
            row = int(np.flatnonzero(~finite)[0])
            raise InputError(
                f"{csv_path} line {line(row)}: column {column} has {raw[column].iloc[row]!r}, expected a finite number"
            )
        segments[column] = values
    duplicated = segments.duplicated(["track_id", "segment"])
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise InputError(
            f"{csv_path} line {line(row)}: column filename repeats {raw['filename'].iloc[row]!r} "
            f"(track {segments['track_id'].iloc[row]}, segment {segments['segment'].iloc[row]})"
        )
    n_genres = segments.groupby("track_id")["genre"].nunique()
    if (n_genres > 1).any():
        track = n_genres.index[n_genres > 1][0]
        seen = sorted(segments.loc[segments["track_id"] == track, "genre"].unique())
        raise InputError(f"{csv_path}: column label disagrees between the rows of track {track}: {seen}")
    return segments


def _check_fractions(fractions: Sequence[float]) -> None:
    try:
        values = [float(f) for f in fractions]
    except (TypeError, ValueError) as e:
        raise ConfigError(f"fractions must be three numbers (train, valid, test), got {fractions!r}") from e
    if len(values) != 3 or any(not math.isfinite(v) or v < 0 for v in values) or not math.isclose(sum(values), 1.0):
        raise ConfigError(f"fractions must be three non-negative numbers summing to 1, got {fractions!r}")
    if values[0] == 0 or values[2] == 0:
        raise ConfigError(f"fractions must give train and test a non-zero share, got {fractions!r}")


def _fault_filtered_assignment(lists_dir: str | os.PathLike[str] | None) -> dict[str, str]:
    """Track id -> split from the fault-filtered lists (shipped, or ``lists_dir``), read by spectrotune.sources.splits."""
    from spectrotune.sources.splits import fault_filtered_dir, read_lists

    lists = read_lists(Path(lists_dir) if lists_dir is not None else fault_filtered_dir())
    return {key.rsplit("/", 1)[-1]: split for key, split in lists.items()}


def _stratified_assignment(
    track_genre: pd.Series, *, seed: int, fractions: tuple[float, float, float]
) -> pd.Series:
    """Track id -> split: the same seeded, per-genre split by track that ``prepare`` uses."""
    from spectrotune.sources.splits import stratified

    assignment = stratified({str(t): str(g) for t, g in track_genre.items()}, fractions=tuple(fractions), seed=seed)
    return pd.Series(assignment, dtype=object)


# --------------------------------------------------------------------------------------------------------
# Models


def make_model(name: str, *, seed: int = 0, **params: float) -> Any:
    """A fresh, unfitted ``Pipeline([("scale", StandardScaler()), ("model", <estimator>)])``.

    Parameters
    ----------
    name : str
        One of :data:`BASELINES`.
    seed : int
        ``random_state`` of the random forest (the other models are deterministic).
    **params
        Hyperparameters of the estimator (e.g. ``C=10`` or ``n_neighbors=5``).
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    _check_model_names([name])
    if name == "random_forest":
        # n_jobs=1: results must not depend on the machine's cores, and the forest is small.
        estimator: Any = RandomForestClassifier(
            n_estimators=_RANDOM_FOREST_TREES, random_state=seed, n_jobs=1, **params
        )
    elif name == "svm_rbf":
        estimator = SVC(kernel="rbf", gamma="scale", **params)
    elif name == "svm_linear":
        estimator = SVC(kernel="linear", **params)
    elif name == "knn":
        estimator = KNeighborsClassifier(**{"n_neighbors": 5, **params})
    else:
        estimator = LogisticRegression(max_iter=5000, **params)
    return Pipeline([("scale", StandardScaler()), ("model", estimator)])


def fit_baseline(tracks: pd.DataFrame, name: str, *, seed: int = 0) -> tuple[Any, dict[str, Any]]:
    """Fit one baseline on the train tracks, pick its hyperparameter on valid, score it on test.

    Parameters
    ----------
    tracks : pandas.DataFrame
        A track table (:func:`track_table`): ``label``, ``split`` (train/valid/test) and the 57 feature
        columns. Rows are sorted by ``track_id`` first, so the result does not depend on row order.
    name : str
        One of :data:`BASELINES`.
    seed : int
        Seed of the random forest.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        The chosen model, fitted on the train tracks only (``pipeline["scale"]`` is the scaler).
    result : dict
        ``params`` (chosen hyperparameters), ``valid_accuracy`` (float, or None without valid tracks),
        ``test_accuracy``, ``test_macro_f1`` (over the labels present in the test truth or predictions),
        ``n_train``, ``n_valid``, ``n_test`` (track counts).
    """
    from sklearn.metrics import accuracy_score, f1_score

    _check_model_names([name])
    data = _split_arrays(tracks)
    x_train, y_train = data["train"]
    x_valid, y_valid = data["valid"]
    x_test, y_test = data["test"]
    if len(y_valid):
        candidates = [
            {key: value} for key, values in PARAM_GRIDS[name].items() for value in values
        ] or [{}]
    else:
        candidates = [dict(DEFAULT_PARAMS[name])]
    if name == "knn":
        # k above the number of training tracks is undefined; fall back to k = n_train.
        candidates = [c for c in candidates if c["n_neighbors"] <= len(y_train)] or [{"n_neighbors": len(y_train)}]
    best: tuple[Any, dict[str, float], float | None] | None = None
    for params in candidates:
        pipeline = make_model(name, seed=seed, **params)
        pipeline.fit(x_train, y_train)
        score = float(accuracy_score(y_valid, pipeline.predict(x_valid))) if len(y_valid) else None
        # Strict ">" keeps the first grid value on ties (the grids run from strong to weak regularisation).
        if best is None or (score is not None and best[2] is not None and score > best[2]):
            best = (pipeline, params, score)
    assert best is not None
    pipeline, params, valid_accuracy = best
    predicted = pipeline.predict(x_test)
    result = {
        "params": {key: _plain(value) for key, value in params.items()},
        "valid_accuracy": valid_accuracy,
        "test_accuracy": float(accuracy_score(y_test, predicted)),
        "test_macro_f1": float(f1_score(y_test, predicted, average="macro", zero_division=0)),
        "n_train": int(len(y_train)),
        "n_valid": int(len(y_valid)),
        "n_test": int(len(y_test)),
    }
    return pipeline, result


def run_baselines(
    tracks: pd.DataFrame, *, seed: int = 0, models: Sequence[str] = BASELINES
) -> dict[str, dict[str, Any]]:
    """Fit and score every baseline in ``models`` on a track table (see :func:`fit_baseline`).

    Parameters
    ----------
    tracks : pandas.DataFrame
        Track table from :func:`load_dataset_features`, :func:`load_kaggle_csv` or :func:`track_table`.
    seed : int
        Seed of the random forest; results are identical for equal seeds and data.
    models : sequence of str
        Names from :data:`BASELINES`, in the order of the returned dict.

    Returns
    -------
    dict
        ``{model name: result}`` with the result dict of :func:`fit_baseline` (``params``,
        ``valid_accuracy``, ``test_accuracy``, ``test_macro_f1``, ``n_train``, ``n_valid``, ``n_test``);
        accuracies are per track (clip), in [0, 1].

    Raises
    ------
    ConfigError
        If a model name is unknown.
    DatasetError
        If the table lacks columns, has unknown split names, or no train (with >= 2 labels) or test tracks.
    """
    if isinstance(models, str):
        models = [models]
    _check_model_names(models)
    _split_arrays(tracks)  # validate once before spending time on fits
    results: dict[str, dict[str, Any]] = {}
    for name in models:
        _, results[name] = fit_baseline(tracks, name, seed=seed)
        logger.info("baseline %s: test accuracy %.3f", name, results[name]["test_accuracy"])
    return results


def _check_model_names(models: Sequence[str]) -> None:
    unknown = [m for m in models if m not in BASELINES]
    if unknown:
        raise ConfigError(f"unknown baseline model(s) {unknown}; choose from {list(BASELINES)}")
    if not models:
        raise ConfigError(f"no baseline models given; choose from {list(BASELINES)}")


def _split_arrays(tracks: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{split: (features float64 [n, 57], labels int64 [n])}`` with rows sorted by track_id."""
    required = ("track_id", "label", "split", *FEATURE_NAMES)
    missing = [c for c in required if c not in tracks.columns]
    if missing:
        raise DatasetError(f"track table lacks column(s) {missing[:5]}{'...' if len(missing) > 5 else ''}")
    unknown = sorted(set(map(str, tracks["split"].unique())) - set(SPLITS))
    if unknown:
        raise DatasetError(f"track table has unknown split name(s) {unknown}; expected {list(SPLITS)}")
    ordered = tracks.sort_values("track_id", kind="stable")
    x = ordered[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    if not np.isfinite(x).all():
        raise DatasetError("track table has non-finite feature values")
    y = ordered["label"].to_numpy(dtype=np.int64)
    split = ordered["split"].astype(str).to_numpy()
    data = {name: (x[split == name], y[split == name]) for name in SPLITS}
    if len(np.unique(data["train"][1])) < 2:
        raise DatasetError(
            f"baselines need train tracks of at least 2 labels, got {len(data['train'][1])} track(s) "
            f"with labels {sorted(set(data['train'][1].tolist()))}"
        )
    if not len(data["test"][1]):
        raise DatasetError("baselines need test tracks, the track table has none")
    return data


def _plain(value: Any) -> Any:
    """A JSON-friendly Python scalar (numpy scalars -> int/float)."""
    return value.item() if isinstance(value, np.generic) else value


# --------------------------------------------------------------------------------------------------------
# Reports


def baselines_markdown(results: Mapping[str, Mapping[str, Any]]) -> str:
    """A Markdown table of :func:`run_baselines` results, one row per model, in the given order.

    Accuracies and macro-F1 are per track, printed with three decimals; a missing validation score is
    printed as an em dash.
    """

    def number(value: Any) -> str:
        return "—" if value is None else f"{float(value):.3f}"

    lines = [
        "| model | hyperparameters | valid accuracy | test accuracy | test macro-F1 | train tracks | test tracks |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        params = result.get("params") or {}
        shown = ", ".join(
            f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}" for key, value in params.items()
        )
        cells = [
            name,
            shown or "—",
            number(result.get("valid_accuracy")),
            number(result.get("test_accuracy")),
            number(result.get("test_macro_f1")),
            str(result.get("n_train", "—")),
            str(result.get("n_test", "—")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_baseline_report(
    results: Mapping[str, Mapping[str, Any]], out_dir: str | os.PathLike[str]
) -> tuple[Path, Path]:
    """Write ``baselines.json`` and ``baselines.md`` into ``out_dir`` (created if needed).

    Each local file is written aside and renamed into place, so a reader never sees half a report; existing
    reports in ``out_dir`` are replaced. ``out_dir`` may be a URI.

    Returns
    -------
    (Path, Path)
        The paths of ``baselines.json`` and ``baselines.md`` (strings for a URI).
    """
    plain = {name: {key: _plain(value) for key, value in result.items()} for name, result in results.items()}
    json_path = storage.join(out_dir, "baselines.json")
    md_path = storage.join(out_dir, "baselines.md")
    storage.write_text(md_path, baselines_markdown(results))
    storage.write_text(json_path, json.dumps(plain, indent=2, sort_keys=False) + "\n")
    return json_path, md_path
