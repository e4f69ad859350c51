"""Fixtures of the models tests: torch runs on one thread."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # The test machine's 2 cores are shared: with 2 intra-op threads a busy neighbour made training steps up to
    # 5x slower (threads wait on each other); one thread keeps every test here fast and steady.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

