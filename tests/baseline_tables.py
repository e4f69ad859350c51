"""Synthetic segment rows and prepared-dataset look-alikes for the tests of the classical baselines.

3 genres x 8 tracks x 3 segments of 57 handcrafted features (:data:`spectrotune.schema.FEATURE_NAMES`), classes far
apart relative to the noise; per genre tracks 0-3 are train, 4-5 valid, 6-7 test. Shared by
tests/evaluation/test_baseline_data.py and tests/evaluation/test_baselines.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from spectrotune import dataset as D
from spectrotune.schema import FEATURE_NAMES

GENRES = ("blues", "jazz", "rock")
N_TRACKS = 8
N_SEGMENTS = 3
N_FEATURES = len(FEATURE_NAMES)
# Per genre: tracks 0-3 train, 4-5 valid, 6-7 test.
SPLIT_OF_TRACK = ("train",) * 4 + ("valid",) * 2 + ("test",) * 2


def _centres() -> tuple[np.ndarray, np.ndarray]:
    """Class centres [n_genres, 57]: far apart relative to the unit noise, and on very different scales."""
    rng = np.random.default_rng(123)
    scale = np.logspace(-3, 4, N_FEATURES)  # like the Kaggle features: _var columns span decades
    return rng.normal(0.0, 4.0, (len(GENRES), N_FEATURES)) * scale, scale


def segment_rows(seed: int = 0) -> list[dict]:
    """Clean segment rows: track_id, genre, label, split, segment, features (float32 [57])."""
    rng = np.random.default_rng(seed)
    centres, scale = _centres()
    rows = []
    for label, genre in enumerate(GENRES):
        for t in range(N_TRACKS):
            track_offset = rng.normal(0.0, 0.5, N_FEATURES) * scale
            for segment in range(N_SEGMENTS):
                features = centres[label] + track_offset + rng.normal(0.0, 1.0, N_FEATURES) * scale
                rows.append(
                    {
                        "track_id": f"{genre}.{t:05d}",
                        "genre": genre,
                        "label": label,
                        "split": SPLIT_OF_TRACK[t],
                        "segment": segment,
                        "features": features.astype(np.float32),
                    }
                )
    return rows


def write_dataset(
    root: Path,
    rows: list[dict],
    *,
    features: str = "present",
    noisy: bool = True,
    split_column_in_file: bool = False,
) -> Path:
    """Write a prepared-dataset look-alike: hive split dirs with shards, manifest.json, an errors table.

    ``features``: "present", "absent" (no column) or "null" (column of nulls). ``noisy`` adds a
    ``white@10dB`` copy of every segment whose features are wildly off, so reading it would show.
    """
    by_split: dict[str, list[dict]] = {}
    for row in rows:
        variants = [("clean", None, row["features"])]
        if noisy:
            variants.append(("white@10dB", 10.0, row["features"] * 0 + 1e6))
        for variant, snr, vector in variants:
            out = {k: v for k, v in row.items() if k not in ("split", "features")}
            out.update(variant=variant, snr_db=snr, mel=[[0.0, 1.0], [2.0, 3.0]], features=vector.tolist())
            if split_column_in_file:
                out["split"] = row["split"]
            by_split.setdefault(row["split"], []).append(out)
    for split, split_rows in by_split.items():
        table = pa.Table.from_pylist(split_rows)
        if features == "absent":
            table = table.drop_columns(["features"])
        elif features == "null":
            index = table.schema.get_field_index("features")
            table = table.set_column(index, "features", pa.nulls(table.num_rows, pa.list_(pa.float32())))
        else:
            index = table.schema.get_field_index("features")
            column = pa.array([r["features"] for r in split_rows], pa.list_(pa.float32()))
            table = table.set_column(index, "features", column)
        mel = D.mel_column(np.tile(np.arange(4, dtype=np.float32).reshape(1, 2, 2), (table.num_rows, 1, 1)))
        table = table.set_column(table.schema.get_field_index("mel"), "mel", mel)  # fixed 2 x 2, as shards store it
        directory = root / "data" / f"split={split}"
        directory.mkdir(parents=True)
        # Two shards per split, as a parallel writer would leave them.
        half = table.num_rows // 2
        pq.write_table(table.slice(0, half), directory / "part-0.parquet")
        pq.write_table(table.slice(half), directory / "part-1.parquet")
    # A real manifest (the one main 325b798 wrote) with this table's genres: the baselines read it typed.
    manifest = json.loads((Path(__file__).parent / "data" / "main-325b798" / "dataset" / "manifest.json").read_text())
    # Its mel shape and row counts are this table's: every reader checks the shards against them.
    manifest["mel"]["shape"] = [2, 2]
    manifest["counts"]["rows_per_split"] = {split: len(split_rows) for split, split_rows in by_split.items()}
    (root / "manifest.json").write_text(json.dumps({**manifest, "labels": list(GENRES)}))
    pq.write_table(pa.table({"path": ["x.wav"], "error": ["bad"]}), root / "errors.parquet")
    return root
