"""Checks that a prepared dataset's shards are the ones its manifest describes, from the Parquet footers alone.

Every command that reads a dataset (``train``'s plan before Ray Data reads a row, ``evaluate``, ``baseline``,
``inspect``, cross-validation) goes through :func:`check_shards` (:func:`spectrotune.dataset.open_dataset` and
:func:`spectrotune.training.plan.plan_run` call it), so a damaged dataset is refused with one line naming the file
before any work starts, instead of a pyarrow traceback from a worker half-way through. Checked, per file under
``data/`` (names starting with ``.`` or ``_`` are skipped, as pyarrow and Ray Data skip them):

- it lies in a ``split=<train|valid|test>/`` folder;
- its footer reads (``pyarrow.parquet.read_metadata``: a truncated or non-Parquet file fails here);
- its columns are the dataset's (:func:`spectrotune.dataset.segment_schema`; a foreign Parquet file has others;
  ``features`` may be absent and the Hive ``split`` column present), with the format's types (format 1: names and
  the ``mel`` shape) and the manifest's ``mel`` shape;

and per split, that the footers' row counts add up to the manifest's ``counts.rows_per_split`` (a shard missing,
or one extra, from another run). Only footers are read: one small read per file. A dataset checked once is not
checked again in the same process until a file's size or modification time changes. No ``ray``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from spectrotune import storage
from spectrotune.errors import DatasetError
from spectrotune.schema import FEATURES, MANIFEST, MEL, SHARDS, SPLIT, SPLITS

__all__ = ["check_shards"]

_CHECKED: dict[str, tuple[Any, dict[str, int]]] = {}


def check_shards(directory: str | Path, manifest: Any = None) -> dict[str, int]:
    """Check every shard of the prepared dataset ``directory`` against its manifest; returns rows per split.

    Parameters
    ----------
    directory : path or URI
        The dataset root (``manifest.json``, ``data/``).
    manifest : DatasetManifest, optional
        Its manifest, when the caller has read it already.

    Raises
    ------
    DatasetError
        No or an unreadable manifest (or one of an unknown format), no ``data/`` folder, a file that is not a
        readable Parquet shard of this dataset, or row counts that differ from the manifest's; the message names
        the file (or the split folder and ``manifest.json``).
    """
    from spectrotune.dataset import read_manifest

    manifest = manifest if manifest is not None else read_manifest(directory)
    root = storage.join(directory, SHARDS)
    files = _listing(root, directory)
    key = str(storage.norm(directory))
    signature = (files, manifest.format, manifest.created_unix, tuple(sorted(manifest.counts.rows_per_split.items())))
    cached = _CHECKED.get(key)
    if cached is not None and cached[0] == signature:
        return dict(cached[1])
    fs, _ = storage.filesystem(root)
    expected = _expected_schema(manifest)
    rows = {split: 0 for split in SPLITS}
    for rel, inner, _size, _mtime in files:
        path = storage.join(root, rel)
        folder = rel.split("/", 1)[0] if "/" in rel else ""
        split = folder[len("split="):] if folder.startswith("split=") else None
        if split not in SPLITS or rel.count("/") != 1:
            raise DatasetError(f"{path}: not in a split folder ({SHARDS}/split=<{'|'.join(SPLITS)}>/); move or "
                               "delete it")
        rows[split] += _check_file(path, inner, fs, expected=expected, manifest=manifest)
    wanted = {split: int(manifest.counts.rows_per_split.get(split, 0)) for split in SPLITS}
    for split in SPLITS:
        if rows[split] != wanted[split]:
            held = f"the {split} split is empty (0 rows)" if not rows[split] else f"the shards hold {rows[split]} rows"
            raise DatasetError(
                f"{storage.join(root, f'split={split}')}: {held} but "
                f"{storage.join(directory, MANIFEST)} counts {wanted[split]} (a shard is missing, or one is extra "
                "or from another run: prepare the dataset again)")
    _CHECKED[key] = (signature, dict(rows))
    return rows


def _listing(root: Any, directory: str | Path) -> tuple[tuple[str, str, int, Any], ...]:
    """``(path relative to data/, path inside the file system, size, mtime)`` of every visible file, sorted."""
    import pyarrow.fs as pafs

    fs, inner_root = storage.filesystem(root)
    try:
        infos = fs.get_file_info(pafs.FileSelector(inner_root, recursive=True, allow_not_found=True))
        root_type = fs.get_file_info(inner_root).type
    except OSError as e:
        raise DatasetError(f"{root}: cannot list the shards: {e}") from e
    if root_type == pafs.FileType.NotFound:
        raise DatasetError(f"{directory}: no shards folder {SHARDS}/ (an incomplete or foreign dataset)")
    prefix = inner_root.rstrip("/") + "/"
    out = []
    for info in infos:
        rel = info.path[len(prefix):] if info.path.startswith(prefix) else info.path
        if info.type != pafs.FileType.File or any(part[:1] in "._" for part in rel.split("/")):
            continue
        out.append((rel, info.path, int(info.size or 0), info.mtime_ns))
    return tuple(sorted(out))


def _expected_schema(manifest: Any) -> pa.Schema:
    from spectrotune.dataset import segment_schema

    n_mels, n_frames = manifest.input_shape
    return segment_schema(n_mels=n_mels, n_frames=n_frames, labels=manifest.labels)


def _storage_type(tp: pa.DataType) -> pa.DataType:
    """The type without an extension (``datasets``, once imported, reads ``mel`` as its ``Array2D`` type)."""
    return tp.storage_type if isinstance(tp, pa.BaseExtensionType) else tp


def _check_file(path: Any, inner: str, fs: Any, *, expected: pa.Schema, manifest: Any) -> int:
    """Rows of one shard, after checking that its footer reads and its schema is the dataset's."""
    import pyarrow.parquet as pq

    from spectrotune.dataset import FORMAT

    try:
        with fs.open_input_file(inner) as f:
            metadata = pq.read_metadata(f)
        schema = metadata.schema.to_arrow_schema()
    except (OSError, pa.ArrowException, ValueError) as e:
        raise DatasetError(f"{path}: not a readable Parquet shard (truncated or corrupt: "
                           f"{' '.join(str(e).split())[:200]})") from e
    names, wanted = set(schema.names), set(expected.names)
    missing = [n for n in expected.names if n not in names and n != FEATURES]
    extra = [n for n in schema.names if n not in wanted and n != SPLIT]
    if missing or extra:
        raise DatasetError(f"{path}: not a shard of this dataset (columns {', '.join(schema.names)}; "
                           + (f"missing {', '.join(missing)}" if missing else "")
                           + ("; " if missing and extra else "") + (f"unexpected {', '.join(extra)}" if extra else "")
                           + ")")
    mel_type = _storage_type(schema.field(MEL).type)
    shape = _mel_shape(schema.field(MEL).type, mel_type)
    if shape != tuple(manifest.input_shape):
        raise DatasetError(f"{path}: mel is {' x '.join(map(str, shape)) or mel_type} per row but the manifest says "
                           f"{' x '.join(map(str, manifest.input_shape))} (a shard of another dataset)")
    if manifest.format == FORMAT:
        for field in (f for f in expected if f.name in names):
            got = _storage_type(schema.field(field.name).type)
            if field.name == MEL and got != schema.field(MEL).type:
                continue  # datasets' Array2D (registered once it is imported) stores any lists: the shape was checked
            if got != field.type:
                raise DatasetError(f"{path}: column {field.name} is {got}, {FORMAT} stores {field.type} (a shard "
                                   "of another dataset or version)")
    return int(metadata.num_rows)


def _mel_shape(tp: pa.DataType, storage_type: pa.DataType) -> tuple[int, ...]:
    """``(n_mels, n_frames)`` a ``mel`` type declares: format 1's tensor shape, else two fixed list sizes."""
    if isinstance(tp, pa.BaseExtensionType) and getattr(tp, "shape", None):  # format 1 tensor, datasets Array2D
        return tuple(tp.shape)
    if pa.types.is_fixed_size_list(storage_type) and pa.types.is_fixed_size_list(storage_type.value_type):
        return storage_type.list_size, storage_type.value_type.list_size
    return ()
