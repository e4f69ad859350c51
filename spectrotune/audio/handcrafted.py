"""The classical baselines' input: the 57 handcrafted features of Kaggle's GTZAN ``features_3_sec.csv`` per segment.

``prepare`` computes them for every clean 3-s segment (the random-forest / SVM / kNN baselines read them from
the dataset's ``features`` column, in :data:`spectrotune.schema.FEATURE_NAMES` order). :func:`handcrafted_features`
computes one STFT per segment (:func:`spectrotune.audio.logmel.stft`) and derives every feature from it: chroma
with librosa's tuning estimate, RMS, spectral centroid / bandwidth / roll-off, zero-crossing rate, HPSS harmonic /
percussive energy, tempo, 20 MFCCs, matching librosa's standalone functions with their defaults (the reference,
``handcrafted_features_librosa``, lives in ``tests/librosa_reference.py``) about 30x faster. The HPSS median
filters, librosa's cost centre (~130 ms per segment with ``scipy.ndimage``), run as a vectorised sliding-window
median compiled with numba (:mod:`spectrotune.audio._kernels`), bit-identical to ``scipy.ndimage.median_filter``.

The numba kernels compile on first use (~8 s) and are then cached on disk; :func:`warm_up` compiles them once in
a parent process before parallel workers start. Everything is numpy / scipy / numba; nothing here imports ``ray``
or changes thread pools, and large work arrays are reused per thread (:func:`spectrotune.audio.logmel.scratch`).

Examples
--------
>>> import numpy as np
>>> from spectrotune.audio.handcrafted import handcrafted_features
>>> segments = np.random.default_rng(0).standard_normal((10, 66150)).astype(np.float32) * 0.1
>>> handcrafted_features(segments).shape   # [n_seg, 57]
(10, 57)
"""

from __future__ import annotations

import functools

import librosa
import numpy as np
import scipy.fft

from spectrotune.audio import logmel
from spectrotune.audio._kernels import apply_soft_mask, pitch_peaks, sliding_median, spectral_shape
from spectrotune.audio.logmel import HOP_LENGTH, N_FFT, N_MELS, SR, TOP_DB, n_frames
from spectrotune.schema import FEATURE_NAMES

N_MFCC = 20  # MFCC coefficients, each giving a mean and a variance column
_HPSS_KERNEL = 31  # librosa.effects.hpss default kernel_size
_ROLL_PERCENT = 0.85  # librosa.feature.spectral_rolloff default
_ZCR_THRESHOLD = 1e-10  # librosa.zero_crossings default: |x| <= threshold counts as zero
_TUNING_FMIN, _TUNING_FMAX = 150.0, 4000.0  # librosa.piptrack defaults, used by estimate_tuning
_TEMPO_AC_SIZE = 8.0  # seconds of onset autocorrelation in librosa.feature.tempo
_TEMPO_START_BPM, _TEMPO_STD_BPM, _TEMPO_MAX = 120.0, 1.0, 320.0


def warm_up(*, sr: float = SR) -> None:
    """Compile (or load from numba's on-disk cache) every numba kernel :func:`handcrafted_features` uses.

    Call it once in a parent process before starting parallel workers: they then load the finished cache
    instead of compiling and writing the same cache files at the same time, which corrupted librosa's
    numba cache and crashed a later process with a segmentation fault.
    """
    n = int(round(3.0 * sr))
    t = np.arange(n, dtype=np.float64) / sr
    rng = np.random.default_rng(0)
    # A tone with clicks and noise: every code path (tuning, HPSS, beat tracking) sees real content.
    y = 0.3 * np.sin(2 * np.pi * 220.0 * t) * (np.sin(2 * np.pi * 2.0 * t) > 0) + 0.05 * rng.standard_normal(n)
    handcrafted_features(y.astype(np.float32)[None, :], sr=sr)


def handcrafted_features(segments: np.ndarray, *, sr: float = SR) -> np.ndarray:
    """The 57 features of Kaggle's GTZAN ``features_3_sec.csv`` per segment, in :data:`FEATURE_NAMES` order.

    Computed as that CSV was, with librosa's defaults (n_fft 2048, hop 512, ``center=True``): mean and
    variance over frames of ``chroma_stft`` (tuning estimated per segment), ``rms``, ``spectral_centroid``,
    ``spectral_bandwidth``, ``spectral_rolloff``, ``zero_crossing_rate``; mean and variance of the harmonic
    and percussive signals of ``librosa.effects.hpss``; the tempo of ``librosa.beat.beat_track`` (0 when the
    onset envelope is flat); mean and variance of 20 MFCCs. One STFT per segment feeds every spectral feature.
    The percussive signal is taken as the segment minus the harmonic one: librosa's two soft masks sum to one
    (margin 1) and ``istft(stft(y)) == y``, so this equals a second inverse STFT up to float32 rounding.

    Parameters
    ----------
    segments : np.ndarray [shape=(n_seg, n_samples) or (n_samples,), floating]
        Audio segments at ``sr`` Hz, nominally in [-1, 1].
    sr : float > 0
        Sampling rate in Hz.

    Returns
    -------
    np.ndarray [shape=(n_seg, 57) or (57,), dtype=float32]
        Finite for any finite input, silence included. Units: Hz for centroid / bandwidth / roll-off, BPM for
        tempo, crossings per sample for the zero-crossing rate, dB-derived for MFCCs, signal units otherwise.

    Raises
    ------
    InputError
        ``segments`` is not a 1-D/2-D floating array, is empty along time, or holds NaN / inf.
    ConfigError
        ``sr`` is not positive.
    """
    logmel.check_spectrogram_params(
        sr=sr, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS, fmin=0.0, fmax=None, top_db=TOP_DB
    )
    y, squeeze = logmel.as_segments(segments)
    out = np.empty((y.shape[0], len(FEATURE_NAMES)), dtype=np.float32)
    for s0, y_chunk in logmel.finite_chunks(y, hop_length=HOP_LENGTH):
        out[s0 : s0 + len(y_chunk)] = _features_chunk(y_chunk, float(sr))
    return out[0] if squeeze else out


# --------------------------------------------------------------------------------------------------------------
# One chunk of segments, one feature group per helper


def _features_chunk(y: np.ndarray, sr: float) -> np.ndarray:
    """All 57 features of a chunk of segments y [c, n] float32 -> [c, 57] float64."""
    c, n = y.shape
    T = n_frames(n, hop_length=HOP_LENGTH)
    spec = logmel.stft(y, n_fft=N_FFT, hop_length=HOP_LENGTH)  # [c*T, K] complex64
    mag = np.abs(spec, out=logmel.scratch("magnitude", spec.shape))
    power = np.square(mag, out=logmel.scratch("power", spec.shape))
    freqs = np.fft.rfftfreq(N_FFT, d=1.0 / sr)

    mel_db = np.empty((c, N_MELS, T), dtype=np.float32)
    bands = logmel.mel_bands(sr, N_FFT, N_MELS, 0.0, None)
    logmel.mel_db(power, bands, n_mels=N_MELS, top_db=TOP_DB, out=mel_db)

    # Per-frame features, then mean and variance over frames in one pass:
    # rows 0-4 = rms, centroid, bandwidth, roll-off, zero-crossing rate; rows 5-24 = MFCC 1-20.
    per_frame = np.empty((c, 5 + N_MFCC, T), dtype=np.float64)
    per_frame[:, 0] = _rms(y, T)
    for row, values in enumerate(_centroid_bandwidth_rolloff(mag, freqs), start=1):
        per_frame[:, row] = values.reshape(c, T)
    per_frame[:, 4] = _zero_crossing_rate(y, T)
    np.matmul(_dct_matrix(N_MELS, N_MFCC), mel_db, out=per_frame[:, 5:])

    chroma = _chroma(power.reshape(c, T, -1), sr).reshape(c, -1).astype(np.float64)
    harmonic = _harmonic(spec, mag, c, T, n).astype(np.float64)
    percussive = y.astype(np.float64) - harmonic

    out = np.empty((c, len(FEATURE_NAMES)), dtype=np.float64)
    out[:, 0], out[:, 1] = chroma.mean(axis=1), chroma.var(axis=1)
    means, variances = per_frame.mean(axis=2), per_frame.var(axis=2)
    out[:, 2:12:2], out[:, 3:12:2] = means[:, :5], variances[:, :5]
    out[:, 12], out[:, 13] = harmonic.mean(axis=1), harmonic.var(axis=1)
    out[:, 14], out[:, 15] = percussive.mean(axis=1), percussive.var(axis=1)
    out[:, 16] = _tempo(mel_db, sr)
    out[:, 17::2], out[:, 18::2] = means[:, 5:], variances[:, 5:]
    return out


def _rms(y: np.ndarray, T: int) -> np.ndarray:
    """librosa.feature.rms(y): root mean square of zero-padded 2048-sample frames -> [c, T] float64.

    Frames are four consecutive 512-sample blocks, so one pass of block energies serves every frame.
    """
    c, n = y.shape
    blocks_per_frame = N_FFT // HOP_LENGTH
    n_blocks = T + blocks_per_frame - 1
    padded = np.zeros((c, n_blocks * HOP_LENGTH), dtype=np.float64)
    pad = N_FFT // 2
    stop = min(n, n_blocks * HOP_LENGTH - pad)
    padded[:, pad : pad + stop] = y[:, :stop]
    energy = np.square(padded).reshape(c, n_blocks, HOP_LENGTH).sum(axis=-1)
    frame_energy = sum(energy[:, j : j + T] for j in range(blocks_per_frame))
    return np.sqrt(frame_energy / N_FFT)


def _zero_crossing_rate(y: np.ndarray, T: int) -> np.ndarray:
    """librosa.feature.zero_crossing_rate(y): crossings per sample in edge-padded 2048-sample frames -> [c, T].

    A crossing at sample j is a sign change between j - 1 and j, counted when both lie in the frame (librosa
    passes ``pad=False``, so the frame's first sample never counts); magnitudes <= 1e-10 count as positive
    zero. Frames are four 512-sample blocks, so per-block counts serve every frame.
    """
    c = y.shape[0]
    pad = N_FFT // 2
    padded = np.pad(y, ((0, 0), (pad, pad)), mode="edge")
    negative = padded < -_ZCR_THRESHOLD
    crossing = np.empty_like(negative)
    crossing[:, 0] = False
    np.not_equal(negative[:, 1:], negative[:, :-1], out=crossing[:, 1:])
    blocks_per_frame = N_FFT // HOP_LENGTH
    n_blocks = T + blocks_per_frame - 1
    blocks = crossing[:, : n_blocks * HOP_LENGTH].reshape(c, n_blocks, HOP_LENGTH).sum(axis=-1, dtype=np.int32)
    counts = sum(blocks[:, j : j + T] for j in range(blocks_per_frame)) - crossing[:, : T * HOP_LENGTH : HOP_LENGTH]
    return counts / N_FFT


def _centroid_bandwidth_rolloff(mag: np.ndarray, freqs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """spectral_centroid, spectral_bandwidth (p=2, norm=True) and spectral_rolloff (0.85) of mag [c*T, K].

    Centroid and bandwidth come from each frame's first three magnitude moments (float64). Frames whose
    magnitude sum is below float32's tiny stay unnormalised, as in librosa.util.normalize, which makes silent
    frames 0 Hz. The roll-off is the first bin whose float32 running sum reaches 85% of the total, summed in
    the same order as librosa's ``np.cumsum``.

    Returns
    -------
    centroid, bandwidth, rolloff : np.ndarray [shape=(c*T,), dtype=float64], Hz
    """
    shape = np.empty((mag.shape[0], 4), dtype=np.float64)
    spectral_shape(mag, freqs, _ROLL_PERCENT, shape)
    m0, m1, m2, rolloff = shape.T
    length = np.where(m0 < np.finfo(np.float32).tiny, 1.0, m0)
    centroid = m1 / length
    spread = (m2 - 2.0 * centroid * m1 + centroid**2 * m0) / length
    return centroid, np.sqrt(np.maximum(spread, 0.0)), rolloff


def _chroma(power: np.ndarray, sr: float) -> np.ndarray:
    """chroma_stft(S=power) with librosa's per-segment tuning estimate; power [c, T, K] -> chroma [c, 12, T]."""
    tunings = _estimate_tuning(power, sr)
    out = np.empty((power.shape[0], 12, power.shape[1]), dtype=np.float32)
    for i, tuning in enumerate(tunings):
        raw = _chroma_filterbank(sr, tuning) @ power[i].T  # [12, T]
        length = raw.max(axis=0).astype(np.float64)
        length[length < np.finfo(np.float32).tiny] = 1.0
        out[i] = raw / length
    return out


@functools.lru_cache(maxsize=256)
def _chroma_filterbank(sr: float, tuning: float) -> np.ndarray:
    """librosa.filters.chroma for n_fft 2048 and a tuning offset (a multiple of 0.01 bin: 100 values at most)."""
    fb = librosa.filters.chroma(sr=sr, n_fft=N_FFT, tuning=tuning, n_chroma=12).astype(np.float32)
    fb.flags.writeable = False
    return fb


def _estimate_tuning(power: np.ndarray, sr: float) -> list[float]:
    """librosa.estimate_tuning(S=power, sr=sr) per segment of power [c, T, K] (piptrack, then pitch_tuning).

    piptrack keeps the parabolic peak of each local maximum above 0.1 x the frame maximum between 150 and
    4000 Hz; the tuning is the histogram mode (0.01-bin resolution) of the deviation from equal temperament
    of the peaks at or above the median peak magnitude. 0.0 when a segment has no peak (librosa warns).
    """
    freqs = np.fft.rfftfreq(N_FFT, d=1.0 / sr)
    in_band = np.flatnonzero((freqs >= _TUNING_FMIN) & (freqs < min(_TUNING_FMAX, sr / 2.0)))
    if in_band.size == 0:
        return [0.0] * power.shape[0]
    k0, k1 = int(in_band[0]), int(in_band[-1]) + 1  # k0 >= 1 and k1 <= K - 1: both neighbours exist
    T = power.shape[1]
    pitches = np.empty(T * (k1 - k0), dtype=np.float32)
    mags = np.empty_like(pitches)
    tunings = []
    for segment in power:
        found = pitch_peaks(segment, k0, k1, float(sr), N_FFT, pitches, mags)
        if found == 0:
            tunings.append(0.0)
            continue
        pitch, mag = pitches[:found], mags[:found]
        selected = pitch[(mag >= np.median(mag)) & (pitch > 0)]
        tunings.append(float(librosa.pitch_tuning(selected, resolution=0.01, bins_per_octave=12)))
    return tunings


def _harmonic(spec: np.ndarray, mag: np.ndarray, c: int, T: int, n: int) -> np.ndarray:
    """Harmonic signal of librosa.effects.hpss (kernel 31, power 2, margin 1) -> [c, n] float32.

    spec, mag : [c*T, K] frame-major STFT and its magnitude.
    """
    K = mag.shape[1]
    harm = logmel.scratch("hpss_harmonic", (c, T, K))
    sliding_median(mag.reshape(c, T, K), _HPSS_KERNEL, harm)  # along time, per frequency bin
    mag_t = logmel.scratch("hpss_magnitude_t", (K, c * T))  # frequency becomes the filtered axis
    np.copyto(mag_t, mag.T)
    perc_t = logmel.scratch("hpss_percussive_t", (K, c * T))
    sliding_median(mag_t[None], _HPSS_KERNEL, perc_t[None])  # along frequency, per frame
    perc = logmel.scratch("hpss_percussive", (c * T, K))
    np.copyto(perc, perc_t.T)
    masked = logmel.scratch("hpss_masked", spec.shape, np.complex64)
    apply_soft_mask(spec, harm.reshape(c * T, K), perc, np.finfo(np.float32).tiny, masked)
    return _istft(masked, c, T, n)


def _istft(spec: np.ndarray, c: int, T: int, n: int) -> np.ndarray:
    """librosa.istft(center=True, length=n) of a frame-major chunk spec [c*T, K] (overwritten) -> [c, n] float32."""
    frames = scipy.fft.irfft(spec, n=N_FFT, axis=-1, workers=1, overwrite_x=True)
    frames *= logmel.hann(N_FFT)
    blocks_per_frame = N_FFT // HOP_LENGTH
    frames = frames.reshape(c, T, blocks_per_frame, HOP_LENGTH)
    signal = np.zeros((c, T + blocks_per_frame - 1, HOP_LENGTH), dtype=np.float32)
    for j in range(blocks_per_frame):  # overlap-add
        signal[:, j : j + T] += frames[:, :, j]
    start = N_FFT // 2
    return signal.reshape(c, -1)[:, start : start + n] * _istft_norm(T)[start : start + n]


@functools.lru_cache(maxsize=8)
def _istft_norm(T: int) -> np.ndarray:
    """1 / (sum of squared overlapping windows) where that sum exceeds tiny, else 1 (librosa.istft) [hop*(T+3)]."""
    blocks_per_frame = N_FFT // HOP_LENGTH
    square = np.square(logmel.hann(N_FFT).astype(np.float64)).reshape(blocks_per_frame, HOP_LENGTH)
    weight = np.zeros((T + blocks_per_frame - 1, HOP_LENGTH))
    for j in range(blocks_per_frame):
        weight[j : j + T] += square[j]
    weight = weight.reshape(-1)
    norm = np.ones_like(weight)
    nonzero = weight > np.finfo(np.float64).tiny
    norm[nonzero] = 1.0 / weight[nonzero]
    norm = norm.astype(np.float32)
    norm.flags.writeable = False
    return norm


def _tempo(mel_db: np.ndarray, sr: float) -> np.ndarray:
    """Tempo in BPM of librosa.beat.beat_track from log-mel frames mel_db [c, n_mels, T] -> [c] float64.

    Onset strength: median over mel bands of the positive first difference, delayed by lag + n_fft / (2 hop)
    frames. Tempo: hann-windowed 8-s onset autocorrelation per frame (the tempogram), max-normalised, averaged
    over frames, weighted by a log-normal prior around 120 BPM with nothing above 320 BPM. A flat onset
    envelope (e.g. silence) gives 0, as in beat_track.
    """
    c, _, T = mel_db.shape
    onset = np.zeros((c, T), dtype=np.float32)
    delay = 1 + N_FFT // (2 * HOP_LENGTH)
    if T > delay:
        flux = np.maximum(0.0, mel_db[:, :, 1:] - mel_db[:, :, :-1])
        onset[:, delay:] = np.median(flux, axis=1)[:, : T - delay]
    window, bpms, logprior = _tempo_setup(sr)
    win = len(window)
    n_pad = scipy.fft.next_fast_len(2 * win - 1, real=True)
    padded = np.pad(onset, ((0, 0), (win // 2, win // 2)), mode="linear_ramp", end_values=0)
    frames = np.lib.stride_tricks.sliding_window_view(padded, win, axis=1)[:, :T]
    # numpy.fft (librosa's default FFT library) writes into work arrays: no fresh pages per call.
    frames_ac = logmel.scratch("tempo_frames", (c, T, n_pad), np.float64)
    frames_ac[:, :, win:] = 0.0  # zero tail: linear (not circular) autocorrelation
    np.multiply(frames, window, out=frames_ac[:, :, :win])
    spectrum = logmel.scratch("tempo_spectrum", (c, T, n_pad // 2 + 1), np.complex128)
    np.fft.rfft(frames_ac, axis=-1, out=spectrum)
    real, imag = spectrum.real, spectrum.imag
    square = logmel.scratch("tempo_square", real.shape, np.float64)
    np.square(real, out=square)
    np.square(imag, out=real)
    real += square  # |X|^2 = re^2 + im^2, as librosa.util.abs2
    imag[...] = 0.0
    np.fft.irfft(spectrum, n=n_pad, axis=-1, out=frames_ac)
    autocorr = frames_ac[:, :, :win]
    length = np.maximum(autocorr.max(axis=-1), -autocorr.min(axis=-1))
    length[length < np.finfo(np.float64).tiny] = 1.0
    tempogram = np.einsum("ctk,ct->ck", autocorr, 1.0 / length) / T
    tempo = bpms[np.argmax(np.log1p(1e6 * tempogram) + logprior, axis=1)]
    return np.where(onset.any(axis=1), tempo, 0.0)


@functools.lru_cache(maxsize=8)
def _tempo_setup(sr: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Autocorrelation window [win], BPM of each lag [win] and log prior [win] of librosa.feature.tempo."""
    win = int(_TEMPO_AC_SIZE * sr) // HOP_LENGTH
    window = librosa.filters.get_window("hann", win, fftbins=True)
    bpms = np.full(win, np.inf)
    bpms[1:] = 60.0 * sr / (HOP_LENGTH * np.arange(1.0, win))
    with np.errstate(invalid="ignore"):
        logprior = -0.5 * ((np.log2(bpms) - np.log2(_TEMPO_START_BPM)) / _TEMPO_STD_BPM) ** 2
    logprior[: int(np.argmax(bpms < _TEMPO_MAX))] = -np.inf
    for a in (window, bpms, logprior):
        a.flags.writeable = False
    return window, bpms, logprior


@functools.lru_cache(maxsize=4)
def _dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II rows [n_out, n_in] float64: mfcc = D @ log_mel, as scipy.fft.dct(norm='ortho')."""
    d = scipy.fft.dct(np.eye(n_in), type=2, norm="ortho", axis=0)[:n_out]
    d.flags.writeable = False
    return d
