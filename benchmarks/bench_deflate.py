"""permessage-deflate: receive and send of 1 KiB JSON messages, against wsproto and websockets.

All three receivers decode the same stream of compressed, masked client frames
(context takeover on, 15-bit windows), so each pays for inflating the same
data. The send case compares our cost per message with the cost of zlib alone
(encode, compress + sync flush of the same payload with the same settings:
level -1, raw 15-bit window, memLevel 5), which is the floor for any
implementation; building the event, removing the flush's 4-byte tail and the
frame header count as our overhead. Before timing, the script checks that
both produce the same compressed bytes, so that they do the same work. Runs
are interleaved; ratios are medians of the per-run ratios, with their
interquartile range relative to the median.

Run: python benchmarks/bench_deflate.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import tracemalloc
import zlib
from collections.abc import Callable

import wsproto.connection
import wsproto.events
import wsproto.extensions
from websockets.extensions.permessage_deflate import PerMessageDeflate as WebsocketsDeflate
from websockets.protocol import Protocol, Side, State

from wsproto_core.connection import Connection, ConnectionType
from wsproto_core.events import TextMessage
from wsproto_core.extensions import PerMessageDeflate
from wsproto_core.frames import read_frame_header


def json_message(index: int) -> str:
    """About 1 KiB of JSON that varies from message to message, like real traffic."""
    items = [
        {"id": index * 10 + n, "name": f"item-{index}-{n}", "price": (index * 7 + n) % 1000 / 10} for n in range(12)
    ]
    return json.dumps({"type": "update", "seq": index, "items": items})[:1024]


def negotiated_pair() -> tuple[PerMessageDeflate, PerMessageDeflate]:
    client, server = PerMessageDeflate(), PerMessageDeflate()
    response = server.accept("permessage-deflate; " + str(client.offer()))
    client.finalize("permessage-deflate" + (f"; {response}" if response else ""))
    return client, server


def build_stream(count: int) -> list[bytes]:
    client_extension, _ = negotiated_pair()
    client = Connection(ConnectionType.CLIENT, [client_extension])
    return [client.send(TextMessage(json_message(index))) for index in range(count)]


def receive_core(frames: list[bytes]) -> int:
    _, server_extension = negotiated_pair()
    server = Connection(ConnectionType.SERVER, [server_extension])
    received = 0
    for frame in frames:
        server.receive_data(frame)
        for _event in server.events():
            received += 1
    return received


def receive_wsproto(frames: list[bytes]) -> int:
    extension = wsproto.extensions.PerMessageDeflate()
    extension.accept("permessage-deflate")
    server = wsproto.connection.Connection(wsproto.connection.ConnectionType.SERVER, [extension])
    received = 0
    for frame in frames:
        server.receive_data(frame)
        for _event in server.events():
            received += 1
    return received


def receive_websockets(frames: list[bytes]) -> int:
    extension = WebsocketsDeflate(False, False, 15, 15, {"memLevel": 5})
    server = Protocol(Side.SERVER, state=State.OPEN, max_size=None)
    server.extensions = [extension]
    received = 0
    for frame in frames:
        server.receive_data(frame)
        for event in server.events_received():
            event.data.decode()
            received += 1
    return received


def send_core(messages: list[str]) -> int:
    _, server_extension = negotiated_pair()
    server = Connection(ConnectionType.SERVER, [server_extension])
    return sum(len(server.send(TextMessage(message))) for message in messages)


def check_same_work(messages: list[str]) -> None:
    """Our frames must carry exactly what zlib alone produces (minus the tail): same settings, same work."""
    _, server_extension = negotiated_pair()
    assert (server_extension.mem_level, server_extension.compress_level) == (5, -1)
    server = Connection(ConnectionType.SERVER, [server_extension])
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15, 5)
    for message in messages:
        frame = server.send(TextMessage(message))
        expected = compressor.compress(message.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)
        parsed = read_frame_header(frame)
        assert parsed is not None, "not a frame"
        first, _length, _mask, header = parsed
        assert first == 0xC1 and frame[header:] == expected[:-4], "the send comparison is not like for like"


def spread(ratios: list[float]) -> str:
    quartiles = statistics.quantiles(ratios, n=4)
    return f"IQR {100 * (quartiles[2] - quartiles[0]) / statistics.median(ratios):.0f}%"


def send_zlib(messages: list[str]) -> int:
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15, 5)
    total = 0
    for message in messages:
        data = message.encode()
        total += len(compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))
    return total


def timed(function: Callable[[list], int], argument: list, expected: int | None) -> float:
    # As in bench_core.py (and timeit): no garbage collection inside the timed
    # region, whose pauses would land on whichever run allocated last.
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        result = function(argument)
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    if expected is not None:
        assert result == expected, (function.__name__, result, expected)
    return elapsed


def idle_negotiated_size() -> float:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    connections = []
    for _ in range(1000):
        _, extension = negotiated_pair()
        connections.append(Connection(ConnectionType.SERVER, [extension]))
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    count = 2000 if args.quick else 5000
    repetitions = 5 if args.quick else 11
    frames = build_stream(count)
    messages = [json_message(index) for index in range(count)]
    check_same_work(messages)
    receivers = {"wsproto_core": receive_core, "wsproto": receive_wsproto, "websockets": receive_websockets}
    receive_times: dict[str, list[float]] = {name: [] for name in receivers}
    send_times: dict[str, list[float]] = {"wsproto_core send": [], "zlib alone": []}
    for _ in range(repetitions):
        for name, function in receivers.items():
            receive_times[name].append(timed(function, frames, count))
        send_times["wsproto_core send"].append(timed(send_core, messages, None))
        send_times["zlib alone"].append(timed(send_zlib, messages, None))
    print(f"{count} JSON messages of ~1 KiB, permessage-deflate, medians of {repetitions} interleaved runs\n")
    print(f"{'receive':<14} {'msg/s':>10}  wsproto_core is (median of per-run ratios)")
    core_samples = receive_times["wsproto_core"]
    for name, samples in receive_times.items():
        median = statistics.median(samples)
        if name == "wsproto_core":
            print(f"{name:<14} {count / median:>10,.0f}")
            continue
        ratios = [theirs / ours for theirs, ours in zip(samples, core_samples, strict=True)]
        print(f"{name:<14} {count / median:>10,.0f}  {statistics.median(ratios):.2f}x faster  ({spread(ratios)})")
    ours = statistics.median(send_times["wsproto_core send"])
    floor = statistics.median(send_times["zlib alone"])
    ratios = [a / b for a, b in zip(send_times["wsproto_core send"], send_times["zlib alone"], strict=True)]
    print(f"\nsend: wsproto_core {count / ours:,.0f} msg/s, zlib alone {count / floor:,.0f} msg/s: ")
    print(
        f"      our cost is {statistics.median(ratios):.2f}x zlib's ({spread(ratios)}; "
        f"{(ours - floor) / count * 1e6:.2f} us of overhead per message)"
    )
    print(f"\nidle negotiated server connection: {idle_negotiated_size():,.0f} bytes")


if __name__ == "__main__":
    main()
