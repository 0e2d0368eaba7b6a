"""Built-in serializers for untyped topics: ``"str"``, ``"json"``, ``"pickle"``, ``"msgpack"``.

Producer(key_serializer=, value_serializer=) and Consumer(key_deserializer=, value_deserializer=)
take any callable, or one of these names. A name becomes a :class:`Serializer` /
:class:`Deserializer`: a callable that says which format failed when a value does not encode
(InvalidRecordError at ``send()``) or decode (:class:`~rayka.errors.DeserializationError` at
``poll()``, naming topic, partition and offset).

``"json"`` uses orjson when it is installed, else the standard library's json in its compact
form (``separators=(",", ":")``, ``ensure_ascii=False``). Both give the same bytes for dicts,
lists, str, int, bool and None and floats without an exponent; they differ on an exponent's
spelling (stdlib ``1e-07``, orjson ``1e-7``), on ints beyond 64 bits (orjson refuses them), and
orjson also encodes datetimes, dataclasses and numpy arrays, which the stdlib refuses. Both
refuse NaN and infinities (not JSON). Decoding gives equal values either way.

``"pickle"`` is cloudpickle (functions, lambdas, numpy arrays, dataclasses); a Consumer takes
it only with ``allow_pickle=True``, since unpickling runs whatever code the bytes name.
"""

from __future__ import annotations

import json
import pickle

from rayka.errors import ConfigError, InvalidRecordError

__all__ = ["FORMATS", "Serializer", "Deserializer", "serializer", "deserializer", "json_backend"]

#: The names a serializer or deserializer option takes besides a callable.
FORMATS = ("str", "json", "pickle", "msgpack")


def json_backend() -> str:
    """"orjson" when it is importable, else "json" (the standard library)."""
    try:
        import orjson  # noqa: F401
    except ImportError:
        return "json"
    return "orjson"


def _json_codec():
    try:
        import orjson
    except ImportError:
        def dumps(v):
            return json.dumps(v, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")

        return dumps, json.loads
    return orjson.dumps, orjson.loads


def _str_codec():
    return (lambda v: v.encode("utf-8") if isinstance(v, str) else _not_str(v)), (lambda b: b.decode("utf-8"))


def _not_str(v):
    raise TypeError(f"expected str, got {type(v).__name__}")


def _pickle_codec():
    import cloudpickle

    return (lambda v: cloudpickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL)), pickle.loads


def _msgpack_codec():
    import msgpack

    def unpack(b):
        return msgpack.unpackb(b, raw=False, strict_map_key=False)

    return (lambda v: msgpack.packb(v, use_bin_type=True)), unpack


_CODECS = {"str": _str_codec, "json": _json_codec, "pickle": _pickle_codec, "msgpack": _msgpack_codec}


class Serializer:
    """A named built-in serializer: ``serializer(value) -> bytes``; InvalidRecordError naming
    it when the value cannot be encoded."""

    __slots__ = ("name", "option", "_fn")

    def __init__(self, name: str, option: str):
        self.name, self.option = name, option
        self._fn = _CODECS[name]()[0]

    def __call__(self, value) -> bytes:
        try:
            return self._fn(value)
        except Exception as exc:  # each library raises its own types (TypeError, OverflowError, orjson.JSONEncodeError...)
            raise InvalidRecordError(
                f"{self.option}={self.name!r} cannot encode {type(value).__name__} {value!r:.60}: {exc}; "
                f"convert it first, or pass another serializer ({', '.join(map(repr, FORMATS))} or a callable)"
            ) from None

    def __repr__(self) -> str:
        return f"Serializer({self.name!r})"


class Deserializer:
    """A named built-in deserializer: ``deserializer(data: bytes)``. Its errors propagate; the
    consumer turns them into DeserializationError naming the record (see record_views)."""

    __slots__ = ("name", "option", "_fn")

    def __init__(self, name: str, option: str):
        self.name, self.option = name, option
        self._fn = _CODECS[name]()[1]

    def __call__(self, data: bytes):
        return self._fn(data)

    def __repr__(self) -> str:
        return f"Deserializer({self.name!r})"


def _check_name(option: str, value) -> str:
    if isinstance(value, str):
        name = value.lower()
        if name in FORMATS:
            return name
    raise ConfigError(f"{option} must be a callable or one of {', '.join(map(repr, FORMATS))}, got {value!r:.40}")


def serializer(option: str, value):
    """The Producer's ``option`` (key_serializer / value_serializer) as a callable: None and
    callables as given, a name as its :class:`Serializer`; ConfigError for anything else."""
    if value is None or callable(value):
        return value
    return Serializer(_check_name(option, value), option)


def deserializer(option: str, value, allow_pickle: bool = False):
    """The Consumer's ``option`` (key_deserializer / value_deserializer) as a callable. ``"pickle"``
    needs ``allow_pickle=True`` (ConfigError otherwise: unpickling runs code)."""
    if value is None or callable(value):
        return value
    name = _check_name(option, value)
    if name == "pickle" and allow_pickle is not True:
        raise ConfigError(
            f"{option}='pickle' needs allow_pickle=True on the Consumer: unpickling runs whatever code the "
            "bytes name, so only read pickles from producers you trust"
        )
    return Deserializer(name, option)


def describe(fn) -> str:
    """How an error names a deserializer: its format name, or the callable's qualified name."""
    if isinstance(fn, (Serializer, Deserializer)):
        return repr(fn.name)
    return getattr(fn, "__qualname__", None) or type(fn).__name__
