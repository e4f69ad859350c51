"""The pure-numpy TF1 checkpoint reader: CRC-32C, hand-built bundles of several dtypes, shapes and shards, every
kind of damage refused with the file named, and the four real checkpoints of the musicnn wheel."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from tf_bundle_writer import crc32c_bitwise, crc32c_bytewise, entry_proto, field_varint, masked, write_bundle

from spectrotune.errors import InputError
from spectrotune.models import pretrained
from spectrotune.models.crc32c import crc32c, mask_crc, unmask_crc
from spectrotune.models.tf_checkpoint import read_checkpoint, read_checkpoint_files, read_index
from spectrotune.sources.musicnn_fetch import OPTIMIZER_STATE, WHEEL_NAME

REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "musicnn-reference"

TENSORS = {
    "conv/kernel": np.arange(2 * 3 * 1 * 4, dtype=np.float32).reshape(2, 3, 1, 4) / 7,
    "conv/bias": np.array([-1.5, 0.25, 3.0, 1e-8], dtype=np.float32),
    "global_step": np.array(123456789012, dtype=np.int64),  # a scalar
    "half": np.array([[1.0, -2.5], [65504.0, 6e-8]], dtype=np.float16),
    "ids": np.array([[-3], [7], [2**31 - 1]], dtype=np.int32),
    "mask": np.array([True, False, True]),
    "bytes": np.arange(250, dtype=np.uint8),
    "double": np.array([np.pi, -np.e], dtype=np.float64),
    "empty": np.zeros((0, 5), dtype=np.float32),
}


@pytest.mark.parametrize("n", [0, 1, 9, 4095, 4096, 5000, 70001])
def test_crc32c_matches_the_bitwise_definition(n):
    data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes()
    assert crc32c(data) == crc32c_bitwise(data) == crc32c_bytewise(data)


def test_crc32c_check_value_and_mask():
    assert crc32c(b"123456789") == 0xE3069283  # the standard CRC-32C check value
    for crc in (0, 1, 0xE3069283, 0xFFFFFFFF):
        assert mask_crc(crc) == masked(crc)
        assert unmask_crc(mask_crc(crc)) == crc


@pytest.mark.parametrize("n_shards, per_block", [(1, 3), (1, 100), (3, 2)])
def test_hand_built_bundle_reads_back_exactly(tmp_path, n_shards, per_block):
    write_bundle(f"{tmp_path}/ckpt/", TENSORS, n_shards=n_shards, per_block=per_block)
    ckpt = read_checkpoint_files(str(tmp_path / "ckpt") + "/")
    assert sorted(ckpt.entries) == sorted(TENSORS)
    for name, expected in TENSORS.items():
        got = ckpt.tensor(name)
        assert got.dtype == expected.dtype and got.shape == expected.shape, name
        np.testing.assert_array_equal(got, expected)
    assert ckpt.entries["conv/kernel"].shape == (2, 3, 1, 4)
    assert ckpt.entries["global_step"].shape == ()


def _bundle(tmp_path, **kwargs) -> tuple[bytes, list[bytes]]:
    return write_bundle(f"{tmp_path}/b/", {"a": TENSORS["conv/kernel"], "b": TENSORS["ids"]}, **kwargs)


def test_flipped_data_byte_is_a_crc_error_naming_the_tensor(tmp_path):
    index, (data,) = _bundle(tmp_path)
    ckpt = read_index(index)[1]
    bad = bytearray(data)
    bad[ckpt["b"].offset] ^= 0x01
    c = read_checkpoint(index, [bytes(bad)], source="x.ckpt")
    np.testing.assert_array_equal(c.tensor("a"), TENSORS["conv/kernel"])
    with pytest.raises(InputError, match=r"x\.ckpt: tensor 'b': CRC-32C mismatch"):
        c.tensor("b")


def test_truncated_data_file_is_refused_naming_it(tmp_path):
    _, (data,) = _bundle(tmp_path)
    Path(str(tmp_path / "b") + "/.data-00000-of-00001").write_bytes(data[:-3])
    with pytest.raises(InputError, match=r"b/: tensor 'b' ends at byte \d+, beyond its data shard"):
        read_checkpoint_files(str(tmp_path / "b") + "/")


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:-1], "no SSTable magic"),
    (lambda b: b[:20], "shorter than the 48-byte table footer"),
    (lambda b: bytes([b[0] ^ 0x40]) + b[1:], "CRC-32C mismatch"),
    (lambda b: b"", "shorter than the 48-byte"),
])
def test_damaged_index_is_refused_naming_the_file(tmp_path, damage, message):
    index, _ = _bundle(tmp_path)
    Path(str(tmp_path / "b") + "/.index").write_bytes(damage(index))
    with pytest.raises(InputError, match=rf"b/\.index: not a readable TF checkpoint index: .*{message}"):
        read_checkpoint_files(str(tmp_path / "b") + "/")


def test_unsupported_entries_are_refused(tmp_path):
    string = entry_proto(7, (2,), 0, 0, 0, 0)
    with pytest.raises(InputError, match="'s' has TF dtype 7, not a fixed-size numeric type"):
        read_index(_bundle(tmp_path, extra={"s": string})[0])
    sliced = entry_proto(1, (2,), 0, 0, 8, 0, sliced=True)
    with pytest.raises(InputError, match="partitioned"):
        read_index(_bundle(tmp_path, extra={"p": sliced})[0])
    wrong_size = entry_proto(1, (2, 2), 0, 0, 12, 0)
    with pytest.raises(InputError, match=r"12 bytes do not hold shape \(2, 2\)"):
        read_index(_bundle(tmp_path, extra={"w": wrong_size})[0])
    with pytest.raises(InputError, match="big-endian"):
        read_index(_bundle(tmp_path, header=field_varint(1, 1) + field_varint(2, 1))[0])


def test_missing_shard_and_missing_tensor(tmp_path):
    index, shards = _bundle(tmp_path, n_shards=2)
    with pytest.raises(InputError, match="declares 2 data shard"):
        read_checkpoint(index, shards[:1], source="two")
    os.remove(str(tmp_path / "b") + "/.data-00001-of-00002")
    with pytest.raises(InputError, match=r"\.data-00001-of-00002: cannot read"):
        read_checkpoint_files(str(tmp_path / "b") + "/")
    with pytest.raises(InputError, match="two: no tensor 'nope'"):
        read_checkpoint(index, shards, source="two").tensor("nope")


@pytest.mark.parametrize("model", pretrained.MODELS)
def test_real_checkpoints_of_the_wheel(musicnn_cache, model):
    """Every entry of the wheel's checkpoints parses and passes its CRC; the model variables are exactly the
    network's, the rest optimizer state; the files are the ones the reference was computed from."""
    with zipfile.ZipFile(musicnn_cache / "musicnn" / WHEEL_NAME) as wheel:
        index = wheel.read(f"musicnn/{model}/.index")
        data = wheel.read(f"musicnn/{model}/.data-00000-of-00001")
    ckpt = read_checkpoint(index, [data], source=model)
    tensors = ckpt.tensors()  # every CRC checked
    expected = pretrained.expected_tensors(pretrained.architecture_of(model))
    assert {n: t.shape for n, t in tensors.items() if n in expected} == expected
    others = sorted(set(tensors) - set(expected))
    assert others and all(OPTIMIZER_STATE.search(n) for n in others)
    assert len(expected) == (64 if "musicnn" in model else 36)
    manifest = json.loads((REFERENCE / "manifest.json").read_text())["models"][model]["checkpoint_sha256"]
    import hashlib

    assert hashlib.sha256(index).hexdigest() == manifest[".index"]
    assert hashlib.sha256(data).hexdigest() == manifest[".data-00000-of-00001"]
