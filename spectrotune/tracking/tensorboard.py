"""TensorBoard event files without TensorFlow: scalars written with tensorboardX (which ``ray[tune]`` installs),
and :func:`read_scalars`, a small reader of the files it writes.

Layout: ``OUT/tb/<run name>/`` for ``spectrotune train`` and ``OUT/tb/<trial id>/`` for each trial of a sweep or
cross-validation, one ``events.out.tfevents.*`` file per process that wrote there (a resumed run adds one);
``tensorboard --logdir OUT/tb`` shows every run or trial side by side, one scalar per metric name at step
``epoch`` (the names of :func:`~spectrotune.tracking.records.epoch_metrics`).

The reader parses the TFRecord framing (length, masked CRC-32C of the length, payload, masked CRC-32C of the
payload; both checked) and the ``Event`` protobuf with tensorboardX's own generated classes. No ``ray``.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spectrotune.errors import InputError

__all__ = ["ScalarWriter", "read_scalars", "unique_suffix"]


class ScalarWriter:
    """Scalars of one run into a new event file in ``folder`` (created), on disk when each :meth:`log` returns.

    Writes synchronously with tensorboardX's ``EventsWriter`` (its ``SummaryWriter`` queues events for a thread,
    so a flush does not mean the file holds them). The file name ends in this process's id and a clock reading,
    so two writers never share a file.

    Parameters
    ----------
    folder : Path
        The run's event folder (``OUT/tb/<name>``).
    """

    def __init__(self, folder: Path) -> None:
        from tensorboardX.event_file_writer import EventsWriter

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._writer = EventsWriter(str(self.folder / "events"), filename_suffix=unique_suffix())

    def log(self, metrics: Mapping[str, float], *, step: int) -> None:
        """One scalar per entry of ``metrics`` at ``step``."""
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.proto.summary_pb2 import Summary

        summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(v)) for tag, v in metrics.items()])
        self._writer.write_event(Event(wall_time=time.time(), step=int(step), summary=summary))
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def unique_suffix() -> str:
    """An event-file name suffix no other writer uses (``.<pid>.<ns>``): tensorboardX names files by the second."""
    return f".{os.getpid()}.{time.time_ns() % 10**9:09d}"


def _masked_crc(data: bytes) -> int:
    from tensorboardX.record_writer import masked_crc32c

    return masked_crc32c(data)


def _records(path: Path) -> list[bytes]:
    """The payloads of the TFRecord file ``path``; a torn last record (a writer still running) is left out."""
    blob = path.read_bytes()
    out, pos = [], 0
    while pos + 12 <= len(blob):
        header = blob[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", blob[pos + 8:pos + 12])
        end = pos + 12 + length + 4
        if end > len(blob):
            break
        if header_crc != _masked_crc(header):
            raise InputError(f"{path}: not a TensorBoard event file (bad record header at byte {pos})")
        data = blob[pos + 12:pos + 12 + length]
        (data_crc,) = struct.unpack("<I", blob[end - 4:end])
        if data_crc != _masked_crc(data):
            raise InputError(f"{path}: damaged TensorBoard event file (bad record checksum at byte {pos})")
        out.append(data)
        pos = end
    return out


def _value(value: Any) -> float | None:
    if value.HasField("simple_value"):
        return float(value.simple_value)
    if value.HasField("tensor") and value.tensor.float_val:
        return float(value.tensor.float_val[0])
    return None


def read_scalars(folder: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the event files of ``folder`` (not its subfolders): ``{tag: [(step, value), ...]}``, in the
    order written (files by name, i.e. by creation time).

    Raises
    ------
    InputError
        ``folder`` holds no event file, or one that is not a TensorBoard event file.
    """
    from tensorboardX.proto.event_pb2 import Event

    files = sorted(Path(folder).glob("events.out.tfevents.*"))
    if not files:
        raise InputError(f"{folder}: no TensorBoard event files (events.out.tfevents.*)")
    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in files:
        for data in _records(path):
            event = Event.FromString(data)
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                number = _value(value)
                if number is not None:
                    scalars.setdefault(value.tag, []).append((int(event.step), number))
    return scalars
