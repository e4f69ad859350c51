"""A run's plan, made by the driver before any worker starts: which rows, which statistics, which run.

:func:`plan_run` reads the manifest, selects the train and valid rows (:class:`RowSelection`), checks they exist
and computes the per-mel-bin normalisation statistics over the train rows (streamed with pyarrow, float64
accumulation). :func:`dataset_id` and :func:`run_name` give a run its identity: the default run name is
``train-<hash of the config and the dataset>``, so rerunning the same command on the same prepared dataset
continues the same run, and another config or another preparation starts a new one.

Validation uses the valid split's clean rows (see :func:`valid_variants`); ``train.variants`` filters the train
rows. A model that cannot read the dataset (``musicnn`` on a log-mel dataset) is refused here, and a pretrained
backbone (``model.pretrained``) is read from the cache here, in the driver (:mod:`spectrotune.training.transfer`);
models with their own input batch norm get mean 0 / std 1 instead of per-mel statistics. Pure pyarrow, numpy and
torch, no ``ray`` (the Ray Datasets of a selection are made in :mod:`spectrotune.training.trainer`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.dataset as pads

from spectrotune import storage
from spectrotune.config import Config
from spectrotune.dataset import DatasetManifest, mel_array, read_manifest, shards_dir
from spectrotune.dataset_check import check_shards
from spectrotune.errors import ConfigError, DatasetError
from spectrotune.schema import CLEAN, MEL, TRACK_ID, VARIANT
from spectrotune.models.params import own_input_norm, pretrained_of
from spectrotune.training.checkpoint import model_spec
from spectrotune.training.metrics import norm_stats
from spectrotune.training.transfer import PretrainedBackbone, check_model_input, load_backbone

__all__ = ["RowSelection", "RunPlan", "dataset_id", "plan_run", "run_name", "valid_variants"]


@dataclass(frozen=True)
class RowSelection:
    """Which shard rows feed one side (train or valid) of a run.

    ``folders`` are split folders of the prepared dataset; ``tracks`` (``None`` = every track in them) and
    ``variants`` (empty = every variant) filter their rows. A run on the dataset's own splits reads
    ``split=train`` / ``split=valid`` unfiltered by track; a cross-validation fold reads every split folder and
    keeps the fold's tracks.
    """

    folders: tuple[Path, ...]
    tracks: tuple[str, ...] | None = None
    variants: tuple[str, ...] = ()
    name: str = "train"

    def arrow_filter(self) -> Any:
        """The pyarrow expression selecting the rows (``None`` = all rows)."""
        parts = []
        if self.tracks is not None:
            parts.append(pads.field(TRACK_ID).isin(list(self.tracks)))
        if self.variants:
            parts.append(pads.field(VARIANT).isin(list(self.variants)))
        if not parts:
            return None
        expr = parts[0]
        for part in parts[1:]:
            expr = expr & part
        return expr

    def arrow_dataset(self) -> pads.Dataset:
        """The folders' Parquet shards as one pyarrow dataset (unfiltered: apply :meth:`arrow_filter`)."""
        datasets = [pads.dataset(str(folder), format="parquet") for folder in self.folders]
        return datasets[0] if len(datasets) == 1 else pads.dataset(datasets)

    def arrow_table(self, columns: list[str]) -> Any:
        """The selected rows' ``columns`` as one ``pyarrow.Table``, read in this process."""
        return self.arrow_dataset().to_table(columns=columns, filter=self.arrow_filter())


@dataclass(frozen=True)
class RunPlan:
    """What a training run needs that the driver computes before any worker starts (see :func:`plan_run`).

    Attributes
    ----------
    data : Path
        The prepared dataset.
    config : Config
        The run's config.
    manifest : DatasetManifest
        The dataset's manifest.
    labels : tuple of str
        Genre names; ``n_classes = len(labels)`` comes from the manifest, never from the config.
    input_shape : (int, int)
        ``(n_mels, n_frames)`` of one segment.
    train_rows, valid_rows : RowSelection
        The rows trained on and validated on.
    n_train, n_valid : int
        Their row counts (segments x variants).
    norm_mean, norm_std : ndarray float32 [n_mels]
        Per-mel-bin normalisation statistics of the train rows.
    spec : dict
        Model and data shape stored in every checkpoint (a resumed run must match it), and the pretrained
        checkpoint's name and backbone digest when there is one.
    pretrained : PretrainedBackbone or None
        The backbone the workers start from (``model.pretrained``), read from the cache by the driver.
    """

    data: Path
    config: Config
    manifest: DatasetManifest
    labels: tuple[str, ...]
    input_shape: tuple[int, int]
    train_rows: RowSelection
    valid_rows: RowSelection
    n_train: int
    n_valid: int
    norm_mean: np.ndarray
    norm_std: np.ndarray
    spec: dict[str, Any]
    pretrained: PretrainedBackbone | None = None


def plan_run(
    data: str | Path,
    *,
    config: Config,
    tracks: Mapping[str, Sequence[str]] | None = None,
    backbones: Mapping[str, PretrainedBackbone] | None = None,
) -> RunPlan:
    """Read the manifest, check the rows a run will use and compute their normalisation statistics.

    Parameters
    ----------
    data : path
        A prepared dataset.
    config : Config
        ``train.variants`` filters the rows; ``model`` gives the checkpoint spec.
    tracks : mapping, optional
        ``{"train": track ids, "valid": track ids}`` to train and validate on those tracks, wherever the dataset
        put them (cross-validation folds). Train rows keep every variant allowed by ``train.variants``; valid
        rows are the ``clean`` variant only, like the dataset's own valid split. ``None``: the dataset's
        ``train`` and ``valid`` splits.
    backbones : mapping, optional
        Pretrained checkpoints already read (by a sweep's driver), by name; others are read from the cache.

    Raises
    ------
    DatasetError
        Not a prepared dataset, or no rows to train or validate on.
    ConfigError
        ``train.variants`` names a variant the dataset does not have, or the model cannot read the dataset.
    InputError
        ``model.pretrained`` names a checkpoint that is not in the cache.
    """
    data = storage.norm(data)
    manifest = read_manifest(data)
    check_shards(data, manifest)  # every shard's footer against the manifest, before Ray Data reads a row
    check_model_input(config, manifest)
    tc = config.train
    labels = manifest.labels
    n_mels, n_frames = manifest.input_shape
    variants = tuple(tc.variants)
    if variants:
        known = set(manifest.variants)
        unknown = [v for v in variants if v not in known]
        if unknown:
            raise ConfigError(f"train.variants: {unknown} not in the dataset (it has {sorted(known)})")
    if tracks is None:
        train_rows = RowSelection((_split_dir(data, "train"),), None, variants, "train")
        valid_rows = RowSelection((_split_dir(data, "valid"),), None, valid_variants(manifest, variants), "valid")
    else:
        missing = [k for k in ("train", "valid") if k not in tracks]
        if missing:
            raise ConfigError(f"tracks: needs keys 'train' and 'valid', missing {missing}")
        overlap = sorted(set(tracks["train"]) & set(tracks["valid"]))
        if overlap:
            raise DatasetError(f"{len(overlap)} track(s) both in train and valid, e.g. {overlap[0]!r}")
        folders = tuple(storage.join(shards_dir(data), name)
                        for name in sorted({f.split("/", 1)[0] for f in storage.list_files(shards_dir(data))})
                        if name.startswith("split="))
        train_rows = RowSelection(folders, tuple(sorted(tracks["train"])), variants, "train")
        valid_rows = RowSelection(folders, tuple(sorted(tracks["valid"])), (CLEAN,), "valid")
    n_train = _check_rows(data, train_rows)
    n_valid = _check_rows(data, valid_rows)
    if own_input_norm(config.model.name):  # its input batch norm standardises (with pretrained statistics)
        norm_mean, norm_std = np.zeros(n_mels, np.float32), np.ones(n_mels, np.float32)
    else:
        norm_mean, norm_std, _ = _scan_rows(train_rows, n_mels=n_mels)
    spec = model_spec(config, labels=labels, input_shape=(n_mels, n_frames), data_id=dataset_id(manifest))
    wanted = pretrained_of(config.model.name, config.model.params())
    pretrained = (backbones or {}).get(wanted) if wanted else None
    pretrained = pretrained or load_backbone(config, manifest)
    if pretrained is not None:
        spec["pretrained"] = {"model": pretrained.model, "backbone_sha256": pretrained.sha256}
    return RunPlan(data=data, config=config, manifest=manifest, labels=labels, input_shape=(n_mels, n_frames),
                   train_rows=train_rows, valid_rows=valid_rows, n_train=n_train, n_valid=n_valid,
                   norm_mean=norm_mean, norm_std=norm_std, spec=spec, pretrained=pretrained)


def dataset_id(manifest: DatasetManifest) -> str:
    """A short fingerprint of one prepared dataset: its whole manifest (config, counts, creation time), hashed.

    Preparing again, even with the same config and source, gives a new id: the audio may have changed.
    """
    text = json.dumps(manifest.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def run_name(config: Config, data_id: str) -> str:
    """The name of a run's folder under the storage path (12 hex digits after ``train-``).

    ``train.run_name`` when set, else ``train-<hash of the config and the dataset id>``: rerunning the same command
    on the same prepared dataset continues the run; another config or another dataset starts a new one.
    """
    if config.train.run_name:
        return config.train.run_name
    return "train-" + hashlib.sha256(f"{config.hash()}:{data_id}".encode()).hexdigest()[:12]


def valid_variants(manifest: DatasetManifest, train_variants: tuple[str, ...]) -> tuple[str, ...]:
    """The variants validation scores: the clean rows, as the test report's headline does.

    Noisy valid rows (``noise.splits`` including valid) would mix two questions into the number that picks the best
    epoch. Without clean valid rows (``noise.keep_clean: false``) the ``train.variants`` filter applies (empty:
    every variant).
    """
    return (CLEAN,) if CLEAN in manifest.counts.variants_in("valid") else train_variants


def _split_dir(data: Path | str, split: str) -> Path | str:
    return storage.join(shards_dir(data), f"split={split}")


def _scan_rows(rows: RowSelection, *, n_mels: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Normalisation statistics and row count of the selected rows (streamed, one batch in memory)."""
    dataset = rows.arrow_dataset()

    def mels():
        for batch in dataset.to_batches(columns=[MEL], filter=rows.arrow_filter(), batch_size=256):
            if batch.num_rows:
                yield mel_array(batch)

    return norm_stats(mels(), n_mels=n_mels)


def _check_rows(data: Path | str, rows: RowSelection) -> int:
    """Row count of a selection; a missing, unreadable or empty selection is a DatasetError naming it."""
    for folder in rows.folders:
        if not any(f.endswith(".parquet") for f in storage.list_files(folder)):
            raise DatasetError(f"{data}: the {rows.name} split is empty (no shards in {folder})")
    try:
        n = int(rows.arrow_dataset().count_rows(filter=rows.arrow_filter()))
    except (OSError, ValueError) as e:  # pyarrow raises ArrowInvalid (a ValueError) on damaged files
        raise DatasetError(f"{', '.join(map(str, rows.folders))}: cannot read the {rows.name} shards: {e}") from e
    if n == 0:
        if rows.tracks is not None:
            raise DatasetError(f"{data}: no rows for the {len(rows.tracks)} {rows.name} track(s)"
                               + (f" with variants {list(rows.variants)}" if rows.variants else ""))
        which = f" for train.variants={list(rows.variants)}" if rows.variants else ""
        raise DatasetError(f"{data}: the {rows.name} split has no rows{which}")
    return n
