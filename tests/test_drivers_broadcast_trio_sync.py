"""broadcast() on the trio and threads drivers, with real clients on 127.0.0.1.

The same contract as on asyncio (tests/test_drivers_broadcast.py): every
client gets every message in order, closed connections are reported, and a
client that completes the handshake and then stops reading (a 4 KiB receive
buffer) is skipped at its limit, or closed, while the others go on. Each test
stops every server and connection it starts.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import os
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import trio

from wsproto_core import PreparedMessage
from wsproto_core.drivers import sync as threads_driver
from wsproto_core.drivers import trio as trio_driver
from wsproto_core.drivers.broadcast import BroadcastResult, broadcast

T = TypeVar("T")

HANDSHAKE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def stalled_socket() -> socket.socket:
    """A client socket with a 4 KiB receive buffer, for a client that will stop reading."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


def handshake_request() -> bytes:
    return HANDSHAKE % base64.b64encode(os.urandom(16))


def sixteen_kib(index: int) -> bytes:
    return index.to_bytes(2, "big") * 8192


# ===================================================================== trio


def run_trio(test: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    async def main() -> T:
        with trio.fail_after(timeout):
            return await test()

    return trio.run(main)


class TrioRoom:
    """A trio server's handler that keeps every connection in ``members`` until it closes."""

    def __init__(self) -> None:
        self.members: list[trio_driver.WebSocket] = []
        self._joined = trio.Condition()

    async def handler(self, websocket: trio_driver.WebSocket) -> None:
        async with self._joined:
            self.members.append(websocket)
            self._joined.notify_all()
        await websocket.wait_closed()

    async def wait_for(self, count: int) -> None:
        async with self._joined:
            while len(self.members) < count:
                await self._joined.wait()


@contextlib.asynccontextmanager
async def trio_room(**options: Any) -> AsyncIterator[tuple[TrioRoom, str, trio_driver.Server]]:
    room = TrioRoom()
    async with trio.open_nursery() as nursery:
        server: trio_driver.Server = await nursery.start(
            functools.partial(trio_driver.serve, room.handler, "127.0.0.1", 0, **options)
        )
        try:
            yield room, f"ws://127.0.0.1:{server.port}/", server
        finally:
            await server.close()


@contextlib.asynccontextmanager
async def trio_stalled_client(port: int) -> AsyncIterator[None]:
    """A client that completes the handshake, then never reads again."""
    sock = trio.socket.from_stdlib_socket(stalled_socket())
    with sock:
        await sock.connect(("127.0.0.1", port))
        await sock.send(handshake_request())
        head = b""
        while b"\r\n\r\n" not in head:
            head += await sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101")
        yield


def test_trio_every_client_gets_every_message_in_order() -> None:
    async def test() -> None:
        async with trio_room() as (room, url, _), contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(trio_driver.connect(url)) for _ in range(2)]
            clients.append(await stack.enter_async_context(trio_driver.connect(url, compression=False)))
            await room.wait_for(3)
            sent: list[str | bytes] = [f"message {index} " + "é" * index for index in range(20)]
            sent += [b"\x00\xff" * 3000, sixteen_kib(7) * 10]
            for data in sent:
                result = broadcast(room.members, data)
                assert (result.sent, result.missed) == (3, [])
            # Sent before the broadcasts were written: still behind them.
            for member in room.members:
                await member.send("last")
            for client in clients:
                assert [await client.recv() for _ in sent] == [*sent]
                assert await client.recv() == "last"

    run_trio(test)


def test_trio_closed_connections_are_reported_not_sent_to() -> None:
    async def test() -> None:
        async with trio_room() as (room, url, _), trio_driver.connect(url) as staying:
            await room.wait_for(1)
            async with trio_driver.connect(url):
                await room.wait_for(2)
            gone = room.members[1]
            await gone.wait_closed()
            result = broadcast(room.members, PreparedMessage("after the close"))
            assert (result.sent, result.closed, result.missed) == (1, [gone], [gone])
            assert await staying.recv() == "after the close"

    run_trio(test)


async def trio_fill_until_full(
    room: TrioRoom, fast: trio_driver.WebSocket, slow: trio_driver.WebSocket, limit: int, **options: Any
) -> BroadcastResult[trio_driver.WebSocket]:
    """Broadcast 16 KiB messages, the fast client reading each, until the stalled one misses one."""
    for index in range(5000):
        result = broadcast(room.members, sixteen_kib(index), max_buffer_size=limit, **options)
        assert slow.outgoing_buffer_size <= limit
        assert await fast.recv() == sixteen_kib(index)
        if result.missed:
            return result
    raise AssertionError("the stalled client never filled its buffer")


def test_trio_a_stalled_client_is_skipped_at_its_limit_and_the_others_go_on() -> None:
    async def test() -> None:
        async with trio_room() as (room, url, server), trio_driver.connect(url, compression=False) as fast:
            await room.wait_for(1)
            async with trio_stalled_client(server.port):
                await room.wait_for(2)
                slow = room.members[1]
                limit = 64 * 1024
                result = await trio_fill_until_full(room, fast, slow, limit)
                assert (result.sent, result.skipped, result.evicted) == (1, [slow], [])
                for index in range(50):
                    result = broadcast(room.members, sixteen_kib(index), max_buffer_size=limit)
                    assert (result.sent, result.skipped) == (1, [slow])
                    assert limit - 16 * 1024 - 14 < slow.outgoing_buffer_size <= limit
                    assert await fast.recv() == sixteen_kib(index)
                assert not slow.closed

    run_trio(test)


def test_trio_a_stalled_client_can_be_closed_instead() -> None:
    async def test() -> None:
        async with trio_room(close_timeout=0.5) as (room, url, server), trio_driver.connect(url) as fast:
            await room.wait_for(1)
            async with trio_stalled_client(server.port):
                await room.wait_for(2)
                slow = room.members[1]
                result = await trio_fill_until_full(
                    room, fast, slow, 64 * 1024, when_full="close", close_code=1008, close_reason="keep up"
                )
                assert (result.sent, result.evicted, result.skipped) == (1, [slow], [])
                # While it closes, it is reported as closed, and closed only once.
                again = broadcast(room.members, b"x" * 60000, max_buffer_size=64 * 1024, when_full="close")
                assert (again.closed, again.evicted) == ([slow], [])
                assert await fast.recv() == b"x" * 60000
                # Its Close waits behind the full buffer; the close timeout ends it.
                await slow.wait_closed()
                assert broadcast(room.members, "after").closed == [slow]
                assert await fast.recv() == "after"

    run_trio(test)


# ================================================================== threads


class ThreadsRoom:
    """A threads server's handler that keeps every connection in ``members`` until it closes."""

    def __init__(self) -> None:
        self.members: list[threads_driver.WebSocket] = []
        self._joined = threading.Condition()

    def handler(self, websocket: threads_driver.WebSocket) -> None:
        with self._joined:
            self.members.append(websocket)
            self._joined.notify_all()
        websocket.wait_closed()

    def wait_for(self, count: int) -> None:
        with self._joined:
            assert self._joined.wait_for(lambda: len(self.members) >= count, timeout=10)


@contextlib.contextmanager
def threads_room(**options: Any) -> Iterator[tuple[ThreadsRoom, str, threads_driver.Server]]:
    room = ThreadsRoom()
    with threads_driver.serve(room.handler, "127.0.0.1", 0, **options) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield room, f"ws://127.0.0.1:{server.port}/", server
        finally:
            server.shutdown()
            thread.join(10)
    assert not thread.is_alive()


@contextlib.contextmanager
def threads_stalled_client(port: int) -> Iterator[None]:
    """A client that completes the handshake, then never reads again."""
    with stalled_socket() as sock:
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        sock.sendall(handshake_request())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101")
        yield


def test_threads_every_client_gets_every_message_in_order() -> None:
    with threads_room() as (room, url, _), contextlib.ExitStack() as stack:
        clients = [stack.enter_context(threads_driver.connect(url)) for _ in range(2)]
        clients.append(stack.enter_context(threads_driver.connect(url, compression=False)))
        room.wait_for(3)
        sent: list[str | bytes] = [f"message {index} " + "é" * index for index in range(20)]
        sent += [b"\x00\xff" * 3000, sixteen_kib(7) * 10]
        # Broadcasts from two threads at once, and sends of the application
        # in between: each thread's messages arrive whole and in its order.
        others = [f"other {index}" for index in range(20)]

        def broadcast_others() -> None:
            for data in others:
                assert broadcast(room.members, data).sent == 3
                for member in room.members:
                    member.send(data.upper())

        other_thread = threading.Thread(target=broadcast_others)
        other_thread.start()
        for data in sent:
            result = broadcast(room.members, data)
            assert (result.sent, result.missed) == (3, [])
        other_thread.join(10)
        for client in clients:
            received = [client.recv(10) for _ in range(len(sent) + 2 * len(others))]
            assert [data for data in received if data in sent] == sent
            assert [data for data in received if data in others] == others
            assert [data for data in received if isinstance(data, str) and data.isupper()] == [
                data.upper() for data in others
            ]


def test_threads_closed_connections_are_reported_not_sent_to() -> None:
    with threads_room() as (room, url, _), threads_driver.connect(url) as staying:
        room.wait_for(1)
        with threads_driver.connect(url):
            room.wait_for(2)
        gone = room.members[1]
        assert gone.wait_closed(10)
        result = broadcast(room.members, "after the close")
        assert (result.sent, result.closed, result.missed) == (1, [gone], [gone])
        assert staying.recv(10) == "after the close"


def threads_fill_until_full(
    room: ThreadsRoom, fast: threads_driver.WebSocket, slow: threads_driver.WebSocket, limit: int, **options: Any
) -> BroadcastResult[threads_driver.WebSocket]:
    """Broadcast 16 KiB messages, the fast client reading each, until the stalled one misses one."""
    for index in range(5000):
        result = broadcast(room.members, sixteen_kib(index), max_buffer_size=limit, **options)
        assert slow.outgoing_buffer_size <= limit
        assert fast.recv(10) == sixteen_kib(index)
        if result.missed:
            return result
    raise AssertionError("the stalled client never filled its buffer")


def test_threads_a_stalled_client_is_skipped_at_its_limit_and_the_others_go_on() -> None:
    with (
        threads_room() as (room, url, server),
        threads_driver.connect(url, compression=False) as fast,
    ):
        room.wait_for(1)
        with threads_stalled_client(server.port):
            room.wait_for(2)
            slow = room.members[1]
            limit = 64 * 1024
            result = threads_fill_until_full(room, fast, slow, limit)
            assert (result.sent, result.skipped, result.evicted) == (1, [slow], [])
            for index in range(50):
                result = broadcast(room.members, sixteen_kib(index), max_buffer_size=limit)
                assert (result.sent, result.skipped) == (1, [slow])
                assert slow.outgoing_buffer_size <= limit
                assert fast.recv(10) == sixteen_kib(index)
            assert not slow.closed


def test_threads_a_stalled_client_can_be_closed_instead() -> None:
    with threads_room(close_timeout=0.5) as (room, url, server), threads_driver.connect(url) as fast:
        room.wait_for(1)
        with threads_stalled_client(server.port):
            room.wait_for(2)
            slow = room.members[1]
            result = threads_fill_until_full(room, fast, slow, 64 * 1024, when_full="close", close_code=1008)
            assert (result.sent, result.evicted, result.skipped) == (1, [slow], [])
            again = broadcast(room.members, b"x" * 60000, max_buffer_size=64 * 1024, when_full="close")
            assert (again.closed, again.evicted) == ([slow], [])
            assert fast.recv(10) == b"x" * 60000
            # Its Close waits behind the full buffer; the close timeout ends it.
            assert slow.wait_closed(10)
            assert broadcast(room.members, "after").closed == [slow]
            assert fast.recv(10) == "after"


@pytest.mark.parametrize("driver", ["trio", "threads"])
def test_a_prepared_message_is_encoded_once_for_every_driver(driver: str) -> None:
    message = PreparedMessage("shared " * 100, compress_with_context=False)

    async def trio_test() -> None:
        async with (
            trio_room() as (room, url, _),
            trio_driver.connect(url) as compressed,
            trio_driver.connect(url, compression=False) as plain,
        ):
            await room.wait_for(2)
            assert broadcast(room.members, message).sent == 2
            assert [await compressed.recv(), await plain.recv()] == [message.data] * 2

    if driver == "trio":
        run_trio(trio_test)
    else:
        with (
            threads_room() as (room, url, _),
            threads_driver.connect(url) as compressed,
            threads_driver.connect(url, compression=False) as plain,
        ):
            room.wait_for(2)
            assert broadcast(room.members, message).sent == 2
            assert [compressed.recv(10), plain.recv(10)] == [message.data] * 2
    # Our servers keep their compression context: compress_with_context=False
    # sent the compressed connection the message uncompressed.
    assert message.compressions == 0
