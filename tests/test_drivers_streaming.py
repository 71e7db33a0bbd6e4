"""Receiving a message in pieces (``recv_streaming``): the shared sans-I/O part, then each driver.

The sans-I/O tests feed a client connection's frames, cut anywhere, to the
part of a driver's WebSocket that is not I/O, and take pieces the way a
driver's ``recv_streaming`` does. The driver tests run one client application
per driver against a scripted server on 127.0.0.1 that writes frames by hand
and reads the client's frames back with a server ``Connection``. The threads
driver runs the same coroutines through a facade whose calls block.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio
from driver_peers import raw_server
from hypothesis import given, settings
from hypothesis import strategies as st

from wsproto_core.connection import Connection, ConnectionType
from wsproto_core.drivers import ConnectionClosed, Settings
from wsproto_core.drivers import asyncio as asyncio_driver
from wsproto_core.drivers import sync as sync_driver
from wsproto_core.drivers import trio as trio_driver
from wsproto_core.drivers._streaming import END, STREAM_IN_PROGRESS, WAIT, IncomingMessage, PieceReader, take_message
from wsproto_core.drivers._websocket import WebSocketState
from wsproto_core.errors import LocalProtocolError
from wsproto_core.events import CloseConnection, TextMessage
from wsproto_core.managed import ManagedConnection

#: Seconds after which a wait is a failure (the machine may be loaded).
GUARD = 30.0

TEXT = 0x1
BINARY = 0x2
CONTINUATION = 0x0
CLOSE = 0x8


def server_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """An unmasked frame, as a server sends it."""
    first = (0x80 if fin else 0) | opcode
    length = len(payload)
    if length < 126:
        return bytes([first, length]) + payload
    if length < 65536:
        return bytes([first, 126]) + length.to_bytes(2, "big") + payload
    return bytes([first, 127]) + length.to_bytes(8, "big") + payload


def fragments(opcode: int, parts: list[bytes]) -> list[bytes]:
    """The frames of one message whose payload is cut into ``parts``."""
    return [
        server_frame(opcode if index == 0 else CONTINUATION, part, fin=index == len(parts) - 1)
        for index, part in enumerate(parts)
    ]


# ------------------------------------------------------------------ sans-I/O


def client_state(max_queue: int = 16, max_message_size: int | None = None) -> WebSocketState:
    connection = Connection(ConnectionType.CLIENT, max_message_size=max_message_size)
    # As the drivers run it: pieces as they arrive, and the ordering rule.
    managed = ManagedConnection(connection, client=True, assemble_messages=False, hold_after_message=True)
    return WebSocketState(managed, Settings(max_queue=max_queue), [], None, None)


def feed(state: WebSocketState, data: bytes) -> None:
    state._managed.receive_data(data)
    state._handle_events(0.0)


@st.composite
def cut_message(draw: st.DrawFn) -> tuple[str | bytes, list[bytes], list[int]]:
    """A message, its payload cut into frames anywhere (UTF-8 characters included), and read sizes."""
    message: str | bytes = draw(st.one_of(st.text(max_size=200), st.binary(max_size=300)))
    payload = message.encode() if isinstance(message, str) else message
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=8)))
    bounds = [0, *cuts, len(payload)]
    parts = [payload[start:end] for start, end in itertools.pairwise(bounds)]
    reads = draw(st.lists(st.integers(1, 64), min_size=1, max_size=40))
    return message, parts, reads


@settings(max_examples=300, deadline=None)
@given(cut_message(), st.booleans())
def test_pieces_join_to_the_message_for_any_fragmentation_and_reads(
    case: tuple[str | bytes, list[bytes], list[int]], streaming: bool
) -> None:
    message, parts, reads = case
    opcode = TEXT if isinstance(message, str) else BINARY
    wire = b"".join(fragments(opcode, parts)) + server_frame(BINARY, b"next")
    state = client_state(max_queue=4)
    reader = PieceReader(state._messages)
    pieces: list[str | bytes] = []
    assembled: str | bytes | None = None
    position = 0
    sizes = iter(reads)
    while position < len(wire):
        size = next(sizes, 64)
        feed(state, wire[position : position + size])
        position += size
        # What a driver does between reads: take what it can.
        if streaming:
            while (piece := reader.next_piece()) not in (WAIT, END):
                pieces.append(piece)  # type: ignore[arg-type]
        elif assembled is None and state._messages:
            assembled = take_message(state._messages)
        # Pieces taken as they come never pause the reading.
        assert not (streaming and state._queue_full())
    while state._managed.held:
        # The ordering rule stopped the parse behind the message: the driver parses on once it was taken.
        state._handle_events(0.0)
    if streaming:
        assert reader.next_piece() is END
        assert all(piece for piece in pieces) or pieces == [message]
        assert all(isinstance(piece, type(message)) for piece in pieces)
        joined = "".join(pieces) if isinstance(message, str) else b"".join(pieces)  # type: ignore[arg-type]
        assert joined == message
    else:
        assert assembled == message
    # The next message is untouched, whichever way this one was read.
    assert take_message(state._messages) == b"next"
    assert not state._messages


def test_unread_pieces_pause_reading_until_taken() -> None:
    state = client_state(max_queue=3)
    for part in (b"a", b"b"):
        feed(state, server_frame(BINARY if part == b"a" else CONTINUATION, part, fin=False))
    assert not state._queue_full()
    feed(state, server_frame(CONTINUATION, b"c", fin=False))
    assert state._queue_full()
    reader = PieceReader(state._messages)
    assert reader.next_piece() == b"a"
    assert not state._queue_full()


def test_recv_assembling_a_message_lifts_the_piece_limit() -> None:
    state = client_state(max_queue=2)
    feed(state, b"".join(fragments(TEXT, [b"a", b"b"])[:1]) + server_frame(CONTINUATION, b"b", fin=False))
    assert state._queue_full()
    assert take_message(state._messages) is None  # recv() now waits for the rest, bounded by max_message_size
    assert not state._queue_full()
    feed(state, server_frame(CONTINUATION, b"c"))
    assert take_message(state._messages) == "abc"


def test_recv_during_a_half_read_stream_says_what_to_do() -> None:
    state = client_state()
    feed(state, server_frame(TEXT, b"ab", fin=False))
    reader = PieceReader(state._messages)
    assert reader.next_piece() == "ab"
    with pytest.raises(LocalProtocolError, match="iterate it to its end, or close it"):
        take_message(state._messages)
    with pytest.raises(LocalProtocolError, match="Another recv_streaming"):
        PieceReader(state._messages).next_piece()
    assert STREAM_IN_PROGRESS.startswith("recv_streaming()")


def test_an_abandoned_stream_skips_the_rest_of_its_message() -> None:
    state = client_state(max_queue=2)
    feed(state, server_frame(TEXT, b"ab", fin=False))
    reader = PieceReader(state._messages)
    assert reader.next_piece() == "ab"
    assert reader.abandon()
    assert reader.next_piece() is END
    # The rest is dropped as it arrives (no backpressure from it), then the next message comes.
    for _ in range(5):
        feed(state, server_frame(CONTINUATION, b"cd", fin=False))
    assert not state._queue_full()
    assert take_message(state._messages) is None
    feed(state, server_frame(CONTINUATION, b"ef") + server_frame(TEXT, b"next"))
    # The ordering rule stopped the parse behind the skipped message's end; the driver parses on.
    assert state._managed.held
    assert not state._messages
    state._handle_events(0.0)
    assert take_message(state._messages) == "next"


def test_a_whole_message_is_one_piece_and_an_empty_one_says_its_type() -> None:
    state = client_state()
    feed(state, server_frame(TEXT, b"whole") + b"".join(fragments(BINARY, [b"", b""])))
    reader = PieceReader(state._messages)
    assert [reader.next_piece(), reader.next_piece()] == ["whole", END]
    state._handle_events(0.0)  # Parse on behind the message taken (the ordering rule).
    reader = PieceReader(state._messages)
    assert [reader.next_piece(), reader.next_piece()] == [b"", END]


def test_the_message_limit_holds_across_pieces() -> None:
    state = client_state(max_message_size=5)
    feed(state, server_frame(BINARY, b"abc", fin=False))
    reader = PieceReader(state._messages)
    assert reader.next_piece() == b"abc"
    feed(state, server_frame(CONTINUATION, b"def"))
    assert reader.next_piece() is WAIT
    assert state._managed.close_event is not None
    assert state._managed.close_event.code == 1009


def test_the_ordering_rule_holds_after_the_last_piece() -> None:
    state = client_state()
    feed(state, b"".join(fragments(TEXT, [b"a", b"b"])) + server_frame(CLOSE, b"\x03\xe8"))
    # Parsing stopped behind the message: the application can still answer it.
    assert state._managed.held
    assert state._managed.close_event is None


def test_an_empty_message_in_pieces_is_empty_of_its_type() -> None:
    assert IncomingMessage(text=False).whole() == b""
    assert IncomingMessage(text=True).whole() == ""


# ------------------------------------------------------------------ drivers


class Script:
    """What the scripted server does: write frames, wait for the client's signals, then read its frames."""

    def __init__(self) -> None:
        self.steps: list[bytes | threading.Event] = []
        #: The client's events, as the server's Connection parsed them.
        self.received: queue.Queue[object] = queue.Queue()

        #: Whether the script sends a Close itself (then it does not answer the client's).
        self.closes = False

    def send(self, *frames: bytes) -> Script:
        self.steps.append(b"".join(frames))
        self.closes = self.closes or any(frame[0] == 0x80 | CLOSE for frame in frames)
        return self

    def client_close(self) -> CloseConnection:
        """The Close the client sent (waiting for it)."""
        while True:
            event = self.received.get(timeout=GUARD)
            if isinstance(event, CloseConnection):
                return event

    def wait(self, event: threading.Event) -> Script:
        self.steps.append(event)
        return self

    def __call__(self, sock: socket.socket, stop: threading.Event) -> None:
        sock.settimeout(GUARD)
        for step in self.steps:
            if isinstance(step, threading.Event):
                assert step.wait(GUARD)
            else:
                sock.sendall(step)
        connection = Connection(ConnectionType.SERVER)
        with contextlib.suppress(OSError):
            while data := sock.recv(65536):
                connection.receive_data(data)
                for event in connection.events():
                    self.received.put(event)
                    if isinstance(event, CloseConnection):
                        if not self.closes:
                            sock.sendall(connection.send(event.response()))
                        sock.close()
                        return


class SyncFacade:
    """The threads driver's WebSocket behind the async methods the test applications call (they block)."""

    def __init__(self, websocket: sync_driver.WebSocket) -> None:
        self.websocket = websocket

    async def recv(self) -> str | bytes:
        return self.websocket.recv()

    async def send(self, message: str | bytes) -> None:
        self.websocket.send(message)

    def recv_streaming(self) -> AsyncIterator[str | bytes]:
        return _BlockingPieces(self.websocket.recv_streaming())


class _BlockingPieces:
    def __init__(self, pieces: Iterator[str | bytes]) -> None:
        self.pieces = pieces

    def __aiter__(self) -> _BlockingPieces:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return next(self.pieces)
        except StopIteration:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        self.pieces.close()  # type: ignore[attr-defined]


Application = Callable[[Any], Awaitable[None]]


def run_client(driver: str, port: int, application: Application, **options: Any) -> None:
    """Connect our client with ``driver`` and run ``application(websocket)`` in that driver's model."""
    url = f"ws://127.0.0.1:{port}/"
    if driver == "trio":

        async def trio_main() -> None:
            with trio.fail_after(GUARD):
                async with trio_driver.connect(url, proxy=None, **options) as websocket:
                    await application(websocket)

        trio.run(trio_main)
    elif driver == "asyncio":

        async def asyncio_main() -> None:
            async with asyncio.timeout(GUARD):
                websocket = await asyncio_driver.connect(url, proxy=None, **options)
                try:
                    await application(websocket)
                finally:
                    await websocket.close()

        asyncio.run(asyncio_main())
    else:

        async def threads_main() -> None:
            with sync_driver.connect(url, proxy=None, **options) as websocket:
                await application(SyncFacade(websocket))

        asyncio.run(threads_main())


DRIVERS = ["asyncio", "trio", "threads"]


@pytest.mark.parametrize("driver", DRIVERS)
def test_pieces_arrive_before_the_message_ends(driver: str) -> None:
    first_piece_taken = threading.Event()
    # "é" (C3 A9) cut between two frames: each piece is decoded text.
    script = (
        Script()
        .send(server_frame(TEXT, b"caf\xc3", fin=False))
        .wait(first_piece_taken)
        .send(server_frame(CONTINUATION, b"\xa9 au lait", fin=False), server_frame(CONTINUATION, b"!"))
        .send(server_frame(BINARY, b"next"))
    )
    pieces: list[str | bytes] = []
    after: list[str | bytes] = []

    async def application(websocket: Any) -> None:
        async for piece in websocket.recv_streaming():
            pieces.append(piece)
            first_piece_taken.set()
        after.append(await websocket.recv())

    with raw_server(script) as port:
        run_client(driver, port, application)
    assert pieces[0] == "caf"
    assert all(isinstance(piece, str) for piece in pieces)
    assert "".join(pieces) == "café au lait!"  # type: ignore[arg-type]
    assert after == [b"next"]


@pytest.mark.parametrize("driver", DRIVERS)
def test_recv_assembles_and_streaming_a_whole_message_gives_one_piece(driver: str) -> None:
    script = Script().send(*fragments(BINARY, [b"ab", b"cd", b"ef"]), server_frame(TEXT, b"whole"))
    seen: list[object] = []

    async def application(websocket: Any) -> None:
        seen.append(await websocket.recv())
        seen.append([piece async for piece in websocket.recv_streaming()])

    with raw_server(script) as port:
        run_client(driver, port, application)
    assert seen == [b"abcdef", ["whole"]]


@pytest.mark.parametrize("driver", DRIVERS)
def test_recv_during_a_half_read_stream_raises_and_leaving_the_loop_skips_the_rest(driver: str) -> None:
    first_piece_taken = threading.Event()
    script = (
        Script()
        .send(server_frame(TEXT, b"one", fin=False))
        .wait(first_piece_taken)
        .send(server_frame(CONTINUATION, b"two", fin=False), server_frame(CONTINUATION, b"three"))
        .send(server_frame(TEXT, b"next"))
    )
    seen: list[object] = []

    async def application(websocket: Any) -> None:
        pieces = websocket.recv_streaming()
        async for piece in pieces:
            seen.append(piece)
            first_piece_taken.set()
            with pytest.raises(LocalProtocolError, match="iterate it to its end, or close it"):
                await websocket.recv()
            break
        await pieces.aclose()
        seen.append(await websocket.recv())

    with raw_server(script) as port:
        run_client(driver, port, application)
    assert seen == ["one", "next"]


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_stream_left_by_break_skips_the_rest(driver: str) -> None:
    script = Script().send(*fragments(BINARY, [b"1", b"2", b"3", b"4"]), server_frame(BINARY, b"next"))
    seen: list[object] = []

    async def application(websocket: Any) -> None:
        async for piece in websocket.recv_streaming():
            seen.append(piece)
            break
        seen.append(await websocket.recv())

    with raw_server(script) as port:
        run_client(driver, port, application)
    assert seen[0] == b"1"
    assert seen[-1] == b"next"


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_message_limit_holds_across_pieces_and_fails_the_stream(driver: str) -> None:
    script = Script().send(server_frame(BINARY, b"x" * 600, fin=False), server_frame(CONTINUATION, b"y" * 600))
    seen: list[object] = []

    async def application(websocket: Any) -> None:
        with pytest.raises(ConnectionClosed) as closed:
            async for piece in websocket.recv_streaming():
                seen.append(piece)
        seen.append(closed.value.code)

    with raw_server(script) as port:
        run_client(driver, port, application, max_message_size=1000)
    assert seen[-1] == 1009
    # The client failed the connection with 1009 (RFC 6455 section 7.4.1).
    assert script.client_close().code == 1009


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_close_in_the_middle_of_a_message_ends_the_stream(driver: str) -> None:
    script = Script().send(server_frame(TEXT, b"half", fin=False), server_frame(CLOSE, b"\x03\xe9going"))
    seen: list[object] = []

    async def application(websocket: Any) -> None:
        with pytest.raises(ConnectionClosed) as closed:
            async for piece in websocket.recv_streaming():
                seen.append(piece)
        seen.append((closed.value.code, closed.value.reason))

    with raw_server(script) as port:
        run_client(driver, port, application)
    assert seen == ["half", (1001, "going")]


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_message_streamed_before_a_close_can_be_answered(driver: str) -> None:
    # The message and the Close arrive in one write: the answer must still go out before our Close.
    script = Script().send(*fragments(TEXT, [b"ques", b"tion"]), server_frame(CLOSE, b"\x03\xe8"))

    async def application(websocket: Any) -> None:
        pieces = [piece async for piece in websocket.recv_streaming()]
        await websocket.send("answer to " + "".join(pieces))

    with raw_server(script) as port:
        run_client(driver, port, application)
    events = [script.received.get(timeout=GUARD) for _ in range(2)]
    assert isinstance(events[0], TextMessage)
    assert events[0].data == "answer to question"
    assert isinstance(events[1], CloseConnection)


def test_pieces_over_http2_are_the_frames_sent() -> None:
    # The asyncio WebSocket of an HTTP/2 stream (RFC 8441) streams as over HTTP/1.1.
    sent = [b"a" * 1000, b"b" * 3000, b"c"]

    async def handler(websocket: Any) -> None:
        await websocket.send_fragments(sent)
        await websocket.wait_closed()

    async def main() -> list[str | bytes]:
        async with asyncio.timeout(GUARD):
            server = await asyncio_driver.serve(handler, "127.0.0.1", 0, http2=True, ping_interval=None)
            try:
                url = f"ws://127.0.0.1:{server.port}/"
                async with asyncio_driver.connect(url, http2=True, ping_interval=None, proxy=None) as websocket:
                    assert websocket.stream_id is not None
                    return [piece async for piece in websocket.recv_streaming()]
            finally:
                await server.close()

    assert asyncio.run(main()) == sent


def test_a_listener_still_gets_whole_messages() -> None:
    script = Script().send(*fragments(TEXT, [b"in ", b"three ", b"pieces"]))
    received: queue.Queue[str | bytes] = queue.Queue()

    class Collect(asyncio_driver.Listener):
        def on_message(self, websocket: Any, message: str | bytes) -> None:
            received.put(message)

    async def main() -> None:
        async with asyncio.timeout(GUARD):
            websocket = await asyncio_driver.connect(url, listener=Collect(), proxy=None)
            try:
                assert await asyncio.to_thread(received.get, timeout=GUARD) == "in three pieces"
                with pytest.raises(LocalProtocolError, match="Listener"):
                    websocket.recv_streaming()
            finally:
                await websocket.close()

    with raw_server(script) as port:
        url = f"ws://127.0.0.1:{port}/"
        asyncio.run(main())
