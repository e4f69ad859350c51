"""Test clips for the serving tests, written with soundfile: music-like signals in every format it writes here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 22050
#: format name -> (suffix, soundfile format, subtype)
FORMATS = {"wav": (".wav", "WAV", "PCM_16"), "flac": (".flac", "FLAC", "PCM_16"), "ogg": (".ogg", "OGG", "VORBIS"),
           "mp3": (".mp3", "MP3", "MPEG_LAYER_III")}


def signal(seconds: float, *, seed: int = 0, sr: int = SR) -> np.ndarray:
    """Two gated tones with clicks and a little noise, float32 [seconds * sr], peak below 1."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = rng.uniform(100, 600)
    y = 0.3 * np.sin(2 * np.pi * f0 * t) * (np.sin(2 * np.pi * 1.5 * t) > 0) + 0.15 * np.sin(2 * np.pi * 2.7 * f0 * t)
    y[:: int(0.4 * sr)] += 0.5
    return (0.8 * y / np.abs(y).max() + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def write(path: Path, y: np.ndarray, fmt: str, *, sr: int = SR) -> Path:
    _, major, subtype = FORMATS[fmt]
    sf.write(path, y, sr, format=major, subtype=subtype)
    return path


def writable_formats() -> list[str]:
    """The formats of :data:`FORMATS` this libsndfile writes (mp3 needs libsndfile >= 1.1 built with lame)."""
    return [f for f, (_, major, subtype) in FORMATS.items() if subtype in sf.available_subtypes(major)]
