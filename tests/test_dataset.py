"""The dataset manifest is one typed record written and read by the same class; a dataset written by main at
325b798 (tests/data/main-325b798/dataset, format 1) still loads, field for field, and its shards read without Ray;
``mel`` reads as one array from every storage it has had (format 1's tensor, format 2's nested lists, and those lists
as ``datasets`` casts them)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from legacy_data import LEGACY_DATASET

from spectrotune import dataset as D
from spectrotune.config import AudioConfig, FeatureConfig
from spectrotune.errors import DatasetError

RAW = json.loads((LEGACY_DATASET / D.MANIFEST).read_text())


def test_a_manifest_written_before_the_typed_record_reads_field_for_field():
    m = D.read_manifest(LEGACY_DATASET)
    assert isinstance(m, D.DatasetManifest) and m.format == "spectrotune-dataset/1" != D.FORMAT
    assert D.FORMAT == "spectrotune-dataset/2" and m.format in D.READ_FORMATS
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
    # written before audio.pad existed: its short clips were zero-padded
    assert m.audio_config == AudioConfig(sample_rate=22050, segment_seconds=1.0, min_seconds=1.0, pad="zeros")
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
    ({"format": "spectrotune-dataset/3"}, ("unsupported dataset format 'spectrotune-dataset/3' "
                                           r"\(expected spectrotune-dataset/2 or spectrotune-dataset/1\)")),
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


def test_the_legacy_tensor_column_and_its_format_2_copy_read_as_the_same_array():
    table = D.read_split(LEGACY_DATASET, "train")
    assert isinstance(table.schema.field(D.MEL).type, pa.FixedShapeTensorType)  # what format 1 stored
    mel = D.mel_array(table)
    copy = table.set_column(table.schema.get_field_index(D.MEL), D.MEL, D.mel_column(mel))
    assert copy.schema.field(D.MEL).type == pa.list_(pa.list_(pa.float32(), 87), 16)
    assert mel.shape == (48, 16, 87) and mel.dtype == np.float32
    np.testing.assert_array_equal(D.mel_array(copy), mel)
    np.testing.assert_array_equal(D.mel_array(copy.slice(5, 7)), mel[5:12])  # offsets of a slice are honoured
    np.testing.assert_array_equal(D.mel_array(pa.Table.from_batches(copy.to_batches(max_chunksize=10))), mel)
    np.testing.assert_array_equal(D.mel_array(copy.to_batches(max_chunksize=10)[2]), mel[20:30])
    assert D.mel_array(copy.slice(0, 0)).shape == (0, 16, 87) == D.mel_array(table.slice(0, 0)).shape
    # Ray Data's batches want the tensor type: both formats come out as format 1's column, values unchanged
    for t in (table, copy):
        tensor = D.with_tensor_mel(t)
        assert isinstance(tensor.schema.field(D.MEL).type, pa.FixedShapeTensorType)
        np.testing.assert_array_equal(tensor.column(D.MEL).combine_chunks().to_numpy_ndarray(), mel)


def test_a_format_2_shard_written_and_read_back_is_tagged_for_datasets(tmp_path):
    mel = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)
    schema = D.segment_schema(n_mels=4, n_frames=5, labels=["blues", "rock"])
    table = pa.table({D.TRACK_ID: ["a", "a", "b"], D.GENRE: ["blues", "blues", "rock"], D.LABEL: [0, 0, 1],
                      D.SEGMENT: [0, 1, 0], D.VARIANT: ["clean"] * 3, D.SNR_DB: [None] * 3,
                      D.MEL: D.mel_column(mel), D.FEATURES: [None] * 3}, schema=schema)
    pq.write_table(table, tmp_path / "s.parquet")
    back = pq.read_table(tmp_path / "s.parquet")
    field = back.schema.field(D.MEL)
    if isinstance(field.type, pa.ExtensionType):  # datasets, once imported in this process, knows the tag
        assert field.type.extension_name == D.HF_ARRAY2D and field.type.shape == (4, 5)
    else:
        assert field.metadata[b"ARROW:extension:name"] == D.HF_ARRAY2D.encode()
        assert json.loads(field.metadata[b"ARROW:extension:metadata"]) == [[4, 5], "float32"]
    features = json.loads(back.schema.metadata[b"huggingface"])["info"]["features"]
    assert features[D.LABEL] == {"names": ["blues", "rock"], "_type": "ClassLabel"}
    assert features[D.MEL] == {"shape": [4, 5], "dtype": "float32", "_type": "Array2D"}
    assert set(features) == set(schema.names) - {D.FEATURES}
    np.testing.assert_array_equal(D.mel_array(back), mel)


def test_a_mel_column_of_another_shape_or_kind_is_a_dataset_error():
    ragged = pa.table({D.MEL: pa.array([[[1.0, 2.0]], [[1.0]]], pa.list_(pa.list_(pa.float32())))})
    with pytest.raises(DatasetError, match="mel: not a column of"):
        D.mel_array(ragged)
    with pytest.raises(ValueError, match="mel must be"):
        D.mel_column(np.zeros((2, 3), np.float32))
