"""Tests of spectrotune.audio.logmel: the fast log-mel agrees with librosa; bad input and parameters fail clearly."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
from librosa_reference import log_mel_librosa

from spectrotune.audio.handcrafted import handcrafted_features
from spectrotune.audio.logmel import log_mel, mel_filterbank, n_frames
from spectrotune.errors import ConfigError, InputError

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
@pytest.mark.parametrize("function", [log_mel, handcrafted_features])  # both share logmel's input checks
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
