"""One epoch's train batches, started ahead: the next epoch's first batch is fetched while this epoch reports.

A streamed split (``train.materialize=false``) pays a start-up at the beginning of every epoch: Ray Data's
``streaming_split`` coordinator re-executes the read of the Parquet shards, and the worker's first ``next()`` waits
for the first block (about 2 s per epoch on 2 CPUs, BENCHMARKS.md "train, held vs streamed splits"). The loop
starts epoch ``k + 1``'s iterator once epoch ``k`` has validated and decided not to stop, and a thread takes its
first batch while :func:`~spectrotune.training.loop.report_epoch` writes the checkpoint and waits for the controller
to register it (up to one 2-s poll), so the start-up overlaps that wait instead of stalling the next train pass.
Started earlier, during validation, it made things worse: under an object store smaller than the splits the two
reads slowed each other (whole epochs 0.48x the held rate instead of 0.84x). The batches and their order are those
an iterator started late would give (the local shuffle is seeded per epoch); only the moment the reading starts
moves.

Pure threading and torch: the ``shard`` is anything with Ray Data's ``DataIterator.iter_torch_batches`` signature;
this module does not import ``ray``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import torch

from spectrotune.config import TrainConfig
from spectrotune.training.accel import input_options

__all__ = ["EpochBatches"]

_END = object()


class EpochBatches:
    """The train batches (``dict[str, torch.Tensor]``: ``mel`` [batch, n_mels, n_frames], ``label`` [batch], on
    ``device``) of one epoch of ``shard``, shuffled locally from ``seed``; iterate once.

    ``ahead=True`` takes the first batch in a background thread from construction on; iterating joins that thread
    (re-raising what it raised) and goes on from there, so a caller timing its ``next()`` calls still counts any
    part of the start-up that validation did not hide. An epoch left unread (early stopping) costs nothing more.
    """

    def __init__(self, shard: Any, *, tc: TrainConfig, seed: int, device: torch.device, ahead: bool = False) -> None:
        self._batches = iter(shard.iter_torch_batches(
            batch_size=tc.batch_size, local_shuffle_buffer_size=tc.shuffle_buffer or None,
            local_shuffle_seed=seed % (2**31) if tc.shuffle_buffer else None,
            prefetch_batches=tc.prefetch_batches, device=device, **input_options(device),
        ))  # fmt: skip
        self._first: Any = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._used = False
        if ahead:
            self._thread = threading.Thread(target=self._take_first, name="spectrotune-next-epoch", daemon=True)
            self._thread.start()

    def _take_first(self) -> None:
        try:
            self._first = next(self._batches, _END)
        except BaseException as e:  # noqa: BLE001 - re-raised in the iterating thread
            self._error = e

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if self._used:
            raise RuntimeError("an EpochBatches is iterated once (one epoch)")
        self._used = True
        if self._thread is not None:
            self._thread.join()
            if self._error is not None:
                raise self._error
            if self._first is _END:
                return
            yield self._first
            self._first = None
        yield from self._batches
