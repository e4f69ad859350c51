"""Fixtures of the sweep and cross-validation tests: the two tiny prepared sources, made once per session."""

from __future__ import annotations

import pytest
from tune_sources import prepare_sources


@pytest.fixture(scope="session")
def sources(tmp_path_factory, ray_session):
    return prepare_sources(tmp_path_factory.mktemp("tune"))
