"""Downloading and safely unpacking public datasets (``spectrotune fetch gtzan --dest DIR``).

:func:`fetch` downloads a known dataset's archive to ``DEST/<archive>.part`` with :mod:`urllib.request`, showing
progress (bytes, percent, rate) on stderr a few times a second at most. An interrupted download keeps its
``.part`` file; the next call asks the server for the rest with ``Range: bytes=N-`` (``206 Partial Content``
appends, a plain ``200`` means the server cannot resume and the download restarts from zero, ``416`` means the
file was already complete). The archive is then checked against its known SHA-256 (a mismatch removes the file
and raises :class:`~spectrotune.errors.InputError` naming both digests), renamed to ``DEST/<archive>``, unpacked
with :func:`safe_extract`, and a marker ``DEST/.fetched-<name>.json`` (url, sha256, files) is written. Once the
marker exists, :func:`fetch` does nothing and says so; delete the marker to fetch again.

:func:`safe_extract` unpacks tar (plain, gz, bz2, xz) and zip archives with its own checks, identical on Python
3.10-3.13 (it does not rely on ``tarfile``'s ``filter="data"``, which older Pythons lack): it refuses, naming the
member and the reason, absolute names, ``..`` components, symlinks and hardlinks whose target leaves the
destination (following the archive's own symlinks, so a chain of individually harmless links cannot escape),
and device files and FIFOs. Every member is checked before anything is written; files go to a hidden temporary
folder inside the destination and are moved into place only when all of them were written, so a refused or broken
archive leaves nothing behind.

Known datasets live in :data:`DATASETS`. The Marsyas server that hosts GTZAN has been unreliable since 2022; the
Kaggle mirror (``andradaolteanu/gtzan-dataset-music-genre-classification``) needs a Kaggle account, so download it
yourself and point ``url`` at the file (``file:///path/archive.zip``) with its ``sha256``. Only ``http``,
``https`` and ``file`` URLs are accepted, also for redirects. Pure standard library; no ``ray``.

Example
-------
>>> fetch("gtzan", "data/gtzan")  # doctest: +SKIP
PosixPath('data/gtzan')           # data/gtzan/genres/<genre>/<genre>.000NN.au
"""

from __future__ import annotations

import datetime
import hashlib
import http.client
import json
import os
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from spectrotune import __version__
from spectrotune.errors import ConfigError, InputError

__all__ = ["DATASETS", "DatasetSource", "fetch", "marker_path", "safe_extract"]


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset's archive comes from.

    Attributes
    ----------
    url : str
        Default download URL (``http``, ``https`` or ``file``).
    archive : str
        File name of the archive, used for ``DEST/<archive>.part``.
    archive_type : str
        ``"tar.gz"``, ``"tar.bz2"``, ``"tar.xz"``, ``"tar"`` or ``"zip"`` (informational: the type is read from
        the file's magic bytes, so a mirror may serve another one).
    sha256 : str or None
        Known SHA-256 of the archive as 64 lowercase hex digits, or ``None`` when nobody has published one.
    size : int or None
        Size in bytes when known (informational).
    note : str
        Shown when the download fails (mirrors, credentials).
    """

    url: str
    archive: str
    archive_type: str
    sha256: str | None = None
    size: int | None = None
    note: str = ""


DATASETS: dict[str, DatasetSource] = {
    "gtzan": DatasetSource(
        url="http://opihi.cs.uvic.ca/sound/genres.tar.gz",
        archive="genres.tar.gz",
        archive_type="tar.gz",
        # The digest torchaudio's GTZAN loader verifies for this very URL (torchaudio/datasets/gtzan.py).
        sha256="24347e0223d2ba798e0a558c4c172d9d4a19c00bb7963fe055d183dadb4ef2c6",
        note=("the Marsyas server has often been down since 2022; try a Wayback Machine copy of the same file, "
              "--url https://web.archive.org/web/20220328223413/http://opihi.cs.uvic.ca/sound/genres.tar.gz "
              "(same archive, so the same checksum is enforced), or download the Kaggle mirror yourself (it "
              "needs a Kaggle account) and pass --url file:///PATH/archive.zip (no checksum is known for it)"),
    ),
}

_ALLOWED_SCHEMES = ("http", "https", "file")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar", ".zip")
_EXTRACT_PREFIX = ".spectrotune-extract-"
_MAX_LINK_DEPTH = 40  # like the kernel's symlink-follow limit: deeper chains are loops or attacks
_COPY_BUFFER = 1 << 20

try:  # lzma is optional in some Python builds; tarfile then simply cannot open .tar.xz
    import lzma

    _LZMA_ERRORS: tuple[type[BaseException], ...] = (lzma.LZMAError,)
except ImportError:  # pragma: no cover
    _LZMA_ERRORS = ()


def marker_path(name: str, dest: str | os.PathLike[str]) -> Path:
    """Path of the marker file that records a finished fetch of ``name`` into ``dest``."""
    return Path(dest).expanduser() / f".fetched-{name}.json"


def fetch(
    name: str,
    dest: str | os.PathLike[str],
    *,
    url: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
    keep_archive: bool = False,
    log: Callable[[str], object] = print,
) -> Path:
    """Download, verify and unpack a dataset into ``dest``; do nothing if it was fetched there before.

    Parameters
    ----------
    name : str
        A key of :data:`DATASETS` (``"gtzan"``), or any name made of letters, digits, ``_.-`` when ``url`` is
        given.
    dest : path
        Destination folder (created if missing). The archive's top-level folders land directly inside it, e.g.
        ``dest/genres/blues/blues.00000.au`` for GTZAN.
    url : str, optional
        Download URL (``http``, ``https`` or ``file``) replacing the dataset's default, e.g. a mirror.
    sha256 : str, optional
        Expected SHA-256 (64 hex digits) replacing the known one. Without it, the known digest applies only when
        the URL names the same archive file as the default (a mirror of the same file); otherwise the download
        is not verified and its digest is logged so that it can be pinned.
    progress : bool
        Show progress (bytes, percent, rate) on stderr, at most 4 times a second on a terminal and every 5 s
        otherwise.
    timeout : float
        Seconds to wait for the connection and for each read before giving up (the ``.part`` file is kept).
    chunk_size : int
        Bytes read per call while downloading.
    keep_archive : bool
        Keep ``dest/<archive>`` after a successful extraction (by default it is deleted to save disk).
    log : callable
        Receives one-line status messages.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    ConfigError
        Unknown dataset name without ``url``, malformed ``sha256``, non-positive ``timeout``/``chunk_size``.
    InputError
        URL scheme not allowed, network or HTTP failure (message names the URL and the reason or status code),
        interrupted transfer (the ``.part`` file is kept: run again to resume), checksum mismatch (the file is
        removed), or an archive member refused by :func:`safe_extract`.
    """
    url, archive_name, expected, note = _resolve_source(name, url=url, sha256=sha256)
    if not timeout > 0:
        raise ConfigError(f"fetch: timeout must be > 0 seconds, got {timeout!r}")
    if int(chunk_size) < 1:
        raise ConfigError(f"fetch: chunk_size must be >= 1 byte, got {chunk_size!r}")
    dest = Path(dest).expanduser()
    if dest.exists() and not dest.is_dir():
        raise InputError(f"fetch: destination {dest} exists and is not a folder")
    marker = marker_path(name, dest)
    if marker.is_file():
        log(f"{name}: already fetched into {dest} ({marker.name} exists); nothing to do "
            f"(delete {marker} to fetch again)")
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    _remove_stale_extractions(dest, log=log)

    archive = dest / archive_name
    part = dest / (archive_name + ".part")
    if archive.is_file():
        # A previous run downloaded and verified it but did not finish extracting: verify again, skip the download.
        log(f"{name}: using the archive already downloaded at {archive}")
        source = archive
    else:
        if part.is_file() and part.stat().st_size > 0:
            log(f"{name}: resuming {part} from byte {part.stat().st_size:,}")
        log(f"{name}: downloading {url} -> {part}")
        _download(url, part, timeout=float(timeout), chunk_size=int(chunk_size), progress=progress, log=log,
                  label=name, note=note)
        source = part
    actual = _verify_sha256(source, expected=expected, url=url, log=log, label=name)
    if source == part:
        os.replace(part, archive)

    log(f"{name}: extracting {archive.name} into {dest}")
    files = safe_extract(archive, dest)
    _write_json_atomic(marker, {
        "name": name,
        "url": url,
        "archive": archive_name,
        "sha256": actual,
        "verified": expected is not None,
        "fetched_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "spectrotune": __version__,
        "files": [p.relative_to(dest).as_posix() for p in files],
    })
    if not keep_archive:
        archive.unlink()
    log(f"{name}: {len(files):,} files extracted into {dest}; marker {marker.name} written"
        + ("" if keep_archive else f"; {archive_name} deleted"))
    return dest


def _resolve_source(name: str, *, url: str | None, sha256: str | None) -> tuple[str, str, str | None, str]:
    """Return (url, archive file name, expected sha256 or None, note) for a fetch request."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(f"fetch: dataset name must be letters, digits, '_', '.', '-'; got {name!r}")
    spec = DATASETS.get(name)
    if spec is None and url is None:
        raise ConfigError(f"fetch: unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))} "
                          "(or give a url)")
    chosen = url if url is not None else spec.url  # type: ignore[union-attr]
    parts = urllib.parse.urlsplit(chosen)
    if parts.scheme.lower() not in _ALLOWED_SCHEMES:
        raise InputError(f"fetch: URL scheme {parts.scheme!r} not allowed in {chosen!r} "
                         f"(use {', '.join(_ALLOWED_SCHEMES)})")
    base = os.path.basename(urllib.parse.unquote(parts.path))
    named_archive = base if base.lower().endswith(_ARCHIVE_SUFFIXES) and _NAME_RE.match(base) else None
    archive_name = named_archive or (spec.archive if spec is not None else f"{name}.archive")
    if sha256 is not None:
        if not isinstance(sha256, str) or not _SHA256_RE.match(sha256.strip()):
            raise ConfigError(f"fetch: sha256 must be 64 hex digits, got {sha256!r}")
        expected: str | None = sha256.strip().lower()
    elif spec is not None and spec.sha256 is not None and (url is None or named_archive == spec.archive):
        expected = spec.sha256
    else:
        expected = None
    # The note speaks about the default server, so it is shown only when that server is used.
    return chosen, archive_name, expected, spec.note if spec is not None and url is None else ""


# ---------------------------------------------------------------------------------------------------------------
# Downloading


class _SchemeCheckingRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows redirects only to http/https (urllib would also follow ftp)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise urllib.error.URLError(f"refusing redirect to {newurl!r} (scheme {scheme!r})")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_SchemeCheckingRedirectHandler)


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """Parse ``bytes START-END/TOTAL`` or ``bytes */TOTAL`` into (start, total); unknown parts are None."""
    if not value:
        return None, None
    m = re.match(r"^\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*$", value)
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _download(url: str, part: Path, *, timeout: float, chunk_size: int, progress: bool,
              log: Callable[[str], object], label: str, note: str) -> int:
    """Download ``url`` into ``part``, resuming from its current size. Returns the final size in bytes."""
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": f"spectrotune/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    hint = f" ({note})" if note else ""
    try:
        response = _OPENER.open(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        with e:
            if e.code == 416 and offset:
                _, total = _content_range(e.headers.get("Content-Range"))
                if total is None or total == offset:
                    log(f"{label}: {part.name} is already complete ({offset:,} bytes)")
                    return offset
                # The partial file is longer than the remote one: it belongs to another file. Start over.
                log(f"{label}: {part.name} has {offset:,} bytes but the server has {total:,}; restarting from zero")
                part.unlink()
                return _download(url, part, timeout=timeout, chunk_size=chunk_size, progress=progress, log=log,
                                 label=label, note=note)
            raise InputError(f"cannot download {url}: HTTP {e.code} {e.reason}{hint}") from e
    except urllib.error.URLError as e:
        raise InputError(f"cannot download {url}: {e.reason}{hint}") from e
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise InputError(f"cannot download {url}: {e}{hint}") from e

    with response:
        status = getattr(response, "status", None)  # None for file: URLs, which ignore Range
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if offset and status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                log(f"{label}: server resumed at byte {start} instead of {offset}; restarting from zero")
                response.close()
                part.unlink()
                return _download(url, part, timeout=timeout, chunk_size=chunk_size, progress=progress, log=log,
                                 label=label, note=note)
            mode, done = "ab", offset
            if total is None and length is not None:
                total = offset + length
        else:
            if offset:
                log(f"{label}: server does not resume downloads (status {status}); restarting from zero")
            mode, done, total = "wb", 0, length
        meter = _Progress(label, total=total, resumed_at=done, enabled=progress)
        with open(part, mode) as f:
            try:
                while chunk := response.read(chunk_size):
                    f.write(chunk)
                    done += len(chunk)
                    meter.update(done)
            except (OSError, http.client.HTTPException) as e:
                f.flush()
                meter.close(done)
                raise InputError(f"download of {url} interrupted after {done:,} of {_fmt_total(total)} bytes "
                                 f"({str(e) or type(e).__name__}); {part} is kept, run again to resume") from e
        meter.close(done)
    # http.client returns b"" instead of raising when the connection closes early, so count the bytes.
    if total is not None and done < total:
        raise InputError(f"download of {url} interrupted after {done:,} of {total:,} bytes "
                         f"(connection closed); {part} is kept, run again to resume")
    return done


def _fmt_total(total: int | None) -> str:
    return f"{total:,}" if total is not None else "unknown"


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover - loop always returns


class _Progress:
    """Throttled progress line on stderr: bytes, percent of total, rate of this session."""

    def __init__(self, label: str, *, total: int | None, resumed_at: int, enabled: bool) -> None:
        self.label, self.total, self.start_bytes, self.enabled = label, total, resumed_at, enabled
        self.stream = sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        # Rewriting one line is cheap on a terminal; in a log file every update is a line, so write fewer.
        self.interval = 0.25 if self.tty else 5.0
        self.t0 = time.monotonic()
        self.last = self.t0
        self.closed = False

    def _line(self, done: int) -> str:
        elapsed = max(time.monotonic() - self.t0, 1e-9)
        rate = (done - self.start_bytes) / elapsed
        pct = f" ({100.0 * done / self.total:5.1f}%)" if self.total else ""
        total = f" / {_human(self.total)}" if self.total else ""
        return f"{self.label}: {_human(done)}{total}{pct} {_human(rate)}/s"

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        self.stream.write(("\r" + self._line(done) + "\x1b[K") if self.tty else self._line(done) + "\n")
        self.stream.flush()

    def close(self, done: int) -> None:
        if not self.enabled or self.closed:
            return
        self.closed = True
        self.stream.write(("\r" + self._line(done) + "\x1b[K\n") if self.tty else self._line(done) + "\n")
        self.stream.flush()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_COPY_BUFFER):
            digest.update(block)
    return digest.hexdigest()


def _verify_sha256(path: Path, *, expected: str | None, url: str, log: Callable[[str], object],
                   label: str) -> str:
    """Return the file's SHA-256; if it differs from ``expected``, delete the file and raise InputError."""
    actual = _sha256_file(path)
    if expected is None:
        log(f"{label}: no known checksum for {url}; sha256 {actual} (pass it as sha256 to pin it)")
    elif actual != expected:
        path.unlink()
        raise InputError(f"checksum mismatch for {url}: expected sha256 {expected}, got {actual}; removed {path} "
                         "(if this archive is a different file on purpose, pass its sha256)")
    else:
        log(f"{label}: sha256 verified ({actual})")
    return actual


def _write_json_atomic(path: Path, payload: dict[str, object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _remove_stale_extractions(dest: Path, *, log: Callable[[str], object]) -> None:
    """Delete temporary extraction folders that a killed run left behind (they can hold gigabytes)."""
    for entry in dest.glob(_EXTRACT_PREFIX + "*"):
        if entry.is_dir() and not entry.is_symlink():
            log(f"removing {entry}, left by an interrupted extraction")
            shutil.rmtree(entry, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------------
# Safe extraction


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
    try:
        with open(archive, "rb") as f:
            head = f.read(6)
    except OSError as e:
        raise InputError(f"cannot read archive {archive}: {e}") from e
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    return "tar"  # tarfile's "r:*" recognises gzip, bz2, xz and plain tar and rejects anything else


def _refuse(archive: Path, member: str, why: str) -> InputError:
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
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _extract_entries(archive: Path, entries: list[_Entry], dest: Path,
                     open_member: Callable[[_Entry], IO[bytes] | None]) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_EXTRACT_PREFIX, dir=dest))
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
