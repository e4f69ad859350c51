"""Tests of spectrotune.training.outputs that need no run: ``train.log`` and the recording logger. The bundle,
``history.json`` and ``curves.png`` of a real run are checked in ``test_driver.py``."""

from __future__ import annotations

import re

from spectrotune.schema import SCORE
from spectrotune.training.outputs import recording, train_log


def _epoch(epoch: int, attempt: int) -> dict:
    return {"epoch": epoch, "train_loss": 1.0, "train_accuracy": 0.5, "valid_loss": 1.5, "valid_accuracy": 0.4,
            SCORE: 0.5, "samples_per_second": 100.0, "attempt": attempt}


def test_train_log_marks_each_attempt_and_ends_with_the_summary():
    history = [_epoch(1, 1), _epoch(2, 2), _epoch(3, 2)]
    text = train_log(["driver line"], history, epochs=3, summary="best epoch 1/3")
    lines = text.splitlines()
    assert lines[0] == "driver line" and lines[1] == "-- attempt 1" and lines[-1] == "best epoch 1/3"
    assert lines[3].startswith("-- attempt 2 (a resumed run")
    assert [line.split(":")[0] for line in lines if line.startswith("epoch ")] == ["epoch 1/3", "epoch 2/3",
                                                                                 "epoch 3/3"]
    assert text.endswith("\n")


def test_recording_logs_and_keeps_timestamped_lines():
    shown, kept = [], []
    log = recording(shown.append, kept)
    log("hello")
    assert shown == ["hello"] and len(kept) == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d hello", kept[0])
