"""The musicnn-embedding baselines through Ray Data, as `spectrotune baseline` runs them: a log-mel dataset's tracks
embedded from its source audio (the penultimate layer here; the pooled vectors of a musicnn-front-end dataset's own
rows are tests/training/test_transfer_train.py's evaluate), and the one line a missing cache leaves instead."""

from __future__ import annotations

import json

import pytest

from spectrotune import dataset as D
from spectrotune.cli import main
from spectrotune.config import load_config
from spectrotune.prepare.driver import prepare
from spectrotune.sources.synth.corpus import generate_corpus

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def logmel_data(tmp_path_factory, ray_session):
    base = tmp_path_factory.mktemp("embeddings")
    generate_corpus(base / "corpus", genres=2, tracks=6, seconds=3.5, seed=1)
    config = load_config("demo", overrides=["noise.enabled=false", "features.n_mels=32"])
    prepare(base / "corpus", base / "data", config=config, progress=False, log=lambda _: None)
    return base / "data"


def test_baseline_embeds_a_log_mel_datasets_tracks_from_its_source_audio(logmel_data, musicnn_cache, monkeypatch,
                                                                         capsys, tmp_path):
    monkeypatch.setenv("SPECTROTUNE_CACHE", str(musicnn_cache))
    assert main(["baseline", "--data", str(logmel_data), "--embeddings", "penultimate", "--out",
                 str(tmp_path / "b")]) == 0
    saved = json.loads((tmp_path / "b" / "baselines.json").read_text())
    n_test = len(set(D.read_split(logmel_data, "test", columns=[D.TRACK_ID]).column(D.TRACK_ID).to_pylist()))
    for estimator in ("svm_rbf", "logistic_regression"):
        row = saved[f"MSD_musicnn embeddings (penultimate) + {estimator}"]
        assert 0.0 <= row["test_accuracy"] <= 1.0 and row["n_test"] == n_test and row["n_train"] >= 4
    assert "random_forest" in saved and "notes" not in saved  # the handcrafted ones beside them
    assert "| MSD_musicnn embeddings (penultimate) + svm_rbf |" in capsys.readouterr().out


def test_without_the_cache_the_report_says_so_in_one_line(logmel_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPECTROTUNE_CACHE", str(tmp_path / "empty"))
    assert main(["baseline", "--data", str(logmel_data), "--out", str(tmp_path / "b")]) == 0
    saved = json.loads((tmp_path / "b" / "baselines.json").read_text())
    assert "notes" not in saved  # baselines.json maps model names to results, nothing else
    (note,) = [line for line in (tmp_path / "b" / "baselines.md").read_text().splitlines()
               if line.startswith("musicnn embeddings not run")]
    assert note.startswith("musicnn embeddings not run: pretrained model MSD_musicnn is not in the cache")
    assert "spectrotune fetch musicnn" in note and "\n" not in note
    assert "svm_rbf" in saved and not any("embeddings" in name for name in saved)
    assert note in capsys.readouterr().out and note in (tmp_path / "b" / "baselines.md").read_text()
