"""Resumable prepare: where an unfinished prepare keeps its work, and when that work may be reused.

A prepare into ``OUT`` writes into one staging folder beside it, always the same for a given ``OUT``
(``.<name>.partial``, :func:`staging_dir`), laid out as::

    .<name>.partial/prepare_state.json   PrepareState: config hash, source fingerprint, the task plan
    .<name>.partial/tasks/<shard>.json   one per finished task: its BatchResult, written after its shards
    .<name>.partial/dataset/             the dataset being written, published onto OUT at the end

The state file is written before any task starts; a task's marker only once all of its shards are written (each
file written whole: aside and renamed locally, one PUT on an object store), so a marker always means a finished
task. An interruption (Ctrl-C, a killed driver, a lost node, an error) leaves the folder. ``--resume`` reads it
back: when the config (its hash; the keys that differ are named) or the source (files added, removed, or with
another size or modification time are named) changed it refuses (:class:`~spectrotune.errors.ConfigError`);
otherwise the tasks with a marker are kept and the others run again from the recorded plan, which fixes which
files go to which shard whatever the resuming cluster's CPU count. Rerunning a task overwrites its partial shards,
so the published shards and ``errors.parquet`` are byte-identical to an uninterrupted run's. Pure: no ``ray``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from spectrotune import storage
from spectrotune.config import Config
from spectrotune.errors import ConfigError, DatasetError, OutputExistsError
from spectrotune.prepare.task import BatchResult
from spectrotune.schema import (
    PREPARE_DONE,
    PREPARE_STAGED,
    PREPARE_STAGING,
    PREPARE_STATE,
)
from spectrotune.sources.listing import SourceItem
from spectrotune.typed_config import JsonRecord

STATE_FORMAT = "spectrotune-prepare-state/1"


@dataclass(frozen=True)
class PrepareState(JsonRecord):
    """``prepare_state.json`` of a staging folder: what the unfinished prepare was run with, and its plan.

    ``files`` maps every source file the listing picked or named to ``(size in bytes, mtime in ns)`` (``-1`` when
    unknown); ``tasks`` maps each shard name to the paths of its files, in order.
    """

    FILE: ClassVar[str] = PREPARE_STATE
    FORMAT: ClassVar[str] = STATE_FORMAT
    KIND: ClassVar[str] = "prepare state"
    WHAT: ClassVar[str] = "prepare state file"
    ERROR: ClassVar[type[Exception]] = DatasetError

    format: str
    out: str
    source: str
    config_hash: str
    config: dict[str, Any]
    files: dict[str, tuple[int, ...]]
    tasks: dict[str, tuple[str, ...]]

    @classmethod
    def read(cls, staging: str | Path) -> PrepareState | None:
        """The state in ``staging``; None when there is none (a folder interrupted before it was written)."""
        path = storage.join(staging, PREPARE_STATE)
        try:
            text = storage.read_text(path)
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except ValueError as e:
            raise DatasetError(f"{path}: unreadable {cls.WHAT}: {e}") from e
        return cls.from_dict(data, origin=str(path))


def staging_dir(out: str | Path) -> str | Path:
    """The staging folder of ``out``: ``.<name>.partial`` beside it, the same on every run."""
    return storage.join(storage.parent(out), f".{storage.name(out)}{PREPARE_STAGING}")


def staged_dataset(staging: str | Path) -> str | Path:
    """Where the tasks write the dataset inside ``staging``."""
    return storage.join(staging, PREPARE_STAGED)


def plan_tasks(items: Sequence[SourceItem], per_task: int, *, seed: int) -> dict[str, list[SourceItem]]:
    """Shard name (``part-00000``, ...) -> about ``per_task`` files; one track's files are never split across shards.

    Tracks go to tasks in an order drawn from ``seed`` (:func:`track_order`), not in listing order: GTZAN's folders
    are genres, so listing order gave each shard one or two genres and a streamed split's batches, drawn from a
    shuffle buffer a few shards deep, came near one genre each. A track's own files keep their listing order.
    """
    by_track: dict[str, list[SourceItem]] = {}
    for item in items:
        by_track.setdefault(item.track_id, []).append(item)
    batches: list[list[SourceItem]] = []
    current: list[SourceItem] = []
    for track_id in track_order(list(by_track), seed=seed):
        current.extend(by_track[track_id])
        if len(current) >= per_task:
            batches.append(current)
            current = []
    if current:
        batches.append(current)
    return {f"part-{i:05d}": batch for i, batch in enumerate(batches)}


def track_order(track_ids: Sequence[str], *, seed: int) -> list[str]:
    """``track_ids`` sorted by a hash of ``(seed, track_id)``: a shuffle that depends on nothing else (not on the
    listing's order or size, nor on the machine), so the same tracks and seed always plan the same tasks."""
    def key(track_id: str) -> tuple[bytes, str]:
        return hashlib.blake2b(f"{seed}:{track_id}".encode(), digest_size=8).digest(), track_id

    return sorted(track_ids, key=key)


def new_state(*, out: str | Path, source: str | Path, config: Config, files: Mapping[str, Sequence[int]],
              plan: Mapping[str, Sequence[SourceItem]]) -> PrepareState:
    return PrepareState(format=STATE_FORMAT, out=str(out), source=str(source), config_hash=config.hash(),
                        config=_hashed(config.to_dict()), files={k: tuple(v) for k, v in files.items()},
                        tasks={shard: tuple(i.path for i in batch) for shard, batch in plan.items()})


def _hashed(plain: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a config its hash covers (:meth:`spectrotune.config.Config.hash` leaves ``tracking`` out)."""
    return {k: v for k, v in plain.items() if k != "tracking"}


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _listed(paths: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def difference(state: PrepareState, *, config: Config, source: str | Path, files: Mapping[str, Sequence[int]]) -> str:
    """What differs between the unfinished run and this one, in words; ``""`` when it may be resumed."""
    parts = []
    if state.config_hash != config.hash():
        old, new = _flat(state.config), _flat(_hashed(config.to_dict()))
        keys = [k for k in dict.fromkeys([*old, *new]) if old.get(k, "<absent>") != new.get(k, "<absent>")]
        parts.append("config keys changed: " + ("; ".join(
            f"{k} (run: {old.get(k, '<absent>')!r}, now: {new.get(k, '<absent>')!r})" for k in keys)
            or f"hash {state.config_hash} != {config.hash()}"))
    if state.source != str(source):
        parts.append(f"another source (run: {state.source}, now: {source})")
    else:
        added = [p for p in files if p not in state.files]
        removed = [p for p in state.files if p not in files]
        changed = [p for p in files if p in state.files and tuple(files[p]) != tuple(state.files[p])]
        for what, paths in (("added", added), ("removed", removed), ("changed (size or modification time)", changed)):
            if paths:
                parts.append(f"source files {what}: {_listed(paths)}")
    return "; ".join(parts)


def write_done(staging: str | Path, result: BatchResult) -> None:
    """Mark ``result.shard`` finished: its report, written whole (call only after all its shards are written)."""
    storage.write_text(storage.join(staging, PREPARE_DONE, f"{result.shard}.json"), json.dumps(asdict(result)))


def done_tasks(staging: str | Path, shards: Sequence[str]) -> dict[str, BatchResult]:
    """The reports of the tasks among ``shards`` that have a marker in ``staging``."""
    folder = storage.join(staging, PREPARE_DONE)
    wanted = set(shards)
    done = {}
    for rel in storage.list_files(folder):
        shard = rel.removesuffix(".json")
        if rel.endswith(".json") and shard in wanted:
            done[shard] = BatchResult(**json.loads(storage.read_text(storage.join(folder, rel))))
    return done


def open_staging(out: str | Path, *, resume: bool, overwrite: bool, config: Config, source: str | Path,
                 files: Mapping[str, Sequence[int]], log: Callable[[str], None]) -> PrepareState | None:
    """Decide what to do with ``out``'s staging folder before a prepare: the state to resume, or None for a fresh
    start (any old staging folder is then removed).

    Raises
    ------
    OutputExistsError
        A staging folder is there and neither ``resume`` nor ``overwrite`` was given.
    ConfigError
        ``resume``, and the config or the source differ from the unfinished run's (named).
    """
    staging = staging_dir(out)
    if not storage.exists(staging):
        if resume:
            log(f"nothing to resume at {staging}; preparing from the start")
        return None
    state = PrepareState.read(staging)
    if not resume:
        if not overwrite:
            told = (f" ({len(done_tasks(staging, list(state.tasks)))} of {len(state.tasks)} tasks done)"
                    if state is not None else "")
            raise OutputExistsError(f"{staging}: an unfinished prepare into {out} is there{told}; pass --resume to "
                                    "finish it, or --overwrite to discard it and start again")
        log(f"discarding the unfinished prepare in {staging} (--overwrite)")
        storage.delete(staging)
        return None
    if state is None:
        log(f"{staging} holds no {PREPARE_STATE} (interrupted before any task started); preparing from the start")
        storage.delete(staging)
        return None
    what = difference(state, config=config, source=source, files=files)
    if what:
        raise ConfigError(f"{out}: cannot resume the unfinished prepare in {staging}: {what}; run it with the same "
                          "config and source, or pass --overwrite without --resume to start again")
    return state
