"""Kafka RecordBatch v2 <-> rayka's Arrow record batches.

:func:`decode_batches` turns the ``records`` bytes of one partition in a Produce request
(one or more RecordBatch v2, back to back) into :class:`DecodedBatch` es whose ``batch`` is
in rayka's producer layout (``partitions.records.input_schema(None)``); :func:`encode_batch`
turns a batch in the stored layout (``log_schema(None)``: offset, timestamp_ms, key, headers,
value) into one RecordBatch v2 for a Fetch answer.

RecordBatch v2 header (61 bytes, big-endian; CRC-32C covers attributes .. end)::

    baseOffset int64 | batchLength int32 (bytes after this field) | partitionLeaderEpoch int32
    | magic int8 (=2) | crc uint32 | attributes int16 | lastOffsetDelta int32
    | baseTimestamp int64 | maxTimestamp int64 | producerId int64 | producerEpoch int16
    | baseSequence int32 | recordCount int32 | records...

attributes: bits 0-2 codec (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd), bit 3 LogAppendTime,
bit 4 transactional, bit 5 control. The records section (compressed as a whole when a codec
is set) is laid out as in :mod:`rayka.gateway._record_kernels`.

Speed: the gateway must carry 300k msg/s in and 500k msg/s out through one Python process, so
nothing here loops per record in Python. A records section is a chain of varint-prefixed
records, sequential by nature, so numpy passes cannot find the boundaries without a loop;
the loops are numba-compiled (``@njit(cache=True)``: pure Python source, a wheel on PyPI, no
extension module to build in CI and the editable install unchanged; compiled once per
machine, cached next to the module). Python does one step per *batch* (header, CRC,
codec) and builds Arrow arrays straight from the offset/data buffers the loops fill.
``benchmarks/gateway_codec.py`` measures it: on the 2-core box, 100-byte records decode at
~11M/s and encode at ~10M/s in 100k-record batches, ~7M/s in 1,000-record ones, ~2M/s in
100-record ones (per-batch cost, ~45 us); the first call of a process loads the compiled
loops from numba's cache (~1 s with the imports), or compiles them once per machine (~7 s;
:func:`warm_up` lets the gateway pay that at start).

Decoding choices: a record with no headers gets a null ``headers`` (as rayka's own producer
stores it), one with headers a map in wire order, duplicate keys kept. Header keys must be
UTF-8 (the column is map<string, binary>). Every malformation raises
:class:`~rayka.errors.CorruptRecordError` naming it, and nothing is returned for any batch of
the buffer then.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import crc32c
import numpy as np
import pyarrow as pa

from ..errors import ConfigError, CorruptRecordError, InvalidRecordError, RecordTooLargeError, SchemaMismatchError
from ..partitions.records import HEADERS_TYPE, input_schema, log_schema
from . import _record_kernels as k
from ._compression import CODEC_IDS, CODEC_NAMES, compress, decompress

__all__ = ["DecodedBatch", "decode_batches", "encode_batch", "encode_batches", "warm_up"]

_HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_BYTES = _HEADER.size  # 61
_CRC_START = 21  # attributes .. end
_MIN_RECORD_BYTES = 7  # length, attributes, timestamp, offset, key, value, header count
_INPUT_SCHEMA = input_schema(None)
_LOG_SCHEMA = log_schema(None)

_ERRORS = {
    k.ERR_VARINT_OVERRUN: "a varint runs off the end of its record",
    k.ERR_VARINT_TOO_LONG: "a varint is longer than its type allows",
    k.ERR_RECORD_LENGTH: "a record length is negative or runs past the records section",
    k.ERR_RECORD_TRAILING: "a record's fields end before its stated length",
    k.ERR_KEY_LENGTH: "a key length is below -1 or runs past its record",
    k.ERR_VALUE_LENGTH: "a value length is below -1 or runs past its record",
    k.ERR_HEADER_COUNT: "a header count is negative or too large for its record",
    k.ERR_HEADER_KEY_LENGTH: "a header key length is negative (null) or runs past its record",
    k.ERR_HEADER_VALUE_LENGTH: "a header value length is below -1 or runs past its record",
    k.ERR_TOO_MANY_RECORDS: "bytes are left after recordCount records",
    k.ERR_TOO_FEW_RECORDS: "the records section ends before recordCount records",
    k.ERR_OFFSET_DELTA: "offset deltas are not increasing",
    k.ERR_TRUNCATED: "a record is too short to hold its attributes",
}


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """One RecordBatch v2 from a client: its header fields and its records as an Arrow batch
    in rayka's producer layout (timestamp_ms, key, headers, value)."""

    base_offset: int
    partition_leader_epoch: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int
    compression: str | None  # None, "gzip", "snappy", "lz4" or "zstd"
    log_append_time: bool
    transactional: bool
    control: bool
    batch: pa.RecordBatch


#: decode_batches' default bound on the records of one call, decompressed: over a request's
#: 100 MiB (socket.request.max.bytes), so only batches that inflate are ever refused by it
MAX_DECODED_BYTES = 256 * 1024 * 1024


def decode_batches(data: bytes | bytearray | memoryview, *,
                   max_bytes: int = MAX_DECODED_BYTES) -> list[DecodedBatch]:
    """Decode every RecordBatch v2 in ``data`` (a Produce request's records for one partition).

    Raises CorruptRecordError (wrong magic, bad CRC, lengths past the buffer, a malformed
    record, an unknown codec, a failed decompression, a record count that does not match)
    naming the batch's byte position and what was wrong, and RecordTooLargeError when the
    records sections, decompressed, add up to more than ``max_bytes``; nothing is returned
    then.
    """
    view = memoryview(data).cast("B")
    total = len(view)
    out: list[DecodedBatch] = []
    pos = 0
    left = max_bytes
    while pos < total:
        decoded, section_bytes = _decode_one(view, pos, left, max_bytes)
        out.append(decoded)
        left -= section_bytes
        pos += 12 + _HEADER.unpack_from(view, pos)[1]
    return out


def _corrupt(pos: int, what: str) -> CorruptRecordError:
    return CorruptRecordError(f"record batch at byte {pos}: {what}")


def _decode_one(view: memoryview, pos: int, left: int, max_bytes: int) -> tuple[DecodedBatch, int]:
    """The batch at ``pos`` and the size of its records section (decompressed), which must
    be at most ``left`` (of the call's ``max_bytes``)."""
    remaining = len(view) - pos
    if remaining < 17:
        raise _corrupt(pos, f"{remaining} bytes left, too few for a batch header")
    magic = view[pos + 16]
    if magic != 2:
        raise _corrupt(pos, f"magic {magic}, only RecordBatch v2 (magic 2) is accepted")
    if remaining < HEADER_BYTES:
        raise _corrupt(pos, f"{remaining} bytes left, fewer than the {HEADER_BYTES}-byte batch header")
    (base_offset, batch_length, leader_epoch, _, crc, attributes, last_offset_delta, base_ts,
     max_ts, producer_id, producer_epoch, base_sequence, count) = _HEADER.unpack_from(view, pos)
    end = pos + 12 + batch_length
    if batch_length < HEADER_BYTES - 12 or end > len(view):
        raise _corrupt(pos, f"batchLength {batch_length} does not fit the {remaining} bytes left")
    actual = crc32c.crc32c(view[pos + _CRC_START:end])
    if actual != crc:
        raise _corrupt(pos, f"CRC-32C mismatch (stored {crc:#010x}, computed {actual:#010x})")
    codec_id = attributes & 7
    if codec_id not in CODEC_NAMES:
        raise _corrupt(pos, f"unknown compression codec {codec_id} in attributes {attributes:#x}")
    codec = CODEC_NAMES[codec_id]
    section = view[pos + HEADER_BYTES:end]
    if codec is not None:
        try:
            section = decompress(codec, section, left)
        except CorruptRecordError as exc:
            raise _corrupt(pos, str(exc)) from None
        except RecordTooLargeError:
            raise _too_large(pos, f"its {codec} records inflate past", left, max_bytes) from None
    elif len(section) > left:
        raise _too_large(pos, f"its {len(section)} bytes of records are over", left, max_bytes)
    buf = _ro(np.frombuffer(section, dtype=np.uint8))
    if count < 0 or count > len(buf) // _MIN_RECORD_BYTES:
        raise _corrupt(pos, f"recordCount {count} does not fit a {len(buf)}-byte records section")
    batch = _records(buf, count, base_ts, pos, last_offset_delta)
    return DecodedBatch(
        base_offset=base_offset, partition_leader_epoch=leader_epoch, attributes=attributes,
        last_offset_delta=last_offset_delta, base_timestamp=base_ts, max_timestamp=max_ts,
        producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=base_sequence,
        record_count=count, compression=codec, log_append_time=bool(attributes & 8),
        transactional=bool(attributes & 16), control=bool(attributes & 32), batch=batch), len(buf)


def _too_large(pos: int, what: str, left: int, max_bytes: int) -> RecordTooLargeError:
    return RecordTooLargeError(
        f"record batch at byte {pos}: {what} the {left} bytes left of the {max_bytes}-byte limit "
        "on one call's records (decode_batches' max_bytes)", max_message_bytes=max_bytes)


def _records(buf: np.ndarray, n: int, base_ts: int, pos: int, last_offset_delta: int) -> pa.RecordBatch:
    if len(buf) >= 2**31:
        raise _corrupt(pos, f"records section of {len(buf)} bytes is over 2 GiB")
    ts = np.empty(n, np.int64)  # its own array: the batch keeps it, and nothing else of these
    scratch = np.empty((7, n), np.int64)
    off, key_pos, key_len, val_pos, val_len, hdr_pos, hdr_count = scratch
    (err, err_pos, index, key_bytes, val_bytes, n_headers, hkey_bytes, hval_bytes, key_nulls,
     val_nulls) = k.parse_records(buf, n, base_ts, ts, off, key_pos, key_len, val_pos, val_len, hdr_pos, hdr_count)
    if err:
        raise _corrupt(pos, f"record {index} (byte {err_pos} of the records section): {_ERRORS[err]}")
    if n and off[-1] != last_offset_delta:
        raise _corrupt(pos, f"the last record's offsetDelta {off[-1]} is not lastOffsetDelta {last_offset_delta}")
    headers = _headers(buf, n, hdr_pos, hdr_count, n_headers, hkey_bytes, hval_bytes, pos)
    key_off, val_off = np.empty((2, n + 1), np.int32)
    key_data, val_data = np.empty(key_bytes, np.uint8), np.empty(val_bytes, np.uint8)
    k.gather_kv(buf, key_pos, key_len, key_off, key_data, val_pos, val_len, val_off, val_data)
    columns = [pa.array(ts), _binary(n, key_len, key_nulls, key_off, key_data), headers,
               _binary(n, val_len, val_nulls, val_off, val_data)]
    return pa.RecordBatch.from_arrays(columns, schema=_INPUT_SCHEMA)


def _validity(lens: np.ndarray) -> tuple[pa.Buffer | None, int]:
    nulls = int(np.count_nonzero(lens < 0))
    if not nulls:
        return None, 0
    return pa.py_buffer(np.packbits(lens >= 0, bitorder="little")), nulls


def _binary(n: int, lens: np.ndarray, nulls: int, offsets: np.ndarray, data: np.ndarray,
            typ: pa.DataType = pa.binary()) -> pa.Array:
    validity = pa.py_buffer(np.packbits(lens >= 0, bitorder="little")) if nulls else None
    return pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(offsets), pa.py_buffer(data)], null_count=nulls)


def _headers(buf, n, hdr_pos, hdr_count, n_headers, hkey_bytes, hval_bytes, pos) -> pa.Array:
    if not n_headers:
        return pa.nulls(n, HEADERS_TYPE)
    key_off = np.empty(n_headers + 1, np.int32)
    key_data = np.empty(hkey_bytes, np.uint8)
    val_off = np.empty(n_headers + 1, np.int32)
    val_data = np.empty(hval_bytes, np.uint8)
    val_len = np.empty(n_headers, np.int64)
    k.gather_headers(buf, hdr_pos, hdr_count, key_off, key_data, val_off, val_data, val_len)
    keys = pa.Array.from_buffers(pa.string(), n_headers, [None, pa.py_buffer(key_off), pa.py_buffer(key_data)])
    try:
        keys.validate(full=True)
    except pa.ArrowInvalid:
        raise _corrupt(pos, "a header key is not valid UTF-8") from None
    validity, nulls = _validity(val_len)
    values = pa.Array.from_buffers(pa.binary(), n_headers,
                                   [validity, pa.py_buffer(val_off), pa.py_buffer(val_data)], null_count=nulls)
    entries = pa.StructArray.from_arrays([keys, values], fields=[HEADERS_TYPE.key_field, HEADERS_TYPE.item_field])
    map_off = np.zeros(n + 1, np.int32)
    np.cumsum(hdr_count, out=map_off[1:], dtype=np.int32)
    map_validity, map_nulls = _validity(np.where(hdr_count > 0, 0, -1))
    return pa.Array.from_buffers(HEADERS_TYPE, n, [map_validity, pa.py_buffer(map_off)],
                                 null_count=map_nulls, children=[entries])


def encode_batch(batch: pa.RecordBatch | pa.Table, *, log_append_time: bool = False,
                 compression: str | None = None, partition_leader_epoch: int = -1) -> bytes:
    """One RecordBatch v2 holding ``batch`` (rayka's stored layout: offset, timestamp_ms, key,
    headers, value), for a Fetch answer; b"" for an empty batch.

    baseOffset is the first offset and each record's offsetDelta its distance from it
    (offsets must increase; gaps are allowed, as Kafka allows them); baseTimestamp is the
    first timestamp, maxTimestamp the largest. No producer: id -1, epoch -1, sequence -1.
    Raises SchemaMismatchError for a batch in another layout (or with a null offset or
    timestamp), InvalidRecordError for offsets that do not increase or span over 2**31,
    ConfigError for an unknown ``compression``.
    """
    if compression is not None and compression not in CODEC_IDS:
        raise ConfigError(f"unknown compression {compression!r}; use None or one of "
                         f"{sorted(n for n in CODEC_IDS if n)}")
    if isinstance(batch, pa.Table):
        batch = batch.combine_chunks().to_batches()[0] if batch.num_rows else None
    if batch is None or batch.num_rows == 0:
        return b""
    n = batch.num_rows
    if batch.schema.equals(_LOG_SCHEMA):  # the usual case: skip the lookups and casts
        off_col, ts_col, key_col, hdr_col, val_col = batch.columns
    else:
        off_col, ts_col = (_column(batch, name, pa.int64()) for name in ("offset", "timestamp_ms"))
        key_col, val_col = (_column(batch, name, pa.binary()) for name in ("key", "value"))
        hdr_col = _column(batch, "headers", HEADERS_TYPE)
    offsets, ts = _int64s(off_col, "offset"), _int64s(ts_col, "timestamp_ms")
    key, value = _binary_parts(key_col), _binary_parts(val_col)
    m_off, m_valid, hkey, hval = _header_parts(hdr_col)
    sizes = np.empty(n, np.int64)
    total, max_ts, bad = k.record_sizes(offsets, ts, key[0], key[1], value[0], value[1],
                                        m_off, m_valid, hkey[0], hval[0], hval[1], sizes)
    if bad >= 0:
        raise InvalidRecordError(
            f"offset {int(offsets[bad])} (row {bad}) of a batch to encode does not increase from the one "
            f"before or lies 2**31 or more past the first ({int(offsets[0])}): a RecordBatch's offset "
            "deltas are increasing int32s")
    start = HEADER_BYTES if compression is None else 0
    out = np.empty(start + total, np.uint8)
    end = k.write_records(out, start, sizes, offsets, ts, *key, *value,
                          m_off, m_valid, hkey[0], hkey[2], *hval)
    assert end == start + total, (end, start, total)
    if compression is not None:
        payload = np.frombuffer(compress(compression, out), np.uint8)
        out = np.empty(HEADER_BYTES + len(payload), np.uint8)
        out[HEADER_BYTES:] = payload
    attributes = CODEC_IDS[compression] | (8 if log_append_time else 0)
    _HEADER.pack_into(out, 0, int(offsets[0]), len(out) - 12, partition_leader_epoch, 2, 0, attributes,
                      int(offsets[-1] - offsets[0]), int(ts[0]), max_ts, -1, -1, -1, n)
    struct.pack_into(">I", out, 17, crc32c.crc32c(out[_CRC_START:]))
    return out.tobytes()


def encode_batches(batches, *, log_append_time: bool = False, compression: str | None = None,
                   partition_leader_epoch: int = -1) -> bytes:
    """:func:`encode_batch` of each batch (stored layout), concatenated: a Fetch answer's records."""
    return b"".join(encode_batch(b, log_append_time=log_append_time, compression=compression,
                                 partition_leader_epoch=partition_leader_epoch) for b in batches)


def _column(batch: pa.RecordBatch, name: str, typ: pa.DataType) -> pa.Array:
    try:
        col = batch.column(name)
    except KeyError:
        raise SchemaMismatchError(f"a batch to encode needs the column {name!r}; it has "
                                  f"{batch.schema.names}") from None
    if col.type == typ:
        return col
    if typ == HEADERS_TYPE and pa.types.is_null(col.type):
        return pa.nulls(len(col), typ)
    try:
        return col.cast(typ)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        raise SchemaMismatchError(f"column {name!r} has type {col.type}, not {typ}") from None


def _int64s(col: pa.Array, name: str) -> np.ndarray:
    if col.null_count:
        raise SchemaMismatchError(f"column {name!r} of a batch to encode has {col.null_count} nulls")
    a = np.frombuffer(col.buffers()[1], np.int64, count=len(col), offset=col.offset * 8)
    a.flags.writeable = False  # see _ro
    return a


_EMPTY_OFFSETS = np.zeros(1, np.int32)
_EMPTY_OFFSETS.flags.writeable = False
_EMPTY_DATA = np.empty(0, np.uint8)
_EMPTY_DATA.flags.writeable = False


def warm_up() -> None:
    """Compile every kernel now (or load it from numba's on-disk cache: well under a second).

    A fresh machine compiles for a few seconds on the first call; the gateway calls this when
    it starts so that no client request pays it.
    """
    sample = pa.RecordBatch.from_pydict(
        {"offset": [0, 1], "timestamp_ms": [0, 1], "key": [b"k", None],
         "headers": [[("h", b"v")], None], "value": [b"v", None]}, schema=_LOG_SCHEMA)
    decode_batches(encode_batch(sample))


def _ro(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a``. numba compiles one specialisation per argument type, and
    writable and read-only arrays are different types: whether a buffer is writable depends
    on where it came from (bytes or bytearray, a pyarrow buffer over numpy or not), so every
    array a kernel only reads is passed read-only, and each kernel compiles exactly once."""
    if not a.flags.writeable:
        return a
    v = a.view()
    v.flags.writeable = False
    return v


def _binary_parts(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offsets, validity mask, data) of a binary/string array, read-only; offsets index the
    whole data buffer (a sliced array's offsets are not rebased, nor need they be)."""
    n = len(arr)
    if n == 0:
        return _EMPTY_OFFSETS, _ro(np.ones(0, np.bool_)), _EMPTY_DATA
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, np.int32, count=n + 1, offset=arr.offset * 4)
    data = _EMPTY_DATA if data_buf is None else np.frombuffer(data_buf, np.uint8)
    return _ro(offsets), _valid(arr), _ro(data)


_TRUE = np.ones(0, np.bool_)


def _valid(arr: pa.Array) -> np.ndarray:
    """The validity of ``arr`` as a read-only bool array (a slice of a shared all-true one
    when it has no nulls, the usual case)."""
    global _TRUE
    n = len(arr)
    if arr.null_count == 0:
        if len(_TRUE) < n:
            grown = np.ones(max(n, 2 * len(_TRUE), 4096), np.bool_)
            grown.flags.writeable = False
            _TRUE = grown
        return _TRUE[:n]
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    valid.flags.writeable = False
    return valid


def _header_parts(arr: pa.MapArray):
    n = len(arr)
    if arr.null_count == n:  # no record has headers: nothing of the children is read
        none = _EMPTY_OFFSETS, _ro(np.ones(0, np.bool_)), _EMPTY_DATA
        return _ro(np.zeros(n + 1, np.int32)), _ro(np.zeros(n, np.bool_)), none, none
    entries = arr.values
    return (_ro(arr.offsets.to_numpy()), _valid(arr), _binary_parts(entries.field(0)),
            _binary_parts(entries.field(1)))
