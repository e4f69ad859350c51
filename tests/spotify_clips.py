"""Audio clips and small image helpers shared by the Spotify image tests (tests/sources/test_spotify*.py)."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
from PIL import Image

SR = 22050


def synthetic_clip(seed: int = 0, seconds: float = 3.0) -> np.ndarray:
    """Quiet harmonic tones under white-noise steps from -80 to 0 dB (0.25 s each, shuffled).

    The steps make the loudness profile span the whole colormap, from its blue low end through the grey middle to
    its red high end - where a grayscale reading of coolwarm folds over.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    levels_db = rng.permutation(np.linspace(-80.0, 0.0, 12))
    env = 10.0 ** (levels_db[np.minimum(np.arange(len(t)) * 12 // len(t), 11)] / 20.0)
    tones = sum(0.01 / k * np.sin(2 * np.pi * 196.0 * k * t) for k in range(1, 6))
    return (tones + env * 0.3 * rng.standard_normal(len(t))).astype(np.float32)


def tone(freq: float, seconds: float = 3.0) -> np.ndarray:
    """A pure tone at ``freq`` Hz over a faint noise floor."""
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * freq * t) + 1e-4 * rng.standard_normal(len(t))).astype(np.float32)


def true_db(y: np.ndarray, *, signed: bool) -> np.ndarray:
    """The dB spectrogram the dataset's author drew (``ref=1.0`` when signed, else the clip's maximum)."""
    return librosa.amplitude_to_db(np.abs(librosa.stft(y)), ref=1.0 if signed else np.max)


def decode_rgb(path: Path) -> np.ndarray:
    """The image file as a uint8 RGB array [height, width, 3]."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two 1-D arrays."""
    return float(np.corrcoef(a, b)[0, 1])
