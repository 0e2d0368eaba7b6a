"""A gateway on 127.0.0.1 (port 0) over the fake backend, its asyncio loop in a thread, for tests
that talk to it with real Kafka clients."""

from __future__ import annotations

import asyncio
import threading

from gateway_fakes import FakeBackend

from rayka.gateway.session import GatewayOptions, serve_connection


class GatewayThread:
    """``with GatewayThread() as gw:`` serves until the block ends; ``gw.port``, ``gw.backend``."""

    def __init__(self, options: GatewayOptions | None = None):
        self.options = options or GatewayOptions()
        self.backend: FakeBackend | None = None
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="gateway-test")

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()

    async def _start(self):
        self.backend = FakeBackend()

        async def client(reader, writer):
            await serve_connection(reader, writer, self.backend, broker_id=0, options=self.options)

        self.server = await asyncio.start_server(client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        self.backend.broker_list[0] = type(self.backend.broker_list[0])(0, "127.0.0.1", self.port)

    def call(self, coro, timeout=10):
        """Run ``coro`` on the gateway's loop (the fake backend is not thread-safe)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self):
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the test gateway did not start")
        return self

    def __exit__(self, *exc):
        async def stop():
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"
