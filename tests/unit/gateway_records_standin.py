"""A stand-in for ``rayka.gateway.records`` (written in parallel), with its interface, over
kafka-python's ``kafka.record`` (slow, per record, but a correct RecordBatch v2 codec).

``install()`` puts it in ``sys.modules`` as ``rayka.gateway.records`` only when the real module
is missing, so the real one is tested as soon as it lands on the branch.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass

import pyarrow as pa
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from rayka.errors import CorruptRecordError
from rayka.partitions.records import input_schema


@dataclass(frozen=True)
class DecodedBatch:
    base_offset: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int
    log_append_time: bool
    transactional: bool
    control: bool
    batch: pa.RecordBatch


def decode_batches(data) -> list[DecodedBatch]:
    data = bytes(data)
    if len(data) < 61:
        raise CorruptRecordError(f"{len(data)} bytes are shorter than a record batch header")
    out, pos = [], 0
    while pos < len(data):
        if len(data) - pos < 12:
            raise CorruptRecordError("trailing bytes after the last record batch")
        (length,) = struct.unpack_from(">i", data, pos + 8)
        end = pos + 12 + length
        if length < 49 or end > len(data):
            raise CorruptRecordError(f"record batch at byte {pos} claims {length} bytes")
        chunk = data[pos:end]
        if chunk[16] != 2:
            raise CorruptRecordError(f"record batch magic {chunk[16]} is not 2")
        b = DefaultRecordBatch(chunk)
        if not b.validate_crc():
            raise CorruptRecordError(f"record batch at byte {pos} failed its CRC-32C")
        ts, keys, values, headers = [], [], [], []
        try:
            for r in b:
                ts.append(r.timestamp)
                keys.append(r.key)
                values.append(r.value)
                headers.append([(k, v) for k, v in r.headers] if r.headers else None)
        except Exception as exc:
            raise CorruptRecordError(f"record batch at byte {pos} does not decode: {exc}") from None
        batch = pa.RecordBatch.from_arrays(
            [pa.array(ts, pa.int64()), pa.array(keys, pa.binary()),
             pa.array(headers, input_schema().field("headers").type), pa.array(values, pa.binary())],
            schema=input_schema())
        out.append(DecodedBatch(b.base_offset, b.producer_id, b.producer_epoch, b.base_sequence, len(ts),
                                b.timestamp_type == 1, b.is_transactional, b.is_control_batch, batch))
        pos = end
    return out


def encode_batches(batches: list[pa.RecordBatch], *, log_append_time: bool = False, compression=None,
                   partition_leader_epoch: int = -1) -> bytes:
    out = bytearray()
    for batch in batches:
        cols = batch.to_pydict()
        base = cols["offset"][0]
        builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                            producer_epoch=-1, base_sequence=-1, batch_size=2**30)
        for off, ts, key, hdrs, value in zip(cols["offset"], cols["timestamp_ms"], cols["key"], cols["headers"],
                                             cols["value"]):
            builder.append(off - base, timestamp=ts, key=key, value=value, headers=list(hdrs or []))
        data = bytearray(builder.build())
        struct.pack_into(">q", data, 0, base)  # the base offset is outside the CRC
        out += data
    return bytes(out)


def install() -> None:
    import rayka.gateway as package

    try:
        import rayka.gateway.records  # noqa: F401  the real module, once it is on the branch
    except ImportError:
        module = sys.modules[__name__]
        sys.modules["rayka.gateway.records"] = module
        package.records = module
