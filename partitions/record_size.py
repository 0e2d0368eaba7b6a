"""The size of a record as ``max.message.bytes`` counts it: one rule, for the producer and the partition.

A record's size is the bytes of its key, of its headers (each name's UTF-8 bytes plus
its value's bytes) and of its value. An untyped value counts its bytes; a typed value
counts, column by column, what that row holds:

- binary and string columns: their bytes (UTF-8 for strings);
- fixed-width columns: their width (a bool is one bit; the record's bits are rounded
  up to whole bytes once, at the end);
- lists and maps: the sum of their items; structs: the sum of their fields;
- a null counts nothing.

The partition applies it to whole batches (:func:`record_sizes`); ``send()`` applies
the same rule to the one record it is given (:func:`bytes_record_size` for
untyped topics, :func:`scalar_bits` for each typed column), so a
record that ``send()`` accepts is one the partition accepts: a batch is never
refused for a record the producer let in (except for union columns, counted at the
batch's average row width, as there is no per-row rule for them). Only timestamps and offsets are not
counted (they are fixed per record).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["column_bits", "scalar_bits", "fixed_bits", "record_sizes", "bytes_record_size", "header_size", "bits_to_bytes"]


def fixed_bits(typ: pa.DataType) -> int | None:
    """Bits of one value of a fixed-width type (bool 1, int32 32, ...), None for other types."""
    if pa.types.is_fixed_size_binary(typ):
        return typ.byte_width * 8
    if pa.types.is_null(typ) or pa.types.is_nested(typ) or pa.types.is_dictionary(typ):
        return None
    try:
        return typ.bit_width
    except ValueError:  # not fixed width (binary, string, ...)
        return None


def scalar_bits(scalar: pa.Scalar) -> int:
    """What :func:`column_bits` gives for a one-row array holding ``scalar`` (send() measures
    values one at a time: a scalar's buffer is cheaper to read than an array's)."""
    if not scalar.is_valid:
        return 0
    typ = scalar.type
    if pa.types.is_binary(typ) or pa.types.is_string(typ) or pa.types.is_large_binary(typ) or pa.types.is_large_string(typ):
        return 8 * scalar.as_buffer().size
    width = fixed_bits(typ)
    if width is not None:
        return width
    return int(column_bits(pa.array([scalar], type=typ))[0])


def bits_to_bytes(bits: int) -> int:
    return (bits + 7) // 8


def column_bits(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The bits each row of ``array`` counts for (int64, one per row)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    n = len(array)
    typ = array.type
    if n == 0 or pa.types.is_null(typ):
        return np.zeros(n, dtype=np.int64)
    if pa.types.is_dictionary(typ):
        per_value = column_bits(array.dictionary)
        idx = array.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        out = per_value[idx] if len(per_value) else np.zeros(n, dtype=np.int64)
        return _zero_nulls(out, array)
    if hasattr(typ, "storage_type") and isinstance(array, pa.ExtensionArray):
        return column_bits(array.storage)
    width = fixed_bits(typ)
    if width is not None:
        return _zero_nulls(np.full(n, width, dtype=np.int64), array)
    if pa.types.is_binary(typ) or pa.types.is_string(typ) or pa.types.is_large_binary(typ) or pa.types.is_large_string(typ):
        # Byte lengths from the offsets buffer: what pc.binary_length gives, without a kernel call's
        # overhead (send() measures one value at a time).
        dtype = np.int64 if pa.types.is_large_binary(typ) or pa.types.is_large_string(typ) else np.int32
        offsets = np.frombuffer(array.buffers()[1], dtype=dtype)[array.offset:array.offset + n + 1]
        return _zero_nulls(np.diff(offsets).astype(np.int64) * 8, array)
    if _is_var_bytes(typ):  # views
        return pc.multiply(pc.binary_length(array).fill_null(0).cast(pa.int64()), 8).to_numpy(zero_copy_only=False)
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_map(typ):
        # Items by the list offsets (a slice's offsets point into the whole child array).
        child = column_bits(array.values)
        cums = np.concatenate([[0], np.cumsum(child, dtype=np.int64)])
        offsets = array.offsets.to_numpy(zero_copy_only=False)
        return _zero_nulls(cums[offsets[1:]] - cums[offsets[:-1]], array)
    if pa.types.is_fixed_size_list(typ):
        flat = array.flatten()  # the rows' items, past the slice offset and without null rows
        parents = pc.list_parent_indices(array).to_numpy(zero_copy_only=False)
        out = np.zeros(n, dtype=np.int64)
        np.add.at(out, parents, column_bits(flat))
        return out
    if pa.types.is_struct(typ):
        out = np.zeros(n, dtype=np.int64)
        for child in array.flatten():  # children with the struct's nulls and offset applied
            out += column_bits(child)
        return out
    # Anything else (unions, ...): the average row width, which is all that can be said per row.
    return np.full(n, array.nbytes * 8 // n, dtype=np.int64)


def _is_var_bytes(typ: pa.DataType) -> bool:
    return (pa.types.is_binary(typ) or pa.types.is_large_binary(typ) or pa.types.is_string(typ)
            or pa.types.is_large_string(typ) or pa.types.is_binary_view(typ) or pa.types.is_string_view(typ))


def _zero_nulls(bits: np.ndarray, array: pa.Array) -> np.ndarray:
    if array.null_count:
        bits[array.is_null().to_numpy(zero_copy_only=False)] = 0
    return bits


def record_sizes(key: pa.Array, headers: pa.Array, values: list[pa.Array]) -> np.ndarray:
    """The size in bytes of every record of a batch, from its key, headers and value columns."""
    bits = column_bits(key) + column_bits(headers)
    for col in values:
        bits = bits + column_bits(col)
    return (bits + 7) // 8


def header_size(name: str, value: bytes | None) -> int:
    """Bytes one header counts for: its name's UTF-8 bytes (UnicodeEncodeError if it has none,
    e.g. a lone surrogate) and its value's bytes."""
    return len(name.encode("utf-8")) + (len(value) if value is not None else 0)


def bytes_record_size(key: bytes | None, value_bits: int, header_bytes: int) -> int:
    """A record's size from its key (bytes), its value's bits (``8 * len(value)`` untyped, the
    sum of :func:`column_bits` of its columns typed) and its headers' bytes (:func:`header_size`)."""
    return (len(key) if key is not None else 0) + header_bytes + bits_to_bytes(value_bits)
