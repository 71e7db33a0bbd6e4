"""Drivers benchmark with picows' methodology: echo round trips, every library as server and as client.

Run from the repository root (``pip install -e '.[bench]'`` for picows, aiohttp and uvloop)::

    python benchmarks/bench_drivers.py [--rounds N] [--duration S] [--loops asyncio,uvloop]
                                       [--filter TEXT] [--json out.json] [--markdown] [-q]
                                       [--pin SERVER_CPU,CLIENT_CPU]

What is measured: a client sends a binary message, the server echoes it, the client checks that the
echo is byte for byte what it sent (a mismatch fails the run, exit status 1) and sends the next
one. Cases: one message in flight on one connection with 256 B, 8 KiB and 100 KB payloads (picows'
own benchmark), 256 B with 100 messages in flight on one connection (a pipelining peer), and 256 B
with one in flight on each of 100 concurrent connections. Compression is off everywhere.

- **server** rows: each library's echo server (``picows``, ``websockets``, ``aiohttp`` and ours, with
  ``async for`` and with the callback API, ``wsproto_core-callbacks``) is
  driven by the same client, picows' (the fastest here, so the server is what is measured);
- **client** rows: each library's client drives the same server, picows'.

The asyncio libraries run on asyncio's own loop and on uvloop (``--loops``). The other two
concurrency models are "loops" too, with the one-connection, one-in-flight cases only:

- ``threads``: our threads driver (``wsproto_core.drivers.sync``) beside websockets' sync layer
  (``websockets.sync``), a thread per connection on both sides;
- ``trio``: our trio driver beside websockets' trio layer (``websockets.trio``) and trio-websocket.

In those rows the same picows client (on asyncio) drives every server, every client runs against
the same picows server, and picows itself is measured in the same rounds as the common reference;
the ratio to ``websockets`` is then the ratio to websockets' layer for that model. Every server and every
client runs in its own process (a server stays up for a round; each measurement starts a fresh
client process). Each round runs every case for every library, in an order that rotates from
round to round; rates and latency percentiles are medians over rounds, and the ratios to picows and
to websockets are medians of the per-round ratios, so that the machine's drift between rounds
cancels out. Latency is the time from a message's send to its echo, measured in the client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import functools
import importlib.metadata
import json
import os
import platform
import random
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

CALLBACKS = "wsproto_core-callbacks"
TRIO_WEBSOCKET = "trio-websocket"
ASYNCIO_LIBRARIES = ("picows", "websockets", "aiohttp", "wsproto_core", CALLBACKS)
REFERENCE, BASELINE = "picows", "websockets"
# Each row's ratios are to these libraries, when the row has them.
RATIO_TO = (REFERENCE, BASELINE, TRIO_WEBSOCKET)
ASYNCIO_LOOPS = ("asyncio", "uvloop")
MODELS = ("threads", "trio")  # run as "loops" beside asyncio's; see the module's docstring
POOL = 16  # distinct payloads per case, so that an echo of the wrong message is noticed
KB = 1000
KiB = 1024
#: Seconds a server process may take to print its port; a server that crashes is reported at once.
START_TIMEOUT = 30.0


class EchoMismatch(AssertionError):
    """An echo differed from what was sent, or the connection closed during the run."""


@dataclass(frozen=True)
class Case:
    """What one measurement sends: payload size, messages in flight per connection, connections."""

    size: int
    in_flight: int = 1
    connections: int = 1

    @property
    def name(self) -> str:
        size = f"{self.size // KiB} KiB" if self.size % KiB == 0 and self.size >= KiB else f"{self.size} B"
        if self.size % KB == 0 and self.size >= KB and self.size % KiB:
            size = f"{self.size // KB} KB"
        extra = ""
        if self.in_flight > 1:
            extra = f", {self.in_flight} in flight"
        if self.connections > 1:
            extra += f", {self.connections} connections"
        return size + extra


CASES = (Case(256), Case(8 * KiB), Case(100 * KB), Case(256, in_flight=100), Case(256, connections=100))


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop  # noqa: PLC0415

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run_without_loop(main: Awaitable[Any]) -> Any:
    """Run a coroutine that never suspends: a blocking (threads) client written as ``async def``.

    The threads clients are coroutines only so that they share :func:`echo_loop` and
    :func:`client_main` with the others; their awaits all return at once.
    """
    coroutine = main.__await__()
    try:
        coroutine.send(None)
    except StopIteration as finished:
        return finished.value
    raise RuntimeError("a threads client suspended as if it ran on an event loop")


def run_on(kind: str, main: Awaitable[Any]) -> Any:
    if kind == "threads":
        return run_without_loop(main)
    if kind == "trio":
        import trio  # noqa: PLC0415

        async def run_main() -> Any:
            return await main

        return trio.run(run_main)
    with asyncio.Runner(loop_factory=lambda: new_loop(kind)) as runner:
        return runner.run(main)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- servers


async def echo(websocket: Any) -> None:
    """The echo handler of websockets' servers and ours, on asyncio and trio (same method names)."""
    async for message in websocket:
        await websocket.send(message)


def echo_blocking(websocket: Any) -> None:
    """The echo handler of websockets' and our threads servers."""
    for message in websocket:
        websocket.send(message)


def corrupting_echo(every: int) -> Callable[[Any], Awaitable[None]]:
    """An echo handler that changes the last character or byte of one message in ``every``.

    Only for checking that a client notices (the tests' "broken" servers).
    """
    count = 0

    async def echo_badly(websocket: Any) -> None:
        nonlocal count
        async for message in websocket:
            count += 1
            if count % every:
                await websocket.send(message)
            else:
                await websocket.send(message[:-1] + ("?" if isinstance(message, str) else b"?"))

    return echo_badly


async def serve_picows(port_out: Callable[[int], None], stop: asyncio.Future[None]) -> None:
    from picows import WSListener, WSMsgType, ws_create_server  # noqa: PLC0415

    class Echo(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
            elif frame.msg_type in (WSMsgType.BINARY, WSMsgType.TEXT):
                transport.send(frame.msg_type, frame.get_payload_as_memoryview())

    server = await ws_create_server(lambda request: Echo(), "127.0.0.1", 0)
    port_out(server.sockets[0].getsockname()[1])
    await stop
    server.close()


async def serve_websockets(port_out: Callable[[int], None], stop: asyncio.Future[None]) -> None:
    from websockets.asyncio.server import serve  # noqa: PLC0415

    async with serve(echo, "127.0.0.1", 0, compression=None, max_size=None, ping_interval=None) as server:
        port_out(server.sockets[0].getsockname()[1])
        await stop


async def serve_aiohttp(port_out: Callable[[int], None], stop: asyncio.Future[None]) -> None:
    from aiohttp import WSMsgType, web  # noqa: PLC0415

    async def echo(request: web.Request) -> web.WebSocketResponse:
        websocket = web.WebSocketResponse(max_msg_size=0, compress=False, autoping=True)
        await websocket.prepare(request)
        async for message in websocket:
            if message.type == WSMsgType.BINARY:
                await websocket.send_bytes(message.data)
            elif message.type == WSMsgType.TEXT:
                await websocket.send_str(message.data)
        return websocket

    application = web.Application()
    application.router.add_get("/", echo)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port_out(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    await stop
    await runner.cleanup()


async def serve_wsproto_core(
    port_out: Callable[[int], None], stop: asyncio.Future[None], handler: Callable[[Any], Awaitable[None]] = echo
) -> None:
    from wsproto_core.drivers.asyncio import serve  # noqa: PLC0415

    server = await serve(handler, "127.0.0.1", 0, compression=False, max_message_size=None, ping_interval=None)
    port_out(server.port)
    await stop
    await server.close()


async def serve_wsproto_core_callbacks(port_out: Callable[[int], None], stop: asyncio.Future[None]) -> None:
    from wsproto_core.drivers.asyncio import Listener, serve_listener  # noqa: PLC0415

    class Echo(Listener):
        def on_message(self, websocket: Any, message: str | bytes) -> None:
            websocket.send_nowait(message)

    server = await serve_listener(Echo, "127.0.0.1", 0, compression=False, max_message_size=None, ping_interval=None)
    port_out(server.port)
    await stop
    await server.close()


async def serve_broken(port_out: Callable[[int], None], stop: asyncio.Future[None]) -> None:
    """Our echo server with every echo corrupted: only for checking that each client notices.

    Every echo, not one in a few: on a loaded machine a tiny run's client may
    get only one echo through before its deadline.
    """
    await serve_wsproto_core(port_out, stop, corrupting_echo(1))


def serve_threads_websockets(port_out: Callable[[int], None], wait_for_stop: Callable[[], None]) -> None:
    import threading  # noqa: PLC0415

    from websockets.sync.server import serve  # noqa: PLC0415

    with serve(echo_blocking, "127.0.0.1", 0, compression=None, max_size=None, ping_interval=None) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        port_out(server.socket.getsockname()[1])
        wait_for_stop()
        server.shutdown()
        thread.join()


def serve_threads_wsproto_core(port_out: Callable[[int], None], wait_for_stop: Callable[[], None]) -> None:
    import threading  # noqa: PLC0415

    from wsproto_core.drivers.sync import serve  # noqa: PLC0415

    server = serve(echo_blocking, "127.0.0.1", 0, compression=False, max_message_size=None, ping_interval=None)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    port_out(server.port)
    wait_for_stop()
    server.shutdown()
    thread.join()


THREADS_SERVERS: dict[str, Callable[[Callable[[int], None], Callable[[], None]], None]] = {
    "websockets": serve_threads_websockets,
    "wsproto_core": serve_threads_wsproto_core,
}


async def serve_trio_websockets(port_out: Callable[[int], None], stop: Any) -> None:
    import trio  # noqa: PLC0415
    from websockets.trio.server import serve  # noqa: PLC0415

    options = {"host": "127.0.0.1", "compression": None, "max_size": None, "ping_interval": None}
    async with trio.open_nursery() as nursery:
        server = await nursery.start(functools.partial(serve, echo, 0, **options))
        port_out(server.listeners[0].socket.getsockname()[1])
        await stop.wait()
        nursery.cancel_scope.cancel()


async def serve_trio_websocket(port_out: Callable[[int], None], stop: Any) -> None:
    import trio  # noqa: PLC0415
    from trio_websocket import ConnectionClosed, serve_websocket  # noqa: PLC0415

    async def echo(request: Any) -> None:
        websocket = await request.accept()
        with contextlib.suppress(ConnectionClosed):
            while True:
                await websocket.send_message(await websocket.get_message())

    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            functools.partial(serve_websocket, echo, "127.0.0.1", 0, ssl_context=None, max_message_size=1 << 30)
        )
        port_out(server.port)
        await stop.wait()
        nursery.cancel_scope.cancel()


async def serve_trio_wsproto_core(port_out: Callable[[int], None], stop: Any) -> None:
    import trio  # noqa: PLC0415

    from wsproto_core.drivers.trio import serve  # noqa: PLC0415

    options = {"compression": False, "max_message_size": None, "ping_interval": None}
    async with trio.open_nursery() as nursery:
        server = await nursery.start(functools.partial(serve, echo, "127.0.0.1", 0, **options))
        port_out(server.port)
        await stop.wait()
        nursery.cancel_scope.cancel()


TRIO_SERVERS: dict[str, Callable[[Callable[[int], None], Any], Awaitable[None]]] = {
    "websockets": serve_trio_websockets,
    TRIO_WEBSOCKET: serve_trio_websocket,
    "wsproto_core": serve_trio_wsproto_core,
}


SERVERS: dict[str, Callable[[Callable[[int], None], asyncio.Future[None]], Awaitable[None]]] = {
    "picows": serve_picows,
    "websockets": serve_websockets,
    "aiohttp": serve_aiohttp,
    "wsproto_core": serve_wsproto_core,
    CALLBACKS: serve_wsproto_core_callbacks,
    "broken": serve_broken,
}


def port_out(port: int) -> None:
    print(f"PORT {port}", flush=True)


def wait_for_eof() -> None:
    # The parent closes our stdin to stop us (or dies, which closes it too).
    sys.stdin.read()


def on_eof(stop: Callable[[], None]) -> None:
    """Call ``stop`` from a daemon thread once stdin closes.

    A daemon thread, not an executor's: a server that fails to start then
    exits with its traceback instead of waiting for the executor's thread,
    blocked on stdin, which the parent closes only after reading a port.
    """

    def watch() -> None:
        wait_for_eof()
        # The server may have ended meanwhile (its loop is then gone).
        with contextlib.suppress(RuntimeError):
            stop()

    threading.Thread(target=watch, daemon=True).start()


async def serve_until_eof(
    serve: Callable[[Callable[[int], None], asyncio.Future[None]], Awaitable[None]],
) -> None:
    """Run an asyncio echo server (``serve(port_out, stop)``) until the parent closes our stdin."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()
    on_eof(lambda: loop.call_soon_threadsafe(stop.set_result, None))
    await serve(port_out, stop)


async def trio_server_main(library: str) -> None:
    import trio  # noqa: PLC0415

    stop = trio.Event()
    token = trio.lowlevel.current_trio_token()
    on_eof(lambda: token.run_sync_soon(stop.set))
    await TRIO_SERVERS[library](port_out, stop)


def loop_for(library: str, loop: str, *, serving: bool) -> str:
    """Where ``library`` runs in ``loop``'s rows: picows (and the broken server) run on asyncio in the others'."""
    if loop == "threads":
        return loop if library in (THREADS_SERVERS if serving else THREADS_CLIENTS) else "asyncio"
    if loop == "trio":
        return loop if library in (TRIO_SERVERS if serving else TRIO_CLIENTS) else "asyncio"
    return loop


def offered(loop: str) -> set[str]:
    """The libraries with a server and a client for ``loop`` (a client only, for the reference)."""
    if loop == "threads":
        return {REFERENCE, *THREADS_SERVERS}
    if loop == "trio":
        return {REFERENCE, *TRIO_SERVERS}
    return {*SERVERS, *CLIENTS}


class ServerStartFailed(RuntimeError):
    """A server process exited, or said nothing for ``START_TIMEOUT`` seconds, instead of printing its port."""


class ServerProcess:
    """A server subprocess (``command`` prints ``PORT n``, then serves until stdin closes); ``with`` it.

    Its stderr goes to a temporary file, copied to ours when it stops, so that
    a server that cannot start is reported with the last line it wrote.
    """

    def __init__(self, name: str, command: list[str]) -> None:
        self.name = name
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        try:
            self.port = self._read_port()
        except BaseException:
            self.stop(echo_stderr=False)
            raise

    def _read_port(self) -> int:
        stdout = self.process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], START_TIMEOUT)
        line = stdout.readline() if ready else b""
        if line.startswith(b"PORT "):
            return int(line.split()[1])
        if not ready:
            raise ServerStartFailed(f"{self.name} server printed no port within {START_TIMEOUT:g} s")
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=START_TIMEOUT)
        said = self._stderr_text().strip().splitlines() or [repr(line.decode(errors="replace"))]
        raise ServerStartFailed(f"{self.name} server did not start (exit status {self.process.poll()}): {said[-1]}")

    def _stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def stop(self, *, echo_stderr: bool = True) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        if echo_stderr:
            sys.stderr.write(self._stderr_text())
        self._stderr.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------------------------- clients


class Tally:
    """What a client counted: messages echoed and checked, and each one's round trip."""

    def __init__(self, payloads: list[bytes], stop_at: float) -> None:
        self.payloads = payloads
        self.stop_at = stop_at
        self.messages = 0
        self.latencies: list[float] = []

    def next_payload(self, index: int) -> bytes:
        return self.payloads[index % POOL]


async def echo_loop(
    send: Callable[[bytes], Awaitable[Any]], recv: Callable[[], Awaitable[Any]], tally: Tally, in_flight: int, seed: int
) -> None:
    """Keep ``in_flight`` messages outstanding until the deadline; check every echo in order."""
    clock = time.perf_counter
    pending: deque[tuple[bytes, float]] = deque()
    index = seed
    for _ in range(in_flight):
        payload = tally.next_payload(index)
        index += 1
        pending.append((payload, clock()))
        await send(payload)
    while pending:
        echoed = await recv()
        payload, sent_at = pending.popleft()
        if echoed != payload:
            raise EchoMismatch(f"echo {tally.messages} differs from what was sent")
        now = clock()
        tally.messages += 1
        tally.latencies.append(now - sent_at)
        if now < tally.stop_at:
            payload = tally.next_payload(index)
            index += 1
            pending.append((payload, now))
            await send(payload)


async def client_websockets(url: str, tally: Tally, case: Case, seed: int) -> None:
    from websockets.asyncio.client import connect  # noqa: PLC0415

    async with connect(url, compression=None, max_size=None, ping_interval=None, proxy=None) as websocket:
        await echo_loop(websocket.send, websocket.recv, tally, case.in_flight, seed)


async def client_aiohttp(url: str, tally: Tally, case: Case, seed: int) -> None:
    import aiohttp  # noqa: PLC0415

    async with aiohttp.ClientSession() as session, session.ws_connect(url, max_msg_size=0, compress=0) as websocket:

        async def recv() -> bytes:
            message = await websocket.receive()
            if message.type != aiohttp.WSMsgType.BINARY:
                raise EchoMismatch(f"received {message.type!r}")
            return message.data  # type: ignore[no-any-return]

        await echo_loop(websocket.send_bytes, recv, tally, case.in_flight, seed)


async def client_wsproto_core(url: str, tally: Tally, case: Case, seed: int) -> None:
    from wsproto_core.drivers.asyncio import connect  # noqa: PLC0415

    async with connect(url, compression=False, max_message_size=None, ping_interval=None) as websocket:
        await echo_loop(websocket.send, websocket.recv, tally, case.in_flight, seed)


async def client_picows(url: str, tally: Tally, case: Case, seed: int) -> None:
    from picows import WSCloseCode, WSListener, WSMsgType, ws_connect  # noqa: PLC0415

    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    clock = time.perf_counter

    class Client(WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.pending: deque[tuple[bytes, float]] = deque()
            self.index = seed

        def send_next(self, transport: Any, now: float) -> None:
            payload = tally.next_payload(self.index)
            self.index += 1
            self.pending.append((payload, now))
            transport.send(WSMsgType.BINARY, payload)

        def on_ws_connected(self, transport: Any) -> None:
            for _ in range(case.in_flight):
                self.send_next(transport, clock())

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if done.done():
                return
            if frame.msg_type != WSMsgType.BINARY or not frame.fin:
                done.set_exception(EchoMismatch(f"received {frame.msg_type!r}"))
                return
            payload, sent_at = self.pending.popleft()
            if frame.get_payload_as_memoryview() != payload:
                done.set_exception(EchoMismatch(f"echo {tally.messages} differs from what was sent"))
                return
            now = clock()
            tally.messages += 1
            tally.latencies.append(now - sent_at)
            if now < tally.stop_at:
                self.send_next(transport, now)
            elif not self.pending:
                done.set_result(None)

        def on_ws_disconnected(self, transport: Any) -> None:
            if not done.done():
                done.set_exception(EchoMismatch("the server closed the connection during the run"))

    transport, _ = await ws_connect(Client, url, max_frame_size=1 << 30)
    try:
        await done
    finally:
        transport.send_close(WSCloseCode.OK)
        transport.disconnect()
        await transport.wait_disconnected()


async def client_wsproto_core_callbacks(url: str, tally: Tally, case: Case, seed: int) -> None:
    from wsproto_core.drivers.asyncio import Listener, connect  # noqa: PLC0415

    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    clock = time.perf_counter

    class Client(Listener):
        def __init__(self) -> None:
            self.pending: deque[tuple[bytes, float]] = deque()
            self.index = seed

        def send_next(self, websocket: Any, now: float) -> None:
            payload = tally.next_payload(self.index)
            self.index += 1
            self.pending.append((payload, now))
            websocket.send_nowait(payload)

        def on_message(self, websocket: Any, message: str | bytes) -> None:
            if done.done():
                return
            payload, sent_at = self.pending.popleft()
            if message != payload:
                done.set_exception(EchoMismatch(f"echo {tally.messages} differs from what was sent"))
                return
            now = clock()
            tally.messages += 1
            tally.latencies.append(now - sent_at)
            if now < tally.stop_at:
                self.send_next(websocket, now)
            elif not self.pending:
                done.set_result(None)

        def on_close(self, websocket: Any) -> None:
            if not done.done():
                done.set_exception(EchoMismatch("the server closed the connection during the run"))

    client = Client()
    options = {"compression": False, "max_message_size": None, "ping_interval": None}
    async with connect(url, listener=client, **options) as websocket:
        for _ in range(case.in_flight):
            client.send_next(websocket, clock())
        await done


async def client_threads_websockets(url: str, tally: Tally, case: Case, seed: int) -> None:
    from websockets.sync.client import connect  # noqa: PLC0415

    with connect(url, compression=None, max_size=None, ping_interval=None, proxy=None) as websocket:
        await echo_loop(blocking(websocket.send), blocking(websocket.recv), tally, case.in_flight, seed)


async def client_threads_wsproto_core(url: str, tally: Tally, case: Case, seed: int) -> None:
    from wsproto_core.drivers.sync import connect  # noqa: PLC0415

    with connect(url, compression=False, max_message_size=None, ping_interval=None) as websocket:
        await echo_loop(blocking(websocket.send), blocking(websocket.recv), tally, case.in_flight, seed)


def blocking(call: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """``call`` as a coroutine function that never suspends, for :func:`echo_loop`."""

    async def call_now(*args: Any) -> Any:
        return call(*args)

    return call_now


THREADS_CLIENTS: dict[str, Callable[[str, Tally, Case, int], Awaitable[None]]] = {
    "websockets": client_threads_websockets,
    "wsproto_core": client_threads_wsproto_core,
}


async def client_trio_websockets(url: str, tally: Tally, case: Case, seed: int) -> None:
    from websockets.trio.client import connect  # noqa: PLC0415

    async with connect(url, compression=None, max_size=None, ping_interval=None, proxy=None) as websocket:
        await echo_loop(websocket.send, websocket.recv, tally, case.in_flight, seed)


async def client_trio_websocket(url: str, tally: Tally, case: Case, seed: int) -> None:
    from trio_websocket import open_websocket_url  # noqa: PLC0415

    async with open_websocket_url(url, max_message_size=1 << 30) as websocket:
        await echo_loop(websocket.send_message, websocket.get_message, tally, case.in_flight, seed)


async def client_trio_wsproto_core(url: str, tally: Tally, case: Case, seed: int) -> None:
    from wsproto_core.drivers.trio import connect  # noqa: PLC0415

    async with connect(url, compression=False, max_message_size=None, ping_interval=None) as websocket:
        await echo_loop(websocket.send, websocket.recv, tally, case.in_flight, seed)


TRIO_CLIENTS: dict[str, Callable[[str, Tally, Case, int], Awaitable[None]]] = {
    "websockets": client_trio_websockets,
    TRIO_WEBSOCKET: client_trio_websocket,
    "wsproto_core": client_trio_wsproto_core,
}


CLIENTS: dict[str, Callable[[str, Tally, Case, int], Awaitable[None]]] = {
    "picows": client_picows,
    "websockets": client_websockets,
    "aiohttp": client_aiohttp,
    "wsproto_core": client_wsproto_core,
    CALLBACKS: client_wsproto_core_callbacks,
}


async def one_after_another(*clients: Awaitable[None]) -> None:
    """What gathers the clients of one measurement outside asyncio: the threads and trio rows have one."""
    for client in clients:
        await client


async def client_main(
    library: str, loop: str, port: int, case: Case, *, duration: float, warmup: float
) -> dict[str, Any]:
    rng = random.Random(case.size)
    payloads = [rng.randbytes(case.size) for _ in range(POOL)]
    url = f"ws://127.0.0.1:{port}/"
    client = {"threads": THREADS_CLIENTS, "trio": TRIO_CLIENTS}.get(loop, CLIENTS)[library]
    gather = one_after_another if loop in MODELS else asyncio.gather
    # Warm up (connections, allocator, the server's caches), then measure on fresh connections.
    await gather(
        *(client(url, Tally(payloads, time.perf_counter() + warmup), case, n) for n in range(case.connections))
    )
    started = time.perf_counter()
    tallies = [Tally(payloads, started + duration) for _ in range(case.connections)]
    await gather(*(client(url, tally, case, n) for n, tally in enumerate(tallies)))
    seconds = time.perf_counter() - started
    latencies = sorted(latency for tally in tallies for latency in tally.latencies)
    messages = sum(tally.messages for tally in tallies)
    return {
        "messages": messages,
        "verified": messages,
        "seconds": seconds,
        "msgs_per_s": messages / seconds,
        "p50_us": 1e6 * latencies[len(latencies) // 2],
        "p99_us": 1e6 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


#: ``--pin``: the CPUs that every server and every client process run on (None: the scheduler's choice).
PINNED: dict[str, int | None] = {"server": None, "client": None}


def pinned(role: str) -> list[str]:
    """The arguments that pin a child process to its role's CPU, if ``--pin`` asked for it."""
    cpu = PINNED[role]
    return [] if cpu is None else ["--cpu", str(cpu)]


def server_command(library: str, loop: str) -> list[str]:
    return [
        sys.executable,
        __file__,
        "--serve",
        library,
        "--loop",
        loop_for(library, loop, serving=True),
        *pinned("server"),
    ]


def measure(library: str, loop: str, port: int, case: Case, duration: float) -> dict[str, Any]:
    """Run one client process; return its figures or raise what went wrong."""
    command = [
        sys.executable,
        __file__,
        "--drive",
        library,
        "--loop",
        loop_for(library, loop, serving=False),
        "--port",
        str(port),
    ]
    command += ["--case", json.dumps(asdict(case)), "--duration", str(duration), *pinned("client")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120 + 4 * duration, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "client failed")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------- the run


def metadata(args: argparse.Namespace) -> dict[str, Any]:
    versions = {}
    for name in ("picows", "websockets", "aiohttp", "uvloop", "trio", "trio-websocket", "wsproto_core"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    from wsproto_core.masking import SPEEDUPS  # noqa: PLC0415

    if not SPEEDUPS:
        # A stale or missing build of wsproto_core._speedups: every frame would be masked in Python.
        print("warning: wsproto_core's C speedups are not loaded (pip install -e . rebuilds them)", file=sys.stderr)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "versions": versions,
        "revision": revision.stdout.strip(),
        "c_speedups": SPEEDUPS,
        "pin": args.pin,
        "rounds": args.rounds,
        "duration": args.duration,
    }


def summarise(rounds: list[dict[str, dict[str, Any]]], keys: list[str]) -> dict[str, Any]:
    """Medians over rounds of rates and percentiles; medians of per-round ratios."""
    summary: dict[str, Any] = {}
    for key in keys:
        rows = [round_[key] for round_ in rounds if key in round_]
        libraries = list(rows[0]) if rows else []
        references = [reference for reference in RATIO_TO if reference in libraries]
        row: dict[str, Any] = {"msgs_per_s": {}, "p50_us": {}, "p99_us": {}}
        row.update({f"ratio_{reference}": {} for reference in references})
        for library in libraries:
            results = [r[library] for r in rows if r.get(library)]
            ok = len(results) == len(rows)
            for field in ("msgs_per_s", "p50_us", "p99_us"):
                row[field][library] = statistics.median(r[field] for r in results) if ok else None
            for reference in references:
                name = f"ratio_{reference}"
                ratios = [
                    r[library]["msgs_per_s"] / r[reference]["msgs_per_s"]
                    for r in rows
                    if r.get(library) and r.get(reference)
                ]
                row[name][library] = statistics.median(ratios) if ok and len(ratios) == len(rows) else None
        summary[key] = row
    return summary


def print_tables(summary: dict[str, Any], markdown: bool) -> None:
    def cell(value: float | None, form: str) -> str:
        return "FAILED" if value is None else format(value, form)

    for key, row in summary.items():
        print(f"\n{key}" if not markdown else f"\n**{key}**\n")
        references = [reference for reference in RATIO_TO if f"ratio_{reference}" in row]
        header = ("library", "msgs/s", *(f"/{reference}" for reference in references), "p50 us", "p99 us")
        lines = [header]
        for library in row["msgs_per_s"]:
            lines.append(
                (
                    library,
                    cell(row["msgs_per_s"][library], ",.0f"),
                    *(cell(row[f"ratio_{reference}"][library], ".2f") for reference in references),
                    cell(row["p50_us"][library], ".0f"),
                    cell(row["p99_us"][library], ".0f"),
                )
            )
        if markdown:
            print("| " + " | ".join(header) + " |")
            print("|" + "---|" * len(header))
            for line in lines[1:]:
                print("| " + " | ".join(line) + " |")
        else:
            widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
            for line in lines:
                print("  ".join(value.rjust(width) for value, width in zip(line, widths, strict=True)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--loops", default=",".join((*ASYNCIO_LOOPS, *MODELS)))
    parser.add_argument("--libraries", default=",".join((*ASYNCIO_LIBRARIES, TRIO_WEBSOCKET)))
    parser.add_argument("--roles", default="server,client")
    parser.add_argument("--filter", default="", help="only the cases whose name contains this")
    parser.add_argument("--json", help="also write every result and the metadata here")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("-q", "--quiet", action="store_true")
    # The server of the client rows; the tests use "broken" to check that every client checks its echoes.
    parser.add_argument("--against", default=REFERENCE, help=argparse.SUPPRESS)
    parser.add_argument(
        "--pin",
        help="SERVER_CPU,CLIENT_CPU: run every server on one CPU and every client on another, so that "
        "where the scheduler puts the two processes does not move the round trip from run to run",
    )
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    parser.add_argument("--loop", default="asyncio", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.pin:
        server_cpu, client_cpu = (int(cpu) for cpu in args.pin.split(","))
        PINNED.update(server=server_cpu, client=client_cpu)
    if args.serve:
        if args.loop == "threads":
            THREADS_SERVERS[args.serve](port_out, wait_for_eof)
        elif args.loop == "trio":
            run_on("trio", trio_server_main(args.serve))
        else:
            run_on(args.loop, serve_until_eof(SERVERS[args.serve]))
        return 0
    if args.drive:
        case = Case(**json.loads(args.case))
        warmup = min(0.5, args.duration / 4)
        figures = client_main(args.drive, args.loop, args.port, case, duration=args.duration, warmup=warmup)
        print(json.dumps(run_on(args.loop, figures)))
        return 0

    libraries = args.libraries.split(",")
    loops = args.loops.split(",")
    cases = [case for case in CASES if args.filter in case.name]
    report: dict[str, Any] = {"metadata": metadata(args), "rounds": [], "errors": []}
    keys: list[str] = []
    for number in range(args.rounds):
        results: dict[str, dict[str, Any]] = {}
        for loop in loops:
            in_loop = [library for library in libraries if library in offered(loop)]
            order = in_loop[number % len(in_loop) :] + in_loop[: number % len(in_loop)]
            # The other models are measured where picows' benchmark is: one connection, one in flight.
            cases_here = [
                case for case in cases if loop in ASYNCIO_LOOPS or (case.in_flight, case.connections) == (1, 1)
            ]
            for role in args.roles.split(","):
                servers = order if role == "server" else [args.against]
                with contextlib.ExitStack() as stack:
                    ports: dict[str, int] = {}
                    not_started: dict[str, str] = {}
                    for name in servers:
                        try:
                            ports[name] = stack.enter_context(ServerProcess(name, server_command(name, loop))).port
                        except ServerStartFailed as error:
                            not_started[name] = str(error)
                    for case in cases_here:
                        key = f"{role}, {loop}, {case.name}"
                        if key not in keys:
                            keys.append(key)
                        results[key] = {}
                        for library in order:
                            client = REFERENCE if role == "server" else library
                            server = library if role == "server" else args.against
                            if server in not_started:
                                results[key][library] = None
                                report["errors"].append(f"{key}: {library}: {not_started[server]}")
                                continue
                            port = ports[server]
                            if not args.quiet:
                                print(f"round {number + 1}: {key}: {library}", file=sys.stderr)
                            try:
                                results[key][library] = measure(client, loop, port, case, args.duration)
                            except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
                                results[key][library] = None
                                report["errors"].append(f"{key}: {library}: {error}")
        report["rounds"].append(results)
    report["summary"] = summarise(report["rounds"], keys)
    print_tables(report["summary"], args.markdown)
    for error in report["errors"]:
        print(f"FAILED {error}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=1)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
