"""Tests of spectrotune.training.batches: an epoch's train batches started ahead are the batches an epoch started
late gets, the start really happens ahead, and what the reading raises reaches the loop. Without Ray, but for the
last test, which checks the first point on a real Ray Data ``streaming_split``."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from spectrotune.config import load_config
from spectrotune.training.batches import EpochBatches

TC = load_config("demo", overrides=["train.batch_size=4", "train.shuffle_buffer=8"]).train
CPU = torch.device("cpu")


class SlowStartShard:
    """Ray Data's ``DataIterator.iter_torch_batches`` stand-in: its first batch comes only once ``release`` is set
    (a streamed split's read start-up); records the arguments and which thread fetched the first batch."""

    def __init__(self, n: int = 10, *, fail: bool = False) -> None:
        self.n, self.fail = n, fail
        self.release, self.started = threading.Event(), threading.Event()
        self.calls: list[dict] = []
        self.first_thread: str | None = None

    def iter_torch_batches(self, **kwargs):
        self.calls.append(kwargs)
        g = torch.Generator().manual_seed(kwargs["local_shuffle_seed"])
        order = torch.randperm(self.n, generator=g)
        self.started.set()
        assert self.release.wait(10)
        self.first_thread = threading.current_thread().name
        if self.fail:
            raise OSError("shard-00003.parquet: truncated")
        for i in range(0, self.n, kwargs["batch_size"]):
            yield {"label": order[i:i + kwargs["batch_size"]]}


def _labels(batches) -> list[list[int]]:
    return [b["label"].tolist() for b in batches]


@pytest.mark.parametrize("n", [10, 0])
def test_batches_started_ahead_are_those_started_late_and_the_first_is_fetched_in_the_background(n):
    late, ahead = SlowStartShard(n), SlowStartShard(n)
    late.release.set()
    expected = _labels(EpochBatches(late, tc=TC, seed=7, device=CPU))
    started = EpochBatches(ahead, tc=TC, seed=7, device=CPU, ahead=True)
    assert ahead.started.wait(10)  # the read began before anyone iterated
    ahead.release.set()
    assert _labels(started) == expected and len(expected) == (3 if n else 0)
    assert ahead.first_thread == "spectrotune-next-epoch" and late.first_thread == threading.current_thread().name
    assert ahead.calls == late.calls and ahead.calls[0]["local_shuffle_seed"] == 7
    assert ahead.calls[0]["local_shuffle_buffer_size"] == 8 and ahead.calls[0]["pin_memory"] is False


def test_an_error_while_fetching_ahead_is_raised_where_the_epoch_iterates():
    shard = SlowStartShard(fail=True)
    batches = EpochBatches(shard, tc=TC, seed=1, device=CPU, ahead=True)
    shard.release.set()
    with pytest.raises(OSError, match="shard-00003.parquet: truncated"):
        next(iter(batches))


def test_an_epoch_is_iterated_once():
    shard = SlowStartShard()
    shard.release.set()
    batches = EpochBatches(shard, tc=TC, seed=1, device=CPU)
    assert len(_labels(batches)) == 3
    with pytest.raises(RuntimeError, match="iterated once"):
        next(iter(batches))


@pytest.mark.integration
def test_on_a_streamed_ray_split_the_epoch_started_ahead_yields_the_batches_of_one_started_late(tmp_path, ray_session):
    """Ray Data for real: a ``streaming_split`` iterator over Parquet shards, two epochs each; the second epoch is
    started ahead (while nothing reads) on one and late on the other, and both yield the same batches in order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for shard in range(3):
        ids = np.arange(shard * 20, shard * 20 + 20)
        pq.write_table(pa.table({"label": ids % 4, "row": ids}), tmp_path / f"shard-{shard:05d}.parquet")
    ds = ray_session.data.read_parquet(str(tmp_path))
    ds.context.execution_options.preserve_order = True  # as the trainer's ingest options: order not left to timing
    runs = []
    for ahead in (False, True):
        it = ds.streaming_split(1, equal=True)[0]
        first = _rows(EpochBatches(it, tc=TC, seed=11, device=CPU))
        second = EpochBatches(it, tc=TC, seed=12, device=CPU, ahead=ahead)
        runs.append((first, _rows(second)))
    assert runs[0] == runs[1]
    (first, second) = runs[0]
    assert sorted(sum(first, [])) == sorted(sum(second, [])) == list(range(60)) and first != second  # reshuffled


def _rows(batches) -> list[list[int]]:
    return [b["row"].tolist() for b in batches]
