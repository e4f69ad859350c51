"""The two kinds of source, and everything that differs between them, owned by one object per kind.

spectrotune reads two kinds of input:

- ``audio``: sound files (wav, au, flac, ...), decoded, cut into fixed windows and turned into log-mel;
- ``spotify``: spectrogram images laid out like Kaggle's "Spotify 3-second mel spectrograms" set, each read back
  into one array of colormap positions (:func:`spectrotune.sources.spotify.image_to_array`).

Prepare, evaluate and predict ask a :class:`SourceKind` (:func:`source_kind` by name) which files a folder search
picks, what shape and values the ``mel`` column has, how a file becomes model input windows, and whether noise
variants, the robustness table and handcrafted features apply (:attr:`SourceKind.has_audio`), instead of
branching on the kind's name.

The audio chain decode -> segment -> noise -> log-mel is written once, here: :func:`cut_windows`,
:func:`noisy_copies` and :class:`LogMel`. Prepare's tasks, evaluate's robustness rebuild, inspect's WAV export
and predict all call it, so each of them rebuilds prepare's rows bit for bit, short clips padded the same way
(:attr:`Windowing.pad`, the config's ``audio.pad``) and compressed by the same front end (:attr:`LogMel.frontend`,
the config's ``features.frontend``: dB log-mel, or the pretrained musicnn models' input). Pure numpy; no ``ray``.
"""

from __future__ import annotations

import abc
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from spectrotune.audio import io as audio
from spectrotune.audio import logmel
from spectrotune.audio import noise
from spectrotune.errors import ConfigError, InputError
from spectrotune.schema import CLEAN, FRONTEND_LOGMEL, FRONTEND_MUSICNN

if TYPE_CHECKING:  # annotations only: the config and the bundle import this module, not the other way round
    from spectrotune.bundle import InputRecipe
    from spectrotune.config import AudioConfig, Config, FeatureConfig, NoiseConfig
    from spectrotune.sources.listing import SourceItem

__all__ = ["AUDIO", "KINDS", "SPOTIFY", "LogMel", "ModelInput", "NoisyCopy", "SourceKind", "TrackWindows",
           "Windowing", "cut_windows", "noisy_copies", "signal_windows", "source_kind"]


# --------------------------------------------------------------------------------------------------------------
# The audio chain: decode -> segment -> noise -> log-mel


@dataclass(frozen=True)
class Windowing:
    """How audio becomes fixed windows: decoded to mono at ``sample_rate`` Hz, cut into windows of
    ``segment_seconds`` s starting every ``hop_seconds`` s. A file shorter than ``min_seconds`` s is refused;
    one shorter than a window that is still long enough fills one window as ``pad`` says: ``repeat`` (the clip
    looped) or ``zeros`` (:func:`spectrotune.audio.io.segment`)."""

    sample_rate: int
    segment_seconds: float
    hop_seconds: float
    min_seconds: float = 0.0
    pad: str = "repeat"

    @classmethod
    def from_config(cls, config: AudioConfig, *, split: str, min_seconds: float | None = None) -> Windowing:
        """The windows prepare cuts for ``split`` (its hop); ``min_seconds`` defaults to the config's."""
        return cls(config.sample_rate, config.segment_seconds, config.hop_for(split),
                   config.min_seconds if min_seconds is None else min_seconds, config.pad)

    @property
    def window(self) -> int:
        """Samples per window."""
        return int(round(self.segment_seconds * self.sample_rate))


def cut_windows(path: str | os.PathLike[str], windowing: Windowing) -> tuple[np.ndarray, bool]:
    """Decode ``path`` and cut it into windows.

    Returns
    -------
    segments : np.ndarray, float32 [n_segments, windowing.window]
    padded : bool
        The file was shorter than one window and was padded (``windowing.pad``).

    Raises
    ------
    InputError
        The file is missing, unreadable, too short or holds NaN / inf (``.reason`` says which).
    """
    y = audio.decode(path, sr=windowing.sample_rate, min_seconds=windowing.min_seconds)
    return audio.segment(y, sr=windowing.sample_rate, seconds=windowing.segment_seconds,
                         hop_seconds=windowing.hop_seconds, pad=windowing.pad)


def signal_windows(y: np.ndarray, sr: int, recipe: InputRecipe) -> ModelInput:
    """A bundle's model input from samples in memory, as :meth:`SourceKind.model_windows` makes it from a file.

    ``y``: float (or int16 PCM) [n] mono, or [n, channels] / [channels, n] (the shorter axis is the channels) at
    ``sr`` Hz; averaged to mono and resampled to the recipe's rate as :func:`spectrotune.audio.io.decode` does a
    file's samples (:func:`spectrotune.audio.io.to_mono`). Raises :class:`~spectrotune.errors.InputError` for no
    samples, NaN/inf or a dtype that is not audio, and for a bundle whose inputs are images.
    """
    if not recipe.kind.has_audio:
        raise InputError(f"a {recipe.kind.name} bundle classifies {recipe.kind.noun} files, not samples: "
                         "predict the files")
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise InputError(f"sr must be a positive integer number of Hz, got {sr!r}")
    data = np.asarray(y)
    if data.dtype != np.int16 and not np.issubdtype(data.dtype, np.floating):
        raise InputError(f"samples must be float (or int16 PCM), got dtype {data.dtype}")
    if data.ndim == 1:
        data = data[:, None]
    elif data.ndim == 2 and data.shape[0] < data.shape[1]:
        data = data.T  # [channels, n] (librosa's layout) -> [n, channels]
    if data.ndim != 2 or data.size == 0:
        raise InputError(f"samples must be a non-empty [n] or [n, channels] array, got shape {np.shape(y)}")
    if data.dtype != np.int16:
        data = data.astype(np.float32, copy=False)
    w = recipe.windowing
    mono = audio.to_mono(data, sr_in=int(sr), sr=w.sample_rate)
    segments, padded = audio.segment(mono, sr=w.sample_rate, seconds=w.segment_seconds, hop_seconds=w.hop_seconds,
                                     pad=w.pad)
    return _audio_input(segments, padded, recipe)


def _audio_input(segments: np.ndarray, padded: bool, recipe: InputRecipe) -> ModelInput:
    """The model input of an audio clip's windows float32 [n_segments, window] (log-mel, silence flag)."""
    silent = bool(audio.is_silent(segments, floor_db=audio.NEAR_SILENCE_DB).all())
    return ModelInput(recipe.log_mel(segments), padded, recipe.windowing.hop_seconds, silent)


@dataclass(frozen=True)
class NoisyCopy:
    """One variant of a track's windows: its name (``clean`` or e.g. ``white@10dB``), the audio float32
    [n_segments, window], and the SNR in dB per window (``None`` for clean rows, and for silent windows, which
    have no defined SNR and stay clean)."""

    name: str
    audio: np.ndarray
    snr_db: list[float | None]


def noisy_copies(
    segments: np.ndarray,
    variants: Sequence[tuple[str, float]],
    *,
    seed: int,
    track_id: str,
    segment_indices: Sequence[int] | None = None,
    background: np.ndarray | None = None,
) -> list[NoisyCopy]:
    """The noisy variants ``(noise kind, snr_db)`` of one track's windows float32 [n_segments, window].

    Window ``i`` gets the noise seeded by ``(seed, track_id, segment_indices[i], variant)``
    (:func:`spectrotune.audio.noise.add_noise_batch`; default indices ``0..n-1``), so one window rebuilt alone
    gets exactly the noise it got among all of its track's. ``background`` (mono, at the windows' rate) is used by
    variants of kind ``file`` only.
    """
    indices = list(range(len(segments))) if segment_indices is None else list(segment_indices)
    copies = []
    for kind, snr in variants:
        mixed, snrs = noise.add_noise_batch(segments, kind=kind, snr_db=snr, seed=seed, track_id=track_id,
                                            segment_indices=indices,
                                            background=background if kind == "file" else None)
        copies.append(NoisyCopy(noise.variant_name(kind, snr), mixed, [None if s is None else float(snr)
                                                                        for s in snrs]))
    return copies


@dataclass(frozen=True)
class LogMel:
    """Log-mel parameters (librosa conventions): ``sample_rate`` Hz, ``n_fft`` and ``hop_length`` samples,
    ``n_mels`` bands from ``fmin`` to ``fmax`` Hz (``None``: Nyquist), clamped ``top_db`` dB below each window's
    maximum (``None``: no clamp). The defaults are :func:`spectrotune.audio.logmel.log_mel`'s.

    ``frontend`` (the config's ``features.frontend``) says which compression: ``logmel``, dB
    (:func:`spectrotune.audio.logmel.log_mel`), or ``musicnn``, the pretrained musicnn models' ``log10(10000 x mel
    power + 1)`` with the same band parameters, each window alone, its frames whose centre lies inside it
    (:func:`spectrotune.audio.musicnn_frontend.musicnn_windows`; ``top_db`` is then None)."""

    sample_rate: int = logmel.SR
    n_fft: int = logmel.N_FFT
    hop_length: int = logmel.HOP_LENGTH
    n_mels: int = logmel.N_MELS
    fmin: float = 0.0
    fmax: float | None = None
    top_db: float | None = logmel.TOP_DB
    frontend: str = FRONTEND_LOGMEL

    @classmethod
    def from_config(cls, config: FeatureConfig, *, sample_rate: int) -> LogMel:
        return cls(sample_rate, config.n_fft, config.hop_length, config.n_mels, config.fmin, config.fmax,
                   config.top_db, config.frontend)

    @property
    def values(self) -> str:
        """What the arrays hold, in words (the manifest's ``mel.values``)."""
        return "log-mel dB" if self.frontend == FRONTEND_LOGMEL else "log10(10000 x mel power + 1) (musicnn)"

    def musicnn_params(self) -> Any:
        """These parameters as the musicnn front end's :class:`~spectrotune.audio.musicnn_frontend.MusicnnFrontend`."""
        from spectrotune.audio.musicnn_frontend import MusicnnFrontend

        fmax = self.sample_rate / 2 if self.fmax is None else self.fmax
        return MusicnnFrontend(sr=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length, n_mels=self.n_mels,
                               fmin=self.fmin, fmax=fmax)

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`spectrotune.audio.logmel.log_mel`."""
        return {"sr": self.sample_rate, "n_fft": self.n_fft, "hop_length": self.hop_length, "n_mels": self.n_mels,
                "fmin": self.fmin, "fmax": self.fmax, "top_db": self.top_db}

    def n_frames(self, window: int) -> int:
        """Frames of the log-mel of a window of ``window`` samples."""
        if self.frontend == FRONTEND_MUSICNN:
            return window // self.hop_length
        return logmel.n_frames(window, hop_length=self.hop_length)

    def __call__(self, segments: np.ndarray) -> np.ndarray:
        """Log-mel float32 [n_segments, n_mels, n_frames] (dB, or musicnn's) of windows float32 [n_segments, window]."""
        if self.frontend == FRONTEND_MUSICNN:
            from spectrotune.audio.musicnn_frontend import musicnn_windows

            return musicnn_windows(segments, params=self.musicnn_params())
        return logmel.log_mel(segments, **self.kwargs())


# --------------------------------------------------------------------------------------------------------------
# The kinds


@dataclass
class TrackWindows:
    """The rows one source file gives a prepared dataset: ``segments`` (window index of each row), one
    ``(variant name, mel float32 [n, n_mels, n_frames], snr_db per row)`` per variant, the handcrafted features
    float32 [n, 57] of the clean rows (``None`` when off or not applicable), and what prepare counts."""

    segments: list[int]
    variants: list[tuple[str, np.ndarray, list[float | None]]]
    features: np.ndarray | None = None
    padded: bool = False
    silent_segments: int = 0


@dataclass(frozen=True)
class ModelInput:
    """A bundle's model input from one file: ``mel`` float32 [n_segments, n_mels, n_frames]; ``padded``: the file
    was shorter than one window and was padded; ``hop_seconds`` between window starts; ``silent``: every window's
    RMS is below :data:`spectrotune.audio.io.NEAR_SILENCE_DB` dBFS, so there is nothing to classify (always False
    for images, which hold no audio)."""

    mel: np.ndarray
    padded: bool
    hop_seconds: float
    silent: bool = False


Timer = Callable[[str, float], None]  # (stage, seconds): where a kind reports the time each stage took


class SourceKind(abc.ABC):
    """What one kind of source is: each subclass (one per kind) implements the abstract methods below."""

    name: str  #: the kind's name in configs, manifests and bundles (``source.kind``)
    noun: str  #: what one of its files is called in messages ("no image files to predict")
    has_audio: bool  #: noise variants, the robustness table and handcrafted features apply
    mel_values: str  #: what the ``mel`` column holds (the manifest's ``mel.values``)

    @abc.abstractmethod
    def is_input_file(self, path: str | os.PathLike[str]) -> bool:
        """Whether a folder search picks ``path`` (by its name; the file is not opened)."""

    @abc.abstractmethod
    def mel_shape(self, config: Config) -> tuple[int, int]:
        """``(n_mels, n_frames)`` of the ``mel`` column prepare writes with ``config``."""

    def noise_note(self, config: NoiseConfig) -> str:
        """The manifest's ``noise`` line: whether and where noise variants were made."""
        return "off" if not config.enabled else f"applied to splits {list(config.splits)}"

    @abc.abstractmethod
    def track_windows(self, item: SourceItem, *, split: str, config: Config, background: np.ndarray | None,
                      timer: Timer) -> TrackWindows:
        """The dataset rows of one file of ``split`` (raises :class:`~spectrotune.errors.InputError` if unusable)."""

    @abc.abstractmethod
    def model_windows(self, path: str | os.PathLike[str], recipe: InputRecipe) -> ModelInput:
        """A bundle's model input from one file, made as ``recipe`` (:class:`spectrotune.bundle.InputRecipe`) says
        (raises :class:`~spectrotune.errors.InputError` if unusable)."""

    def model_input(self, path: str | os.PathLike[str], recipe: InputRecipe) -> tuple[np.ndarray, bool, float]:
        """:meth:`model_windows` as ``(mel float32 [n_segments, n_mels, n_frames], padded, seconds between window
        starts)``."""
        x = self.model_windows(path, recipe)
        return x.mel, x.padded, x.hop_seconds

    def __repr__(self) -> str:
        return f"<source kind {self.name}>"


class _Audio(SourceKind):
    name, noun, has_audio, mel_values = "audio", "audio", True, "log-mel dB"

    def is_input_file(self, path: str | os.PathLike[str]) -> bool:
        return audio.is_audio_file(path)

    def mel_shape(self, config: Config) -> tuple[int, int]:
        window = Windowing.from_config(config.audio, split="train").window
        log_mel = LogMel.from_config(config.features, sample_rate=config.audio.sample_rate)
        if log_mel.frontend == FRONTEND_MUSICNN:
            log_mel.musicnn_params()  # its parameter checks (fmax <= sr / 2), before any task starts
        return config.features.n_mels, log_mel.n_frames(window)

    def track_windows(self, item: SourceItem, *, split: str, config: Config, background: np.ndarray | None,
                      timer: Timer) -> TrackWindows:
        from spectrotune.audio.handcrafted import handcrafted_features

        t0 = time.perf_counter()
        segs, padded = cut_windows(item.path, Windowing.from_config(config.audio, split=split))
        silent = int(np.count_nonzero(audio.is_silent(segs)))
        t1 = time.perf_counter()
        timer("decode", t1 - t0)
        n = len(segs)
        wanted = ([(v.kind, v.snr_db) for v in config.noise.variants]
                  if config.noise.enabled and split in config.noise.splits else [])
        copies = [NoisyCopy(CLEAN, segs, [None] * n)] if config.noise.keep_clean or not wanted else []
        copies += noisy_copies(segs, wanted, seed=config.seed, track_id=item.track_id, background=background)
        t2 = time.perf_counter()
        timer("noise", t2 - t1)
        # One log-mel call per variant, as predict and the robustness rebuild make them. log_mel works on chunks
        # of several short windows (<= 128 frames), and a window's float32 result can differ in the last bit with
        # the windows chunked alongside it: stacked variants put a track's last clean window beside its first
        # noisy one whenever its window count was odd, so predict could not recompute that clean row exactly.
        log_mel = LogMel.from_config(config.features, sample_rate=config.audio.sample_rate)
        mels = [log_mel(c.audio) for c in copies]
        t3 = time.perf_counter()
        timer("log_mel", t3 - t2)
        feats = None
        if config.features.handcrafted and copies[0].name == CLEAN:
            feats = handcrafted_features(segs, sr=config.audio.sample_rate)
        timer("features", time.perf_counter() - t3)
        return TrackWindows(segments=list(range(n)),
                            variants=[(c.name, mel, c.snr_db) for c, mel in zip(copies, mels, strict=True)],
                            features=feats, padded=bool(padded), silent_segments=silent)

    def model_windows(self, path: str | os.PathLike[str], recipe: InputRecipe) -> ModelInput:
        return _audio_input(*cut_windows(path, recipe.windowing), recipe)


class _Spotify(SourceKind):
    name, noun, has_audio, mel_values = "spotify", "image", False, "colormap position in [0, 1] (inverted image)"

    def is_input_file(self, path: str | os.PathLike[str]) -> bool:
        from spectrotune.sources.spotify import is_image_file

        return is_image_file(path)

    def mel_shape(self, config: Config) -> tuple[int, int]:
        if config.features.frontend != FRONTEND_LOGMEL:
            raise ConfigError(f"features.frontend={config.features.frontend}: spotify images are spectrograms "
                              f"already, with no audio for another front end; use {FRONTEND_LOGMEL}")
        return config.features.n_mels, config.image.n_frames

    def noise_note(self, config: NoiseConfig) -> str:
        return "not applied: image sources have no audio"

    def track_windows(self, item: SourceItem, *, split: str, config: Config, background: np.ndarray | None,
                      timer: Timer) -> TrackWindows:
        t0 = time.perf_counter()
        arr = self._read(item.path, *self.mel_shape(config))
        timer("decode", time.perf_counter() - t0)
        return TrackWindows(segments=[item.clip or 0], variants=[(CLEAN, arr, [None])])

    def model_windows(self, path: str | os.PathLike[str], recipe: InputRecipe) -> ModelInput:
        # One image is one window; its "hop" is the clip length the images were rendered from.
        return ModelInput(self._read(path, *recipe.input_shape), False, recipe.windowing.segment_seconds)

    @staticmethod
    def _read(path: str | os.PathLike[str], n_mels: int, n_frames: int) -> np.ndarray:
        from spectrotune.sources import spotify  # Pillow path, imported only when images are read

        arr = spotify.image_to_array(path, n_mels=n_mels, n_frames=n_frames)
        return arr[None].astype(np.float32, copy=False)


AUDIO: SourceKind = _Audio()
SPOTIFY: SourceKind = _Spotify()
#: Every kind by its name.
KINDS: dict[str, SourceKind] = {k.name: k for k in (AUDIO, SPOTIFY)}


def source_kind(name: str) -> SourceKind:
    """The :class:`SourceKind` called ``name`` (``audio`` or ``spotify``)."""
    try:
        return KINDS[name]
    except KeyError:
        raise InputError(f"unknown source kind {name!r} (valid: {', '.join(KINDS)})") from None
