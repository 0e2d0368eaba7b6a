"""The CLI's ``--key-format`` / ``--value-format``: how a record's key and value bytes are encoded.

``rayka produce``: the text the input gives for a key or value (a raw line, or a JSON line's
field) is encoded with the format: ``bytes`` (default: as it is), ``str`` (its UTF-8, checked),
``json`` (read as JSON, written compact: the "json" serializer), ``msgpack`` and ``pickle``
(read as JSON, written with that serializer). ``rayka consume``: the bytes are decoded with the
format and printed as JSON text (``str`` as the string itself; values JSON cannot hold, such as
a pickled function, as their repr). ``pickle`` on consume needs ``--allow-pickle``: unpickling
runs code.
"""

from __future__ import annotations

import json

from rayka.clients.serializers import FORMATS, deserializer, serializer
from rayka.errors import ConfigError, InvalidRecordError

__all__ = ["CLI_FORMATS", "produce_codec", "consume_codec"]

#: What --key-format / --value-format take: the raw bytes, or a built-in serializer.
CLI_FORMATS = ("bytes",) + FORMATS


def produce_codec(name: str, option: str):
    """A callable turning the input's bytes into the record's bytes, or None for ``bytes``."""
    if name in ("bytes", "raw"):
        return None
    ser = serializer(option, name)

    def encode(data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        if name == "str":
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidRecordError(f"{option} str: the input is not UTF-8 ({exc})") from None
            return bytes(data)
        try:
            obj = json.loads(data)
        except ValueError as exc:
            raise InvalidRecordError(f"{option} {name}: the input is read as JSON and is not JSON ({exc}): "
                                     f"{bytes(data)[:40]!r}") from None
        return ser(obj)

    return encode


def _text(obj) -> bytes:
    if isinstance(obj, str):
        return obj.encode("utf-8")
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj)
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=repr).encode("utf-8")


def consume_codec(name: str, option: str, allow_pickle: bool = False):
    """A deserializer printing the decoded key or value as text (see the module docs), or None
    for ``bytes``; ConfigError for ``pickle`` without ``allow_pickle``."""
    if name in ("bytes", "raw"):
        return None
    if name == "pickle" and not allow_pickle:
        raise ConfigError(f"{option} pickle needs --allow-pickle: unpickling runs whatever code the bytes "
                          "name, so only read pickles from producers you trust")
    de = deserializer(option.lstrip("-").replace("-format", "_deserializer"), name, allow_pickle=allow_pickle)

    def decode(data: bytes) -> bytes:
        return _text(de(data))

    decode.__qualname__ = repr(name)  # DeserializationError names it
    return decode
