"""Fixtures of the evaluation tests: a prepared-dataset look-alike with handcrafted features, read as a track table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from baseline_tables import segment_rows, write_dataset

from spectrotune.evaluation.baseline_data import load_dataset_features


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("ds") / "data", segment_rows())


@pytest.fixture(scope="module")
def tracks(dataset_dir: Path) -> pd.DataFrame:
    return load_dataset_features(dataset_dir)
