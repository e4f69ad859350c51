"""Assigning tracks to train / valid / test — always per track, before segmentation.

Ten 3-s segments of one clip share the recording: splitting segments at random puts siblings of every test
segment in training and inflates accuracy (91% vs 68.5% for the prototype's SVM). So every split kind here maps a
*track id* to a split, and :func:`check_disjoint` is run on every result.

Kinds (``split.kind`` in the config): ``stratified`` (seeded fractions per genre), ``fault_filtered`` (the
artist-aware GTZAN lists shipped as package data), ``lists`` (user list files in the same format),
``folders`` (the Spotify set's own folders, leaky by song), ``by_song`` (Spotify clips grouped by song id, then
stratified). :func:`stratified_folds` deals the same way into K folds for ``spectrotune tune --cv K``: both
shuffle each genre's tracks with :func:`shuffled_by_genre`. Pure Python/numpy; no ``ray``.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from spectrotune.config import SplitConfig
from spectrotune.errors import ConfigError, InputError
from spectrotune.schema import SPLITS
from spectrotune.sources.listing import SourceItem


def assign_splits(items: Sequence[SourceItem], *, config: SplitConfig) -> tuple[dict[str, str], dict[str, object]]:
    """Map each track id to ``train``/``valid``/``test``.

    Returns
    -------
    splits : dict[str, str]
        track id -> split, for every track that takes part (tracks missing from list files are left out).
    info : dict
        What the manifest records about the split: kind, tracks left out, list lines that matched nothing.
    """
    tracks: dict[str, str] = {}
    for item in items:
        tracks.setdefault(item.track_id, item.genre)
    info: dict[str, object] = {"kind": config.kind}
    if config.kind in ("stratified", "by_song"):
        splits = stratified(tracks, fractions=(config.fractions.train, config.fractions.valid, config.fractions.test),
                            seed=config.seed)
    elif config.kind == "fault_filtered":
        splits, info_lists = from_lists(tracks, read_lists(fault_filtered_dir()))
        info.update(info_lists)
    elif config.kind == "lists":
        splits, info_lists = from_lists(tracks, read_lists(Path(config.dir or "")))
        info.update(info_lists)
    elif config.kind == "folders":
        splits = {}
        for item in items:
            if item.folder_split is None:
                raise ConfigError("split.kind=folders needs a Spotify-layout source (training/validation/testing)")
            splits.setdefault(item.track_id, item.folder_split)
        info["leaky"] = "the shipped Spotify folders put clips of one song in several splits"
    else:  # pragma: no cover - config validation rejects other kinds
        raise ConfigError(f"split.kind: unknown kind {config.kind!r}")
    check_disjoint(splits, items)
    return splits, info


def stratified(tracks: Mapping[str, str], *, fractions: tuple[float, float, float], seed: int) -> dict[str, str]:
    """Seeded random split by track, per genre, with largest-remainder rounding of the fractions.

    With at least three tracks in a genre and non-zero fractions, every split gets at least one of them.
    The result does not depend on the order of ``tracks``.

    Parameters
    ----------
    tracks : mapping
        ``{track_id: genre}``.
    fractions : (float, float, float)
        Shares of train, valid and test (summing to 1).
    seed : int
        Seed of the per-genre shuffles (:func:`shuffled_by_genre`).

    Returns
    -------
    dict[str, str]
        ``{track_id: split}`` for every track, splits from :data:`~spectrotune.schema.SPLITS`.
    """
    out: dict[str, str] = {}
    for order in shuffled_by_genre(tracks, seed=seed):
        counts = _counts(len(order), fractions)
        start = 0
        for split, count in zip(SPLITS, counts):
            for track_id in order[start : start + count]:
                out[track_id] = split
            start += count
    return out


def stratified_folds(tracks: Mapping[str, str], *, k: int, seed: int) -> list[list[str]]:
    """Deal tracks into ``k`` folds for K-fold cross-validation, stratified by genre.

    Each genre's tracks are shuffled as in :func:`stratified` (:func:`shuffled_by_genre`) and dealt round-robin,
    the deal continuing where the previous genre stopped, so fold sizes differ by at most one overall and each
    genre's count per fold by at most one. The result does not depend on the order of ``tracks``.

    Parameters
    ----------
    tracks : mapping
        ``{track_id: genre}``.
    k : int
        Number of folds, ``2 <= k <= len(tracks)``.
    seed : int
        Seed of the per-genre shuffles.

    Returns
    -------
    list of list of str
        ``k`` disjoint, sorted track-id lists covering every track.

    Raises
    ------
    ConfigError
        ``k < 2`` or more folds than tracks.
    """
    if k < 2:
        raise ConfigError(f"--cv {k}: cross-validation needs at least 2 folds")
    if k > len(tracks):
        raise ConfigError(f"--cv {k}: only {len(tracks)} tracks to split into {k} folds")
    folds: list[list[str]] = [[] for _ in range(k)]
    position = 0
    for order in shuffled_by_genre(tracks, seed=seed):
        for track_id in order:
            folds[position % k].append(track_id)
            position += 1
    return [sorted(fold) for fold in folds]


def shuffled_by_genre(tracks: Mapping[str, str], *, seed: int) -> list[list[str]]:
    """Each genre's track ids in a seeded random order: the one dealing order of every split by track.

    Genres come in sorted order; a genre's ids are sorted, then permuted by a generator seeded by
    ``(seed, blake2b(genre))``, so the order depends on the seed, the genre and its set of tracks, never on the
    order of ``tracks``.

    Parameters
    ----------
    tracks : mapping
        ``{track_id: genre}``.
    seed : int
        Seed of the shuffles.

    Returns
    -------
    list of list of str
        One list of track ids per genre, genres sorted by name.
    """
    by_genre: dict[str, list[str]] = {}
    for track_id, genre in tracks.items():
        by_genre.setdefault(str(genre), []).append(str(track_id))
    orders: list[list[str]] = []
    for genre in sorted(by_genre):
        ids = sorted(by_genre[genre])
        digest = int.from_bytes(hashlib.blake2b(genre.encode(), digest_size=8).digest(), "little")
        rng = np.random.default_rng([seed, digest])
        orders.append([ids[i] for i in rng.permutation(len(ids))])
    return orders


def _counts(n: int, fractions: tuple[float, float, float]) -> list[int]:
    """Tracks per split for a genre of ``n``: largest-remainder rounding, then one for each empty split if n >= 3."""
    raw = [n * f for f in fractions]
    counts = [int(np.floor(r)) for r in raw]
    for i in sorted(range(3), key=lambda i: raw[i] - counts[i], reverse=True)[: n - sum(counts)]:
        counts[i] += 1
    # Small genres: take one track from the largest split for each empty split that asked for some.
    for i in range(3):
        if counts[i] == 0 and fractions[i] > 0 and n >= 3:
            donor = int(np.argmax(counts))
            counts[donor] -= 1
            counts[i] += 1
    return counts


def fault_filtered_dir() -> Path:
    """The folder of the shipped GTZAN fault-filtered lists (train.txt, valid.txt, test.txt)."""
    return Path(str(importlib.resources.files("spectrotune.data") / "gtzan_fault_filtered"))


def read_lists(directory: Path) -> dict[str, str]:
    """Read ``train.txt``/``valid.txt``/``test.txt`` (lines ``<genre>/<file>``) into ``{genre/stem: split}``.

    The extension is ignored so the Kaggle ``.wav`` lists also match Marsyas ``.au`` files. A track listed in two
    files is an error naming both.
    """
    if not directory.is_dir():
        raise ConfigError(f"split.dir: {directory} is not a folder")
    out: dict[str, str] = {}
    where: dict[str, str] = {}
    for split in SPLITS:
        path = directory / f"{split}.txt"
        if not path.is_file():
            raise InputError(f"{path}: split list missing (split.kind lists needs train.txt, valid.txt, test.txt)")
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            genre, sep, filename = line.replace("\\", "/").rpartition("/")
            if not sep:
                raise InputError(f"{path}:{lineno}: expected '<genre>/<file>', got {line!r}")
            key = f"{genre.rsplit('/', 1)[-1]}/{Path(filename).stem}"
            if key in out and out[key] != split:
                raise InputError(f"{path}:{lineno}: {line!r} is also listed in {where[key]}")
            out[key] = split
            where[key] = f"{path}:{lineno}"
    return out


def from_lists(tracks: Mapping[str, str], lists: Mapping[str, str]) -> tuple[dict[str, str], dict[str, object]]:
    """Apply list-file assignments to the tracks found; report tracks not listed and list lines not found."""
    splits: dict[str, str] = {}
    unlisted: list[str] = []
    for track_id, genre in tracks.items():
        split = lists.get(f"{genre}/{track_id}")
        if split is None:
            unlisted.append(track_id)
        else:
            splits[track_id] = split
    found = {f"{genre}/{track_id}" for track_id, genre in tracks.items()}
    missing = sorted(set(lists) - found)
    return splits, {
        "tracks_not_in_lists": len(unlisted),
        "tracks_not_in_lists_examples": sorted(unlisted)[:10],
        "listed_tracks_not_found": len(missing),
        "listed_tracks_not_found_examples": missing[:10],
    }


def check_disjoint(splits: Mapping[str, str], items: Iterable[SourceItem]) -> None:
    """Raise if any track would end up in two splits (the leakage this module exists to prevent)."""
    seen: dict[str, str] = {}
    for item in items:
        split = splits.get(item.track_id)
        if split is None:
            continue
        if split not in SPLITS:
            raise ConfigError(f"track {item.track_id!r}: unknown split {split!r}")
        if seen.setdefault(item.track_id, split) != split:
            raise ConfigError(f"track {item.track_id!r} assigned to both {seen[item.track_id]} and {split}")
