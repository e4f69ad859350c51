"""Tests of spectrotune.sources.spotify_render: JPGs rendered like the Spotify dataset's, and the corpus writer."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from spotify_clips import SR, decode_rgb, synthetic_clip
from spectrotune.errors import InputError
from spectrotune.sources.spotify import SPLIT_DIRS, crop_white_border, detect_colormap, image_to_array
from spectrotune.sources.spotify_render import render_spotify_corpus


# --- rendering ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signed", [True, False])
def test_render_size_is_about_515x389_with_white_border(rendered, signed):
    rgb = decode_rgb(rendered[signed][0])
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
    assert detect_colormap(decode_rgb(path)) == expected


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
