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

The root may be an object-store URI (``s3://bucket/gtzan/``, ``gs://...``): it is listed through pyarrow's file
system (:func:`spectrotune.storage.filesystem`) with the same layouts and rules, in the same order as a local copy
of it, and the items' paths are URIs the prepare tasks read. :attr:`Listing.stats` holds every listed file's size
and modification time (what a resumed prepare compares, :mod:`spectrotune.prepare.resume`). Every stage that reads
a listed file (prepare's tasks, evaluate's noise rebuild, the musicnn embeddings, ``inspect --export-audio``) opens it
through :func:`local_copy`, which downloads a URI item to a temporary local file. No ``ray``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath

from spectrotune import storage

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
    #: path -> (size in bytes, modification time in ns, -1 when unknown) of every file the listing picked or named
    stats: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def genres(self) -> tuple[str, ...]:
        """Sorted genre names: the label list of the dataset."""
        return tuple(sorted({item.genre for item in self.items}))


class SourceReadError(InputError):
    """An object of a URI source cannot be downloaded: message ``"<uri>: <reason>"``, ``.reason`` the reason alone
    (what prepare records with stage ``read``)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.reason = reason


@contextlib.contextmanager
def local_copy(path: str, *, timer: Callable[[str, float], None] | None = None) -> Iterator[str]:
    """A local path holding the bytes of a listed file: ``path`` itself when local, else a temporary download (same
    suffix, so the decoder is chosen by the extension as for a local file: every decoder, ffmpeg's included, reads a
    local file), removed afterwards. ``timer("download", seconds)`` is told how long the download took.

    Raises :class:`SourceReadError` naming ``path`` when the object cannot be read. An
    :class:`~spectrotune.errors.InputError` raised inside the block that names the temporary file (a decoder's) is
    raised again, of the same class, naming ``path`` instead, so a URI item's errors read as a local file's do.
    """
    if not storage.is_uri(path):
        yield path
        return
    t0 = time.perf_counter()
    try:
        payload = storage.read_bytes(path)
    except FileNotFoundError:
        raise SourceReadError(path, "object not found (removed after listing?)") from None
    except Exception as e:  # noqa: BLE001 - StorageError, OSError, pyarrow errors: the reason is kept
        raise SourceReadError(path, f"cannot read the object: {e}".replace(f"{path}: ", "")) from e
    fd, local = tempfile.mkstemp(prefix="spectrotune-src-", suffix=os.path.splitext(path.partition("?")[0])[1])
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        if timer is not None:
            timer("download", time.perf_counter() - t0)
        yield local
    except InputError as e:
        if local not in str(e):
            raise
        again = type(e)(str(e).replace(local, path))
        if isinstance(getattr(e, "reason", None), str):
            again.reason = e.reason.replace(local, path)  # type: ignore[attr-defined]
        raise again from e
    finally:
        os.unlink(local)


class _Tree:
    """The files below a local folder or a URI prefix, as pure paths in :func:`os.walk` order (sorted folders, a
    folder's files before its subfolders'), without hidden entries and the non-audio Kaggle folders."""

    def __init__(self, root: str | Path) -> None:
        self.uri = storage.is_uri(root)
        self.stats: dict[str, tuple[int, int]] = {}
        if not self.uri:
            self.root: PurePath = Path(root)
            if not Path(root).is_dir():
                raise InputError(f"{root}: source folder not found")
            self.files = list(_walk(Path(root)))
            return
        text = os.fspath(root).rstrip("/")
        bare, _, query = text.partition("?")  # pyarrow takes options as a query (?endpoint_override=...)
        fs, inner = storage.filesystem(text)
        inner = inner.rstrip("/")
        if not bare.endswith(inner):
            raise InputError(f"{text}: cannot list this URI (pyarrow resolves it to {inner!r})")
        self._prefix, self._query = bare[: len(bare) - len(inner)], f"?{query}" if query else ""
        self.root = PurePosixPath(inner)
        infos = _list_uri(fs, inner, text)
        self.files = sorted((PurePosixPath(i.path) for i in infos), key=self._walk_key)
        self.files = [p for p in self.files if not _hidden(p.relative_to(self.root))]
        for info in infos:
            self.stats[self.name(PurePosixPath(info.path))] = (int(info.size or 0), _mtime(info.mtime_ns))
        self._dirs = {parent for p in self.files for parent in p.parents}
        if not self.files:
            raise InputError(f"{text}: source folder not found (no objects under this prefix)")

    def name(self, path: PurePath) -> str:
        """The path an item carries: the local path, or the object's URI."""
        return f"{self._prefix}{path}{self._query}" if self.uri else str(path)

    def is_dir(self, path: PurePath) -> bool:
        return path in self._dirs if self.uri else Path(path).is_dir()

    def below(self, folder: PurePath) -> list[PurePath]:
        """The files under ``folder``, in walk order."""
        return [p for p in self.files if folder in p.parents]

    def stat(self, path: PurePath) -> tuple[int, int]:
        """``(size, mtime_ns)`` of a listed file (a dangling link: its own; unreadable: ``(-1, -1)``)."""
        key = self.name(path)
        if key not in self.stats:
            try:
                st = os.stat(path)
            except OSError:
                try:
                    st = os.lstat(path)
                except OSError:
                    st = None
            self.stats[key] = (st.st_size, st.st_mtime_ns) if st is not None else (-1, -1)
        return self.stats[key]

    def _walk_key(self, path: PurePosixPath) -> tuple[tuple[int, str], ...]:
        # os.walk's order: within a folder, its files (0) sorted by name before its subfolders (1) sorted by name
        *folders, file = path.relative_to(self.root).parts
        return (*((1, f) for f in folders), (0, file))


def _list_uri(fs, inner: str, uri: str) -> list:
    import pyarrow.fs as pafs

    try:
        infos = fs.get_file_info(pafs.FileSelector(inner, recursive=True, allow_not_found=True))
    except OSError as e:
        raise InputError(f"{uri}: cannot list the source: {e}") from e
    return [i for i in infos if i.type == pafs.FileType.File]


def _mtime(ns: int | None) -> int:
    return int(ns) if ns is not None else -1


def _hidden(rel: PurePath) -> bool:
    """A hidden entry, or a file inside a skipped folder, on the way from the root to ``rel``."""
    *folders, file = rel.parts
    return file.startswith(".") or any(f in _SKIP_DIRS or f.startswith(".") for f in folders)


def detect_kind(root: str | Path) -> str:
    """``spotify`` if ``root`` (or ``root/dataset``) has training/validation/testing folders, else ``audio``."""
    return "spotify" if _spotify_root(_Tree(root)) is not None else "audio"


def list_source(root: str | Path, *, kind: str = "auto", group_by_song: bool = True) -> Listing:
    """List a source folder.

    Parameters
    ----------
    root : str or Path
        The corpus folder, or an object-store URI (``s3://bucket/gtzan/``).
    kind : {"auto", "audio", "spotify"}
        Source kind; ``auto`` uses :func:`detect_kind`.
    group_by_song : bool
        Spotify only: ``True`` makes the song the track (clips become segments); ``False`` makes every image its
        own track (the shipped folders' unit).
    """
    if kind not in ("auto", "audio", "spotify"):
        raise InputError(f"{root}: unknown source kind {kind!r} (valid: auto, audio, spotify)")
    tree = _Tree(root)
    if kind == "auto":
        kind = "spotify" if _spotify_root(tree) is not None else "audio"
    listing = _list_audio(tree) if kind == "audio" else _list_spotify(tree, group_by_song=group_by_song)
    paths = [item.path for item in listing.items] + [path for path, _ in listing.problems]
    by_name = {tree.name(p): p for p in tree.files}
    stats = {path: tree.stat(by_name[path]) if path in by_name else (-1, -1) for path in paths}
    return Listing(kind=listing.kind, items=listing.items, problems=listing.problems, stats=stats)


def _walk(root: Path) -> Iterator[Path]:
    """Every file below ``root`` in sorted order, skipping hidden entries and the non-audio Kaggle folders."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def _strays(tree: _Tree, paths: list[PurePath], wanted, *, outside: set[PurePath], what: str
            ) -> list[tuple[str, str]]:
    """``(path, reason)`` of each file in ``paths`` that ``wanted`` refuses but that sits in a genre folder (one
    holding a wanted file, other than the folders in ``outside``)."""
    genre_dirs = {p.parent for p in paths if wanted(p)} - outside
    strays = []
    for path in paths:
        if path.parent in genre_dirs and not wanted(path):
            ext = path.suffix.lower() or "no extension"
            strays.append((tree.name(path), f"not {what} spectrotune reads ({ext}); left out"))
    return strays


def _list_audio(tree: _Tree) -> Listing:
    """The audio files of ``tree``: genre = parent folder, track id = stem (a repeated stem is a problem)."""
    root = tree.root
    items: list[SourceItem] = []
    problems: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    paths = tree.files
    problems += _strays(tree, paths, is_audio_file, outside={root}, what="an audio file")
    for path in paths:
        if not is_audio_file(path):
            continue
        name = tree.name(path)
        if path.parent == root:
            problems.append((name, "not inside a <genre>/ folder: genre unknown"))
            continue
        genre, track_id = path.parent.name, path.stem
        if track_id in seen:
            problems.append((name, f"duplicate track id {track_id!r} (also {seen[track_id]}); skipped"))
            continue
        seen[track_id] = name
        items.append(SourceItem(path=name, genre=genre, track_id=track_id))
    if not items:
        raise InputError(f"{tree.name(root)}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) found in <genre>/ folders")
    return Listing(kind="audio", items=tuple(items), problems=tuple(problems))


def _spotify_root(tree: _Tree) -> PurePath | None:
    """The root or ``root/dataset`` when it holds a Spotify split folder, else None."""
    for candidate in (tree.root, tree.root / "dataset"):
        if any(tree.is_dir(candidate / folder) for folder in SPLIT_DIRS):
            return candidate
    return None


def _list_spotify(tree: _Tree, *, group_by_song: bool) -> Listing:
    """The images of a Spotify tree; the track is the song (``group_by_song``) or the image itself."""
    base = _spotify_root(tree)
    if base is None:
        raise InputError(f"{tree.name(tree.root)}: not a Spotify-layout folder (expected training/, validation/, "
                         "testing/)")
    items: list[SourceItem] = []
    problems: list[tuple[str, str]] = []
    for folder, split in SPLIT_OF_FOLDER.items():
        paths = tree.below(base / folder)
        problems += _strays(tree, paths, is_image_file, outside={base / folder}, what="an image")
        for path in paths:
            if not is_image_file(path):
                continue
            if path.parent == base / folder:
                problems.append((tree.name(path), "not inside a <genre>/ folder: genre unknown"))
                continue
            song, clip = song_and_clip(path.stem)
            if group_by_song:
                track_id, clip_index = f"{path.parent.name}/{song}", clip
            else:
                track_id, clip_index = f"{path.parent.name}/{path.stem}", 0
            items.append(
                SourceItem(
                    path=tree.name(path),
                    genre=path.parent.name,
                    track_id=track_id,
                    clip=clip_index if clip_index is not None else 0,
                    folder_split=split,
                )
            )
    if not items:
        raise InputError(f"{tree.name(base)}: no images ({', '.join(IMAGE_EXTENSIONS)}) found in <split>/<genre>/ "
                         "folders")
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
