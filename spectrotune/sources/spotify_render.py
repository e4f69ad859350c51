"""Rendering audio into Spotify-style spectrogram JPGs, one clip or a whole corpus, the way the dataset was made.

The Kaggle "Spotify 3-second mel spectrograms" images are linear STFT dB spectrograms drawn by
``librosa.display.specshow(y_axis="log")`` with axes off and saved as JPG with ``bbox_inches="tight"`` (DESIGN.md
§2; :mod:`spectrotune.sources.spotify` reads them back). :func:`render_spotify_image` renders a clip exactly so,
and :func:`render_spotify_corpus` turns a GTZAN-layout audio folder into the Spotify layout, so that tests and
the demo can use Spotify-style images made from the project's own synthetic audio. The corpus writer reproduces
the real set's leak, too: each clip lands in training/validation/testing on its own draw, so clips of one song
sit on both sides. Split by song with :func:`~spectrotune.sources.spotify.spotify_song_id`.

Rendering uses matplotlib's object-oriented API on an Agg canvas (no pyplot state), so it is safe in worker
processes and threads. Needs matplotlib and librosa; never imports ``ray``.
"""

from __future__ import annotations

import io
import logging
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from spectrotune import storage
from spectrotune.errors import InputError
from spectrotune.sources.spotify import SPLIT_DIRS

__all__ = ["render_spotify_corpus", "render_spotify_image"]

log = logging.getLogger(__name__)

# The dataset's figure: matplotlib's defaults, spelled out so a user's matplotlibrc cannot change the output.
_FIGSIZE = (6.4, 4.8)
_DPI = 100
_SUBPLOT = {"left": 0.125, "right": 0.9, "bottom": 0.11, "top": 0.88}
_PAD_INCHES = 0.1
_JPEG_QUALITY = 75


def render_spotify_image(
    y: np.ndarray,
    path: str | os.PathLike[str],
    *,
    sr: int = 22050,
    signed: bool = True,
) -> str:
    """Render a clip to a JPG exactly as the Spotify dataset's images were made.

    ``D = librosa.amplitude_to_db(np.abs(librosa.stft(y)), ref=1.0 if signed else np.max)``, then
    ``librosa.display.specshow(D, sr=sr, y_axis="log", ax=ax)`` with axes off on a 6.4 x 4.8 in, 100 dpi figure,
    saved as RGB JPG (quality 75) with ``bbox_inches="tight"``: about 516 x 389 px with a ~10 px white border.
    ``specshow`` picks the colormap from ``D`` (``librosa.display.cmap``: diverging when the 2nd and 98th
    percentiles straddle 0 dB). With ``signed=True`` music at ordinary levels gets ``coolwarm``, but a clip whose
    bins are almost all below 0 dB (quiet or tonal) gets ``magma``; ``signed=False`` always gives ``magma``. The
    choice is returned. The file is written aside and renamed, so it appears complete or not at all; parent
    folders are created.

    Parameters
    ----------
    y : np.ndarray, float [n_samples]
        Mono audio, usually 3 s at ``sr``.
    path : str or os.PathLike
        Output file (JPG whatever its extension).
    sr : int > 0
        Sample rate of ``y`` in Hz (sets the frequency axis).
    signed : bool
        True: dB relative to 1.0 (signed values, as in the dataset). False: relative to the clip's maximum.

    Returns
    -------
    str
        The colormap ``specshow`` picked: ``"coolwarm"`` or ``"magma"``.
    """
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0 or not np.issubdtype(y.dtype, np.floating):
        raise ValueError(f"y: expected a non-empty 1-D float array, got {y.dtype} {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("y: contains NaN or inf")
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ValueError(f"sr={sr!r}: expected a positive integer")

    import librosa
    import librosa.display
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure, SubplotParams

    D = librosa.amplitude_to_db(np.abs(librosa.stft(y)), ref=1.0 if signed else np.max)
    fig = Figure(figsize=_FIGSIZE, dpi=_DPI, subplotpars=SubplotParams(**_SUBPLOT))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    mesh = librosa.display.specshow(D, sr=sr, y_axis="log", ax=ax)
    ax.set_axis_off()

    jpg = io.BytesIO()  # the same bytes as saving to the file directly
    fig.savefig(
        jpg,
        format="jpeg",
        bbox_inches="tight",
        pad_inches=_PAD_INCHES,
        facecolor="white",
        pil_kwargs={"quality": _JPEG_QUALITY},
    )
    storage.write_bytes(Path(path), jpg.getvalue())
    return str(mesh.get_cmap().name)


def _draw_split(seed: int, song: str, clip: int, cumulative: np.ndarray) -> int:
    """Split index of one clip, from its own stream seeded by (seed, song, clip): independent of file order."""
    rng = np.random.default_rng([seed, zlib.crc32(song.encode("utf-8")), clip])
    return int(np.searchsorted(cumulative, rng.random(), side="right"))


def _read_audio(path: Path, sr: int) -> np.ndarray:
    """Mono float32 samples of ``path`` at ``sr`` Hz (channels averaged, resampled if needed); InputError if bad."""
    import soundfile as sf

    try:
        data, file_sr = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
        raise InputError(f"{path}: cannot decode audio ({e})") from e
    y = data.mean(axis=1)
    if not np.all(np.isfinite(y)):
        raise InputError(f"{path}: audio contains NaN or inf")
    if file_sr != sr:
        import librosa

        y = librosa.resample(y, orig_sr=file_sr, target_sr=sr)
    return y.astype(np.float32, copy=False)


def render_spotify_corpus(
    audio_root: str | os.PathLike[str],
    out_root: str | os.PathLike[str],
    *,
    clip_seconds: float = 3.0,
    sr: int = 22050,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    max_clips: int | None = None,
    signed: bool = True,
) -> list[Path]:
    """Render a GTZAN-layout audio folder into a Spotify-layout image folder.

    Every ``audio_root/**/<genre>/<stem>.wav`` (genre = parent folder name) is read with soundfile (mixed to mono,
    resampled to ``sr`` if needed) and cut into consecutive ``clip_seconds`` clips (a shorter tail is dropped).
    Clip ``k`` of song ``<stem>`` becomes ``out_root/<split>/<genre>/<stem>_<k>.jpg``, rendered by
    :func:`render_spotify_image`. Each clip's split folder (training/validation/testing) is drawn on its own
    with probabilities ``fractions``, from a stream seeded by ``(seed, song, clip)``: deterministic for a seed and
    independent of which other files exist - and, like the real dataset, clips of one song land on both sides.
    Audio files that cannot be decoded are skipped with a logged warning.

    Parameters
    ----------
    audio_root : str or os.PathLike
        Folder searched recursively for ``.wav`` files (case-insensitive extension).
    out_root : str or os.PathLike
        Output folder; created if missing. Existing images of the same names are replaced.
    clip_seconds : float > 0
        Clip length in seconds.
    sr : int > 0
        Sample rate in Hz the clips are rendered at.
    seed : int >= 0
        Seed of the split draws.
    fractions : (float, float, float)
        Non-negative weights of training, validation, testing (normalised by their sum).
    max_clips : int > 0 or None
        At most this many clips per audio file (the first ones); None renders all.
    signed : bool
        Passed to :func:`render_spotify_image`.

    Returns
    -------
    list of pathlib.Path
        The written images, in order of (sorted audio path, clip index).

    Raises
    ------
    InputError
        ``audio_root`` is not a folder or holds no ``.wav`` file.
    """
    if not np.isfinite(clip_seconds) or clip_seconds <= 0:
        raise ValueError(f"clip_seconds={clip_seconds!r}: expected a positive number of seconds")
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ValueError(f"sr={sr!r}: expected a positive integer")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r}: expected a non-negative integer")
    weights = np.asarray(fractions, dtype=np.float64) if isinstance(fractions, Sequence) else None
    if weights is None or weights.shape != (3,) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(f"fractions={fractions!r}: expected three non-negative numbers (train, valid, test)")
    if weights.sum() <= 0:
        raise ValueError(f"fractions={fractions!r}: at least one must be positive")
    if max_clips is not None and (
        isinstance(max_clips, bool) or not isinstance(max_clips, (int, np.integer)) or max_clips < 1
    ):
        raise ValueError(f"max_clips={max_clips!r}: expected a positive integer or None")
    # The last edge is pinned to exactly 1 so rounding can never push a draw past the testing bucket.
    cumulative = np.cumsum(weights / weights.sum())
    cumulative[-1] = 1.0

    audio_root, out_root = Path(audio_root), Path(out_root)
    if not audio_root.is_dir():
        raise InputError(f"{audio_root}: not a folder")
    audio_files = sorted(p for p in audio_root.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())
    if not audio_files:
        raise InputError(f"{audio_root}: no .wav files found (expected <genre>/<name>.wav)")

    clip_len = round(clip_seconds * sr)
    written: list[Path] = []
    for audio_path in audio_files:
        genre, song = audio_path.parent.name, audio_path.stem
        try:
            y = _read_audio(audio_path, sr)
        except InputError as e:
            log.warning("skipping %s", e)
            continue
        n_clips = len(y) // clip_len
        if max_clips is not None:
            n_clips = min(n_clips, int(max_clips))
        for clip in range(n_clips):
            split = SPLIT_DIRS[_draw_split(int(seed), song, clip, cumulative)]
            out = out_root / split / genre / f"{song}_{clip}.jpg"
            render_spotify_image(y[clip * clip_len : (clip + 1) * clip_len], out, sr=sr, signed=signed)
            written.append(out)
    return written
