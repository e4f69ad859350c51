"""The standard-library client: its multipart bodies parse back, and the load-test statistics are right."""

from __future__ import annotations

import pytest

from spectrotune.serving.client import LoadResult, encode_multipart, free_port
from spectrotune.serving.http import parse_upload


def test_multipart_bodies_parse_back_even_with_quotes_in_the_name():
    body, ctype = encode_multipart(b"\x00\x01--\r\n", 'a "b".wav')
    upload = parse_upload(ctype, body)
    assert upload.data == b"\x00\x01--\r\n" and upload.filename == "a %22b%22.wav"


def test_load_result_statistics():
    r = LoadResult(latencies=[i / 100 for i in range(1, 101)], statuses=[200] * 99 + [503], seconds=2.0,
                   concurrency=8, failures=["request 7: ConnectionResetError"])
    assert r.errors == 2 and r.requests_per_second == 50.0
    assert r.percentile(50) == pytest.approx(0.505) and r.percentile(95) == pytest.approx(0.9505)
    assert r.summary()["requests"] == 101 and r.summary()["p95_ms"] == pytest.approx(950.5)


def test_free_port_is_a_port_number():
    assert 1024 <= free_port() <= 65535
