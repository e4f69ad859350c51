"""Listing finds every audio format of the one list in spectrotune.audio.io (mp3 and m4a included), and names every
other file of a genre folder instead of dropping it silently."""

from __future__ import annotations

from pathlib import Path

import pytest

from spectrotune.audio.io import AUDIO_EXTENSIONS, DECODER_EXTENSIONS
from spectrotune.sources.listing import list_source


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


@pytest.mark.parametrize("ext", AUDIO_EXTENSIONS)
def test_every_audio_extension_is_listed(tmp_path, ext):
    _touch(tmp_path / "rock" / f"song{ext.upper()}")
    _touch(tmp_path / "rock" / "other.wav")
    listing = list_source(tmp_path)
    assert sorted(i.track_id for i in listing.items) == ["other", "song"] and listing.problems == ()


def test_a_genre_folder_of_mp3_ogg_and_m4a_is_listed_whole(tmp_path):
    # issue 10: prepare found only the .ogg files of such a folder and said nothing about the others
    for name in ("a.mp3", "b.ogg", "c.m4a", "d.opus", "e.flac", "f.aiff", "g.au"):
        _touch(tmp_path / "pop" / name)
    listing = list_source(tmp_path)
    assert sorted(Path(i.path).name for i in listing.items) == ["a.mp3", "b.ogg", "c.m4a", "d.opus", "e.flac",
                                                                "f.aiff", "g.au"]
    assert ".m4a" in DECODER_EXTENSIONS  # listed anyway: decode reads it through ffmpeg or says how to


def test_other_files_of_a_genre_folder_are_named_with_their_reason(tmp_path):
    _touch(tmp_path / "Data" / "genres_original" / "jazz" / "jazz.00000.wav")
    notes = _touch(tmp_path / "Data" / "genres_original" / "jazz" / "notes.txt")
    cover = _touch(tmp_path / "Data" / "genres_original" / "jazz" / "cover.jpg")
    bare = _touch(tmp_path / "Data" / "genres_original" / "jazz" / "README")
    _touch(tmp_path / "Data" / "genres_original" / "jazz" / ".DS_Store")  # hidden: not an input, not a problem
    _touch(tmp_path / "Data" / "features_30_sec.csv")  # not in a genre folder
    _touch(tmp_path / "Data" / "images_original" / "jazz" / "jazz00000.png")  # the Kaggle image folder
    _touch(tmp_path / "docs" / "about.txt")  # a folder holding no audio is no genre folder
    listing = list_source(tmp_path)
    assert [i.track_id for i in listing.items] == ["jazz.00000"]
    assert dict(listing.problems) == {
        str(bare): "not an audio file spectrotune reads (no extension); left out",
        str(cover): "not an audio file spectrotune reads (.jpg); left out",
        str(notes): "not an audio file spectrotune reads (.txt); left out",
    }


def test_other_files_among_spotify_images_are_named_too(tmp_path):
    _touch(tmp_path / "training" / "rock" / "song_0.jpg")
    stray = _touch(tmp_path / "training" / "rock" / "song_0.wav")
    _touch(tmp_path / "training" / "LICENSE.txt")  # beside the genre folders, not in one
    listing = list_source(tmp_path)
    assert listing.kind == "spotify" and len(listing.items) == 1
    assert listing.problems == ((str(stray), "not an image spectrotune reads (.wav); left out"),)
