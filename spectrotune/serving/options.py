"""The options of ``spectrotune serve``: where it listens, how it scales and the limits every request meets.

:class:`ServeOptions` is a frozen, validated record; the command line, ``jobs/serve.py`` and the Serve config file's
``args`` (:meth:`ServeOptions.from_args`) all build one, and each replica receives it as a plain dict
(:meth:`ServeOptions.to_args`). Pure Python; no ``ray``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spectrotune.errors import ConfigError

__all__ = ["DEFAULT_HOST", "ServeOptions"]

#: Loopback: a model server is reachable from elsewhere only when ``--host`` says so.
DEFAULT_HOST = "127.0.0.1"
MB = 1_000_000


@dataclass(frozen=True)
class ServeOptions:
    """How the server runs and what it accepts.

    ``host`` / ``port``: where Serve's HTTP proxy listens. ``replicas``: model replicas (each loads the bundle once).
    ``max_batch_size`` requests of one replica run as one forward pass, collected for at most ``batch_wait_s`` s.
    ``max_upload_mb``: largest request body in MB (10**6 bytes). ``max_seconds``: longest audio accepted (s).
    ``max_concurrent_uploads``: uploads one replica handles at once; more are answered 429 at once.
    ``max_queued_requests``: requests waiting at the proxy for a replica; more are answered 503 by Serve.
    ``top_k``: genres in a reply unless the request asks (``?top_k=N``). ``num_cpus`` / ``num_gpus`` per replica.
    """

    host: str = DEFAULT_HOST
    port: int = 8000
    replicas: int = 1
    max_batch_size: int = 8
    batch_wait_s: float = 0.01
    max_upload_mb: float = 50.0
    max_seconds: float = 600.0
    max_concurrent_uploads: int = 8
    max_queued_requests: int = 64
    top_k: int = 5
    num_cpus: float = 1.0
    num_gpus: float = 0.0

    def __post_init__(self) -> None:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            if self.host != "localhost":
                raise ConfigError(f"serve host must be an IP address or 'localhost', got {self.host!r}") from None
        _integer("port", self.port, low=1, high=65535)
        for name in ("replicas", "max_batch_size", "max_concurrent_uploads", "max_queued_requests", "top_k"):
            _integer(name, getattr(self, name), low=1)
        for name in ("max_upload_mb", "max_seconds", "num_cpus"):
            _number(name, getattr(self, name), positive=True)
        for name in ("batch_wait_s", "num_gpus"):
            _number(name, getattr(self, name), positive=False)

    @property
    def max_upload_bytes(self) -> int:
        """:attr:`max_upload_mb` in bytes."""
        return int(self.max_upload_mb * MB)

    @property
    def max_ongoing_requests(self) -> int:
        """Requests Serve hands one replica at once: the upload slots plus room for cheap requests (page, health,
        model) and for the quick 429 answers to uploads beyond :attr:`max_concurrent_uploads`."""
        return self.max_concurrent_uploads + 16

    def to_args(self) -> dict[str, Any]:
        """The options as a plain dict (JSON/YAML-safe): what a replica receives and a Serve config's ``args``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_args(cls, args: Mapping[str, Any], *, origin: str = "serve options") -> ServeOptions:
        """Options from a mapping (a Serve config's ``args`` without ``bundle``); unknown keys fail, naming them.

        Text values of numeric options are parsed (``serve run ... replicas=2`` passes every value as text).
        """
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        unknown = sorted(set(args) - set(defaults))
        if unknown:
            raise ConfigError(f"{origin}: unknown key(s) {', '.join(unknown)} (valid: {', '.join(sorted(defaults))})")
        values = {}
        for key, value in args.items():
            kind = type(defaults[key])
            if isinstance(value, str) and kind in (int, float):
                try:
                    value = kind(value)
                except ValueError:
                    raise ConfigError(f"{origin}: {key}={value!r} is not {'an integer' if kind is int else 'a number'}"
                                      ) from None
            values[key] = float(value) if kind is float and isinstance(value, int) and not isinstance(value, bool) \
                else value
        return cls(**values)


def _integer(name: str, value: Any, *, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ConfigError(f"serve option {name} must be an integer {bound}, got {value!r}")


def _number(name: str, value: Any, *, positive: bool) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and value == value and value != float("inf")
    if not ok or value < 0 or (positive and value == 0):
        raise ConfigError(f"serve option {name} must be a finite number {'> 0' if positive else '>= 0'}, "
                          f"got {value!r}")
