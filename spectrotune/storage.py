"""Local paths and object-store URIs (``s3://``, ``gs://``, ``hdfs://`` ...) behind one small API. No ``ray``.

Every data and output path of spectrotune goes through here, so each accepts a local path or a URI. URIs are
resolved by ``pyarrow.fs.FileSystem.from_uri``, which takes credentials and endpoints from the usual places:
for S3 the AWS variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, and
``AWS_ENDPOINT_URL`` for an S3-compatible server such as MinIO), an instance profile or ``~/.aws``; for GCS
``GOOGLE_APPLICATION_CREDENTIALS`` or the VM's service account. On a cluster every node needs them.

Object stores have no rename, so the two ways an output is published differ:

- local folders appear atomically (written aside, then renamed: :func:`replace_dir`);
- on an object store a folder is written under a hidden staging prefix and then copied into place with its
  marker file (``manifest.json``, ``bundle.json``, ``report.json`` ...) copied last. A reader that finds the
  marker finds everything before it; a folder without its marker is incomplete.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from spectrotune.errors import StorageError

__all__ = [
    "StorageError",
    "copy_tree",
    "delete",
    "download",
    "exists",
    "filesystem",
    "is_dir",
    "is_file",
    "is_uri",
    "join",
    "list_files",
    "local_input",
    "local_output",
    "makedirs",
    "move_files",
    "name",
    "parent",
    "read_bytes",
    "read_text",
    "replace_dir",
    "staging_sibling",
    "upload",
    "write_bytes",
    "write_error",
    "write_text",
]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

PathLike = str | os.PathLike


def is_uri(path: PathLike) -> bool:
    """True for ``scheme://...`` strings other than ``file://`` (which is a local path)."""
    text = os.fspath(path)
    return bool(_SCHEME.match(text)) and not text.startswith("file://")


def _local(path: PathLike) -> Path:
    text = os.fspath(path)
    return Path(text[len("file://"):] if text.startswith("file://") else text)


def norm(path: PathLike) -> str | Path:
    """A URI as a string without trailing ``/``, a local path as an absolute ``Path``."""
    if is_uri(path):
        return os.fspath(path).rstrip("/")
    return _local(path).absolute()


def join(base: PathLike, *parts: str) -> str | Path:
    """``base/part/...`` for URIs (a string) and local paths (a ``Path``)."""
    if is_uri(base):
        return "/".join([os.fspath(base).rstrip("/"), *(p.strip("/") for p in parts if p)])
    return _local(base).joinpath(*parts)


def parent(path: PathLike) -> str | Path:
    """The containing folder; a bucket's root is its own parent."""
    if is_uri(path):
        scheme, rest = os.fspath(path).rstrip("/").split("://", 1)
        return f"{scheme}://{rest.rsplit('/', 1)[0]}" if "/" in rest else f"{scheme}://{rest}"
    return _local(path).absolute().parent


def name(path: PathLike) -> str:
    return os.fspath(path).rstrip("/").rsplit("/", 1)[-1] if is_uri(path) else _local(path).name


def filesystem(path: PathLike) -> tuple[Any, str]:
    """``(pyarrow.fs.FileSystem, path inside it)`` for a local path or a URI."""
    import pyarrow.fs as pafs

    if not is_uri(path):
        return pafs.LocalFileSystem(), str(_local(path).absolute())
    try:
        return pafs.FileSystem.from_uri(os.fspath(path).rstrip("/"))
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid/OSError/... for unknown schemes
        raise StorageError(f"{os.fspath(path)}: cannot open this URI ({e})") from e


def _info(path: PathLike) -> Any:
    fs, inner = filesystem(path)
    try:
        return fs.get_file_info(inner)
    except OSError as e:
        raise StorageError(f"{os.fspath(path)}: {e}") from e


def exists(path: PathLike) -> bool:
    import pyarrow.fs as pafs

    return _info(path).type != pafs.FileType.NotFound


def is_file(path: PathLike) -> bool:
    import pyarrow.fs as pafs

    return _info(path).type == pafs.FileType.File


def is_dir(path: PathLike) -> bool:
    """A local folder, or a URI prefix holding at least one object."""
    import pyarrow.fs as pafs

    if not is_uri(path):
        return _local(path).is_dir()
    return _info(path).type == pafs.FileType.Directory


def makedirs(path: PathLike) -> None:
    """Create a local folder and its parents (a :class:`StorageError` naming it when it cannot be made)."""
    if is_uri(path):
        return  # object stores have no folders; writing a key makes its prefix
    try:
        _local(path).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(path, e, doing="create folder") from e


def read_bytes(path: PathLike) -> bytes:
    if not is_uri(path):
        return _local(path).read_bytes()
    fs, inner = filesystem(path)
    try:
        with fs.open_input_stream(inner) as f:
            return f.read()
    except FileNotFoundError:
        raise
    except OSError as e:
        if "not found" in str(e).lower() or "does not exist" in str(e).lower():
            raise FileNotFoundError(os.fspath(path)) from e
        raise StorageError(f"{os.fspath(path)}: cannot read: {e}") from e


def read_text(path: PathLike) -> str:
    return read_bytes(path).decode("utf-8")


def write_error(path: PathLike, error: OSError, *, doing: str = "write") -> StorageError:
    """A :class:`StorageError` naming ``path`` and saying in words why it could not be written (disk full, not
    writable, a parent that is a file); the ``OSError`` is chained by the caller (``raise ... from error``)."""
    why = {errno.ENOSPC: "the disk is full (no space left on device)",
           errno.EDQUOT: "the disk quota is exhausted",
           errno.EACCES: "permission denied (not writable)",
           errno.EPERM: "permission denied (not writable)",
           errno.EROFS: "the file system is read-only",
           errno.ENOTDIR: "a parent of it is a file, not a folder"}.get(error.errno or 0, error.strerror or str(error))
    return StorageError(f"{os.fspath(path)}: cannot {doing}: {why}")


def _write_file(target: Path, payload: bytes) -> None:
    """Write ``payload`` into the local file ``target`` (the one place local file bytes are written: a test
    makes it fail half-way, as a disk that fills up does)."""
    with open(target, "wb") as f:
        f.write(payload)


def write_bytes(path: PathLike, payload: bytes, *, atomic: bool = True) -> None:
    """Write a file; local files are written aside and renamed, so a reader never sees half of one.

    ``atomic=False`` writes in place: for marker files whose existence is what counts (a sweep's event files), where
    a process killed between the write and the rename must still leave the marker.

    Raises
    ------
    StorageError
        ``path`` cannot be written: names it and why (disk full, not writable ...); nothing is left at ``path``
        (an atomic write's temporary file is removed, a file that was there is unchanged).
    """
    if not is_uri(path):
        target = _local(path)
        tmp = target if not atomic else target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_file(tmp, payload)
            if atomic:
                os.replace(tmp, target)
        except OSError as e:
            raise write_error(path, e) from e
        finally:
            if atomic:
                with contextlib.suppress(OSError):  # e.g. under a file: there is nothing to remove
                    tmp.unlink(missing_ok=True)
        return
    fs, inner = filesystem(path)
    try:
        with fs.open_output_stream(inner) as f:
            f.write(payload)
    except OSError as e:
        raise write_error(path, e) from e


def write_text(path: PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def jsonable(value: Any) -> Any:
    """``value`` in plain JSON types: mappings with str keys, tuples as lists, numpy scalars and arrays as Python
    numbers and lists, NaN and infinities as null (JSON has none), paths and other objects as strings. The one cleaner
    every JSON output goes through."""
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):  # numpy scalar or array, without importing it
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float)):
        return value
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)  # paths, and like json's default=str


def write_json(path: PathLike, value: Any) -> None:
    """:func:`jsonable` ``value`` as indented JSON at ``path`` (local: aside, then renamed; see :func:`write_bytes`)."""
    write_text(path, json.dumps(jsonable(value), indent=2) + "\n")


def list_files(path: PathLike) -> list[str]:
    """Every file under ``path``, as paths relative to it (``/``-separated), sorted; [] when absent."""
    import pyarrow.fs as pafs

    fs, inner = filesystem(path)
    try:
        infos = fs.get_file_info(pafs.FileSelector(inner, recursive=True, allow_not_found=True))
    except OSError as e:
        raise StorageError(f"{os.fspath(path)}: cannot list: {e}") from e
    root = inner.rstrip("/") + "/"
    return sorted(i.path[len(root):] for i in infos if i.type == pafs.FileType.File and i.path.startswith(root))


def delete(path: PathLike) -> None:
    """Remove a file or a whole folder/prefix; nothing happens when it is absent."""
    import pyarrow.fs as pafs

    if not is_uri(path):
        target = _local(path)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)
        return
    fs, inner = filesystem(path)
    info = fs.get_file_info(inner)
    try:
        if info.type == pafs.FileType.Directory:
            fs.delete_dir(inner)
        elif info.type == pafs.FileType.File:
            fs.delete_file(inner)
    except OSError as e:
        raise StorageError(f"{os.fspath(path)}: cannot delete: {e}") from e


def _ordered(files: Sequence[str], last: Sequence[str]) -> list[str]:
    tail = [f for f in files if f in set(last)]
    return [f for f in files if f not in set(last)] + sorted(tail, key=list(last).index)


def copy_tree(src: PathLike, dst: PathLike, *, last: Sequence[str] = ()) -> None:
    """Copy every file under ``src`` to the same relative path under ``dst`` (either side local or a URI).

    Files named in ``last`` (relative paths) are copied after all others, in that order: the marker files that
    tell a reader the folder is complete.
    """
    import pyarrow.fs as pafs

    src_fs, src_inner = filesystem(src)
    dst_fs, dst_inner = filesystem(dst)
    files = _ordered(list_files(src), last)
    if not is_uri(dst):
        _local(dst).mkdir(parents=True, exist_ok=True)
    try:
        if type(src_fs) is type(dst_fs) and is_uri(src) and is_uri(dst):
            for rel in files:  # server-side copies within one store
                dst_fs.copy_file(f"{src_inner}/{rel}", f"{dst_inner}/{rel}")
            return
        for rel in files:
            if not is_uri(dst):
                (_local(dst) / rel).parent.mkdir(parents=True, exist_ok=True)
            pafs.copy_files(f"{src_inner}/{rel}", f"{dst_inner}/{rel}", source_filesystem=src_fs,
                            destination_filesystem=dst_fs)
    except OSError as e:
        raise StorageError(f"cannot copy {os.fspath(src)} to {os.fspath(dst)}: {e}") from e


def upload(local_dir: PathLike, uri: PathLike, *, last: Sequence[str] = ()) -> None:
    copy_tree(local_dir, uri, last=last)


def download(uri: PathLike, local_dir: PathLike) -> Path:
    if not exists(uri):
        raise FileNotFoundError(f"{os.fspath(uri)}: not found")
    copy_tree(uri, local_dir)
    return _local(local_dir)


def staging_sibling(out: PathLike) -> str | Path:
    """A fresh hidden sibling of ``out`` to write into before :func:`replace_dir` publishes it."""
    return join(parent(out), f".{name(out)}.tmp-{uuid.uuid4().hex[:8]}")


def replace_dir(tmp: PathLike, out: PathLike, *, last: Sequence[str] = ()) -> None:
    """Publish the finished folder ``tmp`` as ``out`` (same storage), replacing what was there.

    Local: ``out`` is renamed aside and ``tmp`` renamed onto it, so a reader sees the old folder or the new one.
    Object store: the old ``out`` is deleted, ``tmp`` copied into place with ``last`` files last, then deleted.
    """
    if not is_uri(out):
        tmp_l, out_l = _local(tmp), _local(out)
        old = None
        if out_l.exists():
            old = out_l.parent / f".{out_l.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out_l, old)
        os.replace(tmp_l, out_l)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return
    delete(out)
    copy_tree(tmp, out, last=last)
    delete(tmp)


@contextlib.contextmanager
def local_input(path: PathLike) -> Iterator[Path]:
    """A local folder with the contents of ``path``: itself when local, else a temporary download."""
    if not is_uri(path):
        yield _local(path)
        return
    with tempfile.TemporaryDirectory(prefix="spectrotune-in-") as tmp:
        yield download(path, Path(tmp) / name(path))


@contextlib.contextmanager
def local_output(path: PathLike, *, last: Sequence[str] = (), staged: bool = False) -> Iterator[Path]:
    """A local folder to write ``path``'s files into: itself when local, else a temporary folder uploaded (files
    in ``last`` last) when the block ends without an error. Files already at ``path`` and not rewritten stay.

    ``staged=True`` stages local output too: the block writes into a hidden sibling whose files are moved into
    ``path`` (``last`` last) only when the block ends without an error, so a failure half-way (a full disk) leaves
    ``path`` as it was. The staging folder is removed either way.
    """
    if not is_uri(path) and not staged:
        yield _local(path)
        return
    if not is_uri(path):
        out = _local(path).absolute()
        tmp = Path(staging_sibling(out))
        try:
            tmp.mkdir(parents=True)
        except OSError as e:
            raise write_error(out, e) from e
        try:
            yield tmp
            move_files(tmp, out, last=last)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    with tempfile.TemporaryDirectory(prefix="spectrotune-out-") as tmp:
        yield Path(tmp)
        upload(tmp, path, last=last)


def move_files(src: PathLike, dst: PathLike, *, last: Sequence[str] = ()) -> None:
    """Move every file of the local folder ``src`` to the same relative path under the local folder ``dst`` (same
    file system: each a rename, so no file is ever half there), files in ``last`` last."""
    src_l, dst_l = _local(src), _local(dst)
    for rel in _ordered(list_files(src_l), last):
        target = dst_l / rel
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src_l / rel, target)
        except OSError as e:
            raise write_error(target, e) from e
