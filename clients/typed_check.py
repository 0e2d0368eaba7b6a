"""Per-type checks of one typed value for ``send()``, without building an Arrow scalar.

``fast_check(type)`` gives, for the common column types, a function ``check(item) -> bits | None``:
the bits the value counts for (rayka.partitions.record_size) when the value is of a plain Python
type that pyarrow's converter surely takes unchanged into that column (an int in range of an int
column, a str of a string column, a datetime of a timestamp column), else None, and the caller
falls back to the general path (serde._checked_bits: pyarrow's own conversion, which then accepts
or refuses with its reason). So a fast check never accepts what the batch build would refuse,
and never refuses anything itself: refusals keep one wording, pyarrow's.

Only exact types are taken (``type(x) is int``, not a bool or an IntEnum), since pyarrow treats
subclasses its own way (a bool is refused by an int column).
"""

from __future__ import annotations

import datetime as _dt

import pyarrow as pa

__all__ = ["fast_check"]

_INT64 = (-(1 << 63), (1 << 63) - 1)


def _int_check(lo: int, hi: int, bits: int):
    def check(item):
        if type(item) is int and lo <= item <= hi:
            return bits
        return None

    return check


def _float_check(bits: int):
    # pyarrow converts an int to a float column only when the float holds it exactly:
    # |x| <= 2**24 (float32) or 2**53 (float64), the width of the mantissa.
    hi = 1 << (24 if bits == 32 else 53)
    lo = -hi

    def check(item):
        t = type(item)
        if t is float or (t is int and lo <= item <= hi):
            return bits
        return None

    return check


def _bool_check(item):
    return 1 if type(item) is bool else None


def _str_check(item):
    if type(item) is not str:
        return None
    if item.isascii():
        return 8 * len(item)
    try:
        return 8 * len(item.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate: pyarrow's refusal says so
        return None


def _bytes_check(item):
    return 8 * len(item) if type(item) is bytes else None


def _timestamp_check(unit: str):
    lo, hi = _INT64
    # A datetime fits int64 seconds, ms and us whatever its year; in ns only 1677..2262.
    takes_datetime = unit != "ns"

    def check(item):
        t = type(item)
        if (t is _dt.datetime and takes_datetime) or (t is int and lo <= item <= hi):
            return 64
        return None

    return check


def _date32_check(item):
    t = type(item)
    if t is _dt.date or t is _dt.datetime or (t is int and -(1 << 31) <= item < (1 << 31)):
        return 32
    return None


def fast_check(typ: pa.DataType):
    """The fast check of a column of ``typ`` (see the module docs), or None for types that always
    take the general path (decimals, nested types, dictionaries, views, float16, ...)."""
    if pa.types.is_integer(typ):
        width = typ.bit_width
        if pa.types.is_signed_integer(typ):
            return _int_check(-(1 << (width - 1)), (1 << (width - 1)) - 1, width)
        return _int_check(0, (1 << width) - 1, width)
    if pa.types.is_float32(typ) or pa.types.is_float64(typ):
        return _float_check(typ.bit_width)
    if pa.types.is_boolean(typ):
        return _bool_check
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return _str_check
    if pa.types.is_binary(typ) or pa.types.is_large_binary(typ):
        return _bytes_check
    if pa.types.is_timestamp(typ):
        return _timestamp_check(typ.unit)
    if pa.types.is_date32(typ):
        return _date32_check
    return None
