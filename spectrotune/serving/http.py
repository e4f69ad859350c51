"""The HTTP surface of ``spectrotune serve`` without a web framework: routes, request bodies, uploads, errors.

Everything here works on bytes and strings, so it is unit-tested without Ray or Starlette:

- :func:`route` maps ``(method, path)`` to an endpoint name (:data:`ROUTES`) or raises a 404/405 :class:`HttpError`;
- :class:`BodyLimit` checks ``Content-Length`` and the bytes as they arrive against the size limit (413 as soon as
  the limit is passed, before the rest is read);
- :func:`parse_upload` takes the audio out of a request body: a ``multipart/form-data`` upload (field ``file``, as a
  browser form sends it) or the raw body (``curl --data-binary @song.mp3``);
- :class:`HttpError` is every client error: a status, a short machine-readable code and a one-line message, sent as
  ``{"error": {"status": 413, "code": "too_large", "message": "..."}}`` (:meth:`HttpError.body`).

Nothing here touches the file system: the upload's file name is only echoed back and, when it ends in a known
suffix, used as a hint for the decoder (:func:`safe_suffix`). No ``ray``.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from spectrotune import storage
from spectrotune.errors import SpectrotuneError

__all__ = ["ROUTES", "STATIC", "BodyLimit", "HttpError", "Upload", "json_bytes", "parse_top_k", "parse_upload",
           "route", "safe_suffix"]

#: ``(method, path) -> endpoint``: the whole API. Static files are served only from :data:`STATIC`, by name.
ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/"): "page",
    ("GET", "/static/app.js"): "static",
    ("GET", "/static/style.css"): "static",
    ("GET", "/healthz"): "health",
    ("GET", "/v1/model"): "model",
    ("POST", "/v1/predict"): "predict",
    ("POST", "/v1/embed"): "embed",
}
#: URL path -> (file in ``spectrotune/serving/static/``, content type): the only files a request can get.
STATIC: dict[str, tuple[str, str]] = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
#: The multipart form field that carries the audio.
FILE_FIELD = "file"
# Suffixes passed on to the decoder's temporary file: letters and digits only, so a name can never become a path.
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}\Z")


class HttpError(SpectrotuneError):
    """A request the server refuses: ``status`` (4xx, or 503), ``code`` (``too_large``, ``not_audio``, ...), a
    one-line ``message`` naming the value at fault, and extra response ``headers`` (e.g. ``Retry-After``)."""

    def __init__(self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = int(status)
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON reply: ``{"error": {"status", "code", "message"}}``."""
        return {"error": {"status": self.status, "code": self.code, "message": self.message}}


def json_bytes(obj: Any) -> bytes:
    """``obj`` as compact UTF-8 JSON through :func:`spectrotune.storage.jsonable` (NaN and inf become null)."""
    return json.dumps(storage.jsonable(obj), allow_nan=False, separators=(",", ":")).encode("utf-8")


def route(method: str, path: str) -> str:
    """The endpoint for ``method path`` (:data:`ROUTES`); 404 for an unknown path, 405 for a wrong method."""
    path = path.rstrip("/") or "/"
    endpoint = ROUTES.get((method.upper(), path))
    if endpoint is not None:
        return endpoint
    allowed = sorted(m for m, p in ROUTES if p == path)
    if allowed:
        raise HttpError(405, "method_not_allowed", f"{method} {path}: use {' or '.join(allowed)}",
                        headers={"Allow": ", ".join(allowed)})
    paths = sorted({p for _, p in ROUTES if not p.startswith("/static/")})
    raise HttpError(404, "not_found", f"no endpoint {path} (endpoints: {', '.join(paths)})")


class BodyLimit:
    """Counts a request body as it arrives and refuses it once it passes ``limit`` bytes (413).

    Build it with the request's ``Content-Length`` header (``None`` when absent): a declared length over the limit is
    refused before any byte is read; then :meth:`add` each chunk and :meth:`body` at the end.
    """

    def __init__(self, limit: int, content_length: str | None = None) -> None:
        self.limit = int(limit)
        self._chunks: list[bytes] = []
        self.size = 0
        if content_length is not None:
            try:
                declared = int(content_length)
                if declared < 0:
                    raise ValueError
            except ValueError:
                raise HttpError(400, "bad_request", f"Content-Length {content_length!r} is not a byte count") from None
            if declared > self.limit:
                raise self._too_large(declared)

    def _too_large(self, size: int) -> HttpError:
        return HttpError(413, "too_large", f"request body of {_mb(size)} is over the limit of {_mb(self.limit)} "
                         "(spectrotune serve --max-upload-mb)")

    def add(self, chunk: bytes) -> None:
        """Take the next chunk of the body; 413 as soon as the total passes the limit."""
        self.size += len(chunk)
        if self.size > self.limit:
            raise self._too_large(self.size)
        if chunk:
            self._chunks.append(chunk)

    def body(self) -> bytes:
        """The whole body (400 when it is empty)."""
        if self.size == 0:
            raise HttpError(400, "empty_body", "the request has no body: send an audio file (multipart field "
                            f"'{FILE_FIELD}', or the raw bytes as the body)")
        return b"".join(self._chunks)


@dataclass(frozen=True)
class Upload:
    """The audio of one request: its bytes and the file name the client gave (``""`` when none)."""

    data: bytes = field(repr=False)
    filename: str = ""


def parse_upload(content_type: str | None, body: bytes, *, filename: str = "") -> Upload:
    """The uploaded file of a request: the ``file`` part of a ``multipart/form-data`` body, else the raw body.

    ``filename`` names a raw body (e.g. from the ``X-Filename`` header); a multipart part carries its own.
    Raises :class:`HttpError` 400 for an empty upload or a broken multipart body.
    """
    media, params = _media_type(content_type or "")
    if media == "multipart/form-data":
        boundary = params.get("boundary")
        if not boundary:
            raise HttpError(400, "bad_multipart", "multipart/form-data without a boundary parameter")
        upload = _file_part(body, boundary)
    else:  # any other type (audio/*, octet-stream, or curl --data-binary's default url-encoded) is the file itself
        upload = Upload(body, _clean_name(filename))
    if not upload.data:
        raise HttpError(400, "empty_body", f"the uploaded file {upload.filename or '(unnamed)'} is empty")
    return upload


def parse_top_k(query: str | bytes, *, default: int, n_labels: int) -> int:
    """``top_k`` from a query string (``top_k=3``; absent: ``default``), at least 1, cut to ``n_labels``."""
    if isinstance(query, bytes):
        query = query.decode("latin-1")
    values = parse_qs(query, keep_blank_values=True).get("top_k")
    if not values:
        return min(default, n_labels)
    text = values[-1]
    if not text.isdigit() or int(text) < 1:
        raise HttpError(400, "bad_parameter", f"top_k must be an integer >= 1, got {text!r}")
    return min(int(text), n_labels)


def safe_suffix(filename: str) -> str:
    """The suffix of ``filename`` (``.mp3``) when it is letters and digits only, else ``""``."""
    match = _SUFFIX.search(filename or "")
    return match.group(0).lower() if match else ""


def _media_type(content_type: str) -> tuple[str, dict[str, str]]:
    message = email.parser.HeaderParser(policy=email.policy.HTTP).parsestr(f"Content-Type: {content_type}\r\n\r\n")
    header = message["content-type"]
    params = dict(getattr(header, "params", {}) or {})
    return (header.content_type if header is not None else "").lower(), params


def _file_part(body: bytes, boundary: str) -> Upload:
    """The ``file`` part (else the first part with a file name) of a multipart body (RFC 7578)."""
    delimiter = b"--" + boundary.encode("latin-1")
    start = body.find(delimiter)
    if start < 0:
        raise HttpError(400, "bad_multipart", "multipart body does not contain its boundary")
    pos = start + len(delimiter)
    fallback = None
    while not body.startswith(b"--", pos):
        line_end = body.find(b"\r\n", pos)
        end = _next_delimiter(body, b"\r\n" + delimiter, pos)
        if line_end < 0 or end < 0:
            raise HttpError(400, "bad_multipart", "multipart body is truncated (no closing boundary)")
        part = body[line_end + 2:end]
        split = part.find(b"\r\n\r\n")
        head, data = (part, b"") if split < 0 else (part[:split + 2], part[split + 4:])
        headers = email.parser.BytesHeaderParser(policy=email.policy.HTTP).parsebytes(head + b"\r\n")
        name = headers.get_param("name", header="content-disposition")
        filename = _clean_name(headers.get_filename() or "")
        if name == FILE_FIELD:
            return Upload(data, filename)
        if filename and fallback is None:
            fallback = Upload(data, filename)
        pos = end + 2 + len(delimiter)
    if fallback is not None:
        return fallback
    raise HttpError(400, "no_file", f"the multipart body has no file (send it as field '{FILE_FIELD}')")


def _next_delimiter(body: bytes, delimiter: bytes, pos: int) -> int:
    """Where the next delimiter line starts: ``CRLF--boundary`` followed by ``--``, CRLF or padding (else -1)."""
    end = body.find(delimiter, pos)
    while end >= 0:
        after = body[end + len(delimiter):end + len(delimiter) + 2]
        if after in (b"--", b"\r\n") or after[:1] in (b" ", b"\t"):
            return end
        end = body.find(delimiter, end + 1)
    return -1


def _clean_name(name: str) -> str:
    """The last path component of a client's file name, printable and at most 200 characters (echoed back only)."""
    base = re.split(r"[\\/]", str(name))[-1]
    return "".join(c for c in base if c.isprintable())[:200]


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 100_000 else f"{n} bytes"
