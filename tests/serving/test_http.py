"""The HTTP surface without a server: routes, the size limit, multipart and raw uploads, errors as JSON."""

from __future__ import annotations

import json

import pytest

from spectrotune.serving.client import encode_multipart
from spectrotune.serving.http import (ROUTES, STATIC, BodyLimit, HttpError, json_bytes, parse_top_k, parse_upload,
                                      route, safe_suffix)

AUDIO = bytes(range(256)) * 40 + b"\r\n--not-the-boundary\r\n" + b"\r\n"  # binary, with CRLFs and dashes inside


@pytest.mark.parametrize(("method", "path", "endpoint"), [
    ("GET", "/", "page"), ("GET", "/healthz", "health"), ("GET", "/healthz/", "health"), ("get", "/v1/model", "model"),
    ("POST", "/v1/predict", "predict"), ("POST", "/v1/embed", "embed"), ("GET", "/static/app.js", "static"),
])
def test_routes(method, path, endpoint):
    assert route(method, path) == endpoint


def test_unknown_paths_are_404_and_wrong_methods_405_with_allow():
    with pytest.raises(HttpError) as e:
        route("GET", "/etc/passwd")
    assert e.value.status == 404 and "/v1/predict" in e.value.message
    with pytest.raises(HttpError) as e:
        route("GET", "/v1/predict")
    assert e.value.status == 405 and e.value.headers == {"Allow": "POST"}
    with pytest.raises(HttpError) as e:
        route("GET", "/static/../../bundle.json")
    assert e.value.status == 404


def test_only_the_listed_static_files_can_be_served_and_they_ship():
    from importlib import resources

    assert {p for (_, p), name in ROUTES.items() if name in ("page", "static")} == set(STATIC)
    static = resources.files("spectrotune.serving") / "static"
    for name, _ in STATIC.values():
        assert (static / name).read_bytes()
    page = (static / "index.html").read_text()
    assert "/static/app.js" in page and "http" not in page.replace("http-equiv", "")  # nothing from elsewhere


def test_body_limit_refuses_a_declared_length_before_reading_and_a_stream_as_it_passes():
    with pytest.raises(HttpError) as e:
        BodyLimit(1000, "1001")
    assert e.value.status == 413 and e.value.code == "too_large" and "--max-upload-mb" in e.value.message
    limit = BodyLimit(1000, None)
    limit.add(b"x" * 600)
    with pytest.raises(HttpError) as e:
        limit.add(b"x" * 401)
    assert e.value.status == 413
    ok = BodyLimit(1000, "1000")
    ok.add(b"a" * 1000)
    assert ok.body() == b"a" * 1000


@pytest.mark.parametrize("length", ["-1", "12abc", ""])
def test_body_limit_refuses_a_bad_content_length(length):
    with pytest.raises(HttpError) as e:
        BodyLimit(1000, length)
    assert e.value.status == 400


def test_an_empty_body_is_400():
    with pytest.raises(HttpError) as e:
        BodyLimit(10, "0").body()
    assert (e.value.status, e.value.code) == (400, "empty_body")


def test_multipart_upload_round_trips_binary_data():
    body, ctype = encode_multipart(AUDIO, "my song.flac")
    upload = parse_upload(ctype, body)
    assert upload.data == AUDIO and upload.filename == "my song.flac"


def test_multipart_picks_the_file_field_among_others():
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"C:\\\\music\\\\a.wav\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode() + AUDIO + f"\r\n--{boundary}--\r\n".encode()
    upload = parse_upload(f"multipart/form-data; boundary={boundary}", body)
    assert upload.data == AUDIO and upload.filename == "a.wav"  # only the last component of a client's path


@pytest.mark.parametrize(("body", "code"), [
    (b"no boundary at all", "bad_multipart"),
    (b"--XY\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc", "bad_multipart"),  # truncated
    (b"--XY\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--XY--\r\n", "no_file"),
    (b"--XY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n\r\n--XY--\r\n", "empty_body"),
])
def test_broken_or_empty_multipart_is_400(body, code):
    with pytest.raises(HttpError) as e:
        parse_upload("multipart/form-data; boundary=XY", body)
    assert (e.value.status, e.value.code) == (400, code)


@pytest.mark.parametrize("ctype", [None, "audio/mpeg", "application/octet-stream", "application/x-www-form-urlencoded"])
def test_any_other_body_is_the_file_itself(ctype):
    upload = parse_upload(ctype, AUDIO, filename="../../x.mp3")
    assert upload.data == AUDIO and upload.filename == "x.mp3"


@pytest.mark.parametrize(("name", "suffix"), [("a.MP3", ".mp3"), ("song.flac", ".flac"), ("noext", ""),
                                              ("a.wav/../../etc", ""), ("x.w a v", ""), ("a.tar.gz", ".gz")])
def test_only_plain_suffixes_reach_the_decoder(name, suffix):
    assert safe_suffix(name) == suffix


def test_top_k_from_the_query():
    assert parse_top_k("", default=5, n_labels=3) == 3
    assert parse_top_k(b"top_k=2", default=5, n_labels=10) == 2
    for bad in ("top_k=0", "top_k=x", "top_k=-1", "top_k="):
        with pytest.raises(HttpError) as e:
            parse_top_k(bad, default=5, n_labels=3)
        assert e.value.status == 400 and "top_k" in e.value.message


def test_errors_and_replies_are_valid_json():
    e = HttpError(429, "busy", "too many", headers={"Retry-After": "1"})
    assert json.loads(json_bytes(e.body())) == {"error": {"status": 429, "code": "busy", "message": "too many"}}
    assert json.loads(json_bytes({"p": float("nan")})) == {"p": None}
