"""Model bundles: exact round trip, no code execution on load, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spectrotune.bundle import load_bundle, save_bundle
from spectrotune.errors import BundleError
from spectrotune.models.networks import build_model, model_params


def _save(path, name="cnn"):
    torch.manual_seed(0)
    mean, std = torch.randn(32), torch.rand(32) + 0.5
    model = build_model(name, n_classes=3, n_mels=32, norm_mean=mean, norm_std=std).eval()
    save_bundle(path, model=model, model_name=name, model_params=model_params(name), labels=["a", "b", "c"],
                input_shape=(32, 40), source_kind="audio", audio={"sample_rate": 22050, "segment_seconds": 3.0},
                features={"n_mels": 32}, norm_mean=mean.numpy(), norm_std=std.numpy(),
                metrics={"best_epoch": 1}, config={"seed": 0}, config_hash="abc")
    return model


@pytest.mark.parametrize("name", ["seed_cnn", "cnn", "crnn"])
def test_loaded_bundle_predicts_like_the_in_memory_model(tmp_path, name):
    model = _save(tmp_path / "b", name)
    bundle = load_bundle(tmp_path / "b")
    x = np.random.default_rng(0).standard_normal((5, 32, 40)).astype(np.float32)
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(x)), -1).numpy()
    np.testing.assert_array_equal(bundle.predict_proba(x), expected)
    assert bundle.labels == ["a", "b", "c"] and bundle.input_shape == (32, 40)


def test_weights_are_safetensors_not_pickle(tmp_path):
    _save(tmp_path / "b")
    head = (tmp_path / "b" / "model.safetensors").read_bytes()[:16]
    assert not head.startswith(b"\x80")  # a pickle would start with the PROTO opcode
    assert json.loads((tmp_path / "b" / "bundle.json").read_text())["model"]["name"] == "cnn"


def test_saving_again_replaces_atomically(tmp_path):
    _save(tmp_path / "b")
    _save(tmp_path / "b", "seed_cnn")
    assert load_bundle(tmp_path / "b").meta["model"]["name"] == "seed_cnn"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_missing_or_damaged_bundle_is_a_clear_error(tmp_path):
    with pytest.raises(BundleError, match="not a model bundle"):
        load_bundle(tmp_path)
    _save(tmp_path / "b")
    (tmp_path / "b" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(BundleError, match="cannot load weights"):
        load_bundle(tmp_path / "b")
