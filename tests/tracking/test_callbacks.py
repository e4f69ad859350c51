"""The Ray Train callback logs rank 0's report only, once per epoch, and survives the pickling Ray does to ship it
to the Train controller (imports Ray, starts nothing; marked integration to keep the fast suite Ray-free)."""

from __future__ import annotations

import pickle

import pytest

from spectrotune.schema import METRIC_KEYS
from spectrotune.tracking.runs import EpochTarget
from spectrotune.tracking.tensorboard import read_scalars

pytestmark = pytest.mark.integration


def _report(epoch: int, value: float) -> dict:
    return {**{key: value for key in METRIC_KEYS}, "epoch": epoch}


def test_train_callback_logs_rank_zero_once_per_epoch(tmp_path):
    from spectrotune.tracking.callbacks import TrainEpochs

    callback = pickle.loads(pickle.dumps(TrainEpochs(EpochTarget(tb_dir=str(tmp_path / "tb")))))
    for epoch in (1, 2):
        # what Ray Train V2 hands after_report: metrics[i] is rank i's report
        callback.after_report(None, [_report(epoch, 0.1 * epoch), _report(epoch, 9.0)], checkpoint=None)
    callback.after_report(None, [{"not": "an epoch"}], checkpoint=None)  # ignored
    scalars = read_scalars(tmp_path / "tb")
    assert scalars["train_loss"] == [(1, pytest.approx(0.1)), (2, pytest.approx(0.2))]
    assert set(scalars) == set(METRIC_KEYS) - {"epoch"}


def test_a_failing_tracking_call_warns_once_and_never_raises(tmp_path, caplog):
    from spectrotune.tracking.callbacks import TrainEpochs

    blocker = tmp_path / "tb"
    blocker.write_text("a file where the event folder should be")
    callback = TrainEpochs(EpochTarget(tb_dir=str(blocker)))
    for epoch in (1, 2):
        callback.after_report(None, [_report(epoch, 0.5)], checkpoint=None)
    assert len([r for r in caplog.records if "tracking failed" in r.getMessage()]) == 1
