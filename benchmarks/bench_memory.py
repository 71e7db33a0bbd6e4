"""Memory per open, idle WebSocket connection in a server, for each driver.

The protocol core alone is measured by ``bench_core.py`` (an idle ``Connection``); this script
measures what a server process really holds per connection: the core, the driver's reader, queue
and timers, the task or thread, the socket object. A server runs in a subprocess (so that the
clients' memory is not counted) with one handler per connection that waits for messages. The
script opens a few connections and closes them (to load every lazily imported module), measures,
opens ``--connections`` idle connections, measures again, and divides the growth.

Two measurements, in separate server processes because tracing inflates the resident size:

- ``heap``: growth of Python allocations traced by tracemalloc (objects, buffers, zlib state);
- ``rss``: growth of the resident set size (Linux only), which also counts thread stacks and the
  allocator's overhead, but not kernel socket buffers.

``asyncio`` serves with a ``handler(websocket)`` coroutine (one task per connection, waiting in
``async for``); ``asyncio-callbacks`` with the callback API (a ``Listener``, no task).

Run: python benchmarks/bench_memory.py [--connections 500] [--drivers asyncio,asyncio-callbacks,trio,threads]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

from wsproto_core.drivers.asyncio import Listener, connect, serve_listener
from wsproto_core.drivers.asyncio import serve as serve_asyncio
from wsproto_core.drivers.sync import serve as serve_sync

try:
    import trio

    from wsproto_core.drivers.trio import serve as serve_trio
except ImportError:  # trio is optional: only its row needs it
    trio = None


def resident_bytes() -> int | None:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


def control_loop() -> None:
    """Answer each ``measure`` line on stdin with the heap and resident sizes, settled."""
    for line in sys.stdin:
        if line.strip() != "measure":
            continue
        # Let handlers that were just started reach their first wait before measuring.
        time.sleep(0.5)
        gc.collect()
        heap = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
        print(f"{heap} {resident_bytes() or 0}", flush=True)


def run_server(driver: str, mode: str) -> None:
    if mode == "heap":
        tracemalloc.start()
    threading.Thread(target=control_loop, daemon=True).start()
    if driver == "asyncio-callbacks":

        async def main_callbacks() -> None:
            server = await serve_listener(Listener, "127.0.0.1", 0)
            print(server.port, flush=True)
            await asyncio.Event().wait()

        asyncio.run(main_callbacks())
    elif driver == "asyncio":

        async def asyncio_handler(websocket: object) -> None:
            async for _ in websocket:  # type: ignore[attr-defined]
                pass

        async def main_asyncio() -> None:
            server = await serve_asyncio(asyncio_handler, "127.0.0.1", 0)
            print(server.port, flush=True)
            await asyncio.Event().wait()

        asyncio.run(main_asyncio())
    elif driver == "trio":

        async def trio_handler(websocket: object) -> None:
            async for _ in websocket:  # type: ignore[attr-defined]
                pass

        async def main_trio() -> None:
            async with trio.open_nursery() as nursery:
                server = await nursery.start(functools.partial(serve_trio, trio_handler, "127.0.0.1", 0))
                print(server.port, flush=True)

        trio.run(main_trio)
    else:

        def sync_handler(websocket: object) -> None:
            for _ in websocket:  # type: ignore[attr-defined]
                pass

        server = serve_sync(sync_handler, "127.0.0.1", 0)
        print(server.port, flush=True)
        server.serve_forever()


async def open_connections(port: int, count: int) -> list[object]:
    connections = []
    # Batches keep the server's listen backlog from overflowing.
    for start in range(0, count, 50):
        batch = [connect(f"ws://127.0.0.1:{port}/") for _ in range(start, min(count, start + 50))]
        connections += await asyncio.gather(*batch)
    return connections


async def close_all(connections: list[object]) -> None:
    await asyncio.gather(*(c.close() for c in connections))  # type: ignore[attr-defined]


def measure(driver: str, mode: str, count: int) -> tuple[float, float]:
    """Per-connection growth of (heap, resident) bytes for ``count`` idle connections."""
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", driver, "--mode", mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        port = int(server.stdout.readline())

        def sample() -> tuple[int, int]:
            server.stdin.write("measure\n")  # type: ignore[union-attr]
            server.stdin.flush()  # type: ignore[union-attr]
            heap, resident = server.stdout.readline().split()  # type: ignore[union-attr]
            return int(heap), int(resident)

        async def scenario() -> tuple[tuple[int, int], tuple[int, int]]:
            await close_all(await open_connections(port, 20))
            before = sample()
            connections = await open_connections(port, count)
            after = sample()
            await close_all(connections)
            return before, after

        before, after = asyncio.run(scenario())
    finally:
        server.kill()
        server.wait()
    return (after[0] - before[0]) / count, (after[1] - before[1]) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--drivers", default="asyncio,asyncio-callbacks,trio,threads")
    parser.add_argument("--serve", choices=["asyncio", "asyncio-callbacks", "trio", "threads"], help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["heap", "rss"], default="heap", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        run_server(args.serve, args.mode)
        return
    print(f"{args.connections} idle connections per server, Python {sys.version.split()[0]}, {sys.platform}\n")
    print(f"{'driver':<18} {'Python heap (tracemalloc)':>26} {'resident set':>14}")
    for driver in args.drivers.split(","):
        if driver == "trio" and trio is None:
            print(f"{driver:<18} (not installed)")
            continue
        heap, _ = measure(driver, "heap", args.connections)
        _, resident = measure(driver, "rss", args.connections)
        rss_text = f"{resident / 1024:,.2f} KiB" if resident else "n/a"
        print(f"{driver:<18} {heap / 1024:>22,.2f} KiB {rss_text:>14}")


if __name__ == "__main__":
    main()
