"""Tests of spectrotune.evaluation.baselines: fitting, model selection, scoring and the written report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score
from baseline_tables import GENRES, N_FEATURES

from spectrotune.evaluation import baselines
from spectrotune.evaluation.baseline_data import track_table
from spectrotune.evaluation.baselines import BASELINES, fit_baseline, run_baselines, write_baseline_report
from spectrotune.evaluation.report import baselines_markdown
from spectrotune.evaluation.scores import macro_f1
from spectrotune.errors import ConfigError, DatasetError
from spectrotune.schema import FEATURE_NAMES


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


def test_test_macro_f1_is_the_score_the_cnn_report_uses(overlapping_tracks):
    # One macro F1 for the CNN and the baselines: scores.macro_f1 of the test predictions, in track order.
    pipeline, result = fit_baseline(overlapping_tracks, "logistic_regression")
    test = overlapping_tracks[overlapping_tracks["split"] == "test"].sort_values("track_id")
    predicted = pipeline.predict(test[list(FEATURE_NAMES)].to_numpy())
    assert result["test_macro_f1"] == macro_f1(test["label"].to_numpy(), predicted)
    assert result["test_macro_f1"] == f1_score(test["label"].to_numpy(), predicted, average="macro", zero_division=0)


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
