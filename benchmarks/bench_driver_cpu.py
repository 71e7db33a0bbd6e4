"""CPU time per echo round trip of the asyncio libraries, in one process: a figure the machine's load does not move.

Run from the repository root (``pip install -e '.[bench]'`` for picows, websockets and uvloop)::

    python benchmarks/bench_driver_cpu.py [--round-trips N] [--rounds R] [--sizes 256,8192,100000]
                                          [--loops asyncio,uvloop] [--filter TEXT] [--profile NAME]

Each measurement runs one library's echo server (or client) and a minimal raw peer, written here
on asyncio's ``Protocol`` with precomputed frames, on the same event loop in this process, one
message in flight: ``time.process_time()`` over N round trips counts the CPU that both spent,
whatever else the machine runs. The raw peer costs the same in every row, so the differences
between rows are the libraries'. Rows: ``picows``, ``websockets``, ``wsproto_core`` (``async for``
and ``send``/``recv``) and ``wsproto_core-callbacks`` (``Listener`` and ``send_nowait``), as
server and as client; each round measures every row once, in an order that rotates, and the
table gives the median of the rounds (microseconds of CPU per round trip) and each row's ratio to
picows (above 1.00: we spend less CPU than picows).

``--profile NAME`` runs the rows whose name contains NAME once under cProfile and prints where the
time goes instead.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import functools
import hashlib
import pstats
import statistics
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MASK = b"\x00\x00\x00\x00"  # a zero key: the frames stay readable, the receiver still unmasks


def frame(payload: bytes, *, masked: bool) -> bytes:
    """One final binary frame carrying ``payload``."""
    length = len(payload)
    bit = 0x80 if masked else 0
    if length < 126:
        header = struct.pack("!BB", 0x82, bit | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x82, bit | 126, length)
    else:
        header = struct.pack("!BBQ", 0x82, bit | 127, length)
    return header + (MASK if masked else b"") + payload


class RawPeer(asyncio.Protocol):
    """A minimal WebSocket peer: sends one frame, waits for the whole echo (counted in bytes), again."""

    def __init__(self, *, client: bool, size: int, round_trips: int, done: asyncio.Future[float]) -> None:
        self.client = client
        self.outgoing = frame(bytes(range(256)) * (size // 256) + bytes(size % 256), masked=client)
        self.expected = len(frame(bytes(size), masked=not client))
        self.round_trips = round_trips
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.opened = False
        self.received = 0
        self.count = 0
        self.started = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.client:
            transport.write(  # type: ignore[attr-defined]
                b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if not self.opened:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            head = self.head.partition(b"\r\n\r\n")[0]
            self.opened = True
            if not self.client:
                key = next(
                    line.split(b":", 1)[1].strip()
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"sec-websocket-key:")
                )
                accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
                self.transport.write(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                )
            self.started = time.process_time()
            self.transport.write(self.outgoing)
            return
        self.received += len(data)
        while self.received >= self.expected:
            self.received -= self.expected
            self.count += 1
            if self.count == self.round_trips:
                if not self.done.done():
                    self.done.set_result(time.process_time() - self.started)
                self.transport.close()
                return
            self.transport.write(self.outgoing)


# --------------------------------------------------------------------------- servers under test


async def serve_library(library: str) -> tuple[int, Callable[[], Awaitable[None]]]:
    """Start ``library``'s echo server; return its port and how to stop it."""
    if library == "picows":
        from picows import WSListener, WSMsgType, ws_create_server  # noqa: PLC0415

        class PicowsEcho(WSListener):  # type: ignore[misc]
            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                if frame.msg_type == WSMsgType.BINARY:
                    transport.send(WSMsgType.BINARY, frame.get_payload_as_memoryview())

        server = await ws_create_server(lambda request: PicowsEcho(), "127.0.0.1", 0)

        async def stop_picows() -> None:
            server.close()

        return server.sockets[0].getsockname()[1], stop_picows
    if library == "websockets":
        from websockets.asyncio.server import serve  # noqa: PLC0415

        async def echo_websockets(websocket: Any) -> None:
            async for message in websocket:
                await websocket.send(message)

        ws_server = await serve(echo_websockets, "127.0.0.1", 0, compression=None, max_size=None, ping_interval=None)

        async def stop_websockets() -> None:
            ws_server.close()

        return ws_server.sockets[0].getsockname()[1], stop_websockets
    from wsproto_core.drivers.asyncio import Listener, serve, serve_listener  # noqa: PLC0415

    options: dict[str, Any] = {"compression": False, "max_message_size": None, "ping_interval": None}
    if library == "wsproto_core-callbacks":

        class Echo(Listener):
            __slots__ = ()

            def on_message(self, websocket: Any, message: str | bytes) -> None:
                websocket.send_nowait(message)

        our = await serve_listener(Echo, "127.0.0.1", 0, **options)
    else:

        async def echo(websocket: Any) -> None:
            async for message in websocket:
                await websocket.send(message)

        our = await serve(echo, "127.0.0.1", 0, **options)
    return our.port, our.close


async def client_library(library: str, url: str) -> None:
    """Run ``library``'s echo client against ``url`` until the raw server drops the connection."""
    if library == "picows":
        from picows import WSListener, WSMsgType, ws_connect  # noqa: PLC0415

        closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        class PicowsClient(WSListener):  # type: ignore[misc]
            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                if frame.msg_type == WSMsgType.BINARY:
                    transport.send(WSMsgType.BINARY, frame.get_payload_as_memoryview())

            def on_ws_disconnected(self, transport: Any) -> None:
                if not closed.done():
                    closed.set_result(None)

        await ws_connect(PicowsClient, url, max_frame_size=1 << 30)
        await closed
        return
    if library == "websockets":
        from websockets.asyncio.client import connect as ws_connect_websockets  # noqa: PLC0415
        from websockets.exceptions import ConnectionClosed  # noqa: PLC0415

        async with ws_connect_websockets(url, compression=None, max_size=None, ping_interval=None) as websocket:
            try:
                async for message in websocket:
                    await websocket.send(message)
            except ConnectionClosed:
                pass
        return
    from wsproto_core.drivers.asyncio import Listener, connect  # noqa: PLC0415

    options: dict[str, Any] = {"compression": False, "max_message_size": None, "ping_interval": None, "proxy": None}
    if library == "wsproto_core-callbacks":
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        class Echo(Listener):
            __slots__ = ()

            def on_message(self, websocket: Any, message: str | bytes) -> None:
                websocket.send_nowait(message)

            def on_close(self, websocket: Any) -> None:
                if not ended.done():
                    ended.set_result(None)

        await connect(url, listener=Echo(), **options)
        await ended
        return
    websocket = await connect(url, **options)
    async for message in websocket:
        try:
            await websocket.send(message)
        except Exception:  # noqa: BLE001 - the raw server closes without a Close frame when done
            break


# ------------------------------------------------------------------------------- measurement


async def measure(role: str, library: str, size: int, round_trips: int) -> float:
    """Seconds of CPU for ``round_trips`` echo round trips of ``size`` bytes."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[float] = loop.create_future()
    if role == "server":
        port, stop = await serve_library(library)
        await loop.create_connection(
            lambda: RawPeer(client=True, size=size, round_trips=round_trips, done=done), "127.0.0.1", port
        )
        try:
            return await asyncio.wait_for(done, 20)
        finally:
            await stop()
    raw_server = await loop.create_server(
        lambda: RawPeer(client=False, size=size, round_trips=round_trips, done=done), "127.0.0.1", 0
    )
    port = raw_server.sockets[0].getsockname()[1]
    client = asyncio.ensure_future(client_library(library, f"ws://127.0.0.1:{port}/"))
    try:
        return await asyncio.wait_for(done, 20)
    finally:
        raw_server.close()
        with contextlib.suppress(Exception):
            # The raw server drops the connection once done: each client ends its own way.
            await asyncio.wait_for(client, 10)


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop  # noqa: PLC0415

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


LIBRARIES = ("picows", "websockets", "wsproto_core", "wsproto_core-callbacks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-trips", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", default="256,8192,100000")
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument("--libraries", default=",".join(LIBRARIES))
    parser.add_argument("--roles", default="server,client")
    parser.add_argument("--profile", default=None)
    arguments = parser.parse_args()
    sizes = [int(size) for size in arguments.sizes.split(",")]
    rows = [
        (loop, role, size, library)
        for loop in arguments.loops.split(",")
        for role in arguments.roles.split(",")
        for size in sizes
        for library in arguments.libraries.split(",")
    ]
    if arguments.profile:
        for loop_kind, role, size, library in rows:
            if arguments.profile in library:
                profiler = cProfile.Profile()
                with asyncio.Runner(loop_factory=functools.partial(new_loop, loop_kind)) as runner:
                    profiler.enable()
                    runner.run(measure(role, library, size, arguments.round_trips))
                    profiler.disable()
                print(f"== {loop_kind} {role} {size} B {library}")
                pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(25)
        return
    results: dict[tuple[str, str, int, str], list[float]] = {row: [] for row in rows}
    for round_number in range(arguments.rounds):
        shift = round_number % len(rows)
        for row in rows[shift:] + rows[:shift]:
            loop_kind, role, size, library = row
            with asyncio.Runner(loop_factory=functools.partial(new_loop, loop_kind)) as runner:
                seconds = runner.run(measure(role, library, size, arguments.round_trips))
            results[row].append(seconds / arguments.round_trips * 1e6)
    from wsproto_core.masking import SPEEDUPS  # noqa: PLC0415

    print(
        f"CPU microseconds per round trip (median of {arguments.rounds} rounds, {arguments.round_trips} each; "
        f"wsproto_core C speedups {'on' if SPEEDUPS else 'OFF'})"
    )
    print("loop     role    size     library                  us/rt   picows/ours")
    for row in rows:
        loop_kind, role, size, library = row
        ours = statistics.median(results[row])
        picows = results.get((loop_kind, role, size, "picows"))
        ratio = f"{statistics.median(picows) / ours:.2f}x" if picows else "-"
        print(f"{loop_kind:8} {role:7} {size:8} {library:24} {ours:7.2f}   {ratio}")


if __name__ == "__main__":
    main()
