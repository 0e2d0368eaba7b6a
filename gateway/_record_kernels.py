"""Compiled loops of the RecordBatch v2 codec (numba ``@njit(cache=True)``), one pass each.

A RecordBatch's records section is a chain of length-prefixed records whose fields are
zigzag varints, so finding where record ``i`` starts needs records ``0..i-1`` parsed: the
scan is sequential by nature and numpy alone cannot vectorise it. These loops run the
scan and the byte copies at native speed; :mod:`rayka.gateway.records` (the public face)
checks batch headers, CRCs and codecs in Python (once per batch, not per record) and
builds the Arrow arrays from the buffers filled here.

Record layout (Kafka's DefaultRecord; "varint" is zigzag)::

    length varint | attributes int8 | timestampDelta varlong | offsetDelta varint
    | keyLength varint | key | valueLength varint | value
    | headerCount varint | (headerKeyLength varint | headerKey | headerValueLength varint | headerValue)*

Every function takes ``uint8``/``int32``/``int64`` numpy arrays only, so each compiles once
(and is cached on disk next to this file). Errors are returned as codes (``ERR_*``) with the
byte position, never raised from compiled code: the caller turns them into a
CorruptRecordError that names what was wrong.
"""

from __future__ import annotations

import numpy as np
from numba import njit

ERR_NONE = 0
ERR_VARINT_OVERRUN = 1      # a varint runs off the end of its record (or the buffer)
ERR_VARINT_TOO_LONG = 2     # more than 5 (varint) / 10 (varlong) bytes
ERR_RECORD_LENGTH = 3       # negative, or past the end of the records section
ERR_RECORD_TRAILING = 4     # the fields end before the record's stated length
ERR_KEY_LENGTH = 5
ERR_VALUE_LENGTH = 6
ERR_HEADER_COUNT = 7
ERR_HEADER_KEY_LENGTH = 8
ERR_HEADER_VALUE_LENGTH = 9
ERR_TOO_MANY_RECORDS = 10   # bytes left after the batch's recordCount records
ERR_TOO_FEW_RECORDS = 11    # the section ends before recordCount records
ERR_OFFSET_DELTA = 12       # offsetDelta not increasing
ERR_TRUNCATED = 13          # the record's attributes byte is missing

_U1 = np.uint64(1)
_U7F = np.uint64(0x7F)


@njit(cache=True, nogil=True)
def _varint(buf, pos, end, max_bytes):
    """(value, next position), or (error code, -1) when it overruns ``end`` or is too long."""
    result = np.uint64(0)
    shift = np.uint64(0)
    for _ in range(max_bytes):
        if pos >= end:
            return np.int64(ERR_VARINT_OVERRUN), -1
        b = buf[pos]
        pos += 1
        result |= (np.uint64(b) & _U7F) << shift
        if b < 0x80:
            return np.int64(result >> _U1) ^ (-np.int64(result & _U1)), pos
        shift += np.uint64(7)
    return np.int64(ERR_VARINT_TOO_LONG), -1


@njit(cache=True, nogil=True)
def parse_records(buf, count, base_ts, ts, off_delta, key_pos, key_len, val_pos, val_len, hdr_pos, hdr_count):
    """Scan ``count`` records of ``buf`` (a whole records section), filling the per-record arrays
    (each of length ``count``): timestamps (``base_ts`` + delta), offset deltas, field
    positions and lengths (-1: null).

    Returns (error, error position, record index, key bytes, value bytes, headers,
    header-key bytes, header-value bytes, null keys, null values): totals for sizing the
    output buffers.
    """
    end = buf.shape[0]
    pos = 0
    key_bytes = 0
    val_bytes = 0
    n_headers = 0
    hkey_bytes = 0
    hval_bytes = 0
    prev_off = -1
    key_nulls = 0
    val_nulls = 0
    for i in range(count):
        if pos >= end:
            return ERR_TOO_FEW_RECORDS, pos, i, 0, 0, 0, 0, 0, 0, 0
        length, p = _varint(buf, pos, end, 5)
        if p < 0:
            return length, pos, i, 0, 0, 0, 0, 0, 0, 0
        if length < 0 or length > end - p:
            return ERR_RECORD_LENGTH, pos, i, 0, 0, 0, 0, 0, 0, 0
        rec_end = p + length
        if p >= rec_end:
            return ERR_TRUNCATED, p, i, 0, 0, 0, 0, 0, 0, 0
        p += 1  # attributes: unused by Kafka today
        v, q = _varint(buf, p, rec_end, 10)
        if q < 0:
            return v, p, i, 0, 0, 0, 0, 0, 0, 0
        ts[i] = base_ts + v
        p = q
        v, q = _varint(buf, p, rec_end, 5)
        if q < 0:
            return v, p, i, 0, 0, 0, 0, 0, 0, 0
        if v <= prev_off:
            return ERR_OFFSET_DELTA, p, i, 0, 0, 0, 0, 0, 0, 0
        prev_off = v
        off_delta[i] = v
        p = q
        v, q = _varint(buf, p, rec_end, 5)
        if q < 0:
            return v, p, i, 0, 0, 0, 0, 0, 0, 0
        if v < -1 or v > rec_end - q:
            return ERR_KEY_LENGTH, p, i, 0, 0, 0, 0, 0, 0, 0
        key_pos[i] = q
        key_len[i] = v
        if v < 0:
            key_nulls += 1
        p = q + max(v, 0)
        key_bytes += max(v, 0)
        v, q = _varint(buf, p, rec_end, 5)
        if q < 0:
            return v, p, i, 0, 0, 0, 0, 0, 0, 0
        if v < -1 or v > rec_end - q:
            return ERR_VALUE_LENGTH, p, i, 0, 0, 0, 0, 0, 0, 0
        val_pos[i] = q
        val_len[i] = v
        if v < 0:
            val_nulls += 1
        p = q + max(v, 0)
        val_bytes += max(v, 0)
        v, q = _varint(buf, p, rec_end, 5)
        if q < 0:
            return v, p, i, 0, 0, 0, 0, 0, 0, 0
        # every header takes at least two bytes (its two length varints)
        if v < 0 or v > (rec_end - q) // 2:
            return ERR_HEADER_COUNT, p, i, 0, 0, 0, 0, 0, 0, 0
        hdr_count[i] = v
        p = q
        hdr_pos[i] = p
        for _ in range(v):
            hk, q = _varint(buf, p, rec_end, 5)
            if q < 0:
                return hk, p, i, 0, 0, 0, 0, 0, 0, 0
            if hk < 0 or hk > rec_end - q:  # a header key is never null
                return ERR_HEADER_KEY_LENGTH, p, i, 0, 0, 0, 0, 0, 0, 0
            p = q + hk
            hkey_bytes += hk
            hv, q = _varint(buf, p, rec_end, 5)
            if q < 0:
                return hv, p, i, 0, 0, 0, 0, 0, 0, 0
            if hv < -1 or hv > rec_end - q:
                return ERR_HEADER_VALUE_LENGTH, p, i, 0, 0, 0, 0, 0, 0, 0
            p = q + max(hv, 0)
            hval_bytes += max(hv, 0)
        n_headers += v
        if p != rec_end:
            return ERR_RECORD_TRAILING, p, i, 0, 0, 0, 0, 0, 0, 0
        pos = rec_end
    if pos != end:
        return ERR_TOO_MANY_RECORDS, pos, count, 0, 0, 0, 0, 0, 0, 0
    return ERR_NONE, 0, count, key_bytes, val_bytes, n_headers, hkey_bytes, hval_bytes, key_nulls, val_nulls


@njit(cache=True, nogil=True)
def gather_kv(buf, key_pos, key_len, key_offsets, key_data, val_pos, val_len, val_offsets, val_data):
    """:func:`gather` of the keys and of the values, in one call (a call costs microseconds)."""
    gather(buf, key_pos, key_len, key_offsets, key_data)
    gather(buf, val_pos, val_len, val_offsets, val_data)


@njit(cache=True, nogil=True)
def gather(buf, pos, lens, offsets, data):
    """Copy the fields at ``pos``/``lens`` (-1: null, copied as empty) end to end into ``data``,
    with Arrow offsets (``len(lens) + 1`` of them) into ``offsets``."""
    at = 0
    offsets[0] = 0
    for i in range(lens.shape[0]):
        n = lens[i]
        if n > 0:
            s = pos[i]
            data[at:at + n] = buf[s:s + n]
            at += n
        offsets[i + 1] = at


@njit(cache=True, nogil=True)
def gather_headers(buf, hdr_pos, hdr_count, key_offsets, key_data, val_offsets, val_data, val_len):
    """Copy every header (already checked by :func:`parse_records`) into the key and value
    buffers, in record order; ``val_len`` gets each header value's length (-1: null)."""
    h = 0
    ka = 0
    va = 0
    key_offsets[0] = 0
    val_offsets[0] = 0
    end = buf.shape[0]
    for i in range(hdr_count.shape[0]):
        p = hdr_pos[i]
        for _ in range(hdr_count[i]):
            n, p = _varint(buf, p, end, 5)
            key_data[ka:ka + n] = buf[p:p + n]
            ka += n
            p += n
            key_offsets[h + 1] = ka
            n, p = _varint(buf, p, end, 5)
            val_len[h] = n
            if n > 0:
                val_data[va:va + n] = buf[p:p + n]
                va += n
                p += n
            val_offsets[h + 1] = va
            h += 1


@njit(cache=True, nogil=True)
def _zigzag_size(v):
    u = np.uint64((v << 1) ^ (v >> 63))
    n = 1
    while u >= np.uint64(0x80):
        u >>= np.uint64(7)
        n += 1
    return n


@njit(cache=True, nogil=True)
def _put_varint(out, at, v):
    u = np.uint64((v << 1) ^ (v >> 63))
    while u >= np.uint64(0x80):
        out[at] = np.uint8((u & _U7F) | np.uint64(0x80))
        u >>= np.uint64(7)
        at += 1
    out[at] = np.uint8(u)
    return at + 1


@njit(cache=True, nogil=True)
def _field_len(offsets, valid, i):
    if not valid[i]:
        return -1
    return np.int64(offsets[i + 1] - offsets[i])


@njit(cache=True, nogil=True)
def record_sizes(offsets, ts, k_off, k_valid, v_off, v_valid, m_off, m_valid, hk_off, hv_off, hv_valid, sizes):
    """Each record's body size (without its length prefix) into ``sizes``.

    ``*_off`` are Arrow offsets (already shifted by the array offset), ``*_valid`` bool masks;
    offset and timestamp deltas are taken from the first record. Returns (size of all records
    with their length prefixes, max timestamp, -1), or (0, 0, i) when offset i does not
    increase or lies 2**31 or more past the first.
    """
    total = 0
    base_off = offsets[0]
    base_ts = ts[0]
    max_ts = base_ts
    prev = base_off - 1
    for i in range(ts.shape[0]):
        o = offsets[i]
        if o <= prev or o - base_off >= 2147483648:
            return 0, 0, i
        prev = o
        if ts[i] > max_ts:
            max_ts = ts[i]
        body = 1 + _zigzag_size(ts[i] - base_ts) + _zigzag_size(o - base_off)
        kl = _field_len(k_off, k_valid, i)
        body += _zigzag_size(kl) + max(kl, 0)
        vl = _field_len(v_off, v_valid, i)
        body += _zigzag_size(vl) + max(vl, 0)
        hc = 0
        if m_valid[i]:
            hc = m_off[i + 1] - m_off[i]
        body += _zigzag_size(np.int64(hc))
        if hc:
            for h in range(m_off[i], m_off[i + 1]):
                hkl = np.int64(hk_off[h + 1] - hk_off[h])
                body += _zigzag_size(hkl) + hkl
                hvl = _field_len(hv_off, hv_valid, h)
                body += _zigzag_size(hvl) + max(hvl, 0)
        sizes[i] = body
        total += body + _zigzag_size(np.int64(body))
    return total, max_ts, -1


@njit(cache=True, nogil=True)
def write_records(out, at, sizes, offsets, ts, k_off, k_valid, k_data, v_off, v_valid, v_data,
                  m_off, m_valid, hk_off, hk_data, hv_off, hv_valid, hv_data):
    """Write every record (sized by :func:`record_sizes`) into ``out`` from ``at``; returns the
    end position."""
    base_off = offsets[0]
    base_ts = ts[0]
    for i in range(ts.shape[0]):
        at = _put_varint(out, at, np.int64(sizes[i]))
        out[at] = 0  # record attributes
        at += 1
        at = _put_varint(out, at, ts[i] - base_ts)
        at = _put_varint(out, at, offsets[i] - base_off)
        kl = _field_len(k_off, k_valid, i)
        at = _put_varint(out, at, kl)
        if kl > 0:
            s = k_off[i]
            out[at:at + kl] = k_data[s:s + kl]
            at += kl
        vl = _field_len(v_off, v_valid, i)
        at = _put_varint(out, at, vl)
        if vl > 0:
            s = v_off[i]
            out[at:at + vl] = v_data[s:s + vl]
            at += vl
        hc = 0
        if m_valid[i]:
            hc = m_off[i + 1] - m_off[i]
        at = _put_varint(out, at, np.int64(hc))
        if hc:
            for h in range(m_off[i], m_off[i + 1]):
                s = hk_off[h]
                n = np.int64(hk_off[h + 1] - s)
                at = _put_varint(out, at, n)
                out[at:at + n] = hk_data[s:s + n]
                at += n
                n = _field_len(hv_off, hv_valid, h)
                at = _put_varint(out, at, n)
                if n > 0:
                    s = hv_off[h]
                    out[at:at + n] = hv_data[s:s + n]
                    at += n
    return at
