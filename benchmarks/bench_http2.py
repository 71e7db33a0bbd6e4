"""WebSockets over HTTP/2 (RFC 8441) against HTTP/1.1, same server, same client library, same machine.

Run from the repository root::

    python benchmarks/bench_http2.py [--rounds N] [--duration S] [--json out.json]

One server subprocess: ``wsproto_core.drivers.asyncio.serve(echo, http2=True)``
on 127.0.0.1, which serves HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on
the same port, so both protocols meet the same process. The client is the
asyncio driver in this process: ``connect(url)`` for HTTP/1.1,
``connect(url, http2=True)`` for HTTP/2. Every echo is compared with what was
sent; a wrong one fails the run.

Cases, each run in every round, in an order that alternates between rounds:

- ``echo 256 B``: one WebSocket, one 256-byte binary message in flight at a
  time (send, wait for the echo, repeat): messages per second;
- ``100 WebSockets``: 100 WebSockets, each echoing one 256-byte message at a
  time, all at once: messages per second in total. Over HTTP/2 the 100 are
  streams of one TCP connection; over HTTP/1.1, 100 TCP connections.

Reported: the median rate over rounds for each protocol, and the median of
the per-round ratios HTTP/2 / HTTP/1.1; and, because a shared machine's
scheduler makes wall-clock rates noisy, the CPU time both processes spent per
message (client and server, user and system, from ``/proc`` on Linux) with the
median of its per-round ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from wsproto_core.drivers.asyncio import connect, serve

PAYLOAD_SIZE = 256
WEBSOCKETS = 100


async def _serve_until_stdin_closes() -> None:
    async def echo(websocket: Any) -> None:
        async for message in websocket:
            await websocket.send(message)

    server = await serve(echo, "127.0.0.1", 0, http2=True, ping_interval=None, compression=False)
    print(server.port, flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await server.close()


async def _echo_loop(websocket: Any, payloads: list[bytes], deadline: float) -> int:
    count = 0
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        payload = payloads[count % len(payloads)]
        await websocket.send(payload)
        if await websocket.recv() != payload:
            raise SystemExit("an echo differs from what was sent")
        count += 1
    return count


def server_cpu_seconds(pid: int) -> float | None:
    """The server process's user and system CPU time, where /proc tells it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_case(port: int, pid: int, *, http2: bool, websockets: int, duration: float) -> tuple[float, float | None]:
    """Messages per second echoed by ``websockets`` WebSockets at once, and CPU microseconds per message."""
    url = f"ws://127.0.0.1:{port}/bench"
    clients = [
        await connect(url, http2=http2, ping_interval=None, compression=False, max_queue=1) for _ in range(websockets)
    ]
    payloads = [os.urandom(PAYLOAD_SIZE) for _ in range(16)]
    loop = asyncio.get_running_loop()
    # Warm up (and check) every WebSocket once.
    for client in clients:
        await client.send(payloads[0])
        assert await client.recv() == payloads[0]
    server_before, client_before = server_cpu_seconds(pid), time.process_time()
    start = loop.time()
    counts = await asyncio.gather(*(_echo_loop(client, payloads, start + duration) for client in clients))
    elapsed = loop.time() - start
    server_after, client_after = server_cpu_seconds(pid), time.process_time()
    await asyncio.gather(*(client.close() for client in clients))
    messages = sum(counts)
    cpu = None
    if server_before is not None and server_after is not None and messages:
        cpu = (server_after - server_before + client_after - client_before) / messages * 1e6
    return messages / elapsed, cpu


async def measure(port: int, pid: int, rounds: int, duration: float) -> dict[str, Any]:
    cases = {"echo 256 B": 1, f"{WEBSOCKETS} WebSockets": WEBSOCKETS}
    rates: dict[str, dict[str, list[float]]] = {case: {"HTTP/1.1": [], "HTTP/2": []} for case in cases}
    cpus: dict[str, dict[str, list[float | None]]] = {case: {"HTTP/1.1": [], "HTTP/2": []} for case in cases}
    for index in range(rounds):
        for case, count in cases.items():
            order = [False, True] if index % 2 == 0 else [True, False]
            for http2 in order:
                rate, cpu = await run_case(port, pid, http2=http2, websockets=count, duration=duration)
                rates[case]["HTTP/2" if http2 else "HTTP/1.1"].append(rate)
                cpus[case]["HTTP/2" if http2 else "HTTP/1.1"].append(cpu)
    report: dict[str, Any] = {}
    for case, by_protocol in rates.items():
        ratios = [h2 / h1 for h1, h2 in zip(by_protocol["HTTP/1.1"], by_protocol["HTTP/2"], strict=True)]
        row: dict[str, Any] = {
            "HTTP/1.1 msgs/s": statistics.median(by_protocol["HTTP/1.1"]),
            "HTTP/2 msgs/s": statistics.median(by_protocol["HTTP/2"]),
            "HTTP/2 / HTTP/1.1": statistics.median(ratios),
            "ratios": ratios,
        }
        h1_cpu, h2_cpu = cpus[case]["HTTP/1.1"], cpus[case]["HTTP/2"]
        pairs = [(h1, h2) for h1, h2 in zip(h1_cpu, h2_cpu, strict=True) if h1 and h2]
        if pairs:
            # Messages per CPU second, HTTP/2 over HTTP/1.1: above 1 means HTTP/2 costs less.
            cpu_ratios = [h1 / h2 for h1, h2 in pairs]
            row["HTTP/1.1 CPU us/msg"] = statistics.median(h1 for h1, _ in pairs)
            row["HTTP/2 CPU us/msg"] = statistics.median(h2 for _, h2 in pairs)
            row["CPU HTTP/2 / HTTP/1.1"] = statistics.median(cpu_ratios)
            row["cpu ratios"] = cpu_ratios
        report[case] = row
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per case and protocol in a round")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.server:
        asyncio.run(_serve_until_stdin_closes())
        return 0
    server = subprocess.Popen(
        [sys.executable, __file__, "--server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        started = time.time()
        report = asyncio.run(measure(port, server.pid, args.rounds, args.duration))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(30)
    head = f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {args.rounds} rounds of {args.duration:g} s"
    print(head)
    print(f"{'case':<18} {'HTTP/1.1 msgs/s':>16} {'HTTP/2 msgs/s':>14} {'HTTP/2 / 1.1':>13}  per-round ratios")
    for case, row in report.items():
        ratios = " ".join(f"{ratio:.2f}" for ratio in row["ratios"])
        print(
            f"{case:<18} {row['HTTP/1.1 msgs/s']:>16,.0f} {row['HTTP/2 msgs/s']:>14,.0f} "
            f"{row['HTTP/2 / HTTP/1.1']:>12.2f}x  {ratios}"
        )
    if all("CPU HTTP/2 / HTTP/1.1" in row for row in report.values()):
        print(f"{'case':<18} {'HTTP/1.1 CPU us':>16} {'HTTP/2 CPU us':>14} {'msgs per CPU s':>14}  per-round")
        for case, row in report.items():
            ratios = " ".join(f"{ratio:.2f}" for ratio in row["cpu ratios"])
            print(
                f"{case:<18} {row['HTTP/1.1 CPU us/msg']:>16,.1f} {row['HTTP/2 CPU us/msg']:>14,.1f} "
                f"{row['CPU HTTP/2 / HTTP/1.1']:>13.2f}x  {ratios}"
            )
    if args.json is not None:
        args.json.write_text(json.dumps({"header": head, "seconds": time.time() - started, "cases": report}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
