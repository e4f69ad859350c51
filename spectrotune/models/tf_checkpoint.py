"""Reading TensorFlow-1 checkpoints (``<prefix>.index`` + ``<prefix>.data-NNNNN-of-NNNNN``) in pure numpy.

A TF1 "tensor bundle" is two kinds of file. The ``.index`` is a LevelDB-style sorted string table (SSTable): data
blocks of prefix-compressed ``key -> value`` entries, an index block pointing at them and a 48-byte footer ending
in a magic number. Its keys are tensor names; each value is a serialized ``BundleEntryProto`` protobuf (dtype,
shape, shard, offset, size, masked CRC-32C of the bytes), and the empty key holds the ``BundleHeaderProto``
(number of shards, endianness). The ``.data`` shards hold the raw little-endian tensor bytes at those offsets.

This module parses all of it by hand (varints, protobuf fields, block trailers) and checks every checksum it
meets: the masked CRC-32C of every table block and of every tensor read. Nothing is executed, no pickle, no
TensorFlow, no protobuf library. Unsupported features fail loudly with :class:`~spectrotune.errors.InputError`
naming the file: compressed blocks, big-endian bundles, string tensors, partitioned (sliced) variables.

:func:`~spectrotune.models.crc32c.crc32c` (numpy, vectorised) checks the bytes: a 1 MB tensor costs ~15 ms.

Example
-------
>>> ckpt = read_checkpoint(index_bytes, [data_bytes], source="musicnn/MSD_vgg/")   # doctest: +SKIP
>>> ckpt.entries["1CNN/kernel"].shape, ckpt.tensor("1CNN/kernel").dtype               # doctest: +SKIP
((3, 3, 1, 128), dtype('float32'))
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spectrotune.errors import InputError
from spectrotune.models.crc32c import crc32c, mask_crc

__all__ = ["TABLE_MAGIC", "Checkpoint", "TensorEntry", "data_file_name", "read_checkpoint", "read_checkpoint_files",
           "read_index"]

#: Last 8 bytes of every SSTable (little-endian fixed64).
TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48  # two varint block handles padded to 40 bytes, then the magic
_BLOCK_TRAILER = 5  # 1 byte compression type + 4 bytes masked crc32c

# TF DataType enum -> numpy dtype (fixed-size numeric types only; DT_STRING = 7 is refused).
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 4: np.dtype("u1"), 5: np.dtype("<i2"),
    6: np.dtype("i1"), 8: np.dtype("<c8"), 9: np.dtype("<i8"), 10: np.dtype("?"), 17: np.dtype("<u2"),
    18: np.dtype("<c16"), 19: np.dtype("<f2"), 22: np.dtype("<u4"), 23: np.dtype("<u8"),
}  # fmt: skip


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a bundle, as its ``BundleEntryProto`` describes it.

    Attributes: ``name``; ``dtype`` (numpy, little-endian); ``shape`` (tuple of ints, ``()`` for a scalar);
    ``shard`` (index of the ``.data`` file); ``offset`` and ``size`` in bytes within it; ``crc32c`` (the stored
    *masked* CRC-32C of the bytes).
    """

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int


@dataclass(frozen=True)
class Checkpoint:
    """A parsed bundle: its entries by name and the bytes of its data shards.

    ``source`` names the checkpoint in error messages (e.g. ``"musicnn-0.1.0-py3-none-any.whl:musicnn/MSD_vgg/"``).
    """

    source: str
    entries: dict[str, TensorEntry]
    shards: tuple[bytes, ...]

    def tensor(self, name: str, *, verify: bool = True) -> np.ndarray:
        """The tensor ``name`` as a new numpy array of its dtype and shape (CRC-32C checked unless ``verify=False``).

        Raises InputError naming the checkpoint and the tensor when it is missing, out of its shard's bounds, or
        its checksum does not match.
        """
        entry = self.entries.get(name)
        if entry is None:
            raise InputError(f"{self.source}: no tensor {name!r} in the checkpoint")
        where = f"{self.source}: tensor {name!r}"
        if entry.shard >= len(self.shards):
            raise InputError(f"{where} lives in data shard {entry.shard}, but only {len(self.shards)} were given")
        data = self.shards[entry.shard]
        if entry.offset + entry.size > len(data):
            raise InputError(f"{where}: bytes {entry.offset}..{entry.offset + entry.size} are beyond the end of "
                             f"its data shard ({len(data)} bytes; truncated file?)")
        raw = data[entry.offset: entry.offset + entry.size]
        if verify and mask_crc(crc32c(raw)) != entry.crc32c:
            raise InputError(f"{where}: CRC-32C mismatch (corrupt data file)")
        return np.frombuffer(raw, dtype=entry.dtype).reshape(entry.shape).astype(entry.dtype.newbyteorder("="))

    def tensors(self, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """:meth:`tensor` of each name (default: every entry), in the order given (default: sorted)."""
        return {n: self.tensor(n) for n in (sorted(self.entries) if names is None else names)}


# --------------------------------------------------------------------------------------------------------------
# Varints and protobuf fields


class _FormatError(Exception):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of the unsigned LEB128 varint at ``buf[pos]``."""
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _FormatError("unterminated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of each field of a serialized protobuf message; values are ints or bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > len(buf):
                raise _FormatError("fixed64 field")
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise _FormatError("length-delimited field")
            value, pos = bytes(buf[pos: pos + length]), pos + length
        elif wire == 5:
            if pos + 4 > len(buf):
                raise _FormatError("fixed32 field")
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise _FormatError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _shape(buf: bytes) -> tuple[int, ...]:
    """TensorShapeProto: repeated ``dim`` (field 2, each ``Dim{size = 1}``); ``unknown_rank`` (3) is refused."""
    dims = []
    for number, _, value in _fields(buf):
        if number == 2:
            size = next((_signed64(v) for n, _, v in _fields(value) if n == 1), 0)  # type: ignore[arg-type]
            dims.append(size)
        elif number == 3 and value:
            raise _FormatError("tensor shape of unknown rank")
    if any(d < 0 for d in dims):
        raise _FormatError(f"negative dimension in shape {dims}")
    return tuple(dims)


def _entry(name: str, buf: bytes) -> TensorEntry:
    """BundleEntryProto: dtype 1, shape 2, shard_id 3, offset 4, size 5, crc32c 6 (fixed32), slices 7."""
    dtype_code, shape, shard, offset, size, crc = 0, (), 0, 0, 0, None
    for number, _, value in _fields(buf):
        if number == 1:
            dtype_code = int(value)  # type: ignore[arg-type]
        elif number == 2:
            shape = _shape(value)  # type: ignore[arg-type]
        elif number == 3:
            shard = int(value)  # type: ignore[arg-type]
        elif number == 4:
            offset = int(value)  # type: ignore[arg-type]
        elif number == 5:
            size = int(value)  # type: ignore[arg-type]
        elif number == 6:
            crc = int(value)  # type: ignore[arg-type]
        elif number == 7:
            raise _FormatError(f"tensor {name!r} is a partitioned (sliced) variable, which is not supported")
    if dtype_code not in _DTYPES:
        raise _FormatError(f"tensor {name!r} has TF dtype {dtype_code}, not a fixed-size numeric type")
    dtype = _DTYPES[dtype_code]
    if crc is None:
        raise _FormatError(f"tensor {name!r} has no crc32c")
    if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != size:
        raise _FormatError(f"tensor {name!r}: {size} bytes do not hold shape {shape} of {dtype}")
    return TensorEntry(name=name, dtype=dtype, shape=shape, shard=shard, offset=offset, size=size, crc32c=crc)


# --------------------------------------------------------------------------------------------------------------
# The SSTable


def _block(buf: bytes, handle: tuple[int, int]) -> bytes:
    offset, size = handle
    end = offset + size
    if end + _BLOCK_TRAILER > len(buf):
        raise _FormatError(f"block at {offset} (+{size}) runs past the end of the file ({len(buf)} bytes)")
    contents = buf[offset:end]
    kind, stored = buf[end], struct.unpack_from("<I", buf, end + 1)[0]
    if mask_crc(crc32c(buf[offset: end + 1])) != stored:
        raise _FormatError(f"block at {offset}: CRC-32C mismatch")
    if kind != 0:
        raise _FormatError(f"block at {offset} is compressed (type {kind}); only uncompressed tables are supported")
    return contents


def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The (key, value) pairs of a table block (prefix-compressed keys; the restart array is not needed)."""
    if len(block) < 4:
        raise _FormatError("block shorter than its restart count")
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    limit = len(block) - 4 - 4 * n_restarts
    if limit < 0:
        raise _FormatError("restart array larger than its block")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        if shared > len(key) or pos + unshared + value_len > limit:
            raise _FormatError("block entry runs past its block")
        key = key[:shared] + block[pos: pos + unshared]
        pos += unshared
        yield key, block[pos: pos + value_len]
        pos += value_len


def _handle(buf: bytes, pos: int = 0) -> tuple[tuple[int, int], int]:
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return (offset, size), pos


def read_index(index: bytes, *, source: str = "checkpoint") -> tuple[int, dict[str, TensorEntry]]:
    """Parse a ``.index`` file: (number of data shards, entries by tensor name).

    Raises InputError naming ``source`` when the file is truncated, corrupt (bad magic or block CRC), or uses a
    feature this reader does not support.
    """
    index = bytes(index)
    try:
        if len(index) < _FOOTER_SIZE:
            raise _FormatError(f"{len(index)} bytes, shorter than the 48-byte table footer")
        footer = index[-_FOOTER_SIZE:]
        if struct.unpack_from("<Q", footer, 40)[0] != TABLE_MAGIC:
            raise _FormatError("no SSTable magic number at the end (not a TF checkpoint index, or truncated)")
        _, pos = _handle(footer)  # the metaindex block: TF writes no filters, nothing to read
        index_handle, _ = _handle(footer, pos)
        entries: dict[str, TensorEntry] = {}
        n_shards, seen_header = 1, False
        for _, data_handle in _block_entries(_block(index, index_handle)):
            for key, value in _block_entries(_block(index, _handle(data_handle)[0])):
                if key == b"":
                    n_shards, seen_header = _header(value), True
                    continue
                name = key.decode("utf-8")
                entries[name] = _entry(name, value)
        if not seen_header:
            raise _FormatError("no bundle header (empty key)")
    except (_FormatError, UnicodeDecodeError, struct.error) as e:
        raise InputError(f"{source}: not a readable TF checkpoint index: {e}") from e
    bad = sorted(n for n, e in entries.items() if e.shard >= n_shards)
    if bad:
        raise InputError(f"{source}: tensor {bad[0]!r} names data shard beyond the {n_shards} the header declares")
    return n_shards, entries


def _header(buf: bytes) -> int:
    """BundleHeaderProto: num_shards 1, endianness 2 (0 little), version 3. Returns num_shards."""
    n_shards, endianness = 1, 0
    for number, _, value in _fields(buf):
        if number == 1:
            n_shards = int(value)  # type: ignore[arg-type]
        elif number == 2:
            endianness = int(value)  # type: ignore[arg-type]
    if endianness != 0:
        raise _FormatError("big-endian bundle; only little-endian is supported")
    if n_shards < 1:
        raise _FormatError(f"header declares {n_shards} data shards")
    return n_shards


def data_file_name(prefix: str, shard: int, n_shards: int) -> str:
    """``<prefix>.data-00000-of-00001``: the name TF gives data shard ``shard`` of ``n_shards``."""
    return f"{prefix}.data-{shard:05d}-of-{n_shards:05d}"


def read_checkpoint(index: bytes, shards: Sequence[bytes], *, source: str = "checkpoint") -> Checkpoint:
    """A :class:`Checkpoint` from the bytes of its ``.index`` and of its data shards (in shard order).

    Checks the shard count against the header and that every tensor lies inside its shard; tensor CRCs are
    checked when each tensor is read (:meth:`Checkpoint.tensor`).
    """
    n_shards, entries = read_index(index, source=source)
    if len(shards) != n_shards:
        raise InputError(f"{source}: the index declares {n_shards} data shard(s), {len(shards)} given")
    for e in entries.values():
        if e.offset + e.size > len(shards[e.shard]):
            raise InputError(f"{source}: tensor {e.name!r} ends at byte {e.offset + e.size}, beyond its data shard "
                             f"({len(shards[e.shard])} bytes; truncated file?)")
    return Checkpoint(source=source, entries=entries, shards=tuple(bytes(s) for s in shards))


def read_checkpoint_files(prefix: str | Path) -> Checkpoint:
    """:func:`read_checkpoint` of ``<prefix>.index`` and its ``<prefix>.data-*`` files on disk.

    ``prefix`` is the path without ``.index``; for musicnn's folders (``MSD_vgg/.index``) it ends in ``/``.
    """
    prefix = str(prefix)
    index_path = Path(prefix + ".index")
    try:
        index = index_path.read_bytes()
    except OSError as e:
        raise InputError(f"{index_path}: cannot read: {e.strerror or e}") from e
    n_shards, _ = read_index(index, source=str(index_path))
    shards = []
    for i in range(n_shards):
        path = Path(data_file_name(prefix, i, n_shards))
        try:
            shards.append(path.read_bytes())
        except OSError as e:
            raise InputError(f"{path}: cannot read: {e.strerror or e}") from e
    return read_checkpoint(index, shards, source=prefix)
