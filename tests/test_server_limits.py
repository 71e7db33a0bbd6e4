"""A server's limits under attack, with real sockets on 127.0.0.1 (asyncio driver).

The policy (:func:`~wsproto_core.drivers._common.admission_refusal`,
:func:`~wsproto_core.drivers._common.send_buffer_full`) is shared by the
drivers; these tests hold the asyncio driver to it: a cap on handshakes and on
connections answered with 503 and ``Retry-After``, a bounded handshake, the
handshake timeout at scale, a bounded outgoing buffer for ``send_nowait``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import trio
import trio.testing

from wsproto_core.drivers import ConnectionClosed, HandshakeRejected, Settings, sync
from wsproto_core.drivers import trio as trio_driver
from wsproto_core.drivers._common import DEFAULT_MAX_HANDSHAKES, ServerOpening, admission_refusal, send_buffer_full
from wsproto_core.drivers.asyncio import Listener, WebSocket, connect, serve, serve_listener
from wsproto_core.handshake import DEFAULT_MAX_HANDSHAKE_SIZE

T = TypeVar("T")
UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def run(test: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await test()

    return asyncio.run(main())


async def echo(websocket: WebSocket) -> None:
    async for message in websocket:
        await websocket.send(message)


async def read_response(port: int, request: bytes = UPGRADE) -> bytes:
    """Send ``request`` on a fresh connection; return everything the server sent before closing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await reader.read()
    finally:
        writer.close()


def test_policy_admits_below_the_caps_and_answers_503_with_retry_after_at_them() -> None:
    settings = Settings(max_handshakes=3, max_connections=5, retry_after=7)
    assert admission_refusal(settings, handshaking=2, connections=4) is None
    for counts in ({"handshaking": 3, "connections": 3}, {"handshaking": 0, "connections": 5}):
        answer = admission_refusal(settings, **counts)
        assert answer is not None
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 ")
        assert b"\r\nRetry-After: 7" in head
        assert f"Content-Length: {len(body)}".encode() in head
    unlimited = Settings(max_handshakes=None, max_connections=None)
    assert admission_refusal(unlimited, handshaking=10**6, connections=10**6) is None
    assert Settings().max_handshakes == DEFAULT_MAX_HANDSHAKES


def test_send_buffer_policy() -> None:
    assert not send_buffer_full(Settings(max_send_buffer=100), 99)
    assert send_buffer_full(Settings(max_send_buffer=100), 100)
    assert not send_buffer_full(Settings(max_send_buffer=None), 10**12)


def test_connections_beyond_the_handshake_cap_get_503_and_the_cap_frees_up() -> None:
    async def test() -> None:
        server = await serve(echo, "127.0.0.1", 0, max_handshakes=2, retry_after=3)
        try:
            # Two silent sockets occupy both handshake slots (the backlog is
            # accepted in order, so they are counted before the third).
            silent = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
            answer = await read_response(server.port)
            assert answer.startswith(b"HTTP/1.1 503 ")
            assert b"Retry-After: 3\r\n" in answer
            with pytest.raises(HandshakeRejected) as rejected:
                await connect(f"ws://127.0.0.1:{server.port}/")
            assert rejected.value.status_code == 503
            # A slot frees up when a handshake ends: then clients are served.
            for reader, writer in silent:
                writer.close()
                assert await reader.read() == b""
            # Our client's connection is accepted after the server saw both
            # ends (each read above returned once the server had closed).
            websocket = await connect(f"ws://127.0.0.1:{server.port}/")
            await websocket.send("served")
            assert await websocket.recv() == "served"
            await websocket.close()
        finally:
            await server.close()

    run(test)


def test_connections_beyond_the_connection_cap_get_503_while_open_ones_keep_working() -> None:
    async def test() -> None:
        server = await serve(echo, "127.0.0.1", 0, max_connections=2)
        try:
            first = await connect(f"ws://127.0.0.1:{server.port}/")
            second = await connect(f"ws://127.0.0.1:{server.port}/")
            with pytest.raises(HandshakeRejected) as rejected:
                await connect(f"ws://127.0.0.1:{server.port}/")
            assert rejected.value.status_code == 503
            assert (b"retry-after", b"10") in rejected.value.headers
            for websocket in (first, second):
                await websocket.send(b"still open")
                assert await websocket.recv() == b"still open"
                await websocket.close()
        finally:
            await server.close()

    run(test)


def test_a_handshake_that_never_ends_its_head_is_refused_after_a_bounded_read() -> None:
    async def test() -> None:
        server = await serve(echo, "127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            limit = 64 * 1024 * 1024
            sent = 0

            async def fill() -> None:
                # One endless header line, far beyond the 16 KiB head limit.
                nonlocal sent
                writer.write(UPGRADE[:-2] + b"X-Filler: ")
                while sent < limit:
                    writer.write(b"x" * 65536)
                    sent += 65536
                    await writer.drain()

            filling = asyncio.create_task(fill())
            answer = await reader.read()
            filling.cancel()
            await asyncio.gather(filling, return_exceptions=True)
            writer.close()
            assert answer.startswith(b"HTTP/1.1 431 ")
            assert sent < limit
        finally:
            await server.close()

    run(test)


def test_the_handshake_timeout_closes_hundreds_of_silent_sockets_and_the_server_still_serves() -> None:
    async def test() -> None:
        server = await serve(echo, "127.0.0.1", 0, open_timeout=0.5)
        try:
            silent = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(200)]
            # Every silent socket is closed by the server (EOF or reset), none by us.
            for reader, writer in silent:
                with contextlib.suppress(ConnectionResetError):
                    assert await reader.read() == b""
                writer.close()
            async with connect(f"ws://127.0.0.1:{server.port}/") as websocket:
                await websocket.send("after the storm")
                assert await websocket.recv() == "after the storm"
        finally:
            await server.close()

    run(test, timeout=60)


def test_send_nowait_to_a_peer_that_does_not_read_drops_it_once_the_buffer_is_full() -> None:
    outcome: dict[str, Any] = {}
    closed = asyncio.Event()

    class Flooder(Listener):
        def on_message(self, websocket: WebSocket, message: str | bytes) -> None:
            # A broadcast to a client that reads nothing: far more than the
            # 1 MiB allowed, queued without waiting.
            try:
                for _ in range(64):
                    websocket.send_nowait(b"z" * 65536)
            except ConnectionClosed as closed:
                outcome["raised"] = closed.code

        def on_close(self, websocket: WebSocket) -> None:
            outcome["code"] = websocket.close_code
            closed.set()

    async def test() -> None:
        server = await serve_listener(Flooder, "127.0.0.1", 0, max_send_buffer=1024 * 1024)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port, limit=1024)
            writer.write(UPGRADE)
            await reader.readuntil(b"\r\n\r\n")
            # A masked binary frame "go" (mask key 0: the payload is sent as is).
            writer.write(b"\x82\x82\x00\x00\x00\x00go")
            await writer.drain()
            # We never read again; the server must drop us instead of buffering 4 MiB.
            await closed.wait()
            writer.close()
        finally:
            await server.close()

    run(test)
    assert outcome == {"raised": 1006, "code": 1006}


# ------------------------------------------------------------------ the shared handshake reader


@pytest.mark.parametrize("ending", [b"\r\n", b"\n"])
def test_a_head_fed_one_byte_at_a_time_is_decided_only_at_its_end_and_as_if_whole(ending: bytes) -> None:
    request = UPGRADE.replace(b"\r\n", ending) + b"\x81\x80\x00\x00\x00\x00"  # a frame right behind it
    whole = ServerOpening(Settings(), None)
    assert whole.receive(request)
    trickled = ServerOpening(Settings(), None)
    end = request.index(ending + ending) + 2 * len(ending)
    for index in range(len(request)):
        decided = trickled.receive(request[index : index + 1])
        assert decided is (index == end - 1)
        if decided:
            trickled.receive(request[end:])
            break
    assert trickled.request is not None and whole.request is not None
    assert trickled.request.target == whole.request.target == "/"
    assert trickled.connection.handshake.request_head == whole.connection.handshake.request_head


def test_a_head_longer_than_the_limit_is_refused_with_431_once_it_passes_the_limit() -> None:
    opening = ServerOpening(Settings(), None)
    line = b"X-Filler: " + b"x" * 1000 + b"\r\n"
    assert not opening.receive(UPGRADE[:-2])
    fed = len(UPGRADE) - 2
    while not opening.receive(line):
        fed += len(line)
        assert fed <= DEFAULT_MAX_HANDSHAKE_SIZE
    assert opening.request is None
    assert opening.response.startswith(b"HTTP/1.1 431 ")


# ------------------------------------------------------------------ the other drivers


def test_the_thread_driver_answers_503_beyond_its_connection_cap() -> None:
    def handler(websocket: sync.WebSocket) -> None:
        for message in websocket:
            websocket.send(message)

    with sync.serve(handler, "127.0.0.1", 0, max_connections=1) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with sync.connect(f"ws://127.0.0.1:{server.port}/") as first:
                with pytest.raises(HandshakeRejected) as rejected:
                    sync.connect(f"ws://127.0.0.1:{server.port}/", open_timeout=10)
                assert rejected.value.status_code == 503
                first.send("still served")
                assert first.recv() == "still served"
        finally:
            server.shutdown()
            thread.join(10)
    assert not thread.is_alive()


def test_the_trio_driver_answers_503_beyond_its_handshake_cap() -> None:
    async def handler(websocket: trio_driver.WebSocket) -> None:
        async for message in websocket:
            await websocket.send(message)

    async def test() -> None:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                functools.partial(trio_driver.serve, handler, "127.0.0.1", 0, max_handshakes=1)
            )
            try:
                silent = await trio.open_tcp_stream("127.0.0.1", server.port)
                # Once every task waits, the server has accepted the silent
                # stream, which holds the only handshake slot.
                await trio.testing.wait_all_tasks_blocked()
                with pytest.raises(HandshakeRejected) as rejected:
                    async with trio_driver.connect(f"ws://127.0.0.1:{server.port}/"):
                        pass
                assert rejected.value.status_code == 503
                await silent.aclose()
            finally:
                await server.close()

    async def bounded() -> None:
        with trio.fail_after(30):
            await test()

    trio.run(bounded)
