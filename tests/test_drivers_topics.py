"""The topics hub with its in-process backend, with our asyncio clients on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest

from wsproto_core.drivers.asyncio import Server, WebSocket, connect, serve
from wsproto_core.drivers.broadcast import BroadcastResult
from wsproto_core.drivers.topics import Hub, LocalBackend, PublishError

T = TypeVar("T")


def run(test: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await test()

    return asyncio.run(main())


class Members:
    """A server whose connections are kept, in the order they opened, until they close."""

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
async def hub_and_server(**options: Any) -> AsyncIterator[tuple[Hub, Members, Server]]:
    members = Members()
    server = await serve(members.handler, "127.0.0.1", 0)
    try:
        async with Hub(**options) as hub:
            yield hub, members, server
    finally:
        await server.close()


def test_publish_reaches_the_subscribers_of_the_topic_only() -> None:
    async def test() -> None:
        async with hub_and_server() as (hub, members, server), contextlib.AsyncExitStack() as stack:
            url = f"ws://127.0.0.1:{server.port}/"
            clients = [await stack.enter_async_context(connect(url)) for _ in range(3)]
            a, b, c = [await members.nth(index) for index in range(3)]
            await hub.subscribe(a, "news")
            await hub.subscribe(b, "news")
            await hub.subscribe(b, "news")
            await hub.subscribe(c, "sport")
            assert hub.subscribers("news") == [a, b]
            assert hub.topics(b) == {"news"}
            await hub.publish("news", "headline")
            await hub.publish("sport", b"score")
            await hub.publish("weather", "nobody listens")
            assert [await clients[0].recv(), await clients[1].recv(), await clients[2].recv()] == [
                "headline",
                "headline",
                b"score",
            ]
            await hub.unsubscribe(a, "news")
            await hub.publish("news", "second")
            await hub.publish("sport", "to c")
            assert await clients[1].recv() == "second"
            assert await clients[2].recv() == "to c"
            # a got nothing since: its next message is the one sent to it directly.
            await a.send("direct")
            assert await clients[0].recv() == "direct"
            assert (hub.delivered, hub.missed) == (5, 0)

    run(test)


def test_subscriptions_are_dropped_when_a_connection_closes() -> None:
    async def test() -> None:
        async with hub_and_server() as (hub, members, server):
            url = f"ws://127.0.0.1:{server.port}/"
            async with connect(url) as staying:
                leaving = await connect(url)
                first, second = await members.nth(0), await members.nth(1)
                for topic in ("a", "b"):
                    await hub.subscribe(first, topic)
                    await hub.subscribe(second, topic)
                await leaving.close()
                await second.wait_closed()
                await hub.publish("a", "still here")
                assert await staying.recv() == "still here"
                # The hub's watcher of the closed one ran when it closed.
                assert hub.topics(second) == set()
                assert hub.subscribers("a") == [first]
                assert hub.subscribers("b") == [first]
                # A closed connection cannot subscribe again.
                await hub.subscribe(second, "a")
                assert hub.subscribers("a") == [first]

    run(test)


def test_unsubscribe_from_everything() -> None:
    async def test() -> None:
        async with hub_and_server() as (hub, members, server), connect(f"ws://127.0.0.1:{server.port}/") as client:
            member = await members.nth(0)
            await hub.subscribe(member, "x")
            await hub.subscribe(member, "y")
            await hub.unsubscribe(member)
            assert (hub.topics(member), hub.subscribers("x"), hub.subscribers("y")) == (set(), [], [])
            await hub.unsubscribe(member, "never")
            await hub.publish("x", "lost")
            await member.send("direct")
            assert await client.recv() == "direct"

    run(test)


def test_delivery_results_are_reported() -> None:
    async def test() -> None:
        reports: list[tuple[str, BroadcastResult[Any]]] = []

        def on_delivery(topic: str, result: BroadcastResult[Any]) -> None:
            reports.append((topic, result))
            raise RuntimeError("a failing callback is logged, not raised")

        async with hub_and_server(on_delivery=on_delivery) as (hub, members, server):
            async with connect(f"ws://127.0.0.1:{server.port}/") as client:
                member = await members.nth(0)
                await hub.subscribe(member, "t")
                await hub.publish("t", "one")
                assert await client.recv() == "one"
            await member.wait_closed()
            # Closed but not yet dropped, or dropped: either way nobody gets it.
            await hub.publish("t", "two")
        assert reports[0][0] == "t"
        assert reports[0][1].sent == 1

    run(test)


def test_publishing_on_a_hub_that_is_not_started_fails_clearly() -> None:
    async def test() -> None:
        with pytest.raises(PublishError, match="not started"):
            await Hub().publish("t", "x")
        backend = LocalBackend()
        async with Hub(backend):
            pass
        with pytest.raises(PublishError):
            await backend.publish("t", "x")

    run(test)
