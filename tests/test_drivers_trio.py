"""The trio driver against real peers on 127.0.0.1: the ``websockets`` library as
server and as client (in threads), hand-written silent peers, TLS with a
throwaway CA, and our own client against our own server.

Each test runs its own ``trio.run`` under a deadline; every server and thread it
starts is stopped before it returns.
"""

from __future__ import annotations

import functools
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
import trio
import trio.testing
import websockets.exceptions
import websockets.sync.client
from driver_peers import (
    MiB,
    frame,
    hangup_server,
    http_get,
    mute_server,
    raw_server,
    read_until_eof,
    rude_server,
    silent_server,
    tls_contexts,
    websockets_echo,
    websockets_server,
)

from wsproto_core.drivers import ConnectionClosed, HandshakeRejected, HttpResponse, InvalidURL
from wsproto_core.drivers.trio import Server, WebSocket, connect, serve
from wsproto_core.errors import LocalProtocolError

T = TypeVar("T")


def run(test: Callable[[], Awaitable[T]], timeout: float = 10.0) -> T:
    async def main() -> T:
        with trio.fail_after(timeout):
            return await test()

    return trio.run(main)


@asynccontextmanager
async def our_server(handler: Callable[[WebSocket], Awaitable[None]], **kwargs: Any) -> AsyncIterator[Server]:
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(functools.partial(serve, handler, "127.0.0.1", 0, **kwargs))
        try:
            yield server
        finally:
            await server.close()


async def echo(websocket: WebSocket) -> None:
    async for message in websocket:
        await websocket.send(message)


def page(target: str, headers: list[tuple[bytes, bytes]]) -> HttpResponse | None:
    if target == "/":
        return HttpResponse(200, [(b"content-type", b"text/plain")], b"a page")
    if target == "/forbidden":
        return HttpResponse(403, [], b"nope")
    if target == "/big":
        return HttpResponse(403, [], b"no" * 150_000)
    return None


# ============================================================== our client, websockets server


def test_client_against_websockets_server() -> None:
    record: dict[str, Any] = {}

    async def main() -> None:
        with websockets_server(websockets_echo(record), subprotocols=["chat"], max_size=None) as port:
            async with connect(f"ws://127.0.0.1:{port}/path?q=1", subprotocols=["superchat", "chat"]) as ws:
                assert ws.subprotocol == "chat"
                await ws.send("héllo")
                assert await ws.recv() == "héllo"
                await ws.send(b"\x00\xff")
                assert await ws.recv() == b"\x00\xff"
                big = bytes(range(256)) * (MiB // 256)
                await ws.send(big)
                assert await ws.recv() == big
                await ws.send("x" * MiB)
                assert await ws.recv() == "x" * MiB
                waiter = await ws.ping(b"abc")
                await waiter
                assert waiter.is_set()
                await ws.close(4000, "bye")
                assert ws.closed
            assert ws.close_code == 4000
            assert ws.close_reason == "bye"
        assert record == {
            "path": "/path?q=1",
            "subprotocol": "chat",
            "extensions": ["permessage-deflate"],
            "close_code": 4000,
            "close_reason": "bye",
        }

    run(main)


def test_websockets_server_close_code_reaches_client() -> None:
    def closer(connection: Any) -> None:
        connection.close(4001, "done")

    async def main() -> None:
        with websockets_server(closer) as port:
            async with connect(f"ws://127.0.0.1:{port}/") as ws:
                with pytest.raises(ConnectionClosed) as caught:
                    async for _ in ws:
                        pass
                assert (caught.value.code, caught.value.reason) == (4001, "done")
                assert not caught.value.normal
                with pytest.raises(ConnectionClosed):
                    await ws.send("late")
                with pytest.raises(ConnectionClosed):
                    await ws.ping()
            assert (ws.close_code, ws.close_reason) == (4001, "done")

    run(main)


def test_normal_close_from_server_ends_iteration() -> None:
    def one_message(connection: Any) -> None:
        connection.send("only")
        connection.close()

    async def main() -> None:
        with websockets_server(one_message) as port:
            async with connect(f"ws://127.0.0.1:{port}/", compression=False) as ws:
                assert [message async for message in ws] == ["only"]
            assert ws.close_code == 1000

    run(main)


def test_backpressure_keeps_every_message_in_order() -> None:
    messages = [bytes([index]) * 100_000 for index in range(50)]

    def burst(connection: Any) -> None:
        for message in messages:
            connection.send(message)
        connection.recv()

    async def main() -> None:
        with websockets_server(burst, compression=None) as port:
            async with connect(f"ws://127.0.0.1:{port}/", max_queue=1) as ws:
                received = []
                for _ in messages:
                    received.append(await ws.recv())
                    # The reader stops once one message waits (one more may be in the read that filled the queue).
                    assert len(ws._messages) <= 2
                assert received == messages
                await ws.send("done")

    run(main)


def test_close_with_a_full_queue_still_reads_the_reply() -> None:
    def burst(connection: Any) -> None:
        for index in range(10):
            connection.send(f"message {index}")
        for _ in connection:
            pass

    async def main() -> None:
        with websockets_server(burst) as port:
            # No close timeout: close() can only return by reading the reply,
            # past the queued messages (run()'s guard fails a hang).
            async with connect(f"ws://127.0.0.1:{port}/", max_queue=1, close_timeout=None) as ws:
                assert await ws.recv() == "message 0"  # The others came with it, or follow: the queue is full.
                await ws.close()
            assert ws.close_code == 1000

    run(main)


def test_handshake_rejected_by_websockets_server() -> None:
    def refuse(connection: Any, request: Any) -> Any:
        return connection.respond(403, "go away")

    async def main() -> None:
        with (
            websockets_server(websockets_echo({}), process_request=refuse) as port,
            pytest.raises(HandshakeRejected) as caught,
        ):
            async with connect(f"ws://127.0.0.1:{port}/"):
                pass  # pragma: no cover
        assert caught.value.status_code == 403
        assert b"go away" in caught.value.body

    run(main)


# ============================================================== websockets client, our server


def test_websockets_client_against_our_server() -> None:
    seen: dict[str, Any] = {}
    handler_done = trio.Event()

    async def handler(websocket: WebSocket) -> None:
        assert websocket.request is not None
        seen["target"] = websocket.request.target
        seen["address"] = websocket.remote_address
        try:
            await echo(websocket)
        finally:
            seen["close"] = (websocket.close_code, websocket.close_reason)
            handler_done.set()

    def client(port: int) -> dict[str, Any]:
        with websockets.sync.client.connect(
            f"ws://127.0.0.1:{port}/chat", subprotocols=["chat"], max_size=None
        ) as connection:
            result = {
                "subprotocol": connection.subprotocol,
                "extensions": [extension.name for extension in connection.protocol.extensions],
            }
            connection.send("hello")
            assert connection.recv() == "hello"
            connection.send(b"\x01\x02")
            assert connection.recv() == b"\x01\x02"
            big = b"\xab" * MiB
            connection.send(big)
            assert connection.recv() == big
            assert connection.ping(b"p").wait(5)
            connection.close(4002, "client bye")
            return result

    async def main() -> None:
        async with our_server(handler, subprotocols=["other", "chat"]) as server:
            result = await trio.to_thread.run_sync(client, server.port)
            await handler_done.wait()
        assert result == {"subprotocol": "chat", "extensions": ["permessage-deflate"]}
        assert seen["target"] == "/chat"
        assert seen["address"][0] == "127.0.0.1"
        assert seen["close"] == (4002, "client bye")

    run(main)


def test_our_server_close_code_reaches_websockets_client() -> None:
    async def closer(websocket: WebSocket) -> None:
        await websocket.close(4003, "server bye")

    def client(port: int) -> tuple[int, str]:
        with websockets.sync.client.connect(f"ws://127.0.0.1:{port}/") as connection:
            with pytest.raises(websockets.exceptions.ConnectionClosed) as caught:
                connection.recv()
            assert caught.value.rcvd is not None
            return caught.value.rcvd.code, caught.value.rcvd.reason

    async def main() -> None:
        async with our_server(closer, compression=False) as server:
            assert await trio.to_thread.run_sync(client, server.port) == (4003, "server bye")

    run(main)


def test_process_request_answers_plain_http_and_rejects() -> None:
    def client(port: int) -> int:
        with pytest.raises(websockets.exceptions.InvalidStatus) as caught:
            websockets.sync.client.connect(f"ws://127.0.0.1:{port}/forbidden")
        return caught.value.response.status_code

    async def main() -> None:
        async with our_server(echo, process_request=page) as server:
            response = await trio.to_thread.run_sync(http_get, server.port, "/")
            assert response.startswith(b"HTTP/1.1 200 ")
            assert response.endswith(b"\r\n\r\na page")
            # Not an upgrade and not answered: the handshake's own 4xx.
            response = await trio.to_thread.run_sync(http_get, server.port, "/other")
            assert response.startswith(b"HTTP/1.1 4")
            assert await trio.to_thread.run_sync(client, server.port) == 403
            with pytest.raises(HandshakeRejected) as caught:
                async with connect(f"ws://127.0.0.1:{server.port}/forbidden"):
                    pass  # pragma: no cover
            assert (caught.value.status_code, caught.value.body) == (403, b"nope")
            with pytest.raises(HandshakeRejected) as caught:
                async with connect(f"ws://127.0.0.1:{server.port}/big"):
                    pass  # pragma: no cover
            assert caught.value.body == b"no" * 150_000
            async with connect(f"ws://127.0.0.1:{server.port}/ok") as ws:
                await ws.send("passed")
                assert await ws.recv() == "passed"

    run(main)


def test_server_drops_bad_and_slow_handshakes() -> None:
    async def main() -> None:
        async with our_server(echo, open_timeout=0.2) as server:
            # Garbage gets the handshake's 400, then the connection closes.
            response = await trio.to_thread.run_sync(
                functools.partial(http_get, server.port, request=b"NOT HTTP AT ALL\r\n\r\n")
            )
            assert response.startswith(b"HTTP/1.1 400")
            # A client that says nothing is dropped after open_timeout (nothing else would end it).
            with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
                assert await trio.to_thread.run_sync(read_until_eof, sock) == b""
            # A client that hangs up during the handshake.
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\n")
            async with connect(f"ws://127.0.0.1:{server.port}/") as ws:
                await ws.send("still serving")
                assert await ws.recv() == "still serving"

    run(main)


# ============================================================== our client, our server


def test_our_client_against_our_server() -> None:
    closes: list[tuple[int | None, str | None]] = []

    async def handler(websocket: WebSocket) -> None:
        try:
            await echo(websocket)
        finally:
            closes.append((websocket.close_code, websocket.close_reason))

    async def main() -> None:
        async with our_server(handler, subprotocols=["v2", "v1"]) as server:
            async with connect(f"ws://127.0.0.1:{server.port}/", subprotocols=["v1"]) as ws:
                assert ws.subprotocol == "v1"
                for message in ("text", b"bytes", "é" * MiB, b"\x00" * MiB):
                    await ws.send(message)
                    assert await ws.recv() == message
                await ws.send(bytearray(b"array"))
                assert await ws.recv() == b"array"
                # Several pings: one Pong answers them all.
                waiters = [await ws.ping() for _ in range(3)]
                for waiter in waiters:
                    await waiter
                await ws.close(4004, "done")
            with pytest.raises(ConnectionClosed) as caught:
                await ws.recv()
            assert caught.value.code == 4004
            async with connect(f"ws://127.0.0.1:{server.port}/", subprotocols=["v3"], compression=False) as ws:
                assert ws.subprotocol is None
        assert closes == [(4004, "done"), (1000, "")]

    run(main)


def test_handler_failure_closes_with_1011_and_server_close_with_1001() -> None:
    async def handler(websocket: WebSocket) -> None:
        message = await websocket.recv()
        if message == "fail":
            raise RuntimeError("boom")
        await trio.sleep_forever()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            server: Server = await nursery.start(functools.partial(serve, handler, "127.0.0.1", 0))
            assert len(server.sockets) == 1
            async with connect(f"ws://127.0.0.1:{server.port}/") as ws:
                await ws.send("fail")
                with pytest.raises(ConnectionClosed) as caught:
                    await ws.recv()
                assert (caught.value.code, caught.value.reason) == (1011, "internal error")
            async with connect(f"ws://127.0.0.1:{server.port}/") as ws:
                await ws.send("wait")
                await server.close()
                with pytest.raises(ConnectionClosed) as caught:
                    await ws.recv()
                assert caught.value.code == 1001
                assert caught.value.normal
        with pytest.raises(OSError):
            async with connect(f"ws://127.0.0.1:{server.port}/"):
                pass  # pragma: no cover

    run(main)


def test_exception_in_client_block_propagates_unwrapped() -> None:
    async def main() -> None:
        async with our_server(echo) as server:
            with pytest.raises(KeyError):
                async with connect(f"ws://127.0.0.1:{server.port}/") as ws:
                    raise KeyError("mine")
            assert ws.close_code == 1000

    run(main)


def test_pongs_and_batched_frames_from_a_scripted_server() -> None:
    def script(sock: socket.socket, stop: Any) -> None:
        received = b""
        while len(received) < 23:  # Both masked Pings ("first" and "second") are in.
            received += sock.recv(23 - len(received))
        pongs = frame(0xA, b"unsolicited") + frame(0xA, b"second")
        sock.sendall(pongs + frame(0x1, b"a") + frame(0x1, b"b") + frame(0x1, b"c"))
        stop.wait(10)

    async def main() -> None:
        with raw_server(script) as port:
            async with connect(f"ws://127.0.0.1:{port}/", max_queue=1, close_timeout=0.1) as ws:
                first = await ws.ping(b"first")
                second = await ws.ping(b"second")
                # The Pong to the latest Ping acknowledges the earlier one too.
                await first
                await second
                assert [await ws.recv() for _ in range(3)] == ["a", "b", "c"]
            assert ws.close_code == 1006

    run(main)


def test_send_errors() -> None:
    async def main() -> None:
        with rude_server() as port:
            async with connect(f"ws://127.0.0.1:{port}/", compression=False) as ws:
                with pytest.raises(LocalProtocolError):
                    await ws.send("\ud800")
                # The reset interrupts this write: the connection is lost, silently.
                await ws.send(b"x" * 32 * MiB)
                await ws.wait_closed()
                with pytest.raises(ConnectionClosed) as caught:
                    await ws.send(b"more")
                assert caught.value.code == 1006
        with silent_server() as port:
            async with connect(f"ws://127.0.0.1:{port}/", close_timeout=0.2) as ws, trio.open_nursery() as nursery:
                nursery.start_soon(ws.close)
                await trio.testing.wait_all_tasks_blocked()  # close() sent its Close and waits.
                with pytest.raises(ConnectionClosed):
                    await ws.send("while closing")

    run(main)


# ============================================================== keepalive and timeouts


def test_pending_ping_fails_when_the_connection_is_lost() -> None:
    async def main() -> None:
        with silent_server() as port:
            async with connect(f"ws://127.0.0.1:{port}/", ping_interval=None, ping_timeout=0.2) as ws:
                waiter = await ws.ping()
                with pytest.raises(ConnectionClosed):
                    await waiter
                assert waiter.is_set()

    run(main)


def test_connect_errors() -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="Unknown option"):
            async with connect("ws://127.0.0.1:1/", colour="blue"):
                pass  # pragma: no cover
        with pytest.raises(InvalidURL):
            async with connect("http://127.0.0.1/"):
                pass  # pragma: no cover
        with mute_server() as port, pytest.raises(trio.TooSlowError):
            async with connect(f"ws://127.0.0.1:{port}/", open_timeout=0.2):
                pass  # pragma: no cover
        with hangup_server() as port, pytest.raises(ConnectionError):
            async with connect(f"ws://127.0.0.1:{port}/", open_timeout=None):
                pass  # pragma: no cover

    run(main)


# ============================================================== TLS


def test_tls_both_ways() -> None:
    server_context, client_context = tls_contexts()
    record: dict[str, Any] = {}

    def client(port: int) -> str:
        with websockets.sync.client.connect(f"wss://localhost:{port}/", ssl=client_context) as connection:
            connection.send("over tls")
            return str(connection.recv())

    async def tls_echo(websocket: WebSocket) -> None:
        assert websocket.remote_address[0] == "127.0.0.1"
        await echo(websocket)

    async def main() -> None:
        # Our client, websockets server.
        with websockets_server(websockets_echo(record), ssl=server_context) as port:
            async with connect(f"wss://127.0.0.1:{port}/secure", ssl=client_context) as ws:
                await ws.send("secret")
                assert await ws.recv() == "secret"
        assert record["close_code"] == 1000
        async with our_server(tls_echo, ssl=server_context) as server:
            # websockets client, our server.
            assert await trio.to_thread.run_sync(client, server.port) == "over tls"
            # Our client, our server.
            async with connect(f"wss://localhost:{server.port}/", ssl=client_context) as ws:
                await ws.send(b"\x00" * MiB)
                assert await ws.recv() == b"\x00" * MiB
            assert ws.close_code == 1000
            # Without trusting the CA: the ssl module's verification error.
            with pytest.raises(ssl.SSLCertVerificationError):
                async with connect(f"wss://localhost:{server.port}/"):
                    pass  # pragma: no cover

    run(main)


def test_aiohttp_client_against_our_server() -> None:
    """aiohttp's client (asyncio, in a thread) against the trio driver."""
    import asyncio  # noqa: PLC0415 - this test alone needs an asyncio loop, in its own thread

    import aiohttp  # noqa: PLC0415

    seen: dict[str, Any] = {}
    handler_done = trio.Event()

    async def handler(websocket: WebSocket) -> None:
        try:
            await echo(websocket)
        finally:
            seen["close"] = (websocket.close_code, websocket.close_reason)
            handler_done.set()

    async def aiohttp_client(port: int) -> list[Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"ws://127.0.0.1:{port}/", compress=15, max_msg_size=0) as ws,
        ):
            await ws.send_str("hello")
            text = (await ws.receive()).data
            await ws.send_bytes(b"\x00" * 70000)
            binary = (await ws.receive()).data
            await ws.close(code=4001, message=b"aiohttp bye")
            return [text, binary, ws.close_code, ws.compress]

    def client(port: int) -> list[Any]:
        return asyncio.run(asyncio.wait_for(aiohttp_client(port), 8))

    async def main() -> None:
        async with our_server(handler) as server:
            result = await trio.to_thread.run_sync(client, server.port)
            await handler_done.wait()
        assert result == ["hello", b"\x00" * 70000, 4001, 12]
        assert seen["close"] == (4001, "aiohttp bye")

    run(main)


def test_a_task_that_only_sends_lets_the_others_run() -> None:
    """A send the kernel takes at once does not yield, but one in every few sends does."""

    async def main() -> None:
        async with our_server(echo) as server, connect(f"ws://127.0.0.1:{server.port}/") as ws:
            other_ran = trio.Event()
            sent_before_it_ran = 0

            async def other() -> None:
                other_ran.set()

            async with trio.open_nursery() as nursery:
                for index in range(100):
                    await ws.send(b"x")
                    if index == 0:
                        nursery.start_soon(other)  # Runnable from now on: the sends must let it run.
                    elif not other_ran.is_set():
                        sent_before_it_ran += 1
            assert sent_before_it_ran < 99
            for _ in range(100):
                assert await ws.recv() == b"x"

    run(main)


def test_plain_tcp_connections_take_the_socket_fast_path() -> None:
    """Both sides of a plain TCP connection read and write the standard socket directly.

    The driver finds that socket through trio's private ``_sock`` and falls back
    to trio's streams without it: this fails if a trio release moves it, so the
    lost fast path is noticed instead of silently costing a scheduling round per call.
    """
    sides: list[WebSocket] = []

    async def handler(websocket: WebSocket) -> None:
        sides.append(websocket)
        await echo(websocket)

    async def main() -> None:
        async with our_server(handler) as server, connect(f"ws://127.0.0.1:{server.port}/") as ws:
            await ws.send("fast")
            assert await ws.recv() == "fast"
            sides.append(ws)
        assert [isinstance(side._sock, socket.socket) for side in sides] == [True, True]

    run(main)


def test_an_application_waiting_in_recv_reads_the_socket_itself() -> None:
    """Once the handler waits in recv(), its own task reads the messages, not the reader task.

    A message then costs one wake-up (the handler's) instead of two (the
    reader's, then the handler's). The reader task may read the first one,
    before the handover.
    """
    readers: list[str] = []
    original = WebSocket._receive

    def recording(self: WebSocket, data: bytes | bytearray | None, now: float) -> bool:
        if not self._managed.connection.client:
            readers.append(trio.lowlevel.current_task().name)
        return original(self, data, now)

    async def main() -> None:
        async with our_server(echo) as server, connect(f"ws://127.0.0.1:{server.port}/") as ws:
            for index in range(20):
                await ws.send(f"message {index}")
                assert await ws.recv() == f"message {index}"

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(WebSocket, "_receive", recording)
        run(main)
    from_reader = [name for name in readers if name == "wsproto_core reader"]
    assert len(readers) >= 20
    assert len(from_reader) <= 1, readers


def test_the_reader_task_answers_pings_once_the_application_stops_reading() -> None:
    """A handler that read, then waits for something else: the reader task reads again (after a grace)."""
    handler_waits = trio.Event()
    release = trio.Event()

    async def handler(websocket: WebSocket) -> None:
        await websocket.send(await websocket.recv())
        handler_waits.set()
        await release.wait()  # Not in recv(): Pings and the Close must still be read.

    async def main() -> None:
        async with our_server(handler) as server, connect(f"ws://127.0.0.1:{server.port}/") as ws:
            await ws.send("one")
            assert await ws.recv() == "one"
            await handler_waits.wait()
            for _ in range(3):
                waiter = await ws.ping()
                await waiter
            release.set()

    run(main)


def test_a_cancelled_recv_hands_the_socket_back_at_once() -> None:
    """recv() cancelled while its task reads: the reader task reads from then on, without a grace.

    trio's clock stands still here unless every task waits for two seconds
    (then it jumps to the next deadline, the end of a grace): the Pong must
    come back without the clock moving.
    """
    handler_cancelled = trio.Event()

    async def handler(websocket: WebSocket) -> None:
        await websocket.send(await websocket.recv())
        with trio.CancelScope() as scope:
            handler_scope.append(scope)
            await websocket.recv()  # Its task reads the socket; cancelled below.
        handler_cancelled.set()
        await release.wait()  # Not wait_closed(), which would hand the socket back itself.

    handler_scope: list[trio.CancelScope] = []
    release = trio.Event()

    async def main() -> None:
        async with our_server(handler) as server, connect(f"ws://127.0.0.1:{server.port}/") as ws:
            await ws.send("one")
            assert await ws.recv() == "one"
            while not handler_scope:
                await trio.sleep(0)
            await trio.testing.wait_all_tasks_blocked()
            handler_scope[0].cancel()
            await handler_cancelled.wait()
            started = trio.current_time()
            waiter = await ws.ping()
            await waiter
            assert trio.current_time() == started
            release.set()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=2.0))


def test_close_while_a_task_reads_in_recv() -> None:
    """close() while another task's recv() waits for the socket: that recv() reads the reply, then both end.

    Only one task may wait for a socket: the reader task must not read
    until the recv() gave the socket back.
    """

    async def main() -> None:
        async with our_server(echo) as server, connect(f"ws://127.0.0.1:{server.port}/") as ws:
            await ws.send("before")
            assert await ws.recv() == "before"
            outcome: list[int | None] = []

            async def receive() -> None:
                with pytest.raises(ConnectionClosed) as caught:
                    await ws.recv()
                outcome.append(caught.value.code)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(receive)
                await trio.testing.wait_all_tasks_blocked()
                await ws.close(1000, "done")
            assert outcome == [1000]
            assert ws.close_code == 1000

    run(main)


def test_an_idle_connection_wakes_no_task() -> None:
    """A handler waiting in recv() on an idle connection: neither its task nor a reader task runs.

    The server's reader task stands by while the handler's task waits for the
    socket, with no deadline of its own (keepalive is off here), so ten idle
    seconds of trio's clock (which jumps over idle time) step no task of the
    connection's (the client's reader waits for its socket).
    """
    connection_tasks = {"wsproto_core reader", "wsproto_core handler"}
    steps: list[str] = []

    class StepCounter(trio.abc.Instrument):
        def before_task_step(self, task: trio.lowlevel.Task) -> None:
            steps.append(task.name)

    async def handler(websocket: WebSocket) -> None:
        trio.lowlevel.current_task().name = "wsproto_core handler"
        await echo(websocket)

    async def main() -> None:
        async with (
            our_server(handler, ping_interval=None) as server,
            connect(f"ws://127.0.0.1:{server.port}/", ping_interval=None) as ws,
        ):
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await trio.sleep(1)  # Let the server's reader stand by for its grace.
            counter = StepCounter()
            trio.lowlevel.add_instrument(counter)
            await trio.sleep(10)
            trio.lowlevel.remove_instrument(counter)
        assert [name for name in steps if name in connection_tasks] == []

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0.1))
