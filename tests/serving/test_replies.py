"""The JSON replies: file probabilities are the float64 mean of the windows', ranked stably; shapes are checked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spectrotune.serving.http import json_bytes
from spectrotune.serving.inference import Clip
from spectrotune.serving.replies import embedding, prediction

MODEL = {"name": "cnn", "version": "sha256:0123456789ab", "labels": ["a", "b", "c"], "params": {}}


def _clip(n, *, silent=False, padded=False):
    return Clip(name="x.wav", size=10, mel=np.zeros((n, 2, 3), np.float32), hop_seconds=1.5, window_seconds=3.0,
                duration_seconds=4.5, padded=padded, silent=silent)


def test_prediction_ranks_the_mean_and_keeps_every_window():
    proba = np.array([[0.2, 0.3, 0.5], [0.4, 0.4, 0.2]], np.float32)
    reply = prediction(_clip(2), proba, labels=["a", "b", "c"], top_k=2, model=MODEL, seconds=0.01234)
    mean = proba.astype(np.float64).mean(axis=0)
    assert reply["top"] == [{"genre": "b", "probability": mean[1]}, {"genre": "c", "probability": mean[2]}]
    assert reply["probabilities"] == {"a": mean[0], "b": mean[1], "c": mean[2]}
    assert reply["timeline"]["windows"][1] == {"start": 1.5, "end": 4.5, "probabilities": proba[1].tolist()}
    assert reply["model"] == {k: MODEL[k] for k in ("name", "version", "labels")} and reply["seconds"] == 0.0123
    assert json.loads(json_bytes(reply)) == json.loads(json.dumps(reply))


def test_ties_rank_in_label_order():
    reply = prediction(_clip(1), np.full((1, 3), 1 / 3, np.float32), labels=["a", "b", "c"], top_k=3, model=MODEL)
    assert [t["genre"] for t in reply["top"]] == ["a", "b", "c"]


def test_a_silent_clip_has_windows_but_no_genre():
    reply = prediction(_clip(2, silent=True), None, labels=["a", "b", "c"], top_k=2, model=MODEL)
    assert reply["top"] == [] and reply["probabilities"] == {} and reply["silent"] and "dBFS" in reply["reason"]
    assert [w["probabilities"] for w in reply["timeline"]["windows"]] == [[], []]
    with pytest.raises(ValueError, match="silent"):
        prediction(_clip(2), None, labels=["a", "b", "c"], top_k=2, model=MODEL)


def test_shapes_that_do_not_match_the_clip_are_bugs_not_replies():
    with pytest.raises(ValueError, match="shape"):
        prediction(_clip(2), np.zeros((3, 3), np.float32), labels=["a", "b", "c"], top_k=1, model=MODEL)
    with pytest.raises(ValueError, match="shape"):
        embedding(_clip(2), np.zeros((0, 4), np.float32), model=MODEL)
