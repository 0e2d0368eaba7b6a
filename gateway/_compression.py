"""The four RecordBatch codecs (cramjam), with both snappy framings.

librdkafka sends raw snappy; the Java client (and Kafka brokers) frame it the xerial way::

    b"\\x82SNAPPY\\x00" | version int32 BE | compatible version int32 BE | (length int32 BE | raw block)*

Decoding detects the magic and accepts both; encoding writes xerial (every client reads it).
LZ4 is the LZ4 frame format with independent blocks, as Kafka's Java codec requires.
Encoding uses each codec's fastest level (gzip 1, lz4 1, zstd 1): it runs on the gateway's
fetch path, where the default levels cost 5-25x the time for a few percent of size.
"""

from __future__ import annotations

import struct

import cramjam

from ..errors import CorruptRecordError

__all__ = ["CODEC_IDS", "CODEC_NAMES", "compress", "decompress"]

CODEC_NAMES = {0: None, 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
CODEC_IDS = {name: cid for cid, name in CODEC_NAMES.items()}

XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK_BYTES = 32 * 1024  # the xerial default, what the Java client writes


def compress(codec: str, data) -> bytes:
    """``data`` compressed with ``codec`` ("gzip", "snappy", "lz4" or "zstd")."""
    if codec == "gzip":
        return bytes(cramjam.gzip.compress(data, level=1))
    if codec == "snappy":
        view = memoryview(data).cast("B")
        parts = [_XERIAL_HEADER]
        for start in range(0, len(view), _XERIAL_BLOCK_BYTES):
            block = bytes(cramjam.snappy.compress_raw(view[start:start + _XERIAL_BLOCK_BYTES]))
            parts += (struct.pack(">i", len(block)), block)
        return b"".join(parts)
    if codec == "lz4":
        c = cramjam.lz4.Compressor(level=1, block_linked=False, content_checksum=False)  # fast mode, as librdkafka
        c.compress(data if isinstance(data, bytes) else bytes(data))  # it takes bytes only
        return bytes(c.finish())
    if codec == "zstd":
        return bytes(cramjam.zstd.compress(data, level=1))
    raise ValueError(f"unknown codec {codec!r}; use one of {sorted(n for n in CODEC_IDS if n)}")


def decompress(codec: str, data) -> memoryview:
    """``data`` decompressed; CorruptRecordError when it is not valid ``codec`` data."""
    try:
        if codec == "snappy":
            out = _snappy(memoryview(data).cast("B"))
        elif codec == "gzip":
            out = cramjam.gzip.decompress(data)
        elif codec == "lz4":
            out = cramjam.lz4.decompress(data)
        elif codec == "zstd":
            out = cramjam.zstd.decompress(data)
        else:
            raise ValueError(f"unknown codec {codec!r}")
    except CorruptRecordError:
        raise
    except Exception as exc:  # cramjam.DecompressionError and friends: any failure is corrupt input
        raise CorruptRecordError(f"{codec} decompression failed: {exc}") from None
    return memoryview(out).cast("B")


def _snappy(view: memoryview):
    if bytes(view[:8]) != XERIAL_MAGIC:
        return cramjam.snappy.decompress_raw(view)
    if len(view) < 16:
        raise CorruptRecordError("xerial snappy header truncated")
    parts = []
    pos = 16
    while pos < len(view):
        if len(view) - pos < 4:
            raise CorruptRecordError(f"xerial snappy block length truncated at byte {pos}")
        (n,) = struct.unpack_from(">i", view, pos)
        pos += 4
        if n < 0 or n > len(view) - pos:
            raise CorruptRecordError(f"xerial snappy block of {n} bytes at byte {pos} runs past the data")
        parts.append(bytes(cramjam.snappy.decompress_raw(view[pos:pos + n])))
        pos += n
    return b"".join(parts)
