"""Prediction with a bundle: odd but valid audio is predicted, bad files are listed, outputs round trip, and the
Ray Data path gives exactly the in-process results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from librosa_reference import log_mel_librosa

from spectrotune.audio import io as audio
from spectrotune.audio import logmel
from spectrotune.bundle import load_bundle, save_bundle
from spectrotune.config import load_config
from spectrotune.errors import ConfigError, InputError
from spectrotune.models.networks import build_model
from spectrotune.models.params import model_params
from spectrotune.predict.core import format_predictions, predict_files
from spectrotune.predict.driver import predict

SR = 22050
LABELS = ["blues", "jazz", "metal", "rock"]
# Bundle feature parameters deliberately unlike the library defaults: predict must use the bundle's.
FEATURES = ["features.n_mels=32", "features.fmax=8000", "features.n_fft=1024", "features.hop_length=256"]
QUIET = {"log": lambda _: None}


def _tone(seconds: float, freq: float, *, sr: int = SR, seed: int = 0) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def _bundle(path: Path, *, overrides: tuple[str, ...] = (), source_kind: str = "audio") -> Path:
    config = load_config("demo", overrides=[*FEATURES, *overrides])
    cfg = config.to_dict()
    n_mels = config.features.n_mels
    n_frames = 40 if source_kind == "spotify" else logmel.n_frames(3 * SR, hop_length=config.features.hop_length)
    params = model_params("cnn", {"width": 8, "depth": 2})
    torch.manual_seed(0)
    # Statistics near the log-mel range make the random net's outputs depend on the input (not saturated).
    mean, std = torch.full((n_mels,), -40.0), torch.full((n_mels,), 20.0)
    model = build_model("cnn", n_classes=len(LABELS), n_mels=n_mels, params=params, norm_mean=mean, norm_std=std)
    return save_bundle(path, model=model.eval(), model_name="cnn", model_params=params, labels=LABELS,
                       input_shape=(n_mels, n_frames), source_kind=source_kind, audio=cfg["audio"],
                       features=cfg["features"], norm_mean=mean.numpy(), norm_std=std.numpy(), metrics={},
                       config=cfg, config_hash=config.hash())


GOOD = {  # name -> (seconds, n_segments with 3-s windows and no overlap, padded)
    "a/normal.wav": (7.0, 2, False),
    "a/stereo44k.wav": (6.5, 2, False),
    "b/short.wav": (1.0, 1, True),
    "b/UPPER.WAV": (9.0, 3, False),
}
BAD = {"b/corrupt.wav": "not a readable audio file", "b/text.wav": "not a readable audio file"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    for i, (name, (seconds, _, _)) in enumerate(GOOD.items()):
        path = root / "files" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name == "a/stereo44k.wav":
            y = _tone(seconds, 330.0, sr=44100, seed=i)
            sf.write(path, np.stack([y, 0.5 * y], axis=1), 44100, subtype="PCM_16")
        else:
            sf.write(path, _tone(seconds, 110.0 * (i + 1), seed=i), SR, subtype="PCM_16")
    good = (root / "files" / "a" / "normal.wav").read_bytes()
    (root / "files" / "b" / "corrupt.wav").write_bytes(b"\x00" * 12 + good[12:])
    (root / "files" / "b" / "text.wav").write_text("this is not audio\n" * 50)
    (root / "files" / "b" / "notes.txt").write_text("not picked up from a folder\n")
    bundle = _bundle(root / "bundle")
    paths = [root / "files" / name for name in (*GOOD, *BAD)]
    result = predict(bundle, paths, top_k=len(LABELS), timeline=True, use_ray=False, **QUIET)
    return {"root": root, "bundle": bundle, "paths": paths, "result": result}


def _rows(result) -> dict[str, dict]:
    return {Path(r["path"]).relative_to(Path(r["path"]).parents[1]).as_posix(): r for r in result.rows}


def test_odd_but_valid_audio_is_predicted(files):
    rows = _rows(files["result"])
    for name, (_, n_segments, padded) in GOOD.items():
        row = rows[name]
        assert (row["status"], row["reason"]) == ("ok", ""), (name, row)
        assert row["n_segments"] == n_segments and row["padded"] is padded, (name, row)


def test_bad_files_are_listed_with_reasons_and_do_not_stop_the_others(files):
    result = files["result"]
    assert [r["path"] for r in result.rows] == [str(p) for p in files["paths"]]  # input order kept
    rows = _rows(result)
    for name, fragment in BAD.items():
        assert rows[name]["status"] == "error" and fragment in rows[name]["reason"], rows[name]
        assert rows[name]["top1"] is None and rows[name]["p1"] is None
    assert len(result.errors) == len(BAD)
    text = format_predictions(result.rows, 2)
    assert f"{len(BAD)} file(s) could not be predicted" in text and "text.wav: not a readable audio file" in text


def test_a_missing_file_is_an_error_row_not_an_exception(files, tmp_path):
    result = predict(files["bundle"], [files["paths"][0], tmp_path / "gone.wav"], use_ray=False, **QUIET)
    assert [r["status"] for r in result.rows] == ["ok", "error"]
    assert "No such file" in result.rows[1]["reason"]


def test_probabilities_sum_to_one_and_top_k_is_ordered(files):
    for row in files["result"].rows:
        if row["status"] != "ok":
            continue
        p = [row[f"p{i}"] for i in range(1, len(LABELS) + 1)]
        assert sum(p) == pytest.approx(1.0, abs=1e-6)
        assert p == sorted(p, reverse=True)
        assert sorted(row[f"top{i}"] for i in range(1, len(LABELS) + 1)) == sorted(LABELS)


def test_probabilities_follow_the_bundles_own_feature_parameters(files):
    # Independent reference: librosa's log-mel with the bundle's parameters, segment probabilities averaged.
    bundle = load_bundle(files["bundle"])
    f = bundle.meta.features
    segs, _ = audio.segment(audio.decode(files["paths"][0], sr=SR), sr=SR, seconds=3.0)
    mel = log_mel_librosa(segs, sr=SR, n_fft=f["n_fft"], hop_length=f["hop_length"], n_mels=f["n_mels"],
                          fmin=f["fmin"], fmax=f["fmax"], top_db=f["top_db"])
    expected = bundle.predict_proba(mel).mean(axis=0)
    row = files["result"].rows[0]
    got = {row[f"top{i}"]: row[f"p{i}"] for i in range(1, len(LABELS) + 1)}
    np.testing.assert_allclose([got[g] for g in LABELS], expected, atol=1e-3)


@pytest.mark.parametrize("top_k, expected", [(1, 1), (2, 2), (10, len(LABELS))])
def test_top_k_columns(files, top_k, expected):
    rows, _ = predict_files(load_bundle(files["bundle"]), files["paths"][:1], top_k=top_k)
    assert [k for k in rows[0] if k.startswith("top")] == [f"top{i}" for i in range(1, expected + 1)]
    assert rows[0]["top1"] == files["result"].rows[0]["top1"]


@pytest.mark.parametrize("top_k", [0, -1, 1.5, True])
def test_bad_top_k_is_refused(files, top_k):
    with pytest.raises(ConfigError, match="top_k"):
        predict(files["bundle"], files["paths"][:1], top_k=top_k, use_ray=False, **QUIET)


def test_timeline_has_one_row_per_segment_at_the_test_hop(tmp_path, files):
    bundle = _bundle(tmp_path / "b", overrides=("audio.hop_seconds.test=1.5",))
    path = files["root"] / "files" / "b" / "UPPER.WAV"  # 9 s: windows start at 0, 1.5, 3, 4.5, 6
    result = predict(bundle, [path], timeline=True, use_ray=False, **QUIET)
    assert result.rows[0]["n_segments"] == 5
    assert [t["start_seconds"] for t in result.timeline] == [0.0, 1.5, 3.0, 4.5, 6.0]
    assert {t["top1"] for t in result.timeline} <= set(LABELS)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_output_round_trips(files, tmp_path, suffix):
    out = tmp_path / f"preds{suffix}"
    result = predict(files["bundle"], files["paths"], top_k=2, timeline=True, output=out, use_ray=False, **QUIET)
    read = pd.read_csv if suffix == ".csv" else pd.read_parquet
    frame = read(out)
    assert list(frame.columns) == ["path", "status", "reason", "padded", "silent", "n_segments", "top1", "p1",
                                    "top2", "p2"]
    assert frame["path"].tolist() == [r["path"] for r in result.rows]
    assert frame["status"].tolist() == [r["status"] for r in result.rows]
    assert frame["padded"].tolist() == [r["padded"] for r in result.rows]
    ok = frame["status"] == "ok"
    assert frame.loc[ok, "top1"].tolist() == [r["top1"] for r in result.rows if r["status"] == "ok"]
    np.testing.assert_allclose(frame.loc[ok, "p1"], [r["p1"] for r in result.rows if r["status"] == "ok"])
    assert frame.loc[~ok, "p1"].isna().all() and frame.loc[~ok, "reason"].str.contains("not a readable").all()
    timeline = read(tmp_path / f"preds.timeline{suffix}")
    assert len(timeline) == len(result.timeline) == sum(r["n_segments"] for r in result.rows)


def test_unknown_output_format_is_refused_before_any_work(files, tmp_path):
    with pytest.raises(ConfigError, match=r"\.json"):
        predict(files["bundle"], files["paths"], output=tmp_path / "preds.json", use_ray=False, **QUIET)


def test_a_folder_with_no_audio_is_an_input_error(files, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no audio files"):
        predict(files["bundle"], [tmp_path / "empty"], **QUIET)


def test_image_bundles_predict_images(tmp_path):
    from spectrotune.sources.spotify_render import render_spotify_image

    bundle = _bundle(tmp_path / "b", source_kind="spotify")
    render_spotify_image(_tone(3.0, 440.0), tmp_path / "imgs" / "pop" / "song_1.jpg")
    (tmp_path / "imgs" / "pop" / "song_2.JPG").write_bytes(b"not an image")
    (tmp_path / "imgs" / "pop" / "song.wav").write_bytes(b"")  # audio is not what an image bundle reads
    result = predict(bundle, [tmp_path / "imgs"], use_ray=False, **QUIET)
    assert [(Path(r["path"]).name, r["status"], r["n_segments"]) for r in result.rows] == [
        ("song_1.jpg", "ok", 1), ("song_2.JPG", "error", 0)]


@pytest.mark.integration
def test_folder_on_ray_data_equals_in_process(files, ray_session):
    folder = files["root"] / "files"
    on_ray = predict(files["bundle"], [folder], top_k=3, timeline=True, **QUIET)
    assert on_ray.used_ray  # a folder goes to Ray Data by default
    local = predict(files["bundle"], [folder], top_k=3, timeline=True, use_ray=False, **QUIET)
    assert not local.used_ray
    assert on_ray.rows == local.rows and on_ray.timeline == local.timeline
    names = sorted(Path(r["path"]).name for r in on_ray.rows)  # recursive; notes.txt is not audio
    assert names == sorted(Path(n).name for n in (*GOOD, *BAD))
