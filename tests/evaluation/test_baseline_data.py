"""Tests of spectrotune.evaluation.baseline_data: the feature list, track tables, reading a prepared dataset's features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from baseline_tables import GENRES, N_SEGMENTS, N_TRACKS, segment_rows, write_dataset

from spectrotune.errors import DatasetError
from spectrotune.evaluation.baseline_data import load_dataset_features, track_table
from spectrotune.schema import FEATURE_NAMES


# ---------------------------------------------------------------------------------------------- track tables


def test_feature_columns_are_the_57_kaggle_columns_in_csv_order():
    assert len(FEATURE_NAMES) == 57
    assert len(set(FEATURE_NAMES)) == 57
    assert FEATURE_NAMES[16:19] == ("tempo", "mfcc1_mean", "mfcc1_var")
    assert FEATURE_NAMES[-1] == "mfcc20_var"


def test_feature_columns_match_the_features_module():
    from spectrotune.audio import handcrafted as features

    assert tuple(features.FEATURE_NAMES) == FEATURE_NAMES


def test_track_table_has_one_row_per_track_with_segment_means():
    rows = segment_rows()
    table = track_table(pd.DataFrame(rows))
    assert len(table) == len(GENRES) * N_TRACKS
    assert table["track_id"].is_unique
    assert (table["n_segments"] == N_SEGMENTS).all()
    first = table.set_index("track_id").loc["jazz.00005"]
    expected = np.mean([r["features"].astype(np.float64) for r in rows if r["track_id"] == "jazz.00005"], axis=0)
    np.testing.assert_allclose(first[list(FEATURE_NAMES)].to_numpy(dtype=float), expected, rtol=1e-12)
    assert (first["genre"], first["label"], first["split"]) == ("jazz", 1, "valid")


@pytest.mark.parametrize("column", ["split", "label", "genre"])
def test_track_table_rejects_a_track_whose_segments_disagree(column):
    frame = pd.DataFrame(segment_rows())
    frame.loc[0, column] = {"split": "test", "label": 2, "genre": "rock"}[column]
    with pytest.raises(DatasetError, match=rf"{frame.loc[0, 'track_id']}.*{column}"):
        track_table(frame)


# ---------------------------------------------------------------------------------------------- dataset


def test_dataset_features_are_track_means_of_clean_segments(tracks):
    rows = segment_rows()
    assert len(tracks) == len(GENRES) * N_TRACKS
    assert tracks.attrs["labels"] == list(GENRES)
    assert (tracks["n_segments"] == N_SEGMENTS).all()  # the noisy copies were not counted
    by_track = tracks.set_index("track_id")
    for track in ("blues.00000", "rock.00007"):
        expected = np.mean([r["features"].astype(np.float64) for r in rows if r["track_id"] == track], axis=0)
        got = by_track.loc[track, list(FEATURE_NAMES)].to_numpy(dtype=float)
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    counts = tracks["split"].value_counts().to_dict()
    assert counts == {"train": 12, "valid": 6, "test": 6}


def test_dataset_split_column_may_also_be_stored_in_the_shards(tmp_path):
    root = write_dataset(tmp_path / "data", segment_rows(), split_column_in_file=True)
    tracks = load_dataset_features(root)
    assert tracks["split"].value_counts().to_dict() == {"train": 12, "valid": 6, "test": 6}


@pytest.mark.parametrize("features", ["absent", "null"])
def test_dataset_without_handcrafted_features_names_the_config_key(tmp_path, features):
    root = write_dataset(tmp_path / "data", segment_rows(), features=features)
    with pytest.raises(DatasetError, match=r"features\.handcrafted"):
        load_dataset_features(root)


def test_dataset_without_manifest_is_rejected(tmp_path):
    root = write_dataset(tmp_path / "data", segment_rows())
    (root / "manifest.json").unlink()
    with pytest.raises(DatasetError, match="manifest.json"):
        load_dataset_features(root)


def test_dataset_label_disagreeing_with_manifest_is_rejected(tmp_path):
    rows = segment_rows()
    for row in rows:
        if row["track_id"] == "jazz.00003":
            row["label"] = 2
    root = write_dataset(tmp_path / "data", rows)
    with pytest.raises(DatasetError, match=r"jazz\.00003"):
        load_dataset_features(root)
