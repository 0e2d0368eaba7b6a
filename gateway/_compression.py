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
import numpy as np

from ..errors import CorruptRecordError, RecordTooLargeError

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


def decompress(codec: str, data, max_bytes: int) -> memoryview:
    """``data`` decompressed, at most ``max_bytes`` of it (a small batch can inflate a
    thousandfold: the bound is enforced while decompressing, not after).

    Raises CorruptRecordError when ``data`` is not valid ``codec`` data and
    RecordTooLargeError when it decompresses to more than ``max_bytes``.
    """
    try:
        if codec == "snappy":
            return memoryview(_snappy(memoryview(data).cast("B"), max_bytes))
        into = _INTO.get(codec)
        if into is None:
            raise ValueError(f"unknown codec {codec!r}")
        return _bounded(into, codec, data, max_bytes)
    except (CorruptRecordError, RecordTooLargeError):
        raise
    except Exception as exc:  # cramjam.DecompressionError and friends: any failure is corrupt input
        raise CorruptRecordError(f"{codec} decompression failed: {exc}") from None


_INTO = {"gzip": cramjam.gzip.decompress_into, "lz4": cramjam.lz4.decompress_into,
         "zstd": cramjam.zstd.decompress_into}
_FIRST_GUESS_BYTES = 1 << 20
_GUESS_RATIO = 16
_OUTPUT_FULL = "failed to write whole buffer"  # cramjam's error when the output is too small


def _bounded(into, codec: str, data, max_bytes: int) -> memoryview:
    # A first output buffer sized for usual ratios (allocating max_bytes for every batch costs an
    # mmap of it); one retry at the limit when the data inflates more.
    size = min(max_bytes + 1, max(_FIRST_GUESS_BYTES, _GUESS_RATIO * len(data)))
    while True:
        out = np.empty(size, np.uint8)
        try:
            n = into(data, out)
        except cramjam.DecompressionError as exc:
            if _OUTPUT_FULL not in str(exc):
                raise
            if size <= max_bytes:
                size = max_bytes + 1
                continue
            n = size
        if n > max_bytes:
            raise _too_large(codec, max_bytes)
        return memoryview(out[:n])


def _too_large(codec: str, max_bytes: int) -> RecordTooLargeError:
    return RecordTooLargeError(f"{codec} records decompress to more than {max_bytes} bytes, "
                               "the limit for one request's batches", max_message_bytes=max_bytes)


def _snappy(view: memoryview, max_bytes: int):
    if bytes(view[:8]) != XERIAL_MAGIC:
        return _snappy_block(view, max_bytes)
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
        parts.append(_snappy_block(view[pos:pos + n], max_bytes))
        max_bytes -= len(parts[-1])
        pos += n
    return b"".join(parts)


def _snappy_block(view: memoryview, max_bytes: int) -> bytes:
    # a raw snappy block starts with its uncompressed length: checked before inflating
    if cramjam.snappy.decompress_raw_len(view) > max_bytes:
        raise _too_large("snappy", max_bytes)
    return bytes(cramjam.snappy.decompress_raw(view))
