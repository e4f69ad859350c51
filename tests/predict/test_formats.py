"""``predict FOLDER`` reads every audio format (issue 10: it skipped the mp3 files that ``predict song.mp3`` read):
lossless copies of one clip get the very same probabilities, m4a is decoded by ffmpeg or fails naming the fix, and
the other files of the folder are named in a warning."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tiny_bundle import SR, tiny_bundle

from spectrotune.predict.driver import predict

QUIET = {"log": lambda _: None}
FFMPEG = shutil.which("ffmpeg")
LOSSLESS = ("wav", "flac", "aiff", "au")
LOSSY = {"ogg": ("OGG", "VORBIS", SR), "opus": ("OGG", "OPUS", 48000), "mp3": ("MP3", "MPEG_LAYER_III", SR)}


def _int16(seconds: float, *, sr: int = SR) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    y = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 550 * t)], axis=1)
    return np.round(y * 32767).astype(np.int16)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    songs = root / "songs"
    (songs / "more").mkdir(parents=True)
    for ext in LOSSLESS:  # the same integer samples in each: every reader must give the same floats
        sf.write(songs / f"clip.{ext}", _int16(4.0), SR, subtype="PCM_16")
    for ext, (fmt, subtype, rate) in LOSSY.items():
        sf.write(songs / "more" / f"lossy.{ext}", _int16(4.0, sr=rate) / 32768.0, rate, format=fmt, subtype=subtype)
    m4a = songs / "more" / "phone.m4a"
    if FFMPEG:
        subprocess.run([FFMPEG, "-nostdin", "-loglevel", "error", "-i", str(songs / "clip.wav"), "-c:a", "aac",
                        str(m4a)], check=True)
    else:
        m4a.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(200))
    (songs / "notes.txt").write_text("liner notes\n")
    (songs / "more" / "cover.jpg").write_bytes(b"\xff\xd8\xff")
    return {"root": root, "songs": songs, "bundle": tiny_bundle(root / "bundle")}


def _by_name(rows: list[dict]) -> dict[str, dict]:
    return {Path(r["path"]).name: r for r in rows}


def test_every_format_in_a_folder_is_predicted(folder, caplog):
    with caplog.at_level(logging.WARNING, logger="spectrotune.predict.driver"):
        result = predict(folder["bundle"], [folder["songs"]], top_k=4, use_ray=False, **QUIET)
    rows = _by_name(result.rows)
    expected = {f"clip.{e}" for e in LOSSLESS} | {f"lossy.{e}" for e in LOSSY} | {"phone.m4a"}
    assert set(rows) == expected
    for name in expected - {"phone.m4a"}:
        assert (rows[name]["status"], rows[name]["n_segments"]) == ("ok", 1), rows[name]
    reference = rows["clip.wav"]
    for ext in LOSSLESS:  # bit-identical input, so bit-identical probabilities
        row = rows[f"clip.{ext}"]
        assert [row[f"top{i}"] for i in range(1, 5)] == [reference[f"top{i}"] for i in range(1, 5)]
        assert [row[f"p{i}"] for i in range(1, 5)] == [reference[f"p{i}"] for i in range(1, 5)]
    m4a = rows["phone.m4a"]
    if FFMPEG:
        assert m4a["status"] == "ok" and m4a["n_segments"] == 1, m4a
    else:
        assert m4a["status"] == "error" and "install ffmpeg (on PATH) to read .m4a" in m4a["reason"]
    left_out = sorted(Path(p).name for p in result.left_out)
    assert left_out == ["cover.jpg", "notes.txt"]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("left out 2 file(s) that are not audio files") and "notes.txt" in warning


def test_without_ffmpeg_an_m4a_is_a_failure_naming_the_fix(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools-here"))
    result = predict(folder["bundle"], [folder["songs"] / "more"], use_ray=False, **QUIET)
    rows = _by_name(result.rows)
    assert rows["phone.m4a"]["status"] == "error" and rows["phone.m4a"]["top1"] is None
    assert rows["phone.m4a"]["reason"] == ("libsndfile cannot read .m4a files and ffmpeg is not installed: install "
                                           "ffmpeg (on PATH) to read .m4a")
    assert [r["path"] for r in result.errors] == [rows["phone.m4a"]["path"]]
    assert all(rows[f"lossy.{e}"]["status"] == "ok" for e in LOSSY)  # libsndfile's formats need no ffmpeg


@pytest.mark.integration
def test_predict_folder_on_ray_data_reads_every_format_too(folder, ray_session):
    on_ray = predict(folder["bundle"], [folder["songs"]], top_k=2, **QUIET)  # a folder: Ray Data by default
    local = predict(folder["bundle"], [folder["songs"]], top_k=2, use_ray=False, **QUIET)
    assert on_ray.used_ray and on_ray.rows == local.rows
    assert {Path(r["path"]).suffix for r in on_ray.rows} == {".wav", ".flac", ".aiff", ".au", ".ogg", ".opus",
                                                             ".mp3", ".m4a"}  # Ray's workers find ffmpeg too
