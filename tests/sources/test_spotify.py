"""Tests of spectrotune.sources.spotify: the layout rules and the inversion of Spotify-style JPGs to 2-D arrays."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from spotify_clips import corr, decode_rgb, synthetic_clip, tone, true_db
from spectrotune.errors import ImageDecodeError, InputError
from spectrotune.sources.spotify import (
    COLORMAPS,
    crop_white_border,
    detect_colormap,
    image_to_array,
    image_to_array_rgb,
    is_image_file,
    song_and_clip,
    spotify_song_id,
)
from spectrotune.sources.spotify_render import render_spotify_image


# --- colormaps ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", COLORMAPS)
def test_detect_colormap_on_the_lookup_table_itself(name):
    lut = (matplotlib.colormaps[name](np.linspace(0.0, 1.0, 300))[:, :3] * 255).round().astype(np.uint8)
    assert detect_colormap(np.broadcast_to(lut, (40, 300, 3))) == name


# --- inversion ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signed", [True, False])
def test_inversion_follows_true_db_time_profile(rendered, signed):
    out = image_to_array(rendered[signed][0], n_frames=130)  # a 3-s clip has exactly 130 STFT frames
    r = corr(out.mean(axis=0), true_db(synthetic_clip(), signed=signed).mean(axis=0))
    assert r >= 0.75


def test_inversion_beats_grayscale_on_coolwarm(rendered):
    path = rendered[True][0]
    profile = true_db(synthetic_clip(), signed=True).mean(axis=0)
    r_inverted = corr(image_to_array(path).mean(axis=0), profile)
    # Same crop and column binning, but luminance instead of colormap position.
    with Image.open(path) as img:
        gray = np.asarray(img.convert("L"))
    gray = crop_white_border(np.repeat(gray[..., None], 3, axis=2))[..., 0].astype(np.float64)
    columns = np.array_split(gray.mean(axis=0), 130)
    r_gray = corr(np.array([c.mean() for c in columns]), profile)
    assert r_inverted - r_gray >= 0.25


@pytest.mark.parametrize(("freq", "rows"), [(110.0, (0, 32)), (6000.0, (96, 128))])
def test_row_zero_is_lowest_frequency(tmp_path, freq, rows):
    path = tmp_path / "tone.jpg"
    render_spotify_image(tone(freq), path)
    energy = image_to_array(path, n_mels=128).mean(axis=1)
    assert rows[0] <= int(energy.argmax()) < rows[1]


@pytest.mark.parametrize(("n_mels", "n_frames"), [(128, 130), (64, 32), (400, 600), (1, 1)])
def test_output_shape_dtype_and_range(rendered, n_mels, n_frames):
    out = image_to_array(rendered[True][0], n_mels=n_mels, n_frames=n_frames)
    assert out.shape == (n_mels, n_frames) and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and out.min() >= 0.0 and out.max() <= 1.0


def test_quiet_is_low_and_loud_is_high(rendered):
    # Position 0 is the colormap's low (quiet) end for both colormaps: loudest frames score highest.
    for signed in (True, False):
        frames = image_to_array(rendered[signed][0]).mean(axis=0)
        db = true_db(synthetic_clip(), signed=signed).mean(axis=0)
        assert frames[db.argmax()] > frames[db.argmin()] + 0.5


def test_array_input_matches_path_input(rendered):
    path = rendered[True][0]
    np.testing.assert_array_equal(image_to_array_rgb(decode_rgb(path)), image_to_array(path))


def test_forcing_the_wrong_colormap_is_rejected(rendered):
    with pytest.raises(ImageDecodeError, match="magma"):
        image_to_array(rendered[True][0], colormap="magma")


@pytest.mark.parametrize("bad", ["truncated", "text", "empty", "missing"])
def test_unreadable_file_raises_image_decode_error_naming_it(rendered, tmp_path, bad):
    path = tmp_path / f"{bad}.jpg"
    if bad == "truncated":
        path.write_bytes(rendered[True][0].read_bytes()[:3000])
    elif bad == "text":
        path.write_text("this is not a jpeg\n")
    elif bad == "empty":
        path.write_bytes(b"")
    with pytest.raises(ImageDecodeError) as info:
        image_to_array(path)
    assert isinstance(info.value, InputError)
    assert info.value.reason and str(info.value) == f"{path}: {info.value.reason}"


@pytest.mark.parametrize("kind", ["random colours", "all white"])
def test_image_that_is_no_spectrogram_is_rejected(tmp_path, kind):
    rng = np.random.default_rng(0)
    if kind == "random colours":
        pixels = rng.integers(0, 256, size=(200, 300, 3), dtype=np.uint8)
    else:
        pixels = np.full((200, 300, 3), 255, dtype=np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path)
    with pytest.raises(ImageDecodeError, match="photo.png"):
        image_to_array(path)


# --- names ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.jpg", True),
        ("A.JPG", True),
        ("b.Jpeg", True),
        ("c.png", True),
        ("d.wav", False),
        ("e.jpg.tmp", False),
        ("jpg", False),
    ],
)
def test_is_image_file(name, expected):
    assert is_image_file(name) is expected


@pytest.mark.parametrize(
    ("name", "song"),
    [
        ("blues.00003_4.jpg", "blues.00003"),
        ("my_song_name_12.jpg", "my_song_name"),
        ("nounderscore.jpg", "nounderscore"),
    ],
)
def test_spotify_song_id_is_the_stem_before_the_clip_index(name, song):
    assert spotify_song_id(Path("dataset/training/pop") / name) == song


@pytest.mark.parametrize(("stem", "expected"), [("song_12", ("song", 12)), ("a_b_3", ("a_b", 3)),
                                                 ("nounderscore", ("nounderscore", None)), ("x_y", ("x_y", None))])
def test_song_and_clip(stem, expected):
    assert song_and_clip(stem) == expected
