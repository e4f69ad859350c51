"""Classical baselines (scikit-learn) on the 57 handcrafted Kaggle-GTZAN features (or any per-track feature columns,
such as the musicnn embeddings of :mod:`spectrotune.evaluation.embeddings`: ``features=``), split by track.

The CNN is only worth its cost if it beats what a random forest or an SVM does with the classic feature
vector, measured the same way. This module makes that comparison honest:

* **Track level.** Every model sees one row per clip: a track table
  (:func:`spectrotune.evaluation.baseline_data.track_table`) of segment features averaged per track, so no clip
  has segments on both sides of a split.
* **Same split as the CNN.** :func:`~spectrotune.evaluation.baseline_data.load_dataset_features` reads a prepared
  dataset's own split; :func:`~spectrotune.evaluation.kaggle_csv.load_kaggle_csv` reads Kaggle's CSVs with the
  fault-filtered or a stratified split by track.
* **Same scores.** Accuracy is per track and macro F1 is :func:`spectrotune.evaluation.scores.macro_f1`, the one
  the CNN's report uses.
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

This module never imports ``ray``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spectrotune import storage
from spectrotune.errors import ConfigError, DatasetError
from spectrotune.evaluation.report import baselines_markdown
from spectrotune.evaluation.scores import macro_f1
from spectrotune.schema import FEATURE_NAMES, LABEL, SPLIT, SPLITS, TRACK_ID

__all__ = ["BASELINES", "DEFAULT_PARAMS", "PARAM_GRIDS", "fit_baseline", "make_model", "run_baselines",
           "write_baseline_report"]

logger = logging.getLogger(__name__)


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


def fit_baseline(tracks: pd.DataFrame, name: str, *, seed: int = 0,
                 features: Sequence[str] = FEATURE_NAMES) -> tuple[Any, dict[str, Any]]:
    """Fit one baseline on the train tracks, pick its hyperparameter on valid, score it on test.

    Parameters
    ----------
    tracks : pandas.DataFrame
        A track table (:func:`~spectrotune.evaluation.baseline_data.track_table`): ``label``, ``split``
        (train/valid/test) and the 57 feature columns. Rows are sorted by ``track_id`` first, so the result does
        not depend on row order.
    name : str
        One of :data:`BASELINES`.
    seed : int
        Seed of the random forest.
    features : sequence of str
        The feature columns (default the 57 handcrafted :data:`~spectrotune.schema.FEATURE_NAMES`).

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        The chosen model, fitted on the train tracks only (``pipeline["scale"]`` is the scaler).
    result : dict
        ``params`` (chosen hyperparameters), ``valid_accuracy`` (float, or None without valid tracks),
        ``test_accuracy``, ``test_macro_f1`` (over the labels present in the test truth or predictions),
        ``n_train``, ``n_valid``, ``n_test`` (track counts).
    """
    from sklearn.metrics import accuracy_score

    _check_model_names([name])
    data = _split_arrays(tracks, features)
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
        "params": storage.jsonable(params),
        "valid_accuracy": valid_accuracy,
        "test_accuracy": float(accuracy_score(y_test, predicted)),
        "test_macro_f1": macro_f1(y_test, predicted),
        "n_train": int(len(y_train)),
        "n_valid": int(len(y_valid)),
        "n_test": int(len(y_test)),
    }
    return pipeline, result


def run_baselines(
    tracks: pd.DataFrame, *, seed: int = 0, models: Sequence[str] = BASELINES, features: Sequence[str] = FEATURE_NAMES
) -> dict[str, dict[str, Any]]:
    """Fit and score every baseline in ``models`` on a track table (see :func:`fit_baseline`).

    Parameters
    ----------
    tracks : pandas.DataFrame
        Track table from :func:`~spectrotune.evaluation.baseline_data.load_dataset_features`,
        :func:`~spectrotune.evaluation.kaggle_csv.load_kaggle_csv` or
        :func:`~spectrotune.evaluation.baseline_data.track_table`.
    seed : int
        Seed of the random forest; results are identical for equal seeds and data.
    models : sequence of str
        Names from :data:`BASELINES`, in the order of the returned dict.
    features : sequence of str
        The feature columns (see :func:`fit_baseline`).

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
    _split_arrays(tracks, features)  # validate once before spending time on fits
    results: dict[str, dict[str, Any]] = {}
    for name in models:
        _, results[name] = fit_baseline(tracks, name, seed=seed, features=features)
        logger.info("baseline %s: test accuracy %.3f", name, results[name]["test_accuracy"])
    return results


def _check_model_names(models: Sequence[str]) -> None:
    unknown = [m for m in models if m not in BASELINES]
    if unknown:
        raise ConfigError(f"unknown baseline model(s) {unknown}; choose from {list(BASELINES)}")
    if not models:
        raise ConfigError(f"no baseline models given; choose from {list(BASELINES)}")


def _split_arrays(tracks: pd.DataFrame, features: Sequence[str] = FEATURE_NAMES
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{split: (features float64 [n, len(features)], labels int64 [n])}`` with rows sorted by track_id."""
    required = (TRACK_ID, LABEL, SPLIT, *features)
    missing = [c for c in required if c not in tracks.columns]
    if missing:
        raise DatasetError(f"track table lacks column(s) {missing[:5]}{'...' if len(missing) > 5 else ''}")
    unknown = sorted(set(map(str, tracks[SPLIT].unique())) - set(SPLITS))
    if unknown:
        raise DatasetError(f"track table has unknown split name(s) {unknown}; expected {list(SPLITS)}")
    ordered = tracks.sort_values(TRACK_ID, kind="stable")
    x = ordered[list(features)].to_numpy(dtype=np.float64)
    if not np.isfinite(x).all():
        raise DatasetError("track table has non-finite feature values")
    y = ordered[LABEL].to_numpy(dtype=np.int64)
    split = ordered[SPLIT].astype(str).to_numpy()
    data = {name: (x[split == name], y[split == name]) for name in SPLITS}
    if len(np.unique(data["train"][1])) < 2:
        raise DatasetError(
            f"baselines need train tracks of at least 2 labels, got {len(data['train'][1])} track(s) "
            f"with labels {sorted(set(data['train'][1].tolist()))}"
        )
    if not len(data["test"][1]):
        raise DatasetError("baselines need test tracks, the track table has none")
    return data


# --------------------------------------------------------------------------------------------------------
# Report


def write_baseline_report(
    results: Mapping[str, Mapping[str, Any]], out_dir: str | os.PathLike[str], *, notes: Sequence[str] = ()
) -> tuple[Path, Path]:
    """Write ``baselines.json`` (model name -> result, nothing else) and ``baselines.md`` into ``out_dir`` (created if
    needed); ``notes`` (lines, e.g. why the musicnn embeddings did not run) follow the table in ``baselines.md``.

    Each local file is written aside and renamed into place, so a reader never sees half a report; existing
    reports in ``out_dir`` are replaced. ``out_dir`` may be a URI.

    Returns
    -------
    (Path, Path)
        The paths of ``baselines.json`` and ``baselines.md`` (strings for a URI).
    """
    json_path = storage.join(out_dir, "baselines.json")
    md_path = storage.join(out_dir, "baselines.md")
    storage.write_text(md_path, baselines_markdown(results, notes=notes))
    storage.write_json(json_path, results)
    return json_path, md_path
