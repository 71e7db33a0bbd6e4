"""Load and fault harness: our asyncio server and websockets' server under hostile and heavy clients.

Each scenario starts a fresh echo server in its own subprocess (127.0.0.1, port 0), one server
kind after the other in an order that rotates from scenario to scenario; this process is every
client. The server subprocess answers ``stats`` on its stdin with its resident size, open file
descriptors, asyncio tasks and CPU time, so that the figures are the server's own.

Scenarios (``--scenarios`` picks some; ``--scale`` multiplies every count and duration that is
not given explicitly, so ``--scale 0.1`` is a quick run):

- ``idle``: N idle connections (default 10,000; the file limit is raised to its hard limit in
  both processes): server RSS per connection, and every connection still echoes at the end.
  ``idle-deflate``: the same with permessage-deflate, after one compressed message each way.
- ``slowloris``: S sockets (default 2,000) sending their upgrade request one byte per second,
  while a normal client does round trips and opens a fresh connection every second: its
  latency percentiles and failures, and when the trickling sockets were closed by the server.
- ``flood``: a client sends 64 KiB messages as fast as it can and never reads: server RSS along
  the way, whether the server paused reading (the client's writes block) and whether, and with
  which close code, it closed the connection.
- ``soak``: C connections x M messages (default 200 x 500) of random sizes 1 B-64 KiB, text and
  binary, every echo compared; messages/s and server CPU time; server descriptors and tasks back
  to their baseline after the clients left. ``soak-deflate``: the same with permessage-deflate
  offered (default 50 x 200).
- ``reset``: R rounds (default 8) of P clients (default 500) resetting (RST) the connection,
  half in the middle of the handshake, half in the middle of a frame: server RSS, descriptors and
  tasks after each round, a tracemalloc diff between the second and the last round (what grows),
  and one echo at the end (the server still serves).

Every loop is bounded (counts and deadlines). The exit status is 1 when a correctness fact
failed (a lost or corrupted echo, a leaked descriptor or task, a server that stopped serving).

Run: python benchmarks/bench_load.py --scale 0.1            # quick, a couple of minutes
     python benchmarks/bench_load.py --markdown --json load.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import resource
import socket
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from wsproto_core import WSConnection
from wsproto_core.drivers.asyncio import serve as core_serve
from wsproto_core.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto_core.permessage_deflate import PerMessageDeflate
from wsproto_core.state import ConnectionType

try:
    from websockets.asyncio.server import serve as websockets_serve
    from websockets.exceptions import ConnectionClosed as WebSocketsClosed
except ImportError:  # only the websockets rows need it (the bench extra)
    websockets_serve = None

CORE = "wsproto_core"
WEBSOCKETS = "websockets"
SERVERS = (CORE, WEBSOCKETS)
#: Our server with the 15-bit deflate windows it had before (only when named in --servers).
CORE_WINDOW_15 = "wsproto_core-w15"
SCENARIOS = ("idle", "idle-deflate", "slowloris", "flood", "soak", "soak-deflate", "reset")
HOST = "127.0.0.1"


def raise_file_limit() -> int:
    """Raise this process's descriptor limit to its hard limit; return the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def resident_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# --------------------------------------------------------------------------- server process


def _server_options(open_timeout: float | None) -> dict[str, Any]:
    return {} if open_timeout is None else {"open_timeout": open_timeout}


async def _serve(kind: str, open_timeout: float | None) -> tuple[Any, int]:
    if kind == CORE_WINDOW_15:
        from wsproto_core.drivers import _common  # noqa: PLC0415 - only this comparison changes it

        _common.DEFLATE_WINDOW_BITS = 15
        kind = CORE
    if kind == CORE:

        async def core_echo(websocket: Any) -> None:
            async for message in websocket:
                await websocket.send(message)

        server = await core_serve(core_echo, HOST, 0, **_server_options(open_timeout))
        return server, server.port
    if websockets_serve is None:
        raise RuntimeError("websockets is not installed (pip install -e '.[bench]')")

    async def websockets_echo(websocket: Any) -> None:
        with contextlib.suppress(WebSocketsClosed):
            async for message in websocket:
                await websocket.send(message)

    server = await websockets_serve(websockets_echo, HOST, 0, **_server_options(open_timeout))
    return server, server.sockets[0].getsockname()[1]


def _control(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> None:
    """Answer the parent's commands on stdin, one JSON line each; EOF stops the server."""
    snapshot: tracemalloc.Snapshot | None = None

    async def task_count() -> int:
        return len(asyncio.all_tasks())

    for line in sys.stdin:
        command = line.strip()
        answer: dict[str, Any] = {}
        if command == "stats":
            gc.collect()
            usage = resource.getrusage(resource.RUSAGE_SELF)
            answer = {
                "rss": resident_bytes(),
                "fds": len(os.listdir("/proc/self/fd")),
                "tasks": asyncio.run_coroutine_threadsafe(task_count(), loop).result(30),
                "cpu": usage.ru_utime + usage.ru_stime,
                # Page faults: an allocator that gives memory back and takes it again shows here.
                "minflt": usage.ru_minflt,
            }
        elif command == "trace":
            tracemalloc.start(8)
        elif command == "snapshot":
            gc.collect()
            snapshot = tracemalloc.take_snapshot()
        elif command == "diff" and snapshot is not None:
            gc.collect()
            # The harness's own allocations (this thread, tracemalloc itself) are not the server's.
            ignored = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
            now = tracemalloc.take_snapshot().filter_traces(ignored)
            snapshot = snapshot.filter_traces(ignored)
            growth = now.compare_to(snapshot, "lineno")[:8]
            answer = {
                "growth": [f"{stat.size_diff:+d} B {stat.count_diff:+d} objects {stat.traceback}" for stat in growth]
            }
        print(json.dumps(answer), flush=True)
    stop()


def server_process(kind: str, open_timeout: float | None, profile: str | None = None) -> None:
    """The body of a server subprocess: serve until stdin closes.

    ``profile``: a directory where the server's cProfile statistics go (``<kind>-<pid>.prof``).
    """
    raise_file_limit()
    profiler = None
    if profile is not None:
        import cProfile  # noqa: PLC0415 - only a profiled run needs it

        profiler = cProfile.Profile()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        server, port = await _serve(kind, open_timeout)
        print(port, flush=True)
        threading.Thread(
            target=_control, args=(loop, lambda: loop.call_soon_threadsafe(stopped.set)), daemon=True
        ).start()
        await stopped.wait()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(20):
                if kind in (CORE, CORE_WINDOW_15):
                    await server.close()
                else:
                    server.close()
                    await server.wait_closed()

    if profiler is None:
        asyncio.run(main())
        return
    profiler.enable()
    try:
        asyncio.run(main())
    finally:
        profiler.disable()
        assert profile is not None
        profiler.dump_stats(os.path.join(profile, f"{kind}-{os.getpid()}.prof"))


class ServerProcess:
    """A server subprocess; ``with`` it to be sure it is stopped."""

    #: A directory for the server processes' cProfile statistics (``--profile``), or None.
    profile: str | None = None

    def __init__(self, kind: str, open_timeout: float | None = None) -> None:
        command = [sys.executable, os.path.abspath(__file__), "--server-process", kind]
        if open_timeout is not None:
            command += ["--open-timeout", str(open_timeout)]
        if ServerProcess.profile is not None:
            command += ["--profile", ServerProcess.profile]
        self.kind = kind
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"{kind} server did not start (said {line!r})")
        self.port = int(line)

    def command(self, command: str) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        answer: dict[str, Any] = json.loads(self.process.stdout.readline())
        return answer

    async def stats(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.command, "stats")

    async def settle(self, baseline: dict[str, Any], deadline: float) -> dict[str, Any]:
        """Poll until descriptors and tasks are back to ``baseline`` (or ``deadline`` seconds passed)."""
        end = time.monotonic() + deadline
        while True:
            stats = await self.stats()
            if (stats["fds"] <= baseline["fds"] and stats["tasks"] <= baseline["tasks"]) or time.monotonic() > end:
                return stats
            await asyncio.sleep(0.5)

    def stop(self) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- client


def upgrade_request(port: int, compression: bool = False) -> bytes:
    """The bytes of a client's upgrade request (what the trickling sockets send)."""
    client = WSConnection(ConnectionType.CLIENT)
    extensions = [PerMessageDeflate(client_no_context_takeover=True)] if compression else []
    return client.send(Request(host=f"{HOST}:{port}", target="/", extensions=extensions))


class Peer:
    """A WebSocket client on asyncio streams and our sans-I/O core, checking what it receives."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: WSConnection) -> None:
        self.reader = reader
        self.writer = writer
        self.connection = connection
        self.close_code: int | None = None
        self._pieces: list[Any] = []
        self._inbox: asyncio.Queue[str | bytes | Exception] | None = None
        self._pump: asyncio.Task[None] | None = None

    def start_reading(self) -> None:
        """Read in the background, as real clients do: Pings are answered while the peer idles."""
        self._inbox = asyncio.Queue()
        self._pump = asyncio.get_running_loop().create_task(self._read_forever())

    async def _read_forever(self) -> None:
        assert self._inbox is not None
        try:
            while True:
                self._inbox.put_nowait(await self._read_message())
        except (ConnectionError, OSError) as exc:
            self._inbox.put_nowait(exc)

    @classmethod
    async def open(cls, port: int, compression: bool = False, timeout: float = 30, *, reading: bool = True) -> Peer:
        """A connection after its handshake; with ``reading``, it reads (and answers Pings) in the background."""
        peer = await cls._open(port, compression, timeout)
        if reading:
            peer.start_reading()
        return peer

    @classmethod
    async def _open(cls, port: int, compression: bool, timeout: float) -> Peer:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 16)
            try:
                connection = WSConnection(ConnectionType.CLIENT)
                extensions = [PerMessageDeflate(client_no_context_takeover=True)] if compression else []
                writer.write(connection.send(Request(host=f"{HOST}:{port}", target="/", extensions=extensions)))
                while True:
                    data = await reader.read(1 << 16)
                    if not data:
                        raise ConnectionError("closed during the handshake")
                    connection.receive_data(data)
                    for event in connection.events():
                        if isinstance(event, AcceptConnection):
                            return cls(reader, writer, connection)
                        if isinstance(event, RejectConnection):
                            raise ConnectionError(f"rejected with HTTP {event.status_code}")
            except BaseException:
                writer.transport.abort()
                raise

    async def send(self, message: str | bytes) -> None:
        event = TextMessage(message) if isinstance(message, str) else BytesMessage(message)
        self.writer.write(self.connection.send(event))
        await self.writer.drain()

    async def receive(self) -> str | bytes:
        """The next whole message; ``ConnectionError`` if the server closed first."""
        if self._inbox is None:
            return await self._read_message()
        message = await self._inbox.get()
        if isinstance(message, Exception):
            self._inbox.put_nowait(message)
            raise message
        return message

    async def _read_message(self) -> str | bytes:
        while True:
            for event in self.connection.events():
                if isinstance(event, Message):
                    self._pieces.append(event.data)
                    if event.message_finished:
                        pieces, self._pieces = self._pieces, []
                        return "".join(pieces) if isinstance(event, TextMessage) else b"".join(pieces)
                elif isinstance(event, Ping):
                    self.writer.write(self.connection.send(event.response()))
                elif isinstance(event, CloseConnection):
                    self.close_code = event.code
                    raise ConnectionError(f"closed by the server: {event.code} {event.reason}")
            data = await self.reader.read(1 << 16)
            self.connection.receive_data(data or None)

    async def echo(self, message: str | bytes, timeout: float = 30) -> bool:
        """Send ``message``; return whether the next message received equals it."""
        async with asyncio.timeout(timeout):
            await self.send(message)
            return await self.receive() == message

    def abort(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        self.writer.transport.abort()

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
            self._pump = self._inbox = None
        with contextlib.suppress(Exception):
            self.writer.write(self.connection.send(CloseConnection(code=1000)))
            async with asyncio.timeout(5):
                await self.writer.drain()
                while True:
                    await self.receive()
        self.writer.transport.abort()


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST: SO_LINGER on with a zero timeout."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def bounded_gather(count: int, concurrency: int, make: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """Run ``make(i)`` for every i in ``range(count)``, ``concurrency`` at a time; results or exceptions."""
    results: list[Any] = [None] * count
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            try:
                results[index] = await make(index)
            except Exception as exc:  # noqa: BLE001 - the caller counts the failures
                results[index] = exc

    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    return results


class Payloads:
    """Random messages of 1 B to 64 KiB, text (multi-byte UTF-8 included) and binary, and their checks."""

    WORDS = ("hello", "world", "ωebsocket", "frame", "échange", "数据", "🙂", "message", "0123456789", "{}:,")
    #: The text and bytes that messages are cut from, built once: building them per client would
    #: stall the clients' event loop while other clients' handshakes are under way.
    _corpus: tuple[str, bytes] | None = None

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        if Payloads._corpus is None:
            rng = random.Random(0)
            Payloads._corpus = (" ".join(rng.choice(self.WORDS) for _ in range(40000)), rng.randbytes(1 << 17))
        self.text, self.binary = Payloads._corpus

    def next(self) -> str | bytes:
        rng = self.rng
        # Sizes spread over the whole range on a log scale: as many small as large messages.
        size = min(65536, int(2 ** rng.uniform(0, 16)))
        if rng.random() < 0.5:
            start = rng.randrange(len(self.text) - size)
            return self.text[start : start + size]
        start = rng.randrange(len(self.binary) - size)
        return self.binary[start : start + size]


# --------------------------------------------------------------------------- scenarios


@dataclass
class Outcome:
    """One scenario against one server: its figures, and the correctness facts that failed."""

    scenario: str
    server: str
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def check(self, fact: bool, failure: str) -> None:
        if not fact:
            self.failures.append(failure)


def percentile(samples: list[float], p: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


async def scenario_idle(server: ServerProcess, outcome: Outcome, connections: int, *, compression: bool) -> None:
    warm = [await Peer.open(server.port, compression=compression) for _ in range(5)]
    for peer in warm:
        await peer.close()
    before = await server.stats()
    opened = await bounded_gather(
        connections, 100, lambda _: Peer.open(server.port, compression=compression, timeout=120)
    )
    peers = [peer for peer in opened if isinstance(peer, Peer)]
    outcome.check(len(peers) == connections, f"{connections - len(peers)} connections failed to open")
    if compression:
        # One compressed message each way, so that every connection holds its zlib state.
        text = Payloads.WORDS[0] * 200
        first = await bounded_gather(len(peers), 200, lambda index: peers[index].echo(f"{index} {text}"))
        outcome.check(all(result is True for result in first), "a first compressed echo failed")
    await asyncio.sleep(1)
    after = await server.stats()
    outcome.figures["connections"] = len(peers)
    outcome.figures["rss_per_connection"] = (after["rss"] - before["rss"]) / max(1, len(peers))
    echoed = await bounded_gather(len(peers), 200, lambda index: peers[index].echo(f"still here {index}"))
    good = sum(1 for result in echoed if result is True)
    outcome.figures["echoed"] = good
    outcome.check(good == len(peers), f"{len(peers) - good} idle connections did not echo")
    await bounded_gather(len(peers), 500, lambda index: peers[index].close())
    settled = await server.settle(before, 60)
    outcome.check(settled["fds"] <= before["fds"], f"descriptors {before['fds']} -> {settled['fds']}")
    outcome.check(settled["tasks"] <= before["tasks"], f"tasks {before['tasks']} -> {settled['tasks']}")


async def scenario_slowloris(
    server: ServerProcess, outcome: Outcome, sockets: int, duration: float, close_deadline: float
) -> None:
    request = upgrade_request(server.port)
    normal = await Peer.open(server.port)
    before = await server.stats()
    started = time.monotonic()
    closed_after: list[float] = []
    writers: list[asyncio.StreamWriter] = []

    async def trickler(_: int) -> None:
        reader, writer = await asyncio.open_connection(HOST, server.port)
        writers.append(writer)
        opened = time.monotonic()
        with contextlib.suppress(OSError):
            await reader.read()
        closed_after.append(time.monotonic() - opened)

    async def trickle() -> None:
        # One byte per second on every open trickling socket, never the whole request.
        for index in range(len(request) - 1):
            for writer in writers:
                if not writer.is_closing():
                    with contextlib.suppress(OSError):
                        writer.write(request[index : index + 1])
            await asyncio.sleep(1)

    readers = [asyncio.create_task(trickler(index)) for index in range(sockets)]
    trickling = asyncio.create_task(trickle())
    latencies: list[float] = []
    failures = 0
    fresh_failures = 0
    last_fresh = time.monotonic()
    while time.monotonic() - started < duration:
        sent = time.perf_counter()
        try:
            ok = await normal.echo(b"x" * 16, timeout=10)
        except (TimeoutError, ConnectionError, OSError):
            ok = False
        latencies.append((time.perf_counter() - sent) * 1000)
        if not ok:
            failures += 1
            with contextlib.suppress(Exception):
                normal.abort()
                normal = await Peer.open(server.port, timeout=10)
        if time.monotonic() - last_fresh >= 1:
            last_fresh = time.monotonic()
            try:
                fresh = await Peer.open(server.port, timeout=10)
                fresh_failures += 0 if await fresh.echo("fresh") else 1
                await fresh.close()
            except (TimeoutError, ConnectionError, OSError):
                fresh_failures += 1
        await asyncio.sleep(0.01)
    # The trickling sockets should all be closed by the server's handshake timeout.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, close_deadline - (time.monotonic() - started))):
            await asyncio.gather(*readers, return_exceptions=True)
    trickling.cancel()
    for task in readers:
        task.cancel()
    for writer in writers:
        writer.transport.abort()
    await asyncio.gather(trickling, *readers, return_exceptions=True)
    await normal.close()
    outcome.figures.update(
        sockets=sockets,
        round_trips=len(latencies),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=max(latencies, default=None),
        failures=failures,
        fresh_connection_failures=fresh_failures,
        trickling_closed=len(closed_after),
        closed_by_s=max(closed_after, default=None),
    )
    outcome.check(failures == 0, f"{failures} round trips failed")
    outcome.check(fresh_failures == 0, f"{fresh_failures} fresh connections failed")
    outcome.check(len(closed_after) == sockets, f"{sockets - len(closed_after)} trickling sockets still open")
    settled = await server.settle(before, 60)
    outcome.check(settled["fds"] <= before["fds"], f"descriptors {before['fds']} -> {settled['fds']}")
    outcome.check(settled["tasks"] <= before["tasks"], f"tasks {before['tasks']} -> {settled['tasks']}")


async def scenario_flood(server: ServerProcess, outcome: Outcome, duration: float) -> None:
    before = await server.stats()
    peer = await Peer.open(server.port, reading=False)
    message = random.Random(1).randbytes(65536)
    frame = peer.connection.send(BytesMessage(message))
    sent = 0
    peak_rss = before["rss"]
    blocked_since: float | None = None
    closed_at: float | None = None
    started = time.monotonic()
    last_sample = started
    # Until the deadline, or until the writes have been blocked for two seconds (the server paused reading).
    while time.monotonic() - started < duration and not (blocked_since and time.monotonic() - blocked_since > 2):
        peer.writer.write(frame)
        sent += 1
        try:
            async with asyncio.timeout(0.5):
                await peer.writer.drain()
            blocked_since = None
        except TimeoutError:
            blocked_since = blocked_since or time.monotonic()
        except (ConnectionError, OSError):
            closed_at = time.monotonic() - started
            break
        if peer.writer.transport.is_closing():
            closed_at = time.monotonic() - started
            break
        if time.monotonic() - last_sample >= 1:
            last_sample = time.monotonic()
            peak_rss = max(peak_rss, (await server.stats())["rss"])
    peak_rss = max(peak_rss, (await server.stats())["rss"])
    # Now read what the server sent: the echoes (each must be intact), and a Close if it closed.
    echoes = corrupted = 0
    with contextlib.suppress(Exception):
        async with asyncio.timeout(max(5.0, duration)):
            while echoes + corrupted < sent:
                if await peer.receive() == message:
                    echoes += 1
                else:
                    corrupted += 1
    outcome.check(corrupted == 0, f"{corrupted} echoes corrupted")
    if closed_at is None:
        outcome.check(echoes == sent, f"the server stayed open but echoed {echoes} of {sent} messages")
    peer.abort()
    outcome.figures.update(
        duration_s=duration,
        messages_sent=sent,
        echoes_read_after=echoes,
        server_rss_growth=peak_rss - before["rss"],
        writes_blocked=blocked_since is not None,
        corrupted=corrupted,
        closed_at_s=closed_at,
        close_code=peer.close_code,
    )
    settled = await server.settle(before, 60)
    outcome.check(settled["fds"] <= before["fds"], f"descriptors {before['fds']} -> {settled['fds']}")
    outcome.check(settled["tasks"] <= before["tasks"], f"tasks {before['tasks']} -> {settled['tasks']}")


async def scenario_soak(
    server: ServerProcess, outcome: Outcome, connections: int, messages: int, *, compression: bool, seed: int
) -> None:
    before = await server.stats()
    lost = corrupted = 0

    async def one_client(index: int) -> None:
        nonlocal lost, corrupted
        payloads = Payloads(seed + index)
        peer = await Peer.open(server.port, compression=compression, timeout=120)
        try:
            for _ in range(messages):
                message = payloads.next()
                await peer.send(message)
                try:
                    async with asyncio.timeout(60):
                        echo = await peer.receive()
                except (TimeoutError, ConnectionError):
                    lost += 1
                    return
                if echo != message:
                    corrupted += 1
        finally:
            await peer.close()

    started = time.perf_counter()
    results = await asyncio.gather(*(one_client(index) for index in range(connections)), return_exceptions=True)
    elapsed = time.perf_counter() - started
    errors = [result for result in results if isinstance(result, BaseException)]
    after = await server.stats()
    settled = await server.settle(before, 60)
    outcome.figures.update(
        connections=connections,
        messages=connections * messages,
        msg_per_s=connections * messages / elapsed,
        server_cpu_s=after["cpu"] - before["cpu"],
        server_page_faults=after["minflt"] - before["minflt"],
        lost=lost,
        corrupted=corrupted,
        fds=f"{before['fds']} -> {settled['fds']}",
        tasks=f"{before['tasks']} -> {settled['tasks']}",
    )
    outcome.check(not errors, f"{len(errors)} clients failed: {errors[:3]!r}")
    outcome.check(lost == 0, f"{lost} messages lost")
    outcome.check(corrupted == 0, f"{corrupted} messages corrupted")
    outcome.check(settled["fds"] <= before["fds"], f"descriptors {before['fds']} -> {settled['fds']}")
    outcome.check(settled["tasks"] <= before["tasks"], f"tasks {before['tasks']} -> {settled['tasks']}")


async def scenario_reset(server: ServerProcess, outcome: Outcome, rounds: int, clients: int) -> None:
    request = upgrade_request(server.port)
    before = await server.stats()
    rss: list[int] = []

    async def mid_handshake(_: int) -> None:
        _reader, writer = await asyncio.open_connection(HOST, server.port)
        writer.write(request[: len(request) // 2])
        await writer.drain()
        await asyncio.sleep(0.05)
        reset(writer)

    async def mid_frame(_: int) -> None:
        peer = await Peer.open(server.port, timeout=60, reading=False)
        # The head and half of a 4 KiB binary frame: the server waits for the rest.
        frame = peer.connection.send(BytesMessage(b"r" * 4096))
        peer.writer.write(frame[: len(frame) // 2])
        await peer.writer.drain()
        await asyncio.sleep(0.05)
        reset(peer.writer)

    for number in range(1, rounds + 1):
        half = clients // 2
        results = await bounded_gather(half, 100, mid_handshake)
        results += await bounded_gather(clients - half, 100, mid_frame)
        failed = [result for result in results if isinstance(result, BaseException)]
        outcome.check(not failed, f"round {number}: {len(failed)} clients failed: {failed[:3]!r}")
        stats = await server.settle(before, 30)
        rss.append(stats["rss"])
        outcome.check(stats["fds"] <= before["fds"], f"round {number}: descriptors {before['fds']} -> {stats['fds']}")
        outcome.check(stats["tasks"] <= before["tasks"], f"round {number}: tasks {before['tasks']} -> {stats['tasks']}")
        if number == 1:
            await asyncio.to_thread(server.command, "trace")
        elif number == 2:
            await asyncio.to_thread(server.command, "snapshot")
    growth = (await asyncio.to_thread(server.command, "diff")).get("growth", []) if rounds > 2 else []
    peer = await Peer.open(server.port)
    serves = await peer.echo("still serving")
    await peer.close()
    outcome.check(serves, "the server no longer echoes")
    outcome.figures.update(
        rounds=rounds,
        clients=clients,
        rss_before=before["rss"],
        rss_per_round=rss,
        tracemalloc_growth=growth,
    )


# --------------------------------------------------------------------------- driver


@dataclass
class Scale:
    """Counts and durations of every scenario."""

    idle: int = 10000
    slowloris: int = 2000
    slowloris_duration: float = 30.0
    flood_duration: float = 50.0
    soak_connections: int = 200
    soak_messages: int = 500
    deflate_connections: int = 50
    deflate_messages: int = 200
    reset_rounds: int = 8
    reset_clients: int = 500
    open_timeout: float | None = None

    def scaled(self, factor: float) -> Scale:
        def count(value: int) -> int:
            return max(2, int(value * factor))

        return Scale(
            idle=count(self.idle),
            slowloris=count(self.slowloris),
            slowloris_duration=max(12.0, self.slowloris_duration * factor),
            flood_duration=max(3.0, self.flood_duration * factor),
            soak_connections=count(self.soak_connections),
            soak_messages=count(self.soak_messages),
            deflate_connections=count(self.deflate_connections),
            deflate_messages=count(self.deflate_messages),
            reset_rounds=max(3, int(self.reset_rounds * min(1.0, factor * 4))),
            reset_clients=count(self.reset_clients),
            open_timeout=self.open_timeout,
        )


async def run_scenario(name: str, kind: str, scale: Scale, seed: int) -> Outcome:
    outcome = Outcome(name, kind)
    open_timeout = scale.open_timeout
    with ServerProcess(kind, open_timeout) as server:
        if name in ("idle", "idle-deflate"):
            await scenario_idle(server, outcome, scale.idle, compression=name == "idle-deflate")
        elif name == "slowloris":
            # The server's handshake timeout (10 s for both by default) decides when trickling sockets close.
            timeout = open_timeout if open_timeout is not None else 10.0
            await scenario_slowloris(server, outcome, scale.slowloris, scale.slowloris_duration, timeout * 3 + 10)
        elif name == "flood":
            await scenario_flood(server, outcome, scale.flood_duration)
        elif name == "soak":
            await scenario_soak(
                server, outcome, scale.soak_connections, scale.soak_messages, compression=False, seed=seed
            )
        elif name == "soak-deflate":
            await scenario_soak(
                server, outcome, scale.deflate_connections, scale.deflate_messages, compression=True, seed=seed
            )
        elif name == "reset":
            await scenario_reset(server, outcome, scale.reset_rounds, scale.reset_clients)
    return outcome


async def run(scenarios: list[str], servers: list[str], scale: Scale, seed: int, quiet: bool) -> list[Outcome]:
    outcomes = []
    for number, name in enumerate(scenarios):
        order = servers[number % len(servers) :] + servers[: number % len(servers)]
        for kind in order:
            if not quiet:
                print(f"[{time.strftime('%H:%M:%S')}] {name} against {kind}...", file=sys.stderr, flush=True)
            try:
                outcome = await run_scenario(name, kind, scale, seed)
            except Exception as exc:  # noqa: BLE001 - a harness failure is a failed scenario, not a crash of the run
                outcome = Outcome(name, kind, failures=[f"scenario raised {exc!r}"])
            outcomes.append(outcome)
            if not quiet:
                print(f"    {outcome.figures} {outcome.failures or 'ok'}", file=sys.stderr, flush=True)
    return outcomes


def markdown(outcomes: list[Outcome]) -> str:
    lines = ["| scenario | server | figures | failures |", "|---|---|---|---|"]
    for outcome in outcomes:
        figures = ", ".join(
            f"{key}={value:.2f}" if isinstance(value, float) else f"{key}={value}"
            for key, value in outcome.figures.items()
            if key != "tracemalloc_growth"
        )
        lines.append(f"| {outcome.scenario} | {outcome.server} | {figures} | {'; '.join(outcome.failures) or 0} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server-process", help=argparse.SUPPRESS)
    parser.add_argument("--open-timeout", type=float, help="the servers' handshake timeout (default: theirs, 10 s)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every count and duration (0.1: quick)")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--json", help="write the outcomes to this file")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("-q", "--quiet", action="store_true")
    parser.add_argument(
        "--profile", help="write each server process's cProfile statistics to this directory (slows the servers)"
    )
    args = parser.parse_args(argv)
    if args.server_process:
        server_process(args.server_process, args.open_timeout, args.profile)
        return 0
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
        ServerProcess.profile = os.path.abspath(args.profile)
    raise_file_limit()
    scale = (
        Scale(open_timeout=args.open_timeout).scaled(args.scale)
        if args.scale != 1.0
        else Scale(open_timeout=args.open_timeout)
    )
    outcomes = asyncio.run(run(args.scenarios.split(","), args.servers.split(","), scale, args.seed, args.quiet))
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": sys.version.split()[0],
        "scale": args.scale,
        "counts": scale.__dict__,
        "outcomes": [outcome.__dict__ for outcome in outcomes],
    }
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=1)
    print(f"# {report['date']}, Python {report['python']}, scale {args.scale}: {scale}")
    print(markdown(outcomes) if args.markdown else json.dumps(report["outcomes"], indent=1))
    return 1 if any(outcome.failures for outcome in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
