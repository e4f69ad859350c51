"""Writing the synthetic corpus in the Kaggle GTZAN layout (``spectrotune synth``, the tests, bench and demo).

:func:`generate_corpus` writes ``out/genres_original/<genre>/<genre>.000NN.wav`` (16-bit PCM mono), byte-identical
for a given seed; adding tracks or genres never changes the existing files, because track ``t`` of genre ``g`` is
rendered (:func:`~spectrotune.sources.synth.render.synthesize_track`) from its own generator seeded by
``(seed, g, t)``. No ``ray``.
"""

from __future__ import annotations

import io
import os
import pathlib
from collections.abc import Callable

import numpy as np
import soundfile as sf

from spectrotune import storage
from spectrotune.errors import ConfigError
from spectrotune.sources.synth.render import check_sample_rate, check_seconds, synthesize_track
from spectrotune.sources.synth.styles import BORROW_PROBABILITY, genre_names

__all__ = ["generate_corpus"]


def generate_corpus(
    out: str | os.PathLike[str],
    *,
    genres: int = 10,
    tracks: int = 10,
    seconds: float = 30.0,
    sr: int = 22050,
    seed: int = 0,
    borrow: float = BORROW_PROBABILITY,
    progress: Callable[[int, int], None] | None = None,
) -> list[pathlib.Path]:
    """Write a synthetic corpus in the Kaggle GTZAN layout.

    Files are ``out/genres_original/<genre>/<genre>.<track:05d>.wav``, 16-bit PCM mono at ``sr``. Track ``t``
    of genre ``g`` is rendered from ``np.random.default_rng([seed, g, t])``, so a seed gives byte-identical
    files and adding tracks or genres leaves the existing ones unchanged. Each file is written aside and
    renamed into place; existing files of the same name are replaced.

    Parameters
    ----------
    out : path
        Corpus root (created if missing).
    genres : int >= 2
        Number of genres (names from :func:`genre_names`).
    tracks : int >= 1
        Tracks per genre.
    seconds : float > 0
        Duration of each track in seconds.
    sr : int
        Sample rate in Hz.
    seed : int >= 0
        Corpus seed.
    borrow : float in [0, 2]
        Expected number of elements a track borrows from related genres (class overlap; higher is harder).
    progress : callable(done, total), optional
        Called after each file is written.

    Returns
    -------
    list of pathlib.Path
        The written files, sorted.
    """
    for name, value, low in (("genres", genres, 2), ("tracks", tracks, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    check_seconds(seconds)
    check_sample_rate(sr)
    root = pathlib.Path(out) / "genres_original"
    names = genre_names(int(genres))
    total = len(names) * int(tracks)
    paths: list[pathlib.Path] = []
    for g, genre in enumerate(names):
        folder = root / genre
        folder.mkdir(parents=True, exist_ok=True)
        for t in range(int(tracks)):
            rng = np.random.default_rng([int(seed), g, t])
            audio = synthesize_track(g, n_genres=len(names), seconds=seconds, sr=int(sr), rng=rng, borrow=borrow)
            path = folder / f"{genre}.{t:05d}.wav"
            wav = io.BytesIO()  # the same bytes as writing the file directly
            sf.write(wav, audio, int(sr), subtype="PCM_16", format="WAV")
            storage.write_bytes(path, wav.getvalue())
            paths.append(path)
            if progress is not None:
                progress(len(paths), total)
    return sorted(paths)
