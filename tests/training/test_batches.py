"""Tests of spectrotune.training.batches: the row buffer draws every row once; an epoch's batches are every row of
the split once, in an order drawn from its seed; the next epoch's read starts once this epoch's has ended and not
before, so its buffer fills while this epoch's drains; errors reach the loop; a closed epoch stops reading. Without
Ray, but for the last test, which chains epochs on a real Ray Data ``streaming_split``."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from spectrotune.config import load_config
from spectrotune.training import batches as B
from spectrotune.training.batches import EpochBatches, RowBuffer

CPU = torch.device("cpu")


def _tc(batch_size: int = 4, shuffle_buffer: int = 8, prefetch: int = 2):
    return load_config("demo", overrides=[f"train.batch_size={batch_size}", f"train.shuffle_buffer={shuffle_buffer}",
                                          f"train.prefetch_batches={prefetch}"]).train


class FakeShard:
    """Ray Data's ``DataIterator.iter_torch_batches`` stand-in over rows ``row`` (0..n-1) and ``mel`` [n, 2, 3], in
    order. Its read of an epoch starts once ``release`` is set; it records each read's start and end, whether two
    reads ever ran at once (a ``streaming_split`` coordinator would have ended the first), and whether a read was
    closed before its end."""

    def __init__(self, n: int = 10, *, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.release = threading.Event()
        self.release.set()
        self.started, self.ended = threading.Event(), threading.Event()
        self.reading, self.overlapped, self.closed_early = 0, False, False
        self.calls: list[dict] = []
        self.lock = threading.Lock()

    def iter_torch_batches(self, **kwargs):
        self.calls.append(kwargs)
        return self._read(kwargs["batch_size"])

    def _read(self, batch_size):
        with self.lock:
            self.reading += 1
            self.overlapped |= self.reading > 1
        self.started.set()
        finished = False
        try:
            assert self.release.wait(10)
            for i in range(0, self.n, batch_size):
                if self.fail_at is not None and i >= self.fail_at:
                    raise OSError("train-part-00003.parquet: truncated")
                rows = torch.arange(i, min(i + batch_size, self.n))
                yield {"row": rows, "mel": rows[:, None, None].float().expand(-1, 2, 3).clone()}
            finished = True
        finally:
            with self.lock:
                self.reading -= 1
            self.closed_early |= not finished
            self.ended.set()


def _rows(batches) -> list[list[int]]:
    out = []
    for batch in batches:
        assert torch.equal(batch["mel"][:, 0, 0].long(), batch["row"])  # a row's tensors stay together
        out.append(batch["row"].tolist())
    return out


def test_the_row_buffer_draws_every_row_once_and_keeps_the_rest_together():
    buffer, g = RowBuffer(), torch.Generator().manual_seed(0)
    drawn = []
    for start in range(0, 30, 7):
        rows = torch.arange(start, min(start + 7, 30))
        buffer.add({"row": rows, "x": rows[:, None].expand(-1, 3).float()})
        while len(buffer) >= 10:
            batch = buffer.take(4, generator=g)
            assert torch.equal(batch["x"][:, 2].long(), batch["row"])
            drawn += batch["row"].tolist()
    while len(buffer):
        drawn += buffer.take(4, generator=g)["row"].tolist()
    assert sorted(drawn) == list(range(30)) and drawn != list(range(30))
    assert len(buffer) == 0 and buffer.take(4, generator=g)["row"].shape == (0,)


@pytest.mark.parametrize("n", [23, 8, 1, 0])
def test_an_epoch_is_every_row_once_in_batches_and_in_an_order_drawn_from_its_seed(n):
    tc = _tc()
    first = _rows(EpochBatches(FakeShard(n), tc=tc, seed=7, device=CPU))
    assert sorted(sum(first, [])) == list(range(n))
    assert [len(b) for b in first] == [4] * (n // 4) + ([n % 4] if n % 4 else [])
    assert _rows(EpochBatches(FakeShard(n), tc=tc, seed=7, device=CPU)) == first
    if n > 8:
        assert _rows(EpochBatches(FakeShard(n), tc=tc, seed=8, device=CPU)) != first
        assert sum(first, []) != list(range(n))


def test_a_buffer_of_zero_passes_the_split_through_in_order():
    shard = FakeShard(10)
    assert _rows(EpochBatches(shard, tc=_tc(shuffle_buffer=0), seed=7, device=CPU)) == [[0, 1, 2, 3], [4, 5, 6, 7],
                                                                                      [8, 9]]
    assert shard.calls == [{"batch_size": 4, "prefetch_batches": 2}]  # in order, on the CPU: no Ray-side shuffle


def test_the_next_epoch_reads_once_this_one_has_read_and_fills_while_this_one_drains():
    tc = _tc(shuffle_buffer=16)  # 20 rows: the read ends after the first batch is out, 16 rows stay buffered
    shard = FakeShard(20)
    current = EpochBatches(shard, tc=tc, seed=1, device=CPU)
    assert current.read_done.wait(10)
    shard.started.clear()
    upcoming = EpochBatches(shard, tc=tc, seed=2, device=CPU, after=current.read_done)
    assert shard.started.wait(10)  # the next read began before this epoch was iterated at all
    assert upcoming.read_done.wait(10)
    rows = [_rows(current), _rows(upcoming)]
    assert [sorted(sum(r, [])) for r in rows] == [list(range(20))] * 2 and rows[0] != rows[1]
    assert not shard.overlapped and not shard.closed_early


def test_the_next_epoch_does_not_read_before_this_one_has_ended():
    shard = FakeShard(20)
    shard.release.clear()  # this epoch's read stalls
    tc = _tc(shuffle_buffer=16)
    current = EpochBatches(shard, tc=tc, seed=1, device=CPU)
    assert shard.started.wait(10)
    upcoming = EpochBatches(shard, tc=tc, seed=2, device=CPU, after=current.read_done)
    assert not upcoming.read_done.wait(0.5) and len(shard.calls) == 1
    shard.release.set()
    assert len(sum(_rows(current), [])) == len(sum(_rows(upcoming), [])) == 20
    assert len(shard.calls) == 2 and not shard.overlapped


def test_an_error_while_reading_is_raised_where_the_epoch_iterates_and_frees_the_next_epoch():
    shard = FakeShard(20, fail_at=8)
    current = EpochBatches(shard, tc=_tc(), seed=1, device=CPU)
    with pytest.raises(OSError, match="train-part-00003.parquet: truncated"):
        _rows(current)
    assert current.read_done.is_set()  # a next epoch waiting on it would not hang


def test_a_closed_epoch_stops_its_read_and_one_closed_while_waiting_never_reads(monkeypatch):
    monkeypatch.setattr(B, "_POLL_SECONDS", 0.01)
    tc = _tc(batch_size=2, shuffle_buffer=0, prefetch=1)
    shard = FakeShard(200)
    reading = EpochBatches(shard, tc=tc, seed=1, device=CPU)
    assert shard.started.wait(10)
    reading.close()
    assert shard.ended.wait(10) and shard.closed_early  # Ray Data's iteration ended (its finally ran)
    waiting_on = threading.Event()
    other = FakeShard(10)
    EpochBatches(other, tc=tc, seed=2, device=CPU, after=waiting_on).close()
    waiting_on.set()
    assert not other.started.wait(0.3) and other.calls == []


def test_batches_are_pinned_before_the_copy_when_the_device_is_cuda(monkeypatch):
    """The CUDA branch on a CPU machine: ``input_options`` says pin (as on a CUDA device), and every batch goes
    through ``pin_memory`` before its copy to the device."""
    pinned = []

    def pin(tensor):
        pinned.append(tensor.shape[0])
        return tensor

    monkeypatch.setattr(B, "input_options", lambda device: {"pin_memory": True})
    monkeypatch.setattr(torch.Tensor, "pin_memory", pin)
    rows = _rows(EpochBatches(FakeShard(10), tc=_tc(), seed=1, device=CPU))
    assert sorted(sum(rows, [])) == list(range(10)) and pinned == [4, 4, 4, 4, 2, 2]  # row and mel of each batch


def test_an_epoch_is_iterated_once():
    batches = EpochBatches(FakeShard(), tc=_tc(), seed=1, device=CPU)
    assert len(_rows(batches)) == 3
    with pytest.raises(RuntimeError, match="iterated once"):
        next(iter(batches))


@pytest.mark.integration
def test_on_a_streamed_ray_split_chained_epochs_yield_the_batches_of_epochs_read_one_after_another(tmp_path,
                                                                                                   ray_session):
    """Ray Data for real: a ``streaming_split`` iterator over Parquet shards, three epochs each. On one the next
    epoch's read waits until the previous epoch was trained; on the other it starts once the previous read ended
    (the loop's chaining). Both give the same batches, every row once per epoch, and the coordinator never ends an
    epoch that was still being read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for shard in range(3):
        ids = np.arange(shard * 20, shard * 20 + 20)
        pq.write_table(pa.table({"label": ids % 4, "row": ids}), tmp_path / f"shard-{shard:05d}.parquet")
    ds = ray_session.data.read_parquet(str(tmp_path))
    ds.context.execution_options.preserve_order = True  # as the trainer's ingest options: order not left to timing
    tc = _tc(shuffle_buffer=16)
    runs = []
    for chained in (False, True):
        it = ds.streaming_split(1, equal=True)[0]
        epochs, previous = [], None
        for seed in (11, 12, 13):
            if chained:
                batches = (previous and previous.upcoming) or EpochBatches(it, tc=tc, seed=seed, device=CPU)
                batches.upcoming = EpochBatches(it, tc=tc, seed=seed + 1, device=CPU, after=batches.read_done)
            else:
                batches = EpochBatches(it, tc=tc, seed=seed, device=CPU)
            epochs.append([b["row"].tolist() for b in batches])
            previous = batches
        if chained:
            previous.upcoming.close()
        runs.append(epochs)
    assert runs[0] == runs[1]
    assert all(sorted(sum(epoch, [])) == list(range(60)) for epoch in runs[0]) and runs[0][0] != runs[0][1]
