"""The asyncio driver against real peers on 127.0.0.1.

Peers: the ``websockets`` library (client and server) and ``aiohttp`` (client),
both independent RFC 6455 implementations; hand-written peers that complete the
opening handshake and then go silent; TLS with a throwaway CA (``trustme``).
Each test is one event loop run under a deadline, on ephemeral ports, and
stops every server and connection it starts. Every test runs on asyncio's own
loop and, when it is installed (the ``test`` extra has it), on uvloop: the
driver relies only on the interfaces asyncio documents.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import hashlib
import os
import socket
import ssl
import struct
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import aiohttp
import pytest
import websockets.asyncio.client
import websockets.asyncio.server
import websockets.exceptions
from driver_peers import tls_contexts

from wsproto_core.drivers import ConnectionClosed, HandshakeRejected, HttpResponse, InvalidURL
from wsproto_core.drivers._common import ClientOptions, Settings, parse_url
from wsproto_core.drivers.asyncio import Listener, Server, WebSocket, connect, serve, serve_listener
from wsproto_core.drivers.asyncio.client import _ClientOpening
from wsproto_core.drivers.asyncio.io import PARSE_HOLD_LIMIT
from wsproto_core.errors import LocalProtocolError
from wsproto_core.frames import write_frame
from wsproto_core.managed import ManagedConnection

T = TypeVar("T")
MiB = 1024 * 1024
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


try:
    import uvloop
except ImportError:  # pragma: no cover - the test extra installs it where wheels exist
    uvloop = None

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop] | None] = {"asyncio": asyncio.new_event_loop}
if uvloop is not None:
    LOOPS["uvloop"] = uvloop.new_event_loop
loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop


@pytest.fixture(autouse=True, params=sorted(LOOPS))
def event_loop_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test on each event loop implementation."""
    global loop_factory
    factory = LOOPS[request.param]
    assert factory is not None
    loop_factory = factory
    try:
        yield request.param
    finally:
        loop_factory = asyncio.new_event_loop


def run(test: Callable[[], Awaitable[T]], timeout: float = 15.0) -> T:
    """Run one test coroutine in a fresh event loop of the current kind, under a deadline."""

    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await test()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main())


async def echo(websocket: WebSocket) -> None:
    async for message in websocket:
        await websocket.send(message)


@contextlib.asynccontextmanager
async def our_server(handler: Callable[[WebSocket], Awaitable[None]] = echo, **kwargs: Any) -> AsyncIterator[Server]:
    server = await serve(handler, "127.0.0.1", 0, **kwargs)
    try:
        yield server
    finally:
        await server.close()


def ws_client(url: str, **kwargs: Any) -> websockets.asyncio.client.connect:
    """A ``websockets`` client: no proxy from the environment, no size limit, no keepalive noise."""
    options: dict[str, Any] = {"proxy": None, "max_size": None, "ping_interval": None}
    return websockets.asyncio.client.connect(url, **(options | kwargs))


@contextlib.asynccontextmanager
async def ws_server(handler: Callable[[Any], Awaitable[None]], **kwargs: Any) -> AsyncIterator[int]:
    """A ``websockets`` server on an ephemeral port; yields the port."""
    options: dict[str, Any] = {"max_size": None, "ping_interval": None}
    async with websockets.asyncio.server.serve(handler, "127.0.0.1", 0, **(options | kwargs)) as server:
        yield server.sockets[0].getsockname()[1]


def recording_echo(record: dict[str, Any]) -> Callable[[Any], Awaitable[None]]:
    """A ``websockets`` server handler that echoes and notes what it saw."""

    async def handler(connection: Any) -> None:
        record["path"] = connection.request.path
        record["subprotocol"] = connection.subprotocol
        record["extensions"] = [extension.name for extension in connection.protocol.extensions]
        with contextlib.suppress(websockets.exceptions.ConnectionClosed):
            async for message in connection:
                await connection.send(message)
        record["close_code"] = connection.close_code
        record["close_reason"] = connection.close_reason

    return handler


MESSAGES: list[str | bytes] = [
    "hello",
    "h\N{LATIN SMALL LETTER E WITH ACUTE}llo \N{WAVING HAND SIGN}",
    "",
    b"",
    bytes(range(256)),
    os.urandom(MiB),  # incompressible: 1 MiB on the wire even with deflate
    "x" * MiB,
]


# --------------------------------------------------------------- our server


@pytest.mark.parametrize("compression", [True, False])
def test_websockets_client_against_our_server(compression: bool) -> None:
    seen: list[WebSocket] = []

    async def handler(websocket: WebSocket) -> None:
        seen.append(websocket)
        await echo(websocket)

    async def test() -> None:
        async with our_server(handler, compression=compression) as server:
            async with ws_client(f"ws://127.0.0.1:{server.port}/chat?room=1") as client:
                assert [e.name for e in client.protocol.extensions] == (["permessage-deflate"] if compression else [])
                for message in MESSAGES:
                    await client.send(message)
                    answer = await client.recv()
                    assert type(answer) is type(message)
                    assert answer == message
                # A fragmented message comes back whole.
                await client.send(["frag", "men", "ted"])
                assert await client.recv() == "fragmented"
                await client.send([b"\x00", b"\x01"])
                assert await client.recv() == b"\x00\x01"
                await client.ping(b"are you there?")  # answered automatically
                pong = await client.ping()
                await asyncio.wait_for(pong, 5)
            (websocket,) = seen
            await websocket.wait_closed()
            assert websocket.close_code == 1000
            assert websocket.request is not None
            assert websocket.request.target == "/chat?room=1"
            assert websocket.remote_address[0] == "127.0.0.1"

    run(test)


def test_aiohttp_client_against_our_server() -> None:
    seen: list[WebSocket] = []

    async def handler(websocket: WebSocket) -> None:
        seen.append(websocket)
        await echo(websocket)

    async def test() -> None:
        async with our_server(handler, subprotocols=["b", "a"]) as server:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(
                    f"ws://127.0.0.1:{server.port}/ws", protocols=("a", "b"), max_msg_size=0, compress=15
                ) as client,
            ):
                assert client.protocol == "b"  # the server's preference wins
                assert client.compress == 12  # permessage-deflate, the drivers' 12-bit window
                for message in MESSAGES:
                    if isinstance(message, str):
                        await client.send_str(message)
                    else:
                        await client.send_bytes(message)
                    answer = await client.receive()
                    expected = aiohttp.WSMsgType.TEXT if isinstance(message, str) else aiohttp.WSMsgType.BINARY
                    assert answer.type is expected
                    assert answer.data == message
                await client.ping(b"ping")
                await client.send_str("after the ping")
                assert (await client.receive()).data == "after the ping"
                await client.close(code=4001, message=b"aiohttp says bye")
            (websocket,) = seen
            await websocket.wait_closed()
            assert websocket.subprotocol == "b"
            assert (websocket.close_code, websocket.close_reason) == (4001, "aiohttp says bye")

    run(test)


def test_subprotocols_negotiated_by_our_server() -> None:
    async def test() -> None:
        async with our_server(subprotocols=["superchat", "chat"]) as server:
            url = f"ws://127.0.0.1:{server.port}/"
            async with ws_client(url, subprotocols=["chat", "superchat"]) as client:
                assert client.subprotocol == "superchat"
            async with ws_client(url, subprotocols=["chat"]) as client:
                assert client.subprotocol == "chat"
            async with ws_client(url, subprotocols=["other"]) as client:
                assert client.subprotocol is None
            async with connect(url, subprotocols=["other", "chat"]) as websocket:
                assert websocket.subprotocol == "chat"

    run(test)


@pytest.mark.parametrize(("code", "reason"), [(1000, ""), (4002, "server says bye")])
def test_our_server_closes_with_a_code(code: int, reason: str) -> None:
    async def handler(websocket: WebSocket) -> None:
        await websocket.recv()
        await websocket.close(code, reason)
        assert websocket.close_code == code  # the client echoed it
        with pytest.raises(ConnectionClosed):
            await websocket.send("too late")
        with pytest.raises(ConnectionClosed):
            await websocket.recv()
        with pytest.raises(ConnectionClosed):
            await websocket.ping()

    async def test() -> None:
        async with our_server(handler) as server, ws_client(f"ws://127.0.0.1:{server.port}/") as client:
            await client.send("close, please")
            with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
                await client.recv()
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (code, reason)

    run(test)


def test_handler_outcome_decides_the_close_code() -> None:
    async def handler(websocket: WebSocket) -> None:
        message = await websocket.recv()
        if message == "fail":
            raise RuntimeError("the handler failed (expected by the test)")

    async def test() -> None:
        async with our_server(handler) as server:
            for message, code in [("return", 1000), ("fail", 1011)]:
                async with ws_client(f"ws://127.0.0.1:{server.port}/") as client:
                    await client.send(message)
                    with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
                        await client.recv()
                    assert info.value.rcvd is not None
                    assert info.value.rcvd.code == code

    run(test)


def test_message_too_big_closes_with_1009() -> None:
    async def test() -> None:
        async with (
            our_server(max_message_size=1024) as server,
            ws_client(f"ws://127.0.0.1:{server.port}/", compression=None) as client,
        ):
            await client.send(b"x" * 1024)
            assert await client.recv() == b"x" * 1024
            await client.send(b"x" * 1025)
            with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
                await client.recv()
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 1009

    run(test)


def test_server_close_sends_1001_to_open_clients() -> None:
    seen: list[WebSocket] = []

    async def handler(websocket: WebSocket) -> None:
        seen.append(websocket)
        await echo(websocket)

    async def test() -> None:
        server = await serve(handler, "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{server.port}/"
        async with ws_client(url) as first, aiohttp.ClientSession() as session, session.ws_connect(url) as second:
            ours = await connect(url)
            await first.send("ready?")
            assert await first.recv() == "ready?"
            # aiohttp answers a Close only while the application reads.
            second_reads = asyncio.ensure_future(second.receive())
            started = asyncio.get_running_loop().time()
            await server.close()
            assert asyncio.get_running_loop().time() - started < 2
            with pytest.raises(websockets.exceptions.ConnectionClosedOK) as info:
                await first.recv()
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (1001, "server shutting down")
            message = await second_reads
            assert message.type is aiohttp.WSMsgType.CLOSE
            assert message.data == 1001
            with pytest.raises(ConnectionClosed) as closed:
                await ours.recv()
            assert closed.value.code == 1001
            assert closed.value.normal
        assert len(seen) == 3
        assert all(websocket.closed for websocket in seen)
        # websockets and our client echo the code; aiohttp answers with 1000.
        assert sorted(websocket.close_code or 0 for websocket in seen) == [1000, 1001, 1001]
        with pytest.raises(OSError):
            await connect(url)

    run(test)


def test_server_close_drops_handshakes_and_waits_for_handlers() -> None:
    finished: list[str] = []
    errors: list[dict[str, Any]] = []

    async def handler(websocket: WebSocket) -> None:
        with contextlib.suppress(ConnectionClosed):
            await websocket.recv()
        await asyncio.sleep(0.1)  # cleaning up after the close: server.close() waits for it
        finished.append("handler")

    async def test() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))
        server = await serve(handler, "127.0.0.1", 0, open_timeout=30)
        # One connection sends half a request and waits (as browsers' spare connections do).
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\n")
        # The half-open handshake was accepted before this client's (one listening socket).
        client = await connect(f"ws://127.0.0.1:{server.port}/")
        # Waiting for that handshake's open_timeout (30 s) would fail this guard.
        await asyncio.wait_for(server.close(), 10)
        assert finished == ["handler"]
        assert await asyncio.wait_for(reader.read(), 5) == b""  # dropped
        writer.close()
        assert client.close_code == 1001

    run(test)
    assert errors == []


def test_server_closed_from_its_own_handler() -> None:
    holder: list[Server] = []

    async def handler(websocket: WebSocket) -> None:
        await websocket.recv()
        await holder[0].close(1001, "closed by a handler")

    async def test() -> None:
        holder.append(await serve(handler, "127.0.0.1", 0))
        async with ws_client(f"ws://127.0.0.1:{holder[0].port}/") as client:
            await client.send("stop the server")
            with pytest.raises(websockets.exceptions.ConnectionClosedOK) as info:
                await client.recv()
            assert info.value.rcvd is not None
            assert info.value.rcvd.reason == "closed by a handler"

    run(test)


# --------------------------------------------------------------- our client


def test_our_client_against_websockets_server() -> None:
    record: dict[str, Any] = {}

    async def test() -> None:
        async with ws_server(recording_echo(record), subprotocols=["chat"]) as port:
            url = f"ws://127.0.0.1:{port}/room/1?token=abc"
            async with connect(url, subprotocols=["chat"], extra_headers=[(b"x-test", b"yes")]) as websocket:
                assert websocket.subprotocol == "chat"
                for message in MESSAGES:
                    await websocket.send(message)
                    answer = await websocket.recv()
                    assert type(answer) is type(message)
                    assert answer == message
                await websocket.send(bytearray(b"bytearray"))
                assert await websocket.recv() == b"bytearray"
                await websocket.send(memoryview(b"memoryview"))
                assert await websocket.recv() == b"memoryview"
                started = asyncio.get_running_loop().time()
                pong = await websocket.ping(b"rtt")
                await asyncio.wait_for(pong, 5)
                assert asyncio.get_running_loop().time() - started < 5
                await websocket.close(4000, "client says bye")
                assert (websocket.close_code, websocket.close_reason) == (4000, "client says bye")
                await websocket.close()  # closing again is a no-op
        assert record == {
            "path": "/room/1?token=abc",
            "subprotocol": "chat",
            "extensions": ["permessage-deflate"],
            "close_code": 4000,
            "close_reason": "client says bye",
        }

    run(test)


def test_our_client_without_compression() -> None:
    record: dict[str, Any] = {}

    async def test() -> None:
        async with (
            ws_server(recording_echo(record)) as port,
            connect(f"ws://127.0.0.1:{port}", compression=False) as websocket,
        ):
            assert websocket.subprotocol is None
            await websocket.send("plain")
            assert await websocket.recv() == "plain"
        assert record["extensions"] == []
        assert record["path"] == "/"
        assert record["close_code"] == 1000

    run(test)


@pytest.mark.parametrize(("code", "normal"), [(1000, True), (1001, True), (4003, False)])
def test_websockets_server_closes_our_client(code: int, normal: bool) -> None:
    async def handler(connection: Any) -> None:
        await connection.send("first")
        await connection.send(b"second")
        await connection.close(code, "bye from websockets")

    async def test() -> None:
        async with ws_server(handler) as port:
            websocket = await connect(f"ws://127.0.0.1:{port}/")
            received: list[str | bytes] = []
            if normal:
                async for message in websocket:  # ends without an exception
                    received.append(message)
            else:
                with pytest.raises(ConnectionClosed) as info:
                    async for message in websocket:
                        received.append(message)
                assert (info.value.code, info.value.reason) == (code, "bye from websockets")
                assert not info.value.normal
            assert received == ["first", b"second"]
            assert websocket.closed
            assert (websocket.close_code, websocket.close_reason) == (code, "bye from websockets")
            with pytest.raises(ConnectionClosed):
                await websocket.send("too late")

    run(test)


def test_messages_sent_with_the_handshake_response_are_received() -> None:
    async def handler(connection: Any) -> None:
        # Queued right after the 101: it often arrives in the same read as the response.
        await connection.send("right away")
        await connection.wait_closed()

    async def test() -> None:
        async with ws_server(handler) as port, connect(f"ws://127.0.0.1:{port}/") as websocket:
            assert await websocket.recv() == "right away"

    run(test)


def test_process_request_serves_pages_and_rejects_handshakes() -> None:
    def process_request(target: str, headers: list[tuple[bytes, bytes]]) -> HttpResponse | None:
        if target == "/private":
            return HttpResponse(403, [(b"content-type", b"text/plain")], b"forbidden")
        upgrade = any(name == b"upgrade" for name, _ in headers)
        if not upgrade:
            return HttpResponse(200, [(b"content-type", b"text/html; charset=utf-8")], b"<h1>a page</h1>")
        return None

    async def test() -> None:
        async with our_server(process_request=process_request) as server:
            base = f"127.0.0.1:{server.port}"
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with await asyncio.to_thread(opener.open, f"http://{base}/page", timeout=5) as response:
                assert response.status == 200
                assert response.headers["content-type"] == "text/html; charset=utf-8"
                assert response.read() == b"<h1>a page</h1>"
            with pytest.raises(HandshakeRejected) as info:
                await connect(f"ws://{base}/private")
            assert info.value.status_code == 403
            assert info.value.body == b"forbidden"
            assert (b"content-type", b"text/plain") in info.value.headers
            assert "403" in str(info.value)
            with pytest.raises(websockets.exceptions.InvalidStatus) as rejected:
                await ws_client(f"ws://{base}/private")
            assert rejected.value.response.status_code == 403
            # Other upgrade requests go on to the handshake.
            async with connect(f"ws://{base}/public") as websocket:
                await websocket.send("still echoing")
                assert await websocket.recv() == "still echoing"

    run(test)


def test_our_client_rejected_by_websockets_server() -> None:
    async def handler(connection: Any) -> None:  # pragma: no cover (never reached)
        await connection.close()

    def process_request(connection: Any, request: Any) -> Any:
        return connection.respond(401, "who are you?\n")

    async def test() -> None:
        async with ws_server(handler, process_request=process_request) as port:
            with pytest.raises(HandshakeRejected) as info:
                await connect(f"ws://127.0.0.1:{port}/")
            assert info.value.status_code == 401
            assert info.value.body == b"who are you?\n"

    run(test)


# ---------------------------------------------------------------- keepalive


async def _handshake_by_hand(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    key = next(
        line.split(b":", 1)[1].strip() for line in head.split(b"\r\n") if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    await writer.drain()


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """Completes the opening handshake, then never reads again: no Pong, no Close reply."""
    writers: list[asyncio.StreamWriter] = []

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await _handshake_by_hand(reader, writer)

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.transport.abort()
        await server.wait_closed()


async def silent_client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Opens a WebSocket by hand; the caller then never answers anything."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


def test_keepalive_timeout_on_our_client() -> None:
    async def test() -> None:
        async with silent_server() as port:
            # The peer never answers: only the keepalive ends this recv() (the
            # test's deadline would fail it otherwise). When is ManagedConnection's
            # business, tested with an injected clock in test_managed.py.
            websocket = await connect(f"ws://127.0.0.1:{port}/", ping_interval=0.05, ping_timeout=0.2)
            with pytest.raises(ConnectionClosed) as info:
                await websocket.recv()
            assert info.value.code == 1006
            assert websocket.close_reason == "keepalive ping timeout"
            assert websocket.close_code == 1006

    run(test)


def test_keepalive_timeout_on_our_server() -> None:
    seen: list[WebSocket] = []

    async def handler(websocket: WebSocket) -> None:
        seen.append(websocket)
        await websocket.wait_closed()

    async def test() -> None:
        async with our_server(handler, ping_interval=0.05, ping_timeout=0.2) as server:
            reader, writer = await silent_client(server.port)
            try:
                # The server pings, waits 0.2 s for the Pong, then sends 1011 and hangs up.
                data = await asyncio.wait_for(reader.read(), 5)
                assert data[0] == 0x89  # a Ping (FIN, unmasked, from the server)
                assert b"\x88" in data  # then a Close
                assert b"keepalive ping timeout" in data
            finally:
                writer.transport.abort()
            # The server hung up, so its WebSocket (whose handler ran first) is closed.
            (websocket,) = seen
            assert websocket.closed
            assert websocket.close_code == 1006

    run(test)


def test_keepalive_pings_answered_keep_the_connection_open(monkeypatch: pytest.MonkeyPatch) -> None:
    acknowledged: list[bytes] = []
    enough = asyncio.Event()
    take = ManagedConnection.take_acknowledged_pings

    def counting(self: ManagedConnection) -> list[bytes]:
        payloads = take(self)
        acknowledged.extend(payloads)
        if len(acknowledged) >= 5:
            enough.set()
        return payloads

    monkeypatch.setattr(ManagedConnection, "take_acknowledged_pings", counting)

    async def test() -> None:
        async with ws_server(recording_echo({})) as port:
            # Five keepalive Pings answered take at least 5 x 0.02 s, longer than
            # ping_timeout: Pongs that were not matched would have failed the connection.
            async with connect(f"ws://127.0.0.1:{port}/", ping_interval=0.02, ping_timeout=0.08) as websocket:
                await enough.wait()
                assert not websocket.closed
                await websocket.send("still here")
                assert await websocket.recv() == "still here"
            assert websocket.close_code == 1000

    run(test)


def test_close_timeout_when_the_peer_never_answers_our_close() -> None:
    async def test() -> None:
        async with silent_server() as port:
            # The peer never answers our Close: only close_timeout ends the wait
            # (the test's deadline would fail it otherwise).
            websocket = await connect(f"ws://127.0.0.1:{port}/", close_timeout=0.2, ping_interval=None)
            await websocket.close()
            assert websocket.closed
            assert websocket.close_code == 1006

    run(test)


@contextlib.asynccontextmanager
async def scripted_server(after_handshake: bytes, *, after_reading: int) -> AsyncIterator[int]:
    """Completes the opening handshake, reads ``after_reading`` bytes, writes ``after_handshake`` (raw frames)."""
    writers: list[asyncio.StreamWriter] = []

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await _handshake_by_hand(reader, writer)
        await reader.readexactly(after_reading)
        writer.write(after_handshake)
        await reader.read()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.transport.abort()
        await server.wait_closed()


def test_a_pong_acknowledges_its_ping_and_every_earlier_one() -> None:
    async def test() -> None:
        # An unsolicited Pong ("Z"), then a Pong for the second Ping only ("B").
        # Written once the three Pings (7 bytes each: masked, 1-byte payload) were read.
        async with scripted_server(b"\x8a\x01Z\x8a\x01B", after_reading=3 * 7) as port:
            websocket = await connect(f"ws://127.0.0.1:{port}/", ping_interval=None)
            first = await websocket.ping(b"A")
            second = await websocket.ping(b"B")
            third = await websocket.ping(b"C")
            await asyncio.wait_for(asyncio.gather(first, second), 5)
            assert not third.done()  # type: ignore[attr-defined]
            # Pings still waiting when the connection ends fail with ConnectionClosed.
            websocket._transport.abort()
            with pytest.raises(ConnectionClosed):
                await third

    run(test)


def test_send_while_closing_raises_connection_closed() -> None:
    async def test() -> None:
        async with silent_server() as port:
            websocket = await connect(f"ws://127.0.0.1:{port}/", close_timeout=0.3, ping_interval=None)
            closing = asyncio.ensure_future(websocket.close(4000))
            await asyncio.sleep(0)  # one step of the close task: our Close is out; the peer never answers
            assert not websocket.closed
            with pytest.raises(ConnectionClosed):
                await websocket.send("too late")
            with pytest.raises(ConnectionClosed):
                await websocket.ping()
            await closing
            assert websocket.close_code == 1006

    run(test)


def test_connection_reset_by_the_client() -> None:
    seen: list[WebSocket] = []

    async def handler(websocket: WebSocket) -> None:
        seen.append(websocket)
        with pytest.raises(ConnectionClosed) as info:
            await websocket.recv()
        assert info.value.code == 1006

    async def test() -> None:
        async with our_server(handler) as server:
            _, writer = await silent_client(server.port)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()  # RST, not FIN
            # The handler started before the 101 reached us (its task was scheduled first).
            (websocket,) = seen
            await asyncio.wait_for(websocket.wait_closed(), 5)
            assert websocket.close_code == 1006

    run(test)


def test_rejection_whose_body_ends_with_the_connection() -> None:
    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        # No Content-Length: the body runs until the server closes.
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\ncome back later")
        await writer.drain()
        writer.close()

    async def test() -> None:
        server = await asyncio.start_server(on_client, "127.0.0.1", 0)
        try:
            with pytest.raises(HandshakeRejected) as info:
                await connect(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/")
            assert (info.value.status_code, info.value.body) == (503, b"come back later")
        finally:
            server.close()
            await server.wait_closed()

    run(test)


def test_server_object() -> None:
    async def test() -> None:
        async with await serve(echo, "127.0.0.1", 0) as server:
            assert len(server.sockets) == 1
            assert server.sockets[0].getsockname()[1] == server.port
            forever = asyncio.ensure_future(server.serve_forever())
            async with connect(f"ws://127.0.0.1:{server.port}/") as websocket:
                await websocket.send("served")
                assert await websocket.recv() == "served"
            forever.cancel()
            with pytest.raises(asyncio.CancelledError):
                await forever

    run(test)


# ------------------------------------------------------------- backpressure


def test_backpressure_a_handler_that_does_not_read_stops_the_client() -> None:
    seen: list[WebSocket] = []
    release = asyncio.Event()
    chunk = os.urandom(64 * 1024)

    async def handler(websocket: WebSocket) -> None:
        seen.append(websocket)
        await release.wait()
        count = 0
        async for message in websocket:
            assert message == chunk
            count += 1
            if count == sent + 1:
                break
        await websocket.send(str(count))

    sent = 0

    async def test() -> None:
        nonlocal sent
        async with (
            our_server(handler, max_queue=4, compression=False) as server,
            ws_client(f"ws://127.0.0.1:{server.port}/", compression=None) as client,
        ):
            # Send until a send stays blocked: the server stopped reading, TCP filled up.
            blocked = None
            while sent < 2000:  # 125 MiB: far more than socket buffers hold
                send = asyncio.ensure_future(client.send(chunk))
                done, _ = await asyncio.wait({send}, timeout=0.5)
                if not done:
                    blocked = send
                    break
                sent += 1
            assert blocked is not None, "the client could send 125 MiB to a handler that reads nothing"
            (websocket,) = seen
            # What the server holds for the handler stays bounded: max_queue
            # messages, and the transport no longer reads.
            assert len(websocket._messages) == 4
            assert not websocket._transport.is_reading()
            held = 4 * len(chunk) + PARSE_HOLD_LIMIT
            assert sent * len(chunk) > 4 * held  # most of what was sent waits in the network, not here
            # Once the handler reads, everything arrives, the blocked send included.
            release.set()
            await asyncio.wait_for(blocked, 10)
            assert await client.recv() == str(sent + 1)

    run(test, timeout=60)


# ---------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1, and a client context trusting its CA."""
    return tls_contexts()


def test_tls_both_ends_ours(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_context, client_context = tls

    async def test() -> None:
        async with our_server(ssl=server_context) as server:
            url = f"wss://127.0.0.1:{server.port}/secure"
            async with connect(url, ssl=client_context) as websocket:
                for message in ["secret", b"\x00secret", os.urandom(MiB)]:
                    await websocket.send(message)
                    assert await websocket.recv() == message
                await asyncio.wait_for(await websocket.ping(), 5)
            assert websocket.close_code == 1000
            # The system's trust store does not know our throwaway CA.
            with pytest.raises(ssl.SSLCertVerificationError):
                await connect(url)

    run(test)


def test_tls_with_websockets(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_context, client_context = tls
    record: dict[str, Any] = {}

    async def test() -> None:
        async with (
            our_server(ssl=server_context) as server,
            ws_client(f"wss://127.0.0.1:{server.port}/", ssl=client_context) as client,
        ):
            await client.send("over TLS")
            assert await client.recv() == "over TLS"
        async with (
            ws_server(recording_echo(record), ssl=server_context) as port,
            connect(f"wss://localhost:{port}/tls", ssl=client_context) as websocket,
        ):
            await websocket.send(b"over TLS")
            assert await websocket.recv() == b"over TLS"
        assert record["path"] == "/tls"
        assert record["close_code"] == 1000

    run(test)


# ------------------------------------------------------------------- errors


def test_connect_errors() -> None:
    async def test() -> None:
        with pytest.raises(InvalidURL):
            await connect("http://127.0.0.1/")
        with pytest.raises(TypeError, match="Unknown option"):
            connect("ws://127.0.0.1/", no_such_option=1)
        # A port nobody listens on.
        listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        listener.close()
        await listener.wait_closed()
        with pytest.raises(ConnectionRefusedError):
            await connect(f"ws://127.0.0.1:{port}/")
        # A server that accepts TCP and never answers the handshake.
        async with silent_listener() as port:
            with pytest.raises(TimeoutError):
                await connect(f"ws://127.0.0.1:{port}/", open_timeout=0.2)
        # A server that hangs up during the handshake.
        async with hangup_listener() as port:
            with pytest.raises(ConnectionError):
                await connect(f"ws://127.0.0.1:{port}/")

    run(test)


@contextlib.asynccontextmanager
async def silent_listener() -> AsyncIterator[int]:
    writers: list[asyncio.StreamWriter] = []

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.transport.abort()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def hangup_listener() -> AsyncIterator[int]:
    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def test_our_server_survives_bad_clients() -> None:
    async def test() -> None:
        async with our_server(open_timeout=0.3) as server:
            port = server.port
            # Hangs up before finishing the request.
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\n")
            writer.close()
            # Sends garbage: a 400 comes back.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"NOT HTTP AT ALL\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), 5)
            assert answer.startswith(b"HTTP/1.1 400")
            writer.close()
            # A plain GET without process_request: refused with 400 too.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), 5)
            assert answer.startswith(b"HTTP/1.1 4")
            writer.close()
            # Says nothing: dropped after open_timeout.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
            # And the server still works.
            async with connect(f"ws://127.0.0.1:{port}/") as websocket:
                await websocket.send("fine")
                assert await websocket.recv() == "fine"

    run(test)


def test_our_client_and_our_server() -> None:
    """Both ends ours: many concurrent connections, both directions at once."""

    async def test() -> None:
        async with our_server() as server:

            async def one(index: int) -> None:
                async with connect(f"ws://127.0.0.1:{server.port}/{index}") as websocket:
                    messages = [f"{index}-{n}" if n % 2 else f"{index}-{n}".encode() for n in range(20)]
                    for message in messages:
                        await websocket.send(message)
                    assert [await websocket.recv() for _ in messages] == messages

            await asyncio.gather(*(one(index) for index in range(20)))

    run(test)


def test_reply_to_a_message_goes_out_before_the_close_that_followed_it() -> None:
    """A message and a Close arriving in one read: the application's echo of the
    message precedes our Close reply (RFC 6455 section 5.5.1 allows nothing but a
    Close after it), as Autobahn's cases expect for an OK verdict."""

    async def test() -> None:
        async with our_server() as server:
            reader, writer = await silent_client(server.port)
            mask = b"\x01\x02\x03\x04"
            text = bytes(b ^ mask[i % 4] for i, b in enumerate(b"hello"))
            close = bytes(b ^ mask[i % 4] for i, b in enumerate(b"\x03\xe8"))
            # A text frame, a Close, and a violation after it (RSV2), all in one write.
            writer.write(b"\x81\x85" + mask + text + b"\x88\x82" + mask + close + b"\xa1\x80" + mask)
            received = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            assert received == b"\x81\x05hello" + b"\x88\x02\x03\xe8"

    run(test)


def test_reply_to_a_message_goes_out_before_the_failure_that_followed_it() -> None:
    async def test() -> None:
        async with our_server() as server:
            reader, writer = await silent_client(server.port)
            mask = b"\x01\x02\x03\x04"
            text = bytes(b ^ mask[i % 4] for i, b in enumerate(b"hello"))
            # A text frame, then a text frame with RSV2 set (a violation: 1002).
            writer.write(b"\x81\x85" + mask + text + b"\xa1\x80" + mask)
            received = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            assert received.startswith(b"\x81\x05hello\x88")
            assert received[len(b"\x81\x05hello") + 2 : len(b"\x81\x05hello") + 4] == b"\x03\xea"

    run(test)


def masked(opcode: int, payload: bytes, mask: bytes = b"\x0a\x0b\x0c\x0d") -> bytes:
    """One client frame (payloads under 126 bytes)."""
    assert len(payload) < 126
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_pipelined_messages_answered_in_order_with_the_ping_and_close_in_place() -> None:
    """Fifty messages, a Ping among them and a Close, in one write: every echo,
    the Pong and the Close reply come back in the order of what they answer."""

    async def test() -> None:
        async with our_server(compression=False) as server:
            reader, writer = await silent_client(server.port)
            messages = [f"message {n}".encode() for n in range(50)]
            frames = [masked(0x2, message) for message in messages]
            frames.insert(20, masked(0x9, b"ping"))
            writer.write(b"".join(frames) + masked(0x8, b"\x03\xe8"))
            received = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            expected = [bytes((0x82, len(message))) + message for message in messages]
            expected.insert(20, b"\x8a\x04ping")
            assert received == b"".join(expected) + b"\x88\x02\x03\xe8"

    run(test)


class CountingTransport:
    """A transport's stand-in that records the size of each write, and passes everything on."""

    def __init__(self, transport: asyncio.Transport, writes: list[int]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: Any) -> None:
        self._writes.append(len(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def test_replies_to_pipelined_messages_are_written_together() -> None:
    writes: list[int] = []

    async def counting_echo(websocket: WebSocket) -> None:
        websocket._transport = CountingTransport(websocket._transport, writes)  # type: ignore[assignment]
        await echo(websocket)

    async def test() -> None:
        async with our_server(counting_echo, compression=False) as server:
            reader, writer = await silent_client(server.port)
            messages = [f"message {n}".encode() for n in range(50)]
            writer.write(b"".join(masked(0x2, message) for message in messages))
            expected = b"".join(bytes((0x82, len(message))) + message for message in messages)
            assert await asyncio.wait_for(reader.readexactly(len(expected)), 5) == expected
            writer.write(masked(0x8, b"\x03\xe8"))
            assert await asyncio.wait_for(reader.read(), 5) == b"\x88\x02\x03\xe8"
            writer.close()
        # One write per message would be 50; all the replies arrived in one read.
        assert sum(writes) == len(expected) + 4
        assert len(writes) <= 3, writes

    run(test)


def test_a_reply_held_for_pipelining_is_sent_even_if_the_handler_stops_reading() -> None:
    release = asyncio.Event()

    async def first_only(websocket: WebSocket) -> None:
        await websocket.send(await websocket.recv())
        await release.wait()  # does not ask for the second message meanwhile

    async def test() -> None:
        async with our_server(first_only, compression=False) as server:
            reader, writer = await silent_client(server.port)
            writer.write(masked(0x1, b"first") + masked(0x1, b"second"))
            try:
                assert await asyncio.wait_for(reader.readexactly(7), 5) == b"\x81\x05first"
            finally:
                release.set()
                writer.close()

    run(test)


def test_a_cancelled_close_drops_the_connection() -> None:
    async def test() -> None:
        async with silent_server() as port:
            websocket = await connect(f"ws://127.0.0.1:{port}/", close_timeout=60, ping_interval=None)
            closing = asyncio.ensure_future(websocket.close())
            await asyncio.sleep(0)  # one step of the close task: our Close is out; the peer never answers
            assert not websocket.closed
            closing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await closing
            assert websocket.closed
            assert websocket.close_code == 1006
            await asyncio.wait_for(websocket.wait_closed(), 1)

    run(test)


@pytest.mark.parametrize("method", ["receive_messages", "events"])
def test_an_unexpected_error_while_reading_ends_the_connection(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    async def test() -> None:
        async with our_server() as server, ws_client(f"ws://127.0.0.1:{server.port}/") as client:
            (websocket,) = server._tracked.open
            broken_one = websocket._managed

            original = getattr(ManagedConnection, method)

            def broken(self: ManagedConnection, *arguments: Any) -> Any:
                if self is broken_one:
                    raise RuntimeError("bug")
                return original(self, *arguments)

            # A read that is one whole message takes the hot path; a Ping is parsed.
            monkeypatch.setattr(ManagedConnection, method, broken)
            if method == "events":
                await client.ping()
            else:
                await client.send("hello")
            await asyncio.wait_for(websocket.wait_closed(), 5)
            assert websocket.close_code == 1006
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await asyncio.wait_for(client.recv(), 5)

    run(test)
    assert "WebSocket connection failed" in caplog.text


# ------------------------------------------------------------ callback API


class EchoListener(Listener):
    """Echoes every message from the read callback and records what happened."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def on_open(self, websocket: WebSocket) -> None:
        self.events.append(("open", websocket.subprotocol))

    def on_message(self, websocket: WebSocket, message: str | bytes) -> None:
        self.events.append(message)
        if message == "fail":
            raise RuntimeError("listener bug")
        websocket.send_nowait(message)

    def on_close(self, websocket: WebSocket) -> None:
        self.events.append(("close", websocket.close_code))


def test_listener_server_echoes_to_websockets_client_and_fails_with_1011_when_it_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    listeners: list[EchoListener] = []

    def factory() -> EchoListener:
        listeners.append(EchoListener())
        return listeners[-1]

    async def test() -> None:
        server = await serve_listener(factory, "127.0.0.1", 0, subprotocols=["chat"])
        try:
            url = f"ws://127.0.0.1:{server.port}/"
            async with ws_client(url, subprotocols=["chat"]) as client:
                for message in MESSAGES:
                    await client.send(message)
                    assert await client.recv() == message
            async with ws_client(url) as client:
                await client.send("fail")
                with pytest.raises(websockets.exceptions.ConnectionClosedError) as info:
                    await client.recv()
                assert info.value.rcvd is not None and info.value.rcvd.code == 1011
            # The third connection stays open until the server closes it (1001).
            async with ws_client(url) as client:
                await client.send("still here")
                assert await client.recv() == "still here"
                await server.close()
                with pytest.raises(websockets.exceptions.ConnectionClosedOK):
                    await client.recv()
                assert client.close_code == 1001
        finally:
            await server.close()
        first, second, third = listeners
        assert first.events == [("open", "chat"), *MESSAGES, ("close", 1000)]
        assert second.events == [("open", None), "fail", ("close", 1011)]
        assert third.events == [("open", None), "still here", ("close", 1001)]
        assert not server._tracked.open

    run(test)
    assert "WebSocket listener failed" in caplog.text


def test_a_listener_connection_gives_recv_nothing_and_its_listener_every_message() -> None:
    received: list[str | bytes] = []
    second_arrived = asyncio.Event()

    class Recording(Listener):
        def on_message(self, websocket: WebSocket, message: str | bytes) -> None:
            received.append(message)
            if len(received) == 2:
                second_arrived.set()

    async def test() -> None:
        async with our_server() as server:
            websocket = await connect(f"ws://127.0.0.1:{server.port}/", listener=Recording())
            websocket.send_nowait("first")
            with pytest.raises(LocalProtocolError, match="Listener"):
                await websocket.recv()
            with pytest.raises(LocalProtocolError, match="Listener"):
                async for _ in websocket:
                    pass
            websocket.send_nowait(b"second")
            await second_arrived.wait()
            await websocket.close()
            assert websocket.close_code == 1000
        # Our echo server's answers went to the listener, none to a queue.
        assert received == ["first", b"second"]

    run(test)


def test_listener_answers_pipelined_messages_before_the_close_in_one_write() -> None:
    writes: list[int] = []

    class Counting(EchoListener):
        def on_open(self, websocket: WebSocket) -> None:
            websocket._transport = CountingTransport(websocket._transport, writes)  # type: ignore[assignment]

    async def test() -> None:
        server = await serve_listener(Counting, "127.0.0.1", 0, compression=False)
        try:
            reader, writer = await silent_client(server.port)
            messages = [f"message {n}".encode() for n in range(50)]
            frames = [masked(0x2, message) for message in messages]
            frames.insert(20, masked(0x9, b"ping"))
            writer.write(b"".join(frames) + masked(0x8, b"\x03\xe8"))
            received = await asyncio.wait_for(reader.read(), 5)
            writer.close()
        finally:
            await server.close()
        expected = [bytes((0x82, len(message))) + message for message in messages]
        expected.insert(20, b"\x8a\x04ping")
        assert received == b"".join(expected) + b"\x88\x02\x03\xe8"
        assert writes == [len(received)]  # the replies, the Pong and the Close in one write

    run(test)


def test_our_listener_client_against_websockets_server() -> None:
    record: dict[str, Any] = {}

    async def test() -> None:
        async with ws_server(recording_echo(record)) as port:
            listener = EchoListener()
            received: asyncio.Queue[str | bytes] = asyncio.Queue()
            listener.on_message = lambda websocket, message: received.put_nowait(message)  # type: ignore[method-assign]
            async with connect(f"ws://127.0.0.1:{port}/", listener=listener) as websocket:
                with pytest.raises(LocalProtocolError, match="Listener"):
                    await websocket.recv()
                for message in ["one", b"two"]:
                    websocket.send_nowait(message)
                    assert await asyncio.wait_for(received.get(), 5) == message
            assert listener.events == [("open", None), ("close", 1000)]
            assert websocket.close_code == 1000
        assert record["close_code"] == 1000

    run(test)


def test_reads_take_the_cheaper_way_on_each_loop(event_loop_kind: str) -> None:
    """asyncio's own loops read into the shared buffer; other loops (uvloop) hand over bytes.

    Both ways deliver the same messages, whole and in pieces, on both sides.
    """

    async def test() -> None:
        async with our_server() as server, connect(f"ws://127.0.0.1:{server.port}/", compression=False) as client:
            (websocket,) = server._tracked.open
            buffered = event_loop_kind == "asyncio"
            for side in (websocket, client):
                assert isinstance(side, WebSocket)
                assert isinstance(side, asyncio.BufferedProtocol) is buffered
            for message in (b"x" * 300, "text", b"y" * 200_000):
                await client.send(message)
                assert await client.recv() == message

    run(test)


def test_a_listener_gets_no_message_after_its_connection_ended_in_the_same_read() -> None:
    """Three messages in one read; the second one's reply overflows max_send_buffer and drops the connection."""
    events: list[Any] = []

    class Overflowing(Listener):
        def on_message(self, websocket: WebSocket, message: str | bytes) -> None:
            events.append(message)
            websocket.send_nowait(b"x" * 100)

        def on_close(self, websocket: WebSocket) -> None:
            events.append(("close", websocket.close_code))

    async def test() -> None:
        server = await serve_listener(Overflowing, "127.0.0.1", 0, max_send_buffer=50)
        try:
            reader, writer = await silent_client(server.port)
            frames = b"".join(b"\x82\x81\x00\x00\x00\x00" + bytes([number]) for number in range(3))
            writer.write(frames)
            await writer.drain()
            # The server drops the connection: the client reads to the end.
            while await reader.read(65536):
                pass
            writer.close()
        finally:
            await server.close()

    run(test)
    assert events == [b"\x00", b"\x01", ("close", 1006)]


@pytest.mark.parametrize("lost_first", [False, True], ids=["given-up-then-lost", "lost-then-given-up"])
def test_a_given_up_opening_leaves_no_unretrieved_exception(lost_first: bool) -> None:
    # connect() can be cancelled (Ctrl-C, a timeout) just before or after the
    # connection is lost; the loss must not leave an exception nobody retrieves,
    # which asyncio reports as "Future exception was never retrieved".
    async def test() -> list[dict[str, Any]]:
        reported: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: reported.append(context))
        client = ClientOptions(parse_url("ws://127.0.0.1:9/"), Settings.from_options({}), (), (), None, 1.0, None, None)
        opening = _ClientOpening(client.opening(), None)
        if lost_first:
            opening.ended()
            opening.abandon()
        else:
            opening.abandon()
            opening.ended()
        assert opening.opened.done()
        del opening
        gc.collect()
        return reported

    assert run(test) == []


@pytest.mark.parametrize("size", [100_000, 3 * MiB])
def test_the_rest_of_a_large_frame_is_read_into_its_payload_buffer(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both sides read the rest of a large frame straight into its buffer, then take their transport back.

    A 3 MiB frame cannot come in one read, so that way is taken (1 MiB
    pieces); 100 KB takes it when its first read is a few KiB or more.
    """
    read_into: list[int] = []
    payload_received = ManagedConnection.payload_received

    def counting(self: ManagedConnection, nbytes: int, now: float | None = None) -> None:
        read_into.append(nbytes)
        payload_received(self, nbytes, now)

    monkeypatch.setattr(ManagedConnection, "payload_received", counting)

    async def test() -> None:
        async with (
            our_server(max_message_size=4 * MiB) as server,
            connect(f"ws://127.0.0.1:{server.port}/", compression=False, max_message_size=4 * MiB) as client,
        ):
            (websocket,) = server._tracked.open
            message = (bytes(range(251)) * (size // 251 + 1))[:size]
            for _ in range(3):
                await client.send(message)
                assert await client.recv() == message
            for side in (websocket, client):
                assert side._transport.get_protocol() is side

    run(test)
    if size > MiB:
        assert sum(read_into) > 0


def test_a_large_frame_cut_short_while_gathered_closes_with_1006() -> None:
    """The peer stops in the middle of a frame that is being read into its buffer: 1006, no hang."""
    closes: list[int | None] = []

    async def test() -> None:
        closed = asyncio.Event()

        async def handler(websocket: WebSocket) -> None:
            try:
                await websocket.recv()
            except ConnectionClosed:
                closes.append(websocket.close_code)
                closed.set()

        async with our_server(handler) as server:
            _, writer = await silent_client(server.port)
            frame = write_frame(0x82, b"\x01" * MiB, b"abcd")
            writer.write(frame[: 300 * 1024])
            await writer.drain()
            writer.close()
            await closed.wait()

    run(test)
    assert closes == [1006]
