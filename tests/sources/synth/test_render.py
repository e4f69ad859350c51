"""Tests of spectrotune.sources.synth.render: one track's shape, determinism, argument checks, learnable genres."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from spectrotune.errors import ConfigError
from spectrotune.sources.synth.render import synthesize_track


@pytest.mark.parametrize(
    ("genre", "n_genres", "seconds", "sr"),
    [(0, 10, 1.0, 22050), (1, 10, 0.5, 16000), (6, 10, 2.0, 8000), (9, 10, 0.01, 22050), (13, 14, 1.5, 22050)],
)
def test_track_shape_dtype_and_peak(genre, n_genres, seconds, sr):
    y = synthesize_track(genre, n_genres=n_genres, seconds=seconds, sr=sr, rng=np.random.default_rng(genre))
    assert y.shape == (round(seconds * sr),)
    assert y.dtype == np.float32
    assert np.isfinite(y).all()
    assert 0.0 < np.abs(y).max() <= 0.99


def test_track_is_a_function_of_its_generator():
    def render(seed: int) -> np.ndarray:
        return synthesize_track(3, n_genres=10, seconds=1.0, rng=np.random.default_rng(seed))

    np.testing.assert_array_equal(render(7), render(7))
    assert not np.allclose(render(7), render(8))


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"genre_index": 10, "n_genres": 10}, "10"),
        ({"genre_index": -1}, "-1"),
        ({"n_genres": 0}, "0"),
        ({"seconds": 0.0}, "0.0"),
        ({"seconds": float("nan")}, "nan"),
        ({"sr": 0}, "0"),
    ],
)
def test_track_rejects_bad_arguments(kwargs, bad):
    args = {"genre_index": 0, "n_genres": 10, "seconds": 1.0, "sr": 22050, **kwargs}
    with pytest.raises(ConfigError, match=bad):
        synthesize_track(args.pop("genre_index"), rng=np.random.default_rng(0), **args)


def test_genres_are_learnable_from_simple_features():
    # 6 genres x 8 tracks of 6 s; train on even tracks, test on odd ones (a split by track).
    n_genres, n_tracks, seconds, sr = 6, 8, 6.0, 22050
    features, labels, train = [], [], []
    for g in range(n_genres):
        for t in range(n_tracks):
            y = synthesize_track(g, n_genres=n_genres, seconds=seconds, sr=sr, rng=np.random.default_rng([0, g, t]))
            mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13)
            onsets = librosa.onset.onset_detect(y=y, sr=sr)
            features.append(np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1), [len(onsets) / seconds]]))
            labels.append(g)
            train.append(t % 2 == 0)
    x, labels, train = np.array(features), np.array(labels), np.array(train)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x[train], labels[train])
    accuracy = model.score(x[~train], labels[~train])
    assert accuracy >= 0.45, f"accuracy {accuracy:.2f} vs chance {1 / n_genres:.2f}"


def test_borrow_controls_overlap_without_changing_default_corpora():
    from spectrotune.errors import ConfigError
    from spectrotune.sources.synth.render import synthesize_track
    from spectrotune.sources.synth.styles import BORROW_PROBABILITY

    def track(**kw):
        return synthesize_track(3, n_genres=10, seconds=2.0, rng=np.random.default_rng([0, 3, 1]), **kw)

    np.testing.assert_array_equal(track(), track(borrow=BORROW_PROBABILITY))
    assert not np.array_equal(track(borrow=0.0), track(borrow=2.0))
    for bad in (-0.1, 2.5):
        with pytest.raises(ConfigError, match="borrow"):
            track(borrow=bad)
