"""Tests of spectrotune.training.metrics: normalisation statistics, one epoch's validation scores, the epoch line."""

from __future__ import annotations

import numpy as np
import pytest

from spectrotune.errors import DatasetError
from spectrotune.evaluation.scores import clip_accuracy
from spectrotune.schema import SCORE
from spectrotune.training.metrics import epoch_line, norm_stats, valid_metrics


def test_clip_accuracy_averages_segment_probabilities_per_track():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9]])
    labels = np.array([0, 0, 0, 1, 1])
    tracks = ["a", "a", "a", "b", "b"]
    # track a: mean [0.467, 0.533] -> 1 (wrong); track b: mean [0.35, 0.65] -> 1 (right)
    assert clip_accuracy(probs, labels, tracks) == 0.5
    assert clip_accuracy(np.zeros((0, 2)), np.zeros(0, int), []) == 0.0


def test_norm_stats_match_numpy_and_floor_constant_bins():
    rng = np.random.default_rng(0)
    mel = rng.normal(-40.0, 12.0, size=(50, 8, 20)).astype(np.float32)
    mel[:, 3, :] = -80.0  # a constant bin (e.g. above fmax)
    mean, std, rows = norm_stats([mel[:17], mel[17:40], mel[40:]], n_mels=8)
    np.testing.assert_allclose(mean, mel.astype(np.float64).mean(axis=(0, 2)), rtol=1e-6)
    expected_std = mel.astype(np.float64).std(axis=(0, 2))
    np.testing.assert_allclose(std[expected_std > 0], expected_std[expected_std > 0], rtol=1e-5)
    assert std[3] == pytest.approx(1e-3) and rows == 50 and mean.dtype == np.float32


def test_norm_stats_of_nothing_is_the_identity_and_bad_shapes_are_named():
    mean, std, rows = norm_stats([], n_mels=4)
    assert rows == 0 and mean.tolist() == [0.0] * 4 and std.tolist() == [1.0] * 4
    with pytest.raises(DatasetError, match=r"\(2, 5, 3\)"):
        norm_stats([np.zeros((2, 5, 3))], n_mels=4)


def test_valid_metrics_average_per_segment_and_per_track():
    probs = [np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([[0.3, 0.7], [0.6, 0.4], [0.1, 0.9]])]
    labels = [np.array([0, 0]), np.array([0, 1, 1])]
    tracks = [np.array(["a", "a"]), np.array(["a", "b", "b"])]
    metrics = valid_metrics(probs, labels, tracks, loss_sum=5.0)
    assert metrics == {"valid_loss": 1.0, "valid_accuracy": pytest.approx(2 / 5), SCORE: 0.5}
    empty = valid_metrics([], [], [], loss_sum=0.0)
    assert np.isnan(empty["valid_loss"]) and empty["valid_accuracy"] == 0.0 and empty[SCORE] == 0.0


def test_epoch_line_shows_losses_accuracies_and_throughput():
    metrics = {"epoch": 2, "train_loss": 1.23456, "train_accuracy": 0.5, "valid_loss": 2.0, "valid_accuracy": 0.25,
               SCORE: 0.75, "samples_per_second": 1234.4}
    assert epoch_line(metrics, epochs=5) == ("epoch 2/5: train loss 1.2346 acc 0.500 | valid loss 2.0000 acc 0.250 "
                                             "clip 0.750 | 1234 samples/s")
