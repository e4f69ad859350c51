"""The input of the pretrained musicnn / vgg taggers: log-compressed mel patches, exactly as the original computes them.

musicnn 0.1.0's ``extractor.batch_data()`` (librosa 0.7.2 defaults, numpy 1.x semantics) is the specification, and
``../shared/data/musicnn-reference/`` holds its output for a test signal (tests/models/test_musicnn_parity.py):

1. mono float32 at 16 kHz;
2. STFT: ``n_fft`` 512, hop 256, periodic Hann window, ``center=True`` with **reflect** padding of 256 samples
   each side (``1 + n_samples // 256`` frames); the FFT in float64 and cast to complex64, as librosa 0.7 did;
3. power ``|X|**2`` in float32, times the Slaney mel bank (96 bands, 0-8000 Hz, Slaney area norm, float32),
   the product summed in float64 and rounded to float32 (so a frame's value never depends on its neighbours);
4. ``log10(10000 * float32(float16(mel)) + 1)`` in float32. The float16 step is the original's
   ``astype(np.float16)``; under numpy 1.x the product was promoted back to float32, whereas numpy 2 keeps float16
   and overflows to inf above a mel power of 6.55 (the reference README's quirk (b)). This module writes the
   float32 promotion out, so it gives the numpy-1 numbers under any numpy;
5. patches of ``n_frames`` = 187 frames (3 s) starting at frames 0, 187, 374, ... while they fit; trailing frames
   are dropped, as in the original.

Short clips: the original crashes below 187 frames (about 2.98 s). Here such a log-mel is **loop-padded** along
time (its frames repeated from the start until one full patch) and the caller is told so (``padded``). This is
the ``"pad_short": "repeat-pad"`` rule the checkpoints were trained with (their ``config.json``).

Resampling is outside the original's maths (its reference signal is already at 16 kHz). Audio at another rate is
decoded with :func:`spectrotune.audio.io.decode`, which resamples with soxr ``"soxr_hq"`` (librosa's default
resampler): the one the rest of spectrotune decodes with, so prepare, predict and tag hear the same 16 kHz signal,
and a high-quality band-limited resampler already installed with librosa. The original used resampy's
``kaiser_best``; resampy is not a dependency, and its own versions 0.2.2 and 0.4.3 already differ in the 7-8 kHz
transition band (mean taggrams of real 22.05 kHz clips by up to ~0.1, the reference README's quirk (d)), so no
resampler reproduces the original exactly.

Layout: like every spectrogram in spectrotune, arrays are ``[n_mels, n_frames]`` (patches ``[n_patches, n_mels,
n_frames]``); the original's are the transpose (time first). Plain numpy, with
the mel bank from :func:`spectrotune.audio.logmel.mel_filterbank` (librosa's own, as the original used); no torch,
no ``ray``. Against the reference (from its waveform): log-mel within 4.2e-4 (3 of 60,096 values move by one
float16 step of the mel, the rest by float32 rounding of ``log10``, <= 2 ulps).

Example
-------
>>> y = np.random.default_rng(0).uniform(-0.5, 0.5, 160000).astype(np.float32)   # 10 s at 16 kHz
>>> patches, padded = musicnn_input(y)
>>> patches.shape, padded
((3, 96, 187), False)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from spectrotune.audio.logmel import mel_filterbank
from spectrotune.errors import ConfigError, InputError

__all__ = ["MusicnnFrontend", "hann64", "musicnn_input", "musicnn_logmel", "musicnn_patches", "musicnn_windows",
           "patch_start_seconds"]


@dataclass(frozen=True)
class MusicnnFrontend:
    """Parameters of the musicnn front end (the defaults are musicnn 0.1.0's; ``spectrotune fetch musicnn`` reads
    ``sr``, ``n_fft``, ``hop_length`` and ``n_mels`` from the wheel's ``configuration.py`` into each model's JSON).

    Attributes
    ----------
    sr : int
        Sampling rate in Hz.
    n_fft, hop_length : int
        FFT size (= Hann window length) and hop, in samples.
    n_mels : int
        Mel bands (the networks need 96).
    fmin, fmax : float
        Mel band edges in Hz (``fmax`` is ``sr / 2``, librosa's default).
    n_frames : int
        Frames per patch (``librosa.time_to_frames(3 s) + 1`` = 187, i.e. 2.99 s).
    patch_hop : int
        Frames between patch starts (187: patches do not overlap, the original's ``input_overlap=False``).
    log_scale : float
        The ``C`` of ``log10(C * mel + 1)``.
    """

    sr: int = 16000
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 96
    fmin: float = 0.0
    fmax: float = 8000.0
    n_frames: int = 187
    patch_hop: int = 187
    log_scale: float = 10000.0

    def __post_init__(self) -> None:
        for name in ("sr", "n_fft", "hop_length", "n_mels", "n_frames", "patch_hop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"musicnn front end: {name} must be a positive integer, got {value!r}")
        if not 0 <= self.fmin < self.fmax <= self.sr / 2:
            raise ConfigError(f"musicnn front end: need 0 <= fmin < fmax <= sr/2, got fmin={self.fmin!r}, "
                              f"fmax={self.fmax!r}, sr={self.sr!r}")
        if not self.log_scale > 0:
            raise ConfigError(f"musicnn front end: log_scale must be > 0, got {self.log_scale!r}")

    @property
    def patch_seconds(self) -> float:
        """Seconds one patch covers (frame spacing times frames: 2.992 s)."""
        return self.n_frames * self.hop_length / self.sr


DEFAULT = MusicnnFrontend()
_CHUNK_FRAMES = 1024  # frames per FFT chunk: bounds the float64 work arrays (4 MB) for long files


def _check_waveform(y: np.ndarray) -> np.ndarray:
    a = np.asarray(y)
    if a.dtype.kind != "f":
        raise InputError(f"waveform must be a floating-point array (samples in [-1, 1]), got dtype {a.dtype}")
    if a.ndim != 1:
        raise InputError(f"waveform must be 1-D [n_samples] (mono), got shape {a.shape}")
    if a.size == 0:
        raise InputError("waveform holds no samples")
    if not np.isfinite(a).all():
        raise InputError("waveform contains NaN or inf samples")
    return np.ascontiguousarray(a, dtype=np.float32)


def musicnn_logmel(y: np.ndarray, *, params: MusicnnFrontend = DEFAULT) -> np.ndarray:
    """Log-compressed mel spectrogram of a whole mono signal, as the original's ``audio_rep`` (transposed).

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,), floating]
        Mono signal at ``params.sr`` Hz, nominally in [-1, 1]; at least one sample.
    params : MusicnnFrontend
        Front-end parameters.

    Returns
    -------
    np.ndarray [shape=(n_mels, 1 + n_samples // hop_length), dtype=float32]
        ``log10(log_scale * float16(mel power) + 1)`` (dimensionless, >= 0).

    Raises
    ------
    InputError
        ``y`` is not a 1-D floating array, is empty, or holds NaN / inf.
    """
    y = _check_waveform(y)
    pad = params.n_fft // 2
    # numpy's reflect mode mirrors repeatedly when the signal is shorter than the padding (librosa did the same).
    padded = np.pad(y, pad, mode="reflect")
    n_frames = 1 + (len(padded) - params.n_fft) // params.hop_length
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(n_frames, params.n_fft), strides=(params.hop_length * padded.itemsize, padded.itemsize),
        writeable=False,
    )
    window = hann64(params.n_fft)
    bank = mel_filterbank(sr=params.sr, n_fft=params.n_fft, n_mels=params.n_mels, fmin=params.fmin, fmax=params.fmax)
    bank64 = bank.astype(np.float64)
    mel = np.empty((params.n_mels, n_frames), dtype=np.float32)
    for t0 in range(0, n_frames, _CHUNK_FRAMES):
        chunk = frames[t0: t0 + _CHUNK_FRAMES]
        # librosa 0.7 multiplied the float32 frames by a float64 window, took numpy's float64 FFT into complex64,
        # then |X| and its square in float32.
        power = np.abs(np.fft.rfft(chunk * window, axis=-1).astype(np.complex64))
        np.square(power, out=power)
        # The mel product in float64, rounded once to float32: every frame gets the same value however the frames
        # are batched (a float32 BLAS product rounds differently with the batch width, and the float16 step can
        # turn such a last-bit difference into a 4e-4 jump); the original's float32 product differs by float32
        # rounding only.
        mel[:, t0: t0 + len(chunk)] = bank64 @ power.T.astype(np.float64)
    mel = mel.astype(np.float16).astype(np.float32)  # the original's float16 step, promoted back as numpy 1.x did
    mel *= np.float32(params.log_scale)
    mel += np.float32(1.0)
    return np.log10(mel, out=mel)


@functools.lru_cache(maxsize=4)
def hann64(n: int) -> np.ndarray:
    """Periodic Hann window [n] in float64, bit for bit ``scipy.signal.get_window('hann', n)`` (librosa 0.7's).

    Computed as scipy's ``general_cosine`` does (a symmetric window of n + 1 points, the last dropped), which
    spares importing ``scipy.signal`` (about a second) in every process that tags.
    """
    fac = np.linspace(-np.pi, np.pi, n + 1)
    w = np.zeros(n + 1)
    for k, a in enumerate((0.5, 0.5)):
        w += a * np.cos(k * fac)
    w = w[:-1].copy()
    w.flags.writeable = False
    return w


def musicnn_patches(logmel: np.ndarray, *, params: MusicnnFrontend = DEFAULT) -> tuple[np.ndarray, bool]:
    """Cut a log-mel spectrogram into the networks' patches.

    Parameters
    ----------
    logmel : np.ndarray [shape=(n_mels, T)]
        Output of :func:`musicnn_logmel` (any ``T >= 1``).
    params : MusicnnFrontend
        ``n_frames`` (patch length) and ``patch_hop``.

    Returns
    -------
    patches : np.ndarray [shape=(n_patches, n_mels, n_frames), dtype=float32]
        Patch ``p`` is ``logmel[:, p * patch_hop : p * patch_hop + n_frames]``, for every ``p`` where it fits
        (trailing frames dropped). When ``T < n_frames`` there is one patch: the frames repeated from the start
        (loop padding) until ``n_frames``.
    padded : bool
        True when the input was shorter than one patch and was loop-padded.
    """
    a = np.asarray(logmel, dtype=np.float32)
    if a.ndim != 2 or a.shape[1] == 0:
        raise InputError(f"log-mel must be 2-D [n_mels, n_frames] with at least one frame, got shape {a.shape}")
    n = params.n_frames
    if a.shape[1] < n:
        reps = -(-n // a.shape[1])
        return np.ascontiguousarray(np.tile(a, (1, reps))[None, :, :n]), True
    starts = range(0, a.shape[1] - n + 1, params.patch_hop)
    return np.stack([a[:, s: s + n] for s in starts]), False


def musicnn_input(y: np.ndarray, *, params: MusicnnFrontend = DEFAULT) -> tuple[np.ndarray, bool]:
    """:func:`musicnn_patches` of :func:`musicnn_logmel`: waveform [n_samples] -> (patches [P, 96, 187], padded)."""
    return musicnn_patches(musicnn_logmel(y, params=params), params=params)


def musicnn_windows(segments: np.ndarray, *, params: MusicnnFrontend = DEFAULT) -> np.ndarray:
    """The front end of fixed windows, each alone (how ``prepare`` and a bundle's recipe use it: ``features.frontend:
    musicnn``): window ``i``'s :func:`musicnn_logmel`, its frames whose centre lies inside the window.

    Parameters
    ----------
    segments : np.ndarray [shape=(n_segments, window), floating]
        Windows at ``params.sr`` Hz (``window >= hop_length``).

    Returns
    -------
    np.ndarray [shape=(n_segments, n_mels, window // hop_length), dtype=float32]
        For a window of ``n_frames * hop_length`` samples (2.992 s at 16 kHz for 187 frames) starting at a multiple
        of that length, frames 1.. equal the whole file's :func:`musicnn_patches` patch; frame 0 is reflect-padded
        at the window's own start instead of reading the previous window's samples.
    """
    a = np.asarray(segments)
    if a.ndim != 2 or a.shape[1] < params.hop_length:
        raise InputError(f"windows must be 2-D [n_segments, window] with window >= {params.hop_length} samples, got "
                         f"shape {a.shape}")
    n_frames = a.shape[1] // params.hop_length
    out = np.empty((len(a), params.n_mels, n_frames), dtype=np.float32)
    for i, window in enumerate(a):
        out[i] = musicnn_logmel(window, params=params)[:, :n_frames]
    return out


def patch_start_seconds(n_patches: int, *, params: MusicnnFrontend = DEFAULT) -> np.ndarray:
    """Start time in seconds of each patch (frame ``p * patch_hop`` is centred at ``p * patch_hop * hop / sr``)."""
    return np.arange(int(n_patches)) * (params.patch_hop * params.hop_length / params.sr)
