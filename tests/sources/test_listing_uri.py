"""Listing an object-store URI (``--source s3://bucket/gtzan/``) gives what listing a local copy of it gives.

The URI here is served by pyarrow's local file system behind :func:`spectrotune.storage.filesystem` (the one place
a URI becomes a file system), so the layouts, the order, the problems and the file stats are compared without a
server; the listing of a real ``s3://`` prefix on the loopback S3 server is in tests/prepare/test_faults.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from spectrotune import storage
from spectrotune.errors import InputError
from spectrotune.sources.listing import detect_kind, list_source

SCHEME = "fake://"


@pytest.fixture
def as_uri(monkeypatch):
    """``fake://<local path>`` resolves to the local folder through pyarrow, as ``s3://`` resolves to a bucket."""
    real = storage.filesystem

    def filesystem(path):
        text = os.fspath(path)
        if text.startswith(SCHEME):
            return pafs.LocalFileSystem(), text[len(SCHEME):].partition("?")[0].rstrip("/")
        return real(path)

    monkeypatch.setattr(storage, "filesystem", filesystem)
    return lambda local: f"{SCHEME}{local}/"


def _write(path: Path, payload: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)


def _as_local(listing, uri: str, local: Path):
    def back(path: str) -> str:
        return path.replace(uri.rstrip("/"), str(local))

    items = [(back(i.path), i.genre, i.track_id, i.clip, i.folder_split) for i in listing.items]
    return (listing.kind, items, [(back(p), back(r)) for p, r in listing.problems],
            {back(p): s for p, s in listing.stats.items()})


def _same(listing, uri, local, expected):
    assert _as_local(listing, uri, local) == (expected.kind, [(i.path, i.genre, i.track_id, i.clip, i.folder_split)
                                                              for i in expected.items],
                                              list(expected.problems), expected.stats)


def test_an_audio_tree_lists_the_same_items_order_problems_and_stats(tmp_path, as_uri):
    root = tmp_path / "gtzan"
    for rel in ("Data/genres_original/blues/blues.00001.wav", "Data/genres_original/blues/blues.00000.wav",
                "Data/genres_original/blues/live/blues.00007.wav",  # a subfolder: after the folder's own files
                "Data/genres_original/blues/z.00003.WAV", "Data/genres_original/jazz/jazz.00000.au",
                "Data/genres_original/jazz/notes.txt", "Data/genres_original/jazz/.hidden.wav",
                "Data/genres_original/.cache/x.wav", "Data/images_original/blues/blues00000.png",
                "Data/features_30_sec.csv", "loose.wav", "other/blues/blues.00000.flac"):
        _write(root / rel, rel.encode())
    uri = as_uri(root)
    listing = list_source(uri)
    expected = list_source(root)
    _same(listing, uri, root, expected)
    assert [i.track_id for i in listing.items][:4] == ["blues.00000", "blues.00001", "z.00003", "blues.00007"]
    assert listing.items[0].path == f"{SCHEME}{root}/Data/genres_original/blues/blues.00000.wav"
    reasons = dict(listing.problems)
    assert "not an audio file spectrotune reads (.txt)" in reasons[f"{SCHEME}{root}/Data/genres_original/jazz/notes.txt"]
    assert "genre unknown" in reasons[f"{SCHEME}{root}/loose.wav"]
    assert "duplicate track id" in reasons[f"{SCHEME}{root}/other/blues/blues.00000.flac"]
    size, mtime = listing.stats[listing.items[0].path]
    assert size == len(b"Data/genres_original/blues/blues.00000.wav") and mtime > 0


def test_a_spotify_tree_is_detected_and_listed_the_same(tmp_path, as_uri):
    root = tmp_path / "spotify"
    for rel in ("dataset/training/rock/song1_0.jpg", "dataset/training/rock/song1_1.jpg",
                "dataset/validation/rock/song1_2.jpg", "dataset/testing/edm/other_song_3.JPG",
                "dataset/testing/edm/readme.md", "dataset/testing/stray.jpg"):
        _write(root / rel)
    uri = as_uri(root)
    assert detect_kind(uri) == "spotify"
    for by_song in (True, False):
        _same(list_source(uri, group_by_song=by_song), uri, root, list_source(root, group_by_song=by_song))


def test_an_empty_or_missing_prefix_is_a_clear_error(tmp_path, as_uri):
    with pytest.raises(InputError, match=rf"{SCHEME}{tmp_path}/missing: source folder not found"):
        list_source(as_uri(tmp_path / "missing"))
    _write(tmp_path / "c" / "readme.txt")
    with pytest.raises(InputError, match="no audio files"):
        list_source(as_uri(tmp_path / "c"))
