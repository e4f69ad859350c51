"""Tests of spectrotune.training.loop's steps without Ray: one epoch of training and a validation pass over fake
shards (the two methods of a Ray Data ``DataIterator`` the loop uses), and the test-side fault hook."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spectrotune.config import load_config
from spectrotune.schema import LABEL, MEL, METRIC_KEYS, SCORE, TRACK_ID
from spectrotune.training.loop import (TEST_KILL_EPOCH_ENV, WorkerRun, fault_epoch_from_env, maybe_kill_worker,
                                       train_one_epoch, validate)

N_MELS, N_FRAMES, N_CLASSES = 16, 20, 3


class FakeShard:
    """Rows ``mel`` float32 [n, N_MELS, N_FRAMES], ``label`` int64 [n], ``track_id`` str [n], in batches."""

    def __init__(self, n: int = 24) -> None:
        rng = np.random.default_rng(0)
        self.rows = {MEL: rng.normal(size=(n, N_MELS, N_FRAMES)).astype(np.float32),
                     LABEL: rng.integers(0, N_CLASSES, n).astype(np.int64),
                     TRACK_ID: np.array([f"t{i // 4}" for i in range(n)])}

    def iter_batches(self, *, batch_size, batch_format, prefetch_batches):
        n = len(self.rows[LABEL])
        for i in range(0, n, batch_size):
            yield {k: v[i:i + batch_size] for k, v in self.rows.items()}

    def iter_torch_batches(self, *, batch_size, local_shuffle_buffer_size, local_shuffle_seed, prefetch_batches,
                           device):
        for batch in self.iter_batches(batch_size=batch_size, batch_format="numpy", prefetch_batches=0):
            yield {MEL: torch.from_numpy(batch[MEL]).to(device), LABEL: torch.from_numpy(batch[LABEL]).to(device)}


def _run(*overrides: str) -> tuple[WorkerRun, object]:
    config = load_config("demo", overrides=["train.batch_size=8", *overrides])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(N_MELS * N_FRAMES, N_CLASSES))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    run = WorkerRun(model=model, optimizer=optimizer, scheduler=scheduler,
                    scaler=torch.amp.GradScaler("cuda", enabled=False), device=torch.device("cpu"), use_amp=False,
                    generator=torch.Generator(), n_classes=N_CLASSES)
    return run, config.train


@pytest.mark.parametrize("augment", [(), ("train.spec_augment=true", "train.time_width=4", "train.freq_width=4",
                                          "train.mixup_alpha=0.2", "train.label_smoothing=0.1")])
def test_one_epoch_trains_every_row_and_repeats_from_its_seed(augment):
    shard = FakeShard()
    results, weights = [], []
    for _ in range(2):
        run, tc = _run(*augment)
        results.append(train_one_epoch(run, shard, tc=tc, seed=123))
        weights.append(run.model[1].weight.detach().clone())
    trained = results[0]
    assert set(trained) == {"train_loss", "train_accuracy", "train_seconds", "samples_per_second"} < set(METRIC_KEYS)
    assert np.isfinite(trained["train_loss"]) and 0.0 <= trained["train_accuracy"] <= 1.0
    assert trained["samples_per_second"] == pytest.approx(24 / trained["train_seconds"])
    assert results[1]["train_loss"] == trained["train_loss"] and torch.equal(weights[0], weights[1])
    assert run.scheduler.last_epoch == 3  # one LR step per batch: 24 rows / 8


def test_validation_scores_every_valid_row_per_segment_and_per_track():
    run, tc = _run()
    shard = FakeShard(n=10)
    valid = validate(run, shard, tc=tc)
    with torch.no_grad():
        probs = torch.softmax(run.model(torch.from_numpy(shard.rows[MEL])), dim=1).numpy()
    assert valid["valid_accuracy"] == pytest.approx(np.mean(probs.argmax(1) == shard.rows[LABEL]))
    assert 0.0 <= valid[SCORE] <= 1.0 and np.isfinite(valid["valid_loss"])
    assert not run.model.training  # validation leaves the model in eval mode


def test_fault_epoch_comes_only_from_the_test_environment_variable(monkeypatch):
    monkeypatch.delenv(TEST_KILL_EPOCH_ENV, raising=False)
    assert fault_epoch_from_env() is None
    monkeypatch.setenv(TEST_KILL_EPOCH_ENV, "2")
    assert fault_epoch_from_env() == 2


def test_no_fault_is_injected_at_other_epochs(tmp_path):
    maybe_kill_worker(1, fault_epoch=None, run_dir=str(tmp_path))
    maybe_kill_worker(1, fault_epoch=2, run_dir=str(tmp_path))  # would os._exit at epoch 2 only
    assert list(tmp_path.iterdir()) == []
