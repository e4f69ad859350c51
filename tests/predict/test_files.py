"""Which files a list of paths means (by the bundle's source kind), and where the output tables go."""

from __future__ import annotations

from pathlib import Path

import pytest

from spectrotune.errors import ConfigError
from spectrotune.predict.files import check_output, expand_paths, timeline_path
from spectrotune.sources.kinds import SPOTIFY


@pytest.fixture
def tree(tmp_path):
    for name in ("b/2.wav", "b/1.FLAC", "a/x.jpg", "a/y.PNG", "a/notes.txt", ".hidden/z.wav", "a/.z.wav"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize("kind, expected", [("audio", ["b/1.FLAC", "b/2.wav"]), ("spotify", ["a/x.jpg", "a/y.PNG"]),
                                            (SPOTIFY, ["a/x.jpg", "a/y.PNG"])])
def test_a_folder_search_picks_the_files_of_the_kind_sorted_and_not_hidden(tree, kind, expected):
    files, had_folder = expand_paths([tree], kind=kind)
    assert had_folder and [Path(f).relative_to(tree).as_posix() for f in files] == expected


def test_files_are_kept_as_given_even_when_missing(tree):
    files, had_folder = expand_paths([tree / "a" / "notes.txt", tree / "gone.wav"])
    assert files == [str(tree / "a" / "notes.txt"), str(tree / "gone.wav")] and not had_folder


def test_output_suffixes_and_the_timeline_beside_them(tmp_path):
    assert check_output(None) is None and check_output(tmp_path / "p.CSV") == tmp_path / "p.CSV"
    with pytest.raises(ConfigError, match=r"unknown format '\.json'"):
        check_output(tmp_path / "p.json")
    assert timeline_path(tmp_path / "preds.parquet") == tmp_path / "preds.timeline.parquet"
    assert timeline_path("s3://bucket/preds.csv") == "s3://bucket/preds.timeline.csv"
