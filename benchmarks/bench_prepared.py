"""Prepared messages against send(): one 1 KiB text message to 10,000 server connections.

Cases, each timed as the cost per recipient:

- ``no extension``: ``conn.send(TextMessage(text))`` on each connection, against
  ``PreparedMessage(text)`` once plus ``conn.send_prepared(message)`` on each.
- ``deflate, no context takeover``: the same on connections that negotiated
  permessage-deflate with ``server_no_context_takeover``; before timing, the
  script counts zlib compressor objects created by each way (send(): one per
  connection; prepared: one in total).
- ``deflate, context takeover``: connections keep their compression context;
  the prepared message either compresses a copy per connection
  (``compress_with_context=True``) or goes uncompressed (``False``).

Each round times every case once, in alternating order; the script prints the
median over rounds of each case's per-recipient time and of the ratio
prepared / send() within a round, with its interquartile range.

Run: python benchmarks/bench_prepared.py [--quick] [--connections N]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import zlib
from collections.abc import Callable
from typing import Any

from wsproto_core import PreparedMessage
from wsproto_core.connection import Connection, ConnectionType
from wsproto_core.events import TextMessage
from wsproto_core.permessage_deflate import PerMessageDeflate

#: 1 KiB of UTF-8 (mostly ASCII, some 2- and 3-byte characters), JSON as a chat would send.
TEXT = '{"room": "lobby", "text": "' + ("fan-out message, é ü ✓ " * 60).encode()[:995].decode() + '"}'
assert len(TEXT.encode()) == 1024


def server_connections(count: int, deflate: dict[str, Any] | None) -> list[Connection]:
    connections = []
    for _ in range(count):
        if deflate is None:
            connections.append(Connection(ConnectionType.SERVER))
            continue
        extension = PerMessageDeflate(**deflate)
        assert extension.accept("permessage-deflate; client_max_window_bits") is not None
        connections.append(Connection(ConnectionType.SERVER, [extension]))
    return connections


def with_send(connections: list[Connection]) -> int:
    total = 0
    for connection in connections:
        total += len(connection.send(TextMessage(TEXT)))
    return total


def with_prepared(connections: list[Connection], compress_with_context: bool = True) -> int:
    message = PreparedMessage(TEXT, compress_with_context=compress_with_context)
    total = 0
    for connection in connections:
        total += len(connection.send_prepared(message))
    return total


def count_compressors(run: Callable[[], object]) -> int:
    created = 0
    original = zlib.compressobj

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal created
        created += 1
        return original(*args, **kwargs)

    zlib.compressobj = counting
    try:
        run()
    finally:
        zlib.compressobj = original
    return created


def timed(run: Callable[[], object], recipients: int) -> float:
    gc.collect()
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) / recipients


def quartile_spread(values: list[float]) -> float:
    quartiles = statistics.quantiles(values, n=4)
    return (quartiles[2] - quartiles[0]) / statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 15")
    parser.add_argument("--connections", type=int, default=10_000)
    options = parser.parse_args()
    rounds = 5 if options.quick else 15
    count = options.connections
    print(f"{count} server connections, {len(TEXT.encode())} B text message, {rounds} rounds")

    groups = {
        "no extension": server_connections(count, None),
        "deflate, no context takeover": server_connections(count, {"server_no_context_takeover": True}),
        "deflate, context takeover": server_connections(count, {}),
    }
    cases: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
        "no extension": (
            lambda: with_send(groups["no extension"]),
            lambda: with_prepared(groups["no extension"]),
        ),
        "deflate, no context takeover": (
            lambda: with_send(groups["deflate, no context takeover"]),
            lambda: with_prepared(groups["deflate, no context takeover"]),
        ),
        "deflate, context takeover (prepared: uncompressed)": (
            lambda: with_send(groups["deflate, context takeover"]),
            lambda: with_prepared(groups["deflate, context takeover"], compress_with_context=False),
        ),
        "deflate, context takeover (prepared: compressed each)": (
            lambda: with_send(groups["deflate, context takeover"]),
            lambda: with_prepared(groups["deflate, context takeover"], compress_with_context=True),
        ),
    }
    for name in ("deflate, no context takeover",):
        send_run, prepared_run = cases[name]
        print(
            f"{name}: zlib compressors created: send() {count_compressors(send_run)}, "
            f"prepared {count_compressors(prepared_run)}"
        )
    samples: dict[str, dict[str, list[float]]] = {name: {"send": [], "prepared": [], "ratio": []} for name in cases}
    for round_index in range(rounds):
        for name, (send_run, prepared_run) in cases.items():
            order = [("send", send_run), ("prepared", prepared_run)]
            if round_index % 2:
                order.reverse()
            results = {label: timed(run, count) for label, run in order}
            samples[name]["send"].append(results["send"])
            samples[name]["prepared"].append(results["prepared"])
            samples[name]["ratio"].append(results["prepared"] / results["send"])
    print(f"{'case':56} {'send() ns/recipient':>20} {'prepared ns/recipient':>22} {'ratio':>7} {'IQR/med':>8}")
    for name, values in samples.items():
        print(
            f"{name:56} {statistics.median(values['send']) * 1e9:20.0f} "
            f"{statistics.median(values['prepared']) * 1e9:22.0f} "
            f"{statistics.median(values['ratio']):7.3f} {quartile_spread(values['ratio']):8.2f}"
        )


if __name__ == "__main__":
    main()
