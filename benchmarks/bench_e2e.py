"""End-to-end benchmark: echo servers over real TCP, driven by one client.

Run from the repository root::

    python benchmarks/bench_e2e.py [--quick] [--rounds N] [--json out.json] [--markdown]

Servers (each in its own subprocess on 127.0.0.1, port 0, one at a time):

- ``wsproto_core``: ``wsproto_core.drivers.asyncio.serve`` with an
  ``async for message in ws: await ws.send(message)`` handler;
- ``websockets``: ``websockets.asyncio.server.serve`` with the same handler
  (its C speedups are reported in the header);
- ``uvicorn+wsproto``: uvicorn with ``ws="wsproto"`` (the real wsproto) and an
  ASGI echo application, on the standard asyncio loop.

The client is the same for every server: a raw ``asyncio.Protocol`` that frames
with wsproto_core's sans-I/O ``Connection`` and writes from its callbacks. It
was chosen over websockets' own client because it does the least work per
message of anything available here (no per-message task, future or queue), so
the server, not the client, is the bottleneck, and because its frames are
prepared before timing (a pool of distinct payloads, each masked with its own
key). It checks every echoed message against the payload it sent, in order; a
server that corrupts, drops or reorders a message fails the run (exit status 1)
instead of being timed.

Each round starts every server in turn (the order rotates from round to round),
runs every case against it, and stops it. Rates and percentiles are medians over
rounds; ratios are medians of the per-round ratios ``wsproto_core/other``. See
benchmarks/README.md for the cases.

The wsproto_core and websockets echo servers, and the server processes' start
and stop, are bench_drivers.py's (imported, not repeated).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime
import functools
import gc
import importlib.metadata
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_drivers import (
    EchoMismatch,
    ServerProcess,
    corrupting_echo,
    serve_until_eof,
    serve_websockets,
    serve_wsproto_core,
)

import wsproto_core.masking
from wsproto_core import WSConnection
from wsproto_core.connection import Connection
from wsproto_core.events import AcceptConnection, BytesMessage, CloseConnection, Message, Request, TextMessage
from wsproto_core.state import ConnectionState, ConnectionType

CORE, WEBSOCKETS, UVICORN = "wsproto_core", "websockets", "uvicorn+wsproto"
SERVERS = (CORE, WEBSOCKETS, UVICORN)
#: A server that corrupts one echo in 50: only for checking that the client notices.
BROKEN = "broken"

KiB = 1024
POOL = 32  # distinct payloads (and masking keys) per case
WINDOW = 100  # messages in flight in the throughput cases
CONNECTIONS = 100  # connections in the concurrency case
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


# --------------------------------------------------------------------------- servers


async def _echo_uvicorn(port_out: Callable[[int], None], stop: asyncio.Future[None]) -> None:
    import uvicorn  # noqa: PLC0415

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                return
            if event.get("text") is not None:
                await send({"type": "websocket.send", "text": event["text"]})
            else:
                await send({"type": "websocket.send", "bytes": event["bytes"]})

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, ws="wsproto", http="h11", lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        await asyncio.sleep(0.01)
    port_out(listener.getsockname()[1])
    await stop
    server.should_exit = True
    await task


SERVE: dict[str, Callable[[Callable[[int], None], asyncio.Future[None]], Awaitable[None]]] = {
    CORE: serve_wsproto_core,
    WEBSOCKETS: serve_websockets,
    UVICORN: _echo_uvicorn,
    BROKEN: functools.partial(serve_wsproto_core, handler=corrupting_echo(50)),
}


def server_process(kind: str, profile: str | None) -> None:
    """The body of a server subprocess: serve until stdin closes."""
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    asyncio.run(serve_until_eof(SERVE[kind]))
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)


def start_server(kind: str, profile: str | None = None) -> ServerProcess:
    """Start ``kind``'s server process (see bench_drivers.ServerProcess)."""
    command = [sys.executable, __file__, "--server-process", kind]
    if profile:
        command += ["--profile-output", profile]
    return ServerProcess(kind, command)


# --------------------------------------------------------------------------- client


def make_text(size: int, rng: random.Random) -> str:
    """Text of exactly ``size`` UTF-8 bytes, mostly ASCII with 2-, 3- and 4-byte characters."""
    alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ0123456789éüñ€中😀"
    pieces: list[str] = []
    length = 0
    while True:
        char = rng.choice(alphabet)
        width = len(char.encode())
        if length + width > size:
            break
        pieces.append(char)
        length += width
    return "".join(pieces) + "x" * (size - length)


@dataclass
class Case:
    """One measurement: what is sent, how many in flight, and on how many connections."""

    name: str
    kind: str  # "throughput", "latency" or "concurrency"
    size: int
    text: bool
    window: int
    connections: int = 1

    def payloads(self, seed: int) -> list[str | bytes]:
        rng = random.Random(seed)
        if self.text:
            return [make_text(self.size, rng) for _ in range(POOL)]
        return [rng.randbytes(self.size) for _ in range(POOL)]


def build_cases() -> list[Case]:
    cases = []
    for size, label in ((16, "16 B"), (KiB, "1 KiB"), (64 * KiB, "64 KiB")):
        for text in (False, True):
            kind = "text" if text else "binary"
            cases.append(Case(f"throughput {label} {kind}", "throughput", size, text, WINDOW))
    for size, label in ((16, "16 B"), (KiB, "1 KiB")):
        cases.append(Case(f"latency {label} binary", "latency", size, False, 1))
    cases.append(Case(f"concurrency {CONNECTIONS} conns 16 B", "concurrency", 16, False, 1, CONNECTIONS))
    return cases


class EchoClient(asyncio.Protocol):
    """A WebSocket client connection that sends prepared frames and checks every echo."""

    def __init__(self) -> None:
        self.handshake = WSConnection(ConnectionType.CLIENT)
        self.connection: Connection | None = None
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pieces: list[Any] = []
        self.run: Run | None = None
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.handshake.send(Request(host="127.0.0.1", target="/")))

    def data_received(self, data: bytes) -> None:
        connection = self.connection
        if connection is None:
            self.handshake.receive_data(data)
            for event in self.handshake.events():
                if isinstance(event, AcceptConnection):
                    self.connection = self.handshake.connection
                    self.opened.set_result(None)
                    return
            return
        connection.receive_data(data)
        run = self.run
        for event in connection.events():
            if self.closing:
                continue  # the peer's Close; the server closes TCP next
            if not isinstance(event, Message) or run is None:
                self._fail(EchoMismatch(f"unexpected {event!r}"))
                return
            if not event.message_finished:
                self._pieces.append(event.data)
                continue
            if self._pieces:
                self._pieces.append(event.data)
                message = ("" if isinstance(event, TextMessage) else b"").join(self._pieces)
                self._pieces = []
            else:
                message = event.data
            run.on_message(message)
        if run is not None and run.outgoing:
            assert self.transport is not None
            self.transport.write(b"".join(run.outgoing))
            run.outgoing.clear()

    def _fail(self, error: Exception) -> None:
        if self.run is not None:
            self.run.fail(error)
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed during the handshake"))
        if self.run is not None and not self.run.done.done():
            self.run.fail(EchoMismatch("the server closed the connection during the run"))
        if not self.closed.done():
            self.closed.set_result(None)

    def frames(self, payloads: list[str | bytes]) -> list[bytes]:
        """Client frames for ``payloads``, each masked with its own key by the library."""
        assert self.connection is not None
        return [
            self.connection.send(TextMessage(p) if isinstance(p, str) else BytesMessage(p))  # type: ignore[arg-type]
            for p in payloads
        ]

    async def close(self) -> None:
        """The closing handshake (so that servers log no error), then wait for the server to close TCP."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            if self.connection is not None and self.connection.state is ConnectionState.OPEN:
                self.closing = True
                transport.write(self.connection.send(CloseConnection(1000)))
            else:
                transport.close()
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), 10)
        except TimeoutError:
            if transport is not None:
                transport.abort()


class Run:
    """Keeps ``window`` messages in flight until ``deadline``, then waits for the last echoes."""

    def __init__(
        self, client: EchoClient, payloads: list[str | bytes], window: int, deadline: float, latency: bool
    ) -> None:
        self.client = client
        self.payloads = payloads
        self.frames = client.frames(payloads)
        self.window = window
        self.deadline = deadline
        self.sent = 0
        self.received = 0
        self.verified = 0
        self.outgoing: list[bytes] = []
        self.latencies: list[int] | None = [] if latency else None
        self._sent_at = 0
        self.start = 0.0
        self.end = 0.0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        client.run = self

    def begin(self) -> None:
        self.start = time.perf_counter()
        self._sent_at = time.perf_counter_ns()
        count = self.window
        batch = [self.frames[i % POOL] for i in range(count)]
        self.sent = count
        assert self.client.transport is not None
        self.client.transport.write(b"".join(batch))

    def on_message(self, message: str | bytes) -> None:
        # Hot path of the client: compare, count, and queue the next frame.
        index = self.received % POOL
        if message != self.payloads[index]:
            self.fail(EchoMismatch(f"echo {self.received} differs from the message sent"))
            return
        self.verified += 1
        self.received += 1
        if self.latencies is not None:
            now = time.perf_counter_ns()
            self.latencies.append(now - self._sent_at)
            self._sent_at = now
        if time.perf_counter() < self.deadline:
            self.outgoing.append(self.frames[self.sent % POOL])
            self.sent += 1
        elif self.received == self.sent and not self.done.done():
            self.end = time.perf_counter()
            self.done.set_result(None)

    def fail(self, error: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(error)
        if self.client.transport is not None:
            self.client.transport.abort()


async def open_client(port: int) -> EchoClient:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(EchoClient, "127.0.0.1", port)
    await asyncio.wait_for(client.opened, 10)
    return client


async def run_case(clients: list[EchoClient], case: Case, duration: float, seed: int) -> dict[str, Any]:
    """Run one case on ``clients``; return its figures (rates, percentiles, verified count)."""
    payloads = case.payloads(seed)
    deadline = time.perf_counter() + duration
    runs = [Run(client, payloads, case.window, deadline, case.kind == "latency") for client in clients]
    gc.collect()
    gc.disable()
    try:
        for run in runs:
            run.begin()
        await asyncio.wait_for(asyncio.gather(*(run.done for run in runs)), duration + 30)
    finally:
        gc.enable()
        for client in clients:
            client.run = None
    start = min(run.start for run in runs)
    end = max(run.end for run in runs)
    messages = sum(run.received for run in runs)
    result: dict[str, Any] = {
        "messages": messages,
        "verified": sum(run.verified for run in runs),
        "seconds": end - start,
        "msgs_per_s": messages / (end - start),
    }
    if case.kind == "latency":
        samples = sorted(sample for run in runs for sample in run.latencies or ())
        result["latency_us"] = {str(p): percentile(samples, p) / 1000 for p in PERCENTILES}
    return result


def percentile(sorted_samples: list[int], p: float) -> float:
    """The nearest-rank percentile ``p`` (0-100) of sorted samples."""
    rank = max(1, min(len(sorted_samples), round(p / 100 * len(sorted_samples) + 0.5)))
    return float(sorted_samples[rank - 1])


async def measure_server(port: int, cases: list[Case], duration: float, warmup: float) -> dict[str, Any]:
    """Every case against the server on ``port``; a failed case is recorded, not raised."""
    results: dict[str, Any] = {}
    main = await open_client(port)
    try:
        try:
            # Warm up (imports, caches, the server's first allocations) on a mixed load.
            for warm in (cases[0], cases[-1]):
                await run_case([main], warm, warmup, seed=0)
        except (EchoMismatch, ConnectionError, TimeoutError) as exc:
            results["warm-up"] = {"error": f"{type(exc).__name__}: {exc}"}
            main = await open_client(port)
        for number, case in enumerate(cases):
            clients = [main]
            extra: list[EchoClient] = []
            try:
                if case.connections > 1:
                    extra = list(await asyncio.gather(*(open_client(port) for _ in range(case.connections - 1))))
                    clients += extra
                results[case.name] = await run_case(clients, case, duration, seed=number + 1)
            except (EchoMismatch, ConnectionError, TimeoutError) as exc:
                results[case.name] = {"error": f"{type(exc).__name__}: {exc}"}
                if main.transport is None or main.transport.is_closing():
                    main = await open_client(port)
            finally:
                await asyncio.gather(*(client.close() for client in extra))
    finally:
        await main.close()
    return results


# --------------------------------------------------------------------------- driver


def git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "wsproto_core"], capture_output=True, text=True, check=False
        )
        return out + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def websockets_speedups() -> bool:
    import websockets.frames  # noqa: PLC0415

    try:
        from websockets import speedups  # noqa: PLC0415
    except ImportError:
        return False
    return bool(websockets.frames.apply_mask is speedups.apply_mask)


def metadata(args: argparse.Namespace) -> dict[str, Any]:
    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "git": git_revision(),
        "websockets": version("websockets"),
        "wsproto": version("wsproto"),
        "uvicorn": version("uvicorn"),
        "websockets_speedups": websockets_speedups(),
        "wsproto_core_speedups": wsproto_core.masking.SPEEDUPS,
        "rounds": args.rounds,
        "duration": args.duration,
        "window": WINDOW,
    }


@dataclass
class Report:
    servers: list[str]
    cases: list[Case]
    #: rounds[i][server][case name] = result dict
    rounds: list[dict[str, dict[str, Any]]] = field(default_factory=list)

    def values(self, server: str, case: str, key: Callable[[dict[str, Any]], float]) -> list[float | None]:
        out: list[float | None] = []
        for round_ in self.rounds:
            result = round_.get(server, {}).get(case)
            out.append(None if result is None or "error" in result else key(result))
        return out

    def median(self, server: str, case: str, key: Callable[[dict[str, Any]], float]) -> float | None:
        values = [v for v in self.values(server, case, key) if v is not None]
        return statistics.median(values) if values else None

    def ratio(self, other: str, case: str, key: Callable[[dict[str, Any]], float]) -> float | None:
        ours = self.values(CORE, case, key)
        theirs = self.values(other, case, key)
        ratios = [a / b for a, b in zip(ours, theirs, strict=True) if a is not None and b]
        return statistics.median(ratios) if ratios else None

    def spread(self, other: str, case: str, key: Callable[[dict[str, Any]], float]) -> float | None:
        """The interquartile range of the per-round ratios, relative to their median (noise)."""
        ours = self.values(CORE, case, key)
        theirs = self.values(other, case, key)
        ratios = [a / b for a, b in zip(ours, theirs, strict=True) if a is not None and b]
        if len(ratios) < 2:
            return None
        low, _, high = statistics.quantiles(ratios, n=4, method="inclusive")
        return (high - low) / statistics.median(ratios)

    def errors(self) -> list[str]:
        return [
            f"round {number + 1}, {server}, {case}: {result['error']}"
            for number, round_ in enumerate(self.rounds)
            for server, results in round_.items()
            for case, result in results.items()
            if "error" in result
        ]

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for case in self.cases:
            row: dict[str, Any] = {"msgs_per_s": {}, "ratio_msgs_per_s": {}}
            for server in self.servers:
                row["msgs_per_s"][server] = self.median(server, case.name, lambda r: r["msgs_per_s"])
                if server != CORE:
                    row["ratio_msgs_per_s"][server] = self.ratio(server, case.name, lambda r: r["msgs_per_s"])
                    row.setdefault("ratio_spread", {})[server] = self.spread(
                        server, case.name, lambda r: r["msgs_per_s"]
                    )
            if case.kind == "latency":
                row["latency_us"] = {}
                row["ratio_latency"] = {}
                for p in PERCENTILES:
                    key = str(p)

                    def pick(r: dict[str, Any], key: str = key) -> float:
                        return float(r["latency_us"][key])

                    row["latency_us"][key] = {server: self.median(server, case.name, pick) for server in self.servers}
                    row["ratio_latency"][key] = {
                        server: self.ratio(server, case.name, pick) for server in self.servers if server != CORE
                    }
            out[case.name] = row
        return out


def fmt_rate(value: float | None) -> str:
    if value is None:
        return "FAILED"
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e4:
        return f"{value / 1e3:.0f}k"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def fmt_spread(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def fmt_us(value: float | None) -> str:
    return "FAILED" if value is None else f"{value:.0f}"


def tables(report: Report) -> list[tuple[list[str], list[list[str]]]]:
    summary = report.summary()
    others = [s for s in report.servers if s != CORE]
    # The noise of the first comparison: the interquartile range of its per-round ratios.
    noisy = others[:1]
    head = [
        "case",
        *[f"{s} msg/s" for s in report.servers],
        *[f"core/{s}" for s in others],
        *[f"IQR vs {s}" for s in noisy],
    ]
    rows = []
    for case in report.cases:
        row = summary[case.name]
        rows.append(
            [
                case.name,
                *[fmt_rate(row["msgs_per_s"][s]) for s in report.servers],
                *[fmt_ratio(row["ratio_msgs_per_s"][s]) for s in others],
                *[fmt_spread(row["ratio_spread"][s]) for s in noisy],
            ]
        )
    out = [(head, rows)]
    latency_head = ["latency (µs)", *report.servers, *[f"core/{s}" for s in others]]
    latency_rows = []
    for case in report.cases:
        if case.kind != "latency":
            continue
        row = summary[case.name]
        for p in PERCENTILES:
            key = str(p)
            latency_rows.append(
                [
                    f"{case.name.removeprefix('latency ')} p{p:g}",
                    *[fmt_us(row["latency_us"][key][s]) for s in report.servers],
                    *[fmt_ratio(row["ratio_latency"][key][s]) for s in others],
                ]
            )
    if latency_rows:
        out.append((latency_head, latency_rows))
    return out


def render(head: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths, strict=True)))
        for r in [head, *rows]
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run: 3 rounds of 0.3 s per case")
    parser.add_argument("--rounds", type=int, help="rounds (each server once per round); default 5, --quick 3")
    parser.add_argument("--duration", type=float, help="seconds per case and server; default 1.0, --quick 0.3")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"comma-separated, among {', '.join(SERVERS)}")
    parser.add_argument("--filter", default="", help="only the cases whose name contains this text")
    parser.add_argument("--json", metavar="PATH", help="also save every round's figures and the metadata")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument("--profile", metavar="DIR", help="run the servers under cProfile, stats saved in DIR")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--server-process", help=argparse.SUPPRESS)
    parser.add_argument("--profile-output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.server_process:
        server_process(args.server_process, args.profile_output)
        return 0
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.duration = args.duration or (0.3 if args.quick else 1.0)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = set(servers) - {*SERVERS, BROKEN}
    if unknown or (CORE not in servers and BROKEN not in servers):
        parser.error(f"--servers: unknown {sorted(unknown)} or no {CORE}")
    cases = [case for case in build_cases() if args.filter in case.name]
    if not cases:
        parser.error("--filter matches no case")
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)

    report = Report(servers, cases)
    warmup = min(0.2, args.duration)
    for number in range(args.rounds):
        order = servers[number % len(servers) :] + servers[: number % len(servers)]
        round_: dict[str, dict[str, Any]] = {}
        for server in order:
            if not args.quiet:
                print(f"round {number + 1}/{args.rounds}: {server}", file=sys.stderr, flush=True)
            profile = os.path.join(args.profile, f"{server}-{number + 1}.prof") if args.profile else None
            with start_server(server, profile) as process:
                round_[server] = asyncio.run(measure_server(process.port, cases, args.duration, warmup))
        report.rounds.append(round_)

    info = metadata(args)
    print(
        f"Python {info['python']} ({info['platform']}, {info['cpus']} CPUs), {info['date']}, git {info['git']}\n"
        f"websockets {info['websockets']} (C speedups: {info['websockets_speedups']}), "
        f"wsproto {info['wsproto']} on uvicorn {info['uvicorn']}, "
        f"wsproto_core C masking: {info['wsproto_core_speedups']}\n"
        f"{args.rounds} rounds x {args.duration} s per case; throughput window {WINDOW}; "
        f"medians over rounds, ratios = median of per-round ratios (msg/s: >1 is faster; latency: <1 is faster)"
    )
    for head, rows in tables(report):
        print()
        print(render(head, rows, args.markdown))
    errors = report.errors()
    for error in errors:
        print(f"FAILED: {error}")
    if args.json:
        data = {
            "metadata": info,
            "servers": servers,
            "cases": [case.__dict__ for case in cases],
            "rounds": report.rounds,
            "summary": report.summary(),
            "errors": errors,
        }
        Path(args.json).write_text(json.dumps(data, indent=1))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
