"""Tests for spectrotune.audio.io: decoding every accepted format, every failure reason, segmenting."""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile as sf

from spectrotune.audio.io import (
    AUDIO_EXTENSIONS,
    decode,
    is_audio_file,
    is_silent,
    segment,
    write_wav,
)
from spectrotune.errors import AudioDecodeError, ConfigError, InputError

SR = 22050


def tone(seconds: float, *, sr: int = SR, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    """A 0.5-amplitude sine, [n] or [n, channels] float64."""
    t = np.arange(round(seconds * sr)) / sr
    y = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([y] * channels, axis=1) if channels > 1 else y


@pytest.mark.parametrize(
    ("name", "fmt", "subtype", "atol"),
    [
        ("a.wav", "WAV", "PCM_U8", 1 / 64),
        ("a.wav", "WAV", "PCM_16", 1e-4),
        ("a.wav", "WAV", "PCM_24", 1e-6),
        ("a.wav", "WAV", "FLOAT", 1e-7),
        ("a.au", "AU", "PCM_16", 1e-4),
        ("a.snd", "AU", "PCM_16", 1e-4),
        ("a.flac", "FLAC", "PCM_16", 1e-4),
        ("a.aiff", "AIFF", "PCM_16", 1e-4),
        ("a.aif", "AIFF", "PCM_24", 1e-6),
        ("A.WAV", "WAV", "PCM_16", 1e-4),
        ("blues.é音.wav", "WAV", "PCM_16", 1e-4),
    ],
)
def test_decode_reads_formats_as_mono_float32(tmp_path, name, fmt, subtype, atol):
    y = tone(1.5)
    path = tmp_path / name
    sf.write(path, y, SR, format=fmt, subtype=subtype)
    out = decode(path, sr=SR)
    assert out.dtype == np.float32 and out.ndim == 1 and out.flags.c_contiguous
    assert out.shape == y.shape
    np.testing.assert_allclose(out, y, atol=atol)


def test_decode_pcm16_fast_path_matches_libsndfile_float(tmp_path):
    y = np.random.default_rng(0).uniform(-1, 1, SR * 2)
    path = tmp_path / "n.wav"
    sf.write(path, y, SR, subtype="PCM_16")
    ref = sf.read(path, dtype="float32")[0]
    assert np.array_equal(decode(path, sr=SR), ref)


def test_decode_ogg(tmp_path):
    path = tmp_path / "a.ogg"
    sf.write(path, tone(1.5), SR, format="OGG", subtype="VORBIS")
    out = decode(path, sr=SR)
    assert out.dtype == np.float32 and abs(out.shape[0] - round(1.5 * SR)) < 2048


def test_decode_stereo_44k_is_mixed_to_mono_and_resampled(tmp_path):
    left = tone(2.0, sr=44100, freq=440.0)
    right = tone(2.0, sr=44100, freq=880.0)
    path = tmp_path / "s.wav"
    sf.write(path, np.stack([left, right], axis=1), 44100, subtype="PCM_16")
    out = decode(path, sr=SR)
    assert out.dtype == np.float32 and out.shape == (2 * SR,)
    expected = (tone(2.0, freq=440.0) + tone(2.0, freq=880.0)) / 2
    core = slice(1000, -1000)  # resampler edge effects aside
    np.testing.assert_allclose(out[core], expected[core], atol=2e-3)


def test_decode_same_rate_is_not_resampled(tmp_path, monkeypatch):
    import librosa

    def boom(*args, **kwargs):
        raise AssertionError("resample called although rates match")

    monkeypatch.setattr(librosa, "resample", boom)
    path = tmp_path / "a.wav"
    sf.write(path, tone(1.2), SR, subtype="PCM_16")
    assert decode(path, sr=SR).shape == (round(1.2 * SR),)


def make_bad(tmp_path, kind: str):
    good = tmp_path / "good.wav"
    sf.write(good, tone(2.0), SR, subtype="PCM_16")
    path = tmp_path / f"{kind}.wav"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not audio at all, just text\n" * 10)
    elif kind == "not_riff":  # like GTZAN's jazz.00054.wav: bytes of something else
        path.write_bytes(b"\x00\x01\x02\x03" * 5000)
    elif kind == "truncated_header":
        path.write_bytes(good.read_bytes()[:20])
    elif kind == "zero_frames":
        sf.write(path, np.zeros(0), SR, subtype="PCM_16")
    elif kind == "nan":
        y = tone(2.0)
        y[100] = np.nan
        sf.write(path, y, SR, subtype="FLOAT")
    elif kind == "inf":
        y = tone(2.0)
        y[5] = np.inf
        sf.write(path, y, SR, subtype="FLOAT")
    elif kind == "short":
        sf.write(path, tone(0.4), SR, subtype="PCM_16")
    elif kind == "missing":
        pass
    elif kind == "directory":
        path.mkdir()
    return path


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("empty", "empty file"),
        ("text", "not a readable audio file: "),
        ("not_riff", "not a readable audio file: "),
        ("truncated_header", "not a readable audio file: "),
        ("zero_frames", "no audio frames"),
        ("nan", "contains NaN or infinite samples"),
        ("inf", "contains NaN or infinite samples"),
        ("short", "too short: 0.40 s < minimum 1.00 s"),
        ("missing", "No such file or directory"),
        ("directory", "not a regular file"),
    ],
)
def test_decode_failures_raise_audio_decode_error_with_path_and_reason(tmp_path, kind, reason):
    path = make_bad(tmp_path, kind)
    with pytest.raises(AudioDecodeError) as info:
        decode(path, sr=SR, min_seconds=1.0)
    err = info.value
    assert isinstance(err, InputError)
    assert str(err).startswith(f"{path}: ")
    assert err.reason.startswith(reason)
    assert str(err) == f"{path}: {err.reason}"
    assert len(err.reason) < 120


@pytest.mark.parametrize("kind", ["text", "truncated_header"])
def test_decode_chains_the_soundfile_error(tmp_path, kind):
    with pytest.raises(AudioDecodeError) as info:
        decode(make_bad(tmp_path, kind), sr=SR)
    assert isinstance(info.value.__cause__, sf.LibsndfileError)


def test_decode_unreadable_file_names_os_cause(tmp_path, monkeypatch):
    # Root can read a chmod-000 file, so simulate libsndfile's opaque "System error" + a failing open.
    import builtins

    import spectrotune.audio.io as audio

    path = tmp_path / "locked.wav"
    sf.write(path, tone(2.0), SR, subtype="PCM_16")

    def system_error(*args, **kwargs):
        raise sf.LibsndfileError(2, prefix=f"Error opening {str(path)!r}: ")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(audio.sf, "SoundFile", system_error)
    monkeypatch.setattr(builtins, "open", denied)
    with pytest.raises(AudioDecodeError) as info:
        decode(path, sr=SR)
    assert info.value.reason == "Permission denied"


def test_decode_min_seconds_zero_accepts_short_clip(tmp_path):
    path = make_bad(tmp_path, "short")
    assert decode(path, sr=SR, min_seconds=0.0).shape == (round(0.4 * SR),)


@pytest.mark.parametrize(("sr", "min_seconds"), [(0, 1.0), (-1, 1.0), (22050.5, 1.0), (SR, -1.0), (SR, float("nan"))])
def test_decode_rejects_bad_parameters(tmp_path, sr, min_seconds):
    with pytest.raises(ConfigError):
        decode(tmp_path / "x.wav", sr=sr, min_seconds=min_seconds)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.wav", True), ("A.WAV", True), ("b.Au", True), ("c.flac", True), ("d.aif", True),
     ("e.snd", True), ("f.ogg", True), ("g.aiff", True), ("h.mp3", True), ("i.png", False),
     ("wav", False), ("notes.wav.txt", False)],
)
def test_is_audio_file_matches_extension_case_insensitively(name, expected):
    assert is_audio_file(name) is expected


def test_audio_extensions_are_lower_case_with_dot():
    assert all(e.startswith(".") and e == e.lower() for e in AUDIO_EXTENSIONS)


@pytest.mark.parametrize(
    ("n", "seconds", "hop_seconds", "expected_rows", "padded"),
    [
        (661794, 3.0, None, 10, False),  # a GTZAN clip: 30.01 s -> ten 3-s segments, tail dropped
        (66150, 3.0, None, 1, False),  # exactly one window
        (66149, 3.0, None, 1, True),  # one sample short -> padded
        (1000, 3.0, None, 1, True),
        (SR * 10, 3.0, 1.5, 5, False),  # 50% overlap: starts at 0, 1.5, 3, 4.5, 6 s
        (SR * 4, 1.0, 0.5, 7, False),
    ],
)
def test_segment_counts_and_padding(n, seconds, hop_seconds, expected_rows, padded):
    y = np.random.default_rng(1).standard_normal(n).astype(np.float32)
    segs, was_padded = segment(y, sr=SR, seconds=seconds, hop_seconds=hop_seconds, pad="zeros")
    win = round(seconds * SR)
    assert segs.shape == (expected_rows, win) and segs.dtype == np.float32
    assert segs.flags.c_contiguous and was_padded is padded
    hop = round((hop_seconds or seconds) * SR)
    if padded:
        np.testing.assert_array_equal(segs[0, :n], y)
        assert not segs[0, n:].any()
    else:
        for i in range(expected_rows):
            np.testing.assert_array_equal(segs[i], y[i * hop : i * hop + win])


def test_segment_returns_a_copy_not_a_view():
    y = np.ones(SR * 6, dtype=np.float32)
    segs, _ = segment(y, sr=SR)
    segs[0, 0] = 5.0
    assert y[0] == 1.0 and not np.shares_memory(segs, y)


@pytest.mark.parametrize(("seconds", "hop_seconds"), [(0.0, None), (-3.0, None), (3.0, 0.0), (3.0, -1.0), (1e-9, None)])
def test_segment_rejects_non_positive_lengths(seconds, hop_seconds):
    with pytest.raises(ConfigError):
        segment(np.zeros(SR), sr=SR, seconds=seconds, hop_seconds=hop_seconds)


def test_segment_rejects_non_1d_input():
    with pytest.raises(ValueError, match="1-D"):
        segment(np.zeros((2, SR)), sr=SR)


def test_is_silent_uses_rms_dbfs_floor():
    win = 1000
    rows = np.stack(
        [
            np.zeros(win),
            np.full(win, 10 ** (-110 / 20)),  # -110 dBFS
            np.full(win, 10 ** (-90 / 20)),  # -90 dBFS
            tone(win / SR)[:win],
        ]
    ).astype(np.float32)
    np.testing.assert_array_equal(is_silent(rows), [True, True, False, False])
    np.testing.assert_array_equal(is_silent(rows, floor_db=-80.0), [True, True, True, False])


def test_write_wav_round_trips_and_normalises_only_when_clipping(tmp_path):
    quiet = tone(1.0) * 0.5
    p = write_wav(tmp_path / "q.wav", quiet, sr=SR)
    back, sr = sf.read(p)
    assert sr == SR and sf.info(p).subtype == "PCM_16"
    np.testing.assert_allclose(back, quiet, atol=1e-4)

    loud = tone(1.0) * 6.0  # peak 3.0
    back, _ = sf.read(write_wav(tmp_path / "l.wav", loud, sr=SR))
    np.testing.assert_allclose(back, loud / 3.0, atol=1e-4)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["l.wav", "q.wav"]  # no temp files left


def test_decode_of_30s_clip_is_fast(tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, np.random.default_rng(0).uniform(-0.5, 0.5, 661794), SR, subtype="PCM_16")
    decode(path, sr=SR)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        decode(path, sr=SR)
        times.append(time.perf_counter() - t0)
    assert min(times) < 0.05  # measured ~0.4 ms; generous bound for a loaded 2-core machine
