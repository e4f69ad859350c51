"""Safe unpacking of tar and zip archives: nothing is ever written outside the destination.

:func:`safe_extract` unpacks tar (plain, gz, bz2, xz) and zip archives with its own checks, identical on Python
3.10-3.13 (it does not rely on ``tarfile``'s ``filter="data"``, which older Pythons lack): it refuses, naming the
member and the reason, absolute names, ``..`` components, symlinks and hardlinks whose target leaves the
destination (following the archive's own symlinks, so a chain of individually harmless links cannot escape),
and device files and FIFOs. Every member is checked before anything is written; files go to a hidden temporary
folder inside the destination (``.spectrotune-extract-*``) and are moved into place only when all of them were
written, so a refused or broken archive leaves nothing behind. :func:`remove_stale_extractions` deletes such
folders that a killed run left. Pure standard library; no ``ray``.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from spectrotune.errors import InputError

__all__ = ["EXTRACT_PREFIX", "remove_stale_extractions", "safe_extract"]

EXTRACT_PREFIX = ".spectrotune-extract-"
"""Name prefix of the hidden temporary folder :func:`safe_extract` writes into inside the destination."""
_MAX_LINK_DEPTH = 40  # like the kernel's symlink-follow limit: deeper chains are loops or attacks
_COPY_BUFFER = 1 << 20  # bytes per read when copying a member out of the archive

try:  # lzma is optional in some Python builds; tarfile then simply cannot open .tar.xz
    import lzma

    _LZMA_ERRORS: tuple[type[BaseException], ...] = (lzma.LZMAError,)
except ImportError:  # pragma: no cover
    _LZMA_ERRORS = ()


def remove_stale_extractions(dest: Path, *, log: Callable[[str], object]) -> None:
    """Delete temporary extraction folders that a killed run left behind in ``dest`` (they can hold gigabytes)."""
    for entry in dest.glob(EXTRACT_PREFIX + "*"):
        if entry.is_dir() and not entry.is_symlink():
            log(f"removing {entry}, left by an interrupted extraction")
            shutil.rmtree(entry, ignore_errors=True)


@dataclass(frozen=True)
class _Entry:
    """One archive member after the checks: ``parts`` is its path inside the destination."""

    name: str
    kind: str  # "dir", "file", "symlink", "hardlink"
    parts: tuple[str, ...]
    target: str = ""  # link target as stored in the archive (symlink: relative to the link; hardlink: to root)
    mode: int = 0o644
    mtime: float | None = None
    ref: object = None  # the TarInfo / ZipInfo to read the data from


def safe_extract(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> list[Path]:
    """Unpack a tar (plain, gz, bz2, xz) or zip archive into ``dest`` without ever writing outside it.

    Every member is checked before anything is written. Refused (with the member name and the reason):
    absolute names (``/x``, ``C:\\x``), ``..`` components, symlinks that are absolute or whose target resolves
    outside ``dest`` (following the archive's other symlinks), hardlinks whose target is absolute, contains
    ``..``, leaves ``dest`` or is not a file of the archive, device files, FIFOs and other special members.
    Members are written to a hidden temporary folder inside ``dest`` and moved into place only when all were
    written; on any error that folder is deleted, so ``dest`` is left as it was. Hardlinks become copies; file
    modes keep only the owner-execute bit (no setuid, no group/world write); owners are never changed.

    Parameters
    ----------
    archive : path
        The archive; its type is read from its first bytes, not its name.
    dest : path
        Destination folder, created if missing. Existing folders are merged; existing files with the same name
        are replaced.

    Returns
    -------
    list of Path
        The files and symlinks written (not folders), in archive order, as paths under ``dest``.

    Raises
    ------
    InputError
        The archive cannot be read or has a refused member; an archive entry conflicts with an existing path of
        another kind in ``dest``.
    """
    archive = Path(archive)
    dest = Path(dest)
    kind = _archive_kind(archive)
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                entries = _check_entries(archive, list(_zip_entries(archive, zf)))
                return _extract_entries(archive, entries, dest, lambda e: zf.open(e.ref))  # type: ignore[arg-type]
        with tarfile.open(archive, mode="r:*") as tf:
            entries = _check_entries(archive, list(_tar_entries(archive, tf)))
            return _extract_entries(archive, entries, dest, lambda e: tf.extractfile(e.ref))  # type: ignore[arg-type]
    except InputError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError, OSError, zlib.error,
            *_LZMA_ERRORS) as e:
        raise InputError(f"cannot extract archive {archive}: {e}") from e


def _archive_kind(archive: Path) -> str:
    """``"zip"`` or ``"tar"``, from the file's first bytes (tarfile itself tells the tar compressions apart)."""
    try:
        with open(archive, "rb") as f:
            head = f.read(6)
    except OSError as e:
        raise InputError(f"cannot read archive {archive}: {e}") from e
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    return "tar"  # tarfile's "r:*" recognises gzip, bz2, xz and plain tar and rejects anything else


def _refuse(archive: Path, member: str, why: str) -> InputError:
    """The error for a refused member, naming the archive, the member and the reason."""
    return InputError(f"refusing to extract {archive}: member {member!r} {why}")


def _split_name(archive: Path, member: str, name: str, *, what: str = "name") -> tuple[str, ...]:
    """Split a stored path into components, refusing absolute paths and '..'; '.' and empty parts are dropped."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise _refuse(archive, member, f"has an absolute {what} {name!r}")
    # Backslashes are separators on Windows, so '..\\x' must be refused everywhere.
    parts = tuple(p for p in re.split(r"[/\\]", name) if p not in ("", "."))
    if ".." in parts:
        raise _refuse(archive, member, f"has a '..' component in its {what} {name!r}")
    return parts


def _tar_entries(archive: Path, tf: tarfile.TarFile) -> Iterator[_Entry]:
    """The tar's members as entries; refuses special files and names that are absolute or hold '..'."""
    for m in tf.getmembers():
        parts = _split_name(archive, m.name, m.name)
        if not parts:
            continue  # the archive root itself ("./")
        if m.isdir():
            yield _Entry(m.name, "dir", parts)
        elif m.isreg():
            yield _Entry(m.name, "file", parts, mode=m.mode, mtime=m.mtime, ref=m)
        elif m.issym():
            yield _Entry(m.name, "symlink", parts, target=m.linkname)
        elif m.islnk():
            yield _Entry(m.name, "hardlink", parts, target=m.linkname, mode=m.mode, mtime=m.mtime)
        elif m.ischr() or m.isblk():
            raise _refuse(archive, m.name, "is a device file")
        elif m.isfifo():
            raise _refuse(archive, m.name, "is a FIFO")
        else:
            raise _refuse(archive, m.name, f"has an unsupported type {m.type!r}")


def _zip_entries(archive: Path, zf: zipfile.ZipFile) -> Iterator[_Entry]:
    """The zip's members as entries (Unix file type from ``external_attr``'s high bits), refused as for tar."""
    for info in zf.infolist():
        parts = _split_name(archive, info.filename, info.filename)
        if not parts:
            continue
        unix_mode = info.external_attr >> 16  # zip stores the Unix st_mode in the high 16 bits
        ftype = stat.S_IFMT(unix_mode)
        mtime = time.mktime(info.date_time + (0, 0, -1)) if info.date_time[0] >= 1980 else None
        if info.is_dir() or ftype == stat.S_IFDIR:
            yield _Entry(info.filename, "dir", parts)
        elif ftype == stat.S_IFLNK:
            if info.file_size > 4096:
                raise _refuse(archive, info.filename, "is a symlink with an implausibly long target")
            target = zf.read(info).decode("utf-8", errors="strict")
            yield _Entry(info.filename, "symlink", parts, target=target)
        elif ftype in (0, stat.S_IFREG):
            yield _Entry(info.filename, "file", parts, mode=unix_mode or 0o644, mtime=mtime, ref=info)
        elif ftype in (stat.S_IFCHR, stat.S_IFBLK):
            raise _refuse(archive, info.filename, "is a device file")
        elif ftype == stat.S_IFIFO:
            raise _refuse(archive, info.filename, "is a FIFO")
        else:
            raise _refuse(archive, info.filename, f"has an unsupported file type {oct(ftype)}")


def _resolve(parts: tuple[str, ...], links: dict[tuple[str, ...], str], *, depth: int = 0) -> tuple[str, ...] | None:
    """Resolve a path inside the destination, following the archive's symlinks the way the OS would.

    Returns the physical components, or None if the path leaves the destination (an absolute link target or a
    '..' above the root) or the symlinks loop.
    """
    if depth > _MAX_LINK_DEPTH:
        return None
    out: list[str] = []
    for p in parts:
        if p in ("", "."):
            continue
        if p == "..":
            if not out:
                return None
            out.pop()
            continue
        out.append(p)
        target = links.get(tuple(out))
        if target is None:
            continue
        if target.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", target):
            return None
        resolved = _resolve(tuple(out[:-1]) + tuple(re.split(r"[/\\]", target)), links, depth=depth + 1)
        if resolved is None:
            return None
        out = list(resolved)
    return tuple(out)


def _check_entries(archive: Path, entries: list[_Entry]) -> list[_Entry]:
    """Refuse members stored below a symlink of the archive and links whose target leaves the destination."""
    # All symlinks of the archive, whatever their order: a link created later can redirect an earlier one.
    links = {e.parts: e.target for e in entries if e.kind == "symlink"}
    files: set[tuple[str, ...]] = set()
    for e in entries:
        # Nothing may be written through an archive symlink. Besides closing the classic escape, this makes
        # every member's stored path its physical path, which is what lets _resolve key links by stored path.
        for i in range(1, len(e.parts)):
            if e.parts[:i] in links:
                raise _refuse(archive, e.name, f"is stored below the symlink {'/'.join(e.parts[:i])!r}")
        if e.kind == "symlink":
            if not e.target:
                raise _refuse(archive, e.name, "is a symlink with an empty target")
            if e.target.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", e.target):
                raise _refuse(archive, e.name, f"is a symlink to the absolute path {e.target!r}")
            if _resolve(e.parts[:-1] + tuple(re.split(r"[/\\]", e.target)), links) is None:
                raise _refuse(archive, e.name, f"is a symlink whose target {e.target!r} leaves the destination")
        elif e.kind == "hardlink":
            target = _resolve(_split_name(archive, e.name, e.target, what="hardlink target"), links)
            if target is None:
                raise _refuse(archive, e.name, f"is a hardlink whose target {e.target!r} leaves the destination")
            if target not in files:
                raise _refuse(archive, e.name, f"is a hardlink to {e.target!r}, which is not an earlier file "
                                               "of the archive")
            files.add(e.parts)
        elif e.kind == "file":
            files.add(e.parts)
    return entries


def _inside(path: str, root: str) -> bool:
    """True when the real path ``path`` is ``root`` or lies below it."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _extract_entries(archive: Path, entries: list[_Entry], dest: Path,
                     open_member: Callable[[_Entry], IO[bytes] | None]) -> list[Path]:
    """Write checked entries to a hidden folder inside ``dest``, then merge it into ``dest``; see safe_extract."""
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=EXTRACT_PREFIX, dir=dest))
    try:
        root = os.path.realpath(tmp)
        written: dict[tuple[str, ...], None] = {}
        for e in entries:
            path = tmp.joinpath(*e.parts)
            # Second line of defence: check the real, on-disk location of the parent before every write.
            parent_real = os.path.realpath(path.parent)
            if not _inside(parent_real, root):
                raise _refuse(archive, e.name, "would be written outside the destination")
            if e.kind == "dir":
                if os.path.lexists(path) and not path.is_dir():
                    raise _refuse(archive, e.name, "is a folder but an earlier member is a file of that name")
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            if os.path.lexists(path):
                if path.is_dir() and not path.is_symlink():
                    raise _refuse(archive, e.name, "is a file but an earlier member is a folder of that name")
                path.unlink()  # a repeated member replaces the earlier one; never write through a symlink
            if e.kind == "symlink":
                os.symlink(e.target, path)
            elif e.kind == "hardlink":
                source_real = os.path.realpath(tmp.joinpath(*_split_name(archive, e.name, e.target)))
                if not _inside(source_real, root) or not os.path.isfile(source_real):
                    raise _refuse(archive, e.name, f"is a hardlink to {e.target!r}, which is not an extracted file")
                # A copy, not a link: a hardlink shares the inode with its target, including future writes.
                shutil.copyfile(source_real, path)
                os.chmod(path, _safe_mode(e.mode))
            else:
                stream = open_member(e)
                if stream is None:  # pragma: no cover - isreg() members always have data
                    raise _refuse(archive, e.name, "has no data")
                with stream, open(path, "xb") as out:  # "x": O_EXCL, never follows a symlink
                    shutil.copyfileobj(stream, out, _COPY_BUFFER)
                os.chmod(path, _safe_mode(e.mode))
                if e.mtime is not None:
                    os.utime(path, (e.mtime, e.mtime))
            written[e.parts] = None
        moves = _plan_moves(tmp, dest)
        for src, dst in moves:
            os.replace(src, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [dest.joinpath(*parts) for parts in written]


def _safe_mode(mode: int) -> int:
    """Owner read/write, group/world read, and execute only if the owner could execute."""
    return 0o644 | (0o111 if mode & 0o100 else 0)


def _plan_moves(src: Path, dst: Path) -> list[tuple[Path, Path]]:
    """Moves that merge ``src`` into ``dst``; raises before anything moves if an entry conflicts."""
    moves: list[tuple[Path, Path]] = []
    for entry in sorted(os.scandir(src), key=lambda d: d.name):
        target = dst / entry.name
        is_dir = entry.is_dir(follow_symlinks=False)
        if target.is_symlink() and is_dir:
            raise InputError(f"cannot extract into {target}: it is a symlink, not a folder")
        if is_dir and target.is_dir():
            moves.extend(_plan_moves(Path(entry.path), target))
        elif target.is_dir() and not target.is_symlink():
            raise InputError(f"cannot extract {entry.name!r} into {dst}: a folder of that name exists")
        elif is_dir and os.path.lexists(target):
            raise InputError(f"cannot extract folder {entry.name!r} into {dst}: a file of that name exists")
        else:
            moves.append((Path(entry.path), target))
    return moves
