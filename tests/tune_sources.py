"""Two tiny prepared datasets for the sweep and cross-validation tests (tests/tuning): a GTZAN-layout audio source
(4 "genres" of distinct textures, learnt in one epoch) and a Spotify-layout image source rendered from 3 of them.

Each ``TorchTrainer.fit`` costs ~20 s of fixed overhead on 2 cores, so the trials are made small (:data:`TRIAL`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from spectrotune.config import load_config

SR = 22050
GENRES = ("blues", "classical", "country", "disco")
# Small, fast trials: a 2-block CNN, constant lr, no early stopping of its own (ASHA decides).
TRIAL = ["train.batch_size=4", "model.name=cnn", "model.width=8", "model.depth=2", "train.schedule=constant",
         "train.warmup_epochs=0", "train.patience=0", "train.shuffle_buffer=64", "evaluate.baselines=false",
         "evaluate.noise_kinds=[]"]


def _clip(genre: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """One clip of a "genre" with its own spectro-temporal texture, so one epoch is enough to tell them apart."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    if genre == 0:  # steady harmonic tone: horizontal lines
        f0 = rng.uniform(200, 600)
        y = sum(0.3 / h * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi)) for h in (1, 2, 3))
    elif genre == 1:  # broadband noise: a flat texture
        y = 0.3 * rng.standard_normal(n)
    elif genre == 2:  # clicks every 80-150 ms: vertical lines
        y = np.zeros(n)
        period = int(rng.uniform(0.08, 0.15) * SR)
        for start in range(int(rng.integers(0, period)), n - 200, period):
            y[start:start + 200] += rng.standard_normal(200) * np.hanning(200)
    else:  # rising chirps: diagonal lines
        period = rng.uniform(0.2, 0.4)
        y = 0.5 * np.sin(2 * np.pi * np.cumsum(300 * 2 ** (4 * ((t % period) / period))) / SR)
    y = y + 0.005 * rng.standard_normal(n)
    return (0.8 * y / np.abs(y).max()).astype(np.float32)


def texture_corpus(root: Path, *, tracks: int = 8, seconds: float = 9.0, seed: int = 0,
                   genres: int = len(GENRES)) -> Path:
    """Write a GTZAN-layout corpus (``root/genres_original/<genre>/<genre>.<k>.wav``); returns its folder."""
    for g, genre in enumerate(GENRES[:genres]):
        for k in range(tracks):
            path = root / "genres_original" / genre / f"{genre}.{k:05d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, _clip(g, seconds, np.random.default_rng([seed, g, k])), SR, subtype="PCM_16")
    return root / "genres_original"


def prepare_sources(base: Path) -> dict[str, Path]:
    """Prepare the ``audio`` and ``spotify`` sources under ``base`` (needs a running Ray)."""
    from spectrotune.prepare.driver import prepare
    from spectrotune.sources.spotify_render import render_spotify_corpus

    audio = texture_corpus(base / "corpus")
    # The image source has 3 genres (the audio source 4) and twice the tracks: ~115 train images give the good
    # trial as many steps in its first epoch as the audio source's, so it is clearly above chance when ASHA
    # compares the bad-lr trial with it at epoch 1 (with 8 tracks it sometimes was not).
    render_spotify_corpus(texture_corpus(base / "image-corpus", tracks=16, genres=3), base / "images", seed=0)
    common = ["noise.enabled=false", "features.n_mels=32", "split.fractions={train: 0.5, valid: 0.25, test: 0.25}"]
    prepare(audio, base / "audio", progress=False, log=lambda _: None, config=load_config(
        "demo", overrides=[*common, "audio.hop_seconds.train=1.0"]))
    prepare(base / "images", base / "spotify", progress=False, log=lambda _: None,
            config=load_config("spotify", overrides=[*common, "features.handcrafted=false"]))
    return {"audio": base / "audio", "spotify": base / "spotify"}


def sweep_config(sources, *extra: str, names=("audio", "spotify")):
    """The demo config with :data:`TRIAL`, the named sources and ``extra`` overrides."""
    return load_config("demo", overrides=[*TRIAL, *(f"sources.{n}={sources[n]}" for n in names), *extra])
