"""Kaggle's GTZAN feature CSVs (``features_3_sec.csv``, ``features_30_sec.csv``) as baseline track tables.

Rows are parsed and validated (errors name the file, the CSV line and the column), grouped by track and averaged
(:func:`spectrotune.evaluation.baseline_data.track_table`), and given a split by track: the artist-aware
"fault-filtered" lists (Kereliuk, Sturm & Larsen 2015, shipped as package data and read by
:func:`spectrotune.sources.splits.read_lists`) or the seeded stratified split that ``prepare`` uses
(:func:`spectrotune.sources.splits.stratified`). No ``ray``.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from spectrotune.errors import ConfigError, InputError
from spectrotune.evaluation.baseline_data import track_table
from spectrotune.schema import FEATURE_NAMES, GENRE, LABEL, SEGMENT, SPLIT, TRACK_ID
from spectrotune.sources.splits import fault_filtered_dir, read_lists, stratified

__all__ = ["load_kaggle_csv"]

logger = logging.getLogger(__name__)

# `blues.00000.3.wav` (3-s file: track blues.00000, segment 3) or `blues.00000.wav` (30-s file).
_KAGGLE_FILENAME = re.compile(r"^(?P<track>.+?\.\d+)(?:\.(?P<segment>\d+))?\.(?:wav|au)$")
# Columns of Kaggle's CSV that are not features; its "label" holds the genre name, not a label index.
_CSV_FILENAME = "filename"
_CSV_GENRE = "label"


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
    labels = sorted(segments[GENRE].unique())
    segments[LABEL] = segments[GENRE].map({g: i for i, g in enumerate(labels)}).astype(np.int64)

    track_genre = segments.groupby(TRACK_ID, sort=True)[GENRE].first()
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
    segments = segments[segments[TRACK_ID].isin(track_split.index)].copy()
    if segments.empty:
        raise InputError(f"{csv_path}: no track of the CSV is in the fault-filtered lists")
    segments[SPLIT] = segments[TRACK_ID].map(track_split)
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
    required = (_CSV_FILENAME, _CSV_GENRE, *FEATURE_NAMES)
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise InputError(f"{csv_path}: missing column(s) {', '.join(missing)}")
    if raw.empty:
        raise InputError(f"{csv_path}: no rows")

    def line(row: int) -> int:
        return row + 2  # 1-based, after the header line

    parts = raw[_CSV_FILENAME].str.strip().str.extract(_KAGGLE_FILENAME)
    bad = parts["track"].isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{csv_path} line {line(row)}: column filename has {raw[_CSV_FILENAME].iloc[row]!r}, expected a name "
            "like 'blues.00000.3.wav' or 'blues.00000.wav'"
        )
    genre = raw[_CSV_GENRE].str.strip()
    if (genre == "").any():
        row = int(np.flatnonzero((genre == "").to_numpy())[0])
        raise InputError(f"{csv_path} line {line(row)}: column label is empty")
    segments = pd.DataFrame(
        {
            TRACK_ID: parts["track"].to_numpy(),
            SEGMENT: parts["segment"].fillna("0").astype(np.int64).to_numpy(),
            GENRE: genre.to_numpy(),
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
    duplicated = segments.duplicated([TRACK_ID, SEGMENT])
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise InputError(
            f"{csv_path} line {line(row)}: column filename repeats {raw[_CSV_FILENAME].iloc[row]!r} "
            f"(track {segments[TRACK_ID].iloc[row]}, segment {segments[SEGMENT].iloc[row]})"
        )
    n_genres = segments.groupby(TRACK_ID)[GENRE].nunique()
    if (n_genres > 1).any():
        track = n_genres.index[n_genres > 1][0]
        seen = sorted(segments.loc[segments[TRACK_ID] == track, GENRE].unique())
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
    lists = read_lists(Path(lists_dir) if lists_dir is not None else fault_filtered_dir())
    return {key.rsplit("/", 1)[-1]: split for key, split in lists.items()}


def _stratified_assignment(
    track_genre: pd.Series, *, seed: int, fractions: tuple[float, float, float]
) -> pd.Series:
    """Track id -> split: the same seeded, per-genre split by track that ``prepare`` uses."""
    assignment = stratified({str(t): str(g) for t, g in track_genre.items()}, fractions=tuple(fractions), seed=seed)
    return pd.Series(assignment, dtype=object)
