"""Short clips and silence in predict: a clip under one window is loop-padded (zeros when the bundle says so, and
for bundles written before audio.pad existed), and a silent or nearly silent clip is flagged instead of getting a
genre."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from legacy_data import LEGACY_BUNDLE
from tiny_bundle import SR, tiny_bundle

from spectrotune.audio import io as audio
from spectrotune.bundle import load_bundle
from spectrotune.predict.core import format_predictions, predict_files
from spectrotune.predict.driver import predict

QUIET = {"log": lambda _: None}


def _clip(seconds: float, *, sr: int = SR, level: float = 0.3, seed: int = 0) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    return (level * (np.sin(2 * np.pi * 330 * t) + 0.3 * rng.standard_normal(t.size))).astype(np.float32)


def _probabilities(row: dict, labels: list[str]) -> np.ndarray:
    got = {row[f"top{i}"]: row[f"p{i}"] for i in range(1, len(labels) + 1)}
    return np.array([got[g] for g in labels])


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("short")
    return {"repeat": tiny_bundle(root / "repeat"), "zeros": tiny_bundle(root / "zeros", overrides=("audio.pad=zeros",)),
            "old": tiny_bundle(root / "old", drop_audio_keys=("pad",)), "root": root}


@pytest.fixture(scope="module")
def preview(bundles):
    """A 2-s preview: under the bundles' 3-s window."""
    path = bundles["root"] / "preview.wav"
    sf.write(path, _clip(2.0), SR, subtype="FLOAT")
    return path


def _expected(bundle, y: np.ndarray, pad: str) -> np.ndarray:
    window = bundle.recipe.windowing.window
    filled = np.tile(y, 2)[:window] if pad == "repeat" else np.concatenate([y, np.zeros(window - len(y), np.float32)])
    return bundle.predict_proba(bundle.recipe.log_mel(filled[None])).astype(np.float64).mean(axis=0)


@pytest.mark.parametrize("which, pad", [("repeat", "repeat"), ("zeros", "zeros"), ("old", "zeros")])
def test_a_short_clip_is_padded_as_the_bundle_says(bundles, preview, which, pad):
    bundle = load_bundle(bundles[which])
    assert bundle.recipe.windowing.pad == pad
    x = bundle.recipe.model_windows(preview)
    y = audio.decode(preview, sr=SR, min_seconds=0.0)
    window = bundle.recipe.windowing.window
    filled = np.tile(y, 2)[:window] if pad == "repeat" else np.concatenate([y, np.zeros(window - len(y), np.float32)])
    assert x.padded and x.mel.shape[0] == 1
    np.testing.assert_array_equal(x.mel, bundle.recipe.log_mel(filled[None]))  # the window is the clip tiled
    result = predict(bundles[which], [preview], top_k=4, use_ray=False, **QUIET)
    (row,) = result.rows
    assert (row["status"], row["padded"], row["n_segments"]) == ("ok", True, 1)
    np.testing.assert_array_equal(_probabilities(row, bundle.labels), _expected(bundle, y, pad))


def test_loop_padding_changes_the_answer_from_zero_padding(bundles, preview):
    bundle = load_bundle(bundles["repeat"])
    y = audio.decode(preview, sr=SR)
    assert not np.allclose(_expected(bundle, y, "repeat"), _expected(bundle, y, "zeros"), atol=1e-4)


def test_the_325b798_bundle_still_predicts_a_short_clip_zero_padded(tmp_path):
    bundle = load_bundle(LEGACY_BUNDLE)  # 1-s windows, written before audio.pad existed
    path = tmp_path / "half.wav"
    y = _clip(0.4, seed=3)
    sf.write(path, y, SR, subtype="FLOAT")
    (row,), _ = predict_files(bundle, [path], top_k=3)
    window = bundle.recipe.windowing.window
    zero_padded = np.concatenate([y, np.zeros(window - len(y), np.float32)])[None]
    expected = bundle.predict_proba(bundle.recipe.log_mel(zero_padded)).astype(np.float64).mean(axis=0)
    assert row["status"] == "ok" and row["padded"]
    np.testing.assert_array_equal(_probabilities(row, bundle.labels), expected)


@pytest.fixture(scope="module")
def quiet_files(bundles):
    root = bundles["root"] / "quiet"
    root.mkdir()
    rng = np.random.default_rng(7)
    clips = {
        "zeros.wav": np.zeros(4 * SR, np.float32),  # digital silence
        "hiss.wav": (10 ** (-70 / 20) * rng.standard_normal(4 * SR)).astype(np.float32),  # -70 dBFS noise floor
        "quiet_music.wav": _clip(4.0, level=10 ** (-45 / 20)),  # quiet, but there
        "music.wav": _clip(4.0),
    }
    for name, y in clips.items():
        sf.write(root / name, y, SR, subtype="FLOAT")
    return root, clips


def test_silent_and_nearly_silent_clips_are_flagged_not_given_a_genre(bundles, quiet_files, tmp_path):
    root, clips = quiet_files
    out = tmp_path / "preds.csv"
    result = predict(bundles["repeat"], [root / n for n in clips], top_k=2, timeline=True, output=out,
                     use_ray=False, **QUIET)
    rows = {Path(r["path"]).name: r for r in result.rows}
    for name in ("zeros.wav", "hiss.wav"):
        row = rows[name]
        assert (row["status"], row["silent"], row["top1"], row["p1"]) == ("silent", True, None, None), row
        assert row["n_segments"] == 1 and "below -60 dBFS" in row["reason"]
    for name in ("quiet_music.wav", "music.wav"):
        assert (rows[name]["status"], rows[name]["silent"]) == ("ok", False) and rows[name]["top1"] is not None
    assert result.errors == [] and len(result.silent) == 2 and "2 silent (no genre)" in result.summary()
    assert {Path(t["path"]).name for t in result.timeline} == {"quiet_music.wav", "music.wav"}
    frame = pd.read_csv(out)
    assert frame.set_index(frame["path"].map(lambda p: Path(p).name))["silent"].to_dict() == {
        "zeros.wav": True, "hiss.wav": True, "quiet_music.wav": False, "music.wav": False}
    text = format_predictions(result.rows, 2)
    assert "could not be predicted" not in text
    assert sum("silent: no genre" in line for line in text.splitlines()) == 2


def test_one_loud_window_is_enough_to_classify(bundles, tmp_path):
    y = np.zeros(9 * SR, np.float32)
    y[6 * SR:] = _clip(3.0)  # two silent windows, then music
    path = tmp_path / "late_start.wav"
    sf.write(path, y, SR, subtype="FLOAT")
    (row,), _ = predict_files(load_bundle(bundles["repeat"]), [path])
    assert row["status"] == "ok" and not row["silent"] and row["n_segments"] == 3
