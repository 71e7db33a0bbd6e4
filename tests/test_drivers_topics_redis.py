"""The topics hub on Redis pub/sub, against a real redis-server.

The server's URL comes from ``WSPROTO_CORE_REDIS_URL``: ``.ci/run`` starts
Debian's redis-server on 127.0.0.1 on a free port and exports it. Without it
these tests skip, except under CI, where they fail: CI must run them. For a
local run, start ``redis-server --port P --save ''`` and export the URL.

Two hubs in one test are two processes as far as Redis is concerned (each has
its own connections); ``tests/test_cli_chat.py`` runs real separate
processes. Each test uses channel names of its own. "Redis goes away" is a
TCP proxy between one hub and Redis that the test cuts and restores.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest

from wsproto_core.drivers.asyncio import Server, WebSocket, connect, serve
from wsproto_core.drivers.topics import Hub, PublishError
from wsproto_core.drivers.topics_redis import RedisBackend

T = TypeVar("T")


def run(test: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await test()

    return asyncio.run(main())


class Members:
    def __init__(self) -> None:
        self.list: list[WebSocket] = []
        self._joined = asyncio.Condition()

    async def handler(self, websocket: WebSocket) -> None:
        async with self._joined:
            self.list.append(websocket)
            self._joined.notify_all()
        await websocket.wait_closed()

    async def nth(self, index: int) -> WebSocket:
        async with self._joined:
            await self._joined.wait_for(lambda: len(self.list) > index)
        return self.list[index]


@contextlib.asynccontextmanager
async def process(url: str, prefix: str, **options: Any) -> AsyncIterator[tuple[Hub, Members, Server, RedisBackend]]:
    """One "server process": a WebSocket server and its hub on a Redis backend."""
    members = Members()
    server = await serve(members.handler, "127.0.0.1", 0)
    backend = RedisBackend(url, channel_prefix=prefix, reconnect_delay=0.05, **options)
    try:
        async with Hub(backend) as hub:
            yield hub, members, server, backend
    finally:
        await server.close()


def test_messages_reach_every_process_once_in_each_publishers_order(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex}:"

    async def test() -> None:
        async with (
            process(redis_url, prefix) as (hub_a, members_a, server_a, _),
            process(redis_url, prefix) as (hub_b, members_b, server_b, _),
            contextlib.AsyncExitStack() as stack,
        ):
            clients = []
            for hub, members, server in ((hub_a, members_a, server_a), (hub_b, members_b, server_b)):
                for index in range(3):
                    clients.append(await stack.enter_async_context(connect(f"ws://127.0.0.1:{server.port}/")))
                    await hub.subscribe(await members.nth(index), "room")
            # A subscriber of another topic gets nothing of "room".
            other = await stack.enter_async_context(connect(f"ws://127.0.0.1:{server_b.port}/"))
            await hub_b.subscribe(await members_b.nth(3), "elsewhere")

            count = 200

            async def publish_all(hub: Hub, name: str) -> None:
                for index in range(count):
                    await hub.publish("room", f"{name} {index}")

            await asyncio.gather(publish_all(hub_a, "a"), publish_all(hub_b, "b"), hub_a.publish("room", b"\x00\xff"))
            await hub_b.publish("elsewhere", "only for other")
            orders = []
            for client in clients:
                received = [await client.recv() for _ in range(2 * count + 1)]
                assert received.count(b"\x00\xff") == 1
                for name in ("a", "b"):
                    # Once each, in the order its publisher sent them.
                    assert [m for m in received if isinstance(m, str) and m.startswith(name)] == [
                        f"{name} {index}" for index in range(count)
                    ]
                orders.append(received)
            # Every subscriber, in either process, saw the same interleaving.
            assert all(order == orders[0] for order in orders)
            assert await other.recv() == "only for other"

    run(test)


def test_unsubscribed_topics_stop_arriving(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex}:"

    async def test() -> None:
        async with (
            process(redis_url, prefix) as (hub_a, members_a, server_a, _),
            process(redis_url, prefix) as (hub_b, _, _, _),
            connect(f"ws://127.0.0.1:{server_a.port}/") as client,
        ):
            member = await members_a.nth(0)
            await hub_a.subscribe(member, "one")
            await hub_a.subscribe(member, "two")
            await hub_a.unsubscribe(member, "one")
            await hub_b.publish("one", "not for us")
            await hub_b.publish("two", "for us")
            assert await client.recv() == "for us"

    run(test)


class CuttableProxy:
    """A TCP proxy to Redis that the test can cut (drop every connection, refuse new ones) and restore."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.up = True
        self._pipes: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.transport.abort()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self._pipes.update((writer, upstream_writer))

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))
        self._pipes.difference_update((writer, upstream_writer))

    def cut(self) -> None:
        self.up = False
        for writer in list(self._pipes):
            writer.transport.abort()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def test_redis_going_away_publishing_fails_and_subscribers_resubscribe(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex}:"
    parts = urlsplit(redis_url)

    async def test() -> None:
        proxy = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 6379)
        port = await proxy.start()
        changes: asyncio.Queue[bool] = asyncio.Queue()
        try:
            async with (
                process(f"redis://127.0.0.1:{port}{parts.path}", prefix, on_connection_change=changes.put_nowait) as (
                    hub_a,
                    members_a,
                    server_a,
                    backend_a,
                ),
                process(redis_url, prefix) as (hub_b, _, _, _),
                connect(f"ws://127.0.0.1:{server_a.port}/") as client,
            ):
                assert await changes.get() is True
                await hub_a.subscribe(await members_a.nth(0), "room")
                await hub_b.publish("room", "before")
                assert await client.recv() == "before"

                proxy.cut()
                assert await changes.get() is False
                assert not backend_a.connected
                with pytest.raises(PublishError, match="unavailable"):
                    await hub_a.publish("room", "while away")
                # Published elsewhere while this process is away: lost for it (the loss window).
                await hub_b.publish("room", "lost")

                proxy.up = True
                assert await changes.get() is True
                await backend_a.wait_connected()
                assert backend_a.reconnections == 1
                await hub_b.publish("room", "after")
                await hub_a.publish("room", "from a again")
                assert await client.recv() == "after"
                assert await client.recv() == "from a again"
        finally:
            await proxy.close()

    run(test)


def test_start_fails_clearly_when_redis_cannot_be_reached() -> None:
    async def test() -> None:
        # A port nothing listens on: bind one, then close it.
        probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()
        hub = Hub(RedisBackend(f"redis://127.0.0.1:{port}/0", connect_timeout=0.5))
        with pytest.raises(ConnectionError, match="cannot be reached"):
            await hub.start()
        with pytest.raises(PublishError, match="not started"):
            await hub.publish("t", "x")

    run(test)
