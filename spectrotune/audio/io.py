"""Decode audio files to mono float32 and cut them into fixed-length segments.

This is the first step of ``prepare`` (run inside Ray tasks, one file at a time) and of ``predict``.
It is pure numpy/soundfile/librosa and never imports Ray.

- :func:`decode` reads any file libsndfile understands (:data:`AUDIO_EXTENSIONS`), averages the
  channels to mono and resamples to the requested rate. Every way a file can be unusable (empty,
  not audio, truncated header, no frames, NaN/inf samples, too short, unreadable) raises
  :class:`~spectrotune.errors.AudioDecodeError` with the message ``"<path>: <reason>"`` and the
  short reason also on ``exc.reason``, so the pipeline can record it and go on with the next file.
- :func:`segment` cuts a clip into ``[n_segments, win]`` windows; :func:`is_silent` flags
  windows with no signal; :func:`write_wav` writes 16-bit PCM for ``inspect --export-audio``.

Example
-------
>>> y = decode("blues.00000.wav", sr=22050)          # float32 [661794]
>>> segs, padded = segment(y, sr=22050, seconds=3.0)  # float32 [10, 66150], False
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from spectrotune.errors import AudioDecodeError, ConfigError

__all__ = [
    "AUDIO_EXTENSIONS",
    "decode",
    "is_audio_file",
    "is_silent",
    "segment",
    "write_wav",
]

#: Lower-case file extensions we accept; all are read by libsndfile (matching is case-insensitive).
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".au", ".snd", ".flac", ".ogg", ".aiff", ".aif")

# Rounding of 16-bit PCM to float that libsndfile itself uses; doing the scaling in numpy gives
# bit-identical samples about 6x faster than asking libsndfile for float32 (GTZAN is all PCM_16).
_PCM16_SCALE = np.float32(1.0 / 32768.0)


def is_audio_file(path: str | os.PathLike[str]) -> bool:
    """Return True when ``path`` has one of :data:`AUDIO_EXTENSIONS` (any letter case).

    Only the name is looked at; the file is not opened.
    """
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def _error(path: str, reason: str) -> AudioDecodeError:
    """Build the error the pipeline records: message ``"<path>: <reason>"``, ``.reason`` kept apart."""
    err = AudioDecodeError(f"{path}: {reason}")
    err.reason = reason  # type: ignore[attr-defined]  # read by the pipeline's errors table
    return err


def _os_reason(e: OSError) -> str:
    """Short text of an OS error without the file name (the message already starts with it)."""
    return e.strerror or type(e).__name__


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
        Any file libsndfile reads (WAV 8/16/24/32-bit int or float, AU, FLAC, OGG, AIFF, ...).
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
        ``empty file``; ``not a readable audio file: <libsndfile message>`` (text file, corrupt or
        truncated header); ``no audio frames``; ``contains NaN or infinite samples``;
        ``too short: 0.40 s < minimum 1.00 s``; an OS reason such as ``No such file or directory``
        or ``Permission denied``. The underlying exception is chained.
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

    try:
        with sf.SoundFile(name) as fh:
            file_sr = int(fh.samplerate)
            frames = fh.frames
            if frames > 0 and frames / file_sr < min_seconds:
                # Checked from the header, before reading or resampling a file we would drop anyway.
                raise _error(name, f"too short: {frames / file_sr:.2f} s < minimum {min_seconds:.2f} s")
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

    if data.shape[0] == 0:
        raise _error(name, "no audio frames")
    # The header may claim more frames than the data holds (truncated file); judge what was read.
    if data.shape[0] / file_sr < min_seconds:
        raise _error(name, f"too short: {data.shape[0] / file_sr:.2f} s < minimum {min_seconds:.2f} s")

    if data.dtype == np.int16:
        data = data * _PCM16_SCALE  # int16 * float32 scalar -> float32
    y = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    if not np.isfinite(y).all():
        raise _error(name, "contains NaN or infinite samples")

    if file_sr != sr:
        import librosa  # imported lazily: costs ~1 s and is not needed when the rate matches

        y = librosa.resample(y, orig_sr=file_sr, target_sr=int(sr), res_type="soxr_hq")
    return np.ascontiguousarray(y, dtype=np.float32)


def segment(
    y: np.ndarray,
    *,
    sr: int,
    seconds: float = 3.0,
    hop_seconds: float | None = None,
) -> tuple[np.ndarray, bool]:
    """Cut a mono signal into fixed-length windows.

    Windows of ``win = round(seconds * sr)`` samples start every ``hop = round(hop_seconds * sr)``
    samples (``hop_seconds`` defaults to ``seconds``: no overlap). A tail shorter than a window is
    dropped, so a 30.01-s clip gives ten 3-s segments. A clip shorter than one window is zero-padded
    at the end to one window.

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

    Returns
    -------
    segments : np.ndarray, float32, shape [n_segments, win]
        A fresh C-contiguous array (not a view of ``y``); ``n_segments >= 1``.
    padded : bool
        True when the clip was shorter than one window and was zero-padded.

    Raises
    ------
    ConfigError
        ``seconds`` or ``hop_seconds`` is not positive, or rounds to zero samples.
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
    win = round(seconds * sr)
    hop = round((seconds if hop_seconds is None else hop_seconds) * sr)
    if win < 1 or hop < 1:
        raise ConfigError(
            f"segment seconds={seconds!r}, hop_seconds={hop_seconds!r} give fewer than one sample at sr={sr}"
        )

    y = np.asarray(y, dtype=np.float32)
    if y.shape[0] < win:
        out = np.zeros((1, win), dtype=np.float32)
        out[0, : y.shape[0]] = y
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
