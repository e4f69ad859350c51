"""One replica's work without Ray: uploads decoded through the bundle's recipe (as predict does), stacked forward
passes, replies whose probabilities equal ``predict``'s, refusals as 4xx errors, and no file left behind."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import soundfile as sf
import torch
from audio_files import SR, signal, writable_formats, write
from legacy_data import LEGACY_BUNDLE

from spectrotune.bundle import load_bundle
from spectrotune.predict.core import predict_files
from spectrotune.serving.http import HttpError, Upload
from spectrotune.serving.inference import ModelService, embedder
from spectrotune.serving.options import ServeOptions


@pytest.fixture(scope="module")
def service():
    svc = ModelService(LEGACY_BUNDLE, ServeOptions(max_seconds=10), device="cpu")
    yield svc
    svc.close()


def _wav(seconds, seed=0):
    buf = io.BytesIO()
    sf.write(buf, signal(seconds, seed=seed), SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.mark.parametrize("fmt", writable_formats())
def test_a_reply_holds_predicts_probabilities(service, tmp_path, fmt):
    path = write(tmp_path / f"clip.{fmt}", signal(4.5, seed=1), fmt)
    clip = service.decode(Upload(path.read_bytes(), path.name))
    (proba,) = service.forward([clip])
    reply = service.reply(clip, proba, top_k=3)
    (row,), _ = predict_files(load_bundle(LEGACY_BUNDLE), [path], top_k=3)
    assert [t["genre"] for t in reply["top"]] == [row["top1"], row["top2"], row["top3"]]
    assert [t["probability"] for t in reply["top"]] == [row["p1"], row["p2"], row["p3"]]  # identical, not close
    assert reply["n_windows"] == row["n_segments"] == 4 and not reply["padded"] and not reply["silent"]
    assert [(w["start"], w["end"]) for w in reply["timeline"]["windows"]] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0),
                                                                              (3.0, 4.0)]
    assert reply["file"] == {"name": f"clip.{fmt}", "bytes": path.stat().st_size,
                             "duration_seconds": pytest.approx(4.5, abs=0.1)}


def test_stacked_requests_get_their_own_windows_back(service):
    clips = [service.decode(Upload(_wav(s, seed=s), f"{s}.wav")) for s in (2, 5, 3)]
    together = service.forward(clips)
    assert [len(p) for p in together] == [2, 5, 3]
    for clip, proba in zip(clips, together, strict=True):
        np.testing.assert_allclose(proba, service.forward([clip])[0], rtol=0, atol=1e-6)


def test_short_and_silent_clips_are_flagged_like_predict(service, tmp_path):
    short = service.decode(Upload(_wav(0.4), "short.wav"))
    assert short.padded and len(short.mel) == 1
    buf = io.BytesIO()
    sf.write(buf, np.zeros(3 * SR, np.float32), SR, format="WAV")
    (tmp_path / "silent.wav").write_bytes(buf.getvalue())
    silent = service.decode(Upload(buf.getvalue(), "silent.wav"))
    reply = service.reply(silent, None, top_k=3)
    (row,), _ = predict_files(load_bundle(LEGACY_BUNDLE), [tmp_path / "silent.wav"], top_k=3)
    assert silent.silent and row["status"] == "silent"
    assert reply["silent"] and reply["top"] == [] and reply["probabilities"] == {} and "silent" in reply["reason"]


@pytest.mark.parametrize(("data", "status", "code"), [
    (b"this is a text file, not audio\n", 415, "not_audio"),
    (b"RIFF\x10\x00\x00\x00WAVEfmt ", 415, "not_audio"),  # a truncated header
])
def test_what_is_not_audio_is_415(service, data, status, code):
    with pytest.raises(HttpError) as e:
        service.decode(Upload(data, "x.wav"))
    assert (e.value.status, e.value.code) == (status, code) and e.value.message.startswith("x.wav")
    assert service._tmp not in e.value.message  # the server's paths are not shown  # noqa: SLF001


def test_audio_over_the_duration_limit_is_413_before_decoding(service):
    with pytest.raises(HttpError) as e:
        service.decode(Upload(_wav(10.5), "long.wav"))
    assert (e.value.status, e.value.code) == (413, "too_long") and "10.5 s" in e.value.message


def test_no_upload_is_left_on_disk_and_names_never_become_paths(service):
    for name in ("../../../tmp/evil.wav", "/etc/passwd", "a.wav"):
        service.decode(Upload(_wav(1), name))
    with pytest.raises(HttpError):
        service.decode(Upload(b"not audio", "../x.txt"))
    assert os.listdir(service._tmp) == []  # noqa: SLF001
    assert oct(os.stat(service._tmp).st_mode & 0o777) == "0o700"  # noqa: SLF001


def test_a_cnn_bundle_has_no_embedding(service):
    assert embedder(service.bundle) is None and not service.can_embed
    assert service.model_info["embedding"] is False
    with pytest.raises(HttpError) as e:
        service.embed([])
    assert (e.value.status, e.value.code) == (404, "no_embedding") and "cnn" in e.value.message


def test_a_model_with_embed_gets_per_window_vectors(service, monkeypatch):
    def embed(x):  # what a musicnn-based model would provide: [n, n_mels, n_frames] -> [n, d]
        return torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)

    monkeypatch.setattr(service, "_embed", embed)
    clip = service.decode(Upload(_wav(3), "a.wav"))
    (vectors,) = service.embed([clip])
    reply = service.embed_reply(clip, vectors)
    assert vectors.shape == (3, 32) and reply["dim"] == 32 and len(reply["windows"]) == 3
    np.testing.assert_allclose(reply["mean"], vectors.astype(np.float64).mean(axis=0))


def test_model_info_names_the_front_end_labels_version_and_metrics(service):
    info = service.model_info
    assert info["labels"] == ["blues", "classical", "country"] and info["name"] == "cnn"
    assert info["version"].startswith("sha256:") and len(info["version"]) == 19
    assert info["front_end"]["sample_rate"] == 22050 and info["front_end"]["window_seconds"] == 1.0
    assert info["front_end"]["log_mel"]["n_mels"] == 16 and info["front_end"]["input_shape"] == [16, 87]
    assert info["metrics"]["best_epoch"] is not None and info["metrics"]["history"]
