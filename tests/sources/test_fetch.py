"""spectrotune.sources.fetch: download with resume, checksum, extraction, marker.

Everything runs against a threaded HTTP server on 127.0.0.1 (port 0) serving a tiny GTZAN-like tarball that the
tests generate; its handler understands ``Range: bytes=N-`` and can drop the connection mid-transfer.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import soundfile as sf

from archive_helpers import GTZAN_FILES, tar_bytes, tree
from spectrotune.errors import ConfigError, InputError
from spectrotune.sources.fetch import DATASETS, fetch, marker_path

TIMEOUT = 5.0


# ---------------------------------------------------------------------------------------------------------------
# Test data and server


ARCHIVE = tar_bytes(GTZAN_FILES)
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
    assert tree(dest) == sorted({".fetched-gtzan.json", "genres", "genres/blues", "genres/rock", *GTZAN_FILES})
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
    assert tree(tmp_path) == []


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
    assert tree(tmp_path) == []


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
