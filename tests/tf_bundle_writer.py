"""A tiny TF1 tensor-bundle writer for the checkpoint reader's tests, written from the format description and
independent of :mod:`spectrotune.models.tf_checkpoint` (its own bit-by-bit CRC-32C, protobuf encoder and SSTable
builder with prefix-compressed keys, restart points and block trailers).

:func:`write_bundle` lays out what ``tf.train.Saver`` writes: ``<prefix>.index`` (an SSTable whose empty key holds
the ``BundleHeaderProto`` and whose other keys are tensor names -> ``BundleEntryProto``) and the data shards
``<prefix>.data-0000i-of-0000n`` holding the raw little-endian bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np

TF_DTYPES = {np.dtype("<f4"): 1, np.dtype("<f8"): 2, np.dtype("<i4"): 3, np.dtype("u1"): 4, np.dtype("<i2"): 5,
             np.dtype("i1"): 6, np.dtype("<i8"): 9, np.dtype("?"): 10, np.dtype("<f2"): 19}
MAGIC = 0xDB4775248B80FB57


def crc32c_bitwise(data: bytes) -> int:
    """CRC-32C one bit at a time (the slow textbook definition)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()


def crc32c_bytewise(data: bytes) -> int:
    """The same CRC a byte at a time with a table (fast enough for megabytes of tensors)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def field_bytes(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def field_fixed32(number: int, value: int) -> bytes:
    return varint(number << 3 | 5) + struct.pack("<I", value)


def entry_proto(dtype: int, shape: tuple[int, ...], shard: int, offset: int, size: int, crc: int,
                *, sliced: bool = False) -> bytes:
    shape_proto = b"".join(field_bytes(2, field_varint(1, d)) for d in shape)
    out = field_varint(1, dtype) + field_bytes(2, shape_proto)
    if shard:
        out += field_varint(3, shard)
    if offset:
        out += field_varint(4, offset)
    out += field_varint(5, size) + field_fixed32(6, crc)
    if sliced:
        out += field_bytes(7, b"")
    return out


def block(entries: list[tuple[bytes, bytes]], *, restart_interval: int = 2) -> bytes:
    """An SSTable block: prefix-compressed entries, restart offsets, restart count."""
    out, restarts, last = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        if i % restart_interval == 0:
            restarts.append(len(out))
            shared = 0
        else:
            shared = 0
            while shared < min(len(key), len(last)) and key[shared] == last[shared]:
                shared += 1
        out += varint(shared) + varint(len(key) - shared) + varint(len(value)) + key[shared:] + value
        last = key
    for r in restarts or [0]:
        out += struct.pack("<I", r)
    return bytes(out + struct.pack("<I", len(restarts or [0])))


def table(entries: list[tuple[bytes, bytes]], *, per_block: int = 3) -> bytes:
    """A whole SSTable: data blocks of ``per_block`` entries, an empty metaindex block, the index block, footer."""
    out = bytearray()

    def put(contents: bytes) -> bytes:
        handle = varint(len(out)) + varint(len(contents))
        out.extend(contents + b"\x00" + struct.pack("<I", masked(crc32c_bitwise(contents + b"\x00"))))
        return handle

    index_entries = []
    for s in range(0, len(entries), per_block):
        chunk = entries[s: s + per_block]
        index_entries.append((chunk[-1][0], put(block(chunk))))
    meta_handle = put(block([]))
    index_handle = put(block(index_entries, restart_interval=1))
    footer = (meta_handle + index_handle).ljust(40, b"\x00") + struct.pack("<Q", MAGIC)
    return bytes(out + footer)


def write_bundle(prefix: str | Path, tensors: Mapping[str, np.ndarray], *, n_shards: int = 1,
                 per_block: int = 3, header: bytes | None = None, extra: Mapping[str, bytes] | None = None
                 ) -> tuple[bytes, list[bytes]]:
    """Write ``<prefix>.index`` and its data shards (tensor i goes to shard i % n_shards); return their bytes.

    ``extra`` adds raw entry protos under other keys (to build invalid bundles)."""
    shards = [bytearray() for _ in range(n_shards)]
    entries = []
    for i, (name, array) in enumerate(sorted(tensors.items())):
        a = np.array(array, order="C")  # (ascontiguousarray would turn a scalar into shape (1,))
        a = a.astype(a.dtype.newbyteorder("<"))
        raw = a.tobytes()
        shard = i % n_shards
        entries.append((name.encode(), entry_proto(TF_DTYPES[a.dtype], a.shape, shard, len(shards[shard]), len(raw),
                                                   masked(crc32c_bytewise(raw)))))
        shards[shard] += raw
    for name, proto in (extra or {}).items():
        entries.append((name.encode(), proto))
    version = field_bytes(3, field_varint(1, 1))
    head = header if header is not None else field_varint(1, n_shards) + version
    index = table(sorted([(b"", head), *entries]), per_block=per_block)
    prefix = str(prefix)
    Path(prefix + ".index").parent.mkdir(parents=True, exist_ok=True)
    Path(prefix + ".index").write_bytes(index)
    for i, data in enumerate(shards):
        Path(f"{prefix}.data-{i:05d}-of-{n_shards:05d}").write_bytes(bytes(data))
    return index, [bytes(s) for s in shards]
