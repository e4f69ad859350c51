"""The PyTorch ports and the numpy front end against the original musicnn 0.1.0 (TF 1.14, numpy 1.16, librosa 0.7.2)
outputs in ``../shared/data/musicnn-reference/`` (see its README): same log-mel, taggram, logits and every
intermediate feature, from the weights ``spectrotune fetch musicnn`` converted.

Tolerances, each a few times what this machine measured (torch 2.13 CPU, one thread), so that another CPU's
kernels pass while a real error (PyTorch's batch-norm epsilon, a non-interleaved pool, constant padding) fails by
orders of magnitude:

============================  ==================  ==================  =====================================
comparison                    tolerance           measured here       what a known mistake gives
============================  ==================  ==================  =====================================
log-mel from the waveform     5e-4 abs            4.1e-4 (3 values)   constant padding: 1.27
same, values off by > 1e-5    <= 8 of 60,096      3 (float16 flips)
taggram from stored patches   2e-6 abs            2.7e-7              eps 1e-5: ~0.05
logits                        3e-5 abs            4.8e-6              eps 1e-5: 0.27
every feature                 2e-5 x max|ref|     2.4e-6 x max|ref|
taggram from the waveform     5e-6 abs            7.3e-7              float16 overflow (numpy 2): 0.21
============================  ==================  ==================  =====================================
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from spectrotune.audio.musicnn_frontend import musicnn_input, musicnn_logmel
from spectrotune.models import pretrained
from spectrotune.models.musicnn import load_pretrained

REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "musicnn-reference"
MUSICNN_FEATURES = ("timbral", "temporal", "cnn1", "cnn2", "cnn3", "max_pool", "mean_pool", "penultimate")
VGG_FEATURES = ("pool1", "pool2", "pool3", "pool4", "pool5")


def _reference(model: str) -> dict[str, np.ndarray]:
    path = REFERENCE / f"{model}.npz"
    if not path.is_file():
        pytest.fail(f"the musicnn reference is missing: {path} (it lives in ../shared/data/musicnn-reference/ beside "
                    "the repository)", pytrace=False)
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def networks(musicnn_cache):
    return {m: load_pretrained(m, cache=musicnn_cache / "musicnn") for m in pretrained.MODELS}


@pytest.mark.parametrize("model", pretrained.MODELS)
def test_frontend_from_waveform(model):
    ref = _reference(model)
    np.testing.assert_array_equal(ref["waveform"], np.load(REFERENCE / "test_signal_16k.npy"))
    logmel = musicnn_logmel(ref["waveform"])
    assert logmel.shape == ref["logmel_full"].T.shape == (96, 626)
    diff = np.abs(logmel.T - ref["logmel_full"])
    assert diff.max() <= 5e-4
    assert int((diff > 1e-5).sum()) <= 8  # only float16 rounding flips; the rest agree to float32 rounding
    patches, padded = musicnn_input(ref["waveform"])
    assert not padded and patches.shape == (3, 96, 187)
    assert np.abs(patches.transpose(0, 2, 1) - ref["logmel_patches"]).max() <= 5e-4


@pytest.mark.parametrize("model", pretrained.MODELS)
def test_network_from_stored_patches(networks, model):
    ref = _reference(model)
    net, meta = networks[model]
    assert list(meta.tags) == [str(t) for t in ref["tags"]]
    assert not net.training
    with torch.no_grad():
        out = net.features(torch.from_numpy(np.ascontiguousarray(ref["logmel_patches"].transpose(0, 2, 1))))
    assert np.abs(out.taggram.numpy() - ref["taggram"]).max() <= 2e-6
    assert np.abs(out.logits.numpy() - ref["logits"]).max() <= 3e-5
    names = MUSICNN_FEATURES if pretrained.architecture_of(model) == "musicnn" else VGG_FEATURES
    assert set(out.features) == set(names)
    for name in names:
        got, expected = out.features[name].numpy(), ref[name]
        assert got.shape == expected.shape, name
        assert np.abs(got - expected).max() <= 2e-5 * np.abs(expected).max(), name


@pytest.mark.parametrize("model", pretrained.MODELS)
def test_whole_pipeline_from_waveform_and_top5(networks, model):
    """Waveform -> our front end -> our network, against the original's taggram and its top-5 (4 decimals)."""
    ref = _reference(model)
    net, meta = networks[model]
    patches, _ = musicnn_input(ref["waveform"], params=meta.frontend)
    with torch.no_grad():
        taggram = torch.sigmoid(net(torch.from_numpy(patches))).numpy()
    assert np.abs(taggram - ref["taggram"]).max() <= 5e-6
    mean = taggram.mean(axis=0)
    top5 = [(meta.tags[i], round(float(mean[i]), 4)) for i in np.argsort(-mean)[:5]]
    expected = json.loads((REFERENCE / "manifest.json").read_text())["models"][model]["top5_of_mean_taggram"]
    assert [t for t, _ in top5] == [t for t, _ in expected]
    assert np.allclose([p for _, p in top5], [p for _, p in expected], atol=1e-4)
