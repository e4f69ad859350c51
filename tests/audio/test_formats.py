"""Every audio format: the one extension list comes from what the installed libsndfile reads, each format soundfile
writes decodes (lossless ones to the very same samples), formats libsndfile cannot read go through ffmpeg, and
without ffmpeg they fail naming the fix; short clips are loop-padded, and nearly silent windows are flagged."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from spectrotune.audio import io as audio
from spectrotune.audio.logmel import log_mel
from spectrotune.errors import AudioDecodeError, ConfigError

SR = 22050
#: Formats the installed libsndfile writes, by file name: (format, subtype, rate it is written at).
LOSSLESS = {"a.wav": ("WAV", "PCM_16"), "a.flac": ("FLAC", "PCM_16"), "a.aiff": ("AIFF", "PCM_16"),
            "a.au": ("AU", "PCM_16"), "a.caf": ("CAF", "PCM_16"), "a.w64": ("W64", "PCM_16")}
LOSSY = {"a.ogg": ("OGG", "VORBIS", SR), "a.opus": ("OGG", "OPUS", 48000), "a.mp3": ("MP3", "MPEG_LAYER_III", SR)}
FFMPEG = shutil.which("ffmpeg")


def needs_ffmpeg(test):
    """The decoder path needs ffmpeg on PATH, which the README's test command installs: without it the test fails
    saying so (never skips). The no-decoder path is tested apart, with ffmpeg hidden from PATH."""
    def wrapped(*args, **kwargs):
        if FFMPEG is None:
            pytest.fail("ffmpeg is not on PATH: install it (apt-get install -y ffmpeg), as the README's test command does")
        return test(*args, **kwargs)

    return functools.wraps(test)(wrapped)


def stereo_int16(seconds: float, *, sr: int = SR) -> np.ndarray:
    """A two-tone stereo clip as int16 [n, 2]: integers, so every lossless writer stores the same samples."""
    t = np.arange(round(seconds * sr)) / sr
    y = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 660 * t + 1.0)], axis=1)
    return np.round(y * 32767).astype(np.int16)


def _same_spectrum(got: np.ndarray, reference: np.ndarray, *, sr: int) -> bool:
    """Mel power of the first second correlates (> 0.99): a lossy codec keeps the tones, whatever it does to phase,
    delay and the quiet bands (log-mel in dB would weigh the codec's noise floor as much as the music)."""
    a, b = (10 ** (log_mel(y[None, :sr], sr=sr).mean(axis=-1)[0] / 10) for y in (reference, got))
    return bool(np.corrcoef(a, b)[0, 1] > 0.99)


def write_m4a(path: Path, wav: Path) -> Path:
    """AAC in MP4 made by ffmpeg from ``wav``."""
    subprocess.run([FFMPEG, "-nostdin", "-y", "-loglevel", "error", "-i", str(wav), "-c:a", "aac", str(path)],
                   check=True)
    return path


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    for name, (fmt, subtype) in LOSSLESS.items():
        sf.write(root / name, stereo_int16(2.0), SR, format=fmt, subtype=subtype)
    for name, (fmt, subtype, rate) in LOSSY.items():
        # As float: libsndfile 1.2's mp3 encoder garbles interleaved int16 stereo (ffmpeg decodes the same noise).
        sf.write(root / name, stereo_int16(2.0, sr=rate) / 32768.0, rate, format=fmt, subtype=subtype)
    return root


def test_the_extension_list_is_what_this_libsndfile_reads():
    formats = sf.available_formats()
    assert ("MP3" in formats) == (".mp3" in audio.SNDFILE_EXTENSIONS)
    assert ("OPUS" in sf.available_subtypes("OGG")) == (".opus" in audio.SNDFILE_EXTENSIONS)
    for ext in (".wav", ".flac", ".ogg", ".aiff", ".aif", ".au", ".snd", ".caf"):
        assert ext in audio.SNDFILE_EXTENSIONS
    major, minor = (int(x) for x in sf.__libsndfile_version__.split(".")[:2])
    if (major, minor) >= (1, 1):  # mp3 support came with libsndfile 1.1
        assert ".mp3" in audio.SNDFILE_EXTENSIONS
    assert audio.AUDIO_EXTENSIONS == audio.SNDFILE_EXTENSIONS + audio.DECODER_EXTENSIONS
    assert not set(audio.SNDFILE_EXTENSIONS) & set(audio.DECODER_EXTENSIONS)
    assert {".m4a", ".aac", ".wma"} <= set(audio.DECODER_EXTENSIONS)
    assert len(set(audio.AUDIO_EXTENSIONS)) == len(audio.AUDIO_EXTENSIONS)


@pytest.mark.parametrize("name, expected", [("x.MP3", "libsndfile"), ("x.opus", "libsndfile"), ("x.M4A", "ffmpeg"),
                                            ("x.wma", "ffmpeg"), ("x.txt", "libsndfile"), ("noext", "libsndfile")])
def test_which_decoder_reads_a_file(name, expected):
    assert audio.decoder_for(name) == expected
    assert audio.is_audio_file(name) is (name not in ("x.txt", "noext"))


@pytest.mark.parametrize("name", sorted(LOSSLESS))
def test_lossless_formats_decode_to_the_same_samples_and_log_mel(written, name):
    reference = audio.decode(written / "a.wav", sr=SR)
    got = audio.decode(written / name, sr=SR)
    np.testing.assert_array_equal(got, reference)
    np.testing.assert_array_equal(log_mel(got[None, : SR]), log_mel(reference[None, : SR]))


@pytest.mark.parametrize("name", sorted(LOSSY))
def test_lossy_formats_decode_to_the_music(written, name):
    reference = audio.decode(written / "a.wav", sr=SR)
    got = audio.decode(written / name, sr=SR)
    assert got.dtype == np.float32 and abs(len(got) - len(reference)) < 0.1 * SR  # codec delay and padding aside
    assert _same_spectrum(got, reference, sr=SR)


@needs_ffmpeg
def test_a_format_libsndfile_cannot_read_is_decoded_by_ffmpeg(written, tmp_path):
    m4a = write_m4a(tmp_path / "song.m4a", written / "a.wav")
    with pytest.raises(sf.LibsndfileError):
        sf.read(m4a)  # what libsndfile alone makes of it
    got = audio.decode(m4a, sr=16000)
    reference = audio.decode(written / "a.wav", sr=16000)
    assert got.dtype == np.float32 and abs(len(got) - len(reference)) < 0.1 * 16000
    assert _same_spectrum(got, reference, sr=16000)


@needs_ffmpeg
def test_ffmpeg_gets_the_file_name_as_a_file_never_as_an_option_or_protocol(written, tmp_path):
    m4a = write_m4a(tmp_path / "song.m4a", written / "a.wav")
    for odd in ("-y.m4a", "concat:x.m4a", "http:x.m4a"):
        shutil.copy(m4a, tmp_path / odd)
        np.testing.assert_array_equal(audio.decode(tmp_path / odd, sr=SR), audio.decode(m4a, sr=SR))


@needs_ffmpeg
def test_a_broken_file_for_ffmpeg_names_ffmpegs_reason(tmp_path):
    bad = tmp_path / "bad.m4a"
    bad.write_text("not audio at all\n" * 20)
    with pytest.raises(AudioDecodeError, match="not a readable audio file: ffmpeg: ") as e:
        audio.decode(bad)
    assert e.value.reason.startswith("not a readable audio file: ffmpeg")


def test_without_ffmpeg_the_file_fails_naming_the_fix(tmp_path, monkeypatch):
    m4a = tmp_path / "song.m4a"
    m4a.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(200))
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools-here"))
    assert shutil.which("ffmpeg") is None
    with pytest.raises(AudioDecodeError) as e:
        audio.decode(m4a)
    assert e.value.reason == ("libsndfile cannot read .m4a files and ffmpeg is not installed: install ffmpeg (on PATH) "
                              "to read .m4a")
    assert str(e.value) == f"{m4a}: {e.value.reason}"


@pytest.mark.parametrize("n, win", [(5, 12), (4, 12), (7, 8), (1, 5)])
def test_a_short_clip_fills_its_window_by_repeating(n, win):
    y = np.arange(1, n + 1, dtype=np.float32)
    segs, padded = audio.segment(y, sr=win, seconds=1.0)
    assert padded and segs.shape == (1, win)
    np.testing.assert_array_equal(segs[0], np.tile(y, win)[:win])
    zeros, padded = audio.segment(y, sr=win, seconds=1.0, pad="zeros")
    assert padded and zeros[0, :n].tolist() == y.tolist() and not zeros[0, n:].any()


def test_padding_leaves_long_clips_alone_and_refuses_unknown_modes():
    y = np.random.default_rng(0).standard_normal(30).astype(np.float32)
    a, pa = audio.segment(y, sr=10, seconds=1.0, pad="repeat")
    b, pb = audio.segment(y, sr=10, seconds=1.0, pad="zeros")
    assert not pa and not pb and np.array_equal(a, b) and a.shape == (3, 10)
    empty, padded = audio.segment(np.zeros(0, np.float32), sr=10, seconds=1.0)
    assert padded and not empty.any()
    with pytest.raises(ConfigError, match="pad must be one of repeat, zeros, got 'mirror'"):
        audio.segment(y, sr=10, seconds=1.0, pad="mirror")
    assert audio.PAD_MODES == ("repeat", "zeros")


def test_the_near_silence_floor():
    win = 2000
    level = lambda db: np.full(win, 10 ** (db / 20), np.float32)  # noqa: E731 - RMS of a constant is its value
    rows = np.stack([np.zeros(win, np.float32), level(-80.0), level(-61.0), level(-59.0), level(-20.0)])
    assert audio.NEAR_SILENCE_DB == -60.0
    assert audio.is_silent(rows, floor_db=audio.NEAR_SILENCE_DB).tolist() == [True, True, True, False, False]
