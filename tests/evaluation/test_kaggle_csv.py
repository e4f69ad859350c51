"""Tests of spectrotune.evaluation.kaggle_csv: Kaggle's GTZAN feature CSVs as track tables with a split by track."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spectrotune.errors import ConfigError, InputError
from spectrotune.evaluation.baselines import run_baselines
from spectrotune.evaluation.kaggle_csv import load_kaggle_csv
from spectrotune.schema import FEATURE_NAMES

N_FEATURES = len(FEATURE_NAMES)

# Tracks of the shipped fault-filtered lists: blues.00029 / classical.00030 train, blues.00000 /
# classical.00000 valid, blues.00012 / classical.00011 test; classical.00042 is in no list.
KAGGLE_SPLITS = {
    "blues.00029": "train",
    "blues.00030": "train",
    "classical.00030": "train",
    "classical.00031": "train",
    "blues.00000": "valid",
    "classical.00000": "valid",
    "blues.00012": "test",
    "classical.00011": "test",
}


def _kaggle_frame(tracks: dict[str, int], *, seed: int = 0) -> pd.DataFrame:
    """A features_3_sec.csv look-alike: ``tracks`` maps track id -> number of 3-s segments."""
    rng = np.random.default_rng(seed)
    rows = []
    for track, n_segments in tracks.items():
        genre = track.split(".")[0]
        centre = 5.0 if genre == "classical" else -5.0
        for segment in range(n_segments):
            values = rng.normal(centre, 1.0, N_FEATURES)
            rows.append(
                {"filename": f"{track}.{segment}.wav", "length": 66149, **dict(zip(FEATURE_NAMES, values)),
                 "label": genre}
            )
    frame = pd.DataFrame(rows)
    assert frame.shape[1] == 60
    return frame


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_kaggle_fault_filtered_split_uses_the_shipped_lists(tmp_path):
    segments = {track: 10 for track in KAGGLE_SPLITS} | {"classical.00042": 10}
    segments["blues.00029"] = 9  # Kaggle's 3-s file has a few tracks with fewer segments
    frame = _kaggle_frame(segments)
    tracks = load_kaggle_csv(_write_csv(frame, tmp_path / "features_3_sec.csv"))
    assert dict(zip(tracks["track_id"], tracks["split"])) == KAGGLE_SPLITS
    assert tracks.attrs["n_dropped_tracks"] == 1
    assert tracks.attrs["labels"] == ["blues", "classical"]
    by_track = tracks.set_index("track_id")
    assert by_track.loc["blues.00029", "n_segments"] == 9
    assert by_track.loc["blues.00000", "n_segments"] == 10
    rows = frame[frame["filename"].str.startswith("blues.00029.")]
    np.testing.assert_allclose(
        by_track.loc["blues.00029", list(FEATURE_NAMES)].to_numpy(dtype=float),
        rows[list(FEATURE_NAMES)].to_numpy().mean(axis=0),
    )
    assert by_track.loc["classical.00000", "label"] == 1


def test_kaggle_lists_dir_overrides_the_shipped_lists(tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.txt").write_text("blues/blues.00000.wav\nclassical/classical.00000.wav\n")
    (lists / "valid.txt").write_text("")
    (lists / "test.txt").write_text("blues/blues.00029.wav\n")
    path = _write_csv(_kaggle_frame({t: 2 for t in KAGGLE_SPLITS}), tmp_path / "f.csv")
    tracks = load_kaggle_csv(path, lists_dir=lists)
    assert dict(zip(tracks["track_id"], tracks["split"])) == {
        "blues.00000": "train", "blues.00029": "test", "classical.00000": "train"
    }
    assert tracks.attrs["n_dropped_tracks"] == len(KAGGLE_SPLITS) - 3


def test_kaggle_30_sec_rows_are_one_segment_per_track(tmp_path):
    frame = _kaggle_frame({t: 1 for t in KAGGLE_SPLITS})
    frame["filename"] = frame["filename"].str.replace(".0.wav", ".wav", regex=False)
    tracks = load_kaggle_csv(_write_csv(frame, tmp_path / "features_30_sec.csv"))
    assert len(tracks) == len(KAGGLE_SPLITS)
    assert (tracks["n_segments"] == 1).all()


def test_kaggle_stratified_split_keeps_tracks_whole_and_is_seeded(tmp_path):
    track_ids = [f"{g}.{i:05d}" for g in ("blues", "classical", "disco") for i in range(20)]
    frame = _kaggle_frame({t: 10 for t in track_ids})
    path = _write_csv(frame, tmp_path / "features_3_sec.csv")
    tracks = load_kaggle_csv(path, split="stratified", seed=1)
    assert len(tracks) == len(track_ids) and tracks["track_id"].is_unique  # one split per track
    assert (tracks["n_segments"] == 10).all()
    per_genre = tracks.groupby(["genre", "split"]).size().unstack()
    assert (per_genre["train"] == 14).all() and (per_genre["valid"] == 3).all() and (per_genre["test"] == 3).all()
    again = load_kaggle_csv(path, split="stratified", seed=1)
    pd.testing.assert_frame_equal(tracks, again)
    other = load_kaggle_csv(path, split="stratified", seed=2)
    assert not tracks["split"].equals(other["split"])


def test_kaggle_track_level_baselines_run_end_to_end(tmp_path):
    track_ids = [f"{g}.{i:05d}" for g in ("blues", "classical") for i in range(20)]
    path = _write_csv(_kaggle_frame({t: 3 for t in track_ids}), tmp_path / "features_3_sec.csv")
    results = run_baselines(load_kaggle_csv(path, split="stratified"), models=("svm_rbf",))
    assert results["svm_rbf"]["test_accuracy"] == 1.0


@pytest.mark.parametrize("column", ["filename", "label", "mfcc7_var", "tempo"])
def test_kaggle_csv_missing_column_is_named(tmp_path, column):
    frame = _kaggle_frame({t: 2 for t in KAGGLE_SPLITS}).drop(columns=[column])
    path = _write_csv(frame, tmp_path / "features_3_sec.csv")
    with pytest.raises(InputError, match=rf"features_3_sec\.csv.*{column}"):
        load_kaggle_csv(path)


@pytest.mark.parametrize(
    "column,value,pattern",
    [
        ("rms_mean", "loud", r"line 4: column rms_mean has 'loud'"),
        ("rms_mean", "", r"line 4: column rms_mean"),
        ("tempo", "inf", r"line 4: column tempo"),
        ("filename", "blues_00029.wav", r"line 4: column filename has 'blues_00029.wav'"),
        ("filename", "blues.00029.0.wav", r"line 4: column filename repeats"),
        ("label", "jazz", r"column label .* blues\.00029"),
    ],
)
def test_kaggle_csv_bad_row_names_file_line_and_column(tmp_path, column, value, pattern):
    frame = _kaggle_frame({"blues.00029": 3, "classical.00030": 3}).astype({column: object})
    frame.loc[2, column] = value
    path = _write_csv(frame, tmp_path / "features_3_sec.csv")
    with pytest.raises(InputError, match=rf"features_3_sec\.csv.*{pattern}"):
        load_kaggle_csv(path)


@pytest.mark.parametrize(
    "kwargs", [{"split": "random"}, {"split": "stratified", "fractions": (0.8, 0.3, 0.1)}]
)
def test_kaggle_bad_split_options_are_config_errors(tmp_path, kwargs):
    path = _write_csv(_kaggle_frame({"blues.00029": 1}), tmp_path / "f.csv")
    with pytest.raises(ConfigError):
        load_kaggle_csv(path, **kwargs)
