"""Tests of spectrotune.evaluation.baselines: track tables, dataset and Kaggle CSV loading, the baselines, the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spectrotune.evaluation import baselines
from spectrotune.evaluation.baselines import (
    BASELINES,
    baselines_markdown,
    fit_baseline,
    load_dataset_features,
    load_kaggle_csv,
    run_baselines,
    track_table,
    write_baseline_report,
)
from spectrotune.errors import ConfigError, DatasetError, InputError
from spectrotune.schema import FEATURE_NAMES

GENRES = ("blues", "jazz", "rock")
N_TRACKS = 8
N_SEGMENTS = 3
N_FEATURES = len(FEATURE_NAMES)
# Per genre: tracks 0-3 train, 4-5 valid, 6-7 test.
SPLIT_OF_TRACK = ("train",) * 4 + ("valid",) * 2 + ("test",) * 2


def _centres() -> np.ndarray:
    """Class centres [n_genres, 57]: far apart relative to the unit noise, and on very different scales."""
    rng = np.random.default_rng(123)
    scale = np.logspace(-3, 4, N_FEATURES)  # like the Kaggle features: _var columns span decades
    return rng.normal(0.0, 4.0, (len(GENRES), N_FEATURES)) * scale, scale


def _segment_rows(seed: int = 0) -> list[dict]:
    """Clean segment rows: track_id, genre, label, split, segment, features (float32 [57])."""
    rng = np.random.default_rng(seed)
    centres, scale = _centres()
    rows = []
    for label, genre in enumerate(GENRES):
        for t in range(N_TRACKS):
            track_offset = rng.normal(0.0, 0.5, N_FEATURES) * scale
            for segment in range(N_SEGMENTS):
                features = centres[label] + track_offset + rng.normal(0.0, 1.0, N_FEATURES) * scale
                rows.append(
                    {
                        "track_id": f"{genre}.{t:05d}",
                        "genre": genre,
                        "label": label,
                        "split": SPLIT_OF_TRACK[t],
                        "segment": segment,
                        "features": features.astype(np.float32),
                    }
                )
    return rows


def _write_dataset(
    root: Path,
    rows: list[dict],
    *,
    features: str = "present",
    noisy: bool = True,
    split_column_in_file: bool = False,
) -> Path:
    """Write a prepared-dataset look-alike: hive split dirs with shards, manifest.json, an errors table.

    ``features``: "present", "absent" (no column) or "null" (column of nulls). ``noisy`` adds a
    ``white@10dB`` copy of every segment whose features are wildly off, so reading it would show.
    """
    by_split: dict[str, list[dict]] = {}
    for row in rows:
        variants = [("clean", None, row["features"])]
        if noisy:
            variants.append(("white@10dB", 10.0, row["features"] * 0 + 1e6))
        for variant, snr, vector in variants:
            out = {k: v for k, v in row.items() if k not in ("split", "features")}
            out.update(variant=variant, snr_db=snr, mel=[[0.0, 1.0], [2.0, 3.0]], features=vector.tolist())
            if split_column_in_file:
                out["split"] = row["split"]
            by_split.setdefault(row["split"], []).append(out)
    for split, split_rows in by_split.items():
        table = pa.Table.from_pylist(split_rows)
        if features == "absent":
            table = table.drop_columns(["features"])
        elif features == "null":
            index = table.schema.get_field_index("features")
            table = table.set_column(index, "features", pa.nulls(table.num_rows, pa.list_(pa.float32())))
        else:
            index = table.schema.get_field_index("features")
            column = pa.array([r["features"] for r in split_rows], pa.list_(pa.float32()))
            table = table.set_column(index, "features", column)
        directory = root / "data" / f"split={split}"
        directory.mkdir(parents=True)
        # Two shards per split, as a parallel writer would leave them.
        half = table.num_rows // 2
        pq.write_table(table.slice(0, half), directory / "part-0.parquet")
        pq.write_table(table.slice(half), directory / "part-1.parquet")
    (root / "manifest.json").write_text(json.dumps({"labels": list(GENRES), "counts": {}}))
    pq.write_table(pa.table({"path": ["x.wav"], "error": ["bad"]}), root / "errors.parquet")
    return root


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_dataset(tmp_path_factory.mktemp("ds") / "data", _segment_rows())


@pytest.fixture(scope="module")
def tracks(dataset_dir: Path) -> pd.DataFrame:
    return load_dataset_features(dataset_dir)


# ---------------------------------------------------------------------------------------------- track tables


def test_feature_columns_are_the_57_kaggle_columns_in_csv_order():
    assert len(FEATURE_NAMES) == 57
    assert len(set(FEATURE_NAMES)) == 57
    assert FEATURE_NAMES[16:19] == ("tempo", "mfcc1_mean", "mfcc1_var")
    assert FEATURE_NAMES[-1] == "mfcc20_var"


def test_feature_columns_match_the_features_module():
    features = pytest.importorskip("spectrotune.audio.handcrafted")
    assert tuple(features.FEATURE_NAMES) == FEATURE_NAMES


def test_track_table_has_one_row_per_track_with_segment_means():
    rows = _segment_rows()
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
    frame = pd.DataFrame(_segment_rows())
    frame.loc[0, column] = {"split": "test", "label": 2, "genre": "rock"}[column]
    with pytest.raises(DatasetError, match=rf"{frame.loc[0, 'track_id']}.*{column}"):
        track_table(frame)


# ---------------------------------------------------------------------------------------------- dataset


def test_dataset_features_are_track_means_of_clean_segments(tracks):
    rows = _segment_rows()
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
    root = _write_dataset(tmp_path / "data", _segment_rows(), split_column_in_file=True)
    tracks = load_dataset_features(root)
    assert tracks["split"].value_counts().to_dict() == {"train": 12, "valid": 6, "test": 6}


@pytest.mark.parametrize("features", ["absent", "null"])
def test_dataset_without_handcrafted_features_names_the_config_key(tmp_path, features):
    root = _write_dataset(tmp_path / "data", _segment_rows(), features=features)
    with pytest.raises(DatasetError, match=r"features\.handcrafted"):
        load_dataset_features(root)


def test_dataset_without_manifest_is_rejected(tmp_path):
    root = _write_dataset(tmp_path / "data", _segment_rows())
    (root / "manifest.json").unlink()
    with pytest.raises(DatasetError, match="manifest.json"):
        load_dataset_features(root)


def test_dataset_label_disagreeing_with_manifest_is_rejected(tmp_path):
    rows = _segment_rows()
    for row in rows:
        if row["track_id"] == "jazz.00003":
            row["label"] = 2
    root = _write_dataset(tmp_path / "data", rows)
    with pytest.raises(DatasetError, match=r"jazz\.00003"):
        load_dataset_features(root)


# ---------------------------------------------------------------------------------------------- baselines


def test_baselines_are_well_above_chance_on_separable_data(tracks):
    results = run_baselines(tracks, seed=0)
    assert list(results) == list(BASELINES)
    for name, result in results.items():
        assert result["test_accuracy"] >= 0.8, (name, result)
        assert result["test_macro_f1"] >= 0.8, (name, result)
        assert result["valid_accuracy"] is not None
        assert (result["n_train"], result["n_valid"], result["n_test"]) == (12, 6, 6)


@pytest.fixture(scope="module")
def overlapping_tracks() -> pd.DataFrame:
    """3 genres x 30 one-segment tracks whose classes overlap, so models and hyperparameters differ."""
    rng = np.random.default_rng(5)
    rows = []
    for label, genre in enumerate(GENRES):
        for t in range(30):
            values = rng.normal(0.0, 1.0, N_FEATURES)
            values[:3] += 0.8 * np.eye(3)[label]
            split = "train" if t < 14 else "valid" if t < 22 else "test"
            rows.append({"track_id": f"{genre}.{t:05d}", "genre": genre, "label": label, "split": split,
                         **dict(zip(FEATURE_NAMES, values))})
    return track_table(pd.DataFrame(rows))


def test_baselines_are_deterministic_for_a_seed_and_row_order(overlapping_tracks):
    shuffled = overlapping_tracks.sample(frac=1.0, random_state=7)
    models = ("random_forest", "knn")
    first = run_baselines(overlapping_tracks, seed=3, models=models)
    assert first == run_baselines(overlapping_tracks, seed=3, models=models)
    assert first == run_baselines(shuffled, seed=3, models=models)


@pytest.mark.parametrize("name,key", [("svm_rbf", "C"), ("knn", "n_neighbors"), ("logistic_regression", "C")])
def test_hyperparameter_is_the_first_best_on_valid(overlapping_tracks, name, key):
    _, result = fit_baseline(overlapping_tracks, name)
    valid = overlapping_tracks[overlapping_tracks["split"] == "valid"]
    train = overlapping_tracks[overlapping_tracks["split"] == "train"]
    scores = []
    for value in baselines.PARAM_GRIDS[name][key]:
        model = baselines.make_model(name, **{key: value})
        model.fit(train[list(FEATURE_NAMES)].to_numpy(), train["label"].to_numpy())
        scores.append(model.score(valid[list(FEATURE_NAMES)].to_numpy(), valid["label"].to_numpy()))
    assert len(set(scores)) > 1  # the grid matters on this data
    assert result["valid_accuracy"] == pytest.approx(max(scores))
    assert result["params"] == {key: baselines.PARAM_GRIDS[name][key][int(np.argmax(scores))]}


def test_scaler_is_fitted_on_train_tracks_only(tracks):
    pipeline, result = fit_baseline(tracks, "svm_rbf", seed=0)
    train = tracks[tracks["split"] == "train"][list(FEATURE_NAMES)].to_numpy(dtype=float)
    np.testing.assert_allclose(pipeline["scale"].mean_, train.mean(axis=0), rtol=1e-12)

    moved = tracks.copy()
    is_test = moved["split"] == "test"
    moved.loc[is_test, list(FEATURE_NAMES)] += 1e3
    moved_pipeline, moved_result = fit_baseline(moved, "svm_rbf", seed=0)
    np.testing.assert_array_equal(moved_pipeline["scale"].mean_, pipeline["scale"].mean_)
    np.testing.assert_array_equal(moved_pipeline["scale"].scale_, pipeline["scale"].scale_)
    assert moved_result["params"] == result["params"]
    assert moved_result["valid_accuracy"] == result["valid_accuracy"]


@pytest.mark.parametrize("name", ["svm_rbf", "knn", "logistic_regression"])
def test_hyperparameter_defaults_without_valid_tracks(tracks, name):
    _, no_valid = fit_baseline(tracks[tracks["split"] != "valid"], name)
    assert no_valid["params"] == baselines.DEFAULT_PARAMS[name]
    assert no_valid["valid_accuracy"] is None


@pytest.mark.parametrize(
    "change,error,pattern",
    [
        (lambda t: t[t["split"] != "test"], DatasetError, "test tracks"),
        (lambda t: t[(t["split"] != "train") | (t["label"] == 0)], DatasetError, "at least 2 labels"),
        (lambda t: t.assign(split=t["split"].replace("valid", "dev")), DatasetError, "dev"),
        (lambda t: t.drop(columns=["tempo"]), DatasetError, "tempo"),
    ],
)
def test_run_baselines_rejects_unusable_track_tables(tracks, change, error, pattern):
    with pytest.raises(error, match=pattern):
        run_baselines(change(tracks), models=("knn",))


def test_run_baselines_rejects_unknown_model(tracks):
    with pytest.raises(ConfigError, match="xgboost"):
        run_baselines(tracks, models=("knn", "xgboost"))


def test_report_is_written_as_json_and_markdown(tmp_path, tracks):
    results = run_baselines(tracks, models=("knn", "svm_linear"))
    json_path, md_path = write_baseline_report(results, tmp_path / "reports" / "baselines")
    assert json.loads(json_path.read_text()) == results
    markdown = md_path.read_text()
    assert markdown == baselines_markdown(results)
    lines = markdown.strip().splitlines()
    assert len(lines) == 2 + len(results)
    assert lines[2].startswith("| knn | n_neighbors=")
    assert f"{results['knn']['test_accuracy']:.3f}" in lines[2]
    assert not list(json_path.parent.glob(".*tmp"))


# ---------------------------------------------------------------------------------------------- Kaggle CSV

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
