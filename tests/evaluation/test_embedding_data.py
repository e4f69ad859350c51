"""Tests of spectrotune.evaluation.embedding_data: the musicnn embedding of patches and of files, and the track table
the baselines fit on them. No Ray (tests/evaluation/test_embeddings.py runs them through Ray Data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from spectrotune.audio.musicnn_frontend import musicnn_input
from spectrotune.errors import ConfigError, DatasetError
from spectrotune.evaluation.baseline_data import TRACK_COLUMNS
from spectrotune.evaluation.embedding_data import Embedder, embedding_columns, embedding_track_table
from spectrotune.models.musicnn import load_pretrained
from spectrotune.models.pretrained import read_pretrained


@pytest.fixture(scope="module")
def embedder(musicnn_cache):
    meta, weights = read_pretrained("MSD_musicnn", musicnn_cache / "musicnn")
    return Embedder("MSD_musicnn", weights=weights, meta=meta.to_dict(), layer="pool", device="cpu")


def test_columns_of_each_layer():
    pool = embedding_columns("pool")
    assert len(pool) == 1506 and pool[0] == "max_pool_0" and pool[753] == "mean_pool_0" and pool[-1] == "mean_pool_752"
    assert embedding_columns("penultimate")[-1] == "penultimate_199" and len(embedding_columns("penultimate")) == 200
    with pytest.raises(ConfigError, match="unknown embedding layer 'logits'"):
        embedding_columns("logits")


def test_patch_vectors_are_the_networks_pooled_features(embedder, musicnn_cache):
    patches = np.random.default_rng(0).uniform(0, 2, (3, 96, 187)).astype(np.float32)
    net, _ = load_pretrained("MSD_musicnn", cache=musicnn_cache / "musicnn")
    with torch.no_grad():
        out = net.features(torch.from_numpy(patches))
    got = embedder({"track_id": np.array(["a", "a", "b"], dtype=object), "mel": patches})
    np.testing.assert_allclose(got["vector"][:, :753], out.max_pool.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["vector"][:, 753:], out.mean_pool.numpy(), rtol=1e-5, atol=1e-6)
    assert list(got["weight"]) == [1, 1, 1] and list(got["reason"]) == ["", "", ""]


def test_a_file_is_the_mean_of_its_tagger_patches_and_a_bad_one_is_named(embedder, tmp_path):
    y = np.random.default_rng(1).uniform(-0.3, 0.3, 16000 * 7).astype(np.float32)
    sf.write(tmp_path / "a.wav", y, 16000)
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    got = embedder({"track_id": np.array(["a", "bad"], dtype=object),
                    "path": np.array([str(tmp_path / "a.wav"), str(tmp_path / "bad.wav")], dtype=object)})
    patches, _ = musicnn_input(sf.read(tmp_path / "a.wav", dtype="float32")[0])
    np.testing.assert_allclose(got["vector"][0], embedder.vectors(patches).mean(axis=0), rtol=1e-5, atol=1e-6)
    assert list(got["weight"]) == [len(patches), 0] == [2, 0]
    assert got["reason"][0] == "" and got["reason"][1] and not got["vector"][1].any()


def test_track_table_weights_rows_by_patches_and_keeps_the_split():
    tracks = pd.DataFrame({"track_id": ["t1", "t2", "t3"], "genre": ["x", "y", "x"], "label": [0, 1, 0],
                           "split": ["train", "test", "valid"]})
    vectors = np.array([[1.0, 2.0], [3.0, 4.0], [10.0, 0.0], [5.0, 5.0]])
    table = embedding_track_table(tracks, ["t1", "t1", "t2", "t3"], np.array([1, 3, 2, 0]), vectors,
                                  columns=["e0", "e1"])
    assert tuple(table.columns) == (*TRACK_COLUMNS, "e0", "e1") and list(table["track_id"]) == ["t1", "t2"]
    np.testing.assert_allclose(table[["e0", "e1"]].to_numpy(), [[2.5, 3.5], [10.0, 0.0]])
    assert list(table["n_segments"]) == [4, 2] and list(table["split"]) == ["train", "test"]
    with pytest.raises(DatasetError, match="no track could be embedded"):
        embedding_track_table(tracks, ["t3"], np.array([0]), np.zeros((1, 2)), columns=["e0", "e1"])


def test_vgg_has_no_embedding_layers(musicnn_cache):
    meta, weights = read_pretrained("MSD_vgg", musicnn_cache / "musicnn")
    with pytest.raises(ConfigError, match="need a musicnn model"):
        Embedder("MSD_vgg", weights=weights, meta=meta.to_dict())
