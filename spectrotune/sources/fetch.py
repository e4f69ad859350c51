"""Downloading public datasets with resume and checksum, then unpacking them (``spectrotune fetch``).

:func:`fetch` downloads a known dataset's archive to ``DEST/<archive>.part`` with :mod:`urllib.request`, showing
progress (bytes, percent, rate) on stderr a few times a second at most. An interrupted download keeps its
``.part`` file; the next call asks the server for the rest with ``Range: bytes=N-`` (``206 Partial Content``
appends, a plain ``200`` means the server cannot resume and the download restarts from zero, ``416`` means the
file was already complete). The archive is then checked against its known SHA-256 (a mismatch removes the file
and raises :class:`~spectrotune.errors.InputError` naming both digests), renamed to ``DEST/<archive>``, unpacked
with :func:`~spectrotune.sources.archive.safe_extract` (which never writes outside ``DEST``), and a marker
``DEST/.fetched-<name>.json`` (url, sha256, files) is written. Once the marker exists, :func:`fetch` does nothing
and says so; delete the marker to fetch again.

Known datasets live in :data:`DATASETS`. The Marsyas server that hosts GTZAN has been unreliable since 2022; the
Kaggle mirror (``andradaolteanu/gtzan-dataset-music-genre-classification``) needs a Kaggle account, so download it
yourself and point ``url`` at the file (``file:///path/archive.zip``) with its ``sha256``. Only ``http``,
``https`` and ``file`` URLs are accepted, also for redirects. Standard library only (urllib, hashlib); no ``ray``.

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
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spectrotune import __version__, storage
from spectrotune.errors import ConfigError, InputError
from spectrotune.sources.archive import remove_stale_extractions, safe_extract

logger = logging.getLogger(__name__)

__all__ = ["DATASETS", "DatasetSource", "fetch", "marker_path"]


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
_HASH_BLOCK = 1 << 20  # bytes per read while hashing the archive


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
    log: Callable[[str], object] = logger.info,
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
        removed), or an archive member refused by :func:`~spectrotune.sources.archive.safe_extract`.
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
    remove_stale_extractions(dest, log=log)

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
    storage.write_text(marker, json.dumps({
        "name": name,
        "url": url,
        "archive": archive_name,
        "sha256": actual,
        "verified": expected is not None,
        "fetched_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "spectrotune": __version__,
        "files": [p.relative_to(dest).as_posix() for p in files],
    }, indent=1) + "\n")
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
        while block := f.read(_HASH_BLOCK):
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
