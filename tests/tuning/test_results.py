"""A trial's status from its reported epochs: completion, ASHA and patience told apart."""

from __future__ import annotations

import pytest

from spectrotune.config import load_config
from spectrotune.tuning.results import STATUS_ASHA, STATUS_DONE, STATUS_PATIENCE, trial_status


@pytest.mark.parametrize(("scores", "patience", "asha", "expected"), [
    ([0.3, 0.5, 0.6], 0, True, STATUS_DONE),
    ([0.3], 0, True, STATUS_ASHA),
    ([0.5, 0.4], 1, True, STATUS_PATIENCE),
])
def test_status_tells_completion_asha_and_patience_apart(scores, patience, asha, expected):
    config = load_config("demo", overrides=["train.epochs=3", f"train.patience={patience}"])
    history = [{"epoch": i + 1, "valid_clip_accuracy": s} for i, s in enumerate(scores)]
    assert trial_status(history, error=None, config=config, asha=asha) == expected
