"""The dataset manifest is one typed record written and read by the same class; a dataset written by main at
325b798 (tests/data/main-325b798/dataset) still loads, field for field, and its shards read without Ray."""

from __future__ import annotations

import json

import pytest
from legacy_data import LEGACY_DATASET

from spectrotune import dataset as D
from spectrotune.config import AudioConfig, FeatureConfig
from spectrotune.errors import DatasetError

RAW = json.loads((LEGACY_DATASET / D.MANIFEST).read_text())


def test_a_manifest_written_before_the_typed_record_reads_field_for_field():
    m = D.read_manifest(LEGACY_DATASET)
    assert isinstance(m, D.DatasetManifest) and m.format == D.FORMAT == "spectrotune-dataset/1"
    assert m.labels == ("blues", "classical", "country") and m.input_shape == (16, 87)
    assert (m.source.kind, m.mel.values, m.mel.n_fft, m.mel.hop_length) == ("audio", "log-mel dB", 512, 256)
    assert m.variants == ("clean", "white@20dB") and m.noise == "applied to splits ['train']"
    assert m.counts.rows_per_split == {"train": 48, "valid": 12, "test": 12} and m.errors.count == 0
    assert m.timings.nodes and m.versions["spectrotune"] == "0.1.0"
    # the same keys, values and order: a manifest read and written again is the file it came from
    assert m.to_dict() == RAW and list(m.to_dict()) == list(RAW)


def test_the_config_sections_that_describe_the_rows_read_typed():
    m = D.read_manifest(LEGACY_DATASET)
    assert m.seed == 0
    assert m.audio_config == AudioConfig(sample_rate=22050, segment_seconds=1.0, min_seconds=1.0)
    assert m.audio_config.hop_for("test") == 1.0
    assert m.feature_config == FeatureConfig(n_fft=512, hop_length=256, n_mels=16)
    assert [(v.kind, v.snr_db) for v in m.noise_config.variants] == [("white", 20.0)]


def test_counts_per_split_and_variant():
    counts = D.read_manifest(LEGACY_DATASET).counts
    assert counts.variants_in("train") == {"clean", "white@20dB"} and counts.variants_in("test") == {"clean"}
    assert counts.variants_in("nowhere") == set()
    assert counts.rows_of("train", "white@20dB") == 24 and counts.rows_of("test", "white@20dB") == 0


def test_the_legacy_shards_read_with_the_counts_the_manifest_gives():
    m = D.read_manifest(LEGACY_DATASET)
    for split in D.SPLITS:
        table = D.read_split(LEGACY_DATASET, split)
        assert table.num_rows == m.counts.rows_per_split[split]
        assert D.mel_array(table).shape[1:] == m.input_shape
    assert D.read_errors(LEGACY_DATASET).num_rows == 0


def test_write_then_read_is_the_same_record(tmp_path):
    m = D.read_manifest(LEGACY_DATASET)
    m.write(tmp_path)
    assert D.read_manifest(tmp_path) == m
    assert (tmp_path / D.MANIFEST).read_text() == m.to_json()


def _write(tmp_path, data) -> None:
    (tmp_path / D.MANIFEST).write_text(data if isinstance(data, str) else json.dumps(data))


@pytest.mark.parametrize("change, message", [
    ({"format": "spectrotune-dataset/2"}, "unsupported dataset format 'spectrotune-dataset/2'"),
    ({"labels": None}, "missing labels"),
    ({"counts": {**RAW["counts"], "tracks": "many"}}, "counts.tracks='many'"),
])
def test_a_manifest_of_another_format_or_shape_is_refused_by_name(tmp_path, change, message):
    data = {k: v for k, v in {**RAW, **change}.items() if v is not None}
    _write(tmp_path, data)
    with pytest.raises(DatasetError, match=message):
        D.read_manifest(tmp_path)


def test_a_folder_without_a_readable_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="not a prepared spectrotune dataset"):
        D.read_manifest(tmp_path)
    _write(tmp_path, "{not json")
    with pytest.raises(DatasetError, match="unreadable manifest"):
        D.read_manifest(tmp_path)
