"""librosa reference versions of the fast audio features, for tests and bench only (not part of the package).

:func:`log_mel_librosa` is the reference of :func:`spectrotune.audio.logmel.log_mel` and
:func:`handcrafted_features_librosa` that of :func:`spectrotune.audio.handcrafted.handcrafted_features`: the same
contracts (parameters, shapes, dtypes, errors), computed by calling librosa one segment at a time, the way
Kaggle's GTZAN ``features_3_sec.csv`` was made. Several (log-mel) to ~30 (features) times slower.

Tests import it as ``import librosa_reference`` (tests/conftest.py puts tests/ on ``sys.path``); bench/features.py
adds the repository's tests/ folder to ``sys.path`` itself.
"""

from __future__ import annotations

import warnings

import librosa
import numpy as np

from spectrotune.audio.handcrafted import N_MFCC
from spectrotune.audio.logmel import (
    AMIN,
    HOP_LENGTH,
    N_FFT,
    N_MELS,
    SR,
    TOP_DB,
    as_segments,
    check_finite,
    check_spectrogram_params,
    n_frames,
)
from spectrotune.schema import FEATURE_NAMES


def log_mel_librosa(
    segments: np.ndarray,
    *,
    sr: float = SR,
    n_fft: int = N_FFT,
    hop_length: int = HOP_LENGTH,
    n_mels: int = N_MELS,
    fmin: float = 0.0,
    fmax: float | None = None,
    top_db: float | None = TOP_DB,
) -> np.ndarray:
    """Reference log-mel: librosa, one segment at a time. Same contract as ``logmel.log_mel``, several times slower.

    Parameters and returns as in :func:`spectrotune.audio.logmel.log_mel`: segments [n_seg, n_samples] or
    [n_samples] at ``sr`` Hz -> float32 dB [n_seg, n_mels, n_frames] or [n_mels, n_frames].
    """
    check_spectrogram_params(
        sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, fmin=fmin, fmax=fmax, top_db=top_db
    )
    y, squeeze = as_segments(segments)
    check_finite(y, 0)
    mels = [
        librosa.power_to_db(
            librosa.feature.melspectrogram(
                y=seg, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, fmin=fmin, fmax=fmax,
                center=True, pad_mode="constant", power=2.0, window="hann",
            ),
            ref=1.0, amin=AMIN, top_db=top_db,
        )
        for seg in y
    ]  # fmt: skip
    if not mels:
        return np.empty((0, n_mels, n_frames(y.shape[1], hop_length=hop_length)), dtype=np.float32)
    out = np.stack(mels).astype(np.float32, copy=False)
    return out[0] if squeeze else out


def handcrafted_features_librosa(segments: np.ndarray, *, sr: float = SR) -> np.ndarray:
    """Reference for ``handcrafted_features``: librosa's standalone functions, one segment at a time.

    This is how the Kaggle CSV was made (each function computes its own STFT; HPSS with ``scipy.ndimage``
    median filters), about 30x slower. Parameters and returns as in
    :func:`spectrotune.audio.handcrafted.handcrafted_features` (segments [n_seg, n_samples] or [n_samples] ->
    float32 [n_seg, 57] or [57]); librosa's warnings on silence ("empty frequency set") are silenced.
    """
    check_spectrogram_params(
        sr=sr, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS, fmin=0.0, fmax=None, top_db=TOP_DB
    )
    y, squeeze = as_segments(segments)
    check_finite(y, 0)
    out = np.empty((y.shape[0], len(FEATURE_NAMES)), dtype=np.float32)
    for i, seg in enumerate(y):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            columns: list[float] = []
            for frames in (
                librosa.feature.chroma_stft(y=seg, sr=sr),
                librosa.feature.rms(y=seg),
                librosa.feature.spectral_centroid(y=seg, sr=sr),
                librosa.feature.spectral_bandwidth(y=seg, sr=sr),
                librosa.feature.spectral_rolloff(y=seg, sr=sr),
                librosa.feature.zero_crossing_rate(seg),
            ):
                columns += [frames.mean(), frames.var()]
            harmonic, percussive = librosa.effects.hpss(seg)
            columns += [harmonic.mean(), harmonic.var(), percussive.mean(), percussive.var()]
            tempo, _ = librosa.beat.beat_track(y=seg, sr=sr)
            columns.append(float(np.atleast_1d(tempo)[0]))
            for row in librosa.feature.mfcc(y=seg, sr=sr, n_mfcc=N_MFCC):
                columns += [row.mean(), row.var()]
        out[i] = columns
    return out[0] if squeeze else out
