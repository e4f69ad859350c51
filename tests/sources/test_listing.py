"""Listing corpora: GTZAN (Kaggle and Marsyas layouts), generic folders, Spotify image trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from spectrotune.errors import InputError
from spectrotune.sources.listing import detect_kind, list_source


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_kaggle_layout_genre_from_parent_and_track_from_stem(tmp_path):
    for genre in ("blues", "jazz"):
        for i in range(2):
            _touch(tmp_path / "Data" / "genres_original" / genre / f"{genre}.0000{i}.wav")
    _touch(tmp_path / "Data" / "images_original" / "blues" / "blues00000.png")
    _touch(tmp_path / "Data" / "features_30_sec.csv")
    listing = list_source(tmp_path)
    assert listing.kind == "audio"
    assert listing.genres == ("blues", "jazz")
    assert sorted(i.track_id for i in listing.items) == ["blues.00000", "blues.00001", "jazz.00000", "jazz.00001"]
    assert all(Path(i.path).parent.name == i.genre for i in listing.items)


def test_marsyas_au_and_upper_case_and_non_ascii(tmp_path):
    _touch(tmp_path / "genres" / "rock" / "rock.00000.au")
    _touch(tmp_path / "genres" / "rock" / "LOUD.WAV")
    _touch(tmp_path / "genres" / "rock" / "café-niño.flac")
    _touch(tmp_path / "genres" / "rock" / "notes.txt")
    ids = sorted(i.track_id for i in list_source(tmp_path).items)
    assert ids == ["LOUD", "café-niño", "rock.00000"]


def test_duplicate_track_ids_are_reported_not_silently_merged(tmp_path):
    _touch(tmp_path / "a" / "blues" / "blues.00000.wav")
    _touch(tmp_path / "b" / "blues" / "blues.00000.au")
    listing = list_source(tmp_path)
    assert len(listing.items) == 1
    assert "duplicate track id" in listing.problems[0][1]


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="no audio files"):
        list_source(tmp_path)
    with pytest.raises(InputError, match="not found"):
        list_source(tmp_path / "missing")


def test_spotify_layout_detected_and_grouped_by_song(tmp_path):
    root = tmp_path / "dataset"
    _touch(root / "training" / "rock" / "song1_0.jpg")
    _touch(root / "validation" / "rock" / "song1_1.jpg")
    _touch(root / "testing" / "edm" / "other_song_3.JPG")
    assert detect_kind(tmp_path) == "spotify"
    by_song = list_source(tmp_path, kind="auto")
    assert {i.track_id for i in by_song.items} == {"rock/song1", "edm/other_song"}
    assert {i.folder_split for i in by_song.items} == {"train", "valid", "test"}
    per_image = list_source(tmp_path, kind="spotify", group_by_song=False)
    assert len({i.track_id for i in per_image.items}) == 3
