"""Tests of spectrotune.audio.features: the fast log-mel and the 57 classical features agree with librosa."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.ndimage

from spectrotune.errors import ConfigError, InputError
from spectrotune.audio.features import (
    FEATURE_NAMES,
    _sliding_median,
    handcrafted_features,
    handcrafted_features_librosa,
    log_mel,
    log_mel_librosa,
    mel_filterbank,
    n_frames,
)

SR = 22050
N_3S = 3 * SR


def _noise_and_sines(n_seg: int, n_samples: int, *, seed: int) -> np.ndarray:
    """Segments [n_seg, n_samples] float32: a random tone plus white noise, at levels from -40 to 0 dBFS."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / SR
    out = np.empty((n_seg, n_samples), dtype=np.float32)
    for i in range(n_seg):
        gain = 10 ** (rng.uniform(-40, 0) / 20)
        tone = np.sin(2 * np.pi * rng.uniform(60, 5000) * t + rng.uniform(0, 2 * np.pi))
        out[i] = gain * (0.5 * tone + rng.uniform(0.01, 0.3) * rng.standard_normal(n_samples))
    return out


def _music_like(n_samples: int, *, seed: int) -> np.ndarray:
    """One segment [n_samples] float32 with pitch, rhythm and noise: gated detuned tones plus noise bursts."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / SR
    f0 = rng.uniform(100, 600)
    tones = 0.3 * np.sin(2 * np.pi * f0 * 1.01 * t) + 0.2 * np.sin(2 * np.pi * 2.5 * f0 * t)
    gate = np.sin(2 * np.pi * rng.uniform(1, 3) * t) > 0
    clicks = np.zeros(n_samples)
    clicks[:: int(SR * rng.uniform(0.3, 0.6))] = 1.0
    drums = np.convolve(clicks, 0.3 * rng.standard_normal(200), mode="same")
    return (tones * gate + drums + 0.02 * rng.standard_normal(n_samples)).astype(np.float32)


@pytest.mark.filterwarnings("ignore:n_fft=256 is too large")
@pytest.mark.parametrize("n_samples", [1, 511, 512, 5000, N_3S])
@pytest.mark.parametrize("hop_length", [256, 512])
def test_n_frames_counts_librosa_centered_frames(n_samples, hop_length):
    y = np.zeros(n_samples, dtype=np.float32)
    expected = librosa.stft(y, n_fft=256, hop_length=hop_length).shape[-1]
    assert n_frames(n_samples, hop_length=hop_length) == expected


@pytest.mark.parametrize(
    "params",
    [
        dict(sr=22050, n_fft=2048, n_mels=128, fmin=0.0, fmax=None),
        dict(sr=16000, n_fft=1024, n_mels=64, fmin=30.0, fmax=7000.0),
    ],
)
def test_mel_filterbank_is_librosas_cached_and_read_only(params):
    fb = mel_filterbank(**params)
    assert fb.dtype == np.float32 and fb.shape == (params["n_mels"], 1 + params["n_fft"] // 2)
    np.testing.assert_array_equal(fb, librosa.filters.mel(**params))
    assert mel_filterbank(**params) is fb
    with pytest.raises(ValueError):
        fb[0, 0] = 1.0


@pytest.mark.parametrize(
    "params",
    [
        {},
        dict(n_fft=1024, hop_length=256, n_mels=64, fmin=30.0, fmax=8000.0),
        dict(n_mels=40, top_db=None),
        dict(sr=16000, n_fft=512, hop_length=160, n_mels=80, top_db=60.0),
    ],
)
@pytest.mark.parametrize("n_samples", [N_3S, 5000])
def test_log_mel_matches_librosa_within_0_05_db(params, n_samples):
    segments = _noise_and_sines(4, n_samples, seed=n_samples)
    fast = log_mel(segments, **params)
    reference = log_mel_librosa(segments, **params)
    assert fast.dtype == np.float32 and fast.shape == reference.shape
    assert fast.shape[-1] == n_frames(n_samples, hop_length=params.get("hop_length", 512))
    assert np.abs(fast - reference).max() < 0.05


def test_log_mel_batched_equals_one_at_a_time():
    segments = _noise_and_sines(7, N_3S, seed=1)
    batched = log_mel(segments)
    singles = np.stack([log_mel(seg) for seg in segments])
    np.testing.assert_allclose(batched, singles, atol=1e-3)


def test_log_mel_of_one_dimensional_input_is_two_dimensional():
    segment = _noise_and_sines(1, N_3S, seed=2)[0]
    mel = log_mel(segment)
    assert mel.shape == (128, n_frames(N_3S))
    np.testing.assert_array_equal(mel, log_mel(segment[None])[0])


def test_log_mel_of_silence_is_minus_100_db():
    silence = np.zeros((2, N_3S), dtype=np.float32)
    mel = log_mel(silence)
    assert np.isfinite(mel).all()
    np.testing.assert_allclose(mel, -100.0, atol=1e-4)  # float32 10 * log10(1e-10), as librosa
    np.testing.assert_array_equal(mel, log_mel_librosa(silence))


def test_top_db_clamps_each_segment_to_its_own_maximum():
    loud, quiet = _noise_and_sines(2, N_3S, seed=3)
    quiet *= 1e-3
    loud[: N_3S // 2] = quiet[: N_3S // 2] = 0.0  # half silence, -100 dB: the clamp must engage
    mel = log_mel(np.stack([loud, quiet]), top_db=50.0)
    for seg in mel:
        assert seg.min() == pytest.approx(seg.max() - 50.0, abs=1e-4)
    np.testing.assert_allclose(mel[1], log_mel(quiet, top_db=50.0), atol=1e-3)


@pytest.mark.parametrize(
    "segments, match",
    [
        (np.zeros((2, 1000), dtype=np.int16), "int16"),
        (np.zeros((2, 3, 1000), dtype=np.float32), r"\(2, 3, 1000\)"),
        (np.zeros((2, 0), dtype=np.float32), r"\(2, 0\)"),
        (np.array([[0.0] * 100, [0.0] * 99 + [np.nan]], dtype=np.float32), "segment 1"),
        (np.array([0.0] * 99 + [np.inf]), "segment 0"),
    ],
)
@pytest.mark.parametrize("function", [log_mel, handcrafted_features])
def test_bad_segments_raise_input_error_naming_the_problem(function, segments, match):
    with pytest.raises(InputError, match=match):
        function(segments)


@pytest.mark.parametrize(
    "params, name",
    [
        (dict(sr=0), "sr"),
        (dict(n_fft=0), "n_fft"),
        (dict(hop_length=0), "hop_length"),
        (dict(n_mels=0), "n_mels"),
        (dict(fmin=-1.0), "fmin"),
        (dict(fmax=30000.0), "fmax"),
        (dict(top_db=-1.0), "top_db"),
    ],
)
def test_bad_spectrogram_parameter_raises_config_error_naming_it(params, name):
    with pytest.raises(ConfigError, match=f"{name}="):
        log_mel(np.zeros(1000, dtype=np.float32), **params)


def test_feature_names_are_the_57_kaggle_columns_in_order():
    assert len(FEATURE_NAMES) == 57 and len(set(FEATURE_NAMES)) == 57
    assert FEATURE_NAMES[:4] == ("chroma_stft_mean", "chroma_stft_var", "rms_mean", "rms_var")
    assert FEATURE_NAMES[8:17] == (
        "rolloff_mean", "rolloff_var", "zero_crossing_rate_mean", "zero_crossing_rate_var",
        "harmony_mean", "harmony_var", "perceptr_mean", "perceptr_var", "tempo",
    )  # fmt: skip
    assert FEATURE_NAMES[17:19] == ("mfcc1_mean", "mfcc1_var")
    assert FEATURE_NAMES[-2:] == ("mfcc20_mean", "mfcc20_var")


# Tolerances for handcrafted features vs librosa. Both sides take the same float32 STFT; they differ only in
# FFT precision (librosa windows in float64), summation order and float32 output rounding, which move the
# per-segment statistics by about 1e-7 relative (worst seen 3e-7: 300x inside the tolerance). Discrete choices
# (tuning bin, roll-off bin, tempo lag) agree exactly on these signals; a tuning off by one 0.01 bin already
# moves the chroma statistics by 5e-3. Means near zero are compared in absolute terms: 1e-6 in signal units
# (RMS ~0.2) for the zero-mean harmonic / percussive signals, 1e-3 dB for MFCCs.
_RTOL = 1e-4
_ATOL = {"harmony_mean": 1e-6, "perceptr_mean": 1e-6, **{n: 1e-3 for n in FEATURE_NAMES if n.startswith("mfcc")}}


@pytest.mark.parametrize(
    "segment",
    [
        pytest.param(_music_like(N_3S, seed=0), id="music-3s"),
        pytest.param(_music_like(N_3S, seed=1), id="music-3s-b"),
        pytest.param(_music_like(SR, seed=2), id="music-1s"),
        pytest.param(np.zeros(N_3S, dtype=np.float32), id="silence"),
    ],
)
def test_handcrafted_features_match_librosa_standalone_functions(segment):
    fast = handcrafted_features(segment)
    reference = handcrafted_features_librosa(segment)
    assert fast.dtype == np.float32 and fast.shape == reference.shape == (57,)
    for name, got, want in zip(FEATURE_NAMES, fast, reference, strict=True):
        assert got == pytest.approx(want, rel=_RTOL, abs=_ATOL.get(name, 1e-12)), name


def test_handcrafted_features_of_silence_are_finite_and_zero_where_defined():
    features = handcrafted_features(np.zeros((2, N_3S), dtype=np.float32))
    assert features.shape == (2, 57) and np.isfinite(features).all()
    row = dict(zip(FEATURE_NAMES, features[0], strict=True))
    for name in ("chroma_stft_mean", "rms_mean", "spectral_centroid_mean", "rolloff_mean", "tempo", "harmony_var"):
        assert row[name] == 0.0, name
    assert row["mfcc1_mean"] == pytest.approx(-100.0 * np.sqrt(128), rel=1e-5)


def test_handcrafted_features_batched_equal_one_at_a_time():
    segments = np.stack([_music_like(N_3S, seed=s) for s in range(3)] + [np.zeros(N_3S, dtype=np.float32)])
    batched = handcrafted_features(segments)
    singles = np.stack([handcrafted_features(seg) for seg in segments])
    np.testing.assert_allclose(batched, singles, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(3, 50, 4), (2, 7, 3), (1, 1025, 130)])
@pytest.mark.parametrize("ties", [False, True])
def test_sliding_median_equals_scipy_ndimage_median_filter(shape, ties):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, shape) if ties else rng.standard_normal(shape)
    x = x.astype(np.float32)
    out = np.empty_like(x)
    _sliding_median(x, 31, out)
    np.testing.assert_array_equal(out, scipy.ndimage.median_filter(x, size=(1, 31, 1), mode="reflect"))
