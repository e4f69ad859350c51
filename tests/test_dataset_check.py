"""Bad datasets downstream: a truncated or foreign shard, a missing or unknown-format manifest, shards that disagree
with the manifest. Each is one line naming the file, from every command that reads a dataset (train, evaluate,
baseline, inspect, tune, cv), before any work starts and without Ray (spectrotune.dataset_check reads the footers)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from legacy_data import LEGACY_BUNDLE, LEGACY_DATASET

from spectrotune import dataset as D
from spectrotune import dataset_check, runtime
from spectrotune.cli import main
from spectrotune.config import load_config
from spectrotune.errors import DatasetError
from spectrotune.training.plan import plan_run


def _format2(dst: Path) -> Path:
    """The legacy dataset rewritten as format 2 (what prepare writes now): same rows, split-prefixed shard names."""
    shutil.copytree(LEGACY_DATASET, dst, ignore=shutil.ignore_patterns("data"))
    manifest = json.loads((LEGACY_DATASET / D.MANIFEST).read_text())
    schema = D.segment_schema(n_mels=16, n_frames=87, labels=manifest["labels"])
    for split in D.SPLITS:
        table = D.read_split(LEGACY_DATASET, split).drop_columns([D.SPLIT])
        table = table.set_column(table.schema.get_field_index(D.MEL), D.MEL, D.mel_column(D.mel_array(table)))
        (dst / D.SHARDS / f"split={split}").mkdir(parents=True)
        for i, part in enumerate((table.slice(0, table.num_rows // 2), table.slice(table.num_rows // 2))):
            pq.write_table(part.cast(schema), dst / D.shard_file(split, f"part-{i:05d}"))
    (dst / D.MANIFEST).write_text(json.dumps({**manifest, "format": D.FORMAT}))
    return dst


@pytest.fixture(params=["format-1", "format-2"])
def data(request, tmp_path) -> Path:
    if request.param == "format-1":
        return Path(shutil.copytree(LEGACY_DATASET, tmp_path / "ds"))
    return _format2(tmp_path / "ds")


def _a_shard(data: Path, split: str = "train") -> Path:
    return sorted((data / D.SHARDS / f"split={split}").glob("*.parquet"))[0]


def _refused(data: Path, match: str) -> str:
    with pytest.raises(DatasetError) as info:
        D.read_split(data, "test")
    text = str(info.value)
    assert match in text and "\n" not in text and len(text) < 500, text
    return text


def test_a_prepared_dataset_passes_and_the_counts_are_its_manifests(data):
    assert dataset_check.check_shards(data) == {"train": 48, "valid": 12, "test": 12}
    assert D.read_split(data, "test").num_rows == 12


def test_a_truncated_shard_is_named(data):
    shard = _a_shard(data)
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])  # copied half-way
    text = _refused(data, f"{shard}: not a readable Parquet shard (truncated or corrupt: ")
    assert "magic bytes" in text


def test_a_foreign_parquet_file_among_the_shards_is_named(data):
    foreign = data / D.SHARDS / "split=train" / "train-extra.parquet"
    pq.write_table(pa.table({"filename": ["a.wav"], "tempo": [120.0]}), foreign)
    _refused(data, f"{foreign}: not a shard of this dataset (columns filename, tempo; missing track_id, genre, "
                   "label, segment, variant, snr_db, mel; unexpected filename, tempo)")


def test_a_shard_of_another_mel_shape_is_named(data):
    table = pq.read_table(_a_shard(data, "test"))
    mel = D.mel_array(table)[:, :8, :]
    table = table.set_column(table.schema.get_field_index(D.MEL), D.MEL, D.mel_column(mel))
    intruder = data / D.SHARDS / "split=test" / "test-from-another-run.parquet"
    pq.write_table(table, intruder)
    _refused(data, f"{intruder}: mel is 8 x 87 per row but the manifest says 16 x 87 (a shard of another dataset)")


def test_a_column_of_another_type_is_named_in_format_2(tmp_path):
    data = _format2(tmp_path / "ds")
    shard = _a_shard(data, "valid")
    table = pq.read_table(shard)
    pq.write_table(table.set_column(table.schema.get_field_index(D.LABEL), D.LABEL,
                                    table.column(D.LABEL).cast(pa.string())), shard)
    _refused(data, f"{shard}: column label is string, {D.FORMAT} stores int64")


@pytest.mark.parametrize("where", ["split=train/notes.txt", "loose.parquet", "split=other/x.parquet"])
def test_a_stray_file_among_the_shards_is_named(data, where):
    stray = data / D.SHARDS / where
    stray.parent.mkdir(exist_ok=True)
    shutil.copy(_a_shard(data), stray) if where.endswith(".parquet") else stray.write_text("hello")
    expected = "not a readable Parquet shard" if where.endswith(".txt") else "not in a split folder"
    _refused(data, f"{stray}: {expected}")


def test_hidden_files_are_skipped_as_pyarrow_skips_them(data):
    (data / D.SHARDS / "split=train" / ".DS_Store").write_text("finder")
    (data / D.SHARDS / "split=train" / "_SUCCESS").write_text("")
    assert dataset_check.check_shards(data)["train"] == 48


@pytest.mark.parametrize("change", ["missing", "extra"])
def test_a_shard_missing_or_extra_disagrees_with_the_manifest(data, change):
    shard = _a_shard(data)
    n = pq.read_metadata(shard).num_rows
    if change == "missing":
        shard.unlink()
    else:
        shutil.copy(shard, shard.with_name("train-copy.parquet"))
    held = f"the shards hold {48 - n if change == 'missing' else 48 + n} rows"
    _refused(data, f"{data / D.SHARDS / 'split=train'}: {held} but {data / D.MANIFEST} counts 48 (a shard is "
                   "missing, or one is extra or from another run")


def test_a_missing_or_unknown_format_manifest_is_named(data):
    raw = json.loads((data / D.MANIFEST).read_text())
    (data / D.MANIFEST).write_text(json.dumps({**raw, "format": "spectrotune-dataset/9"}))
    _refused(data, f"{data / D.MANIFEST}: unsupported dataset format 'spectrotune-dataset/9' (expected "
                   f"{D.FORMAT} or spectrotune-dataset/1)")
    (data / D.MANIFEST).unlink()
    _refused(data, f"{data}: not a prepared spectrotune dataset (no manifest.json; run spectrotune prepare)")
    (data / D.MANIFEST).write_text(json.dumps(raw))
    shutil.rmtree(data / D.SHARDS)
    _refused(data, f"{data}: no shards folder data/")


def test_the_footers_are_read_once_until_a_file_changes(data, monkeypatch):
    reads = []
    real = pq.read_metadata
    monkeypatch.setattr(pq, "read_metadata", lambda f, *a, **k: reads.append(f) or real(f, *a, **k))
    dataset_check.check_shards(data)
    n = len(reads)
    assert n == len(list((data / D.SHARDS).rglob("*.parquet")))
    dataset_check.check_shards(data)
    D.read_split(data, "test")
    assert len(reads) == n  # the same files: not read again
    shard = _a_shard(data)
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(DatasetError, match="not a readable Parquet shard"):
        dataset_check.check_shards(data)


def test_training_plans_refuse_a_damaged_dataset_before_ray_data_reads_it(data):
    shard = _a_shard(data, "valid")
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(DatasetError, match=f"{shard}: not a readable Parquet shard"):
        plan_run(data, config=load_config("demo"))


# ---------------------------------------------------------------------------------- each command, as typed


@pytest.fixture
def no_ray(monkeypatch):
    def refuse(**kwargs):
        raise AssertionError("Ray was started for a dataset that should have been refused first")

    monkeypatch.setattr(runtime, "init_ray", refuse)


@pytest.mark.parametrize("damage", ["truncated", "foreign"])
@pytest.mark.parametrize("command", ["train", "evaluate", "baseline", "inspect", "tune", "cv"])
def test_every_command_names_the_bad_shard_in_one_line_and_exits_2(tmp_path, capsys, no_ray, command, damage):
    data = Path(shutil.copytree(LEGACY_DATASET, tmp_path / "ds"))
    if damage == "truncated":
        bad = _a_shard(data, "test")
        bad.write_bytes(bad.read_bytes()[:-1])
    else:
        bad = data / D.SHARDS / "split=test" / "features_30_sec.parquet"
        pq.write_table(pa.table({"filename": ["blues.00000.wav"], "label": ["blues"]}), bad)
    out = tmp_path / "out"
    argv = {"train": ["train", "--data", str(data), "--out", str(out)],
            "evaluate": ["evaluate", str(LEGACY_BUNDLE), "--data", str(data), "--out", str(out)],
            "baseline": ["baseline", "--data", str(data), "--out", str(out)],
            "inspect": ["inspect", str(data), "--out", str(out)],
            "tune": ["tune", "--set", f"sources.gtzan={data}", "--out", str(out)],
            "cv": ["cv", "--set", f"sources.gtzan={data}", "--folds", "3", "--out", str(out)]}[command]
    assert main(argv) == 2
    stdout, stderr = capsys.readouterr()
    error = stderr.splitlines()[-1]  # after the command's own messages (what it runs on)
    assert stdout == "" and error.startswith("spectrotune: error: ") and f" {bad}: " in error, stderr
    reason = "not a readable Parquet shard" if damage == "truncated" else "not a shard of this dataset"
    assert f"{bad}: {reason}" in error and "Traceback" not in stderr and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # nothing written, not even a staging folder
