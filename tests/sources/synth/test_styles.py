"""Tests of spectrotune.sources.synth.styles: genre names and the style table."""

from __future__ import annotations

import pytest

from spectrotune.errors import ConfigError
from spectrotune.sources.synth.styles import GTZAN_GENRES, SPOTIFY_GENRES, genre_names, genre_style


def test_genre_names_follow_gtzan_then_numbered():
    assert genre_names(10) == GTZAN_GENRES
    assert genre_names(3) == ("blues", "classical", "country")
    assert genre_names(12)[10:] == ("genre10", "genre11")
    assert len(SPOTIFY_GENRES) == 14 and len(set(SPOTIFY_GENRES)) == 14


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_genre_names_rejects_bad_count(n):
    with pytest.raises(ConfigError, match=str(n)):
        genre_names(n)


def test_every_genre_has_its_own_style():
    styles = [genre_style(i) for i in range(14)]
    assert [s.name for s in styles] == list(genre_names(14))
    fields = [tuple(v for k, v in vars(s).items() if k != "name") for s in styles]
    assert len(set(fields)) == len(fields)
    assert genre_style(12) == genre_style(12)  # procedural styles are deterministic


def test_styles_carry_genre_character():
    by_name = {s.name: s for s in (genre_style(i) for i in range(10))}
    assert by_name["classical"].levels[0] == 0.0  # no drums
    assert min(by_name["metal"].tempo) > max(by_name["hiphop"].tempo)
    assert by_name["metal"].distortion > by_name["rock"].distortion > by_name["pop"].distortion
    assert all(by_name["disco"].kick[i] == 1.0 for i in (0, 4, 8, 12))  # four on the floor
    assert by_name["reggae"].kick[0] == 0.0 and by_name["reggae"].kick[8] == 1.0  # one drop
    assert by_name["jazz"].swing > 0.1 and by_name["jazz"].chord_size == 4
