"""What ``compat.install()`` costs: wsproto_core with and without it, in one interleaved run.

Run from the repository root::

    python benchmarks/bench_compat.py [--rounds 15] [--target 0.05]

install() replaces ``Connection.receive_data`` and ``Connection.events`` with
wrappers (wsproto's CLOSED check and its ``_events`` queue) and leaves ``send``
alone; the cases below are those the wrappers touch most: one message per
``receive_data`` call, as a server reading a socket sees them. Each round
measures every case in both modes, alternating which mode goes first, so load
on the machine hits both alike; the figure is the median CPU time per
operation over the rounds (waiting for a core does not inflate CPU time), and
the ratio is compat's throughput relative to without (``0.97x``: 3% slower
under compat).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wsproto_core import compat
from wsproto_core.connection import Connection, ConnectionType
from wsproto_core.events import BytesMessage, TextMessage
from wsproto_core.permessage_deflate import PerMessageDeflate

Run = Callable[[int], int]


def _client_frames(event: TextMessage | BytesMessage, extensions: list[PerMessageDeflate] | None = None) -> bytes:
    return Connection(ConnectionType.CLIENT, extensions).send(event)


def _deflate(client: bool) -> PerMessageDeflate:
    extension = PerMessageDeflate()
    if client:
        extension.finalize("permessage-deflate")
    else:
        extension.accept("permessage-deflate")
    return extension


def receive_case(wire: bytes, messages_per_read: int, deflate: bool = False) -> Callable[[], Run]:
    """A server that reads ``wire`` (``messages_per_read`` messages) per receive_data call."""

    def make() -> Run:
        server = Connection(ConnectionType.SERVER, [_deflate(False)] if deflate else None)

        def run(n: int) -> int:
            seen = 0
            for _ in range(n):
                server.receive_data(wire)
                for _event in server.events():
                    seen += 1
            assert seen == n * messages_per_read, seen
            return seen

        return run

    return make


def send_case(event: TextMessage | BytesMessage) -> Callable[[], Run]:
    def make() -> Run:
        server = Connection(ConnectionType.SERVER)

        def run(n: int) -> int:
            for _ in range(n):
                server.send(event)
            return n

        return run

    return make


def cases() -> dict[str, Callable[[], Run]]:
    small = TextMessage("x" * 16)
    kib = BytesMessage(os.urandom(1024))
    text_kib = TextMessage("compressible text " * 57)
    client_deflate = [_deflate(True)]
    return {
        "receive 16 B text, 1 per read": receive_case(_client_frames(small), 1),
        "receive 1 KiB binary, 1 per read": receive_case(_client_frames(kib), 1),
        "receive 16 B text, 50 per read": receive_case(_client_frames(small) * 50, 50),
        "receive 1 KiB deflated text, 1 per read": receive_case(
            Connection(ConnectionType.CLIENT, client_deflate).send(text_kib), 1, deflate=True
        ),
        "send 16 B text": send_case(small),
    }


def measure(make: Callable[[], Run], installed: bool, iterations: int) -> float:
    """Seconds per operation for one batch, with compat installed or not."""
    if installed:
        compat.install()
    try:
        run = make()
        # CPU time of this process: on a machine shared with other jobs, wall
        # time mostly measures how long we waited for a core.
        start = time.process_time()
        run(iterations)
        return (time.process_time() - start) / iterations
    finally:
        if installed:
            compat.uninstall()


def calibrate(make: Callable[[], Run], target: float) -> int:
    iterations = 100
    while True:
        elapsed = measure(make, False, iterations) * iterations
        if elapsed >= target / 4:
            return max(100, int(iterations * target / elapsed))
        iterations *= 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument("--target", type=float, default=0.05, help="seconds per batch (default 0.05)")
    options = parser.parse_args()
    table = cases()
    iterations = {name: calibrate(make, options.target) for name, make in table.items()}
    times: dict[tuple[str, bool], list[float]] = {(name, mode): [] for name in table for mode in (False, True)}
    for round_number in range(options.rounds):
        for name, make in table.items():
            # Alternate which mode goes first, so neither always runs on a warmer cache.
            for mode in (False, True) if round_number % 2 == 0 else (True, False):
                times[name, mode].append(measure(make, mode, iterations[name]))
    print(f"{'case':42} {'without':>10} {'compat':>10} {'ratio':>7}")
    for name in table:
        without = statistics.median(times[name, False])
        with_compat = statistics.median(times[name, True])
        print(f"{name:42} {without * 1e9:8.0f}ns {with_compat * 1e9:8.0f}ns {without / with_compat:6.3f}x")


if __name__ == "__main__":
    main()
