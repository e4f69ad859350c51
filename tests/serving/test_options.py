"""ServeOptions: safe defaults (loopback, 50 MB), every bad value refused naming the option, text args parsed."""

from __future__ import annotations

import pytest

from spectrotune.errors import ConfigError
from spectrotune.serving.options import ServeOptions


def test_defaults_listen_on_loopback_with_a_50_mb_limit():
    o = ServeOptions()
    assert (o.host, o.port, o.replicas) == ("127.0.0.1", 8000, 1)
    assert o.max_upload_bytes == 50_000_000
    assert o.max_ongoing_requests > o.max_concurrent_uploads  # room for the cheap requests and the 429 answers


@pytest.mark.parametrize(("key", "value"), [
    ("host", "example.com"), ("host", "0.0.0.0; rm"), ("port", 0), ("port", 70000), ("port", "8000"),
    ("replicas", 0), ("replicas", 1.5), ("replicas", True), ("max_batch_size", 0), ("max_upload_mb", 0),
    ("max_upload_mb", float("nan")), ("max_seconds", -1), ("max_seconds", float("inf")), ("batch_wait_s", -0.1),
    ("max_concurrent_uploads", 0), ("top_k", 0), ("num_gpus", -1),
])
def test_bad_values_are_refused_naming_the_option(key, value):
    with pytest.raises(ConfigError, match=key):
        ServeOptions(**{key: value})


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "::1", "localhost", "10.1.2.3"])
def test_hosts_are_ip_addresses_or_localhost(host):
    assert ServeOptions(host=host).host == host


def test_from_args_parses_text_and_refuses_unknown_keys():
    o = ServeOptions.from_args({"replicas": "2", "max_upload_mb": "10", "batch_wait_s": 0})
    assert (o.replicas, o.max_upload_mb, o.batch_wait_s) == (2, 10.0, 0.0)
    assert ServeOptions.from_args(o.to_args()) == o
    with pytest.raises(ConfigError, match="unknown key.*replica\\b"):
        ServeOptions.from_args({"replica": 2})
    with pytest.raises(ConfigError, match="replicas='two' is not an integer"):
        ServeOptions.from_args({"replicas": "two"})
