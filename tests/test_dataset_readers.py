"""The shards of a real ``prepare`` read with every common reader's ordinary call, each giving our mel values.

One prepare (module fixture) of the corpus tests/data/main-325b798 was made from, with that dataset's settings:
Hugging Face ``datasets`` (``Array2D`` mel, ``ClassLabel`` label with the genre names, its three splits, no network),
polars, DuckDB, pandas and pyarrow each read it, and each returns the arrays :func:`spectrotune.dataset.mel_array`
reads for the same rows; Ray Data (the trainer's reader) gives one array per batch in either format; the same rows in
the legacy format-1 dataset are bit for bit these; and the README's "The prepared dataset" snippets run as written.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from legacy_data import LEGACY_DATASET, legacy_corpus

from spectrotune import dataset as D
from spectrotune.config import load_config
from spectrotune.prepare.driver import prepare

pytestmark = pytest.mark.integration  # the fixture prepares on the shared local Ray

README = Path(__file__).parents[1] / "README.md"
# The legacy dataset's own prepare command (tests/data/main-325b798/README.md), as overrides of the demo config.
LEGACY_SETTINGS = ["features.n_mels=16", "noise.variants=[{kind: white, snr_db: 20}]", "audio.segment_seconds=1.0",
                   "features.n_fft=512", "features.hop_length=256"]
HF_SPLITS = {"train": "train", "validation": "valid", "test": "test"}  # datasets' split name -> ours
KEY = (D.TRACK_ID, D.SEGMENT, D.VARIANT)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, ray_session) -> Path:
    base = tmp_path_factory.mktemp("readers")
    corpus = legacy_corpus(base / "corpus")
    prepare(corpus, base / "out", config=load_config("demo", overrides=LEGACY_SETTINGS), progress=False,
            log=lambda _: None)
    return base / "out"


def _ours(out: Path, split: str) -> dict[tuple, np.ndarray]:
    """Our reader's mel per (track, segment, variant) of one split."""
    table = D.read_split(out, split)
    return dict(zip(_keys(table.select(list(KEY)).to_pylist()), D.mel_array(table), strict=True))


def _keys(rows: list[dict]) -> list[tuple]:
    return [tuple(row[k] for k in KEY) for row in rows]


def _same_rows(theirs: dict[tuple, np.ndarray], ours: dict[tuple, np.ndarray]) -> None:
    assert sorted(theirs) == sorted(ours) and ours
    for key, mel in ours.items():
        assert theirs[key].dtype == np.float32, key
        np.testing.assert_array_equal(theirs[key], mel, err_msg=str(key))


def test_the_dataset_is_format_2(prepared):
    manifest = D.read_manifest(prepared)
    assert manifest.format == D.FORMAT == "spectrotune-dataset/2" and manifest.input_shape == (16, 87)
    names = sorted(p.relative_to(prepared / D.SHARDS).as_posix() for p in (prepared / D.SHARDS).rglob("*.parquet"))
    assert names and all(re.fullmatch(r"split=(\w+)/\1-part-\d{5}\.parquet", n) for n in names), names


def test_hugging_face_datasets_loads_the_splits_with_array2d_and_classlabel_offline(prepared, monkeypatch, tmp_path):
    import datasets

    def no_network(*args, **kwargs):
        raise AssertionError(f"datasets opened a network connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)  # local files need no Hub
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")  # a fresh cache, not ~/.cache
    ds = datasets.load_dataset("parquet", data_dir=str(prepared / D.SHARDS))
    manifest = D.read_manifest(prepared)
    assert set(ds) == set(HF_SPLITS)
    for hf_split, split in HF_SPLITS.items():
        part = ds[hf_split]
        assert part.num_rows == manifest.counts.rows_per_split[split]
        assert part.features[D.LABEL] == datasets.ClassLabel(names=list(manifest.labels))
        assert part.features[D.MEL] == datasets.Array2D(shape=(16, 87), dtype="float32")
        assert part.features[D.FEATURES] == datasets.List(datasets.Value("float32"))
        rows = part.with_format("numpy")
        mel = rows[D.MEL][:]
        assert mel.shape == (part.num_rows, 16, 87)
        table = part.data.table
        genres = [manifest.labels[i] for i in table.column(D.LABEL).to_pylist()]
        assert genres == table.column(D.GENRE).to_pylist()  # ClassLabel names index like ours
        _same_rows(dict(zip(_keys(table.select(list(KEY)).to_pylist()), mel, strict=True)), _ours(prepared, split))
    assert ds["train"].features[D.LABEL].int2str(0) == manifest.labels[0]


def test_polars_reads_mel_as_a_2d_array_column(prepared):
    import polars as pl

    df = pl.read_parquet(f"{prepared}/data/*/*.parquet", hive_partitioning=True)
    assert set(df["split"].unique()) == set(D.SPLITS)
    for split in D.SPLITS:
        part = df.filter(pl.col("split") == split)
        mel = part[D.MEL].to_numpy()
        assert mel.shape == (part.height, 16, 87)
        _same_rows(dict(zip(_keys(part.select(KEY).to_dicts()), mel, strict=True)), _ours(prepared, split))


def test_duckdb_reads_mel_as_nested_lists(prepared):
    import duckdb

    for split in D.SPLITS:
        rows = duckdb.sql(f"SELECT track_id, segment, variant, mel FROM read_parquet('{prepared}/data/*/*.parquet', "
                          f"hive_partitioning = true) WHERE split = '{split}'").fetchall()
        theirs = {(t, s, v): np.asarray(mel, dtype=np.float32) for t, s, v, mel in rows}
        assert len(theirs) == len(rows) and next(iter(theirs.values())).shape == (16, 87)
        _same_rows(theirs, _ours(prepared, split))


def test_pandas_and_pyarrow_read_the_shards(prepared):
    import pandas as pd
    import pyarrow.parquet as pq

    for split in D.SPLITS:
        df = pd.read_parquet(prepared / D.SHARDS, filters=[("split", "=", split)])
        mel = np.stack([np.stack(m) for m in df[D.MEL]])
        _same_rows(dict(zip(_keys(df[list(KEY)].to_dict("records")), mel, strict=True)), _ours(prepared, split))
        t = pq.read_table(prepared / D.SHARDS, filters=[("split", "=", split)])
        column = t[D.MEL].combine_chunks()
        # datasets, once imported (the test above), hands pyarrow its Array2D type over the same lists
        flat = getattr(column, "storage", column).flatten().flatten().to_numpy().reshape(len(t), 16, 87)
        _same_rows(dict(zip(_keys(t.select(list(KEY)).to_pylist()), flat, strict=True)), _ours(prepared, split))


def test_the_legacy_format_1_rows_are_these_rows_bit_for_bit(prepared):
    assert D.read_manifest(LEGACY_DATASET).format == "spectrotune-dataset/1"
    for split in D.SPLITS:
        _same_rows(_ours(LEGACY_DATASET, split), _ours(prepared, split))


def test_ray_data_batches_hold_one_mel_array_in_either_format(prepared):
    from spectrotune.training.plan import RowSelection
    from spectrotune.training.trainer import ray_dataset

    for data in (prepared, LEGACY_DATASET):
        rows = RowSelection((D.shards_dir(data) / "split=valid",), variants=(D.CLEAN,), name="valid")
        batches = list(ray_dataset(rows, [D.MEL, D.TRACK_ID, D.SEGMENT, D.VARIANT]).iter_batches(
            batch_size=5, batch_format="numpy"))
        assert batches and all(b[D.MEL].dtype == np.float32 and b[D.MEL].shape[1:] == (16, 87) for b in batches)
        theirs = {(t, int(s), v): m for b in batches
                  for t, s, v, m in zip(b[D.TRACK_ID], b[D.SEGMENT], b[D.VARIANT], b[D.MEL], strict=True)}
        ours = {k: m for k, m in _ours(data, "valid").items() if k[2] == D.CLEAN}
        _same_rows(theirs, ours)


def _readme_snippets() -> list[str]:
    """The Python blocks of README.md's "The prepared dataset" section."""
    text = README.read_text()
    section = text[text.index("\n## The prepared dataset\n"):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_readme_reading_snippets_run_as_written(prepared, tmp_path):
    snippets = _readme_snippets()
    assert len(snippets) >= 2 and any("load_dataset" in s for s in snippets)
    assert any("polars" in s for s in snippets) and any("duckdb" in s for s in snippets)
    # HF_HOME: datasets' cache in a fresh folder (as on a new machine), not the tester's ~/.cache
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf")}
    manifest = D.read_manifest(prepared)
    for snippet in snippets:
        code = snippet.replace('"OUT', f'"{prepared}').replace("'OUT", f"'{prepared}")
        assert "OUT" not in code, "a path in the snippet is not of the form 'OUT/...'"
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                              check=False)
        assert done.returncode == 0, f"{snippet}\n{done.stderr[-3000:]}"
        if "load_dataset" in snippet:  # prints the genre names and the train split's mel shape
            rows = manifest.counts.rows_per_split["train"]
            assert str(list(manifest.labels)) in done.stdout and f"({rows}, 16, 87)" in done.stdout, done.stdout
