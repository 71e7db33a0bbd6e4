"""Two ``chat`` processes sharing a room through Redis: loss, duplicates, order and end-to-end latency.

Starts two ``python -m wsproto_core chat --redis URL`` processes, connects
``--clients`` clients to each (in this process), joins them all to one room,
and has ``--publishers`` of them (spread over both processes) send
``--messages`` messages in total at ``--rate`` messages per second overall.
Every client checks every message it receives: each publisher's messages must
arrive once each, none missing, in the order they were sent. The latency of a
delivery is the time from the publisher's send to a client's receipt (both
in this process, one clock); the script prints its percentiles over every
delivery.

Needs a Redis server: ``--redis URL`` (default: ``$WSPROTO_CORE_REDIS_URL``).

Run: python benchmarks/bench_chat_redis.py [--clients 100] [--messages 10000] [--rate 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
from typing import Any

from wsproto_core.drivers.asyncio import WebSocket, connect


def start_chat(redis_url: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "wsproto_core", "chat", "--port", "0", "--redis", redis_url, "--ping-interval", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        match = re.search(r"open http://([^/\s]+)/ in a browser", line)
        if match:
            return process, match.group(1)
    raise SystemExit("chat did not start")


async def main_async(options: argparse.Namespace) -> dict[str, Any]:
    processes = [start_chat(options.redis) for _ in range(2)]
    room = f"bench-{os.getpid()}"
    try:
        clients: list[WebSocket] = []
        for _, address in processes:
            for _ in range(options.clients):
                client = await connect(f"ws://{address}/ws", compression=False, ping_interval=None)
                await client.send(json.dumps({"join": room}))
                assert json.loads(await client.recv()) == {"joined": room}
                clients.append(client)
        total = len(clients)
        publishers = [clients[index * total // options.publishers] for index in range(options.publishers)]
        per_publisher = options.messages // options.publishers
        sent_at: dict[tuple[int, int], float] = {}
        latencies: list[float] = []
        problems: list[str] = []
        deliveries = 0

        async def receive(client: WebSocket) -> None:
            nonlocal deliveries
            expected = [0] * options.publishers
            for _ in range(per_publisher * options.publishers):
                message = json.loads(await client.recv())
                now = time.perf_counter()
                publisher, number = map(int, message["text"].split(":"))
                if number != expected[publisher]:
                    problems.append(f"publisher {publisher}: expected {expected[publisher]}, got {number}")
                expected[publisher] = number + 1
                latencies.append(now - sent_at[publisher, number])
                deliveries += 1

        async def publish(index: int, client: WebSocket) -> None:
            interval = options.publishers / options.rate
            start = time.perf_counter()
            for number in range(per_publisher):
                delay = start + number * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent_at[index, number] = time.perf_counter()
                await client.send(json.dumps({"room": room, "text": f"{index}:{number}"}))

        started = time.perf_counter()
        receivers = [asyncio.ensure_future(receive(client)) for client in clients]
        await asyncio.gather(*(publish(index, client) for index, client in enumerate(publishers)))
        try:
            await asyncio.wait_for(asyncio.gather(*receivers), options.timeout)
        except TimeoutError:
            problems.append("timed out waiting for deliveries (lost messages)")
        elapsed = time.perf_counter() - started
        for client in clients:
            await client.close()
        latencies.sort()
        quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
        return {
            "clients": total,
            "messages": per_publisher * options.publishers,
            "deliveries": deliveries,
            "expected deliveries": per_publisher * options.publishers * total,
            "problems": problems[:10],
            "elapsed s": round(elapsed, 1),
            "latency p50 ms": round(quantiles[49] * 1000, 2),
            "latency p99 ms": round(quantiles[98] * 1000, 2),
            "latency max ms": round(latencies[-1] * 1000, 2) if latencies else None,
        }
    finally:
        for process, _ in processes:
            process.terminate()
            process.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default=os.environ.get("WSPROTO_CORE_REDIS_URL"))
    parser.add_argument("--clients", type=int, default=100, help="clients per chat process")
    parser.add_argument("--publishers", type=int, default=10)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=500.0, help="messages per second, all publishers together")
    parser.add_argument("--timeout", type=float, default=120.0)
    options = parser.parse_args()
    if not options.redis:
        raise SystemExit("give --redis URL or set WSPROTO_CORE_REDIS_URL")
    report = asyncio.run(main_async(options))
    for key, value in report.items():
        print(f"{key}: {value}")
    if report["problems"] or report["deliveries"] != report["expected deliveries"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
