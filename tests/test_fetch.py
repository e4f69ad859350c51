"""spectrotune.sources.fetch: download with resume, checksum, safe extraction, marker.

Everything runs against a threaded HTTP server on 127.0.0.1 (port 0) serving a tiny GTZAN-like tarball that the
tests generate; its handler understands ``Range: bytes=N-`` and can drop the connection mid-transfer.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import stat
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from spectrotune.errors import ConfigError, InputError
from spectrotune.sources.fetch import DATASETS, fetch, marker_path, safe_extract

TIMEOUT = 5.0


# ---------------------------------------------------------------------------------------------------------------
# Test data and server


def _au_bytes(seed: int, seconds: float = 0.25, sr: int = 22050) -> bytes:
    noise = np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * sr)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, noise, sr, format="AU", subtype="PCM_16")
    return buf.getvalue()


GTZAN_FILES = {
    "genres/blues/blues.00000.au": _au_bytes(0),
    "genres/blues/blues.00001.au": _au_bytes(1),
    "genres/rock/rock.00000.au": _au_bytes(2),
    "genres/bextract_single.mf": b"genres/blues/blues.00000.au\tblues\n",
}


def _tar_bytes(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


ARCHIVE = _tar_bytes(GTZAN_FILES)
ARCHIVE_SHA = hashlib.sha256(ARCHIVE).hexdigest()


class _State:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.drop_after: dict[str, int] = {}  # path -> bytes to send on the next request before hanging up
        self.ignore_range: set[str] = set()


class _Handler(BaseHTTPRequestHandler):
    timeout = TIMEOUT  # the server side never waits forever either

    def do_GET(self) -> None:  # http.server's naming
        state: _State = self.server.state  # type: ignore[attr-defined]
        rng = self.headers.get("Range")
        state.requests.append((self.path, rng))
        data = state.files.get(self.path)
        if data is None:
            self.send_error(404, "no such file")
            return
        start = 0
        if rng and self.path not in state.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/gzip")
        self.end_headers()
        cut = state.drop_after.pop(self.path, None)
        self.wfile.write(body if cut is None else body[:cut])
        if cut is not None:
            self.close_connection = True  # hang up with the promised Content-Length not delivered

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.state = _State()  # type: ignore[attr-defined]
    httpd.state.files["/genres.tar.gz"] = ARCHIVE
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.url = lambda path: f"http://127.0.0.1:{httpd.server_address[1]}{path}"  # type: ignore[attr-defined]
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(TIMEOUT)


def _fetch(server, dest, messages=None, **kwargs):
    kwargs.setdefault("url", server.url("/genres.tar.gz"))
    kwargs.setdefault("sha256", ARCHIVE_SHA)
    return fetch("gtzan", dest, progress=kwargs.pop("progress", False), timeout=TIMEOUT,
                 log=(messages.append if messages is not None else (lambda _m: None)), **kwargs)


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


# ---------------------------------------------------------------------------------------------------------------
# fetch


def test_gtzan_is_known_with_the_marsyas_url():
    spec = DATASETS["gtzan"]
    assert spec.url == "http://opihi.cs.uvic.ca/sound/genres.tar.gz"
    assert spec.archive == "genres.tar.gz" and spec.archive_type == "tar.gz"
    assert spec.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", spec.sha256)


def test_fetch_downloads_verifies_extracts_and_writes_marker(server, tmp_path):
    dest = tmp_path / "gtzan"
    messages: list[str] = []
    assert _fetch(server, dest, messages) == dest
    for name, data in GTZAN_FILES.items():
        assert (dest / name).read_bytes() == data
    assert sf.info(str(dest / "genres/blues/blues.00000.au")).samplerate == 22050
    marker = json.loads(marker_path("gtzan", dest).read_text())
    assert marker["url"] == server.url("/genres.tar.gz")
    assert marker["sha256"] == ARCHIVE_SHA and marker["verified"] is True
    assert sorted(marker["files"]) == sorted(GTZAN_FILES)
    # The archive and the partial file are gone; no temporary extraction folder is left.
    assert _tree(dest) == sorted({".fetched-gtzan.json", "genres", "genres/blues", "genres/rock", *GTZAN_FILES})
    assert any("sha256 verified" in m for m in messages)


def test_keep_archive_keeps_the_verified_archive(server, tmp_path):
    _fetch(server, tmp_path, keep_archive=True)
    assert (tmp_path / "genres.tar.gz").read_bytes() == ARCHIVE


def test_second_fetch_with_marker_does_nothing(server, tmp_path):
    _fetch(server, tmp_path)
    n_requests = len(server.state.requests)
    (tmp_path / "genres/blues/blues.00000.au").unlink()  # proves nothing is re-extracted either
    messages: list[str] = []
    _fetch(server, tmp_path, messages)
    assert len(server.state.requests) == n_requests
    assert not (tmp_path / "genres/blues/blues.00000.au").exists()
    assert any("already fetched" in m for m in messages)


def test_interrupted_download_resumes_with_range(server, tmp_path):
    cut = len(ARCHIVE) // 3
    server.state.drop_after["/genres.tar.gz"] = cut
    with pytest.raises(InputError, match=r"interrupted after .* run again to resume") as err:
        _fetch(server, tmp_path, chunk_size=4096)
    assert server.url("/genres.tar.gz") in str(err.value)
    part = tmp_path / "genres.tar.gz.part"
    assert part.read_bytes() == ARCHIVE[:cut]
    assert not marker_path("gtzan", tmp_path).exists() and not (tmp_path / "genres").exists()

    messages: list[str] = []
    _fetch(server, tmp_path, messages, chunk_size=4096, keep_archive=True)
    assert server.state.requests[-1] == ("/genres.tar.gz", f"bytes={cut}-")
    assert (tmp_path / "genres.tar.gz").read_bytes() == ARCHIVE
    assert not part.exists()
    assert all((tmp_path / n).read_bytes() == d for n, d in GTZAN_FILES.items())
    assert any("resuming" in m for m in messages)


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    (tmp_path / "genres.tar.gz.part").write_bytes(b"x" * 1000)  # wrong bytes that must not survive
    server.state.ignore_range.add("/genres.tar.gz")
    messages: list[str] = []
    _fetch(server, tmp_path, messages, keep_archive=True)
    assert server.state.requests[-1][1] == "bytes=1000-"
    assert (tmp_path / "genres.tar.gz").read_bytes() == ARCHIVE
    assert any("restarting from zero" in m for m in messages)


def test_complete_part_file_is_answered_416_and_used(server, tmp_path):
    (tmp_path / "genres.tar.gz.part").write_bytes(ARCHIVE)
    messages: list[str] = []
    _fetch(server, tmp_path, messages)
    assert server.state.requests == [("/genres.tar.gz", f"bytes={len(ARCHIVE)}-")]
    assert any("already complete" in m for m in messages)
    assert (tmp_path / "genres/rock/rock.00000.au").read_bytes() == GTZAN_FILES["genres/rock/rock.00000.au"]


def test_checksum_mismatch_removes_the_file_and_extracts_nothing(server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(InputError) as err:
        _fetch(server, tmp_path, sha256=wrong)
    message = str(err.value)
    assert wrong in message and ARCHIVE_SHA in message and "removed" in message
    assert _tree(tmp_path) == []


def test_known_checksum_applies_to_a_mirror_of_the_same_file(server, tmp_path):
    # Same archive name as the default URL: GTZAN's known digest is enforced (and our tiny archive fails it).
    if DATASETS["gtzan"].sha256 is None:
        pytest.fail("DATASETS[\"gtzan\"] lost its known checksum")
    with pytest.raises(InputError, match=DATASETS["gtzan"].sha256):
        _fetch(server, tmp_path, sha256=None)


def test_unknown_archive_name_is_fetched_unverified_and_its_digest_logged(server, tmp_path):
    server.state.files["/mirror/other.tar.gz"] = ARCHIVE
    messages: list[str] = []
    _fetch(server, tmp_path, messages, url=server.url("/mirror/other.tar.gz"), sha256=None)
    assert any("no known checksum" in m and ARCHIVE_SHA in m for m in messages)
    assert json.loads(marker_path("gtzan", tmp_path).read_text())["verified"] is False


def test_http_error_names_url_and_status(server, tmp_path):
    url = server.url("/missing.tar.gz")
    with pytest.raises(InputError, match="404") as err:
        _fetch(server, tmp_path, url=url)
    assert url in str(err.value)


def test_unreachable_url_names_it(tmp_path):
    with socket.socket() as s:  # a port nobody listens on: connection refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/genres.tar.gz"
    with pytest.raises(InputError, match=re.escape(url)):
        fetch("gtzan", tmp_path, url=url, timeout=TIMEOUT, progress=False, log=lambda _m: None)
    assert not (tmp_path / "genres").exists()


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/genres.tar.gz", "data:,hello", "gopher://127.0.0.1/x"])
def test_only_http_https_file_urls(tmp_path, url):
    with pytest.raises(InputError, match="scheme"):
        fetch("gtzan", tmp_path, url=url, progress=False, log=lambda _m: None)
    assert _tree(tmp_path) == []


def test_file_url_works_offline(tmp_path):
    src = tmp_path / "src" / "genres.tar.gz"
    src.parent.mkdir()
    src.write_bytes(ARCHIVE)
    dest = tmp_path / "dest"
    fetch("gtzan", dest, url=src.as_uri(), sha256=ARCHIVE_SHA, progress=False, log=lambda _m: None)
    assert (dest / "genres/blues/blues.00001.au").read_bytes() == GTZAN_FILES["genres/blues/blues.00001.au"]


@pytest.mark.parametrize(("name", "kwargs"), [
    ("nope", {}),
    ("../x", {"url": "http://127.0.0.1/x.tar.gz"}),
    ("gtzan", {"sha256": "abc"}),
    ("gtzan", {"timeout": 0}),
    ("gtzan", {"chunk_size": 0}),
])
def test_bad_arguments_are_config_errors(tmp_path, name, kwargs):
    with pytest.raises(ConfigError):
        fetch(name, tmp_path, progress=False, log=lambda _m: None, **kwargs)


def test_progress_goes_to_stderr_and_is_throttled(server, tmp_path, capsys):
    _fetch(server, tmp_path, chunk_size=1024, progress=True)  # ~100 chunks
    err = capsys.readouterr().err
    lines = [ln for ln in re.split(r"[\r\n]", err) if ln.strip()]
    assert 1 <= len(lines) <= 3, lines
    assert "100.0%" in lines[-1] and "/s" in lines[-1]


def test_stale_extraction_folder_is_removed(server, tmp_path):
    stale = tmp_path / ".spectrotune-extract-old"
    stale.mkdir()
    (stale / "junk").write_bytes(b"junk")
    _fetch(server, tmp_path)
    assert not stale.exists()


# ---------------------------------------------------------------------------------------------------------------
# safe_extract


def _tar_with(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w") -> Path:
    path = tmp_path / "archives" / "evil.tar"
    path.parent.mkdir(exist_ok=True)
    with tarfile.open(path, mode) as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"evil") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def _special(name: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info, None


# Each case: the archive members, the member name the error must mention, and why it must be refused.
MALICIOUS_TARS = {
    "absolute path": (lambda out: [_file("genres/ok.au", b"ok"), _file(str(out / "abs_evil"))], "abs_evil"),
    "dot-dot": (lambda out: [_file("genres/ok.au", b"ok"), _file("../evil")], "../evil"),
    "dot-dot inside": (lambda out: [_file("genres/../../evil")], "genres/../../evil"),
    "symlink to absolute path": (lambda out: [_link("genres/link", str(out))], "genres/link"),
    "symlink escaping": (lambda out: [_link("genres/link", "../../outside")], "genres/link"),
    "write through symlink": (lambda out: [_link("link", ".."), _file("link/evil")], "link"),
    "symlink chain": (lambda out: [_link("a", "."), _link("b", "a/..")], "b"),
    "hardlink escaping": (lambda out: [_link("genres/hard", "../outside", tarfile.LNKTYPE)], "genres/hard"),
    "hardlink absolute": (lambda out: [_link("genres/hard", str(out / "victim"), tarfile.LNKTYPE)], "genres/hard"),
    "hardlink to nothing": (lambda out: [_link("genres/hard", "genres/missing", tarfile.LNKTYPE)], "genres/hard"),
    "character device": (lambda out: [_special("genres/dev", tarfile.CHRTYPE)], "genres/dev"),
    "block device": (lambda out: [_special("genres/blk", tarfile.BLKTYPE)], "genres/blk"),
    "fifo": (lambda out: [_special("genres/fifo", tarfile.FIFOTYPE)], "genres/fifo"),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS_TARS))
def test_malicious_tar_is_refused_and_nothing_is_written(tmp_path, case):
    outside = tmp_path / "work"
    dest = outside / "dest"
    dest.mkdir(parents=True)
    (dest / "keep.txt").write_bytes(b"keep")
    (outside / "victim").write_bytes(b"victim")
    build, member = MALICIOUS_TARS[case]
    archive = _tar_with(tmp_path, build(outside))
    with pytest.raises(InputError, match="refusing") as err:
        safe_extract(archive, dest)
    assert repr(member) in str(err.value) or member in str(err.value)
    assert _tree(outside) == ["dest", "dest/keep.txt", "victim"]
    assert (outside / "victim").read_bytes() == b"victim"
    assert not (tmp_path / "evil").exists() and not (tmp_path / "outside").exists()


def _zip_with(tmp_path: Path, members: list[tuple[str, bytes, int | None]]) -> Path:
    path = tmp_path / "archives" / "evil.zip"
    path.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, unix_mode in members:
            info = zipfile.ZipInfo(name)
            if unix_mode is not None:
                info.external_attr = unix_mode << 16
            zf.writestr(info, data)
    return path


@pytest.mark.parametrize(("members", "member"), [
    ([("genres/ok.au", b"ok", None), ("../evil", b"evil", None)], "../evil"),
    ([("/abs_evil", b"evil", None)], "/abs_evil"),
    ([("genres\\..\\..\\evil", b"evil", None)], "genres\\..\\..\\evil"),
    ([("C:/evil", b"evil", None)], "C:/evil"),
    ([("genres/link", b"../../outside", stat.S_IFLNK | 0o777)], "genres/link"),
    ([("genres/fifo", b"", stat.S_IFIFO | 0o644)], "genres/fifo"),
], ids=["dot-dot", "absolute", "backslash dot-dot", "drive letter", "symlink escaping", "fifo"])
def test_malicious_zip_is_refused_and_nothing_is_written(tmp_path, members, member):
    outside = tmp_path / "work"
    dest = outside / "dest"
    archive = _zip_with(tmp_path, members)
    with pytest.raises(InputError, match="refusing") as err:
        safe_extract(archive, dest)
    assert member in str(err.value) or repr(member) in str(err.value)
    assert _tree(outside) == []
    assert not (tmp_path / "evil").exists() and not Path("/abs_evil").exists()


@pytest.mark.parametrize("mode", ["w:gz", "w:bz2", "w:xz", "w:", "zip"])
def test_supported_formats_extract_identically(tmp_path, mode):
    path = tmp_path / "archive.bin"  # the type is read from the content, not the name
    if mode == "zip":
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in GTZAN_FILES.items():
                zf.writestr(name, data)
    else:
        path.write_bytes(_tar_bytes(GTZAN_FILES, mode))
    dest = tmp_path / "dest"
    written = safe_extract(path, dest)
    assert sorted(p.relative_to(dest).as_posix() for p in written) == sorted(GTZAN_FILES)
    assert all((dest / n).read_bytes() == d for n, d in GTZAN_FILES.items())


def test_inner_links_and_dot_prefixes_are_allowed(tmp_path):
    archive = _tar_with(tmp_path, [
        _file("./genres/blues/blues.00000.au", b"audio"),
        _link("genres/latest", "blues/blues.00000.au"),
        _link("genres/rock/same.au", "../blues/blues.00000.au"),
        _link("genres/copy.au", "genres/blues/blues.00000.au", tarfile.LNKTYPE),
    ])
    dest = tmp_path / "dest"
    written = safe_extract(archive, dest)
    assert [p.relative_to(dest).as_posix() for p in written] == [
        "genres/blues/blues.00000.au", "genres/latest", "genres/rock/same.au", "genres/copy.au"]
    assert (dest / "genres/latest").is_symlink() and (dest / "genres/latest").read_bytes() == b"audio"
    assert (dest / "genres/rock/same.au").read_bytes() == b"audio"
    copy = dest / "genres/copy.au"
    assert not copy.is_symlink() and copy.read_bytes() == b"audio"
    assert os.stat(copy).st_ino != os.stat(dest / "genres/blues/blues.00000.au").st_ino


def test_modes_are_sanitised(tmp_path):
    info, data = _file("genres/tool", b"#!/bin/sh\n")
    info.mode = 0o6777  # setuid, setgid, world-writable
    plain, plain_data = _file("genres/plain.au", b"a")
    plain.mode = 0o666
    safe_extract(_tar_with(tmp_path, [(info, data), (plain, plain_data)]), tmp_path / "dest")
    assert stat.S_IMODE(os.stat(tmp_path / "dest/genres/tool").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tmp_path / "dest/genres/plain.au").st_mode) == 0o644


def test_failure_while_writing_leaves_nothing_behind(tmp_path):
    # Passes the checks, fails on disk: "x" is a file, then a member needs "x" to be a folder.
    archive = _tar_with(tmp_path, [_file("genres/a.au", b"a"), _file("genres/x", b"x"), _file("genres/x/y", b"y")])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(InputError):
        safe_extract(archive, dest)
    assert _tree(dest) == []


def test_existing_folders_are_merged(tmp_path):
    dest = tmp_path / "dest"
    (dest / "genres/blues").mkdir(parents=True)
    (dest / "genres/blues/mine.txt").write_bytes(b"mine")
    safe_extract(_tar_with(tmp_path, [_file("genres/blues/blues.00000.au", b"a")]), dest)
    assert (dest / "genres/blues/mine.txt").read_bytes() == b"mine"
    assert (dest / "genres/blues/blues.00000.au").read_bytes() == b"a"


@pytest.mark.parametrize("content", [b"", b"not an archive at all", b"PK\x03\x04 truncated zip",
                                     b"\x1f\x8b\x08 truncated gzip"])
def test_unreadable_archive_is_an_input_error(tmp_path, content):
    path = tmp_path / "bad.tar.gz"
    path.write_bytes(content)
    with pytest.raises(InputError, match="bad.tar.gz"):
        safe_extract(path, tmp_path / "dest")
    assert _tree(tmp_path / "dest") == []
