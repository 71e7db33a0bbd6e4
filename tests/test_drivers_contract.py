"""One contract, checked against the three drivers (asyncio, trio, threads).

Each test is written once and parametrized over a small adapter per driver.
The adapter runs the driver's event loop (a fresh one per test) in a
background thread, so that the test itself stays synchronous: our client is
driven through thread hops into that loop, while server handlers and the
client application of the ordering-rule test run natively in the driver's
concurrency model (a thread hop there would change what is being tested).

Peers are our own driver or raw sockets on 127.0.0.1 that check the bytes on
the wire. Nothing waits by sleeping and nothing asserts elapsed time: every
wait ends on an event (a message, a frame, a closed socket, a queue item),
and the timeouts below only fail a test that hangs.

Time is injected: each driver's timers read a clock that moves only when a
test calls ``driver.advance(seconds)``: an asyncio loop whose ``time()`` is
manual, trio's ``MockClock`` (rate 0: peers run in threads, so it must not
jump by itself), and the threads driver's
:class:`~wsproto_core.drivers.clock.ManualClock`. A timer test moves the clock,
then waits for what must follow on the wire; it advances again only once that
came (the driver has then handled the first timer and armed the next).

A contract item a driver does not meet yet is listed in ``GAPS``: that
parameter is a strict xfail, so the fix has to remove the entry.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import queue
import select
import socket
import struct
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio
import trio.testing
from driver_peers import raw_server, silent_client

from wsproto_core.drivers import ConnectionClosed
from wsproto_core.drivers import asyncio as asyncio_driver
from wsproto_core.drivers import sync as sync_driver
from wsproto_core.drivers import trio as trio_driver
from wsproto_core.drivers.clock import ManualClock
from wsproto_core.managed import ManagedConnection

MiB = 1024 * 1024

#: Seconds after which a wait is a failure (the machine may be loaded).
GUARD = 30.0

#: What a server handler saw when its connection ended: (close_code, close_reason).
Record = tuple[int | None, str | None]

# ---------------------------------------------------------------- handlers
#
# The asyncio and trio WebSockets share method names, so their handlers are
# the same coroutines; the threads driver gets the same behaviours, blocking.


def async_handlers(records: queue.Queue[Record]) -> dict[str, Callable[[Any], Awaitable[None]]]:
    async def echo(websocket: Any) -> None:
        try:
            async for message in websocket:
                await websocket.send(message)
        finally:
            records.put((websocket.close_code, websocket.close_reason))

    async def returns(websocket: Any) -> None:
        await websocket.recv()

    async def raises(websocket: Any) -> None:
        await websocket.recv()
        raise RuntimeError("the handler failed")

    async def closes(websocket: Any) -> None:
        code, reason = str(await websocket.recv()).split(" ", 1)
        await websocket.close(int(code), reason)
        records.put((websocket.close_code, websocket.close_reason))

    async def answers_one(websocket: Any) -> None:
        await websocket.send(await websocket.recv())
        await websocket.wait_closed()
        records.put((websocket.close_code, websocket.close_reason))

    return {"echo": echo, "returns": returns, "raises": raises, "closes": closes, "answers_one": answers_one}


def sync_handlers(records: queue.Queue[Record]) -> dict[str, Callable[[Any], None]]:
    def echo(websocket: Any) -> None:
        try:
            for message in websocket:
                websocket.send(message)
        finally:
            records.put((websocket.close_code, websocket.close_reason))

    def returns(websocket: Any) -> None:
        websocket.recv()

    def raises(websocket: Any) -> None:
        websocket.recv()
        raise RuntimeError("the handler failed")

    def closes(websocket: Any) -> None:
        code, reason = str(websocket.recv()).split(" ", 1)
        websocket.close(int(code), reason)
        records.put((websocket.close_code, websocket.close_reason))

    def answers_one(websocket: Any) -> None:
        websocket.send(websocket.recv())
        websocket.wait_closed()
        records.put((websocket.close_code, websocket.close_reason))

    return {"echo": echo, "returns": returns, "raises": raises, "closes": closes, "answers_one": answers_one}


async def echo_client_application(websocket: Any, *, wait_closed: bool) -> None:
    """The client application of the ordering-rule tests.

    It echoes every message until the close, or (``wait_closed``) echoes one
    and then only waits for the close, without calling recv() again.
    """
    if wait_closed:
        await websocket.send(await websocket.recv())
        await websocket.wait_closed()
        return
    async for message in websocket:
        await websocket.send(message)


# ---------------------------------------------------------------- adapters


class Client:
    """Our client, driven from the test's thread: each method runs one call in the driver's model."""

    def __init__(self, websocket: Any, driver: Driver) -> None:
        self.websocket = websocket
        self._driver = driver

    def send(self, message: str | bytes) -> None:
        self._driver.call(self.websocket.send, message)

    def recv(self) -> str | bytes:
        return self._driver.call(self.websocket.recv)  # type: ignore[no-any-return]

    def ping(self, payload: bytes) -> None:
        """Send a Ping and return once its Pong has arrived."""
        self.wait_pong(self.send_ping(payload))

    def send_ping(self, payload: bytes) -> Any:
        """Send a Ping; return its waiter."""
        return self._driver.call(self.websocket.ping, payload)

    def wait_pong(self, waiter: Any) -> None:
        """Wait for the Pong of :meth:`send_ping`'s Ping (or the connection's end)."""
        self._driver.wait_pong(waiter)

    def close(self, code: int = 1000, reason: str = "") -> None:
        self._driver.call(self.websocket.close, code, reason)

    def start_closing(self, code: int, reason: str) -> concurrent.futures.Future[Any]:
        """Start close() without waiting for it: the future completes when it returns."""
        return self._driver.submit(self.websocket.close, code, reason)

    @property
    def close_code(self) -> int | None:
        return self.websocket.close_code  # type: ignore[no-any-return]

    @property
    def close_reason(self) -> str | None:
        return self.websocket.close_reason  # type: ignore[no-any-return]


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class Driver:
    """What every adapter offers; ``start`` and ``stop`` bracket one test."""

    name: str

    def __init__(self) -> None:
        self.records: queue.Queue[Record] = queue.Queue()

    def start(self) -> None:
        """Start the driver's event loop (if it has one)."""

    def stop(self) -> None:
        """Close every connection and server this test opened, and the loop."""

    def submit(self, function: Callable[..., Any], *arguments: Any) -> concurrent.futures.Future[Any]:
        """Start ``function(*arguments)`` in the driver's model; the future holds its result."""
        raise NotImplementedError

    def call(self, function: Callable[..., Any], *arguments: Any) -> Any:
        """Run ``function(*arguments)`` in the driver's model and return its result."""
        return self.submit(function, *arguments).result(GUARD)

    def wait_pong(self, waiter: Any) -> None:
        """Wait for a ping()'s waiter (raising what it raises)."""
        self.call(_await, waiter)

    def advance(self, seconds: float) -> None:
        """Move the clock that every timer of this test's connections reads."""
        raise NotImplementedError

    def serve(self, behaviour: str, **options: Any) -> int:
        """Start a server whose handler is ``behaviour``; return its port."""
        raise NotImplementedError

    def connect(self, port: int, **options: Any) -> Client:
        """Connect our client to 127.0.0.1:``port``."""
        raise NotImplementedError

    def echo_client(self, port: int, *, wait_closed: bool = False) -> None:
        """Run :func:`echo_client_application` natively against 127.0.0.1:``port``."""
        raise NotImplementedError


class ManualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` moves only when the test advances it."""

    def __init__(self) -> None:
        self.manual_time = 0.0
        super().__init__()

    def time(self) -> float:
        return self.manual_time


class AsyncioDriver(Driver):
    name = "asyncio"

    def start(self) -> None:
        self.loop = ManualTimeLoop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: list[asyncio_driver.Server] = []
        self.clients: list[asyncio_driver.WebSocket] = []

    def submit(self, function: Callable[..., Any], *arguments: Any) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(_await(function(*arguments)), self.loop)

    def advance(self, seconds: float) -> None:
        async def move() -> None:
            # In the loop's thread, between iterations: the next one runs what is due.
            self.loop.manual_time += seconds

        self.call(move)

    def stop(self) -> None:
        try:
            for websocket in self.clients:
                self.call(websocket.close)
            for server in self.servers:
                self.call(server.close)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(GUARD)
            self.loop.close()

    def serve(self, behaviour: str, **options: Any) -> int:
        handler = async_handlers(self.records)[behaviour]
        server = self.call(functools.partial(asyncio_driver.serve, handler, "127.0.0.1", 0, **options))
        self.servers.append(server)
        return int(server.port)

    def connect(self, port: int, **options: Any) -> Client:
        websocket = self.call(_await, asyncio_driver.connect(f"ws://127.0.0.1:{port}/", proxy=None, **options))
        self.clients.append(websocket)
        return Client(websocket, self)

    def echo_client(self, port: int, *, wait_closed: bool = False) -> None:
        async def application() -> None:
            websocket = await asyncio_driver.connect(f"ws://127.0.0.1:{port}/", proxy=None)
            await echo_client_application(websocket, wait_closed=wait_closed)

        self.call(application)


class TrioDriver(Driver):
    name = "trio"

    def start(self) -> None:
        ready = threading.Event()
        self.finished = trio.Event()
        # Rate 0 and no autojump: time stands still until advance() (the
        # peers run in threads, so an idle trio loop does not mean "waiting for time").
        self.clock = trio.testing.MockClock()

        async def main() -> None:
            self.token = trio.lowlevel.current_trio_token()
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                ready.set()
                await self.finished.wait()
                nursery.cancel_scope.cancel()

        self.thread = threading.Thread(target=trio.run, args=(main,), kwargs={"clock": self.clock}, daemon=True)
        self.thread.start()
        assert ready.wait(GUARD)
        self.servers: list[trio_driver.Server] = []
        self.clients: list[trio_driver.WebSocket] = []

    def submit(self, function: Callable[..., Any], *arguments: Any) -> concurrent.futures.Future[Any]:
        # A task in the test's nursery, guarded in real time by the future (trio's clock stands still).
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        async def run() -> None:
            try:
                future.set_result(await function(*arguments))
            except BaseException as exc:
                future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise  # Cancelled, for the nursery.

        self.token.run_sync_soon(self.nursery.start_soon, run)
        return future

    def advance(self, seconds: float) -> None:
        async def move() -> None:
            self.clock.jump(seconds)

        self.call(move)

    def stop(self) -> None:
        try:
            for websocket in self.clients:
                self.call(websocket.close)
            for server in self.servers:
                self.call(server.close)
        finally:
            trio.from_thread.run_sync(self.finished.set, trio_token=self.token)
            self.thread.join(GUARD)

    def serve(self, behaviour: str, **options: Any) -> int:
        handler = async_handlers(self.records)[behaviour]
        start = functools.partial(trio_driver.serve, handler, "127.0.0.1", 0, **options)
        server = self.call(self.nursery.start, start)
        self.servers.append(server)
        return int(server.port)

    def connect(self, port: int, **options: Any) -> Client:
        async def hold(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            # trio's connect is a context manager: this task keeps it open.
            async with trio_driver.connect(f"ws://127.0.0.1:{port}/", **options) as websocket:
                task_status.started(websocket)
                await websocket.wait_closed()

        websocket = self.call(self.nursery.start, hold)
        self.clients.append(websocket)
        return Client(websocket, self)

    def echo_client(self, port: int, *, wait_closed: bool = False) -> None:
        async def application() -> None:
            async with trio_driver.connect(f"ws://127.0.0.1:{port}/") as websocket:
                await echo_client_application(websocket, wait_closed=wait_closed)

        self.call(application)


class ThreadsDriver(Driver):
    name = "threads"

    def start(self) -> None:
        self.clock = ManualClock()
        self.servers: list[tuple[sync_driver.Server, threading.Thread]] = []
        self.clients: list[sync_driver.WebSocket] = []

    def submit(self, function: Callable[..., Any], *arguments: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(function(*arguments))
            except BaseException as exc:  # noqa: BLE001 - handed to the test through the future
                future.set_exception(exc)

        threading.Thread(target=run, daemon=True).start()
        return future

    def call(self, function: Callable[..., Any], *arguments: Any) -> Any:
        return function(*arguments)

    def wait_pong(self, waiter: Any) -> None:
        # In the clock's seconds: only an advance() can make it give up.
        assert waiter.wait(GUARD), "no Pong"

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def stop(self) -> None:
        for websocket in self.clients:
            websocket.close()
        for server, thread in self.servers:
            server.shutdown()
            thread.join(GUARD)

    def serve(self, behaviour: str, **options: Any) -> int:
        server = sync_driver.serve(sync_handlers(self.records)[behaviour], "127.0.0.1", 0, clock=self.clock, **options)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.servers.append((server, thread))
        return server.port

    def connect(self, port: int, **options: Any) -> Client:
        websocket = sync_driver.connect(f"ws://127.0.0.1:{port}/", clock=self.clock, **options)
        self.clients.append(websocket)
        return Client(websocket, self)

    def echo_client(self, port: int, *, wait_closed: bool = False) -> None:
        with sync_driver.connect(f"ws://127.0.0.1:{port}/") as websocket:
            if wait_closed:
                websocket.send(websocket.recv(timeout=GUARD))
                assert websocket.wait_closed(GUARD)
                return
            for message in websocket:
                websocket.send(message)


#: (test, driver, parameter id or None for all) -> why that driver does not meet that contract item yet.
GAPS: dict[tuple[str, str, str | None], str] = {}

DRIVERS = {"asyncio": AsyncioDriver, "trio": TrioDriver, "threads": ThreadsDriver}


@pytest.fixture(params=sorted(DRIVERS))
def driver(request: pytest.FixtureRequest) -> Iterator[Driver]:
    ids = request.node.callspec.id.split("-")
    reasons = [
        reason
        for (test, driver_name, variant), reason in GAPS.items()
        if test == request.node.originalname and driver_name == request.param and (variant is None or variant in ids)
    ]
    for reason in reasons:
        # A contract item this driver does not meet yet: strict, so a fix must remove the entry.
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))
    adapter = DRIVERS[request.param]()
    adapter.start()
    try:
        yield adapter
    finally:
        adapter.stop()


# ---------------------------------------------------------------- wire helpers


def masked(opcode: int, payload: bytes, mask: bytes = b"\x0a\x0b\x0c\x0d") -> bytes:
    """One client frame (payloads under 126 bytes)."""
    assert len(payload) < 126
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def unmasked(opcode: int, payload: bytes) -> bytes:
    """One server frame (payloads under 126 bytes)."""
    assert len(payload) < 126
    return bytes((0x80 | opcode, len(payload))) + payload


def parse_frames(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Split ``data`` into (opcode, unmasked payload) frames; return them and the incomplete rest."""
    frames = []
    while len(data) >= 2:
        length, offset = data[1] & 0x7F, 2
        if length == 126:
            if len(data) < 4:
                break
            (length,), offset = struct.unpack("!H", data[2:4]), 4
        elif length == 127:
            if len(data) < 10:
                break
            (length,), offset = struct.unpack("!Q", data[2:10]), 10
        mask = b""
        if data[1] & 0x80:
            mask, offset = data[offset : offset + 4], offset + 4
        if len(data) < offset + length:
            break
        payload = data[offset : offset + length]
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        frames.append((data[0] & 0x0F, payload))
        data = data[offset + length :]
    return frames, data


def read_frames_until_close(
    sock: socket.socket, frames: list[tuple[int, bytes]] | None = None, timeout: float = GUARD
) -> list[tuple[int, bytes]]:
    """Every frame the peer sends, up to and including its Close (or until it hangs up), added to ``frames``."""
    sock.settimeout(timeout)
    frames = [] if frames is None else frames
    pending = b""
    while not frames or frames[-1][0] != 0x8:
        chunk = sock.recv(65536)
        if not chunk:
            break
        parsed, pending = parse_frames(pending + chunk)
        frames += parsed
    return frames


@contextlib.contextmanager
def raw_client(port: int) -> Iterator[socket.socket]:
    sock = silent_client(port)
    try:
        yield sock
    finally:
        sock.close()


@contextlib.contextmanager
def handed_over_server() -> Iterator[tuple[int, queue.Queue[socket.socket]]]:
    """A raw server that hands its side of the upgraded connection to the test (through the queue)."""
    sockets: queue.Queue[socket.socket] = queue.Queue()

    def script(sock: socket.socket, stop: threading.Event) -> None:
        sockets.put(sock)
        stop.wait(GUARD)

    with raw_server(script) as port:
        yield port, sockets


class FrameReader:
    """The frames a raw peer receives, one at a time, as they come."""

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(GUARD)
        self._sock = sock
        self._pending = b""
        self._frames: list[tuple[int, bytes]] = []

    def next(self) -> tuple[int, bytes]:
        """The next frame (opcode, unmasked payload); ``EOFError`` if the connection ends first."""
        while not self._frames:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise EOFError("the connection ended")
            self._frames, self._pending = parse_frames(self._pending + chunk)
        return self._frames.pop(0)

    def ends(self) -> bool:
        """Whether the connection ends with no other frame first."""
        try:
            frame = self.next()
        except EOFError:
            return True
        raise AssertionError(f"a frame came instead of the end: {frame}")


# ---------------------------------------------------------------- the contract


@pytest.mark.parametrize("message", ["text é", b"\x00binary\xff"], ids=["text", "binary"])
def test_echo(driver: Driver, message: str | bytes) -> None:
    client = driver.connect(driver.serve("echo"))
    client.send(message)
    assert client.recv() == message
    client.send(message * 1000)
    assert client.recv() == message * 1000


@pytest.mark.parametrize("size", [100_000, 3 * MiB], ids=["100KB", "3MiB"])
def test_large_messages_are_read_into_their_payload_buffer(
    driver: Driver, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both roles read the rest of a large frame straight into its buffer, and the echo is exact.

    A 3 MiB frame cannot come in one read, so both sides must take that way
    (its 1 MiB pieces); 100 KB takes it when its first read is short enough.
    """
    readers: list[bool] = []
    payload_received = ManagedConnection.payload_received

    def counting(self: ManagedConnection, nbytes: int, now: float | None = None) -> None:
        readers.append(self.connection.client)
        payload_received(self, nbytes, now)

    monkeypatch.setattr(ManagedConnection, "payload_received", counting)
    # Uncompressed: permessage-deflate inflates into buffers of its own.
    options = {"compression": False, "max_message_size": 4 * MiB}
    client = driver.connect(driver.serve("echo", **options), **options)
    message = (bytes(range(251)) * (size // 251 + 1))[:size]
    for _ in range(3):
        client.send(message)
        assert client.recv() == message
    if size > MiB:
        assert set(readers) == {True, False}


def test_send_refuses_what_is_not_a_message(driver: Driver) -> None:
    """Neither str nor bytes-like: TypeError, and the connection goes on."""
    client = driver.connect(driver.serve("echo"))
    with pytest.raises(TypeError, match="bytes-like"):
        client.send(12)  # type: ignore[arg-type]
    client.send(bytearray(b"still open"))
    assert client.recv() == b"still open"


@pytest.mark.parametrize("handler", ["echo", "answers_one"], ids=["recv-loop", "wait_closed"])
def test_ordering_rule_as_server(driver: Driver, handler: str) -> None:
    """A message and a Close in one write: the handler's echo precedes our Close reply.

    The handler either keeps calling recv(), or answers the one message and
    then only waits for the close: the Close must be answered either way.
    """
    port = driver.serve(handler, compression=False)
    frames: list[tuple[int, bytes]] = []
    with raw_client(port) as sock:
        sock.sendall(masked(0x1, b"hello") + masked(0x8, b"\x03\xe8"))
        try:
            read_frames_until_close(sock, frames, timeout=5.0)
        except TimeoutError:
            # No Close reply: reset the connection so that the handler ends.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert frames == [(0x1, b"hello"), (0x8, b"\x03\xe8")]
    assert driver.records.get(timeout=GUARD) == (1000, "")


@pytest.mark.parametrize("wait_closed", [False, True], ids=["recv-loop", "wait_closed"])
def test_ordering_rule_as_client(driver: Driver, wait_closed: bool) -> None:
    """The server's message and Close in one write: our client's echo precedes its Close reply.

    The application either keeps calling recv(), or answers the one message
    and then only waits for the close: the Close must be answered either way.
    """
    seen: list[tuple[int, bytes]] = []

    def script(sock: socket.socket, stop: threading.Event) -> None:
        sock.sendall(unmasked(0x1, b"hello") + unmasked(0x8, b"\x03\xe8"))
        try:
            read_frames_until_close(sock, seen, timeout=5.0)
        except TimeoutError:
            # No Close reply: reset the connection, which even a client that
            # ignores the end of the stream notices, so that the test ends.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            sock.close()  # The server ends the TCP connection (RFC 6455 section 7.1.1).

    with raw_server(script) as port:
        driver.echo_client(port, wait_closed=wait_closed)
    assert seen == [(0x1, b"hello"), (0x8, b"\x03\xe8")]


def test_handler_return_closes_with_1000(driver: Driver) -> None:
    client = driver.connect(driver.serve("returns"))
    client.send("done")
    with pytest.raises(ConnectionClosed) as caught:
        client.recv()
    assert caught.value.code == 1000
    assert client.close_code == 1000


def test_handler_raising_closes_with_1011(driver: Driver) -> None:
    client = driver.connect(driver.serve("raises"))
    client.send("fail")
    with pytest.raises(ConnectionClosed) as caught:
        client.recv()
    assert caught.value.code == 1011
    assert client.close_code == 1011


def test_close_from_the_client_with_a_code_and_reason(driver: Driver) -> None:
    client = driver.connect(driver.serve("echo"))
    client.close(4001, "bye")
    assert (client.close_code, client.close_reason) == (4001, "bye")
    assert driver.records.get(timeout=GUARD) == (4001, "bye")
    with pytest.raises(ConnectionClosed) as caught:
        client.recv()
    assert (caught.value.code, caught.value.reason) == (4001, "bye")


def test_close_from_the_server_with_a_code_and_reason(driver: Driver) -> None:
    client = driver.connect(driver.serve("closes"))
    client.send("4002 server done")
    with pytest.raises(ConnectionClosed) as caught:
        client.recv()
    assert (caught.value.code, caught.value.reason) == (4002, "server done")
    assert (client.close_code, client.close_reason) == (4002, "server done")
    assert driver.records.get(timeout=GUARD) == (4002, "server done")
    # recv after the close keeps raising, with the same code.
    with pytest.raises(ConnectionClosed) as caught:
        client.recv()
    assert caught.value.code == 4002


def test_ping_completes_when_its_pong_arrives(driver: Driver) -> None:
    received: list[list[tuple[int, bytes]]] = []
    answered = threading.Event()

    def script(sock: socket.socket, stop: threading.Event) -> None:
        # Answer the first Ping only once it has been read; the waiter cannot complete before.
        sock.settimeout(GUARD)
        frames, pending = [], b""
        while not frames:
            frames, pending = parse_frames(pending + sock.recv(65536))
        received.append(frames)
        answered.set()  # Before the Pong, so that the waiter cannot complete first.
        sock.sendall(unmasked(0xA, frames[0][1]))
        stop.wait(GUARD)

    with raw_server(script) as port:
        client = driver.connect(port, ping_interval=None)
        client.ping(b"are you there")
        assert answered.is_set()
        assert received == [[(0x9, b"are you there")]]


def test_keepalive_keeps_a_server_connection_whose_peer_answers(driver: Driver) -> None:
    """A Ping every ping_interval; a matched Pong keeps the connection open past ping_timeout.

    This fails if Pongs are never matched (the second advance would then
    close the connection with 1011) and if a Ping comes early.
    """
    port = driver.serve("echo", ping_interval=20, ping_timeout=20, compression=False)
    with raw_client(port) as sock:
        frames = FrameReader(sock)
        driver.advance(19)
        sock.sendall(masked(0x1, b"before the ping"))
        assert frames.next() == (0x1, b"before the ping")  # Nothing came before the echo: no Ping yet.
        driver.advance(1)
        opcode, payload = frames.next()
        assert opcode == 0x9
        # The echo of what follows the Pong proves the server read the Pong.
        sock.sendall(masked(0xA, payload) + masked(0x1, b"after the pong"))
        assert frames.next() == (0x1, b"after the pong")
        driver.advance(20)
        assert frames.next()[0] == 0x9
        sock.sendall(masked(0x8, b"\x03\xe8"))
        assert frames.next() == (0x8, b"\x03\xe8")
    assert driver.records.get(timeout=GUARD) == (1000, "")


def test_keepalive_closes_a_server_connection_whose_peer_never_answers(driver: Driver) -> None:
    """A Ping at ping_interval, then, ping_timeout later, a Close with 1011 and the end of the transport."""
    port = driver.serve("echo", ping_interval=20, ping_timeout=20, close_timeout=10)
    with raw_client(port) as sock:
        frames = FrameReader(sock)
        driver.advance(20)
        assert frames.next()[0] == 0x9
        driver.advance(20)
        assert frames.next() == (0x8, b"\x03\xf3keepalive ping timeout")  # 1011
        # Without waiting for close_timeout: the peer is gone.
        assert frames.ends()
    assert driver.records.get(timeout=GUARD) == (1006, "keepalive ping timeout")


def test_keepalive_keeps_a_client_whose_server_answers(driver: Driver) -> None:
    with handed_over_server() as (port, sockets):
        client = driver.connect(port, ping_interval=20, ping_timeout=20)
        sock = sockets.get(timeout=GUARD)
        frames = FrameReader(sock)
        driver.advance(20)
        opcode, payload = frames.next()
        assert opcode == 0x9
        sock.sendall(unmasked(0xA, payload) + unmasked(0x1, b"after the pong"))
        assert client.recv() == "after the pong"  # So the Pong before it was read.
        driver.advance(20)
        assert frames.next()[0] == 0x9
        assert client.close_code is None


def test_keepalive_closes_a_client_whose_server_never_answers(driver: Driver) -> None:
    with handed_over_server() as (port, sockets):
        client = driver.connect(port, ping_interval=20, ping_timeout=20, close_timeout=10)
        frames = FrameReader(sockets.get(timeout=GUARD))
        driver.advance(20)
        assert frames.next()[0] == 0x9
        driver.advance(20)
        assert frames.next() == (0x8, b"\x03\xf3keepalive ping timeout")
        with pytest.raises(ConnectionClosed) as caught:
            client.recv()
        assert frames.ends()
    assert caught.value.code == 1006
    assert client.close_reason == "keepalive ping timeout"


def test_a_ping_whose_pong_never_comes_fails_with_the_connection(driver: Driver) -> None:
    """ping_timeout ends the connection, and the waiting ping() raises ConnectionClosed."""
    with handed_over_server() as (port, sockets):
        client = driver.connect(port, ping_interval=None, ping_timeout=20, close_timeout=10)
        frames = FrameReader(sockets.get(timeout=GUARD))
        waiter = client.send_ping(b"anyone")
        assert frames.next() == (0x9, b"anyone")
        driver.advance(20)
        with pytest.raises(ConnectionClosed) as caught:
            client.wait_pong(waiter)
    assert caught.value.code == 1006
    assert client.close_code == 1006


def test_close_timeout_when_the_peer_never_answers_our_close(driver: Driver) -> None:
    """close() returns once close_timeout has passed without the peer's Close: 1006."""
    with handed_over_server() as (port, sockets):
        client = driver.connect(port, ping_interval=None, close_timeout=10)
        frames = FrameReader(sockets.get(timeout=GUARD))
        closing = client.start_closing(4003, "going")
        assert frames.next() == (0x8, b"\x0f\xa3going")
        driver.advance(10)
        closing.result(GUARD)
        assert client.close_code == 1006
        assert frames.ends()
        with pytest.raises(ConnectionClosed) as caught:
            client.recv()
    assert caught.value.code == 1006


def test_close_while_another_task_waits_in_recv(driver: Driver) -> None:
    """One task (or thread) waits in recv() while another closes: the peer's Close reply ends both.

    The waiting recv() may be the one reading the socket (the trio and
    threads drivers read in it): the close must still read the reply.
    """
    client = driver.connect(driver.serve("echo"))
    client.send("before")
    assert client.recv() == "before"
    receiving = driver.submit(client.websocket.recv)
    client.close(1000, "done")
    with pytest.raises(ConnectionClosed) as caught:
        receiving.result(GUARD)
    assert caught.value.code == 1000
    assert client.close_code == 1000
    assert driver.records.get(timeout=GUARD) == (1000, "done")


def test_close_timeout_while_another_task_waits_in_recv(driver: Driver) -> None:
    """The close timeout ends a connection whose waiting recv() reads the socket: 1006 for both."""
    with handed_over_server() as (port, sockets):
        client = driver.connect(port, ping_interval=None, close_timeout=10)
        frames = FrameReader(sockets.get(timeout=GUARD))
        receiving = driver.submit(client.websocket.recv)
        closing = client.start_closing(4003, "going")
        assert frames.next() == (0x8, b"\x0f\xa3going")
        driver.advance(10)
        closing.result(GUARD)
        with pytest.raises(ConnectionClosed) as caught:
            receiving.result(GUARD)
    assert caught.value.code == 1006
    assert client.close_code == 1006


def test_backpressure_a_client_that_does_not_read_stops_the_server(driver: Driver) -> None:
    """With max_queue=1 and an application that does not read, the client stops reading the socket.

    The raw server writes large messages without blocking until the socket
    stays unwritable (our client stopped reading); were the client to buffer
    without bound, the server would get 256 MiB out first. Then the
    application reads every message, in order.
    """
    payload_size = 60_000
    limit = 256 * 1024 * 1024 // payload_size
    sent: list[int] = []
    stopped = threading.Event()

    def script(sock: socket.socket, stop: threading.Event) -> None:
        sock.setblocking(False)
        pending = b""
        index = 0
        while index < limit:
            if not pending:
                body = struct.pack("!I", index) + bytes([index % 256]) * (payload_size - 4)
                pending = bytes((0x82, 126)) + struct.pack("!H", len(body)) + body
                index += 1
            try:
                pending = pending[sock.send(pending) :]
            except BlockingIOError:
                # Unwritable for 2 s: the client stopped reading (a stall of a
                # client that reads only delays the test, it cannot fail it).
                _, writable, _ = select.select([], [sock], [], 2.0)
                if not writable:
                    break
        sent.append(index)  # Messages begun, which the sendall below completes.
        stopped.set()
        sock.setblocking(True)
        sock.sendall(pending)
        stop.wait(GUARD)

    with raw_server(script) as port:
        client = driver.connect(port, max_queue=1, compression=False, ping_interval=None)
        assert stopped.wait(GUARD)
        (count,) = sent
        assert count < limit, "the client read 256 MiB that its application did not take"
        for index in range(count):
            message = client.recv()
            assert isinstance(message, bytes)
            assert struct.unpack("!I", message[:4]) == (index,)
            assert len(message) == payload_size
