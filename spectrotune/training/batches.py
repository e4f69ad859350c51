"""One epoch's train batches, shuffled through a row buffer that fills while the previous epoch drains.

A local shuffle buffer (``train.shuffle_buffer`` rows) must hold that many rows before its first batch. Ray Data's
own (``iter_torch_batches(local_shuffle_buffer_size=...)``) refills it from empty at the start of every epoch, and
the train pass waits: over a split streamed through an object store smaller than it (``train.materialize=false``)
that wait was 8-15 s of each 33-s epoch (BENCHMARKS.md "train, held vs streamed splits"). Here a producer thread
reads the split in order (Ray Data's batches, no Ray-side shuffle), keeps the buffer, and queues shuffled batches
on the device (pinned host memory and a non-blocking copy on CUDA), ``train.prefetch_batches`` deep. Once an
epoch's read has ended (every row of this worker's share is in its buffer, :attr:`EpochBatches.read_done`), the
next epoch's producer may start its own read (``after=``): its buffer fills while this epoch's drains, so the next
train pass starts with a full buffer. Memory: two buffers while epochs overlap, each at most
``train.shuffle_buffer + 2 * train.batch_size`` rows (130 MiB each for 2,000 rows of 128 x 130 float32).

The read of epoch ``k + 1`` never overlaps that of epoch ``k``: Ray Data's ``streaming_split`` coordinator runs one
execution at a time, and a split that asked for the next epoch while its current one still read would end it.

Pure threading and torch: the ``shard`` is anything with Ray Data's ``DataIterator.iter_torch_batches`` signature;
this module does not import ``ray``.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from spectrotune.config import TrainConfig
from spectrotune.training.accel import input_options

__all__ = ["EpochBatches", "RowBuffer"]

_END = object()
_POLL_SECONDS = 0.1  # how often a blocked producer looks whether its epoch was closed


class RowBuffer:
    """Rows of named tensors (each ``[n, ...]``, one row per index of dim 0) from which batches are drawn at random
    without replacement. Adding copies the rows in; a drawn batch is a new tensor (the buffer's storage is reused).
    """

    def __init__(self, *, capacity: int = 0) -> None:
        self._data: dict[str, torch.Tensor] = {}
        self._capacity = capacity  # rows allocated at the first add (more only if more are ever held)
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def add(self, batch: Mapping[str, torch.Tensor]) -> None:
        k = len(next(iter(batch.values())))
        capacity = len(next(iter(self._data.values()))) if self._data else 0
        if self.n + k > capacity:
            grown = max(2 * capacity, self.n + k, self._capacity)
            self._data = {key: _grown(self._data.get(key), value, grown, self.n) for key, value in batch.items()}
        for key, value in batch.items():
            self._data[key][self.n:self.n + k] = value
        self.n += k

    def take(self, k: int, *, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``min(k, n)`` rows drawn uniformly without replacement (in the order drawn); the rows left close up."""
        k = min(k, self.n)
        n, rest = self.n, self.n - k
        drawn = torch.randperm(n, generator=generator)[:k]
        batch = {key: value[drawn] for key, value in self._data.items()}
        taken = torch.zeros(n, dtype=torch.bool)
        taken[drawn] = True
        holes = torch.nonzero(taken[:rest]).flatten()  # drawn rows below the new end ...
        movers = rest + torch.nonzero(~taken[rest:]).flatten()  # ... take the kept rows above it
        for value in self._data.values():
            value[holes] = value[movers]
        self.n = rest
        return batch


def _grown(old: torch.Tensor | None, like: torch.Tensor, rows: int, keep: int) -> torch.Tensor:
    new = torch.empty((rows, *like.shape[1:]), dtype=like.dtype)
    if old is not None:
        new[:keep] = old[:keep]
    return new


class EpochBatches:
    """The train batches (``dict[str, torch.Tensor]``: ``mel`` [batch, n_mels, n_frames], ``label`` [batch], on
    ``device``) of one epoch of ``shard``, shuffled from ``seed``; iterate once.

    The producer thread starts at construction; with ``after`` (the previous epoch's :attr:`read_done`) it starts
    reading only once that is set. ``train.shuffle_buffer=0`` passes the split's batches through in order. What the
    reading raises is raised where the epoch is iterated; :meth:`close` stops an epoch that will not be trained
    (early stopping).
    """

    def __init__(self, shard: Any, *, tc: TrainConfig, seed: int, device: torch.device,
                 after: threading.Event | None = None) -> None:
        self._shard, self._tc, self._device = shard, tc, device
        self._seed, self._after = seed, after
        self._pin = bool(input_options(device)["pin_memory"])
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, tc.prefetch_batches))
        self._closed = threading.Event()
        self.read_done = threading.Event()  # every row of this epoch has been read into the buffer
        self._used = False
        self._thread = threading.Thread(target=self._produce, name="spectrotune-epoch-batches", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        try:
            if self._after is not None:
                while not self._after.wait(_POLL_SECONDS) and not self._closed.is_set():
                    pass
            if self._closed.is_set():
                return
            self._fill_and_drain()
            self._put(_END)
        except _Closed:
            return
        except BaseException as e:  # noqa: BLE001 - re-raised in the iterating thread
            with contextlib.suppress(_Closed):
                self._put(_Raised(e))
        finally:
            self.read_done.set()  # also after an error or close: a next epoch waiting on it must not hang

    def _fill_and_drain(self) -> None:
        tc = self._tc
        generator = torch.Generator().manual_seed(self._seed % (2**63))
        buffer = RowBuffer(capacity=tc.shuffle_buffer + 2 * tc.batch_size)  # the most it holds: see the loop below
        batches = iter(self._shard.iter_torch_batches(batch_size=tc.batch_size, prefetch_batches=tc.prefetch_batches))
        try:
            for batch in batches:
                if not tc.shuffle_buffer:
                    self._put(self._on_device(batch))
                    continue
                buffer.add(batch)
                while len(buffer) >= tc.shuffle_buffer + tc.batch_size:
                    self._put(self._on_device(buffer.take(tc.batch_size, generator=generator)))
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # a stopped epoch ends Ray Data's iteration now (its finally tells the coordinator)
        self.read_done.set()
        while len(buffer):
            self._put(self._on_device(buffer.take(tc.batch_size, generator=generator)))

    def _on_device(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {key: (value.pin_memory() if self._pin else value).to(self._device, non_blocking=True)
                for key, value in batch.items()}

    def _put(self, item: Any) -> None:
        while True:
            if self._closed.is_set():
                raise _Closed
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Stop the producer (its read ends at its next batch); batches not yet taken are dropped."""
        self._closed.set()

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if self._used:
            raise RuntimeError("an EpochBatches is iterated once (one epoch)")
        self._used = True
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item


class _Closed(Exception):
    """Raised inside the producer when its epoch was closed: unwinds the read."""


class _Raised:
    def __init__(self, error: BaseException) -> None:
        self.error = error
