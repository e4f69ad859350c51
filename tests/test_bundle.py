"""Model bundles: exact round trip, no code execution on load, clear errors; the metadata is one typed record
(a bundle written by main at 325b798 still loads and predicts) and its input recipe follows the bundle's own
audio and log-mel parameters."""

from __future__ import annotations

import hashlib
import json
import logging
import re

import numpy as np
import pytest
import torch

from legacy_data import LEGACY_BUNDLE, LEGACY_DATASET

from spectrotune import dataset as D
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from spectrotune.bundle import FORMAT, BundleMeta, load_bundle, meta_checksum, read_meta, save_bundle
from spectrotune.errors import BundleError
from spectrotune.sources.kinds import AUDIO, LogMel, Windowing
from spectrotune.models.networks import build_model
from spectrotune.models.params import model_params


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
    assert load_bundle(tmp_path / "b").meta.model.name == "seed_cnn"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_missing_or_damaged_bundle_is_a_clear_error(tmp_path):
    with pytest.raises(BundleError, match="not a model bundle"):
        load_bundle(tmp_path)
    _save(tmp_path / "b")
    (tmp_path / "b" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(BundleError, match=r"model.safetensors is truncated or changed \(sha256 [0-9a-f]{12}"):
        load_bundle(tmp_path / "b")


def test_bundle_json_records_the_sha256_of_every_other_file_and_its_own_checksum(tmp_path):
    _save(tmp_path / "b")
    raw = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert raw["format"] == FORMAT == "spectrotune-bundle/2"
    assert raw["files"] == {name: hashlib.sha256((tmp_path / "b" / name).read_bytes()).hexdigest()
                            for name in ("model.safetensors", "config.yaml")}
    assert raw["checksum"] == meta_checksum(raw) and len(raw["checksum"]) == 64


def _one_line_error(call) -> str:
    with pytest.raises(BundleError) as info:
        call()
    text = str(info.value)
    assert "\n" not in text and len(text) < 400, text
    return text


def test_a_truncated_weights_file_is_named_in_one_line(tmp_path):
    _save(tmp_path / "b")
    weights = tmp_path / "b" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a copy cut off half-way
    text = _one_line_error(lambda: load_bundle(tmp_path / "b"))
    assert text.startswith(f"{tmp_path / 'b'}: model.safetensors is truncated or changed (sha256 ")


def test_an_edited_bundle_json_is_refused_by_its_checksum(tmp_path):
    _save(tmp_path / "b")
    path = tmp_path / "b" / "bundle.json"
    raw = json.loads(path.read_text())
    raw["labels"] = ["c", "b", "a"]  # still a well-formed bundle.json: only the checksum tells
    path.write_text(json.dumps(raw, indent=2))
    text = _one_line_error(lambda: load_bundle(tmp_path / "b"))
    assert "bundle.json was edited or is corrupt (checksum mismatch" in text and str(tmp_path / "b") in text
    with pytest.raises(BundleError, match="checksum mismatch"):
        read_meta(tmp_path / "b")  # evaluate, serve and predict read the metadata through the same check


@pytest.mark.parametrize("lie", ["shape", "extra", "missing"])
def test_a_weights_header_that_does_not_fit_the_model_is_named_in_one_line(tmp_path, lie):
    """Weights whose header is well-formed but names other shapes or tensors than the model bundle.json describes
    (sha256 and checksum made to agree, as a bundle assembled from two runs would)."""
    _save(tmp_path / "b")
    weights = tmp_path / "b" / "model.safetensors"
    state = load_safetensors(weights.read_bytes())
    name = next(k for k, v in state.items() if v.ndim == 4)
    if lie == "shape":
        state[name] = torch.zeros(state[name].shape[0] + 1, *state[name].shape[1:])
    elif lie == "extra":
        state["head.extra"] = torch.zeros(3)
    else:
        del state[name]
    weights.write_bytes(save_safetensors(state))
    path = tmp_path / "b" / "bundle.json"
    raw = json.loads(path.read_text())
    raw["files"]["model.safetensors"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    raw["checksum"] = meta_checksum(raw)
    path.write_text(json.dumps(raw))
    text = _one_line_error(lambda: load_bundle(tmp_path / "b"))
    assert text.startswith(f"{weights}: ") and "the cnn model bundle.json describes" in text
    assert {"shape": f"tensor {name!r} has shape", "extra": "'head.extra' is not in",
            "missing": f"1 tensor(s) of the cnn model bundle.json describes (3 classes, input (32, 40)) are missing, "
                       f"e.g. {name!r}"}[lie] in text


def test_a_bundle_copied_half_way_is_refused(tmp_path):
    _save(tmp_path / "b")
    (tmp_path / "b" / "config.yaml").unlink()
    assert "config.yaml: missing (bundle.json records it" in _one_line_error(lambda: load_bundle(tmp_path / "b"))


def test_a_bundle_written_before_the_typed_record_loads_and_predicts_its_dataset(caplog):
    with caplog.at_level(logging.INFO, logger="spectrotune"):
        bundle = load_bundle(LEGACY_BUNDLE)
    meta = bundle.meta
    assert isinstance(meta, BundleMeta) and meta.format == "spectrotune-bundle/1" and meta.files == {}
    assert [r.getMessage() for r in caplog.records] == [
        f"{LEGACY_BUNDLE}: a spectrotune-bundle/1 bundle (written before bundles recorded checksums): its files are "
        "not verified"]
    assert (meta.model.name, meta.model.params, meta.model.n_classes) == ("cnn", {"width": 4, "depth": 2,
                                                                                 "dropout": 0.3}, 3)
    assert bundle.labels == ["blues", "classical", "country"] and bundle.input_shape == (16, 87)
    assert meta.best_epoch == 1 and [h["epoch"] for h in meta.history] == [1] and len(meta.normalization.mean) == 16
    raw = json.loads((LEGACY_BUNDLE / "bundle.json").read_text())
    assert meta.to_dict() == raw and list(meta.to_dict()) == list(raw)  # read and written again: the same file
    mel = D.mel_array(D.read_split(LEGACY_DATASET, "test"))
    proba = bundle.predict_proba(mel)
    assert proba.shape == (len(mel), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


def test_the_recipe_of_a_bundle_is_its_own_audio_and_log_mel_parameters():
    recipe = load_bundle(LEGACY_BUNDLE).recipe
    assert recipe.kind is AUDIO and recipe.input_shape == (16, 87)
    assert recipe.windowing == Windowing(sample_rate=22050, segment_seconds=1.0, hop_seconds=1.0, min_seconds=0.0,
                                         pad="zeros")  # written before audio.pad existed: zero-padded
    assert recipe.log_mel == LogMel(sample_rate=22050, n_fft=512, hop_length=256, n_mels=16, fmin=0.0, fmax=None,
                                    top_db=80.0)
    assert recipe.with_hop(0.5).windowing.hop_seconds == 0.5 and recipe.windowing.hop_seconds == 1.0


@pytest.mark.parametrize("audio, hop", [
    ({"segment_seconds": 3.0, "hop_seconds": {"test": 1.5}, "test_hop_seconds": 2.0}, 2.0),  # train wrote it
    ({"segment_seconds": 3.0, "hop_seconds": {"train": 1.0, "test": 1.5}}, 1.5),
    ({"segment_seconds": 3.0, "hop_seconds": 0.75}, 0.75),  # a flat number
    ({"segment_seconds": 2.0, "hop_seconds": {"test": None}}, 2.0),  # one window: no overlap
    ({}, 3.0),  # library defaults
])
def test_the_recipe_hop_is_the_test_hop(tmp_path, audio, hop):
    _save(tmp_path / "b")
    meta = read_meta(tmp_path / "b").to_dict()
    meta["audio"] = audio
    recipe = BundleMeta.from_dict(meta).recipe()
    assert recipe.windowing.hop_seconds == hop and recipe.windowing.sample_rate == audio.get("sample_rate", 22050)
    # log-mel parameters the bundle does not name are the library's defaults
    assert recipe.log_mel == LogMel(n_mels=32)


def test_meta_written_then_read_is_the_same_record(tmp_path):
    _save(tmp_path / "b")
    meta = read_meta(tmp_path / "b")
    assert BundleMeta.from_dict(json.loads(meta.to_json())) == meta
    assert meta.audio == {"sample_rate": 22050, "segment_seconds": 3.0} and meta.metrics == {"best_epoch": 1}


@pytest.mark.parametrize("change, message", [
    ({"format": "spectrotune-bundle/0"}, "unsupported bundle format 'spectrotune-bundle/0'"),
    ({"labels": None}, "missing labels"),
    ({"model": {"name": "cnn", "params": {}, "n_classes": "three"}}, "model.n_classes='three'"),
])
def test_metadata_of_another_format_or_shape_is_refused_by_name(tmp_path, change, message):
    _save(tmp_path / "b")
    meta = {k: v for k, v in {**read_meta(tmp_path / "b").to_dict(), **change}.items() if v is not None}
    (tmp_path / "b" / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=message):
        load_bundle(tmp_path / "b")


def test_a_bundle_names_its_front_end_and_one_without_the_key_is_log_mel(tmp_path):
    _save(tmp_path / "b")
    meta = read_meta(tmp_path / "b").to_dict()
    assert meta["features"].get("frontend", "logmel") == "logmel" and BundleMeta.from_dict(meta).recipe().log_mel.frontend == "logmel"
    meta["features"] = {"frontend": "musicnn", "n_fft": 512, "hop_length": 256, "n_mels": 96, "top_db": None}
    meta["audio"] = {"sample_rate": 16000, "segment_seconds": 2.992}
    recipe = BundleMeta.from_dict(meta).recipe()
    assert recipe.log_mel == LogMel(sample_rate=16000, n_fft=512, hop_length=256, n_mels=96, top_db=None,
                                    frontend="musicnn")
    assert recipe.log_mel(np.zeros((2, 47872), np.float32)).shape == (2, 96, 187)


@pytest.mark.parametrize("command", ["predict", "evaluate", "serve", "export", "api"])
def test_every_command_that_loads_a_bundle_refuses_a_tampered_one_in_one_line(tmp_path, capsys, monkeypatch,
                                                                            command):
    import shutil

    import soundfile as sf

    import spectrotune as st
    from spectrotune import runtime
    from spectrotune.cli import main

    monkeypatch.setattr(runtime, "init_ray", lambda **_: pytest.fail("Ray was started for a bundle to refuse"))
    _save(tmp_path / "b")
    weights = tmp_path / "b" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # copied half-way
    expected = f"{tmp_path / 'b'}: model.safetensors is truncated or changed (sha256 "
    if command == "api":
        with pytest.raises(BundleError, match=re.escape(expected)):
            st.load_bundle(tmp_path / "b")
        return
    clip = tmp_path / "clip.wav"
    sf.write(clip, np.zeros(22050 * 3, np.float32), 22050)
    data = shutil.copytree(LEGACY_DATASET, tmp_path / "data")
    argv = {"predict": ["predict", str(tmp_path / "b"), str(clip)],
            "evaluate": ["evaluate", str(tmp_path / "b"), "--data", str(data), "--out", str(tmp_path / "r")],
            "serve": ["serve", str(tmp_path / "b"), "--port", "1"],  # refused before the port or Ray is touched
            "export": ["export", str(tmp_path / "b"), "--onnx", str(tmp_path / "r" / "m.onnx")]}[command]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith(f"spectrotune: error: {expected}"), err
    assert not (tmp_path / "r").exists()
