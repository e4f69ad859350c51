"""Decode audio files to mono float32 and cut them into fixed-length segments.

This is the first step of ``prepare`` (run inside Ray tasks, one file at a time), of ``predict`` and of
``evaluate``'s robustness rebuild. It is pure numpy/soundfile/librosa and never imports Ray.

- Which files are audio is defined here, once: :data:`AUDIO_EXTENSIONS`, the union of
  :data:`SNDFILE_EXTENSIONS` (the formats the installed libsndfile reads, asked of soundfile at import:
  wav, flac, ogg/opus, mp3 with libsndfile >= 1.1, aiff, au, caf, ...) and :data:`DECODER_EXTENSIONS` (common
  formats libsndfile cannot read: m4a/aac, wma, webm, ape, ..., decoded by :mod:`~spectrotune.audio.ffmpeg`).
  Source listing, ``prepare``, ``predict FOLDER`` and evaluate's rebuild all pick files with :func:`is_audio_file`.
- :func:`decode` reads such a file, averages the channels to mono and resamples to the requested rate. Every way a
  file can be unusable (empty, not audio, truncated header, no frames, NaN/inf samples, too short, unreadable, a
  format that needs ffmpeg when none is installed) raises :class:`~spectrotune.errors.AudioDecodeError` with the
  message ``"<path>: <reason>"`` and the short reason also on ``exc.reason``, so the pipeline can record it and go
  on with the next file.
- :func:`segment` cuts a clip into ``[n_segments, win]`` windows; a clip shorter than one window fills it by
  repeating itself (``pad="repeat"``, loop padding) or with zeros (``pad="zeros"``, what datasets and bundles
  written before ``audio.pad`` existed used). :func:`is_silent` flags windows with no signal
  (:data:`NEAR_SILENCE_DB` is the floor ``predict`` flags a clip at); :func:`write_wav` writes 16-bit PCM for
  ``inspect --export-audio``.

Example
-------
>>> y = decode("blues.00000.wav", sr=22050)          # float32 [661794]
>>> segs, padded = segment(y, sr=22050, seconds=3.0)  # float32 [10, 66150], False
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from spectrotune.audio import ffmpeg
from spectrotune.errors import AudioDecodeError, ConfigError

__all__ = ["AUDIO_EXTENSIONS", "DECODER_EXTENSIONS", "NEAR_SILENCE_DB", "PAD_MODES", "SNDFILE_EXTENSIONS", "decode",
           "decoder_for", "is_audio_file", "is_silent", "segment", "to_mono", "write_wav"]

# libsndfile major format (soundfile.available_formats() keys) -> the extensions its files are named with.
# libsndfile reports one extension per format itself, and not the usual one for two of them ("m1a" for mp3,
# "oga" for ogg), so the names are listed here. Formats it reads that are not sound recordings are left out
# (RAW has no header to decode it by; MAT4/MAT5, HTK, XI, SDS, MPC2K, PVF, WVE, SVX are matrices, features,
# instruments or niche formats whose extensions mean other things in a music folder).
_SNDFILE_FORMAT_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "WAV": (".wav",), "WAVEX": (".wav",), "RF64": (".rf64",), "W64": (".w64",),
    "AIFF": (".aiff", ".aif", ".aifc"), "AU": (".au", ".snd"), "FLAC": (".flac",),
    "OGG": (".ogg", ".oga"), "MP3": (".mp3",), "CAF": (".caf",), "VOC": (".voc",), "IRCAM": (".sf",),
    "NIST": (".sph",), "AVR": (".avr",), "PAF": (".paf",), "SD2": (".sd2",),
}  # fmt: skip
# Extensions that need a codec of a format, not only the container: Opus in Ogg (libsndfile >= 1.0.29).
_SNDFILE_CODEC_EXTENSIONS: dict[str, tuple[str, str]] = {".opus": ("OGG", "OPUS")}
# Common audio formats libsndfile cannot read at all: decoded by ffmpeg when it is installed.
_FFMPEG_ONLY_EXTENSIONS: tuple[str, ...] = (
    ".m4a", ".m4b", ".mp4", ".aac", ".alac", ".wma", ".asf", ".webm", ".weba", ".mka", ".ape", ".wv", ".tta",
    ".ac3", ".eac3", ".amr", ".3gp", ".mpc", ".spx",
)  # fmt: skip


def _extensions() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(read by libsndfile here, read through ffmpeg)``: a format this libsndfile lacks (mp3 before 1.1, Opus
    before 1.0.29) moves to ffmpeg."""
    formats = sf.available_formats()
    native: list[str] = []
    other: list[str] = []
    for fmt, extensions in _SNDFILE_FORMAT_EXTENSIONS.items():
        (native if fmt in formats else other).extend(extensions)
    for ext, (fmt, codec) in _SNDFILE_CODEC_EXTENSIONS.items():
        readable = fmt in formats and codec in sf.available_subtypes(fmt)
        (native if readable else other).append(ext)
    native = list(dict.fromkeys(native))
    other = [e for e in dict.fromkeys([*other, *_FFMPEG_ONLY_EXTENSIONS]) if e not in native]
    return tuple(native), tuple(other)


#: Lower-case extensions the installed libsndfile reads (asked of soundfile at import; matching ignores case).
SNDFILE_EXTENSIONS: tuple[str, ...]
#: Lower-case extensions of audio formats libsndfile here cannot read: decoded by ``ffmpeg`` on ``PATH``, else the
#: file fails with the reason and the fix ("install ffmpeg to read .m4a").
DECODER_EXTENSIONS: tuple[str, ...]
SNDFILE_EXTENSIONS, DECODER_EXTENSIONS = _extensions()
#: Every extension spectrotune treats as audio: the one list source listing, prepare, predict and evaluate use.
AUDIO_EXTENSIONS: tuple[str, ...] = SNDFILE_EXTENSIONS + DECODER_EXTENSIONS

#: How a clip shorter than one window fills it (``audio.pad``): by repeating itself, or with zeros.
PAD_MODES: tuple[str, ...] = ("repeat", "zeros")
#: RMS level in dBFS below which ``predict`` calls a window nearly silent (about 1/1000 of full scale: digital
#: silence, a muted input, room tone), and flags a clip all of whose windows are, instead of naming a genre.
NEAR_SILENCE_DB = -60.0

# Rounding of 16-bit PCM to float that libsndfile itself uses; doing the scaling in numpy gives
# bit-identical samples about 6x faster than asking libsndfile for float32 (GTZAN is all PCM_16).
_PCM16_SCALE = np.float32(1.0 / 32768.0)


def is_audio_file(path: str | os.PathLike[str]) -> bool:
    """Return True when ``path`` has one of :data:`AUDIO_EXTENSIONS` (any letter case).

    Only the name is looked at; the file is not opened.
    """
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def decoder_for(path: str | os.PathLike[str]) -> str:
    """``"ffmpeg"`` for a file of :data:`DECODER_EXTENSIONS`, else ``"libsndfile"`` (which also tries files of
    any other name: it recognises formats by their content)."""
    return "ffmpeg" if Path(path).suffix.lower() in DECODER_EXTENSIONS else "libsndfile"


def _error(path: str, reason: str) -> AudioDecodeError:
    """Build the error the pipeline records: message ``"<path>: <reason>"``, ``.reason`` kept apart."""
    err = AudioDecodeError(f"{path}: {reason}")
    err.reason = reason  # type: ignore[attr-defined]  # read by the pipeline's errors table
    return err


def _os_reason(e: OSError) -> str:
    """Short text of an OS error without the file name (the message already starts with it)."""
    return e.strerror or type(e).__name__


def _too_short(name: str, frames: int, sr: int, min_seconds: float) -> None:
    if frames / sr < min_seconds:
        raise _error(name, f"too short: {frames / sr:.2f} s < minimum {min_seconds:.2f} s")


def _read_sndfile(name: str, source: str | io.BytesIO, min_seconds: float) -> tuple[np.ndarray, int]:
    """``(samples [frames, channels] int16 or float32, rate)`` of ``source`` through libsndfile."""
    try:
        with sf.SoundFile(source) as fh:
            file_sr = int(fh.samplerate)
            if fh.frames > 0 and not isinstance(source, io.BytesIO):
                # Checked from the header, before reading or resampling a file we would drop anyway.
                _too_short(name, fh.frames, file_sr, min_seconds)
            if fh.subtype == "PCM_16":
                data = fh.read(dtype="int16", always_2d=True)
            else:
                data = fh.read(dtype="float32", always_2d=True)
    except AudioDecodeError:
        raise
    except sf.LibsndfileError as e:
        if e.error_string.lower().startswith("system error"):
            # libsndfile hides the OS cause; opening the file ourselves names it (e.g. permission).
            try:
                with open(name, "rb"):
                    pass
            except OSError as os_err:
                raise _error(name, _os_reason(os_err)) from e
        raise _error(name, f"not a readable audio file: {e.error_string}") from e
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as e:
        raise _error(name, f"not a readable audio file: {e}") from e
    except OSError as e:
        raise _error(name, _os_reason(e)) from e
    return data, file_sr


def _read_ffmpeg(name: str, min_seconds: float) -> tuple[np.ndarray, int]:
    """``(float32 samples [frames, channels], rate)`` of a format libsndfile cannot read
    (:func:`spectrotune.audio.ffmpeg.decode_wav`, whose WAV libsndfile then parses)."""
    try:
        wav = ffmpeg.decode_wav(name)
    except ffmpeg.FfmpegError as e:
        raise _error(name, str(e)) from e
    return _read_sndfile(name, io.BytesIO(wav), min_seconds)


def decode(
    path: str | os.PathLike[str],
    *,
    sr: int = 22050,
    min_seconds: float = 1.0,
) -> np.ndarray:
    """Read an audio file as mono float32 samples at ``sr`` Hz.

    Parameters
    ----------
    path : str or os.PathLike
        Any file libsndfile reads (WAV 8/16/24/32-bit int or float, AU, FLAC, OGG Vorbis/Opus, MP3, AIFF, CAF,
        ...); a file of :data:`DECODER_EXTENSIONS` (m4a, aac, wma, ...) is decoded by ffmpeg (:func:`decoder_for`).
    sr : int, keyword-only
        Output sampling rate in Hz. A file at another rate is resampled with soxr ("soxr_hq");
        a file already at ``sr`` is returned without resampling.
    min_seconds : float, keyword-only
        Shortest accepted duration in seconds (measured at the file's own rate).

    Returns
    -------
    y : np.ndarray, float32, shape [n_samples]
        Mono signal (mean of the channels), nominally in [-1, 1], C-contiguous.

    Raises
    ------
    AudioDecodeError
        Message ``"<path>: <reason>"``, with ``reason`` also on the ``reason`` attribute, one of:
        ``empty file``; ``not a readable audio file: <libsndfile or ffmpeg message>`` (text file, corrupt or
        truncated header); ``no audio frames``; ``contains NaN or infinite samples``;
        ``too short: 0.40 s < minimum 1.00 s``; ``libsndfile cannot read .m4a files and ffmpeg is not installed:
        install ffmpeg (on PATH) to read .m4a``; an OS reason such as ``No such file or directory`` or
        ``Permission denied``. The underlying exception is chained.
    ConfigError
        ``sr`` or ``min_seconds`` is invalid.
    """
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ConfigError(f"sr must be a positive integer number of Hz, got {sr!r}")
    if not np.isfinite(min_seconds) or min_seconds < 0:
        raise ConfigError(f"min_seconds must be a finite number >= 0, got {min_seconds!r}")
    name = os.fspath(path)

    # stat first: libsndfile reports a missing or unreadable file only as "System error".
    try:
        st = os.stat(name)
    except OSError as e:
        raise _error(name, _os_reason(e)) from e
    if not os.path.isfile(name):
        raise _error(name, "not a regular file")
    if st.st_size == 0:
        raise _error(name, "empty file")

    if decoder_for(name) == "ffmpeg":
        data, file_sr = _read_ffmpeg(name, min_seconds)
    else:
        data, file_sr = _read_sndfile(name, name, min_seconds)

    if data.shape[0] == 0:
        raise _error(name, "no audio frames")
    # The header may claim more frames than the data holds (truncated file); judge what was read.
    _too_short(name, data.shape[0], file_sr, min_seconds)

    return to_mono(data, sr_in=file_sr, sr=sr, name=name)


def to_mono(data: np.ndarray, *, sr_in: int, sr: int, name: str = "<array>") -> np.ndarray:
    """Samples float32 or int16 (PCM, scaled by 1/32768) [n_frames, n_channels] at ``sr_in`` Hz as mono float32 at
    ``sr`` Hz: the mean of the channels, resampled with soxr ("soxr_hq") when the rates differ. What :func:`decode`
    does with a file's samples, so samples read elsewhere (``soundfile.read``) give the same signal.

    Raises :class:`~spectrotune.errors.AudioDecodeError` (``"<name>: contains NaN or infinite samples"``).
    """
    if data.dtype == np.int16:
        data = data * _PCM16_SCALE  # int16 * float32 scalar -> float32
    y = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    if not np.isfinite(y).all():
        raise _error(name, "contains NaN or infinite samples")

    if sr_in != sr:
        import librosa  # imported lazily: costs ~1 s and is not needed when the rate matches

        y = librosa.resample(np.asarray(y, dtype=np.float32), orig_sr=int(sr_in), target_sr=int(sr),
                             res_type="soxr_hq")
    return np.ascontiguousarray(y, dtype=np.float32)


def segment(
    y: np.ndarray,
    *,
    sr: int,
    seconds: float = 3.0,
    hop_seconds: float | None = None,
    pad: str = "repeat",
) -> tuple[np.ndarray, bool]:
    """Cut a mono signal into fixed-length windows.

    Windows of ``win = round(seconds * sr)`` samples start every ``hop = round(hop_seconds * sr)``
    samples (``hop_seconds`` defaults to ``seconds``: no overlap). A tail shorter than a window is
    dropped, so a 30.01-s clip gives ten 3-s segments. A clip shorter than one window becomes one
    window: the clip repeated end to end and cut at ``win`` (``pad="repeat"``, loop padding: a 2-s
    preview fills a 3-s window with music, as the model saw in training, not with a second of silence),
    or the clip followed by zeros (``pad="zeros"``).

    Parameters
    ----------
    y : np.ndarray, shape [n_samples]
        Mono signal (any float or int dtype; converted to float32).
    sr : int, keyword-only
        Sampling rate of ``y`` in Hz.
    seconds : float, keyword-only
        Window length in seconds.
    hop_seconds : float or None, keyword-only
        Distance between window starts in seconds; None means ``seconds``.
    pad : {"repeat", "zeros"}, keyword-only
        How a clip shorter than one window fills it (:data:`PAD_MODES`); an empty clip is all zeros either way.

    Returns
    -------
    segments : np.ndarray, float32, shape [n_segments, win]
        A fresh C-contiguous array (not a view of ``y``); ``n_segments >= 1``.
    padded : bool
        True when the clip was shorter than one window and was padded.

    Raises
    ------
    ConfigError
        ``seconds`` or ``hop_seconds`` is not positive, or rounds to zero samples; ``pad`` is not a mode.
    ValueError
        ``y`` is not 1-D or ``sr`` is not a positive integer.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D [n_samples], got shape {y.shape}")
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ValueError(f"sr must be a positive integer number of Hz, got {sr!r}")
    if not np.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"segment seconds must be > 0, got {seconds!r}")
    if hop_seconds is not None and (not np.isfinite(hop_seconds) or hop_seconds <= 0):
        raise ConfigError(f"segment hop_seconds must be > 0, got {hop_seconds!r}")
    if pad not in PAD_MODES:
        raise ConfigError(f"segment pad must be one of {', '.join(PAD_MODES)}, got {pad!r}")
    win = round(seconds * sr)
    hop = round((seconds if hop_seconds is None else hop_seconds) * sr)
    if win < 1 or hop < 1:
        raise ConfigError(
            f"segment seconds={seconds!r}, hop_seconds={hop_seconds!r} give fewer than one sample at sr={sr}"
        )

    y = np.asarray(y, dtype=np.float32)
    if y.shape[0] < win:
        out = np.zeros((1, win), dtype=np.float32)
        n = y.shape[0]
        if pad == "zeros" or n == 0:
            out[0, :n] = y
        else:
            out[0] = np.tile(y, -(-win // n))[:win]
        return out, True
    # A strided view costs nothing; copying the selected rows once gives an independent, writable
    # array (an explicit copy: with hop == win the view is already contiguous, and read-only).
    windows = np.lib.stride_tricks.sliding_window_view(y, win)[::hop]
    return windows.copy(order="C"), False


def is_silent(segments: np.ndarray, *, floor_db: float = -100.0) -> np.ndarray:
    """Flag segments whose RMS level is below ``floor_db`` dBFS.

    Parameters
    ----------
    segments : np.ndarray, shape [n_segments, win] (or [win] for one segment)
        Float samples with full scale 1.0.
    floor_db : float, keyword-only
        Threshold in dB relative to full scale (RMS 1.0 = 0 dBFS).

    Returns
    -------
    silent : np.ndarray, bool, shape [n_segments] (0-d for a 1-D input)
        True where ``20*log10(rms) < floor_db``; all-zero rows are silent.
    """
    x = np.asarray(segments)
    if x.ndim not in (1, 2) or x.shape[-1] == 0:
        raise ValueError(f"segments must be [n_segments, win] with win > 0, got shape {x.shape}")
    # Compare mean squares with the threshold's power instead of taking a log: zero rows need no care. One BLAS
    # dot product per row: 8x faster than squaring into a float64 copy, and -100 dBFS needs no more precision.
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)  # integer samples would overflow in the dot product
    rows = x.reshape(-1, x.shape[-1])
    mean_square = np.array([float(np.dot(r, r)) for r in rows], dtype=np.float64) / x.shape[-1]
    silent = mean_square < 10.0 ** (float(floor_db) / 10.0)
    return silent.reshape(x.shape[:-1])


def write_wav(path: str | os.PathLike[str], y: np.ndarray, *, sr: int) -> Path:
    """Write a mono signal as a 16-bit PCM WAV file.

    The signal is written as is when its peak is at most 1.0. When ``max|y| > 1`` (e.g. a segment
    mixed with loud noise) the whole signal is divided by its peak, so it is not clipped: levels
    of such an export are relative, not absolute. The file is written beside ``path`` and renamed
    into place, so an interrupted export leaves no half-written file under the final name.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; parent directories must exist.
    y : np.ndarray, shape [n_samples]
        Finite float samples, full scale 1.0.
    sr : int, keyword-only
        Sampling rate in Hz.

    Returns
    -------
    path : pathlib.Path
        The written file.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D [n_samples], got shape {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError("y contains NaN or infinite samples")
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ValueError(f"sr must be a positive integer number of Hz, got {sr!r}")
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > 1.0:
        y = y / peak
    out = Path(path)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        sf.write(tmp, y, int(sr), subtype="PCM_16", format="WAV")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
