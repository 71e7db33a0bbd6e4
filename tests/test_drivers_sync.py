"""The thread driver against real peers on 127.0.0.1: the ``websockets`` library as
server and as client, hand-written silent peers, TLS with a throwaway CA, and our
own client against our own server.

Every server and thread a test starts is stopped before it returns; a fixture
checks that no reader or handler thread is left behind.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
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
from wsproto_core.drivers import _sync_io as sync_io
from wsproto_core.drivers.sync import Server, WebSocket, connect, serve
from wsproto_core.errors import LocalProtocolError

#: Seconds after which a wait is a failure (the machine may be loaded).
GUARD = 30.0


def _our_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("wsproto_core")]


@pytest.fixture(autouse=True)
def no_threads_left() -> Iterator[None]:
    yield
    for thread in _our_threads():
        thread.join(GUARD)
    assert _our_threads() == []


@contextlib.contextmanager
def our_server(handler: Callable[[WebSocket], None], **kwargs: Any) -> Iterator[Server]:
    thread = threading.Thread()
    try:
        with serve(handler, "127.0.0.1", 0, **kwargs) as server:
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            yield server
    finally:
        if thread.is_alive():
            thread.join(10)
        assert not thread.is_alive()


def echo(websocket: WebSocket) -> None:
    for message in websocket:
        websocket.send(message)


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
    with websockets_server(websockets_echo(record), subprotocols=["chat"], max_size=None) as port:
        with connect(f"ws://127.0.0.1:{port}/path?q=1", subprotocols=["superchat", "chat"]) as ws:
            assert ws.subprotocol == "chat"
            ws.send("héllo")
            assert ws.recv() == "héllo"
            ws.send(b"\x00\xff")
            assert ws.recv() == b"\x00\xff"
            big = bytes(range(256)) * (MiB // 256)
            ws.send(big)
            assert ws.recv() == big
            ws.send("x" * MiB)
            assert ws.recv() == "x" * MiB
            waiter = ws.ping(b"abc")
            assert waiter.wait(5)
            assert waiter.is_set()
            ws.close(4000, "bye")
            assert ws.closed
        assert (ws.close_code, ws.close_reason) == (4000, "bye")
    assert record == {
        "path": "/path?q=1",
        "subprotocol": "chat",
        "extensions": ["permessage-deflate"],
        "close_code": 4000,
        "close_reason": "bye",
    }


def test_websockets_server_close_code_reaches_client() -> None:
    def closer(connection: Any) -> None:
        connection.close(4001, "done")

    with websockets_server(closer) as port, connect(f"ws://127.0.0.1:{port}/") as ws:
        with pytest.raises(ConnectionClosed) as caught:
            for _ in ws:
                pass
        assert (caught.value.code, caught.value.reason) == (4001, "done")
        assert not caught.value.normal
        with pytest.raises(ConnectionClosed):
            ws.send("late")
        with pytest.raises(ConnectionClosed):
            ws.ping()
    assert (ws.close_code, ws.close_reason) == (4001, "done")


def test_normal_close_from_server_ends_iteration() -> None:
    def one_message(connection: Any) -> None:
        connection.send("only")
        connection.close()

    with websockets_server(one_message) as port:
        with connect(f"ws://127.0.0.1:{port}/", compression=False) as ws:
            assert list(ws) == ["only"]
        assert ws.close_code == 1000


def test_backpressure_keeps_every_message_in_order() -> None:
    messages = [bytes([index]) * 100_000 for index in range(50)]

    def burst(connection: Any) -> None:
        for message in messages:
            connection.send(message)
        connection.recv()

    with websockets_server(burst, compression=None) as port, connect(f"ws://127.0.0.1:{port}/", max_queue=1) as ws:
        received = []
        for _ in messages:
            received.append(ws.recv())
            # The reader stops once one message waits (one more may be in the read that filled the queue).
            assert len(ws._messages) <= 2
        assert received == messages
        ws.send("done")


def test_close_with_a_full_queue_still_reads_the_reply() -> None:
    def burst(connection: Any) -> None:
        for index in range(10):
            connection.send(f"message {index}")
        for _ in connection:
            pass

    with websockets_server(burst) as port:
        # No close timeout: close() can only return by reading the reply, past the queued messages.
        with connect(f"ws://127.0.0.1:{port}/", max_queue=1, close_timeout=None) as ws:
            assert ws.recv() == "message 0"  # The others came with it, or follow: the queue is full.
            closer = threading.Thread(target=ws.close)
            closer.start()
            closer.join(GUARD)
            assert not closer.is_alive(), "close() did not read the peer's Close behind the full queue"
        assert ws.close_code == 1000


def test_handshake_rejected_by_websockets_server() -> None:
    def refuse(connection: Any, request: Any) -> Any:
        return connection.respond(403, "go away")

    with (
        websockets_server(websockets_echo({}), process_request=refuse) as port,
        pytest.raises(HandshakeRejected) as caught,
    ):
        connect(f"ws://127.0.0.1:{port}/")
    assert caught.value.status_code == 403
    assert b"go away" in caught.value.body


# ============================================================== websockets client, our server


def test_websockets_client_against_our_server() -> None:
    seen: dict[str, Any] = {}

    def handler(websocket: WebSocket) -> None:
        assert websocket.request is not None
        seen["target"] = websocket.request.target
        seen["address"] = websocket.remote_address
        try:
            echo(websocket)
        finally:
            seen["close"] = (websocket.close_code, websocket.close_reason)

    with (
        our_server(handler, subprotocols=["other", "chat"]) as server,
        websockets.sync.client.connect(
            f"ws://127.0.0.1:{server.port}/chat", subprotocols=["chat"], max_size=None
        ) as connection,
    ):
        assert connection.subprotocol == "chat"
        assert [extension.name for extension in connection.protocol.extensions] == ["permessage-deflate"]
        connection.send("hello")
        assert connection.recv() == "hello"
        connection.send(b"\x01\x02")
        assert connection.recv() == b"\x01\x02"
        big = b"\xab" * MiB
        connection.send(big)
        assert connection.recv() == big
        assert connection.ping(b"p").wait(5)
        connection.close(4002, "client bye")
    # Leaving our_server joined the handler threads.
    assert seen["target"] == "/chat"
    assert seen["address"][0] == "127.0.0.1"
    assert seen["close"] == (4002, "client bye")


def test_our_server_close_code_reaches_websockets_client() -> None:
    def closer(websocket: WebSocket) -> None:
        websocket.close(4003, "server bye")

    with (
        our_server(closer, compression=False) as server,
        websockets.sync.client.connect(f"ws://127.0.0.1:{server.port}/") as connection,
    ):
        with pytest.raises(websockets.exceptions.ConnectionClosed) as caught:
            connection.recv()
        assert caught.value.rcvd is not None
        assert (caught.value.rcvd.code, caught.value.rcvd.reason) == (4003, "server bye")


def test_process_request_answers_plain_http_and_rejects() -> None:
    with our_server(echo, process_request=page) as server:
        response = http_get(server.port, "/")
        assert response.startswith(b"HTTP/1.1 200 ")
        assert response.endswith(b"\r\n\r\na page")
        # Not an upgrade and not answered: the handshake's own 4xx.
        assert http_get(server.port, "/other").startswith(b"HTTP/1.1 4")
        with pytest.raises(websockets.exceptions.InvalidStatus) as invalid:
            websockets.sync.client.connect(f"ws://127.0.0.1:{server.port}/forbidden")
        assert invalid.value.response.status_code == 403
        with pytest.raises(HandshakeRejected) as caught:
            connect(f"ws://127.0.0.1:{server.port}/forbidden")
        assert (caught.value.status_code, caught.value.body) == (403, b"nope")
        with pytest.raises(HandshakeRejected) as caught:
            connect(f"ws://127.0.0.1:{server.port}/big")
        assert caught.value.body == b"no" * 150_000
        with connect(f"ws://127.0.0.1:{server.port}/ok") as ws:
            ws.send("passed")
            assert ws.recv() == "passed"


def test_server_drops_bad_and_slow_handshakes() -> None:
    with our_server(echo, open_timeout=0.2) as server:
        # Garbage gets the handshake's 400, then the connection closes.
        assert http_get(server.port, request=b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400")
        # A client that says nothing is dropped after open_timeout (nothing else would end it).
        with socket.create_connection(("127.0.0.1", server.port), timeout=GUARD) as sock:
            assert read_until_eof(sock) == b""
        # A client that hangs up during the handshake.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\n")
        with connect(f"ws://127.0.0.1:{server.port}/") as ws:
            ws.send("still serving")
            assert ws.recv() == "still serving"


# ============================================================== our client, our server


def test_our_client_against_our_server() -> None:
    # A queue: a handler may still be finishing when our client's close() returns.
    closes: queue.Queue[tuple[int | None, str | None]] = queue.Queue()

    def handler(websocket: WebSocket) -> None:
        try:
            echo(websocket)
        finally:
            closes.put((websocket.close_code, websocket.close_reason))

    with our_server(handler, subprotocols=["v2", "v1"]) as server:
        assert server.sockets == (server.socket,)
        with connect(f"ws://127.0.0.1:{server.port}/", subprotocols=["v1"]) as ws:
            assert ws.subprotocol == "v1"
            for message in ("text", b"bytes", "é" * MiB, b"\x00" * MiB):
                ws.send(message)
                assert ws.recv() == message
            ws.send(bytearray(b"array"))
            assert ws.recv() == b"array"
            # Several pings: one Pong answers them all.
            waiters = [ws.ping() for _ in range(3)]
            assert all(waiter.wait(5) for waiter in waiters)
            ws.close(4004, "done")
        with pytest.raises(ConnectionClosed) as caught:
            ws.recv()
        assert caught.value.code == 4004
        assert closes.get(timeout=GUARD) == (4004, "done")
        with connect(f"ws://127.0.0.1:{server.port}/", subprotocols=["v3"], compression=False) as ws:
            assert ws.subprotocol is None
        assert closes.get(timeout=GUARD) == (1000, "")


def test_without_poll_a_select_selector_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the platform has no poll() (Windows), both sides wait with select(): same messages, Pings and close."""
    monkeypatch.setattr(sync_io, "_HAS_POLL", False)
    with our_server(echo) as server, connect(f"ws://127.0.0.1:{server.port}/") as ws:
        assert ws._poll is None and ws._selector is not None
        for message in ("text", b"\x00" * MiB):
            ws.send(message)
            assert ws.recv() == message
        assert ws.ping().wait(GUARD)
        ws.close(4005, "done")
        assert ws.close_code == 4005


def test_sends_from_many_threads_keep_each_thread_in_order() -> None:
    with our_server(echo) as server, connect(f"ws://127.0.0.1:{server.port}/") as ws:

        def sender(name: str) -> None:
            for index in range(200):
                ws.send(f"{name} {index}")

        threads = [threading.Thread(target=sender, args=(str(name),)) for name in range(4)]
        for thread in threads:
            thread.start()
        received = [ws.recv(timeout=5) for _ in range(800)]
        for thread in threads:
            thread.join()
    for name in range(4):
        mine = [message for message in received if isinstance(message, str) and message.startswith(f"{name} ")]
        assert mine == [f"{name} {index}" for index in range(200)]


def test_handler_failure_closes_with_1011_and_shutdown_with_1001() -> None:
    def handler(websocket: WebSocket) -> None:
        if websocket.recv() == "fail":
            raise RuntimeError("boom")
        websocket.recv()

    with our_server(handler) as server:
        with connect(f"ws://127.0.0.1:{server.port}/") as ws:
            ws.send("fail")
            with pytest.raises(ConnectionClosed) as caught:
                ws.recv()
            assert (caught.value.code, caught.value.reason) == (1011, "internal error")
        ws = connect(f"ws://127.0.0.1:{server.port}/")
        ws.send("wait")
        server.shutdown()
        with pytest.raises(ConnectionClosed) as caught:
            ws.recv()
        assert caught.value.code == 1001
        assert caught.value.normal
        assert ws.wait_closed(5)
    with pytest.raises(OSError):
        connect(f"ws://127.0.0.1:{server.port}/")
    server.serve_forever()  # Returns at once after shutdown.


def test_serve_on_every_interface() -> None:
    with serve(echo, None, 0) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        with connect(f"ws://127.0.0.1:{server.port}/") as ws:
            ws.send("any interface")
            assert ws.recv() == "any interface"
    thread.join(5)


def test_a_handler_can_shut_the_server_down() -> None:
    stopped = threading.Event()

    def handler(websocket: WebSocket) -> None:
        if websocket.recv() == "stop":
            server.shutdown()
            stopped.set()

    with our_server(handler) as server, connect(f"ws://127.0.0.1:{server.port}/") as ws:
        ws.send("stop")
        with pytest.raises(ConnectionClosed) as caught:
            ws.recv()
        assert caught.value.code == 1001
        assert stopped.wait(5)


def test_shutdown_closes_a_connection_that_opens_during_it() -> None:
    handshaking = threading.Event()
    finish_handshake = threading.Event()

    def hold_the_handshake(target: str, headers: list[tuple[bytes, bytes]]) -> None:
        # This connection's handler thread is mid-handshake until the test lets it go.
        if target == "/late":
            handshaking.set()
            assert finish_handshake.wait(GUARD)

    with (
        our_server(echo, process_request=hold_the_handshake, close_timeout=0.2) as server,
        connect(f"ws://127.0.0.1:{server.port}/", close_timeout=0.2) as early,
        socket.create_connection(("127.0.0.1", server.port), timeout=GUARD) as sock,
    ):
        sock.sendall(
            b"GET /late HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        assert handshaking.wait(GUARD)
        stopper = threading.Thread(target=server.shutdown)
        stopper.start()
        # The open connection's 1001 shows shutdown() has begun, and has
        # already gathered the open connections, without the late one.
        with pytest.raises(ConnectionClosed) as caught:
            early.recv()
        assert caught.value.code == 1001
        finish_handshake.set()
        response = read_until_eof(sock)
        stopper.join(GUARD)
        assert not stopper.is_alive()
    assert response.startswith(b"HTTP/1.1 101")
    # The server's Close frame: 1001, going away.
    assert b"\x88" in response
    assert b"\x03\xe9server shutting down" in response


def test_pongs_and_batched_frames_from_a_scripted_server() -> None:
    def script(sock: socket.socket, stop: Any) -> None:
        received = b""
        while len(received) < 23:  # Both masked Pings ("first" and "second") are in.
            received += sock.recv(23 - len(received))
        pongs = frame(0xA, b"unsolicited") + frame(0xA, b"second")
        sock.sendall(pongs + frame(0x1, b"a") + frame(0x1, b"b") + frame(0x1, b"c"))
        stop.wait(10)

    with raw_server(script) as port:
        with connect(f"ws://127.0.0.1:{port}/", max_queue=1, close_timeout=0.1) as ws:
            first = ws.ping(b"first")
            second = ws.ping(b"second")
            # The Pong to the latest Ping acknowledges the earlier one too.
            assert first.wait(5)
            assert second.wait(5)
            assert [ws.recv() for _ in range(3)] == ["a", "b", "c"]
        assert ws.close_code == 1006


def test_send_errors() -> None:
    with rude_server() as port, connect(f"ws://127.0.0.1:{port}/", compression=False) as ws:
        with pytest.raises(LocalProtocolError):
            ws.send("\ud800")
        # The reset interrupts this write: the connection is lost, silently.
        ws.send(b"x" * 32 * MiB)
        assert ws.wait_closed(GUARD)
        with pytest.raises(ConnectionClosed) as caught:
            ws.send(b"more")
        assert caught.value.code == 1006
    closing = threading.Event()

    def note_the_close(sock: socket.socket, stop: Any) -> None:
        sock.recv(1)  # The Close frame's first byte: the client is closing.
        closing.set()
        stop.wait(GUARD)

    with raw_server(note_the_close) as port, connect(f"ws://127.0.0.1:{port}/", close_timeout=0.2) as ws:
        closer = threading.Thread(target=ws.close)
        closer.start()
        assert closing.wait(GUARD)
        with pytest.raises(ConnectionClosed):
            ws.send("while closing")
        closer.join(GUARD)


def test_timeouts_of_the_application_calls() -> None:
    with silent_server() as port, connect(f"ws://127.0.0.1:{port}/", ping_timeout=None, close_timeout=0.1) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.05)
        assert not ws.ping().wait(0.05)
        assert not ws.wait_closed(0.01)


# ============================================================== keepalive and timeouts


def test_pending_ping_fails_when_the_connection_is_lost() -> None:
    with silent_server() as port, connect(f"ws://127.0.0.1:{port}/", ping_interval=None, ping_timeout=0.2) as ws:
        waiter = ws.ping()
        with pytest.raises(ConnectionClosed):
            waiter.wait(5)
        assert waiter.is_set()


def test_connect_errors() -> None:
    with pytest.raises(TypeError, match="Unknown option"):
        connect("ws://127.0.0.1:1/", colour="blue")
    with pytest.raises(InvalidURL):
        connect("http://127.0.0.1/")
    with mute_server() as port, pytest.raises(TimeoutError):
        connect(f"ws://127.0.0.1:{port}/", open_timeout=0.2)
    with hangup_server() as port, pytest.raises(ConnectionError):
        connect(f"ws://127.0.0.1:{port}/", open_timeout=None)


# ============================================================== TLS


def test_tls_both_ways() -> None:
    server_context, client_context = tls_contexts()
    record: dict[str, Any] = {}

    def tls_echo(websocket: WebSocket) -> None:
        assert websocket.remote_address[0] == "127.0.0.1"
        echo(websocket)

    # Our client, websockets server.
    with (
        websockets_server(websockets_echo(record), ssl=server_context) as port,
        connect(f"wss://127.0.0.1:{port}/secure", ssl=client_context) as ws,
    ):
        ws.send("secret")
        assert ws.recv() == "secret"
    assert record["close_code"] == 1000
    with our_server(tls_echo, ssl=server_context) as server:
        # websockets client, our server.
        with websockets.sync.client.connect(f"wss://localhost:{server.port}/", ssl=client_context) as connection:
            connection.send("over tls")
            assert connection.recv() == "over tls"
        # Our client, our server.
        with connect(f"wss://localhost:{server.port}/", ssl=client_context) as ws:
            ws.send(b"\x00" * MiB)
            assert ws.recv() == b"\x00" * MiB
        assert ws.close_code == 1000
        # Without trusting the CA: the ssl module's verification error.
        with pytest.raises(ssl.SSLCertVerificationError):
            connect(f"wss://localhost:{server.port}/")


def test_aiohttp_client_against_our_server() -> None:
    """aiohttp's client (asyncio, its own WebSocket code) against the threads driver."""
    import asyncio  # noqa: PLC0415 - this test alone needs an event loop

    import aiohttp  # noqa: PLC0415

    async def client(port: int) -> list[Any]:
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

    seen: dict[str, Any] = {}

    def handler(websocket: WebSocket) -> None:
        try:
            echo(websocket)
        finally:
            seen["close"] = (websocket.close_code, websocket.close_reason)

    with our_server(handler) as server:
        text, binary, code, compress = asyncio.run(asyncio.wait_for(client(server.port), 15))
    # Leaving our_server joined the handler threads.
    assert text == "hello"
    assert binary == b"\x00" * 70000
    assert code == 4001
    assert compress == 12  # permessage-deflate negotiated, with the drivers' 12-bit window
    assert seen["close"] == (4001, "aiohttp bye")


def test_the_watcher_answers_pings_while_the_handler_does_not_read() -> None:
    """The handler thread reads only in recv(); while it is busy elsewhere, the watcher thread answers."""
    busy = threading.Event()

    def handler(websocket: WebSocket) -> None:
        websocket.send("busy")
        busy.wait(30)  # Not reading, and not in any call of ours.

    with our_server(handler) as server, connect(f"ws://127.0.0.1:{server.port}/", ping_interval=None) as ws:
        assert ws.recv(timeout=30) == "busy"
        try:
            assert ws.ping(b"are you there").wait(timeout=30)
        finally:
            busy.set()


def test_recv_in_another_thread_takes_the_socket_from_the_reading_one() -> None:
    """Two application threads wait at once: both get a message, in order, whichever of them reads."""

    def handler(websocket: WebSocket) -> None:
        assert websocket.recv() == "go"
        websocket.send("first")
        websocket.send("second")
        websocket.recv()

    with our_server(handler) as server, connect(f"ws://127.0.0.1:{server.port}/") as ws:
        received: list[str | bytes] = []
        waiters = [threading.Thread(target=lambda: received.append(ws.recv(timeout=30))) for _ in range(2)]
        for waiter in waiters:
            waiter.start()
        ws.send("go")
        for waiter in waiters:
            waiter.join(30)
        assert sorted(received, key=str) == ["first", "second"]
        ws.send("done")
