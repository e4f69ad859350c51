"""The musicnn front end's rules (its numbers against the original are in tests/models/test_musicnn_parity.py):
frame count, patching, loop padding of short clips, the float16 step without numpy-2 overflow, chunking, errors."""

from __future__ import annotations

import numpy as np
import pytest

from spectrotune.audio import musicnn_frontend as fe
from spectrotune.audio.musicnn_frontend import (
    MusicnnFrontend,
    musicnn_input,
    musicnn_logmel,
    musicnn_patches,
    patch_start_seconds,
)
from spectrotune.errors import ConfigError, InputError


def _noise(n: int, *, scale: float = 0.3, seed: int = 0) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("n", [1, 100, 255, 256, 512, 16000, 160000])
def test_frame_count_and_dtype(n):
    logmel = musicnn_logmel(_noise(n))
    assert logmel.shape == (96, 1 + n // 256) and logmel.dtype == np.float32
    assert np.isfinite(logmel).all() and logmel.min() >= 0


@pytest.mark.parametrize("n_frames, patches", [(187, 1), (373, 1), (374, 2), (626, 3), (1000, 5)])
def test_patches_start_every_187_frames_and_drop_the_tail(n_frames, patches):
    logmel = np.random.default_rng(1).random((96, n_frames), dtype=np.float32)
    out, padded = musicnn_patches(logmel)
    assert out.shape == (patches, 96, 187) and not padded
    for p in range(patches):
        np.testing.assert_array_equal(out[p], logmel[:, 187 * p: 187 * p + 187])


@pytest.mark.parametrize("n_frames", [1, 2, 50, 186])
def test_short_logmel_is_loop_padded_to_one_patch(n_frames):
    logmel = np.random.default_rng(2).random((96, n_frames), dtype=np.float32)
    out, padded = musicnn_patches(logmel)
    assert padded and out.shape == (1, 96, 187)
    np.testing.assert_array_equal(out[0], logmel[:, np.arange(187) % n_frames])


def test_short_waveform_does_not_crash():
    """The original's batch_data() fails below 187 frames (~2.98 s); here a 1-s clip gives one looped patch."""
    patches, padded = musicnn_input(_noise(16000))
    assert padded and patches.shape == (1, 96, 187)
    patches, padded = musicnn_input(_noise(3))
    assert padded and patches.shape == (1, 96, 187)


def test_loud_audio_stays_finite_through_the_float16_step():
    """numpy 2 would compute 10000 * float16 in float16 and overflow above a mel power of 6.55 (quirk b)."""
    t = np.arange(48000) / 16000
    y = (0.99 * np.sign(np.sin(2 * np.pi * 220 * t))).astype(np.float32)  # a full-scale square wave
    logmel = musicnn_logmel(y)
    assert np.isfinite(logmel).all()
    assert logmel.max() > np.log10(10000 * 6.55 + 1)  # the loud bins really pass the float16 overflow point
    # The rule written out: log10(10000 * float32(float16(mel)) + 1) in float32.
    mel = 10 ** logmel.astype(np.float64)  # recover 10000 * mel16 + 1
    mel16 = ((mel - 1) / 10000).astype(np.float16)
    np.testing.assert_allclose(logmel, np.log10(10000 * mel16.astype(np.float32) + 1), atol=2e-6)


def test_chunked_fft_equals_one_pass(monkeypatch):
    y = _noise(16000 * 20, seed=3)
    whole = musicnn_logmel(y)
    monkeypatch.setattr(fe, "_CHUNK_FRAMES", 7)
    np.testing.assert_array_equal(musicnn_logmel(y), whole)


def test_reflect_padding_at_the_edges():
    """Frame 0 is centred on sample 0 with the signal mirrored before it (constant padding would differ)."""
    y = _noise(4000, seed=4)
    first = musicnn_logmel(y)[:, 0]
    mirrored = np.concatenate([y[1:257][::-1], y[:256]])  # what reflect padding puts in frame 0
    np.testing.assert_array_equal(first, musicnn_logmel(np.concatenate([mirrored, y[256:600]]))[:, 1])


@pytest.mark.parametrize("n", [512, 511, 2048])
def test_window_is_scipys_periodic_hann(n):
    import scipy.signal

    np.testing.assert_array_equal(fe.hann64(n), scipy.signal.get_window("hann", n, fftbins=True))


def test_start_seconds():
    np.testing.assert_allclose(patch_start_seconds(3), [0.0, 2.992, 5.984])
    assert MusicnnFrontend().patch_seconds == pytest.approx(2.992)


@pytest.mark.parametrize("bad, message", [
    (np.zeros(0, np.float32), "no samples"),
    (np.zeros((2, 100), np.float32), r"1-D \[n_samples\]"),
    (np.zeros(100, np.int16), "floating-point"),
    (np.array([0.0, np.nan] * 100, np.float32), "NaN or inf"),
])
def test_bad_waveforms(bad, message):
    with pytest.raises(InputError, match=message):
        musicnn_logmel(bad)


def test_bad_parameters():
    with pytest.raises(ConfigError, match="n_frames must be a positive integer"):
        MusicnnFrontend(n_frames=0)
    with pytest.raises(ConfigError, match="fmax"):
        MusicnnFrontend(fmax=9000.0)


def test_windows_each_alone_keep_the_frames_centred_inside():
    windows = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 187 * 256 + 100)).astype(np.float32)
    out = fe.musicnn_windows(windows)
    assert out.shape == (2, 96, 187) and out.dtype == np.float32
    np.testing.assert_array_equal(out[1], musicnn_logmel(windows[1])[:, :187])
    assert fe.musicnn_windows(np.zeros((0, 512), np.float32)).shape == (0, 96, 2)
    with pytest.raises(InputError, match=r"window >= 256 samples, got shape \(3, 100\)"):
        fe.musicnn_windows(np.zeros((3, 100), np.float32))
