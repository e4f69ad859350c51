"""Fixtures of the serving tests: the test clips (``audio_files``, importable from here) and, for the integration
tests, ONE real ``spectrotune serve`` shared by the modules of this folder."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402
from legacy_data import LEGACY_BUNDLE  # noqa: E402

from spectrotune.serving.client import serve_process  # noqa: E402

#: The options the shared server runs with: small limits, so the tests reach each of them with small files.
SERVER_ARGS = ("--max-upload-mb", "1", "--max-seconds", "20", "--max-concurrent-uploads", "8", "--max-batch-size", "8")


@pytest.fixture(scope="package")
def server():
    """``spectrotune serve`` of the tiny bundle from tests/data, on 127.0.0.1 and a free port, in its own process
    group with its own RAY_TMPDIR (spectrotune.serving.client.serve_process), for every serving test here."""
    with serve_process(LEGACY_BUNDLE, args=SERVER_ARGS) as running:
        yield running
