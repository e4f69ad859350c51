"""Tests of the synthetic corpus: layout, determinism, argument checks and that genres are learnable."""

from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
import soundfile as sf
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from spectrotune.errors import ConfigError
from spectrotune.sources.synth import (
    GTZAN_GENRES,
    SPOTIFY_GENRES,
    generate_corpus,
    genre_names,
    genre_style,
    synthesize_track,
)


def _tree_bytes(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_genre_names_follow_gtzan_then_numbered():
    assert genre_names(10) == GTZAN_GENRES
    assert genre_names(3) == ("blues", "classical", "country")
    assert genre_names(12)[10:] == ("genre10", "genre11")
    assert len(SPOTIFY_GENRES) == 14 and len(set(SPOTIFY_GENRES)) == 14


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_genre_names_rejects_bad_count(n):
    with pytest.raises(ConfigError, match=str(n)):
        genre_names(n)


def test_every_genre_has_its_own_style():
    styles = [genre_style(i) for i in range(14)]
    assert [s.name for s in styles] == list(genre_names(14))
    fields = [tuple(v for k, v in vars(s).items() if k != "name") for s in styles]
    assert len(set(fields)) == len(fields)
    assert genre_style(12) == genre_style(12)  # procedural styles are deterministic


def test_styles_carry_genre_character():
    by_name = {s.name: s for s in (genre_style(i) for i in range(10))}
    assert by_name["classical"].levels[0] == 0.0  # no drums
    assert min(by_name["metal"].tempo) > max(by_name["hiphop"].tempo)
    assert by_name["metal"].distortion > by_name["rock"].distortion > by_name["pop"].distortion
    assert all(by_name["disco"].kick[i] == 1.0 for i in (0, 4, 8, 12))  # four on the floor
    assert by_name["reggae"].kick[0] == 0.0 and by_name["reggae"].kick[8] == 1.0  # one drop
    assert by_name["jazz"].swing > 0.1 and by_name["jazz"].chord_size == 4


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


def test_corpus_layout_names_duration_and_rate(tmp_path):
    calls = []
    paths = generate_corpus(
        tmp_path, genres=12, tracks=2, seconds=0.5, sr=8000, progress=lambda d, t: calls.append((d, t))
    )
    expected = sorted(
        tmp_path / "genres_original" / g / f"{g}.{t:05d}.wav" for g in genre_names(12) for t in range(2)
    )
    assert paths == expected
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == expected  # no temporary files left
    assert calls == [(i, 24) for i in range(1, 25)]
    for path in paths:
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (8000, 1, 4000, "PCM_16")


def test_corpus_is_byte_identical_for_a_seed(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate_corpus(tmp_path / name, genres=2, tracks=2, seconds=0.3, seed=seed)
    a, b, c = (_tree_bytes(tmp_path / name) for name in "abc")
    assert a == b
    assert a.keys() == c.keys() and all(a[k] != c[k] for k in a)


def test_adding_tracks_and_genres_keeps_existing_files(tmp_path):
    generate_corpus(tmp_path / "small", genres=2, tracks=2, seconds=0.3)
    generate_corpus(tmp_path / "large", genres=3, tracks=3, seconds=0.3)
    small, large = _tree_bytes(tmp_path / "small"), _tree_bytes(tmp_path / "large")
    assert {k: large[k] for k in small} == small


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"genres": 1}, "1"),
        ({"genres": 0}, "0"),
        ({"tracks": 0}, "0"),
        ({"seconds": 0}, "0"),
        ({"seconds": -2.5}, "-2.5"),
        ({"seconds": math.inf}, "inf"),
    ],
)
def test_corpus_rejects_bad_arguments(tmp_path, kwargs, bad):
    with pytest.raises(ConfigError, match=bad):
        generate_corpus(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())


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
    from spectrotune.sources.synth import BORROW_PROBABILITY, synthesize_track

    def track(**kw):
        return synthesize_track(3, n_genres=10, seconds=2.0, rng=np.random.default_rng([0, 3, 1]), **kw)

    np.testing.assert_array_equal(track(), track(borrow=BORROW_PROBABILITY))
    assert not np.array_equal(track(borrow=0.0), track(borrow=2.0))
    for bad in (-0.1, 2.5):
        with pytest.raises(ConfigError, match="borrow"):
            track(borrow=bad)
