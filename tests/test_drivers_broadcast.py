"""broadcast() on the asyncio driver, with real clients on 127.0.0.1.

Clients: ours, websockets' (with and without permessage-deflate, so that
both wire forms are taken), and a hand-written client that completes the
handshake and then stops reading, with a small receive buffer, to play the
slow consumer. Each test stops every server and connection it starts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
import websockets.asyncio.client

from wsproto_core import PreparedMessage
from wsproto_core.drivers.asyncio import Server, WebSocket, connect, serve
from wsproto_core.drivers.broadcast import BroadcastResult, broadcast

T = TypeVar("T")


def run(test: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await test()

    return asyncio.run(main())


class Room:
    """A server whose handler keeps every connection in ``members`` until it closes."""

    def __init__(self) -> None:
        self.members: list[WebSocket] = []
        self._joined = asyncio.Condition()

    async def handler(self, websocket: WebSocket) -> None:
        async with self._joined:
            self.members.append(websocket)
            self._joined.notify_all()
        await websocket.wait_closed()

    async def wait_for(self, count: int) -> None:
        async with self._joined:
            await self._joined.wait_for(lambda: len(self.members) >= count)


@contextlib.asynccontextmanager
async def room_server(**options: Any) -> AsyncIterator[tuple[Room, Server]]:
    room = Room()
    server = await serve(room.handler, "127.0.0.1", 0, **options)
    try:
        yield room, server
    finally:
        await server.close()


async def stalled_client(port: int) -> tuple[socket.socket, asyncio.StreamWriter]:
    """A client that completes the handshake, then never reads again (a 4 KiB receive buffer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    key = base64.b64encode(os.urandom(16))
    writer.write(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    return sock, writer


def test_every_client_gets_every_message_in_order() -> None:
    async def test() -> None:
        async with room_server() as (room, server):
            url = f"ws://127.0.0.1:{server.port}/"
            async with contextlib.AsyncExitStack() as stack:
                ours = [await stack.enter_async_context(connect(url)) for _ in range(3)]
                theirs = [
                    await stack.enter_async_context(websockets.asyncio.client.connect(url, compression=compression))
                    for compression in ("deflate", None, None)
                ]
                await room.wait_for(6)
                sent = [f"message {index} " + "é" * index for index in range(20)] + [b"\x00\xff" * 3000]
                for data in sent:
                    result = broadcast(room.members, data)
                    assert (result.sent, result.missed) == (6, [])
                for client in ours:
                    assert [await client.recv() for _ in sent] == sent
                for their in theirs:
                    assert [await their.recv() for _ in sent] == sent

    run(test)


def test_a_prepared_message_and_compression_choices() -> None:
    async def test() -> None:
        async with room_server() as (room, server):
            url = f"ws://127.0.0.1:{server.port}/"
            async with connect(url) as compressed, connect(url, compression=False) as plain:
                await room.wait_for(2)
                message = PreparedMessage("shared " * 100, compress_with_context=False)
                assert broadcast(room.members, message).sent == 2
                # Our server keeps its compression context: compress_with_context=False
                # sent it uncompressed, so no compression happened at all.
                assert message.compressions == 0
                assert broadcast(room.members, "again " * 100).sent == 2
                for client in (compressed, plain):
                    assert [await client.recv(), await client.recv()] == [message.data, "again " * 100]

    run(test)


def test_closed_connections_are_reported_not_sent_to() -> None:
    async def test() -> None:
        async with room_server() as (room, server):
            url = f"ws://127.0.0.1:{server.port}/"
            async with connect(url) as staying:
                await room.wait_for(1)
                leaving = await connect(url)
                await room.wait_for(2)
                gone = room.members[1]
                await leaving.close()
                await gone.wait_closed()
                result = broadcast(room.members, "after the close")
                assert result.sent == 1
                assert result.closed == [gone]
                assert result.missed == [gone]
                assert await staying.recv() == "after the close"

    run(test)


async def fill_until_full(
    room: Room, fast: WebSocket, slow_member: WebSocket, limit: int, **options: Any
) -> tuple[BroadcastResult[WebSocket], int]:
    """Broadcast 16 KiB messages, the fast client reading each, until the slow one misses one."""
    payload = os.urandom(16 * 1024)
    for count in range(1, 5000):
        result = broadcast(room.members, payload, max_buffer_size=limit, **options)
        assert slow_member.outgoing_buffer_size <= limit
        assert await fast.recv() == payload
        if result.missed:
            return result, count
    raise AssertionError("the stalled client never filled its buffer")


@contextlib.asynccontextmanager
async def fast_and_stalled(**options: Any) -> AsyncIterator[tuple[Room, WebSocket, WebSocket]]:
    """A room with a client that reads everything and one that stalled: (room, fast client, stalled member)."""
    async with contextlib.AsyncExitStack() as stack:
        room, server = await stack.enter_async_context(room_server(**options))
        fast = await stack.enter_async_context(connect(f"ws://127.0.0.1:{server.port}/", compression=False))
        await room.wait_for(1)
        sock, writer = await stalled_client(server.port)
        try:
            await room.wait_for(2)
            yield room, fast, room.members[1]
        finally:
            writer.transport.abort()
            sock.close()


def test_a_stalled_client_is_skipped_at_its_limit_and_the_others_go_on() -> None:
    async def test() -> None:
        async with fast_and_stalled() as (room, fast, slow_member):
            limit = 64 * 1024
            result, _ = await fill_until_full(room, fast, slow_member, limit)
            assert (result.sent, result.skipped, result.evicted) == (1, [slow_member], [])
            # It stays open and at its limit; the others keep receiving.
            for index in range(50):
                payload = index.to_bytes(2, "big") * 8192
                result = broadcast(room.members, payload, max_buffer_size=limit)
                assert result.sent == 1
                assert result.skipped == [slow_member]
                assert limit - len(payload) - 14 < slow_member.outgoing_buffer_size <= limit
                assert await fast.recv() == payload
            assert not slow_member.closed

    run(test)


def test_a_stalled_client_can_be_closed_instead() -> None:
    async def test() -> None:
        async with fast_and_stalled(close_timeout=0.5) as (room, fast, slow_member):
            result, _ = await fill_until_full(room, fast, slow_member, 64 * 1024, when_full="close", close_code=1008)
            assert (result.sent, result.evicted, result.skipped) == (1, [slow_member], [])
            # While it closes, it is reported as closed, and closed only once.
            again = broadcast(room.members, b"x" * 60000, max_buffer_size=64 * 1024, when_full="close")
            assert (again.closed, again.evicted) == ([slow_member], [])
            await fast.recv()
            # Its Close waits behind the full buffer; the close timeout ends it.
            await slow_member.wait_closed()
            assert broadcast(room.members, "after").closed == [slow_member]
            assert await fast.recv() == "after"

    run(test)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"when_full": "drop"}, "when_full"),
        ({"max_buffer_size": -1}, "max_buffer_size"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        broadcast([], "x", **options)


def test_one_message_per_iteration_is_written_at_once_a_burst_at_the_iteration_end() -> None:
    async def test() -> None:
        async with room_server() as (room, server), connect(f"ws://127.0.0.1:{server.port}/") as client:
            await room.wait_for(1)
            member = room.members[0]
            sent: list[str] = []

            def send(text: str) -> int:
                sent.append(text)
                assert broadcast(room.members, text).sent == 1
                return member.outgoing_buffer_size

            # A fresh loop guesses one message per iteration: written in the call.
            assert send("alone") == 0
            # A second one in the same iteration waits for the iteration's end, ...
            assert send("second") > 0
            await asyncio.sleep(0)
            assert member.outgoing_buffer_size == 0
            # ... and so does the first one of the next iteration, after a burst.
            assert send("after a burst") > 0
            await asyncio.sleep(0)
            # That iteration had one broadcast: the next one goes out at once again.
            assert send("alone again") == 0
            assert [await client.recv() for _ in sent] == sent

    run(test)
