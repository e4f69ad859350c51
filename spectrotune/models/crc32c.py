"""CRC-32C (Castagnoli), the checksum of TF checkpoints and LevelDB tables, in numpy, and their masked form.

:func:`crc32c` cuts a large buffer into equal lanes whose raw CRC registers are computed side by side (one numpy
table lookup per byte position across all lanes), then chains the lanes with the linear "advance by L zero
bytes" operator, itself four byte tables: about 10 ms per MB, against about 100 ms for a Python byte loop. Small
buffers take the byte loop. No torch, no ``ray``.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["crc32c", "mask_crc", "unmask_crc"]

_MASK_DELTA = 0xA282EAD8
_POLY = 0x82F63B78  # CRC-32C, reflected
_LANE_BYTES = 1024  # bytes per lane of the vectorised CRC
_SMALL = 4096  # below this many bytes the plain byte loop is faster


@functools.lru_cache(maxsize=1)
def _table() -> np.ndarray:
    t = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        t = np.where(t & 1, (t >> 1) ^ np.uint32(_POLY), t >> 1).astype(np.uint32)
    return t


@functools.lru_cache(maxsize=1)
def _table_list() -> tuple[int, ...]:
    return tuple(int(v) for v in _table())


def _raw_bytes(reg: int, data: bytes | memoryview) -> int:
    """The raw CRC register after feeding ``data`` to register value ``reg`` (no init/final xor)."""
    table = _table_list()
    for b in bytes(data):
        reg = table[(reg ^ b) & 0xFF] ^ (reg >> 8)
    return reg


@functools.lru_cache(maxsize=4)
def _shift_tables(n_zero_bytes: int) -> tuple[tuple[int, ...], ...]:
    """Four byte tables of the linear map ``reg -> register after n_zero_bytes zero bytes``."""
    table = _table()
    basis = (np.uint32(1) << np.arange(32, dtype=np.uint32)).astype(np.uint32)
    for _ in range(n_zero_bytes):
        basis = table[basis & 0xFF] ^ (basis >> 8)
    images = [int(v) for v in basis]
    out = []
    for k in range(4):
        row = []
        for b in range(256):
            v = 0
            for bit in range(8):
                if b >> bit & 1:
                    v ^= images[8 * k + bit]
            row.append(v)
        out.append(tuple(row))
    return tuple(out)


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C (Castagnoli, as TF, LevelDB and iSCSI use it) of ``data``; ``crc32c(b"123456789") == 0xE3069283``."""
    view = memoryview(data).cast("B")
    n = len(view)
    if n < _SMALL:
        return _raw_bytes(0xFFFFFFFF, view) ^ 0xFFFFFFFF
    lanes = n // _LANE_BYTES
    body = np.frombuffer(view[: lanes * _LANE_BYTES], dtype=np.uint8).reshape(lanes, _LANE_BYTES)
    columns = np.ascontiguousarray(body.T)  # [step, lane]: each step reads one contiguous row
    table = _table()
    reg = np.zeros(lanes, dtype=np.uint32)
    for row in columns:
        reg = table[(reg ^ row) & 0xFF] ^ (reg >> 8)
    # CRC is linear: chaining lane i onto the running register shifts that register by one lane of zeros.
    t0, t1, t2, t3 = _shift_tables(_LANE_BYTES)
    acc = 0xFFFFFFFF
    for raw in reg.tolist():
        acc = t0[acc & 0xFF] ^ t1[acc >> 8 & 0xFF] ^ t2[acc >> 16 & 0xFF] ^ t3[acc >> 24] ^ raw
    return _raw_bytes(acc, view[lanes * _LANE_BYTES:]) ^ 0xFFFFFFFF


def mask_crc(crc: int) -> int:
    """LevelDB/TF's masked form of a CRC (stored CRCs are masked so that a CRC of CRCs is not trivial)."""
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    """Inverse of :func:`mask_crc`."""
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF
