"""HTTP tests against ONE real ``spectrotune serve`` (tests/serving/conftest.py ``server``): answers equal to
``spectrotune predict``'s for every format, every bad input a JSON 4xx while the server keeps serving,
back-pressure, loopback only, a bounded load test, and the Serve config file for clusters."""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from audio_files import SR, signal, writable_formats, write
from legacy_data import LEGACY_BUNDLE
from ray_processes import exposed, group_and_descendants

from spectrotune.serving.client import load_test, post_audio

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SPECTROTUNE = Path(sys.executable).parent / "spectrotune"


def _get(server, path):
    with urllib.request.urlopen(server.url + path, timeout=30) as r:
        return r.status, r.headers, r.read()


def _health(server):
    return json.loads(_get(server, "/healthz")[2])


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """One 4.5-s clip per format soundfile writes here, a 0.4-s one (padded) and a silent one."""
    folder = tmp_path_factory.mktemp("clips")
    files = [write(folder / f"clip{i}.{fmt}", signal(4.5, seed=i), fmt) for i, fmt in enumerate(writable_formats())]
    files.append(write(folder / "short.wav", signal(0.4, seed=9), "wav"))
    files.append(write(folder / "silent.wav", np.zeros(2 * SR, np.float32), "wav"))
    return files


def test_the_formats_include_wav_flac_ogg_and_mp3_where_libsndfile_writes_it():
    assert {"wav", "flac", "ogg"} <= set(writable_formats())


def test_replies_equal_spectrotune_predict_on_the_same_files(server, clips):
    done = subprocess.run([str(SPECTROTUNE), "predict", str(LEGACY_BUNDLE), *map(str, clips), "--top-k", "3",
                           "--format", "json"], capture_output=True, text=True, timeout=300, check=True)
    expected = {Path(row["path"]).name: row for row in json.loads(done.stdout)}
    for path in clips:
        status, reply = post_audio(server.url, path.read_bytes(), filename=path.name, query="top_k=3")
        assert status == 200, reply
        row = expected[path.name]
        got = [(t["genre"], t["probability"]) for t in reply["top"]]
        want = [(row[f"top{i}"], row[f"p{i}"]) for i in (1, 2, 3) if row[f"top{i}"] is not None]
        assert got == want, path.name  # identical floats, not close ones
        assert (reply["padded"], reply["silent"], reply["n_windows"]) == (row["padded"], row["silent"],
                                                                         row["n_segments"])
    assert expected["short.wav"]["padded"] and expected["silent.wav"]["status"] == "silent"


def test_a_raw_body_gets_the_same_answer_as_a_multipart_upload(server, clips):
    data = clips[0].read_bytes()
    _, form = post_audio(server.url, data, filename=clips[0].name)
    _, raw = post_audio(server.url, data, filename=clips[0].name, multipart=False)
    assert raw["top"] == form["top"] and raw["timeline"] == form["timeline"] and raw["file"]["name"] == clips[0].name
    windows = raw["timeline"]["windows"]
    assert len(windows) == 4 and windows[0]["start"] == 0.0 and windows[0]["end"] == 1.0
    assert all(len(w["probabilities"]) == 3 for w in windows)
    assert raw["model"]["labels"] == ["blues", "classical", "country"] and raw["model"]["version"].startswith("sha256")


def test_the_readme_curl_lines_work_as_written(server, tmp_path):
    """The two ``curl`` lines of README's Serving section, run as written (only the port and the song differ)."""
    import shlex
    import shutil

    curl = shutil.which("curl")
    assert curl, "the README's API examples use curl: apt-get install -y curl"
    section = (REPO / "README.md").read_text().split("## Serving", 1)[1].split("\n## ", 1)[0]
    lines = [line.split("  #", 1)[0].strip() for line in section.splitlines() if line.startswith("curl ")]
    assert len(lines) == 2, lines
    write(tmp_path / "song.mp3", signal(3.0, seed=5), "mp3")
    write(tmp_path / "song.flac", signal(3.0, seed=5), "flac")
    for line in lines:
        argv = shlex.split(line.replace("http://127.0.0.1:8000", server.url))
        done = subprocess.run([curl, "-sS", *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                              check=True)
        reply = json.loads(done.stdout)
        assert reply["file"]["name"] in ("song.mp3", "song.flac") and reply["n_windows"] == 3, reply
        probabilities = [t["probability"] for t in reply["top"]]
        assert sorted(t["genre"] for t in reply["top"]) == ["blues", "classical", "country"]
        assert probabilities == sorted(probabilities, reverse=True) and abs(sum(probabilities) - 1) < 1e-6


def test_model_health_and_the_page(server):
    status, _, body = _get(server, "/v1/model")
    model = json.loads(body)
    assert status == 200 and model["name"] == "cnn" and model["front_end"]["sample_rate"] == 22050
    assert model["metrics"]["history"] and model["embedding"] is False
    assert _health(server)["status"] == "ok"
    status, headers, page = _get(server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b"/static/app.js" in page
    status, headers, js = _get(server, "/static/app.js")
    assert status == 200 and "javascript" in headers["Content-Type"] and b"/v1/predict" in js


def _error(status, reply, code):
    assert status == reply["error"]["status"] and reply["error"]["code"] == code, reply
    assert reply["error"]["message"]
    return reply["error"]["message"]


def test_bad_inputs_are_json_4xx_and_the_server_keeps_serving(server, clips, tmp_path):
    assert "not audio" in _error(*post_audio(server.url, b"just some text\n", filename="notes.txt"), "not_audio")
    assert "no body" in _error(*post_audio(server.url, b"", multipart=False), "empty_body")
    assert "empty" in _error(*post_audio(server.url, b"", filename="empty.wav"), "empty_body")
    too_big = b"\0" * 1_200_000
    assert "over the limit of 1.0 MB" in _error(*post_audio(server.url, too_big, multipart=False), "too_large")
    long = tmp_path / "long.wav"
    sf.write(long, signal(25.0, sr=8000), 8000, subtype="PCM_16")  # 400 kB: under the size limit, over 20 s
    assert "25.0 s of audio is over the limit of 20 s" in _error(
        *post_audio(server.url, long.read_bytes(), filename="long.wav"), "too_long")
    assert "top_k" in _error(*post_audio(server.url, clips[0].read_bytes(), query="top_k=zero"), "bad_parameter")
    assert "no embedding" in _error(*post_audio(server.url, clips[0].read_bytes(), path="/v1/embed"), "no_embedding")
    assert "/v1/predict" in _error(*post_audio(server.url, b"x", path="/v1/../../etc/passwd"), "not_found")
    assert _health(server)["uploads_in_progress"] == 0
    status, reply = post_audio(server.url, clips[0].read_bytes(), filename=clips[0].name)
    assert status == 200 and reply["top"]


def test_a_body_without_length_is_cut_off_at_the_limit(server):
    """Chunked upload of 8 MB, no Content-Length: the replica stops reading once 1 MB has arrived (the message
    counts what it had read: the limit and part of the chunk that passed it, not 8 MB), answers 413 and goes on
    serving."""
    host, port = "127.0.0.1", int(server.url.rsplit(":", 1)[1])
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n" % 65536 + b"\1" * 65536 + b"\r\n"
        sent, answer = 0, b""
        while sent < 8_000_000 and not answer:
            if select.select([s], [], [], 0)[0]:
                answer = s.recv(65536)
                break
            try:
                s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 65536
        deadline = time.monotonic() + 30
        while not _whole_response(answer) and time.monotonic() < deadline:
            more = s.recv(65536)
            if not more:
                break
            answer += more
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:300]
    message = json.loads(body)["error"]["message"]
    read_mb = float(message.split("request body of ", 1)[1].split(" MB", 1)[0])
    # The limit plus what arrived with the read that passed it (how much that is depends on how the server's
    # socket reads coalesce under load), never the whole 8 MB.
    assert 1.0 <= read_mb < 8.0 and "over the limit of 1.0 MB" in message, message
    assert _health(server)["status"] == "ok"


def _whole_response(answer: bytes) -> bool:
    """True once `answer` holds the head and as many body bytes as its Content-Length names (the head and the body
    can arrive in separate reads)."""
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return bool(body)


def _slow_upload(server):
    """A connection that declared a 500-kB body and sent 1 kB of it: an upload in progress until closed."""
    s = socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=30)
    s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nContent-Length: 500000\r\n\r\n"
              + b"\0" * 1000)
    return s


def _wait_for_uploads(server, n, timeout=30):
    deadline = time.monotonic() + timeout
    while _health(server)["uploads_in_progress"] != n:
        assert time.monotonic() < deadline, f"uploads in progress never reached {n}: {_health(server)}"
        time.sleep(0.2)


def test_too_many_concurrent_uploads_get_429_with_retry_after_then_service_resumes(server, clips):
    slow = [_slow_upload(server) for _ in range(8)]  # the server's --max-concurrent-uploads
    try:
        _wait_for_uploads(server, 8)
        conn = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]), timeout=30)
        conn.request("POST", "/v1/predict", body=clips[0].read_bytes(), headers={"Content-Type": "audio/wav"})
        response = conn.getresponse()
        reply = json.loads(response.read())
        conn.close()
        assert response.status == 429 and response.headers["Retry-After"] == "1"
        assert "--max-concurrent-uploads" in _error(429, reply, "busy")
        assert _health(server)["status"] == "ok"  # cheap requests still pass
    finally:
        for s in slow:
            s.close()
    _wait_for_uploads(server, 0)
    assert post_audio(server.url, clips[0].read_bytes(), filename=clips[0].name)[0] == 200


def test_every_process_of_the_server_listens_on_loopback_only(server):
    seen, outside = exposed(group_and_descendants(server.process.pid).values())
    assert outside == [], "\n".join(outside)
    port = int(server.url.rsplit(":", 1)[1])
    assert any(p == port and ip == "127.0.0.1" for (kind, ip, p) in seen), seen


def test_load_200_requests_8_concurrent_without_errors(server, clips):
    payloads = [(p.name, p.read_bytes()) for p in clips[:3]]
    single = {name: post_audio(server.url, data, filename=name)[1] for name, data in payloads}
    result = load_test(server.url, payloads, requests=200, concurrency=8, timeout=60)
    summary = result.summary()
    print("serve load test:", summary)
    assert summary["requests"] == 200 and result.errors == 0, (result.failures[:3], set(result.statuses))
    assert result.percentile(95) < 30 and result.seconds < 300
    # Batched with other requests, a file's windows share forward passes: the same numbers to float32 rounding.
    for name, data in payloads:
        again = post_audio(server.url, data, filename=name)[1]
        assert [t["genre"] for t in again["top"]] == [t["genre"] for t in single[name]["top"]]
        np.testing.assert_allclose([t["probability"] for t in again["top"]],
                                   [t["probability"] for t in single[name]["top"]], rtol=0, atol=1e-6)


def test_the_serve_config_file_is_valid_and_builds_the_app():
    import yaml
    from ray.serve.schema import ServeDeploySchema

    from spectrotune.serving.app import build_app

    config = ServeDeploySchema.model_validate(yaml.safe_load((REPO / "jobs" / "serve.yaml").read_text()))
    (app,) = config.applications
    assert app.import_path == "spectrotune.serving.app:build_app" and config.http_options.host == "127.0.0.1"
    assert build_app(app.args) is not None
    with pytest.raises(Exception, match="unknown key.*replica\\b"):
        build_app({**app.args, "replica": 2})


def test_jobs_serve_py_is_the_serve_command():
    done = subprocess.run([sys.executable, str(REPO / "jobs" / "serve.py"), "--help"], capture_output=True,
                          text=True, timeout=60, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert "--max-batch-size" in done.stdout and "--replicas" in done.stdout
