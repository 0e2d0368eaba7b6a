"""--key-format / --value-format codecs of the CLI, without Ray."""

from __future__ import annotations

import msgpack
import pytest

from rayka.clients.cli_codecs import consume_codec, produce_codec
from rayka.clients.serializers import deserializer
from rayka.errors import ConfigError, InvalidRecordError


def test_bytes_is_no_codec():
    assert produce_codec("bytes", "--value-format") is None and consume_codec("bytes", "--value-format") is None


@pytest.mark.parametrize("name", ["json", "msgpack", "pickle"])
def test_produce_reads_json_and_consume_prints_json(name):
    data = produce_codec(name, "--value-format")(b'{"a": [1, 2.5, null], "b": "\xc3\xa9"}')
    assert deserializer("v", name, allow_pickle=True)(data) == {"a": [1, 2.5, None], "b": "é"}
    assert consume_codec(name, "--value-format", allow_pickle=True)(data) == '{"a":[1,2.5,null],"b":"é"}'.encode()


def test_msgpack_bytes_are_msgpack():
    assert produce_codec("msgpack", "--value-format")(b"[1]") == msgpack.packb([1])


def test_str_checks_utf8_and_prints_the_string():
    assert produce_codec("str", "--key-format")("é".encode()) == "é".encode()
    with pytest.raises(InvalidRecordError, match="not UTF-8"):
        produce_codec("str", "--key-format")(b"\xff")
    assert consume_codec("str", "--key-format")(b"plain") == b"plain"


def test_produce_refuses_text_that_is_not_json():
    with pytest.raises(InvalidRecordError, match="--value-format json: the input is read as JSON"):
        produce_codec("json", "--value-format")(b"not json")


def test_consume_pickle_needs_the_flag():
    with pytest.raises(ConfigError, match="--allow-pickle"):
        consume_codec("pickle", "--value-format")
