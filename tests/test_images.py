"""Tests of spectrotune.sources.spotify: Spotify-style JPG rendering and inversion back to a 2-D array."""

from __future__ import annotations

from pathlib import Path

import librosa
import matplotlib
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from spectrotune.errors import ImageDecodeError, InputError
from spectrotune.sources.spotify import (
    COLORMAPS,
    SPLIT_DIRS,
    crop_white_border,
    detect_colormap,
    image_to_array,
    image_to_array_rgb,
    is_image_file,
    render_spotify_corpus,
    render_spotify_image,
    spotify_song_id,
)

SR = 22050


def synthetic_clip(seed: int = 0, seconds: float = 3.0) -> np.ndarray:
    """Quiet harmonic tones under white-noise steps from -80 to 0 dB (0.25 s each, shuffled).

    The steps make the loudness profile span the whole colormap, from its blue low end through the grey middle to
    its red high end - where a grayscale reading of coolwarm folds over.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    levels_db = rng.permutation(np.linspace(-80.0, 0.0, 12))
    env = 10.0 ** (levels_db[np.minimum(np.arange(len(t)) * 12 // len(t), 11)] / 20.0)
    tones = sum(0.01 / k * np.sin(2 * np.pi * 196.0 * k * t) for k in range(1, 6))
    return (tones + env * 0.3 * rng.standard_normal(len(t))).astype(np.float32)


def tone(freq: float, seconds: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * freq * t) + 1e-4 * rng.standard_normal(len(t))).astype(np.float32)


def true_db(y: np.ndarray, *, signed: bool) -> np.ndarray:
    return librosa.amplitude_to_db(np.abs(librosa.stft(y)), ref=1.0 if signed else np.max)


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


def decode(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


# --- rendering ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signed", [True, False])
def test_render_size_is_about_515x389_with_white_border(rendered, signed):
    rgb = decode(rendered[signed][0])
    height, width, _ = rgb.shape
    assert abs(width - 515) <= 3 and abs(height - 389) <= 3
    border = np.concatenate(
        [rgb[:8].reshape(-1, 3), rgb[-8:].reshape(-1, 3), rgb[:, :8].reshape(-1, 3), rgb[:, -8:].reshape(-1, 3)]
    )
    assert (border.min(axis=1) >= 235).mean() > 0.99
    area = crop_white_border(rgb)
    assert height - 25 <= area.shape[0] <= height - 18 and width - 25 <= area.shape[1] <= width - 18


@pytest.mark.parametrize(("signed", "expected"), [(True, "coolwarm"), (False, "magma")])
def test_specshow_colormap_is_detected(rendered, signed, expected):
    path, picked = rendered[signed]
    assert picked == expected
    assert detect_colormap(decode(path)) == expected


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
    np.testing.assert_array_equal(image_to_array_rgb(decode(path)), image_to_array(path))


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
def test_spotify_song_id_is_everything_before_the_last_underscore(name, song):
    assert spotify_song_id(Path("dataset/training/pop") / name) == song


# --- corpus ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def audio_root(tmp_path_factory) -> Path:
    """GTZAN layout: 2 genres x 2 songs of 6.5 s (2 clips each, tail dropped), one at 16 kHz, plus a corrupt wav."""
    root = tmp_path_factory.mktemp("audio") / "genres_original"
    for g, genre in enumerate(("blues", "metal")):
        for s in range(2):
            song = f"{genre}.0000{s}"
            file_sr = 16000 if (g, s) == (1, 1) else SR
            y = librosa.resample(synthetic_clip(seed=10 * g + s, seconds=6.5), orig_sr=SR, target_sr=file_sr)
            (root / genre).mkdir(parents=True, exist_ok=True)
            sf.write(root / genre / f"{song}.wav", y, file_sr, subtype="PCM_16")
    (root / "metal" / "metal.00009.wav").write_bytes(b"not a RIFF file")
    return root


@pytest.fixture(scope="module")
def corpus(audio_root, tmp_path_factory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("spotify")
    return out, render_spotify_corpus(audio_root, out, seed=0)


def relative_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_corpus_writes_split_genre_song_clip_layout(corpus):
    out, written = corpus
    assert relative_files(out) == sorted(p.relative_to(out).as_posix() for p in written)
    names = {(p.parent.name, p.name) for p in written}
    assert names == {
        (genre, f"{genre}.0000{s}_{k}.jpg") for genre in ("blues", "metal") for s in range(2) for k in range(2)
    }
    assert {p.parent.parent.name for p in written} <= set(SPLIT_DIRS)
    assert all(p.parent.parent.parent == out for p in written)


def test_corpus_skips_undecodable_audio(corpus):
    assert not any("metal.00009" in p.name for p in corpus[1])


def test_corpus_images_read_back(corpus):
    resampled = [p for p in corpus[1] if p.name.startswith("metal.00001_")]
    assert resampled and all(image_to_array(p).shape == (128, 130) for p in resampled)


def test_corpus_is_deterministic_for_a_seed(audio_root, corpus, tmp_path):
    out, written = corpus
    again = render_spotify_corpus(audio_root, tmp_path / "again", seed=0)
    assert [p.relative_to(tmp_path / "again") for p in again] == [p.relative_to(out) for p in written]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(again, written))
    other = render_spotify_corpus(audio_root, tmp_path / "other", seed=3)
    assert [p.parent.parent.name for p in other] != [p.parent.parent.name for p in written]


def test_corpus_follows_fractions_and_max_clips(audio_root, tmp_path):
    written = render_spotify_corpus(audio_root, tmp_path / "train_only", fractions=(1.0, 0.0, 0.0), max_clips=1)
    assert len(written) == 4 and {p.parent.parent.name for p in written} == {"training"}
    assert all(p.stem.endswith("_0") for p in written)


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (-0.1, 0.6, 0.5), (0.0, 0.0, 0.0), (float("nan"), 0.5, 0.5)])
def test_corpus_rejects_bad_fractions(audio_root, tmp_path, fractions):
    with pytest.raises(ValueError, match="fractions"):
        render_spotify_corpus(audio_root, tmp_path, fractions=fractions)


def test_corpus_without_audio_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no .wav"):
        render_spotify_corpus(tmp_path, tmp_path / "out")
