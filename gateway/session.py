"""One Kafka client connection: its requests answered in order, and the loop that serves it.

The gateway actor's asyncio server calls :func:`serve_connection` per accepted socket.
It reads frames ahead (a client keeps several requests in flight: up to
``GatewayOptions.max_in_flight`` are buffered) and hands each to
:meth:`Connection.handle` in arrival order, writing each answer before the next
request is handled, so answers leave in request order and a connection's produce
requests reach the partitions in the order the client sent them (as a Kafka broker
handles one request of a connection at a time). One exception keeps that order: Produce
requests that queued up behind the one being handled are handled with it
(:meth:`Connection.handle_run`), each partition's batches of all of them in one append in
request order, each request answered with its own offsets: a request waits for its
partitions' appends, and without this a client sending more requests than that allows
(librdkafka sends one per ``linger.ms``) would only queue. A long-polling Fetch or a JoinGroup
waiting for the rebalance holds only its own connection: other connections are other
tasks of the loop.

Bad input (a size prefix over ``max_request_bytes``, a frame that does not decode, an
api key the gateway does not serve, a client gone mid-frame) is logged and the
connection closed; since a Produce request is decoded whole before anything of it is
appended, nothing half-written reaches a log.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass

from . import wire
from .backend import Backend
from .errors import ProtocolError
from .handlers import HANDLERS
from .handlers.data import produce_run

__all__ = ["GatewayOptions", "Connection", "serve_connection"]

log = logging.getLogger("rayka.gateway")

#: The most Produce requests of one connection appended together.
MAX_PRODUCE_RUN = 16


@dataclass(frozen=True, kw_only=True)
class GatewayOptions:
    """How a gateway answers.

    ``auto_create_topics``: Metadata for an unknown topic creates it (Kafka's
    ``auto.create.topics.enable``, off by default) with ``default_partitions``.
    ``max_request_bytes``: Kafka's ``socket.request.max.bytes``. ``advertised_host``: the
    host the actor advertises for its broker. ``max_in_flight``: frames of one connection
    read ahead of the one being answered. ``group_poll_ms``: how often a held JoinGroup or
    SyncGroup asks the coordinator again.
    """

    auto_create_topics: bool = False
    default_partitions: int = 1
    max_request_bytes: int = wire.MAX_REQUEST_BYTES
    advertised_host: str = "127.0.0.1"
    max_in_flight: int = 16
    group_poll_ms: int = 25

    def __post_init__(self):
        from ..errors import ConfigError

        if not 1 <= self.default_partitions <= 100_000:
            raise ConfigError(f"default_partitions must be 1..100000, got {self.default_partitions}")
        if not 1024 <= self.max_request_bytes <= 2**31 - 1:
            raise ConfigError(f"max_request_bytes must be 1024..2**31-1, got {self.max_request_bytes}")
        if not 1 <= self.max_in_flight <= 1024:
            raise ConfigError(f"max_in_flight must be 1..1024, got {self.max_in_flight}")
        if not 1 <= self.group_poll_ms <= 10_000:
            raise ConfigError(f"group_poll_ms must be 1..10000, got {self.group_poll_ms}")


class Connection:
    """The state of one client connection, and :meth:`handle` for its frames.

    Not safe for concurrent ``handle`` calls: a connection's requests are handled one at a
    time, in order (``serve_connection`` does so)."""

    def __init__(self, backend: Backend, *, broker_id: int, options: GatewayOptions | None = None,
                 client_host: str = "", peer: str = ""):
        self.backend = backend
        self.broker_id = broker_id
        self.options = options or GatewayOptions()
        self.client_host = client_host
        self.peer = peer or client_host or "?"
        self.client_id: str | None = None
        self.requests = 0
        # group id -> the rebalance timeout of this connection's last JoinGroup: how long a
        # SyncGroup may be held (SyncGroup carries no timeout of its own). Bounded.
        self.rebalance_ms: dict[str, int] = {}

    async def handle(self, frame: bytes) -> bytes | None:
        """The framed answer to one request frame (the bytes after its size prefix), or None
        when the request has no answer (a Produce with acks=0).

        Raises ProtocolError (and its subclasses) for a frame that must close the
        connection."""
        request = self._parse(frame)
        return _framed(request, await HANDLERS[request.api_key](self, request))

    def _parse(self, frame: bytes) -> wire.Request:
        request = wire.parse_request(frame)
        self.requests += 1
        if request.client_id is not None:
            self.client_id = request.client_id
        return request

    async def handle_run(self, frames: list[bytes]) -> tuple[list[bytes | None], ProtocolError | None]:
        """``(answers, error)`` for ``frames``: one request, or Produce requests that queued up on
        this connection (their partitions' batches appended together, each answered on its own).
        ``error``: a frame that must close the connection; the answers are those of the frames
        before it."""
        if len(frames) == 1:
            try:
                return [await self.handle(frames[0])], None
            except ProtocolError as exc:
                return [], exc
        requests, error = [], None
        for frame in frames:
            try:
                requests.append(self._parse(frame))
            except ProtocolError as exc:
                error = exc
                break
        bodies = await produce_run(self, requests) if requests else []
        return [_framed(r, body) for r, body in zip(requests, bodies)], error


def _framed(request: wire.Request, body) -> bytes | None:
    return None if body is None else wire.encode_response(request, body)


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, backend: Backend, *,
                           broker_id: int, options: GatewayOptions) -> None:
    """Serve one client connection until it closes or misbehaves (then log and close).

    Frames are read ahead (bounded: ``options.max_in_flight`` frames and about one
    ``max_request_bytes`` of them) while earlier ones are handled; answers are written in
    request order."""
    peername = writer.get_extra_info("peername")
    host = peername[0] if isinstance(peername, tuple) and peername else ""
    peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) and len(peername) >= 2 else str(peername)
    conn = Connection(backend, broker_id=broker_id, options=options, client_host=host, peer=peer)
    frames = _ReadAhead(options.max_in_flight, options.max_request_bytes)
    reading = asyncio.create_task(_read_frames(reader, frames, options.max_request_bytes))
    try:
        while True:
            frame = await frames.get()
            if frame is None:
                break
            if isinstance(frame, BaseException):
                log.warning("gateway: closing connection from %s: %s", conn.peer, frame)
                break
            run = [frame]
            while _is_produce(frame) and len(run) < MAX_PRODUCE_RUN and frames.next_is_produce():
                run.append(await frames.get())  # Produce requests that queued up: appended together
            try:
                answers, error = await conn.handle_run(run)
            finally:
                for f in run:
                    frames.done(f)
            for answer in answers:
                if answer is not None:
                    writer.write(answer)
            await writer.drain()
            if error is not None:
                log.warning("gateway: closing connection from %s (client %s): %s", conn.peer, conn.client_id, error)
                break
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        log.info("gateway: connection from %s lost: %r", conn.peer, exc)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("gateway: closing connection from %s (client %s) after an internal error", conn.peer,
                      conn.client_id)
    finally:
        reading.cancel()
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass


class _ReadAhead:
    """The frames read but not yet handled: no new frame is read while ``max_frames`` wait, or
    while those held add up to ``max_bytes`` or more (so one connection holds about two of its
    largest requests in memory, not ``max_frames`` of them). Items: frames, then None (the
    client closed) or the exception that ended reading."""

    def __init__(self, max_frames: int, max_bytes: int):
        self._items: collections.deque = collections.deque()
        self._max_frames, self._max_bytes = max_frames, max_bytes
        self._bytes = 0
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def _update(self) -> None:
        if self._bytes >= self._max_bytes or len(self._items) >= self._max_frames:
            self._room.clear()
        else:
            self._room.set()

    async def room(self) -> None:
        """Wait until another frame may be read."""
        await self._room.wait()

    async def put(self, item) -> None:
        if isinstance(item, bytes):
            self._bytes += len(item)
        self._items.append(item)
        self._ready.set()
        self._update()

    async def get(self):
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        self._update()
        return item

    def next_is_produce(self) -> bool:
        """Whether a Produce frame waits (it may join the run of the one being handled)."""
        return bool(self._items) and isinstance(self._items[0], bytes) and _is_produce(self._items[0])

    def done(self, frame: bytes) -> None:
        """``frame`` was handled: its bytes no longer count."""
        self._bytes -= len(frame)
        self._update()


def _is_produce(frame: bytes) -> bool:
    return len(frame) >= 2 and frame[0] == 0 and frame[1] == 0  # api key 0


async def _read_frames(reader: asyncio.StreamReader, frames: _ReadAhead, max_bytes: int) -> None:
    """Put each frame on ``frames``, then None at the client's close, or the error that ends it."""
    try:
        while True:
            await frames.room()  # before reading: a paused connection holds no further bytes
            frame = await wire.read_frame(reader, max_bytes)
            await frames.put(frame)
            if frame is None:
                return
    except asyncio.CancelledError:
        raise
    except (ProtocolError, ConnectionError, OSError) as exc:
        await frames.put(exc)
