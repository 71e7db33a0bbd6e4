"""asyncio broadcast of 1 KiB text to many real loopback connections: ours against websockets'.

The server runs in this process, one at a time: wsproto_core's asyncio
driver with :func:`wsproto_core.drivers.broadcast.broadcast`, or websockets'
asyncio server with its ``broadcast()``; compression off on both, keepalive
off. The clients run in other processes (``--client-processes``, our asyncio
client; the same clients for both servers), open their share of the
connections, and check every message: each connection must receive every
message, exactly once, in order, byte for byte. A run counts as valid only
when all of them did.

The server broadcasts ``--messages`` messages; after each one it waits
until every connection's transport buffer is empty again (what the kernel
took, the clients read at their pace), so both servers do the same work.
Two figures, both recipients (one message reaching one connection) per
second of the server process's CPU time: over the whole run (handshakes
excluded; polling for empty buffers included), and over the broadcast calls
plus the event loop iteration that follows them, where ours writes what it
queued (websockets writes inside the call; the system calls are included in
both).
Each round runs both servers in alternating order; the ratio ours/websockets
is taken per round and its median reported.

More servers in the same rounds: "floor", the frame's bytes handed to each
connection's ``transport.write`` and nothing else (what any asyncio server
pays at least); with ``--eager``, two other policies for when to write, on
our connections' ``queue_prepared()``/``write_queued()``: "eager", every
connection whose buffer is empty written in the call, the messages that
follow in the same iteration at its end; "deferred", every message written
at the iteration's end (what ``broadcast()`` did before it guessed from the
last iteration, see :mod:`wsproto_core.drivers.broadcast`).

``--bursts`` is how many messages the server broadcasts per event loop
iteration: 1 for a publisher that sends one message per iteration, more for
one that publishes messages as fast as they come (several arrive per read).
The process's file limit is raised to its hard limit (10,000 connections need
as many descriptors in the server).

With ``--slow``, one more client connects and never reads: the figure for the
others is compared with the round without it, and the slow one's buffer is
reported against the limit.

Run: python benchmarks/bench_broadcast.py [--connections 1000,10000] [--messages 50] [--rounds 3] [--slow]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

import websockets.asyncio.server

from wsproto_core import PreparedMessage
from wsproto_core.drivers.asyncio import WebSocket, connect, serve
from wsproto_core.drivers.broadcast import DEFAULT_MAX_BUFFER_SIZE, broadcast

PAYLOAD_SIZE = 1024


def message_for(index: int) -> str:
    """1 KiB of text carrying its index, so that clients can check order and content."""
    head = f"{index:08d}:"
    return head + "x" * (PAYLOAD_SIZE - len(head))


def frame_for(index: int) -> bytes:
    """The server frame carrying ``message_for(index)`` (RFC 6455 section 5.2: FIN, text, 16-bit length)."""
    payload = message_for(index).encode()
    return b"\x81\x7e" + len(payload).to_bytes(2, "big") + payload


def raise_file_limit() -> None:
    """One descriptor per connection: take the hard limit (the soft one is often 1,024)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ------------------------------------------------------------------ clients


async def client_main(port: int, count: int, messages: int) -> dict[str, Any]:
    errors: list[str] = []
    received = 0
    gate = asyncio.Semaphore(100)

    async def one() -> None:
        nonlocal received
        async with gate:
            websocket = await connect(f"ws://127.0.0.1:{port}/", compression=False, ping_interval=None, open_timeout=60)
        try:
            for index in range(messages):
                data = await websocket.recv()
                if data != message_for(index):
                    errors.append(f"message {index}: got {str(data)[:12]!r}")
                    return
                received += 1
        finally:
            await websocket.close()

    await asyncio.gather(*(one() for _ in range(count)))
    return {"received": received, "errors": errors[:5]}


def start_clients(port: int, count: int, processes: int, messages: int) -> list[subprocess.Popen[str]]:
    shares = [count // processes + (1 if index < count % processes else 0) for index in range(processes)]
    return [
        subprocess.Popen(
            [sys.executable, __file__, "--client", str(port), str(share), str(messages)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for share in shares
        if share
    ]


def collect(clients: list[subprocess.Popen[str]]) -> dict[str, Any]:
    received = 0
    errors: list[str] = []
    for client in clients:
        out, _ = client.communicate(timeout=600)
        report = json.loads(out)
        received += report["received"]
        errors += report["errors"]
    return {"received": received, "errors": errors}


def stalled_client(port: int) -> socket.socket:
    """A client that opens the connection and then never reads (blocking: call it from a thread)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    return sock


# ------------------------------------------------------------------ servers


async def run_server(kind: str, count: int, processes: int, messages: int, burst: int, slow: bool) -> dict[str, Any]:  # noqa: PLR0917
    members: list[Any] = []
    missed = [0]
    everyone = asyncio.Event()
    total = count + (1 if slow else 0)

    if kind in ("wsproto_core", "floor", "eager", "deferred"):

        async def ours(websocket: WebSocket) -> None:
            members.append(websocket)
            if len(members) >= total:
                everyone.set()
            await websocket.wait_closed()

        server: Any = await serve(ours, "127.0.0.1", 0, compression=False, ping_interval=None)
        port = server.port

        def buffered(member: Any) -> int:
            return int(member.outgoing_buffer_size)

        if kind == "floor":

            def send(index: int) -> int:
                # The least an asyncio server can do: the frame's bytes handed
                # to each transport, no state, no buffer bound, no bookkeeping.
                frame = frame_for(index)
                for member in members:
                    member._transport.write(frame)
                return len(members)
        elif kind in ("eager", "deferred"):
            loop = asyncio.get_running_loop()
            # Connections written in this iteration (or with bytes queued for its end).
            touched: dict[Any, None] = {}

            def write_the_rest() -> None:
                for member in touched:
                    member.write_queued()
                touched.clear()

            def send(index: int) -> int:
                message = PreparedMessage(message_for(index))
                room = DEFAULT_MAX_BUFFER_SIZE - len(message.payload) - 14
                if not touched:
                    loop.call_soon(write_the_rest)
                sent = 0
                for member in members:
                    waiting = member.outgoing_buffer_size
                    if waiting > room:
                        missed[0] += 1
                        continue
                    member.queue_prepared(message)
                    sent += 1
                    if member not in touched:
                        touched[member] = None
                        if kind == "eager" and not waiting:
                            member.write_queued()
                return sent
        else:

            def send(index: int) -> int:
                result = broadcast(members, PreparedMessage(message_for(index)))
                missed[0] += len(result.skipped) + len(result.evicted) + len(result.closed)
                return result.sent
    else:

        async def theirs(websocket: Any) -> None:
            members.append(websocket)
            if len(members) >= total:
                everyone.set()
            await websocket.wait_closed()

        server = await websockets.asyncio.server.serve(
            theirs, "127.0.0.1", 0, compression=None, ping_interval=None, max_queue=None
        )
        port = server.sockets[0].getsockname()[1]

        def buffered(member: Any) -> int:
            return int(member.transport.get_write_buffer_size())

        def send(index: int) -> int:
            websockets.asyncio.server.broadcast(members, message_for(index))
            return len(members)

    clients = start_clients(port, count, processes, messages)
    stalled = await asyncio.to_thread(stalled_client, port) if slow else None
    await asyncio.wait_for(everyone.wait(), 300)
    spent = 0.0
    slow_member = None
    if stalled is not None:
        stalled_port = stalled.getsockname()[1]
        slow_member = next(member for member in members if member.remote_address[1] == stalled_port)
        # Its kernel send buffer kept small, so that what it does not read
        # reaches the connection's own buffer within the run's few hundred KiB.
        slow_member._transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    slow_peak = 0
    cpu_start = time.process_time()
    for first in range(0, messages, burst):
        start = time.process_time()
        for index in range(first, min(first + burst, messages)):
            send(index)
        # One loop iteration: ours writes what it queued there.
        await asyncio.sleep(0)
        spent += time.process_time() - start
        # Wait until the clients took everything (but the stalled one).
        while any(buffered(member) for member in members if member is not slow_member):
            await asyncio.sleep(0.02)
        if slow_member is not None:
            slow_peak = max(slow_peak, buffered(slow_member))
    cpu = time.process_time() - cpu_start
    report = collect(clients)
    if stalled is not None:
        stalled.close()
    if kind != "websockets":
        await server.close()
    else:
        server.close()
        await server.wait_closed()
    report.update(
        in_call=count * messages / spent,
        per_cpu=count * messages / cpu,
        slow_peak=slow_peak,
        missed=missed[0],
    )
    report["valid"] = report["received"] == count * messages and not report["errors"]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", default="1000,10000")
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--bursts", default="1,10", help="messages broadcast per event loop iteration")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--slow", action="store_true", help="also run each case with one stalled client")
    parser.add_argument("--client", nargs=3, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--eager", action="store_true", help="also run the eager and deferred write policies")
    options = parser.parse_args()
    raise_file_limit()
    if options.client:
        port, count, messages = options.client
        print(json.dumps(asyncio.run(client_main(port, count, messages))))
        return
    print(" ".join(["python", *sys.argv]))
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f} at the start")
    print(f"{PAYLOAD_SIZE} B text, {options.messages} messages, {options.client_processes} client processes")
    print(
        "recipients/s of server CPU time (server CPU per recipient), whole run (handshakes excluded)"
        " | inside the broadcast calls + 1 iteration"
    )
    print("floor: the frame's bytes handed to each transport.write, nothing else (what any asyncio server pays)")
    variants = [("floor", False), ("wsproto_core", False), ("websockets", False)]
    if options.eager:
        variants.append(("eager", False))
        variants.append(("deferred", False))
    if options.slow:
        variants.append(("wsproto_core", True))
    for count in (int(value) for value in options.connections.split(",")):
        for burst in (int(value) for value in options.bursts.split(",")):
            figures: dict[tuple[str, bool], dict[str, list[float]]] = {
                variant: {"per_cpu": [], "in_call": []} for variant in variants
            }
            ratios: dict[str, dict[str, list[float]]] = {}
            peaks: list[int] = []
            missed: list[int] = []
            for round_index in range(options.rounds):
                # Each round starts with a different variant: drift hits each alike.
                shift = round_index % len(variants)
                reports = {}
                for kind, slow in variants[shift:] + variants[:shift]:
                    report = asyncio.run(
                        run_server(kind, count, options.client_processes, options.messages, burst, slow)
                    )
                    if not report["valid"]:
                        raise SystemExit(f"{kind}, {count} connections: clients saw {report}")
                    reports[kind, slow] = report
                    for figure in ("per_cpu", "in_call"):
                        figures[kind, slow][figure].append(report[figure])
                    if slow:
                        peaks.append(report["slow_peak"])
                        missed.append(report["missed"])
                pairs = {
                    "ours/websockets": (("wsproto_core", False), ("websockets", False)),
                    "floor/websockets": (("floor", False), ("websockets", False)),
                    "ours/floor": (("wsproto_core", False), ("floor", False)),
                }
                if options.eager:
                    pairs["eager/ours"] = (("eager", False), ("wsproto_core", False))
                    pairs["eager/websockets"] = (("eager", False), ("websockets", False))
                    pairs["deferred/ours"] = (("deferred", False), ("wsproto_core", False))
                if options.slow:
                    pairs["stalled/not"] = (("wsproto_core", True), ("wsproto_core", False))
                for name, (top, bottom) in pairs.items():
                    for figure in ("per_cpu", "in_call"):
                        ratios.setdefault(name, {}).setdefault(figure, []).append(
                            reports[top][figure] / reports[bottom][figure]
                        )
                print(
                    f"  round {round_index + 1}, load {os.getloadavg()[0]:.1f}: {reports}", file=sys.stderr, flush=True
                )
            load = os.getloadavg()[0]
            print(f"{count} connections, {burst} message(s) per loop iteration, load {load:.1f} at the end")
            for kind, slow in variants:
                label = kind + (" + 1 stalled client" if slow else "")
                medians = [statistics.median(figures[kind, slow][figure]) for figure in ("per_cpu", "in_call")]
                cells = [f"{median:11,.0f} ({1e6 / median:5.2f} us)" for median in medians]
                print(f"  {label:34} {cells[0]} | {cells[1]}")
            for name, by_figure in ratios.items():
                cells = [
                    f"{statistics.median(values):5.2f}x [{min(values):.2f}-{max(values):.2f}]"
                    for values in (by_figure["per_cpu"], by_figure["in_call"])
                ]
                print(f"  {name:34} {cells[0]:>20} | {cells[1]}")
            if peaks:
                print(
                    f"  stalled client: buffer peak {max(peaks):,} B (limit {DEFAULT_MAX_BUFFER_SIZE:,} B), "
                    f"messages it missed per run {min(missed)}-{max(missed)} of {options.messages}"
                )


if __name__ == "__main__":
    main()
