"""Two ``chat`` processes sharing a room through Redis: loss, duplicates, order and end-to-end latency.

Starts two ``python -m wsproto_core chat --redis URL`` processes and
``--client-processes`` client processes. Each client process connects its
share of the ``--clients`` clients per chat process to each of the two, and
joins them all to one room; ``--publishers`` of the clients (spread over both
chat processes and every client process) send ``--messages`` messages in
total, at ``--rate`` messages per second overall. Every client checks every
message it receives: each publisher's messages must arrive once each, none
missing, in the order they were sent.

A message carries its send time (``time.monotonic()``, one clock for every
process of the machine); the latency of a delivery is the time from the
publisher's send to a client's receipt, through a chat process, Redis, and a
chat process (the same one or the other). Percentiles are over every
delivery. Clients run in processes of their own so that checking two million
deliveries does not queue behind one Python process: the figure is the
servers' and Redis's, as long as the machine has the cores for the rate
asked (``--rate`` times the number of clients is the deliveries per second).

Needs a Redis server: ``--redis URL`` (default: ``$WSPROTO_CORE_REDIS_URL``).

Run: python benchmarks/bench_chat_redis.py [--clients 100] [--messages 10000] [--rate 200] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import subprocess
import sys
import time
from typing import Any

from wsproto_core.drivers.asyncio import WebSocket, connect

# Latencies are counted in buckets of this many microseconds.
BUCKET_US = 50


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


# ------------------------------------------------------------------ a client process


async def clients_main(job: dict[str, Any]) -> dict[str, Any]:
    """Connect, join, say "ready", wait for the start time on stdin, publish and check; return a report."""
    room = job["room"]
    publishers_total = job["publishers"]
    per_publisher = job["per_publisher"]
    clients: list[WebSocket] = []
    for address, count in job["clients"]:
        for _ in range(count):
            client = await connect(f"ws://{address}/ws", compression=False, ping_interval=None, open_timeout=60)
            await client.send(json.dumps({"join": room}))
            assert json.loads(await client.recv()) == {"joined": room}
            clients.append(client)
    print("ready", flush=True)
    start = float(await asyncio.to_thread(sys.stdin.readline))

    latencies: collections.Counter[int] = collections.Counter()
    problems: list[str] = []
    deliveries = 0

    async def receive(client: WebSocket) -> None:
        nonlocal deliveries
        expected = [0] * publishers_total
        for _ in range(per_publisher * publishers_total):
            message = json.loads(await client.recv())
            now = time.monotonic()
            publisher, number, sent_at = message["text"].split(":")
            publisher_index = int(publisher)
            if int(number) != expected[publisher_index]:
                # A repeat, a gap or a reordering: the next expected number is off.
                problems.append(f"publisher {publisher}: expected {expected[publisher_index]}, got {number}")
            expected[publisher_index] = int(number) + 1
            latencies[int((now - float(sent_at)) * 1e6) // BUCKET_US] += 1
            deliveries += 1

    async def publish(index: int, client: WebSocket) -> None:
        interval = publishers_total / job["rate"]
        # Publishers start spread over one interval, not all at once.
        first = start + interval * index / publishers_total
        for number in range(per_publisher):
            delay = first + number * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            text = f"{index}:{number}:{time.monotonic():.6f}"
            await client.send(json.dumps({"room": room, "text": text}))

    receivers = [asyncio.ensure_future(receive(client)) for client in clients]
    await asyncio.gather(*(publish(index, clients[position]) for index, position in job["publishers_here"]))
    try:
        await asyncio.wait_for(asyncio.gather(*receivers), job["timeout"])
    except TimeoutError:
        problems.append("timed out waiting for deliveries (lost messages)")
    for client in clients:
        await client.close()
    return {
        "deliveries": deliveries,
        "expected": len(clients) * per_publisher * publishers_total,
        "problems": problems[:10],
        "latency_buckets": dict(latencies),
    }


# ------------------------------------------------------------------ the run


def percentile(buckets: collections.Counter[int], fraction: float) -> float:
    """The latency in milliseconds below which ``fraction`` of the deliveries fall (bucket's upper edge)."""
    total = sum(buckets.values())
    seen = 0
    for bucket in sorted(buckets):
        seen += buckets[bucket]
        if seen >= fraction * total:
            return (bucket + 1) * BUCKET_US / 1000
    return float("nan")


def run(options: argparse.Namespace) -> dict[str, Any]:
    chats = [start_chat(options.redis) for _ in range(2)]
    workers: list[subprocess.Popen[str]] = []
    try:
        room = f"bench-{os.getpid()}"
        processes = options.client_processes
        per_publisher = options.messages // options.publishers
        # Publisher p is a client of client process p % processes, on chat processes in turn.
        jobs = []
        for process_index in range(processes):
            shares = [
                (address, options.clients // processes + (1 if process_index < options.clients % processes else 0))
                for _, address in chats
            ]
            jobs.append(
                {
                    "room": room,
                    "clients": shares,
                    "publishers": options.publishers,
                    "per_publisher": per_publisher,
                    "rate": options.rate,
                    "timeout": options.timeout,
                    "publishers_here": [],
                }
            )
        used = [[0, 0] for _ in jobs]
        for publisher in range(options.publishers):
            job_index, chat_index = publisher % processes, (publisher // processes) % 2
            job = jobs[job_index]
            if used[job_index][chat_index] >= job["clients"][chat_index][1]:
                raise SystemExit("more publishers than clients")
            # A job's clients are those of the first chat process, then the second's.
            position = (job["clients"][0][1] if chat_index else 0) + used[job_index][chat_index]
            used[job_index][chat_index] += 1
            job["publishers_here"].append((publisher, position))
        for job in jobs:
            worker = subprocess.Popen(
                [sys.executable, __file__, "--client-job", json.dumps(job)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            workers.append(worker)
        for worker in workers:
            assert worker.stdout is not None
            if worker.stdout.readline().strip() != "ready":
                raise SystemExit("a client process did not get ready")
        start = time.monotonic() + 0.5
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(f"{start}\n")
            worker.stdin.flush()
        reports = [json.loads(worker.communicate(timeout=options.timeout + 600)[0]) for worker in workers]
        elapsed = time.monotonic() - start
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
        for chat, _ in chats:
            chat.terminate()
            chat.wait(20)
    buckets: collections.Counter[int] = collections.Counter()
    for report in reports:
        buckets.update({int(bucket): count for bucket, count in report["latency_buckets"].items()})
    deliveries = sum(report["deliveries"] for report in reports)
    return {
        "clients": 2 * options.clients,
        "client processes": processes,
        "messages": per_publisher * options.publishers,
        "publishers": options.publishers,
        "rate msg/s": options.rate,
        "deliveries": deliveries,
        "expected deliveries": sum(report["expected"] for report in reports),
        "problems": [problem for report in reports for problem in report["problems"]][:10],
        "elapsed s": round(elapsed, 1),
        "latency p50 ms": percentile(buckets, 0.50),
        "latency p99 ms": percentile(buckets, 0.99),
        "latency max ms": percentile(buckets, 1.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default=os.environ.get("WSPROTO_CORE_REDIS_URL"))
    parser.add_argument("--clients", type=int, default=100, help="clients per chat process")
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--publishers", type=int, default=10)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=200.0, help="messages per second, all publishers together")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--json", help="also write the report to this file")
    parser.add_argument("--client-job", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.client_job:
        print(json.dumps(asyncio.run(clients_main(json.loads(options.client_job)))))
        return
    if not options.redis:
        raise SystemExit("give --redis URL or set WSPROTO_CORE_REDIS_URL")
    report = run(options)
    for key, value in report.items():
        print(f"{key}: {value}")
    if options.json:
        with open(options.json, "w", encoding="utf-8") as file:
            json.dump(report, file)
    if report["problems"] or report["deliveries"] != report["expected deliveries"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
