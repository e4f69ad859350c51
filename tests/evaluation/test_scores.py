"""Tests of spectrotune.evaluation.scores: accuracies, macro F1, per-class scores and the confusion matrix."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from spectrotune.evaluation.scores import accuracies, confusion_matrix, macro_f1, per_class_scores

# Two tracks of two segments and one of one. Track "b" has one wrong segment but is right on average.
PROBA = np.array([[0.9, 0.1, 0.0], [0.6, 0.4, 0.0],      # a (label 0): both right
                  [0.2, 0.7, 0.1], [0.55, 0.45, 0.0],    # b (label 1): mean [0.375, 0.575, 0.05] -> 1
                  [0.1, 0.2, 0.7]])                       # c (label 0): wrong
TRACKS = ["a", "a", "b", "b", "c"]
LABELS = np.array([0, 0, 1, 1, 0])


def test_accuracies_at_segment_and_clip_level():
    s = accuracies(PROBA, TRACKS, LABELS)
    assert s["segment_accuracy"] == pytest.approx(3 / 5)
    assert s["clip_accuracy"] == pytest.approx(2 / 3)
    assert (s["n_tracks"], s["n_segments"]) == (3, 5)
    assert s["tracks"] == ["a", "b", "c"]
    assert s["truth"].tolist() == [0, 1, 0] and s["pred"].tolist() == [0, 1, 2]


def test_accuracies_do_not_depend_on_segment_order():
    order = [4, 2, 0, 3, 1]
    a, b = accuracies(PROBA, TRACKS, LABELS), accuracies(PROBA[order], [TRACKS[i] for i in order], LABELS[order])
    assert (a["segment_accuracy"], a["clip_accuracy"], a["tracks"]) == (b["segment_accuracy"], b["clip_accuracy"],
                                                                         b["tracks"])
    assert a["pred"].tolist() == b["pred"].tolist()


def test_accuracies_without_segments_are_nan():
    s = accuracies(np.zeros((0, 3)), [], np.zeros(0, dtype=int))
    assert math.isnan(s["segment_accuracy"]) and math.isnan(s["clip_accuracy"]) and s["n_tracks"] == 0


@pytest.mark.parametrize("truth, pred", [([0, 0, 1, 1], [0, 1, 1, 1]), ([0, 0, 1], [0, 2, 1]), ([2, 2], [2, 2])])
def test_macro_f1_averages_over_labels_in_truth_or_predictions(truth, pred):
    expected = f1_score(truth, pred, average="macro", zero_division=0)
    assert macro_f1(np.array(truth), np.array(pred)) == expected
    assert isinstance(macro_f1(np.array(truth), np.array(pred)), float)


def test_macro_f1_counts_a_label_predicted_but_never_true_as_zero():
    # Labels {0, 1, 2}: F1 1.0 for 1, 2/3 for 0, 0 for 2 (predicted once, never true).
    assert macro_f1(np.array([0, 0, 1]), np.array([0, 2, 1])) == pytest.approx((2 / 3 + 1.0 + 0.0) / 3)


def test_per_class_scores_cover_every_label_in_order():
    per_class = per_class_scores(np.array([0, 0, 1]), np.array([0, 1, 1]), ["blues", "jazz", "rock"])
    assert list(per_class) == ["blues", "jazz", "rock"]
    assert per_class["blues"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert per_class["jazz"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}
    assert per_class["rock"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert all(isinstance(v, float) for m in per_class.values() for k, v in m.items() if k != "support")


def test_confusion_matrix_rows_are_truth_columns_predictions():
    cm = confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), n_classes=3)
    assert cm.shape == (3, 3) and np.issubdtype(cm.dtype, np.integer)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
