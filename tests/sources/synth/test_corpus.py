"""Tests of spectrotune.sources.synth.corpus: the GTZAN layout on disk, determinism and argument checks."""

from __future__ import annotations

import math

import pytest
import soundfile as sf

from spectrotune.errors import ConfigError
from spectrotune.sources.synth.corpus import generate_corpus
from spectrotune.sources.synth.styles import genre_names


def _tree_bytes(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_corpus_layout_names_duration_and_rate(tmp_path):
    calls = []
    paths = generate_corpus(
        tmp_path, genres=12, tracks=2, seconds=0.5, sr=8000, progress=lambda d, t: calls.append((d, t))
    )
    expected = sorted(
        tmp_path / "genres_original" / g / f"{g}.{t:05d}.wav" for g in genre_names(12) for t in range(2)
    )
    assert paths == expected
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == expected  # no temporary files left
    assert calls == [(i, 24) for i in range(1, 25)]
    for path in paths:
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (8000, 1, 4000, "PCM_16")


def test_corpus_is_byte_identical_for_a_seed(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate_corpus(tmp_path / name, genres=2, tracks=2, seconds=0.3, seed=seed)
    a, b, c = (_tree_bytes(tmp_path / name) for name in "abc")
    assert a == b
    assert a.keys() == c.keys() and all(a[k] != c[k] for k in a)


def test_adding_tracks_and_genres_keeps_existing_files(tmp_path):
    generate_corpus(tmp_path / "small", genres=2, tracks=2, seconds=0.3)
    generate_corpus(tmp_path / "large", genres=3, tracks=3, seconds=0.3)
    small, large = _tree_bytes(tmp_path / "small"), _tree_bytes(tmp_path / "large")
    assert {k: large[k] for k in small} == small


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"genres": 1}, "1"),
        ({"genres": 0}, "0"),
        ({"tracks": 0}, "0"),
        ({"seconds": 0}, "0"),
        ({"seconds": -2.5}, "-2.5"),
        ({"seconds": math.inf}, "inf"),
    ],
)
def test_corpus_rejects_bad_arguments(tmp_path, kwargs, bad):
    with pytest.raises(ConfigError, match=bad):
        generate_corpus(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())
