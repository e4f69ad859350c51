"""Fixtures shared by the tests of spectrotune.sources (a rendered Spotify-style image for both colormaps)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spotify_clips import synthetic_clip
from spectrotune.sources.spotify_render import render_spotify_image


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[bool, tuple[Path, str]]:
    """The synthetic clip rendered both ways: {signed: (jpg path, colormap specshow picked)}."""
    root = tmp_path_factory.mktemp("rendered")
    y = synthetic_clip()
    out = {}
    for signed in (True, False):
        path = root / f"clip_signed{signed}.jpg"
        out[signed] = (path, render_spotify_image(y, path, signed=signed))
    return out
