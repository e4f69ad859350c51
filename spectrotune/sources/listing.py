"""Listing the inputs of a corpus: which files, which genre, which track.

Two kinds of source are understood:

- **audio** folders laid out ``<genre>/<files>`` anywhere below the root: the Kaggle GTZAN layout
  (``Data/genres_original/<genre>/<genre>.000NN.wav``), the Marsyas one (``genres/<genre>/*.au``) and any folder of
  audio files of :data:`~spectrotune.audio.io.AUDIO_EXTENSIONS` (wav, flac, mp3, ogg/opus, aiff, au, ..., and
  m4a/aac/wma/... that need ffmpeg: those are listed too, and fail at decode with the fix when it is missing).
  The genre is the parent folder's name, the track id the file stem.
- **spotify** image trees ``{training,validation,testing}/<genre>/<song>_<clip>.jpg`` (the Kaggle "Spotify 3-second
  mel spectrograms" set, possibly under a ``dataset/`` folder). The song id is the stem before the last ``_``
  (:func:`~spectrotune.sources.spotify.song_and_clip`).

The extensions, the Spotify folder names and the song-id rule are defined by the modules that own them
(:mod:`spectrotune.audio.io`, :mod:`spectrotune.sources.spotify`) and used here. Listing never opens a file: a
file that later fails to decode is recorded by the pipeline, not here. Extensions match case-insensitively.
Nothing in a genre folder is left out silently: a file there that is not an input (``notes.txt``, ``cover.jpg``
among audio) is one of :attr:`Listing.problems`, which prepare writes to ``errors.parquet``. Hidden files, the
Kaggle download's non-audio folders and files outside genre folders (``features_30_sec.csv``) are not inputs.
No ``ray``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from spectrotune.audio.io import AUDIO_EXTENSIONS, is_audio_file
from spectrotune.errors import InputError
from spectrotune.sources.spotify import IMAGE_EXTENSIONS, SPLIT_DIRS, SPLIT_OF_FOLDER, is_image_file, song_and_clip

# Folders of the Kaggle GTZAN download that hold no audio, skipped so their files never look like genres.
_SKIP_DIRS = {"images_original", "__MACOSX", ".git"}


@dataclass(frozen=True)
class SourceItem:
    """One input file.

    ``track_id`` is the unit of splitting (the file stem for audio; the song id for Spotify images, or the image
    stem when the shipped leaky folders are used); ``clip`` is the image's clip index within its song (``None``
    for audio); ``folder_split`` the Spotify folder it sat in (``None`` for audio).
    """

    path: str
    genre: str
    track_id: str
    clip: int | None = None
    folder_split: str | None = None


@dataclass(frozen=True)
class Listing:
    """The files of a source plus the problems found while listing (e.g. duplicate track ids)."""

    kind: str
    items: tuple[SourceItem, ...]
    problems: tuple[tuple[str, str], ...]  # (path, reason)

    @property
    def genres(self) -> tuple[str, ...]:
        """Sorted genre names: the label list of the dataset."""
        return tuple(sorted({item.genre for item in self.items}))


def detect_kind(root: str | Path) -> str:
    """``spotify`` if ``root`` (or ``root/dataset``) has training/validation/testing folders, else ``audio``."""
    return "spotify" if _spotify_root(Path(root)) is not None else "audio"


def list_source(root: str | Path, *, kind: str = "auto", group_by_song: bool = True) -> Listing:
    """List a source folder.

    Parameters
    ----------
    root : str or Path
        The corpus folder.
    kind : {"auto", "audio", "spotify"}
        Source kind; ``auto`` uses :func:`detect_kind`.
    group_by_song : bool
        Spotify only: ``True`` makes the song the track (clips become segments); ``False`` makes every image its
        own track (the shipped folders' unit).
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: source folder not found")
    if kind == "auto":
        kind = detect_kind(root)
    if kind == "audio":
        return _list_audio(root)
    if kind == "spotify":
        return _list_spotify(root, group_by_song=group_by_song)
    raise InputError(f"{root}: unknown source kind {kind!r} (valid: auto, audio, spotify)")


def _walk(root: Path):
    """Every file below ``root`` in sorted order, skipping hidden entries and the non-audio Kaggle folders."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def _strays(paths: list[Path], wanted, *, outside: set[Path], what: str) -> list[tuple[str, str]]:
    """``(path, reason)`` of each file in ``paths`` that ``wanted`` refuses but that sits in a genre folder (one
    holding a wanted file, other than the folders in ``outside``)."""
    genre_dirs = {p.parent for p in paths if wanted(p)} - outside
    strays = []
    for path in paths:
        if path.parent in genre_dirs and not wanted(path):
            ext = path.suffix.lower() or "no extension"
            strays.append((str(path), f"not {what} spectrotune reads ({ext}); left out"))
    return strays


def _list_audio(root: Path) -> Listing:
    """The audio files of ``root``: genre = parent folder, track id = stem (a repeated stem is a problem)."""
    items: list[SourceItem] = []
    problems: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    paths = list(_walk(root))
    problems += _strays(paths, is_audio_file, outside={root}, what="an audio file")
    for path in paths:
        if not is_audio_file(path):
            continue
        if path.parent == root:
            problems.append((str(path), "not inside a <genre>/ folder: genre unknown"))
            continue
        genre, track_id = path.parent.name, path.stem
        if track_id in seen:
            problems.append((str(path), f"duplicate track id {track_id!r} (also {seen[track_id]}); skipped"))
            continue
        seen[track_id] = str(path)
        items.append(SourceItem(path=str(path), genre=genre, track_id=track_id))
    if not items:
        raise InputError(f"{root}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) found in <genre>/ folders")
    return Listing(kind="audio", items=tuple(items), problems=tuple(problems))


def _spotify_root(root: Path) -> Path | None:
    """``root`` or ``root/dataset`` when it holds a Spotify split folder, else None."""
    for candidate in (root, root / "dataset"):
        if any((candidate / folder).is_dir() for folder in SPLIT_DIRS):
            return candidate
    return None


def _list_spotify(root: Path, *, group_by_song: bool) -> Listing:
    """The images of a Spotify tree; the track is the song (``group_by_song``) or the image itself."""
    base = _spotify_root(root)
    if base is None:
        raise InputError(f"{root}: not a Spotify-layout folder (expected training/, validation/, testing/)")
    items: list[SourceItem] = []
    problems: list[tuple[str, str]] = []
    for folder, split in SPLIT_OF_FOLDER.items():
        paths = list(_walk(base / folder))
        problems += _strays(paths, is_image_file, outside={base / folder}, what="an image")
        for path in paths:
            if not is_image_file(path):
                continue
            if path.parent == base / folder:
                problems.append((str(path), "not inside a <genre>/ folder: genre unknown"))
                continue
            song, clip = song_and_clip(path.stem)
            if group_by_song:
                track_id, clip_index = f"{path.parent.name}/{song}", clip
            else:
                track_id, clip_index = f"{path.parent.name}/{path.stem}", 0
            items.append(
                SourceItem(
                    path=str(path),
                    genre=path.parent.name,
                    track_id=track_id,
                    clip=clip_index if clip_index is not None else 0,
                    folder_split=split,
                )
            )
    if not items:
        raise InputError(f"{base}: no images ({', '.join(IMAGE_EXTENSIONS)}) found in <split>/<genre>/ folders")
    if group_by_song:
        items = _number_clips(items)
    return Listing(kind="spotify", items=tuple(items), problems=tuple(problems))


def _number_clips(items: list[SourceItem]) -> list[SourceItem]:
    """Give the clips of each song distinct segment numbers (clip indices may repeat or be missing)."""
    by_track: dict[str, list[SourceItem]] = {}
    for item in items:
        by_track.setdefault(item.track_id, []).append(item)
    out: list[SourceItem] = []
    for track_items in by_track.values():
        clips = [item.clip for item in track_items]
        if len(set(clips)) == len(clips):
            out.extend(track_items)
            continue
        ordered = sorted(track_items, key=lambda item: (item.clip or 0, item.path))
        out.extend(SourceItem(i.path, i.genre, i.track_id, n, i.folder_split) for n, i in enumerate(ordered))
    return out
