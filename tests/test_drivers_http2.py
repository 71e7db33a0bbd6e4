"""WebSockets over HTTP/2 (RFC 8441) with the asyncio driver: our client and server, and peers we did not write.

The failure cases use a hand-driven h2 peer (:class:`HandPeer`): the ``h2``
library's state machine, with every frame sent and read by the test, so that
it can do what a well-behaved client never does (leave out ``:protocol``,
reset a stream in the middle of a message, never reopen a window).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest
import trustme
from driver_peers import tls_contexts
from helpers import OP_BINARY, OP_TEXT, build_frame, parse_frame
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from wsproto_core.drivers import ConnectionClosed, HandshakeRejected, HttpResponse
from wsproto_core.drivers import http2 as http2_driver
from wsproto_core.drivers.asyncio import Server, WebSocket, connect, serve
from wsproto_core.drivers.http2 import STREAM_HIGH_WATER, STREAM_WINDOW, ExtendedConnectUnsupported

T = TypeVar("T")


def run(test: Callable[[], Awaitable[T]], timeout: float = 20.0) -> T:
    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await test()

    return asyncio.run(main())


async def echo(websocket: Any) -> None:
    async for message in websocket:
        await websocket.send(message)


def page_or_websocket(target: str, headers: list[tuple[bytes, bytes]]) -> HttpResponse | None:
    """A page at /, WebSockets elsewhere: HTTP/2 requests carry their pseudo-headers."""
    fields = dict(headers)
    if fields.get(b":protocol") == b"websocket" or b"upgrade" in fields:
        return None
    if target == "/":
        return HttpResponse(200, [(b"content-type", b"text/plain"), (b"connection", b"close")], b"the page\n")
    return HttpResponse(404, [(b"content-type", b"text/plain")], b"not found\n")


@contextlib.asynccontextmanager
async def h2_server(
    handler: Callable[[Any], Awaitable[None]] = echo, *, ping_interval: float | None = None, **kwargs: Any
) -> AsyncIterator[Server]:
    """Our asyncio server with HTTP/2 on 127.0.0.1, closed when the block ends (no keepalive unless asked)."""
    server = await serve(handler, "127.0.0.1", 0, http2=True, ping_interval=ping_interval, **kwargs)
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture(params=["frames-built-here", "h2-send-data"])
def send_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Both ways a WebSocket stream's DATA frames are written: built by the driver, or by h2's public ``send_data``.

    The second is what the driver falls back to with an h2 that does not keep
    its send windows where the driver takes frames' sizes off them. Every
    frame the driver builds goes through ``send_frame``: counting those calls
    proves which way the test ran.
    """
    built: list[int] = []
    send_frame = http2_driver._H2Protocol.send_frame

    def counting_send_frame(self: Any, frame: bytes | bytearray) -> None:
        built.append(len(frame))
        send_frame(self, frame)

    monkeypatch.setattr(http2_driver._H2Protocol, "send_frame", counting_send_frame)
    if request.param == "h2-send-data":
        monkeypatch.setattr(http2_driver, "_H2_KEEPS_SEND_WINDOWS", False)
    yield request.param
    assert bool(built) == (request.param == "frames-built-here"), f"{len(built)} DATA frames built by the driver"


# ------------------------------------------------------------------ hand-driven peer


class HandPeer:
    """One side of an HTTP/2 connection driven frame by frame by the test."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, h2c: h2.connection.H2Connection):
        self.reader = reader
        self.writer = writer
        self.h2 = h2c
        self.events: list[h2.events.Event] = []
        self.pings_sent = 0

    @classmethod
    async def client(cls, port: int, **settings: int) -> HandPeer:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        config = h2.config.H2Configuration(
            client_side=True, header_encoding=None, validate_outbound_headers=False, validate_inbound_headers=False
        )
        peer = cls(reader, writer, h2.connection.H2Connection(config))
        peer.h2.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes[code]: value for code, value in settings.items()}
        )
        peer.h2.initiate_connection()
        peer.flush()
        await peer.wait_for(lambda event: isinstance(event, h2.events.RemoteSettingsChanged))
        return peer

    def flush(self) -> None:
        self.writer.write(self.h2.data_to_send())

    async def wait_for(self, predicate: Callable[[h2.events.Event], bool]) -> h2.events.Event:
        """Read until an event matches (every event is kept in :attr:`events`)."""
        seen = 0
        while True:
            for event in self.events[seen:]:
                if predicate(event):
                    return event
            seen = len(self.events)
            data = await self.reader.read(65536)
            assert data, f"the connection closed; events: {self.events}"
            self.events.extend(self.h2.receive_data(data))
            self.flush()

    def stream_events(self, stream_id: int) -> list[h2.events.Event]:
        return [event for event in self.events if getattr(event, "stream_id", None) == stream_id]

    def data(self, stream_id: int) -> bytes:
        return b"".join(
            event.data
            for event in self.events
            if isinstance(event, h2.events.DataReceived) and event.stream_id == stream_id
        )

    async def open_websocket(self, headers: Iterable[tuple[bytes, bytes]] | None = None, path: bytes = b"/ws") -> int:
        """Send an extended CONNECT; return the stream id once the server answered."""
        stream_id = self.h2.get_next_available_stream_id()
        self.h2.send_headers(stream_id, list(headers) if headers is not None else extended_connect(path))
        self.flush()
        await self.response(stream_id)
        return stream_id

    async def response(self, stream_id: int) -> dict[bytes, bytes]:
        event = await self.wait_for(
            lambda e: isinstance(e, h2.events.ResponseReceived | h2.events.StreamReset) and e.stream_id == stream_id
        )
        if isinstance(event, h2.events.StreamReset):
            return {b":reset": str(int(event.error_code)).encode()}
        assert isinstance(event, h2.events.ResponseReceived)
        return dict(event.headers or [])

    def send(self, stream_id: int, data: bytes, *, end_stream: bool = False) -> None:
        self.h2.send_data(stream_id, data, end_stream=end_stream)
        self.flush()

    async def barrier(self) -> None:
        """Ping, and read until the answer: whatever the server wrote before answering has been read by then."""
        self.pings_sent += 1
        data = self.pings_sent.to_bytes(8, "big")
        self.h2.ping(data)
        self.flush()
        await self.wait_for(lambda e: isinstance(e, h2.events.PingAckReceived) and e.ping_data == data)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def hand_peer(server: Server, **settings: int) -> AsyncIterator[HandPeer]:
    """A :class:`HandPeer` connected to ``server``, closed when the block ends, even if the test failed."""
    peer = await HandPeer.client(server.port, **settings)
    try:
        yield peer
    finally:
        await peer.close()


def extended_connect(path: bytes = b"/ws", *, protocol: bytes | None = b"websocket") -> list[tuple[bytes, bytes]]:
    headers = [(b":method", b"CONNECT")]
    if protocol is not None:
        headers.append((b":protocol", protocol))
    return [
        *headers,
        (b":scheme", b"http"),
        (b":path", path),
        (b":authority", b"127.0.0.1"),
        (b"sec-websocket-version", b"13"),
    ]


def masked(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A frame as a client sends it."""
    return build_frame(opcode, payload, fin=fin, mask=b"\x01\x02\x03\x04")


def frames(data: bytes) -> list[tuple[int, bytes]]:
    """(first byte, payload) of each whole frame in ``data`` (from a server: unmasked)."""
    found = []
    while data:
        first, _length, _masked, _key, payload, data = parse_frame(data)
        found.append((first, payload))
    return found


# ------------------------------------------------------------ our client, our server


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2-alpn"])
def test_many_websockets_share_one_connection(tls: bool, send_path: str) -> None:
    server_ssl, client_ssl = tls_contexts() if tls else (None, None)
    seen: list[WebSocket] = []

    async def handler(websocket: Any) -> None:
        seen.append(websocket)
        await echo(websocket)

    async def main() -> None:
        async with h2_server(handler, ssl=server_ssl) as server:
            url = f"{'wss' if tls else 'ws'}://127.0.0.1:{server.port}/chat"
            clients = [await connect(url, http2=True, ssl=client_ssl, ping_interval=None) for _ in range(20)]
            await asyncio.gather(*(ws.send(f"hello {index}") for index, ws in enumerate(clients)))
            replies = await asyncio.gather(*(ws.recv() for ws in clients))
            assert replies == [f"hello {index}" for index in range(20)]
            # One TCP connection: every stream has the same peer address and
            # the same h2 state machine on the client.
            assert len({ws.remote_address for ws in seen}) == 1
            assert len({id(ws._transport._connection) for ws in clients}) == 1
            assert sorted(ws.stream_id for ws in clients) == list(range(1, 40, 2))
            assert all(ws.stream_id is not None for ws in seen)
            assert all(ws.request is not None and ws.request.target == "/chat" for ws in seen)
            await asyncio.gather(*(ws.close() for ws in clients))
            assert [ws.close_code for ws in clients] == [1000] * 20
            # The client closed its connection with its last WebSocket.
            await asyncio.wait_for(clients[0]._transport._connection.lost, 5)

    run(main)


def test_http11_and_http2_on_one_tls_port() -> None:
    """ALPN: an HTTP/1.1-only client gets HTTP/1.1 on the same port, page and WebSocket."""
    server_ssl, client_ssl = tls_contexts()

    async def main() -> None:
        async with h2_server(ssl=server_ssl, process_request=page_or_websocket) as server:
            async with connect(f"wss://127.0.0.1:{server.port}/ws", ssl=client_ssl) as websocket:
                assert websocket.stream_id is None
                await websocket.send("over HTTP/1.1")
                assert await websocket.recv() == "over HTTP/1.1"
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server.port, ssl=client_ssl, server_hostname="127.0.0.1"
            )
            assert writer.get_extra_info("ssl_object").selected_alpn_protocol() is None
            writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert (await reader.read()).endswith(b"the page\n")
            writer.close()

    run(main)


def test_page_and_websocket_on_one_h2_connection() -> None:
    """Ordinary requests get process_request's answer, on the same connection as a WebSocket."""

    async def main() -> None:
        async with h2_server(process_request=page_or_websocket) as server, hand_peer(server) as peer:
            websocket = await peer.open_websocket()
            page = peer.h2.get_next_available_stream_id()
            peer.h2.send_headers(
                page,
                [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"127.0.0.1")],
                end_stream=True,
            )
            peer.flush()
            response = await peer.response(page)
            await peer.wait_for(lambda e: isinstance(e, h2.events.StreamEnded) and e.stream_id == page)
            assert response[b":status"] == b"200"
            # HTTP/2 forbids connection-specific headers (RFC 9113 section 8.2.2).
            assert b"connection" not in response
            assert peer.data(page) == b"the page\n"
            peer.send(websocket, masked(OP_TEXT, b"after the page"))
            await peer.wait_for(lambda e: isinstance(e, h2.events.DataReceived) and e.stream_id == websocket)
            assert frames(peer.data(websocket)) == [(0x81, b"after the page")]

    run(main)


def test_client_gets_rejection_with_status_and_body() -> None:
    def forbidden(target: str, headers: list[tuple[bytes, bytes]]) -> HttpResponse | None:
        return HttpResponse(403, [(b"content-type", b"text/plain")], b"no entry\n")

    async def main() -> None:
        async with h2_server(process_request=forbidden) as server:
            with pytest.raises(HandshakeRejected) as info:
                await connect(f"ws://127.0.0.1:{server.port}/", http2=True)
            assert (info.value.status_code, info.value.body) == (403, b"no entry\n")

    run(main)


def test_what_the_server_sends_with_its_200_reaches_our_client() -> None:
    """Messages (and the close) a server sends at once can share a read with its 200.

    They arrive before the opening task has attached the WebSocket to the
    stream; they used to be dropped, and the client waited for ever.
    """

    async def talk_first(websocket: Any) -> None:
        await websocket.send("first")
        await websocket.send(b"second")

    async def main() -> None:
        async with h2_server(talk_first) as server, asyncio.timeout(10):
            websocket = await connect(f"ws://127.0.0.1:{server.port}/", http2=True, ping_interval=None)
            assert [await websocket.recv(), await websocket.recv()] == ["first", b"second"]
            with pytest.raises(ConnectionClosed) as closed:
                await websocket.recv()
            assert closed.value.code == 1000

    run(main)


def test_a_message_before_a_close_in_the_next_data_frame_is_answered() -> None:
    """The ordering rule across DATA frames: the Close waits until the application took the message."""

    async def main() -> None:
        async with h2_server() as server, hand_peer(server) as peer:
            stream = await peer.open_websocket()
            peer.h2.send_data(stream, masked(OP_TEXT, b"answer me"))
            peer.h2.send_data(stream, masked(0x8, (1000).to_bytes(2, "big")))
            peer.flush()
            await peer.wait_for(lambda e: isinstance(e, h2.events.StreamEnded) and e.stream_id == stream)
            assert frames(peer.data(stream)) == [(0x81, b"answer me"), (0x88, (1000).to_bytes(2, "big"))]

    run(main)


def test_closing_ends_the_stream_cleanly() -> None:
    """RFC 8441 section 6: a closing handshake, then END_STREAM both ways; no reset."""

    async def main() -> None:
        closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

        async def handler(websocket: Any) -> None:
            with contextlib.suppress(ConnectionClosed):
                await websocket.recv()
            await websocket.wait_closed()
            closed.set_result(websocket.close_code)

        async with h2_server(handler) as server, hand_peer(server) as peer:
            stream = await peer.open_websocket()
            peer.send(stream, masked(0x8, (1000).to_bytes(2, "big") + b"bye"))
            await peer.wait_for(lambda e: isinstance(e, h2.events.StreamEnded) and e.stream_id == stream)
            assert frames(peer.data(stream)) == [(0x88, (1000).to_bytes(2, "big") + b"bye")]
            peer.h2.end_stream(stream)
            peer.flush()
            assert await closed == 1000
            assert not any(isinstance(e, h2.events.StreamReset) for e in peer.events)

    run(main)


# ------------------------------------------------------------------ failure cases


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (extended_connect(protocol=None), b"400"),
        (extended_connect(protocol=b"chat"), b"400"),
        ([*extended_connect()[:-1], (b"sec-websocket-version", b"8")], b"426"),
    ],
    ids=["missing-protocol", "other-protocol", "wrong-version"],
)
def test_bad_extended_connect_is_refused_and_the_connection_goes_on(
    headers: list[tuple[bytes, bytes]], status: bytes
) -> None:
    async def main() -> None:
        async with h2_server() as server, hand_peer(server) as peer:
            stream = peer.h2.get_next_available_stream_id()
            peer.h2.send_headers(stream, headers)
            peer.flush()
            response = await peer.response(stream)
            await peer.wait_for(lambda e: isinstance(e, h2.events.StreamEnded) and e.stream_id == stream)
            assert response[b":status"] == status
            # The refusal says why, and the connection still carries WebSockets.
            assert peer.data(stream)
            good = await peer.open_websocket()
            peer.send(good, masked(OP_TEXT, b"still here"))
            await peer.wait_for(lambda e: isinstance(e, h2.events.DataReceived) and e.stream_id == good)
            assert frames(peer.data(good)) == [(0x81, b"still here")]

    run(main)


def test_rst_stream_mid_message_ends_only_that_websocket() -> None:
    async def main() -> None:
        codes: asyncio.Queue[int | None] = asyncio.Queue()

        async def handler(websocket: Any) -> None:
            try:
                await echo(websocket)
            finally:
                await websocket.wait_closed()
                await codes.put(websocket.close_code)

        async with h2_server(handler) as server, hand_peer(server) as peer:
            first = await peer.open_websocket()
            second = await peer.open_websocket()
            # Half a frame, then the stream is reset (RFC 8441 section 6: a TCP reset).
            peer.send(first, masked(OP_BINARY, b"x" * 1000)[:300])
            peer.h2.reset_stream(first, h2.errors.ErrorCodes.CANCEL)
            peer.flush()
            assert await codes.get() == 1006
            peer.send(second, masked(OP_TEXT, b"unaffected"))
            await peer.wait_for(lambda e: isinstance(e, h2.events.DataReceived) and e.stream_id == second)
            assert frames(peer.data(second)) == [(0x81, b"unaffected")]

    run(main)


def test_protocol_failure_resets_its_stream_only() -> None:
    async def main() -> None:
        async with h2_server() as server, hand_peer(server) as peer:
            bad = await peer.open_websocket()
            good = await peer.open_websocket()
            # Unmasked, from a client: RFC 6455 section 5.1, fail with 1002.
            peer.send(bad, build_frame(OP_TEXT, b"unmasked"))
            await peer.wait_for(lambda e: isinstance(e, h2.events.StreamReset) and e.stream_id == bad)
            reset = next(e for e in peer.events if isinstance(e, h2.events.StreamReset))
            assert reset.error_code == h2.errors.ErrorCodes.CANCEL
            ((first, payload),) = frames(peer.data(bad))
            assert (first, int.from_bytes(payload[:2], "big")) == (0x88, 1002)
            peer.send(good, masked(OP_TEXT, b"fine"))
            await peer.wait_for(lambda e: isinstance(e, h2.events.DataReceived) and e.stream_id == good)
            assert frames(peer.data(good)) == [(0x81, b"fine")]

    run(main)


def test_a_stream_whose_window_is_zero_stalls_nobody_else(send_path: str) -> None:
    """HTTP/2 flow control is the backpressure, per stream, in both directions."""

    async def main() -> None:
        sends_done: dict[str, int] = {}
        gate = asyncio.Event()
        stuck: list[Any] = []

        async def handler(websocket: Any) -> None:
            assert websocket.request is not None
            if websocket.request.target == "/flood":
                # Sends towards a peer that never reopens this stream's window.
                stuck.append(websocket)
                for count in range(1, 100):
                    await websocket.send(b"y" * 1000)
                    sends_done["flood"] = count
            elif websocket.request.target == "/deaf":
                # Never reads until told: the peer's window for it closes.
                await gate.wait()
                await echo(websocket)
            else:
                await echo(websocket)

        async with h2_server(handler, max_queue=2) as server, hand_peer(server, INITIAL_WINDOW_SIZE=4000) as peer:
            try:
                flood = await peer.open_websocket(path=b"/flood")
                deaf = await peer.open_websocket(path=b"/deaf")
                other = await peer.open_websocket(path=b"/other")
                # Send to the deaf stream until its window is zero.
                while (window := peer.h2.local_flow_control_window(deaf)) > 0:
                    peer.send(deaf, masked(OP_BINARY, b"z" * min(window - 8, 1000))[:window])
                    await peer.writer.drain()
                # A WINDOW_UPDATE the server (wrongly) sent for it would have been read by now.
                await peer.barrier()
                assert peer.h2.local_flow_control_window(deaf) == 0
                # The flood stream's DATA stopped at the peer's window of 4000
                # bytes, and its sends once the stream's buffer passed the
                # high-water mark: what waits in the server is bounded.
                await peer.wait_for(lambda e: isinstance(e, h2.events.DataReceived) and len(peer.data(flood)) >= 4000)
                await peer.barrier()
                assert len(peer.data(flood)) == 4000
                assert sends_done.get("flood", 0) <= (4000 + STREAM_HIGH_WATER) // 1004 + 1
                waiting = stuck[0]._transport.get_write_buffer_size()
                assert STREAM_HIGH_WATER < waiting <= STREAM_HIGH_WATER + 1004
                # Meanwhile another stream on the same connection echoes.
                for index in range(10):
                    peer.send(other, masked(OP_TEXT, f"message {index}".encode()))
                await peer.wait_for(lambda e: len(frames(peer.data(other))) == 10)
                assert [payload for _, payload in frames(peer.data(other))] == [
                    f"message {i}".encode() for i in range(10)
                ]
                # Reopen the flood stream's window: the server's sends go on.
                peer.h2.increment_flow_control_window(STREAM_WINDOW, flood)
                peer.flush()
                await peer.wait_for(lambda e: len(peer.data(flood)) > 8000)
            finally:
                # Even when the test fails: the handlers must end for the server to close.
                gate.set()

    run(main)


def test_hundred_streams_at_once_from_a_hand_peer() -> None:
    async def main() -> None:
        async with h2_server() as server, hand_peer(server) as peer:
            streams = []
            for _ in range(100):
                stream = peer.h2.get_next_available_stream_id()
                peer.h2.send_headers(stream, extended_connect())
                peer.h2.send_data(stream, masked(OP_TEXT, str(stream).encode()))
                streams.append(stream)
            peer.flush()
            await peer.wait_for(lambda e: all(frames(peer.data(s)) for s in streams))
            assert [frames(peer.data(s)) for s in streams] == [[(0x81, str(s).encode())] for s in streams]

    run(main)


def test_server_without_extended_connect_is_reported() -> None:
    """RFC 8441 section 3: without SETTINGS_ENABLE_CONNECT_PROTOCOL the client must not send :protocol."""

    async def main() -> None:
        requests: list[h2.events.Event] = []

        async def plain_h2(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
            connection.initiate_connection()
            writer.write(connection.data_to_send())
            while data := await reader.read(65536):
                requests.extend(e for e in connection.receive_data(data) if isinstance(e, h2.events.RequestReceived))
                writer.write(connection.data_to_send())
            writer.close()

        server = await asyncio.start_server(plain_h2, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(ExtendedConnectUnsupported, match="SETTINGS_ENABLE_CONNECT_PROTOCOL"):
                await connect(f"ws://127.0.0.1:{port}/", http2=True)
            assert requests == []
        finally:
            server.close()
            await server.wait_closed()

    run(main)


# --------------------------------------------------------------- hypercorn's server


def test_our_client_against_hypercorn_over_h2(tmp_path: Path) -> None:
    """hypercorn serves RFC 8441; our client opens two WebSockets on one of its HTTP/2 connections."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    client_ssl = ssl.create_default_context()
    ca.configure_trust(client_ssl)
    scopes: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        scopes.append(scope)
        assert (await receive())["type"] == "websocket.connect"
        chosen = "echo" if "echo" in scope["subprotocols"] else None
        await send({"type": "websocket.accept", "subprotocol": chosen})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")})

    async def main() -> None:
        config = Config()
        # hypercorn serves a socket that already listens: connections wait in
        # its backlog until hypercorn accepts them, so nothing waits for the port.
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        # hypercorn makes its own socket object of the descriptor, and closes it.
        config.bind = [f"fd://{listener.detach()}"]
        config.certfile = config.keyfile = str(tmp_path / "server.pem")
        config.accesslog = config.errorlog = None
        stop = asyncio.Event()
        task = asyncio.create_task(hypercorn_serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
        try:
            url = f"wss://127.0.0.1:{port}/hyper"
            first = await connect(url, http2=True, ssl=client_ssl, subprotocols=["echo"], ping_interval=None)
            second = await connect(url, http2=True, ssl=client_ssl, ping_interval=None)
            assert first._transport._connection is second._transport._connection
            assert first.subprotocol == "echo"
            await first.send("text over hypercorn")
            await second.send(b"\x00bytes" * 5000)
            assert await first.recv() == "text over hypercorn"
            assert await second.recv() == b"\x00bytes" * 5000
            await first.close()
            await second.close()
            assert (first.close_code, second.close_code) == (1000, 1000)
            # hypercorn saw HTTP/2 WebSockets, not HTTP/1.1 upgrades.
            assert [scope["http_version"] for scope in scopes] == ["2", "2"]
        finally:
            stop.set()
            await task

    run(main)


# ------------------------------------------------------------ more of the contract


def test_large_messages_reopen_the_windows_both_ways(send_path: str) -> None:
    """Messages far larger than a stream's window: each side reopens it as its application reads."""

    async def main() -> None:
        async with h2_server(max_message_size=None) as server:
            url = f"ws://127.0.0.1:{server.port}/"
            async with connect(url, http2=True, max_message_size=None, ping_interval=None) as websocket:
                binary = bytes(range(256)) * 4096  # 1 MiB
                text = "κόσμε " * 50_000
                await websocket.send(binary)
                await websocket.send(text)
                assert await websocket.recv() == binary
                assert await websocket.recv() == text

    run(main)


def test_ping_awaits_its_pong_and_keepalive_gives_up_on_a_silent_peer() -> None:
    async def main() -> None:
        codes: asyncio.Queue[int | None] = asyncio.Queue()

        async def handler(websocket: Any) -> None:
            await websocket.wait_closed()
            await codes.put(websocket.close_code)

        async with (
            h2_server() as server,
            connect(f"ws://127.0.0.1:{server.port}/", http2=True, ping_interval=None) as websocket,
        ):
            pong = await websocket.ping(b"are you there")
            await pong
        async with (
            h2_server(handler, ping_interval=0.05, ping_timeout=0.05) as server,
            hand_peer(server) as peer,
        ):
            # A peer that never answers the keepalive Ping: its stream is reset, the others live on.
            stream = await peer.open_websocket()
            await peer.wait_for(lambda e: isinstance(e, h2.events.StreamReset) and e.stream_id == stream)
            ping, close = frames(peer.data(stream))
            assert ping[0] == 0x89
            assert (close[0], int.from_bytes(close[1][:2], "big")) == (0x88, 1011)
            assert await codes.get() == 1006

    run(main)


def test_a_failing_handler_closes_its_websocket_with_1011() -> None:
    async def failing(websocket: Any) -> None:
        raise RuntimeError("the application broke")

    async def main() -> None:
        async with h2_server(failing) as server, hand_peer(server) as peer:
            stream = await peer.open_websocket()
            await peer.wait_for(lambda e: isinstance(e, h2.events.DataReceived) and e.stream_id == stream)
            ((first, payload),) = frames(peer.data(stream))
            assert (first, int.from_bytes(payload[:2], "big")) == (0x88, 1011)

    run(main)


def test_an_http2_connection_error_ends_every_websocket_on_it() -> None:
    async def main() -> None:
        codes: asyncio.Queue[int | None] = asyncio.Queue()

        async def handler(websocket: Any) -> None:
            await websocket.wait_closed()
            await codes.put(websocket.close_code)

        async with h2_server(handler) as server, hand_peer(server) as peer:
            await peer.open_websocket()
            await peer.open_websocket()
            # A DATA frame on stream 0 is a connection error (RFC 9113 section 6.1).
            peer.writer.write(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")
            assert [await codes.get(), await codes.get()] == [1006, 1006]
            goaway = await peer.wait_for(lambda e: isinstance(e, h2.events.ConnectionTerminated))
            assert isinstance(goaway, h2.events.ConnectionTerminated)
            assert goaway.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR

    run(main)


# ------------------------------------------------- DATA frames taken past h2


def raw_frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """An HTTP/2 frame built by hand (RFC 9113 section 4.1), for what h2 would refuse to send."""
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream_id.to_bytes(4, "big") + payload


def test_data_frames_cut_anywhere_and_mixed_with_other_frames_arrive_in_order() -> None:
    """Plain DATA frames skip h2; padded ones, PINGs and the rest go through it, in order, at any cut."""

    async def main() -> None:
        async with h2_server() as server, hand_peer(server) as peer:
            stream = await peer.open_websocket()
            sent = [f"message {index}".encode() for index in range(6)]
            for index, payload in enumerate(sent):
                # Even messages in plain DATA frames, odd ones padded (h2's path).
                peer.h2.send_data(stream, masked(OP_TEXT, payload), pad_length=None if index % 2 == 0 else 7)
                if index == 2:
                    peer.h2.ping(b"12345678")
            # A message in two frames: its first half plain, its second padded.
            message = masked(OP_BINARY, b"b" * 300)
            peer.h2.send_data(stream, message[:100])
            peer.h2.send_data(stream, message[100:], pad_length=3)
            wire = peer.h2.data_to_send()
            for index in range(len(wire)):
                # One byte per write: frames and frame headers cut everywhere.
                peer.writer.write(wire[index : index + 1])
                await peer.writer.drain()
            await peer.wait_for(lambda e: len(frames(peer.data(stream))) == 7)
            assert frames(peer.data(stream)) == [(0x81, payload) for payload in sent] + [(0x82, b"b" * 300)]
            assert any(isinstance(event, h2.events.PingAckReceived) for event in peer.events)

    run(main)


def test_more_than_the_window_in_plain_data_frames_resets_that_stream_only() -> None:
    """RFC 9113 section 6.9.1, checked for the frames h2 does not see: FLOW_CONTROL_ERROR on that stream."""
    gate = asyncio.Event()

    async def handler(websocket: Any) -> None:
        if websocket.request is not None and websocket.request.target == "/deaf":
            await gate.wait()
        await echo(websocket)

    async def main() -> None:
        async with h2_server(handler, max_queue=1) as server, hand_peer(server) as peer:
            deaf = await peer.open_websocket(path=b"/deaf")
            other = await peer.open_websocket(path=b"/other")
            while (window := peer.h2.local_flow_control_window(deaf)) > 0:
                peer.send(deaf, masked(OP_BINARY, b"z" * min(window - 8, 1000))[:window])
                await peer.writer.drain()
            # One byte beyond the window the server gave, which h2 would not send.
            peer.writer.write(raw_frame(0x0, 0x0, deaf, b"z"))
            reset = await peer.wait_for(lambda e: isinstance(e, h2.events.StreamReset) and e.stream_id == deaf)
            assert isinstance(reset, h2.events.StreamReset)
            assert reset.error_code == h2.errors.ErrorCodes.FLOW_CONTROL_ERROR
            peer.send(other, masked(OP_TEXT, b"still here"))
            await peer.wait_for(lambda e: isinstance(e, h2.events.DataReceived) and e.stream_id == other)
            assert frames(peer.data(other)) == [(0x81, b"still here")]
            gate.set()

    run(main)


def test_a_data_frame_inside_a_header_block_is_a_connection_error() -> None:
    """RFC 9113 section 6.10: only CONTINUATION may follow HEADERS without END_HEADERS; h2 sees the DATA frame."""

    async def main() -> None:
        async with h2_server() as server, hand_peer(server) as peer:
            stream = await peer.open_websocket()
            block = peer.h2.encoder.encode(extended_connect())
            peer.writer.write(
                raw_frame(0x1, 0x0, stream + 2, block[:5]) + raw_frame(0x0, 0x0, stream, masked(OP_TEXT, b"no"))
            )
            ended = await peer.wait_for(lambda e: isinstance(e, h2.events.ConnectionTerminated))
            assert isinstance(ended, h2.events.ConnectionTerminated)
            assert ended.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
            assert frames(peer.data(stream)) == []

    run(main)


def test_written_data_frames_keep_to_the_windows_the_peer_sets_and_changes(send_path: str) -> None:
    """Our DATA frames skip h2 too, but its send windows stay right: SETTINGS shrink them, WINDOW_UPDATE opens them."""
    echoed = asyncio.Event()

    async def handler(websocket: Any) -> None:
        async for message in websocket:
            await websocket.send(message)
            echoed.set()

    async def main() -> None:
        async with h2_server(handler) as server, hand_peer(server) as peer:
            stream = await peer.open_websocket()
            peer.send(stream, masked(OP_TEXT, b"first"))
            await peer.wait_for(lambda e: isinstance(e, h2.events.DataReceived) and e.stream_id == stream)
            # RFC 9113 section 6.9.2: a new initial window size changes the
            # window of every open stream by the difference (here to -7 after 7 bytes sent).
            peer.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
            peer.flush()
            await peer.wait_for(lambda e: isinstance(e, h2.events.SettingsAcknowledged))
            echoed.clear()
            peer.send(stream, masked(OP_TEXT, b"second"))
            await echoed.wait()
            # Anything the server wrote before the Ping's answer would be here.
            peer.h2.ping(b"barrier!")
            peer.flush()
            await peer.wait_for(lambda e: isinstance(e, h2.events.PingAckReceived))
            assert frames(peer.data(stream)) == [(0x81, b"first")]
            # 7 bytes make the window 0 again: still nothing; 8 more let the echo (8 bytes) through.
            peer.h2.increment_flow_control_window(7, stream)
            peer.h2.ping(b"barrier2")
            peer.flush()
            await peer.wait_for(lambda e: isinstance(e, h2.events.PingAckReceived) and e.ping_data == b"barrier2")
            assert frames(peer.data(stream)) == [(0x81, b"first")]
            peer.h2.increment_flow_control_window(8, stream)
            peer.flush()
            await peer.wait_for(lambda e: len(frames(peer.data(stream))) == 2)
            assert frames(peer.data(stream)) == [(0x81, b"first"), (0x81, b"second")]

    run(main)


def test_data_behind_a_reset_in_the_same_read_reaches_nobody() -> None:
    """h2 reads the RST_STREAM before the DATA frame behind it is looked at: the stream is gone by then."""
    received: list[str | bytes] = []
    codes: asyncio.Queue[int | None] = asyncio.Queue()

    async def handler(websocket: Any) -> None:
        try:
            async for message in websocket:
                received.append(message)
        finally:
            await codes.put(websocket.close_code)

    async def main() -> None:
        async with h2_server(handler) as server, hand_peer(server) as peer:
            stream = await peer.open_websocket()
            peer.h2.reset_stream(stream, h2.errors.ErrorCodes.CANCEL)
            peer.writer.write(peer.h2.data_to_send() + raw_frame(0x0, 0x0, stream, masked(OP_TEXT, b"too late")))
            assert await codes.get() == 1006
            assert received == []

    run(main)


def test_select_subprotocol_and_process_response_decide_http2_streams_too() -> None:
    def select(request: Any) -> str | None:
        return "second" if "second" in request.subprotocols else None

    def process_response(request: Any, accept: Any) -> HttpResponse | None:
        if request.target == "/private":
            return HttpResponse(403, [(b"content-type", b"text/plain")], b"not for you\n")
        return None

    async def main() -> None:
        async with h2_server(select_subprotocol=select, process_response=process_response) as server:
            url = f"ws://127.0.0.1:{server.port}"
            async with connect(f"{url}/chat", http2=True, subprotocols=["first", "second"]) as websocket:
                assert websocket.stream_id is not None
                assert websocket.subprotocol == "second"
                await websocket.send("over the chosen subprotocol")
                assert await websocket.recv() == "over the chosen subprotocol"
            with pytest.raises(HandshakeRejected) as rejected:
                await connect(f"{url}/private", http2=True)
            assert rejected.value.status_code == 403
            assert rejected.value.body == b"not for you\n"

    run(main)


class _WindowsKeptElsewhere(h2.connection.H2Connection):
    """An h2 whose connection send window is not the attribute the driver would take frames' sizes off."""

    @property  # type: ignore[override]
    def outbound_flow_control_window(self) -> int:
        return 65535

    @outbound_flow_control_window.setter
    def outbound_flow_control_window(self, value: int) -> None:
        pass


def test_whether_h2_keeps_its_send_windows_where_the_driver_writes_is_tried_not_assumed() -> None:
    """The installed h2 keeps them (the driver builds its DATA frames); an h2 that does not gets send_data."""
    assert http2_driver._h2_keeps_send_windows() is True
    assert http2_driver._H2_KEEPS_SEND_WINDOWS is True
    assert http2_driver._h2_keeps_send_windows(_WindowsKeptElsewhere) is False
