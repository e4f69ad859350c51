"""``spectrotune tag`` in this process: the reference signal's tags as the original gives them, per-window rows,
short and unreadable files, the output tables, and an empty cache refused saying what to run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from spectrotune.errors import ConfigError, InputError
from spectrotune.predict.tag import Tagger, format_tags, tag

REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "musicnn-reference"
QUIET = {"log": lambda _: None}


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    """The reference signal (16 kHz float WAV), its first 2 s, a 22.05-kHz stereo copy of 7 s, and a broken file."""
    root = tmp_path_factory.mktemp("tag")
    y = np.load(REFERENCE / "test_signal_16k.npy")
    sf.write(root / "signal.wav", y, 16000, subtype="FLOAT")
    sf.write(root / "short.wav", y[:32000], 16000, subtype="FLOAT")
    t = np.arange(7 * 22050) / 22050
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    sf.write(root / "stereo22k.flac", np.stack([tone, 0.5 * tone], axis=1), 22050)
    (root / "broken.wav").write_text("not audio\n" * 100)
    return root


def _expected_top5(model: str) -> list[tuple[str, float]]:
    return json.loads((REFERENCE / "manifest.json").read_text())["models"][model]["top5_of_mean_taggram"]


@pytest.mark.parametrize("model", ["MSD_musicnn", "MTT_vgg"])
def test_tag_a_file_gives_the_originals_tags(musicnn_cache, audio, model):
    result = tag([audio / "signal.wav"], model=model, top_k=5, cache=musicnn_cache / "musicnn", use_ray=False,
                 **QUIET)
    (row,) = result.rows
    assert row["status"] == "ok" and row["n_windows"] == 3 and not row["padded"]
    got = [(row[f"top{i}"], row[f"p{i}"]) for i in range(1, 6)]
    expected = _expected_top5(model)
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert np.allclose([p for _, p in got], [p for _, p in expected], atol=1e-4)
    with np.load(REFERENCE / f"{model}.npz") as ref:
        taggram = np.array([[w[t] for t in result.tags] for w in result.windows])
        assert np.abs(taggram - ref["taggram"]).max() < 5e-6
    assert [w["start_seconds"] for w in result.windows] == [0.0, 2.992, 5.984]


def test_short_resampled_and_broken_files(musicnn_cache, audio):
    tagger = Tagger("MTT_musicnn", cache=musicnn_cache / "musicnn", top_k=3)
    rows = [tagger.tag_file(audio / name)[0] for name in ("short.wav", "stereo22k.flac", "broken.wav")]
    assert rows[0]["status"] == "ok" and rows[0]["padded"] and rows[0]["n_windows"] == 1
    assert rows[1]["status"] == "ok" and not rows[1]["padded"] and rows[1]["n_windows"] == 2  # 7 s -> 2 windows
    assert rows[2]["status"] == "error" and "not a readable audio file" in rows[2]["reason"]
    assert rows[2]["top1"] is None
    text = format_tags(rows, 3)
    assert "1 file(s) could not be tagged" in text and "(1 window, padded)" in text


def test_outputs(musicnn_cache, audio, tmp_path):
    out = tmp_path / "tags.parquet"
    result = tag([audio / "signal.wav", audio / "broken.wav"], model="MSD_vgg", top_k=2,
                 cache=musicnn_cache / "musicnn", output=out, use_ray=False, **QUIET)
    rows = pd.read_parquet(out)
    assert list(rows.columns) == ["path", "status", "reason", "padded", "n_windows", "top1", "p1", "top2", "p2"]
    assert rows["status"].tolist() == ["ok", "error"]
    taggram = pd.read_parquet(tmp_path / "tags.taggram.parquet")
    assert list(taggram.columns) == ["path", "window", "start_seconds", *result.tags] and len(taggram) == 3
    with pytest.raises(ConfigError, match="unknown format '.txt'"):
        tag([audio / "signal.wav"], cache=musicnn_cache / "musicnn", output=tmp_path / "x.txt", **QUIET)


def test_empty_cache_and_no_files(tmp_path, musicnn_cache):
    with pytest.raises(InputError, match=r"not in the cache .*run `spectrotune fetch musicnn`"):
        tag([tmp_path], cache=tmp_path / "empty", **QUIET)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(InputError, match="no audio files to tag"):
        tag([tmp_path / "nothing"], cache=musicnn_cache / "musicnn", **QUIET)


README = Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    return README.read_text(encoding="utf-8").split("\n## Pretrained musicnn: music tags, and a backbone\n", 1)[1] \
        .split("\n## ", 1)[0]


def test_cli_tag_as_the_readme_shows(musicnn_cache, audio, tmp_path):
    """The README's `spectrotune tag song.wav --windows --output tags.csv`, run as written with SPECTROTUNE_CACHE
    (as the README says) pointing at the session's cache; a single file runs without Ray."""
    line = next(ln for ln in _section().splitlines() if ln.startswith("spectrotune tag song.wav --windows"))
    args = line.split("#")[0].split()[1:]
    assert args == ["tag", "song.wav", "--windows", "--output", "tags.csv"]
    (tmp_path / "song.wav").write_bytes((audio / "signal.wav").read_bytes())
    done = subprocess.run([sys.executable, "-m", "spectrotune", *args], capture_output=True, text=True, timeout=300,
                          check=False, cwd=tmp_path, env=dict(os.environ, SPECTROTUNE_CACHE=str(musicnn_cache)))
    assert done.returncode == 0, done.stderr
    first, *windows = done.stdout.strip().splitlines()
    assert first.split()[1:4] == ["rock", "14.3%", "electronic"] and first.endswith("(3 windows)")
    assert len(windows) == 3 and windows[1].strip().startswith("2.99 s")
    rows, taggram = pd.read_csv(tmp_path / "tags.csv"), pd.read_csv(tmp_path / "tags.taggram.csv")
    assert rows["top1"].tolist() == ["rock"] and len(taggram) == 3 and "female vocalists" in taggram.columns


def test_readme_python_example(musicnn_cache, audio, tmp_path, monkeypatch):
    code = _section().split("**In Python**", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    code = "\n".join(line[2:] for line in code.splitlines())  # the block is indented under its list item
    (tmp_path / "song.wav").write_bytes((audio / "stereo22k.flac").read_bytes())  # any format and rate
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPECTROTUNE_CACHE", str(musicnn_cache))
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    out, patches = namespace["out"], namespace["patches"]
    assert patches.shape == (2, 96, 187) and not namespace["padded"]
    assert tuple(out.taggram.shape) == (2, 50) and tuple(out.max_pool.shape) == tuple(out.mean_pool.shape) == (2, 753)
    assert tuple(out.penultimate.shape) == (2, 200)


def test_cli_model_choices_are_the_cached_models():
    import argparse

    from spectrotune.cli import build_parser
    from spectrotune.models.pretrained import MODELS

    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
    (model,) = [a for a in sub.choices["tag"]._actions if a.dest == "model"]  # noqa: SLF001
    assert tuple(model.choices) == MODELS and model.default == "MSD_musicnn"
