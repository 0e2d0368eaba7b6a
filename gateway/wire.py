"""Kafka framing: a 4-byte big-endian size, then a request header and body; answers the same way.

A request frame is ``int32 size`` then ``size`` bytes: the request header (api key
int16, api version int16, correlation id int32, client id nullable string; plus tagged
fields in header v2, used by flexible versions) and the body of that api and
version. A response frame is ``int32 size``, the correlation id (plus tagged fields
for a flexible response, except ApiVersions, whose response header is never
flexible so a client can read it before it knows the versions) and the body.

Sizes are bounded by ``socket.request.max.bytes`` (100 MiB by default): a larger or
negative size prefix is a :class:`~rayka.gateway.errors.FrameTooLargeError` and the
connection is closed before its bytes are read. A frame that does not decode is a
:class:`~rayka.gateway.errors.ProtocolError`; nothing of it reaches a log.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from dataclasses import dataclass

from kafka.protocol.api_header import RequestHeader

from . import apis
from .errors import FrameTooLargeError, ProtocolError, UnsupportedApiError

log = logging.getLogger(__name__)

__all__ = ["Request", "read_frame", "parse_request", "encode_response", "MAX_REQUEST_BYTES"]

MAX_REQUEST_BYTES = 100 * 2**20
_SIZE = struct.Struct(">i")
_HEAD = struct.Struct(">hhi")


@dataclass(slots=True)
class Request:
    """One decoded request: its header fields and its body (None when the version is not
    offered: only ApiVersions answers that, in the v0 format)."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body: object | None
    size: int


async def read_frame(reader: asyncio.StreamReader, max_bytes: int = MAX_REQUEST_BYTES) -> bytes | None:
    """The next frame's bytes (after its size prefix); None when the client closed between frames.

    Raises FrameTooLargeError for a size outside ``0 < size <= max_bytes`` and ProtocolError
    when the client disconnects inside a frame."""
    try:
        head = await reader.readexactly(4)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise ProtocolError(f"client disconnected inside a size prefix ({len(exc.partial)} of 4 bytes)") from None
    (size,) = _SIZE.unpack(head)
    if size <= 0 or size > max_bytes:
        raise FrameTooLargeError(f"frame size {size} is outside 1..{max_bytes} (socket.request.max.bytes)")
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError(f"client disconnected inside a request ({len(exc.partial)} of {size} bytes)") from None


def _header_decoder(flexible: bool):
    # Request header v1 (client id a nullable string) or v2 (plus tagged fields; the client id
    # stays a non-compact string so that a server can read it before it knows the version).
    version = RequestHeader._flexible_versions[0] if flexible else RequestHeader._valid_versions[0]
    return RequestHeader._struct.compiled_decode_from(version, compact=False, tagged=flexible, data_class=RequestHeader)


def peek_header(frame: bytes) -> tuple[int, int, int]:
    """``(api_key, api_version, correlation_id)`` of a frame, without decoding the rest."""
    if len(frame) < _HEAD.size:
        raise ProtocolError(f"a {len(frame)}-byte frame is shorter than a request header")
    return _HEAD.unpack_from(frame)


def parse_request(frame: bytes) -> Request:
    """Decode a request frame (without its size prefix).

    An api key the gateway does not serve raises UnsupportedApiError (Kafka has no answer
    for it: the connection is closed). A version outside the offered range gives a
    Request with ``body=None`` for ApiVersions (it answers UNSUPPORTED_VERSION in the v0
    format) and raises UnsupportedApiError for the others, as a Kafka broker closes such a
    connection. A header or body that does not decode raises ProtocolError."""
    api_key, version, correlation_id = peek_header(frame)
    klass = apis.request_class(api_key)
    if klass is None or api_key not in apis.VERSIONS:
        raise UnsupportedApiError(f"api key {api_key} (version {version}) is not served by the gateway")
    if not apis.offered(api_key, version):
        if api_key == apis.ApiKey.API_VERSIONS:
            return Request(api_key, version, correlation_id, None, None, len(frame))
        lo, hi = apis.VERSIONS[api_key]
        raise UnsupportedApiError(f"{klass.__name__} v{version} is not served (offered: v{lo}-v{hi})")
    try:
        # The codec's compiled decoders (what ``klass.decode`` calls) read a memoryview in place
        # and tell where they stopped.
        view = memoryview(frame)
        flexible = klass.flexible_version_q(version)
        header, at = _header_decoder(flexible)(view, 0)
        decoder = klass._struct.compiled_decode_from(version, compact=flexible, tagged=flexible, data_class=klass)
        body, end = decoder(view, at)
    except Exception as exc:  # the codec raises struct.error, ValueError, UnicodeError, IndexError...
        raise ProtocolError(f"{klass.__name__} v{version} does not decode: {type(exc).__name__}: {exc}") from None
    if end != len(frame) and not flexible:
        raise ProtocolError(f"{klass.__name__} v{version} does not decode: {len(frame) - end} bytes past its end")
    if end < len(frame):
        # A flexible version's bytes after the body are ignored: librdkafka 2.16's all-topics
        # Metadata v9 carries one, and refusing it would cut off every librdkafka admin client.
        log.debug("%s v%d from %s: %d bytes after the body ignored", klass.__name__, version, header.client_id,
                  len(frame) - end)
    return Request(api_key, version, correlation_id, header.client_id, body, len(frame))


def encode_response(request: Request, body) -> bytes:
    """The framed answer to ``request``: size, response header (its correlation id), ``body``.

    ``body`` must have been built at ``request.api_version`` (``Response(version=v, ...)``)."""
    body.with_header(correlation_id=request.correlation_id)
    return bytes(body.encode(header=True, framed=True))
